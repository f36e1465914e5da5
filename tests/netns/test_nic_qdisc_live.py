"""A running vswitchd's NIC queue policies with real guests and a real wire: ``vswitchctl set-port
G rx_qdisc=tbf ...`` on a guest's NIC RX queue in vmdq mode, and on a VF's RX queue in sriov
mode, shapes iperf3 UDP from the wire to the guest and ``vswitchctl qdisc show`` counts it;
``tx_qdisc`` on a VF's TX queue counts the guest's frames; a refused policy is one line and
changes nothing; the settings persist across a restart."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.netns.harness import Daemon, guest, ping_ok

pytestmark = [pytest.mark.netns, pytest.mark.skipif(shutil.which("iperf3") is None,
                                                    reason="iperf3 is not installed (apt-get install iperf3)")]

PAYLOAD = 1200
FRAME = PAYLOAD + 8 + 20 + 14          # UDP, IPv4, Ethernet: what the NIC's queue policy counts


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="vsq-nicq-", dir="/tmp")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def topology(lab, mode: str, net: str) -> tuple[str, str, str, str]:
    """An uplink (attach: a veth whose far side is in namespace 'ext', at NET.100) and one tap guest
    in its own namespace (on VF 0 in sriov mode), at NET.1."""
    ext = lab.netns("ext")
    up, far = lab.veth("up", "far", ext)
    guest(lab, ext, far, f"{net}.100/24")
    ns = lab.netns("g1")
    tap = lab.name("tg1")
    lines = ["[nic]", f'mode = "{mode}"', f'uplink = "{up}"', *(["numvfs = 2"] if mode == "sriov" else []), "",
             "[[port]]", f'name = "{up}"', 'type = "attach"', "",
             "[[port]]", f'name = "{tap}"', f'netns = "{ns}"',
             # vmdq: the pool learns the guest's MAC from its frames; sriov: the VF's admin MAC (the tap takes it)
             *(['vf = 0', 'mac = "52:54:00:5e:00:01"'] if mode == "sriov" else []), ""]
    return "\n".join(lines), tap, ns, ext


SECONDS = 4


def udp_to_guest(lab, ext: str, ns: str, dst: str, mbit: int, seconds: int = SECONDS) -> dict:
    """iperf3 UDP from the wire's far side to the guest; the server's count of what arrived."""
    server = lab.spawn(ns, "iperf3", "-s", "-1")
    time.sleep(0.5)
    r = lab.run(ext, "iperf3", "-c", dst, "-u", "-l", str(PAYLOAD), "-b", f"{mbit}M", "-t", str(seconds), "-J",
                timeout=60)
    server.wait(timeout=30)
    res = json.loads(r.stdout)
    assert "error" not in res, res.get("error")
    s = res["end"]["sum"]
    received = s["packets"] - s["lost_packets"]
    return {"received": received, "lost": s["lost_packets"], "mbit": received * FRAME * 8 / s["seconds"] / 1e6}


def shaped_rx(lab, d: Daemon, tap: str, ns: str, ext: str, net: str) -> dict:
    """A 10 Mbit/s tbf on the guest's NIC RX queue(s), set at run time: 40 Mbit/s offered from the
    wire arrives at about 10, and qdisc show's nic_rx counts what it sent, dropped and held back."""
    r = d.ctl("set-port", tap, "rx_qdisc=tbf", "rx_qdisc.rate=10mbit", "rx_qdisc.burst=20kb",
              "rx_qdisc.latency=50ms")
    assert r.returncode == 0, r.stderr
    assert ping_ok(lab, ext, f"{net}.1"), d.log.read_text()
    got = udp_to_guest(lab, ext, ns, f"{net}.1", 40)
    print("rx_qdisc tbf 10mbit, 40M offered:", got)
    assert got["mbit"] == pytest.approx(10, rel=0.1), got
    row = d.ctl_json("qdisc", "show", "--port", tap)[0]
    rx = row["nic_rx"]
    assert all(q["kind"] == "tbf" and q["config"]["rate"] == 10_000_000 for q in rx)
    # What the policy sent is what the guest got: iperf3's "packets - lost" also counts as received
    # what was still queued (behind the policy, or dropped at the tail) when the server stopped.
    sent = sum(q["sent_packets"] for q in rx)
    assert 0.9 * got["received"] <= sent <= got["received"] + 100     # + the pings and iperf3's TCP control
    assert sent * FRAME * 8 / SECONDS / 1e6 == pytest.approx(10, rel=0.15)
    assert sum(q["dropped"] for q in rx) > 0 and sum(q["overlimits"] for q in rx) > 0
    text = d.ctl("qdisc", "show", "--port", tap).stdout
    q0 = rx[0]["queue"]
    assert f"qdisc tbf {q0 + 0x100:x}: dev {tap} nic rx queue {q0} rate 10Mbit burst 20480" in text, text
    return row


def test_an_rx_qdisc_on_a_vmdq_guests_nic_queue_shapes_what_the_wire_sends_it(lab, workdir):
    net = "10.74.0"
    text, tap, ns, ext = topology(lab, "vmdq", net)
    d = Daemon(lab, workdir, text).start()
    guest(lab, ns, tap, f"{net}.1/24")
    row = shaped_rx(lab, d, tap, ns, ext, net)
    pool = next(b for b in d.ctl_json("nic", "show")["bindings"] if b["port"] == tap)
    assert sorted(q["queue"] for q in row["nic_rx"]) == sorted(pool["queues"])
    # Removed at run time: the wire reaches the guest unshaped again, and the file says so.
    assert d.ctl("set-port", tap, "rx_qdisc=none").returncode == 0
    assert "nic_rx" not in d.ctl_json("qdisc", "show", "--port", tap)[0]
    assert udp_to_guest(lab, ext, ns, f"{net}.1", 30, seconds=2)["mbit"] > 15
    assert "rx_qdisc" not in d.config.read_text()


def test_rx_and_tx_qdiscs_on_a_vf_in_sriov_mode_persist_and_a_bad_one_is_refused(lab, workdir):
    net = "10.75.0"
    text, tap, ns, ext = topology(lab, "sriov", net)
    d = Daemon(lab, workdir, text).start()
    guest(lab, ns, tap, f"{net}.1/24")
    before = d.config.read_text()
    up = text.split('uplink = "')[1].split('"')[0]
    for name, argv, words in [(tap, ["rx_qdisc=tbf", "rx_qdisc.rate=10mbit"], "burst is required"),
                              (tap, ["rx_qdisc=fq"], "unknown qdisc kind 'fq'"),
                              (tap, ["tx_qdisc.limit=5"], "the port has no tx_qdisc"),
                              (up, ["rx_qdisc=fq_codel"], "the uplink is the NIC's wire")]:
        r = d.ctl("set-port", name, *argv)
        assert r.returncode == 1 and words in r.stderr and r.stderr.count("\n") == 1, (argv, r.stderr)
        assert "Traceback" not in r.stderr
    assert d.config.read_text() == before
    assert "nic_rx" not in d.ctl_json("qdisc", "show", "--port", tap)[0]
    row = shaped_rx(lab, d, tap, ns, ext, net)
    vf = next(v for v in d.ctl_json("vf", "show")["vfs"] if v["port"] == tap)
    assert vf["vf"] == 0 and row["nic_rx"]
    # The VF's TX queue: the guest's frames pass its pfifo on their way to the wire.
    assert d.ctl("set-port", tap, "tx_qdisc=pfifo", "tx_qdisc.limit=100").returncode == 0
    assert ping_ok(lab, ns, f"{net}.100")
    tx = d.ctl_json("qdisc", "show", "--port", tap)[0]["nic_tx"]
    assert tx["kind"] == "pfifo" and tx["config"]["limit"] == 100 and tx["sent_packets"] >= 3
    # Both persist: a restart has them on the VF's queues.
    assert d.stop() == 0
    saved = d.config.read_text()
    assert "[port.rx_qdisc]" in saved and "[port.tx_qdisc]" in saved
    d.start()
    row = d.ctl_json("qdisc", "show", "--port", tap)[0]
    assert row["nic_rx"][0]["kind"] == "tbf" and row["nic_rx"][0]["config"]["rate"] == 10_000_000
    assert row["nic_tx"]["kind"] == "pfifo"
