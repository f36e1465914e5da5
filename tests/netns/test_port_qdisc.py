"""A live vswitchd port's queue policies with real guests: a tbf qdisc installed at run time by
`vswitchctl set-port` shapes iperf3 UDP to its rate and `vswitchctl qdisc show` counts it;
ingress policing (OVS's ingress_policing_rate/burst) drops over-rate traffic; a bad qdisc is
refused with one line and changes nothing; the settings persist across a restart."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.netns.harness import Daemon, guest
from tests.netns.test_vswitchd import ns_of, tap_config

pytestmark = [pytest.mark.netns, pytest.mark.skipif(shutil.which("iperf3") is None,
                                                    reason="iperf3 is not installed (apt-get install iperf3)")]

@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="vqp-test-", dir="/tmp")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


PAYLOAD = 1200
FRAME = PAYLOAD + 8 + 20 + 14          # UDP, IPv4, Ethernet: what a qdisc and a policer count


def two_guests(lab, workdir, net: str):
    text, taps = tap_config(lab, {"g1": {}, "g2": {}})
    d = Daemon(lab, workdir, text).start()
    guest(lab, ns_of(lab, "g1"), taps["g1"], f"{net}.1/24")
    guest(lab, ns_of(lab, "g2"), taps["g2"], f"{net}.2/24")
    return d, taps


def udp(lab, dst: str, mbit: int, seconds: int = 4) -> dict:
    """iperf3 UDP from g1 to ``dst`` (in g2); the server's count of what arrived."""
    server = lab.spawn(ns_of(lab, "g2"), "iperf3", "-s", "-1")
    time.sleep(0.5)
    r = lab.run(ns_of(lab, "g1"), "iperf3", "-c", dst, "-u", "-l", str(PAYLOAD), "-b", f"{mbit}M", "-t",
                str(seconds), "-J", timeout=60)
    server.wait(timeout=30)
    res = json.loads(r.stdout)
    assert "error" not in res, res.get("error")
    s = res["end"]["sum"]
    received = s["packets"] - s["lost_packets"]
    return {"received": received, "lost": s["lost_packets"], "seconds": s["seconds"],
            "mbit": received * FRAME * 8 / s["seconds"] / 1e6}


def test_a_tbf_installed_by_set_port_shapes_udp_to_its_rate_and_qdisc_show_counts_it(lab, workdir):
    d, taps = two_guests(lab, workdir, "10.71.0")
    r = d.ctl("set-port", taps["g2"], "qdisc=tbf", "qdisc.rate=10mbit", "qdisc.burst=20kb", "qdisc.latency=50ms")
    assert r.returncode == 0, r.stderr
    got = udp(lab, "10.71.0.2", 40)
    print("tbf 10mbit, 40M offered:", got)
    # 40 Mbit/s offered, 10 Mbit/s of frames delivered (the bucket adds 20 KB over 4 s: 0.04 Mbit/s).
    assert got["mbit"] == pytest.approx(10, rel=0.08), got
    assert got["lost"] > 0
    rows = d.ctl_json("qdisc", "show", "--port", taps["g2"])
    q = rows[0]
    assert q["kind"] == "tbf" and q["config"]["rate"] == 10_000_000 and q["config"]["burst"] == 20480
    # iperf3's "packets - lost_packets" counts as received the datagrams still held in the tbf
    # when the server stopped (it sees loss only as gaps in the sequence numbers), so it may
    # exceed what the qdisc sent by at most what the tbf can hold (its limit in bytes).
    held = q["config"]["limit"] // FRAME + 1
    assert q["sent_packets"] + held >= got["received"] and q["dropped"] > 0 and q["overlimits"] > 0
    assert q["drops"]["queue_full"] == q["dropped"]
    text = d.ctl("qdisc", "show").stdout
    assert f"qdisc tbf 1: dev {taps['g2']} root rate 10Mbit burst 20480" in text
    assert f" Sent {q['sent_bytes']} bytes {q['sent_packets']} pkt (dropped {q['dropped']}, overlimits" in text
    assert f"qdisc noqueue 0: dev {taps['g1']} root" in text
    # Removed at run time: the next run is not shaped.
    assert d.ctl("set-port", taps["g2"], "qdisc=none").returncode == 0
    assert d.ctl_json("qdisc", "show", "--port", taps["g2"])[0]["kind"] == "noqueue"
    assert udp(lab, "10.71.0.2", 30, seconds=2)["mbit"] > 15


def test_ingress_policing_drops_over_rate_traffic(lab, workdir):
    d, taps = two_guests(lab, workdir, "10.72.0")
    r = d.ctl("set-port", taps["g1"], "ingress_policing_rate=5000", "ingress_policing_burst=100")
    assert r.returncode == 0, r.stderr
    got = udp(lab, "10.72.0.2", 30)
    print("policing 5000 kbps, 30M offered:", got)
    assert got["mbit"] == pytest.approx(5, rel=0.1), got
    row = d.ctl_json("qdisc", "show", "--port", taps["g1"])[0]
    pol = row["ingress"][0]
    assert pol["element"] == "policer" and pol["config"]["cir"] == 5_000_000 and pol["config"]["cbs"] == 12_500
    assert pol["drops"]["policed_red"] > 0 and pol["counters"]["green_packets"] >= got["received"]
    assert d.call("counters", port=taps["g1"])["ports"][taps["g1"]]["rx_dropped"] >= pol["drops"]["policed_red"]


def test_a_bad_qdisc_is_refused_with_one_line_and_changes_nothing_and_a_good_one_persists(lab, workdir):
    d, taps = two_guests(lab, workdir, "10.73.0")
    before = d.config.read_text()
    for argv, words in [(["qdisc=tbf", "qdisc.rate=10mbit"], "burst is required"),
                        (["qdisc=fq_codel", "qdisc.target=5000"], "give the unit"),
                        (["qdisc=fq"], "unknown qdisc kind 'fq'"),
                        (["qdisc.rate=1mbit"], "the port has no qdisc"),
                        (["ingress_policing_rate=-5"], "ingress_policing_rate -5: must be")]:
        r = d.ctl("set-port", taps["g2"], *argv)
        assert r.returncode == 1 and words in r.stderr and r.stderr.count("\n") == 1, (argv, r.stderr)
        assert "Traceback" not in r.stderr
    assert d.config.read_text() == before
    assert d.ctl_json("qdisc", "show", "--port", taps["g2"])[0]["kind"] == "noqueue"
    assert d.ctl("set-port", taps["g2"], "qdisc=fq_codel", "qdisc.target=2ms").returncode == 0
    assert d.ctl("set-port", taps["g2"], "qdisc.interval=50ms").returncode == 0
    assert d.ctl("set-port", taps["g2"], "storm_broadcast_pps=50").returncode == 0
    assert d.stop() == 0
    d.start()
    row = d.ctl_json("qdisc", "show", "--port", taps["g2"])[0]
    assert row["kind"] == "fq_codel" and row["config"]["target"] == 2_000_000
    assert row["config"]["interval"] == 50_000_000
    assert row["ingress"][0]["element"] == "stormcontrol" and row["ingress"][0]["config"]["broadcast_pps"] == 50
    assert "[port.qdisc]" in d.config.read_text()
