"""Frames per second of 64-byte frames through the learning switch, offline, one core.

Topology: ``--ports`` switch ports (default 8), ``--macs`` hosts (default
1000) spread round-robin over the ports; every host first sends one
broadcast so the FDB is warm, then the measured traffic is known unicast
between hosts on different ports, pushed through `Graph.push` in batches of
``--batch`` frames per ingress port (the full path: port rx counters, VLAN
classification, learning refresh, FDB lookup, egress grouping, port tx
counters, the egress callback).  Frame objects are built before timing, as
a driver builds them while reading its fd; the traffic set (default 8192
frames) is replayed ``--rounds`` times, so it stays in cache as a live
driver's freshly read batch does.  Both the best and the median round are
reported.

The peer measured in the same run is the floor of any Python switch: a bare
loop doing one dict refresh (learn) and one dict lookup per frame.  The
ratio says how much the full pipeline costs on top of that floor.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from vswitch import compiled
from vswitch.core.frame import Frame
from vswitch.topology import PortConfig, Topology, build_dataplane


def _mac(i: int) -> bytes:
    return b"\x02\x00" + i.to_bytes(4, "big")


def build_traffic(ports: int, macs: int, frames: int, batch: int, seed: int = 1):
    rng = random.Random(seed)
    host_port = {i: 1 + i % ports for i in range(macs)}
    payload = bytes(50)                     # 14 + 50 = 64 bytes
    warm = [(host_port[i], Frame(b"\xff" * 6 + _mac(i) + b"\x08\x00" + payload)) for i in range(macs)]
    by_port: dict[int, list[Frame]] = {p: [] for p in range(1, ports + 1)}
    for _ in range(frames):
        a = rng.randrange(macs)
        b = rng.randrange(macs)
        while host_port[b] == host_port[a]:
            b = rng.randrange(macs)
        by_port[host_port[a]].append(Frame(_mac(b) + _mac(a) + b"\x08\x00" + payload))
    batches = []
    for p, fl in by_port.items():
        for i in range(0, len(fl), batch):
            batches.append((p, fl[i:i + batch]))
    rng.shuffle(batches)
    return warm, batches


def run_switch(ports: int, macs: int, frames: int, batch: int, rounds: int) -> tuple[tuple[float, float], dict]:
    topo = Topology(ports=[PortConfig(f"p{i}", type="replay") for i in range(1, ports + 1)])
    dp = build_dataplane(topo)
    def discard(batch: list[Frame], now_ns: int) -> None:
        pass
    for n in dp.switch.ports:
        dp.graph.attach_egress(dp.switch, n, n, discard)
    warm, batches = build_traffic(ports, macs, frames, batch)
    now = 1_000_000_000
    for p, f in warm:
        dp.graph.push(p, [f], now)
    push = dp.graph.push
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for p, b in batches:
            push(p, b, now)
        times.append(time.perf_counter_ns() - t0)
    snap = dp.graph.snapshot()
    return _rates(frames, times), snap


def _rates(frames: int, times: list[int]) -> tuple[float, float]:
    """(best, median) frames per second."""
    return frames / (min(times) / 1e9), frames / (statistics.median(times) / 1e9)


def run_floor(ports: int, macs: int, frames: int, batch: int, rounds: int) -> tuple[float, float]:
    """The peer: bare learn + lookup with one dict per frame, no counters, no VLANs."""
    warm, batches = build_traffic(ports, macs, frames, batch)
    table: dict[bytes, list[int]] = {}
    for p, f in warm:
        table[f.data[6:12]] = [p, 0]
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for p, b in batches:
            out: dict[int, list[Frame]] = {}
            for f in b:
                d = f.data
                e = table.get(d[6:12])
                if e is not None and e[0] == p:
                    e[1] = 1
                else:
                    table[d[6:12]] = [p, 1]
                o = table.get(d[0:6])
                if o is not None:
                    out.setdefault(o[0], []).append(f)
        times.append(time.perf_counter_ns() - t0)
    return _rates(frames, times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench switch", description=__doc__.split("\n")[0])
    ap.add_argument("--ports", type=int, default=8, help="switch ports (default 8)")
    ap.add_argument("--macs", type=int, default=1000, help="hosts, spread round-robin over the ports (default 1000)")
    ap.add_argument("--frames", type=int, default=8192, help="frames in the traffic set (default 8192)")
    ap.add_argument("--batch", type=int, default=64, help="frames per push, per ingress port (default 64)")
    ap.add_argument("--rounds", type=int, default=30, help="repetitions of the traffic set (default 30)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    a = ap.parse_args(argv)
    if a.ports < 2 or a.macs < 2 or a.frames < 1 or a.batch < 1:
        ap.error("need --ports >= 2, --macs >= 2, --frames >= 1, --batch >= 1")
    pps, snap = run_switch(a.ports, a.macs, a.frames, a.batch, a.rounds)
    floor = run_floor(a.ports, a.macs, a.frames, a.batch, a.rounds)
    sw = snap["elements"]["br0"]
    print(f"learning switch: {a.ports} ports, {a.macs} MACs, 64-byte frames, batch {a.batch}, "
          f"{a.frames} frames x {a.rounds} rounds")
    for label, (best, med) in (("vswitch pipeline", pps), ("bare dict floor ", floor)):
        print(f"  {label}: best {best / 1e6:6.3f} Mpps ({1e9 / best:6.1f} ns/frame), "
              f"median {med / 1e6:6.3f} Mpps ({1e9 / med:6.1f} ns/frame)")
    print(f"  ratio vswitch/floor (median): {pps[1] / floor[1]:.2f}")
    print(f"  check: forwarded={sw['forwarded']} flooded={sw['flooded']} "
          f"drops={sum(sw['drops'].values())} fdb={sw['fdb']['current_entries']}")
    if a.json:
        def figures(best: float, med: float) -> dict[str, float]:
            return {"best_pps": best, "median_pps": med, "best_ns_per_frame": 1e9 / best,
                    "median_ns_per_frame": 1e9 / med}
        Path(a.json).write_text(json.dumps({
            "benchmark": "switch", "dataplane": compiled.status(),
            "settings": {"ports": a.ports, "macs": a.macs, "frames": a.frames, "batch": a.batch, "rounds": a.rounds},
            "pipeline": figures(*pps), "floor": figures(*floor), "ratio_to_floor_median": pps[1] / floor[1],
            "check": {"forwarded": sw["forwarded"], "flooded": sw["flooded"], "drops": sum(sw["drops"].values()),
                      "fdb_entries": sw["fdb"]["current_entries"]}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
