"""A port's queue policies in the dataplane: an egress qdisc ([port.qdisc]), ingress policing
(ingress_policing_rate/burst, OVS's kbps and kb) and storm control, as any driver runs them:
the graph's queue and deadlines, no driver changes.  The live daemon's side is in
tests/netns/test_port_qdisc.py."""

from __future__ import annotations

import pytest
from helpers import mac

from vswitch.core.frame import Frame
from vswitch.port_config import change_port, fold_qdisc, parse_port
from vswitch.qdisc_view import qdisc_view, tc_text
from vswitch.schema import ConfigError
from vswitch.topology import Topology, build_dataplane, parse_topology, topology_to_dict

MS = 1_000_000
TBF = {"kind": "tbf", "rate": "8mbit", "burst": "3kb", "limit": "100kb"}   # 1 MB/s


def dataplane(p1: dict | None = None, p2: dict | None = None):
    doc = {"port": [{"name": "a", **(p1 or {})}, {"name": "b", **(p2 or {})}]}
    dp = build_dataplane(parse_topology(doc, "t.toml"))
    got: dict[int, list[tuple[int, Frame]]] = {1: [], 2: []}
    for n in (1, 2):
        def send(batch, now_ns, n=n):
            got[n].extend((now_ns, f) for f in batch)
        dp.graph.set_transmit(n, send)
    return dp, got


def frames(n: int, size: int = 1000, dst: bytes = b"\xff" * 6) -> list[Frame]:
    return [Frame(dst + mac(1) + b"\x88\xb5" + bytes(size - 14)) for _ in range(n)]


def test_a_tbf_qdisc_on_a_port_shapes_what_the_switch_sends_it_in_graph_time():
    dp, got = dataplane(p2={"qdisc": TBF})
    g = dp.graph
    g.push(1, frames(60), 0)                       # flooded: port b's copies wait in its tbf
    g.run_until(0)
    assert len(got[2]) == 3                        # the bucket: 3 KB back to back
    t = 0
    while g.next_deadline_ns() is not None:
        t = g.next_deadline_ns()
        g.run_until(t)
    assert len(got[2]) == 60
    # 57 frames after the burst at 1 MB/s: 1000 bytes a ms.
    assert got[2][-1][0] == pytest.approx(57 * MS, rel=0.01)
    q = dp.qdiscs["b"]
    assert q.counters["sent_packets"] == 60 and q.counters["overlimits"] > 0
    assert g.ports[2].tx_packets == 60


def test_the_qdisc_goes_and_comes_back_at_run_time_and_a_bad_one_changes_nothing():
    dp, got = dataplane()
    old = parse_port({"name": "b"}, "b")
    new = change_port(old, {"qdisc": "fq_codel"}, "b")
    dp.update_port(old, new)
    assert dp.qdiscs["b"].scheduler.KIND == "fq_codel"
    dp.graph.push(1, frames(5), 0)
    dp.graph.run_until(0)
    assert len(got[2]) == 5 and dp.qdiscs["b"].counters["sent_packets"] == 5
    with pytest.raises(ConfigError, match="qdisc: tbf: burst is required"):
        change_port(new, {"qdisc": {"kind": "tbf", "rate": "1mbit"}}, "port 'b'")
    dp.update_port(new, old)                     # qdisc=none: straight to the device again
    assert "b" not in dp.qdiscs and "b.qdisc" not in dp.graph.elements
    got[2].clear()
    dp.graph.push(1, frames(4), 0)
    assert len(got[2]) == 4                      # no queue to drain: sent within the push


def test_set_port_qdisc_params_fold_into_one_change():
    assert fold_qdisc(None, {"qdisc": "tbf"}, {"rate": "1mbit", "burst": "2kb", "latency": "5ms"}) == \
        {"qdisc": {"kind": "tbf", "rate": "1mbit", "burst": "2kb", "latency": "5ms"}}
    cur = {"kind": "fq_codel", "target": "2ms"}
    assert fold_qdisc(cur, {}, {"interval": "50ms", "target": "none"}) == \
        {"qdisc": {"kind": "fq_codel", "interval": "50ms"}}
    with pytest.raises(ValueError, match="the port has no qdisc"):
        fold_qdisc(None, {}, {"rate": "1mbit"})
    with pytest.raises(ValueError, match="qdisc=none takes no"):
        fold_qdisc(cur, {"qdisc": None}, {"rate": "1mbit"})


def test_qdisc_and_policing_persist_as_port_settings():
    doc = {"port": [{"name": "a", "qdisc": TBF, "ingress_policing_rate": 1000, "ingress_policing_burst": 100,
                     "storm_broadcast_pps": 10}]}
    topo = parse_topology(doc, "t.toml")
    back = topology_to_dict(topo)["port"][0]
    assert back["qdisc"] == TBF and back["ingress_policing_rate"] == 1000 and back["storm_broadcast_pps"] == 10
    assert parse_topology({"port": [back]}, "again").ports[0] == topo.ports[0]


@pytest.mark.parametrize("port, msg", [
    ({"qdisc": {"kind": "drr", "quantum": 0}}, "qdisc: drr: quantum 0: must be 1 to"),
    ({"qdisc": {"rate": "1mbit"}}, "qdisc: a qdisc table needs a kind"),
    ({"qdisc": "fq"}, "unknown qdisc kind 'fq'"),
    ({"ingress_policing_rate": -1}, "ingress_policing_rate -1: must be 0-"),
    ({"ingress_policing_burst": 10}, "ingress_policing_burst: only with ingress_policing_rate"),
    ({"storm_multicast_pps": "many"}, "storm_multicast_pps: expected int"),
])
def test_bad_port_policies_are_refused_naming_the_key(port, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_topology({"port": [{"name": "a", **port}]}, "t.toml")


def test_ingress_policing_drops_over_rate_in_ovs_units():
    # 800 kbit/s = 100 kB/s; burst 80 kbit = 10 kB: 10 frames of 1000 bytes, then 1 per 10 ms.
    dp, got = dataplane(p1={"ingress_policing_rate": 800, "ingress_policing_burst": 80})
    g = dp.graph
    for i in range(100):                          # 1000 frames/s offered: 1 MB/s
        g.push(1, frames(1), i * MS)
    passed = len(got[2])
    assert 10 + 99 // 10 - 1 <= passed <= 10 + 99 // 10 + 1
    pol = dp.ingress["a"][0]
    assert pol.drops["policed_red"] == 100 - passed
    assert g.ports[1].rx_dropped == 100 - passed  # as the kernel counts a policed drop
    # Policing off again: all pass.
    old = dp.switch.ports[1]
    assert old is not None
    cfg = parse_port({"name": "a", "ingress_policing_rate": 800, "ingress_policing_burst": 80}, "a")
    dp.update_port(cfg, parse_port({"name": "a"}, "a"))
    got[2].clear()
    for i in range(20):
        g.push(1, frames(1), 10**9 + i)
    assert len(got[2]) == 20 and "a" not in dp.ingress and "a.policer" not in g.elements


def test_ingress_policing_burst_zero_is_ovs_8000_kbit():
    p = parse_port({"name": "a", "ingress_policing_rate": 10_000}, "a").policer_params()
    assert p == {"mode": "srtcm", "cir": 10_000_000, "cbs": 1_000_000, "ebs": 0, "red": "drop"}


def test_storm_control_passes_n_broadcasts_per_second_and_all_unicast():
    dp, got = dataplane(p1={"storm_broadcast_pps": 5, "storm_multicast_pps": 2})
    g = dp.graph
    mcast = bytes.fromhex("01005e000001")
    for i in range(20):
        g.push(1, frames(1) + frames(1, dst=mcast) + frames(1, dst=mac(9)), i * 10 * MS)   # within 1 s
    kinds = [f.data[0:6] for _, f in got[2]]
    assert kinds.count(b"\xff" * 6) == 5 and kinds.count(mcast) == 2 and kinds.count(mac(9)) == 20
    storm = dp.ingress["a"][0]
    assert storm.drops == {"storm_broadcast": 15, "storm_multicast": 18}
    g.push(1, frames(3), 10**9)                   # the next second
    assert [f.data[0:6] for _, f in got[2]].count(b"\xff" * 6) == 8


def test_qdisc_view_gives_tc_figures_and_text():
    dp, got = dataplane(p1={"ingress_policing_rate": 800}, p2={"qdisc": {"kind": "fq_codel", "flows": 16}})
    dp.graph.push(1, frames(10), 0)
    dp.graph.run_until(0)
    rows = qdisc_view(dp)
    a, b = rows
    assert a["kind"] == "noqueue" and a["ingress"][0]["element"] == "policer"
    assert b["kind"] == "fq_codel" and b["sent_packets"] == 10 and b["sent_bytes"] == 10_000
    assert b["backlog_packets"] == 0 and b["dropped"] == 0
    assert b["counters"]["new_flow_count"] >= 1
    assert {"new_flows_len", "old_flows_len", "maxpacket"} <= set(b["stats"])
    text = tc_text(rows)
    assert "qdisc noqueue 0: dev a root" in text
    assert "qdisc fq_codel 1: dev b root limit 10240 flows 16 quantum 1514 target 5ms interval 100ms" in text
    assert " Sent 10000 bytes 10 pkt (dropped 0, overlimits 0 requeues 0)" in text
    assert "new_flow_count" in text and "ecn_mark 0" in text
    assert "qdisc ingress ffff: dev a policer" in text


def test_removing_a_port_removes_its_policies():
    dp, _ = dataplane(p2={"qdisc": "drr", "storm_broadcast_pps": 1})
    dp.remove_port("b")
    assert not [n for n in dp.graph.elements if n.startswith("b.")]


def test_the_replay_driver_runs_a_ports_qdisc_as_the_graphs_queue():
    """Nothing of the replay driver's own: the tbf port transmits at the shaped times."""
    from vswitch.drivers.replay import Record, ReplayDriver
    topo = Topology(ports=[parse_port({"name": "a"}, "a"), parse_port({"name": "b", "qdisc": TBF}, "b")])
    dp = build_dataplane(topo)
    drv = ReplayDriver(dp)
    sent: list[int] = []
    dp.graph.set_transmit(2, lambda batch, now_ns: sent.extend([now_ns] * len(batch)))
    drv.run([Record(i * 10_000, f.data, 1) for i, f in enumerate(frames(30))])    # 100 MB/s offered
    assert len(sent) == 30
    assert sent[-1] - sent[3] == pytest.approx(26 * MS, rel=0.02)                 # 1 MB/s after the bucket
