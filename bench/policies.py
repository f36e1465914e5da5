"""Benchmark: cost per frame of each queue policy (enqueue + dequeue through a core Queue).

Offline, no I/O, one core.  For each policy a `Queue` is built with
`build_scheduler` (a few parameters set where the kind needs them: the
shapers shape at the link rate, HTB splits it between two leaves, RED's
thresholds sit inside the backlog), ``--flows`` UDP flows of ``--size``-byte
frames enter on 8 ports with varied DSCP, and the queue is first filled to a
standing backlog of ``--backlog`` frames (not timed).  Then every round
pushes ``--batch`` frames and pulls ``--batch`` at the same model time, model
time moving by the batch's transmission time at ``--link``: the state a
loaded port's queue is in (CoDel and fq_codel see sojourn times of
backlog x frame time and drop as they would).  Timed: ``Queue.push`` and
``Queue.pull`` (the scheduler's enqueue and dequeue, the queue's counters,
the AQM's drops), divided by the frames offered.  The frames offered cycle
through ``--pool`` distinct frames, so the figure is the policy's cost, not
that of cache misses over ``--frames`` cold frames (a queue's working set is
its backlog).  Each run reports wall-clock time and the thread's CPU
time (``time.thread_time_ns``: what the loop cost on its core, without the
time it waited for the core on a shared machine).  The policer (an element,
not a queue) is timed on ``push`` alone, metering at half the link rate.

    python -m bench.policies [--kinds fq_codel,drr,...] [--frames 200000] [--batch 64]
                             [--pool 4096] [--backlog 1000] [--flows 64] [--size 1000]
                             [--link 1gbit] [--repeat 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import time
from pathlib import Path
from typing import Any

from vswitch import compiled
from vswitch.core.element import Element
from vswitch.core.frame import Frame
from vswitch.core.policies import KINDS, build_policer, build_scheduler
from vswitch.core.policies.params import parse_rate
from vswitch.core.queues import Queue

PORTS = 8


def traffic(nflows: int, size: int, n: int) -> list[Frame]:
    """``n`` IPv4/UDP frames of ``size`` bytes from ``nflows`` flows (round robin), on 8 ports,
    DSCP varied (so priority schedulers see all bands), half of them ECN-capable."""
    out = []
    for i in range(n):
        fl = i % nflows
        tos = ((fl % 8) * 8 << 2) | (2 if fl % 2 else 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, tos, size - 14, 0, 0, 64, 17, 0,
                         bytes([10, 0, fl >> 8, fl & 0xFF]), bytes([10, 1, 0, 1]))
        udp = struct.pack("!HHHH", 1024 + fl, 5001, size - 34, 0)
        f = Frame(b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip + udp + bytes(size - 42))
        f.in_port = 1 + fl % PORTS
        out.append(f)
    return out


def params_for(kind: str, link: int, size: int, backlog: int, batch: int) -> dict[str, Any]:
    """What the benchmark sets for ``kind`` (its defaults otherwise).  The shapers' buckets hold
    two batches: the benchmark pulls once per batch time, not at each frame's own time as a
    driver woken by the queue's deadlines would."""
    burst = 2 * batch * size
    if kind == "tbf":
        return {"rate": link, "burst": burst, "limit": 2 * backlog * size}
    if kind == "htb":
        return {"classes": [{"name": "root", "rate": link, "burst": burst, "cburst": burst},
                            {"name": "a", "parent": "root", "rate": link // 2, "ceil": link, "burst": burst,
                             "cburst": burst},
                            {"name": "b", "parent": "root", "rate": link // 2, "ceil": link, "burst": burst,
                             "cburst": burst}],
                "map": {p: "a" if p % 2 else "b" for p in range(1, PORTS + 1)}, "default": "b"}
    if kind == "red":
        return {"limit": 2 * backlog * size, "min": backlog * size // 4, "max": backlog * size, "ecn": True}
    if kind == "bfifo":
        return {"limit": 2 * backlog * size}
    if kind in ("fifo", "pfifo", "pfifo_head_drop", "pfifo_fast", "prio", "rr", "wrr", "drr", "wfq"):
        return {"limit": 2 * backlog}
    if kind == "codel":
        return {"limit": 2 * backlog}
    return {}


class _Sink(Element):
    OUTPUTS = ()

    def push(self, inp: Any, batch: list[Frame], now_ns: int) -> None:
        pass


def batches_of(frames: list[Frame], n: int, batch: int, start: int) -> list[list[Frame]]:
    """``n`` frames from ``frames`` taken in a cycle from ``start``, in batches."""
    k = len(frames)
    return [[frames[(start + i + j) % k] for j in range(min(batch, n - i))] for i in range(0, n, batch)]


def run_queue(kind: str, frames: list[Frame], args: argparse.Namespace, link: int) -> dict[str, Any]:
    q = Queue(kind, build_scheduler(kind, **params_for(kind, link, args.size, args.backlog, args.batch)))
    frame_ns = args.size * 8 * 10**9 // link
    now = 0
    pre = frames[: args.backlog]
    q.push("in", pre, now)
    batches = batches_of(frames, args.frames, args.batch, args.backlog)
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    push, pull, b = q.push, q.pull, args.batch
    t0, c0 = clock(), cpu()
    for batch in batches:
        now += frame_ns * len(batch)
        push("in", batch, now)
        pull(b, now)
    c1, t1 = cpu(), clock()
    offered = args.frames
    return {"ns_per_frame": (t1 - t0) / offered, "cpu_ns_per_frame": (c1 - c0) / offered, "offered": offered,
            "sent": q.counters["sent_packets"],
            "dropped": sum(q.drops.values()), "backlog": q.backlog_packets}


def run_policer(frames: list[Frame], args: argparse.Namespace, link: int) -> dict[str, Any]:
    pol = build_policer("policer", cir=link // 2, cbs=2 * args.batch * args.size, ebs=2 * args.batch * args.size)
    frame_ns = args.size * 8 * 10**9 // link
    batches = batches_of(frames, args.frames, args.batch, 0)
    now = 0
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    t0, c0 = clock(), cpu()
    for batch in batches:
        now += frame_ns * len(batch)
        pol.push("in", batch, now)
    c1, t1 = cpu(), clock()
    c = pol.counters
    return {"ns_per_frame": (t1 - t0) / args.frames, "cpu_ns_per_frame": (c1 - c0) / args.frames,
            "offered": args.frames, "sent": sum(pol.unconnected.values()),
            "dropped": sum(pol.drops.values()), "green": c["green_packets"], "yellow": c["yellow_packets"],
            "red": c["red_packets"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench policies", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default=",".join([*KINDS, "policer"]),
                    help="policies to time, comma-separated (default: every kind and the policer)")
    ap.add_argument("--frames", type=int, default=200_000, help="frames offered per run (default 200000)")
    ap.add_argument("--batch", type=int, default=64, help="frames per push and per pull (default 64)")
    ap.add_argument("--pool", type=int, default=4096,
                    help="distinct frames, offered in a cycle (default 4096: a queue's working set, not "
                    "--frames' worth of cold memory)")
    ap.add_argument("--backlog", type=int, default=1000, help="standing backlog in frames (default 1000)")
    ap.add_argument("--flows", type=int, default=64, help="UDP flows (default 64)")
    ap.add_argument("--size", type=int, default=1000, help="frame size in bytes, >= 64 (default 1000)")
    ap.add_argument("--link", default="1gbit", help="model link rate, tc units (default 1gbit)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per policy; median and best reported (default 5)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    a = ap.parse_args(argv)
    kinds = [k for k in a.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KINDS and k != "policer"]
    if unknown:
        ap.error(f"--kinds: unknown {', '.join(unknown)} (known: {', '.join([*KINDS, 'policer'])})")
    if a.frames < a.backlog + a.batch or a.batch < 1 or a.flows < 1 or a.size < 64 or a.repeat < 1:
        ap.error("need --frames >= --backlog + --batch, --batch >= 1, --flows >= 1, --size >= 64, --repeat >= 1")
    try:
        link = parse_rate(a.link)
    except ValueError as e:
        ap.error(f"--link {a.link}: {e}")
    frames = traffic(a.flows, a.size, max(a.pool, a.backlog + a.batch))
    pristine = [f.data for f in frames]
    print(f"policies: dataplane {compiled.status()}; {a.frames} frames of {a.size} B, {a.flows} flows on "
          f"{PORTS} ports, batch {a.batch}, standing backlog {a.backlog}, link {a.link}, {a.repeat} runs each")
    print(f"  {'kind':16} {'median ns/frame':>16} {'best':>8} {'best cpu':>9} {'sent':>8} {'dropped':>8}")
    results: dict[str, Any] = {}
    for kind in kinds:
        runs = []
        for _ in range(a.repeat):
            for f, d in zip(frames, pristine, strict=True):     # undo any ECN mark of the last run
                f.data = d
            runs.append(run_policer(frames, a, link) if kind == "policer" else run_queue(kind, frames, a, link))
        med = statistics.median(r["ns_per_frame"] for r in runs)
        best = min(r["ns_per_frame"] for r in runs)
        best_cpu = min(r["cpu_ns_per_frame"] for r in runs)
        last = runs[-1]
        results[kind] = {"median_ns_per_frame": med, "best_ns_per_frame": best, "best_cpu_ns_per_frame": best_cpu,
                         **last}
        print(f"  {kind:16} {med:16.0f} {best:8.0f} {best_cpu:9.0f} {last['sent']:8} {last['dropped']:8}")
    if a.json:
        Path(a.json).write_text(json.dumps({
            "benchmark": "policies", "dataplane": compiled.status(),
            "settings": {"frames": a.frames, "pool": len(frames), "batch": a.batch, "backlog": a.backlog,
                         "flows": a.flows, "size": a.size, "link": link, "repeat": a.repeat},
            "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
