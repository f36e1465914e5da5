"""Experiment files naming a policy at a NIC queue (issue 13 item 2): kind "discrete" takes
``[policy.nic_rx]`` / ``[policy.nic_tx]`` for the vmdq and sriov designs, puts it on each guest's
pool or VF queues as the ports' rx_qdisc / tx_qdisc, and reports the policy's counters; bad tables
are refused at file:line: key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.experiments.kinds import run_point
from bench.experiments.spec import ExperimentError, load_experiment

BASE = """\
[experiment]
name = "t"
kind = "discrete"
seeds = 1

[topology]
guests = 2
wire_hosts = 1

[topology.nic]
mode = "{mode}"

[topology.costs]
zero_host = true

[traffic]
gbps = 10
size = 1000
frames = 2000
east_west = 0.0
inbound = 1.0
flows = 4

[measure]
per_port = true
"""

TBF = """
[policy.nic_rx]
qdisc = "slow"
{ports}
[policy.nic_rx.qdiscs.slow]
kind = "tbf"
rate = "100mbit"
burst = "10kb"
limit = "100kb"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return p


def point(tmp_path: Path, text: str) -> tuple[dict, dict[str, int]]:
    """A point's metrics and the frames each guest got."""
    exp = load_experiment(write(tmp_path, text))
    p = exp.points[0]
    r = run_point("discrete", p.params, p.seed)
    return r["metrics"], {g: row["frames"] for g, row in r["ports"].items() if g != "uplink"}


@pytest.mark.parametrize("mode", ["vmdq", "sriov"])
def test_a_tbf_on_every_guests_nic_rx_queue_shapes_what_the_guests_get(tmp_path, mode):
    free, free_got = point(tmp_path, BASE.format(mode=mode))
    m, got = point(tmp_path, BASE.format(mode=mode) + TBF.format(ports=""))
    assert "nic_rx_sent_packets" not in free and free["dropped"] == 0
    inbound = sum(free_got.values())
    assert inbound >= 2000
    # 10 Gb/s for 1.6 ms: each guest's tbf passes its 10 KB burst, 100 Mbit/s after it and what it
    # held (100 KB) when the traffic stopped: about 130 frames a guest (a VF's guest has one vCPU,
    # so its ixgbevf opens one RX queue, as a VMDq pool uses one); it drops the rest.
    assert all(100 < n < 160 for n in got.values()), got
    assert m["nic_rx_sent_packets"] == sum(got.values())
    assert m["nic_rx_dropped"] == m["dropped"] == m["drops_queue_full"] == inbound - sum(got.values())
    assert m["nic_rx_overlimits"] > 0


def test_ports_limits_the_policy_to_the_guests_named(tmp_path):
    _, free = point(tmp_path, BASE.format(mode="vmdq"))
    m, got = point(tmp_path, BASE.format(mode="vmdq") + TBF.format(ports='ports = ["g1"]'))
    assert got["g2"] == free["g2"] and got["g1"] < 160            # only g1 is shaped
    assert m["nic_rx_sent_packets"] == got["g1"] and m["nic_rx_dropped"] == free["g1"] - got["g1"]


def test_a_pfifo_on_each_guests_nic_tx_queue_counts_what_the_guests_send(tmp_path):
    text = BASE.format(mode="vmdq").replace("inbound = 1.0", "inbound = 0.0") \
        + '\n[policy.nic_tx]\nqdisc = "pfifo"\nlimit = 5000\n'
    m, _ = point(tmp_path, text)
    assert m["nic_tx_sent_packets"] >= 2000 and m["nic_tx_dropped"] == 0
    assert m["dropped"] == 0


@pytest.mark.parametrize("extra, mode, key, says", [
    ('\n[policy.link]\nqdisc = "pfifo"\n', "vmdq", "policy.link", "[policy.nic_rx]"),
    ('\n[policy.nic_rx]\nqdisc = "nosuch"\n', "vmdq", "policy.nic_rx.qdisc", "unknown qdisc kind 'nosuch'"),
    ('\n[policy.nic_rx]\nqdisc = "tbf"\nrate = "1mbit"\n', "vmdq", "policy.nic_rx.qdisc", "burst is required"),
    ('\n[policy.nic_rx]\nlimit = 5\n', "vmdq", "policy.nic_rx.qdisc", "a qdisc kind"),
    ('\n[policy.nic_tx]\nqdisc = "pfifo"\nports = "g1"\n', "vmdq", "policy.nic_tx.ports", "a list of guest"),
    ('\n[policy.nic_rx]\nqdisc = "pfifo"\n', "software", "policy.nic_rx", "software design has no NIC queue"),
])
def test_bad_nic_policies_are_refused_at_the_key(tmp_path, extra, mode, key, says):
    with pytest.raises(ExperimentError) as e:
        load_experiment(write(tmp_path, BASE.format(mode=mode) + extra))
    msg = str(e.value)
    assert "\n" not in msg and key in msg and says in msg, msg


@pytest.mark.parametrize("mode", ["vmdq", "sriov"])
def test_kind_replay_runs_a_tbf_on_the_guests_nic_rx_queues(tmp_path, mode):
    # sriov: each guest's VF queues (the offline replay of compare's SR-IOV design)
    text = BASE.format(mode=mode).replace('kind = "discrete"', 'kind = "replay"').replace(
        "[topology.costs]\nzero_host = true\n", "")
    free = load_experiment(write(tmp_path, text))
    r0 = run_point("replay", free.points[0].params, free.points[0].seed)
    exp = load_experiment(write(tmp_path, text + TBF.format(ports="")))
    r = run_point("replay", exp.points[0].params, exp.points[0].seed)
    m, got = r["metrics"], {g: r["ports"][g]["tx_packets"] for g in ("g1", "g2")}
    assert "nic_rx_sent_packets" not in r0["metrics"] and r0["metrics"]["dropped"] == 0
    inbound = sum(r0["ports"][g]["tx_packets"] for g in ("g1", "g2"))
    assert all(100 < n < 160 for n in got.values()), got          # as in the discrete driver
    assert m["nic_rx_sent_packets"] == sum(got.values())
    assert m["nic_rx_dropped"] == m["drops_queue_full"] == inbound - sum(got.values())


def test_a_guest_the_topology_lacks_is_refused(tmp_path):
    text = BASE.format(mode="vmdq") + '\n[policy.nic_rx]\nqdisc = "pfifo"\nports = ["g9"]\n'
    exp = load_experiment(write(tmp_path, text))
    with pytest.raises(ValueError, match="policy.nic_rx.ports: 'g9' is not a guest of the topology"):
        run_point("discrete", exp.points[0].params, exp.points[0].seed)


def test_a_sweep_axis_lists_nic_rx_qdiscs_by_name(tmp_path):
    text = BASE.format(mode="vmdq") + TBF.format(ports="") + (
        '[policy.nic_rx.qdiscs.fifo]\nkind = "pfifo"\nlimit = 5000\n\n'
        '[sweep.axes]\n"policy.nic_rx.qdisc" = ["fifo", "slow"]\n')
    exp = load_experiment(write(tmp_path, text))
    runs = {p.params["policy"]["nic_rx"]["qdisc"]: run_point("discrete", p.params, p.seed)["metrics"]
            for p in exp.points}
    assert runs["fifo"]["nic_rx_dropped"] == 0 and runs["slow"]["nic_rx_dropped"] > 0
    assert runs["fifo"]["nic_rx_sent_packets"] > runs["slow"]["nic_rx_sent_packets"]
