"""Remake the pictures of the dataplane graph in docs/graphs (``make docs-graphs``).

For each topology here (``switch.toml``, ``software.toml``, ``vmdq.toml``) the
graph is built from the TOML by `vswitch.topology.build_dataplane`, the function
vswitchd builds its graph with (vswitchd adds the ports one by one through the
same `Dataplane.add_port` as their devices open), a short generated trace is
replayed through it offline (`ReplayDriver`, virtual time) so that the links
carry packet counts, and `vswitch.graph_dot.to_dot` (what ``vswitchctl graph
--dot`` prints) is rendered with Graphviz: ``dot -Tpng``.

The trace: the guests and, where there is an uplink, a host on the wire (``ext``)
each ARP for the next one round a ring (ext -> g1 -> g2 -> g3 -> ext), ping it
twice, and the last sends a broadcast (bench/traces.py ``three_guests``); with a NIC,
ext then sends one frame to a MAC nobody has (the default pool's path).

Needs graphviz (``apt-get install graphviz``); nothing in the test suite does.
``--dot-only`` writes the DOT text beside the PNGs' names instead.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from vswitch import compiled

compiled.install()       # a program: the compiled build only if it is current, before the dataplane loads

from bench.traces import Guest, ether, three_guests
from vswitch.drivers.replay import Record, ReplayDriver
from vswitch.graph_dot import to_dot
from vswitch.topology import Dataplane, build_dataplane, load_topology

HERE = Path(__file__).resolve().parent
TOPOLOGIES = {
    "switch": "the software switch alone, three guests",
    "software": "[nic] mode = \"software\": the 82599 with one queue, the switch classifies",
    "vmdq": "[nic] mode = \"vmdq\": a pool per guest, VEB between them",
}


def replayed(name: str) -> Dataplane:
    """The topology's dataplane after the trace."""
    topo = load_topology(HERE / f"{name}.toml")
    dp = build_dataplane(topo)
    guests = [p.name for p in topo.ports if p.name != (topo.nic.uplink if topo.nic else None)]
    hosts = ([("ext", topo.nic.uplink)] if topo.nic else []) + [(g, g) for g in guests]
    people = [Guest(who, bytes([2, 0, 0, 0, 0, i]), bytes([10, 0, 0, i])) for i, (who, _) in enumerate(hosts, 1)]
    port_of = {who: dp.numbers[port] for who, port in hosts}
    trace = three_guests(people, pings=2)
    if topo.nic:
        # A frame from the wire to a MAC nobody has: the default pool, then the software switch.
        nobody = ether(bytes([2, 0, 0, 0, 0, 0x99]), people[0].mac, 0x88B5, bytes(46))
        trace.append((trace[-1][0] + 1000, nobody, "ext"))
    ReplayDriver(dp).run(Record(ts, frame, port_of[who]) for ts, frame, who in trace)
    return dp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Remake docs/graphs/*.png from the topologies beside this script.")
    ap.add_argument("names", nargs="*", default=list(TOPOLOGIES), help="topologies (default: all)")
    ap.add_argument("--out", default=str(HERE), help="directory for the pictures (default docs/graphs)")
    ap.add_argument("--dot-only", action="store_true", help="write NAME.dot, do not run Graphviz")
    args = ap.parse_args(argv)
    if not args.dot_only and shutil.which("dot") is None:
        print("generate.py: Graphviz's dot is not installed (apt-get install graphviz), or use --dot-only",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        if name not in TOPOLOGIES:
            print(f"generate.py: unknown topology {name!r} (known: {', '.join(TOPOLOGIES)})", file=sys.stderr)
            return 2
        text = to_dot(replayed(name).graph.describe(), title=f"{name}.toml: {TOPOLOGIES[name]}")
        if args.dot_only:
            (out / f"{name}.dot").write_text(text)
            continue
        png = out / f"{name}.png"
        subprocess.run(["dot", "-Tpng", "-Gdpi=80", "-o", str(png)], input=text.encode(), check=True)
        print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
