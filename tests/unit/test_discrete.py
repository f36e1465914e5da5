"""The discrete driver against closed forms: an M/D/1 queue's mean wait, line-rate arithmetic,
a ring's burst-loss law, work conservation (nothing lost or created between stages), and the
same forwarding decisions as the replay driver."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.costmodel import CostTable
from bench.gen import main as gen_main
from bench.gen_sidecar import load_port_map
from bench.modes import build_mode, plan_for
from vswitch.drivers.discrete import Cost, DiscreteDriver, Plan, PreStage, QueueSpec, StageQueue, l1_bytes
from vswitch.drivers.replay import Record, ReplayDriver, SourceMacAssigner, records_by_source_mac
from vswitch.topology import build_dataplane, load_topology, parse_topology

BCAST = b"\xff" * 6
SRC = b"\x02\x00\x00\x00\x00\x01"


def frame(size: int = 60) -> bytes:
    return BCAST + SRC + b"\x08\x00" + bytes(size - 14)


def two_ports():
    """Port a (1) floods every broadcast to port b (2): one copy per frame."""
    return build_dataplane(parse_topology({"port": [{"name": "a", "type": "replay"},
                                                    {"name": "b", "type": "replay"}]}))


def chain_plan(stages: list[tuple[int, float]], pre: list[PreStage] | None = None) -> Plan:
    """Queues in front of port b: (capacity, ns per frame) each on its own server."""
    res = {f"s{i}": "core" for i in range(len(stages))} | {"wire": "wire"}
    specs = [QueueSpec(f"q{i}", cap, "ring_full", Cost(f"s{i}", frame_ns=ns)) for i, (cap, ns) in enumerate(stages)]
    return Plan(res, pre={1: pre or []}, egress={2: specs}, budget=64)


def test_md1_mean_wait_is_pollaczek_khinchine() -> None:
    d_ns, rho, n = 1000.0, 0.5, 40_000
    rng = random.Random(12)
    t = 0.0
    recs = []
    for _ in range(n):
        t += rng.expovariate(rho / d_ns)
        recs.append(Record(int(t), frame(), 1))
    dp = two_ports()
    res = DiscreteDriver(dp, chain_plan([(1_000_000, d_ns)])).run(recs)
    b = res.delivered["b"]
    assert b.frames == n
    wait = b.lat_sum / n - d_ns                     # sojourn minus service
    expected = rho * d_ns / (2 * (1 - rho))         # M/D/1: Wq = rho D / (2 (1 - rho)) = 500 ns
    assert wait == pytest.approx(expected, rel=0.06), (wait, expected)
    assert res.utilisation()["s0"] == pytest.approx(rho, rel=0.03)


def test_a_slower_server_waits_longer_md1_shape() -> None:
    """At rho 0.8 the wait is 4 D / 2 = 2 D: eight times rho 0.333's (D / 4)."""
    waits = []
    for rho in (1 / 3, 0.8):
        rng = random.Random(5)
        t, recs = 0.0, []
        for _ in range(30_000):
            t += rng.expovariate(rho / 1000)
            recs.append(Record(int(t), frame(), 1))
        res = DiscreteDriver(two_ports(), chain_plan([(1_000_000, 1000.0)])).run(recs)
        waits.append(res.delivered["b"].lat_sum / 30_000 - 1000)
    assert waits[1] / waits[0] == pytest.approx(8.0, rel=0.15)


@pytest.mark.parametrize("size,pps", [(64, 14_880_952.38), (1518, 812_743.82)])
def test_line_rate_with_zero_host_cost_is_exact(tmp_path: Path, size: int, pps: float) -> None:
    trace = tmp_path / "t.pcap"
    assert gen_main([str(trace), "--guests", "1", "--east-west", "0", "--inbound", "1", "--size", str(size),
                     "--frames", "3000", "--pps", "100000", "--nic", "software", "--no-announce", "-q"]) == 0
    from bench.compare import run_point
    topo = load_topology(tmp_path / "t.toml")
    for mode in ("software", "vmdq", "sriov"):
        r = run_point(topo, trace, CostTable().zero_host(), mode, port_map=load_port_map(tmp_path / "t.json"),
                      time_mode="topspeed")
        assert r["ports"]["g1"]["frames"] == 3000 and r["drops_total"] == 0, mode
        assert r["delivered"]["pps"] == pytest.approx(pps, rel=1e-3), mode
        assert r["bottleneck"]["resource"] == "wire.rx", mode
        assert r["delivered"]["gbps_l1"] == pytest.approx(10.0, rel=1e-3)


def test_l1_bytes() -> None:
    assert l1_bytes(60) == 84 and l1_bytes(1514) == 1538 and l1_bytes(42) == 84


def test_a_line_rate_burst_into_a_ring_loses_b_minus_r_minus_mu_t() -> None:
    b, r, service = 1000, 256, 200.0
    wire = PreStage("wire", bps=10e9, wire=True)
    res = DiscreteDriver(two_ports(), chain_plan([(r, service)], [wire]), time_mode="topspeed").run(
        [Record(0, frame(), 1) for _ in range(b)])
    lost = res.snapshot["elements"]["q0"]["drops"]["ring_full"]
    t_burst = b * l1_bytes(60) * 8 / 10                # ns
    expected = max(0, b - r - t_burst / service)       # experiments.md C.7
    assert abs(lost - expected) <= 2, (lost, expected)
    assert res.delivered["b"].frames + lost == b
    assert res.snapshot["ports"]["a"]["rx_dropped"] == lost          # counted on the ingress port
    bigger = DiscreteDriver(two_ports(), chain_plan([(2 * r, service)], [wire]), time_mode="topspeed").run(
        [Record(0, frame(), 1) for _ in range(b)])
    assert bigger.snapshot["elements"]["q0"]["drops"]["ring_full"] < lost      # a larger ring: fewer drops
    assert bigger.delivered["b"].percentile_ns(99) > res.delivered["b"].percentile_ns(99)   # and a higher p99


@settings(max_examples=25, deadline=None)
@given(caps=st.lists(st.tuples(st.integers(1, 40), st.floats(0, 3000)), min_size=1, max_size=4),
       gaps=st.lists(st.integers(0, 2000), min_size=1, max_size=300), budget=st.integers(1, 64))
def test_work_conservation_nothing_lost_or_created(caps, gaps, budget) -> None:
    t, recs = 0, []
    for g in gaps:
        t += g
        recs.append(Record(t, frame(), 1))
    plan = chain_plan(caps)
    plan.budget = budget
    res = DiscreteDriver(two_ports(), plan).run(recs)
    els = res.snapshot["elements"]
    dropped = sum(els[f"q{i}"]["drops"]["ring_full"] for i in range(len(caps)))
    assert res.delivered["b"].frames + dropped == len(recs)
    links = {tuple(k.split(" -> ")): v["packets"] for k, v in res.snapshot["links"].items()}
    for i in range(len(caps)):
        q = els[f"q{i}"]
        assert q["backlog_packets"] == 0
        assert q["enqueued"] == q["sent_packets"]
        inbound = sum(n for (src, dst), n in links.items() if dst == f"q{i}[in]")
        assert inbound == q["enqueued"] + q["drops"]["ring_full"]
    # Every server is work-conserving: busy for exactly the work it did.
    for i, (_, ns) in enumerate(caps):
        assert res.resources[f"s{i}"].busy_ns == pytest.approx(ns * els[f"q{i}"]["sent_packets"])


def test_stage_queues_conserve_frames_through_the_nic(tmp_path: Path) -> None:
    trace = tmp_path / "t.pcap"
    assert gen_main([str(trace), "--guests", "3", "--frames", "4000", "--gbps", "10", "--nic", "vmdq", "-q"]) == 0
    from bench.compare import run_point
    topo = load_topology(tmp_path / "t.toml")
    for mode in ("software", "vmdq"):
        dp, pf = build_mode(topo, mode)
        plan = plan_for(mode, topo, dp, CostTable(), 1, pf)
        pm = load_port_map(tmp_path / "t.json")
        assign = SourceMacAssigner(sorted(dp.numbers.values()), {m: dp.numbers[p] for m, p in pm.macs.items()},
                                   dp.numbers[pm.default_port])
        res = DiscreteDriver(dp, plan).run(records_by_source_mac(trace, assign))
        snap = res.snapshot
        assert sum(sum(d.values()) for d in res.drops().values()) > 0, mode       # this load overflows
        for name, el in snap["elements"].items():
            if isinstance(dp.graph.elements[name], StageQueue):
                inbound = sum(v["packets"] for k, v in snap["links"].items() if k.endswith(f"-> {name}[in]"))
                if name.endswith(".virtio_tx"):            # a port's entry: what the guest sent
                    inbound = snap["ports"][name.split(".")[0]]["rx_packets"]
                assert inbound == el["enqueued"] + sum(el["drops"].values()), (mode, name)
                assert el["enqueued"] == el["sent_packets"] and el["backlog_packets"] == 0
        r = run_point(topo, trace, CostTable(), mode, port_map=pm)
        assert r["bottleneck"]["resource"] == "core0" and r["bottleneck"]["saturated"]


def _egress(dp, run) -> dict[str, Counter]:
    got: dict[str, Counter] = {}
    run(got)
    return got


@pytest.mark.parametrize("mode", ["software", "vmdq"])
def test_replay_and_discrete_make_the_same_forwarding_decisions(tmp_path: Path, mode: str) -> None:
    """Below saturation (nothing dropped), every port gets the same frames under both drivers."""
    trace = tmp_path / "t.pcap"
    assert gen_main([str(trace), "--guests", "4", "--vlans", "10,20", "--frames", "600", "--pps", "20000",
                     "--arp-pps", "2000", "--bcast-pps", "1000", "--nic", mode, "-q"]) == 0
    topo = load_topology(tmp_path / "t.toml")
    pm = load_port_map(tmp_path / "t.json")

    def records(dp):
        assign = SourceMacAssigner(sorted(dp.numbers.values()), {m: dp.numbers[p] for m, p in pm.macs.items()},
                                   dp.numbers[pm.default_port])
        return records_by_source_mac(trace, assign)

    replay: dict[str, Counter] = {}
    dp = build_dataplane(topo)
    drv = ReplayDriver(dp)
    for number, port in dp.graph.ports.items():
        dp.graph.set_transmit(number, lambda b, now, n=port.name: replay.setdefault(n, Counter()).update(
            f.data for f in b))
    drv.run(records(dp))
    discrete: dict[str, Counter] = {}
    dp2, pf = build_mode(topo, mode)
    d = DiscreteDriver(dp2, plan_for(mode, topo, dp2, CostTable(), 2, pf))
    d.on_deliver = lambda name, b, t: discrete.setdefault(name, Counter()).update(f.data for f in b)
    res = d.run(records(dp2))
    assert not res.drops()
    assert sum(sum(c.values()) for c in replay.values()) > 600
    assert replay == discrete


def test_time_modes() -> None:
    recs = [Record(1_000_000 + 1000 * k, frame(), 1) for k in range(100)]
    for kw, span in [({}, 99_000), ({"multiplier": 2.0}, 49_500), ({"time_mode": "pps", "pps": 1e6}, 99_000),
                     ({"time_mode": "mbps", "mbps": 480.0}, 99_000)]:
        res = DiscreteDriver(two_ports(), chain_plan([(1000, 0.0)]), **kw).run(list(recs))
        assert res.delivered["b"].last_t - res.delivered["b"].first_t == pytest.approx(span), kw


@pytest.mark.parametrize("kw,match", [({"time_mode": "warp"}, "time mode"), ({"multiplier": 0}, "multiplier"),
                                      ({"time_mode": "pps"}, "pps")])
def test_bad_driver_settings_are_refused(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        DiscreteDriver(two_ports(), chain_plan([(10, 1.0)]), **kw)


def test_a_plan_naming_an_undeclared_resource_is_refused() -> None:
    plan = chain_plan([(10, 1.0)])
    plan.egress[2][0] = QueueSpec("q0", 10, "ring_full", Cost("nowhere"))
    with pytest.raises(ValueError, match="resource 'nowhere' is not declared"):
        DiscreteDriver(two_ports(), plan)
