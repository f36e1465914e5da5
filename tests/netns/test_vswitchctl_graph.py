"""`vswitchctl graph` on a running vswitchd: the graph it holds, as JSON and as Graphviz DOT.

The daemon runs the emulated 82599 in VMDq mode between an uplink (a veth whose
far end is a host in namespace ``ext``) and three guests on TAP ports in their
own namespaces, and carries real pings.  The graph it shows must be the one the
same TOML builds offline (`build_dataplane`, the function the docs' pictures are
made with), with the live traffic on its links; a mirror added at run time shows
as a tap and is gone, taps and all, once deleted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.dot_text import node_of, parse_dot
from tests.netns.harness import Daemon, guest, ping_ok
from vswitch.topology import build_dataplane, parse_topology

pytestmark = pytest.mark.netns


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="vswitchd-graph-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def shape(desc: dict) -> dict:
    """The wiring of a description, without its counters."""
    return {
        "elements": [(e["name"], e["class"], e["kind"], e["parent"]) for e in desc["elements"]],
        "links": sorted((l["src"], l["output"], l["dst"], l["input"]) for l in desc["links"]),
        "ports": sorted((p["number"], p["name"], p["entry"]["element"], p["entry"]["input"],
                         tuple(sorted((g["element"], g["output"]) for g in p["egress"]))) for p in desc["ports"]),
        "flows": sorted(json.dumps(f, sort_keys=True) for f in desc["flows"]),
    }


def test_vswitchctl_graph_shows_the_running_graph_as_json_and_dot(lab, workdir):
    import tomllib
    ext = lab.netns("ext")
    up, far = lab.veth("up", "far", ext)
    guest(lab, ext, far, "10.62.0.100/24")
    lines = ["[nic]", 'profile = "82599"', 'mode = "vmdq"', f'uplink = "{up}"', "",
             "[[port]]", f'name = "{up}"', 'type = "attach"', ""]
    taps = {}
    for g in ("g1", "g2", "g3"):
        ns = lab.netns(g)
        taps[g] = lab.name("t" + g)
        lines += ["[[port]]", f'name = "{taps[g]}"', f'netns = "{ns}"', ""]
    text = "\n".join(lines)
    d = Daemon(lab, workdir, text).start()
    for i, g in enumerate(("g1", "g2", "g3"), 1):
        guest(lab, lab.prefix + g, taps[g], f"10.62.0.{i}/24")
    assert ping_ok(lab, lab.prefix + "g1", "10.62.0.100"), d.log.read_text()
    assert ping_ok(lab, lab.prefix + "g1", "10.62.0.2")                         # guest to guest: VEB

    live = d.ctl_json("graph")
    # The same graph as the TOML builds offline, port numbers and all.
    offline = build_dataplane(parse_topology(tomllib.loads(text))).graph.describe()
    assert shape(live) == shape(offline)
    links = {(l["src"], l["output"], l["dst"], l["input"]): l["packets"] for l in live["links"]}
    assert links[("nic0.segment", "out", "nic0", "wire")] > 0                   # the ext host's replies
    assert links[("nic0.rxq2", "out", "nic0", "host")] > 0                      # g1's pool 1 queue
    ports = {p["name"]: p for p in live["ports"]}
    assert ports[taps["g1"]]["counters"]["rx_packets"] >= 6

    r = d.ctl("graph", "--dot")
    assert r.returncode == 0, r.stderr
    labels, edges, cluster = parse_dot(r.stdout)
    nic = {n for n, c in cluster.items() if c is not None}
    for part in ("sorter: VmdqSorter", "tx: TxArbiter", "rxq2 (pool 1)", "124 idle queues", "in pool1", "in wire"):
        assert node_of(labels, part) in nic, part
    g1_rx = node_of(labels, f"{taps['g1']} (port 2) rx")
    tso1 = node_of(labels, "nic0.tso1")              # the NIC's TSO, then pool 1's TX ring
    assert (g1_rx, tso1) in edges and (tso1, node_of(labels, "in pool1")) in edges
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg"], input=r.stdout, capture_output=True, text=True, timeout=60)
        assert svg.returncode == 0 and "<svg" in svg.stdout, svg.stderr
    assert "nic0.sorter" in d.ctl("graph").stdout                            # the tables
    assert sum(1 for e in d.ctl_json("graph", "--all")["elements"] if e["class"] == "RxQueueElement") == 128

    # A mirror is an element fed by taps; deleting it takes its taps away too.
    r = d.ctl("mirror", "add", "m1", "--select-all", "--output-port", taps["g3"])
    assert r.returncode == 0, r.stderr
    g = d.ctl_json("graph")
    assert {(t["element"], t["direction"]) for t in g["taps"]} == {("mirror.m1", "rx"), ("mirror.m1", "tx")}
    assert {"element": "mirror.m1", "output": "out"} in {p["name"]: p for p in g["ports"]}[taps["g3"]]["egress"]
    labels, edges, _ = parse_dot(d.ctl("graph", "--dot").stdout)
    assert (g1_rx, node_of(labels, "mirror.m1: Mirror")) in edges
    assert d.ctl("mirror", "del", "m1").returncode == 0
    g = d.ctl_json("graph")
    assert g["taps"] == [] and "mirror.m1" not in {e["name"] for e in g["elements"]}
