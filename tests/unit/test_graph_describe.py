"""The graph as data (`Graph.describe`) and as a picture (`vswitch.graph_dot`), on built dataplanes.

What each description must hold is written from the wiring rules (topology.py's
`Dataplane` docstring, the 82599's 64 x 2 layout: pool p owns RX queues 2p and
2p+1, RSS off uses the first), not read back from a run.  The DOT text is
checked as Graphviz would read it: balanced braces, every edge's ends declared
as nodes, the NIC's parts inside its cluster; `dot -Tsvg` accepts it where
Graphviz is installed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import BCAST, eth, mac

from tests.dot_text import node_of, parse_dot
from vswitch.core import Element, Frame, Graph
from vswitch.elements.mirror import Mirror
from vswitch.graph_dot import collapse_idle, to_dot
from vswitch.topology import build_dataplane, load_topology, parse_topology

DOCS_GRAPHS = Path(__file__).resolve().parents[2] / "docs" / "graphs"


def dataplane(nic: str | None):
    ports = [{"name": "up"}, {"name": "g1"}, {"name": "g2"}, {"name": "g3"}]
    doc: dict = {"port": ports}
    if nic is not None:
        doc["nic"] = {"mode": nic, "uplink": "up"}
    dp = build_dataplane(parse_topology(doc))
    sent: dict[int, list[bytes]] = {n: [] for n in dp.graph.ports}
    for n in dp.graph.ports:
        dp.graph.set_transmit(n, lambda batch, now, n=n: sent[n].extend(f.data for f in batch))
    return dp, sent


def run(dp, port: str, data: bytes, now: int) -> None:
    dp.graph.push(dp.numbers[port], [Frame(data, now)], now)
    dp.graph.run_until(now)


def by_name(desc: dict) -> dict[str, dict]:
    return {e["name"]: e for e in desc["elements"]}


def links(desc: dict) -> dict[tuple[str, str, str, str], int]:
    return {(l["src"], l["output"], l["dst"], l["input"]): l["packets"] for l in desc["links"]}


# -- describe ---------------------------------------------------------------------------------------

def test_a_switch_alone_is_one_element_and_its_ports():
    dp, _ = dataplane(None)
    d = dp.graph.describe()
    assert [(e["name"], e["class"], e["kind"], e["parent"]) for e in d["elements"]] == [
        ("br0", "LearningSwitch", "element", None)]
    assert d["links"] == [] and d["flows"] == [] and d["sinks"] == [] and d["taps"] == []
    for number, name in ((1, "up"), (2, "g1"), (3, "g2"), (4, "g3")):
        p = next(p for p in d["ports"] if p["number"] == number)
        assert p["name"] == name
        assert p["entry"] == {"element": "br0", "input": str(number)}
        assert p["egress"] == [{"element": "br0", "output": str(number)}]
    run(dp, "g1", eth(BCAST, mac(1)), 1)
    d = dp.graph.describe()
    counters = {p["name"]: p["counters"] for p in d["ports"]}
    assert counters["g1"]["rx_packets"] == 1
    assert [counters[g]["tx_packets"] for g in ("up", "g2", "g3")] == [1, 1, 1]
    json.dumps(d)                                    # plain data: what the control socket sends


def test_vmdq_the_nic_is_a_composite_with_its_parts_and_the_wiring_of_every_port():
    dp, _ = dataplane("vmdq")
    d = dp.graph.describe()
    els = by_name(d)
    nic = els["nic0"]
    assert nic["kind"] == "composite" and nic["class"] == "Nic" and nic["vt"] is True and nic["pools"] == 64
    parts = ["nic0.sorter", "nic0.rx", "nic0.irq", "nic0.tx", *(f"nic0.rxq{q}" for q in range(128))]
    assert nic["parts"] == parts
    assert all(els[p]["parent"] == "nic0" for p in parts)
    assert els["nic0.segment"]["parent"] is None and els["nic0.pool0"]["class"] == "FromPort"
    q5 = els["nic0.rxq5"]
    assert (q5["kind"], q5["pool"], q5["queue"], q5["backlog_packets"]) == ("queue", 2, 5, 0)
    assert els["nic0.tx"]["tx_rings"] == 128
    ls = links(d)
    assert all(ls[(f"nic0.rxq{q}", "out", "nic0", "host")] == 0 for q in range(128))
    assert {k for k in ls if not k[0].startswith("nic0.rxq")} == {
        ("nic0.segment", "out", "nic0", "wire"), ("nic0", "pool0", "nic0.pool0", "in"),
        ("nic0.pool0", "out", "br0", "1"), ("br0", "1", "nic0", "pool0"),
        *((f"nic0.tso{p}", "out", "nic0", f"pool{p}") for p in (1, 2, 3))}
    ports = {p["name"]: p for p in d["ports"]}
    assert ports["up"]["entry"] == {"element": "nic0.segment", "input": "in"}
    assert ports["up"]["egress"] == [{"element": "nic0", "output": "wire"}]
    for pool, g in enumerate(("g1", "g2", "g3"), 1):
        # through the NIC's TSO: MTU-sized frames into the pool's TX queue
        assert ports[g]["entry"] == {"element": f"nic0.tso{pool}", "input": "in"}
        assert sorted(map(tuple, (e.values() for e in ports[g]["egress"]))) == [
            ("br0", str(pool + 1)), ("nic0", f"pool{pool}")]
    # The bound pools 0-3 use their first queue (RSS off): those are not idle, the 124 others are.
    assert sorted(int(n[8:]) for n, e in els.items() if n.startswith("nic0.rxq") and not e["idle"]) == [0, 2, 4, 6]
    flows = {(f["src"]["element"], f["src"].get("input"), f["dst"]["element"], f["dst"].get("output"), f["what"])
             for f in d["flows"]}
    assert ("nic0", "wire", "nic0.sorter", None, "pool selection") in flows
    assert ("nic0", "host", "nic0", "pool2", "its pool") in flows
    assert ("nic0.tx", None, "nic0.rx", None, "VEB loopback") in flows
    json.dumps(d)


def test_software_mode_draws_queue_zero_and_no_veb():
    dp, _ = dataplane("software")
    d = dp.graph.describe()
    els = by_name(d)
    assert els["nic0"]["vt"] is False
    assert [n for n, e in els.items() if n.startswith("nic0.rxq") and not e["idle"]] == ["nic0.rxq0"]
    assert not any(f["what"] == "VEB loopback" for f in d["flows"])
    ports = {p["name"]: p for p in d["ports"]}
    assert ports["g1"]["entry"] == {"element": "br0", "input": "2"}      # guests are switch ports


def test_link_counts_follow_the_traffic_and_agree_with_the_snapshot():
    dp, sent = dataplane("vmdq")
    run(dp, "up", eth(BCAST, mac(0x10)), 1_000)         # broadcast from the wire: BAM pools 1-3
    run(dp, "up", eth(mac(0x99), mac(0x10)), 2_000)     # unknown unicast: the default pool, the switch
    d = dp.graph.describe()
    ls = links(d)
    assert ls[("nic0.segment", "out", "nic0", "wire")] == 2
    assert [ls[(f"nic0.rxq{q}", "out", "nic0", "host")] for q in (0, 2, 4, 6)] == [1, 1, 1, 1]
    assert ls[("nic0.pool0", "out", "br0", "1")] == 1
    snap = dp.graph.snapshot()["links"]
    for (src, out, dst, inp), n in ls.items():
        assert snap[f"{src}[{out}] -> {dst}[{inp}]"]["packets"] == n
    # The guests got the broadcast from their pools and the unknown unicast flooded by the switch.
    assert [len(sent[dp.numbers[g]]) for g in ("g1", "g2", "g3")] == [2, 2, 2]


def test_a_queue_that_carried_frames_is_not_idle_though_its_pool_is_unbound():
    dp, _ = dataplane("vmdq")
    run(dp, "g1", eth(mac(2), mac(1)), 1)                 # g1 learns its MAC into pool 1's filter
    run(dp, "up", eth(mac(1), mac(0x10)), 2)              # to g1: pool 1's queue 2
    dp.remove_port("g1")                                  # pool 1 unbound
    els = by_name(dp.graph.describe())
    assert els["nic0.rxq2"]["idle"] is False             # it carried a frame
    assert els["nic0.rxq4"]["idle"] is False             # g2's pool, still bound
    dp.nic.unbind("g2")
    assert by_name(dp.graph.describe())["nic0.rxq4"]["idle"] is True


def test_an_output_rebound_to_a_port_is_egress_not_a_link_and_taps_and_sinks_are_described():
    class Pass(Element):
        def push(self, inp, batch, now_ns):
            self.emit("out", batch, now_ns)

    g = Graph()
    a, b = g.add(Pass("a")), g.add(Pass("b"))
    g.connect(a, "out", b, "in")
    g.add_port(1, "p1", a, "in")
    g.add_port(2, "p2", b, "in")
    g.bind_egress(a, "out", 2)                           # replaces the link a -> b
    m = g.add(Mirror("mirror.m", select_all=True))
    g.attach_sink(m, "out", lambda batch, now: None)
    g.tap(-1, "rx", m.tap_rx)
    g.tap(2, "tx", m.tap_tx)
    d = g.describe()
    assert d["links"] == []
    assert next(p for p in d["ports"] if p["number"] == 2)["egress"] == [{"element": "a", "output": "out"}]
    assert d["sinks"] == [{"element": "mirror.m", "output": "out"}]
    assert d["taps"] == [{"port": None, "direction": "rx", "element": "mirror.m"},
                         {"port": 2, "direction": "tx", "element": "mirror.m"}]
    g.untap(m.tap_rx)
    g.untap(m.tap_tx)
    g.remove(m)
    d = g.describe()
    assert "mirror.m" not in by_name(d) and d["sinks"] == [] and d["taps"] == []


def test_collapse_idle_folds_the_idle_queues_into_one_and_leaves_its_input_alone():
    dp, _ = dataplane("vmdq")
    d = dp.graph.describe()
    before = json.dumps(d, sort_keys=True)
    c = collapse_idle(d)
    assert json.dumps(d, sort_keys=True) == before
    els = by_name(c)
    idle = els["nic0.idle"]
    assert idle["kind"] == "collapsed" and idle["count"] == 124 and idle["parent"] == "nic0"
    assert "nic0.rxq1" in idle["members"] and "nic0.rxq2" not in idle["members"]
    assert "nic0.idle" in els["nic0"]["parts"] and "nic0.rxq1" not in els["nic0"]["parts"]
    assert links(c)[("nic0.idle", "out", "nic0", "host")] == 0
    assert sum(1 for f in c["flows"] if f["dst"]["element"] == "nic0.idle") == 2     # ring, interrupt


# -- DOT ----------------------------------------------------------------------------------------------

def test_dot_of_a_switch_alone():
    dp, _ = dataplane(None)
    run(dp, "g1", eth(BCAST, mac(1)), 1)
    labels, edges, cluster = parse_dot(to_dot(dp.graph.describe(), title='a "title"'))
    br0 = node_of(labels, "br0: LearningSwitch")
    g1_rx, g2_tx = node_of(labels, "g1 (port 2) rx"), node_of(labels, "g2 (port 3) tx")
    assert labels[g1_rx].endswith("1 pkt") and labels[g2_tx].endswith("1 pkt")
    assert (g1_rx, br0) in edges and (br0, g2_tx) in edges
    assert set(cluster.values()) == {None}


def test_dot_of_vmdq_draws_the_nic_as_a_cluster_of_its_parts_with_idle_queues_folded():
    dp, _ = dataplane("vmdq")
    run(dp, "up", eth(BCAST, mac(0x10)), 1_000)
    text = to_dot(dp.graph.describe())
    labels, edges, cluster = parse_dot(text)
    nic = {n for n, c in cluster.items() if c is not None}
    for part in ("sorter: VmdqSorter", "rx: RxRings", "irq: Interrupts", "tx: TxArbiter", "rxq0 (pool 0)",
                 "rxq2 (pool 1)", "rxq4 (pool 2)", "rxq6 (pool 3)", "124 idle queues", "in wire", "out wire",
                 "in pool1", "out pool3", "in host"):
        assert node_of(labels, part) in nic, part
    assert not any(text.startswith("rxq1 ") for text in labels.values())
    for outside in ("br0: LearningSwitch", "nic0.segment: Segmenter", "nic0.pool0: FromPort", "up (port 1) rx"):
        assert node_of(labels, outside) not in nic
    seg, wire_in, sorter = (node_of(labels, t) for t in ("nic0.segment", "in wire", "sorter"))
    assert (node_of(labels, "up (port 1) rx"), seg) in edges and (seg, wire_in) in edges and (wire_in, sorter) in edges
    tso1 = node_of(labels, "nic0.tso1")
    assert (node_of(labels, "g1 (port 2) rx"), tso1) in edges and (tso1, node_of(labels, "in pool1")) in edges
    g3_tx = node_of(labels, "g3 (port 4) tx")
    assert (node_of(labels, "out pool3"), g3_tx) in edges and (node_of(labels, "br0"), g3_tx) in edges
    assert (node_of(labels, "out wire"), node_of(labels, "up (port 1) tx")) in edges
    # Pools nobody uses have no port nodes: 4 pools in, 4 out, wire both ways, host.
    assert sum(1 for t in labels.values() if re.fullmatch(r"(in|out) (pool\d+|wire|host)", t)) == 11
    all_labels, _, _ = parse_dot(to_dot(dp.graph.describe(), all_elements=True))
    assert sum(1 for t in all_labels.values() if re.match(r"rxq\d+ \(pool", t)) == 128
    assert not any("idle" in t for t in all_labels.values())


def test_dot_escapes_names_and_draws_taps_and_sinks():
    class Pass(Element):
        def push(self, inp, batch, now_ns):
            self.emit("out", batch, now_ns)

    g = Graph()
    a = g.add(Pass('say "hi"\\'))
    g.add_port(1, 'p"1', a, "in")
    g.bind_egress(a, "out", 1)
    m = g.add(Mirror("mirror.m", select_all=True))
    g.attach_sink(m, "out", lambda batch, now: None)
    g.tap(-1, "rx", m.tap_rx)
    labels, edges, _ = parse_dot(to_dot(g.describe()))
    assert node_of(labels, 'say "hi"\\: Pass')
    mirror, sink = node_of(labels, "mirror.m: Mirror"), node_of(labels, "driver sink")
    assert (node_of(labels, 'p"1 (port 1) rx'), mirror) in edges and (mirror, sink) in edges


@pytest.mark.parametrize("nic", [None, "software", "vmdq"])
def test_graphviz_reads_the_dot(nic):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz): the DOT text is checked "
                    "by parse_dot only")
    dp, _ = dataplane(nic)
    r = subprocess.run(["dot", "-Tsvg"], input=to_dot(dp.graph.describe()), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "<svg" in r.stdout and not r.stderr.strip(), r.stderr


# -- the docs' pictures ---------------------------------------------------------------------------------

def test_the_docs_topologies_build_and_their_generator_writes_dot(tmp_path):
    spec = importlib.util.spec_from_file_location("docs_graphs_generate", DOCS_GRAPHS / "generate.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.main([*gen.TOPOLOGIES, "--out", str(tmp_path), "--dot-only"]) == 0
    for name in gen.TOPOLOGIES:
        labels, _, _ = parse_dot((tmp_path / f"{name}.dot").read_text())
        load_topology(DOCS_GRAPHS / f"{name}.toml")
        assert (DOCS_GRAPHS / f"{name}.png").is_file(), f"docs/graphs/{name}.png: run make docs-graphs"
        # The trace went through: every guest received frames.
        for g in ("g1", "g2", "g3"):
            tx = next(t for t in labels.values() if t.startswith(f"{g} (port") and " tx\n" in t)
            assert not tx.endswith("\n0 pkts"), (name, tx)


def test_vswitchctl_graph_refuses_dot_and_json_together(capsys):
    from vswitch.cli import main
    assert main(["--socket", "/nonexistent/ctl.sock", "graph", "--dot", "--json"]) == 1
    assert capsys.readouterr().err == "vswitchctl: give --dot or --json, not both\n"


def test_the_control_command_returns_the_daemons_graph():
    """graph/show on a LiveSwitch that opened nothing (no root): its graph has the NIC and no ports yet."""
    import asyncio

    from vswitch.control.protocol import encode
    from vswitch.control.server import ControlServer
    from vswitch.drivers.live import LiveSwitch
    sw = LiveSwitch(parse_topology({"nic": {"mode": "vmdq", "uplink": "up"}, "port": [{"name": "up"}]}))
    reply = asyncio.run(ControlServer(sw, "/nonexistent").handle(encode({"cmd": "graph/show"})))
    assert reply["ok"] is True, reply
    assert reply["result"] == json.loads(json.dumps(sw.dp.graph.describe()))
    assert by_name(reply["result"])["nic0"]["kind"] == "composite" and reply["result"]["ports"] == []


def test_vswitch_bench_replay_writes_the_graph_after_the_replay(tmp_path, capsys):
    from bench.cli import main as bench_main
    from vswitch.io.pcap import PcapWriter
    cfg = tmp_path / "vmdq.toml"
    cfg.write_text('[nic]\nmode = "vmdq"\nuplink = "up"\n\n[[port]]\nname = "up"\n\n[[port]]\nname = "g1"\n')
    cap = tmp_path / "g1.pcap"
    w = PcapWriter(cap)
    w.write(eth(BCAST, mac(1)), 1_000)
    w.close()
    out = tmp_path / "graph.dot"
    assert bench_main(["replay", "--config", str(cfg), "--port", f"g1={cap}", "--graph-dot", str(out), "-q"]) == 0
    labels, edges, cluster = parse_dot(out.read_text())
    assert labels[node_of(labels, "g1 (port 2) rx")].endswith("\n1 pkt")
    assert labels[node_of(labels, "up (port 1) tx")].endswith("\n1 pkt")            # the broadcast, to the wire
    assert cluster[node_of(labels, "sorter: VmdqSorter")] is not None
    capsys.readouterr()
    assert bench_main(["replay", "--config", str(cfg), "--graph-dot", str(out), str(cap), str(cap)]) == 2
    assert "--graph-dot draws one replay's graph" in capsys.readouterr().err
    assert bench_main(["replay", "--config", str(cfg), "--graph-dot", str(tmp_path / "no" / "g.dot"), str(cap)]) == 2
    assert "--graph-dot" in capsys.readouterr().err and not (tmp_path / "no").exists()


def test_a_mirror_sees_what_a_nic_pool_delivers_to_a_guest():
    """Taps sit on graph ports, so a mirror of a vmdq guest's port sees what its pool delivers
    (docs/nicmodel.md says so), not only what the switch sends it."""
    dp, sent = dataplane("vmdq")
    g = dp.graph
    m = g.add(Mirror("mirror.m", select_dst=frozenset({dp.numbers["g1"]})))
    copies: list[bytes] = []
    g.attach_sink(m, "out", lambda batch, now: copies.extend(f.data for f in batch))
    g.tap(-1, "tx", m.tap_tx)
    run(dp, "g1", eth(mac(0x10), mac(1)), 1)            # g1's MAC into pool 1's filter
    to_g1 = eth(mac(1), mac(0x10))
    run(dp, "up", to_g1, 2)
    assert sent[dp.numbers["g1"]] == [to_g1] and copies == [to_g1]
    assert dp.switch.counters["forwarded"] == 0 and by_name(g.describe())["nic0.rxq2"]["idle"] is False
