"""Benchmark: the project's SP, WFQ, DRR, token bucket and RED against ns.py's, on one workload.

ns.py (the ``ns.py`` package, a simpy discrete-event simulator) is the Python
peer the project's policies are checked against.  One small workload for
every policy: ``--flows`` constant-rate flows of ``--size``-byte packets
(flow i offers ``--offered[i]`` bit/s, first packet one gap after t=0) into
one scheduler feeding a ``--link`` bit/s link, for ``--seconds``; what each
flow got is what reached the sink by then.  The same arrival times go
through ns.py's element and through the project's (`build_scheduler` in a
core `Queue`, driven by a small discrete-event loop here: a frame starts when
the link is free and the queue lets one go, and reaches the sink one
transmission time later, as ns.py's servers and ports send).

- ``sp``: ns.py ``SPServer`` (higher priority value first) against ``prio``
  with the same order as bands (``classify=port``, a map).
- ``wfq``, ``drr``: ns.py ``WFQServer`` / ``DRRServer`` with ``--weights``
  against ``wfq`` / ``drr`` (DRR quantum 1500 B x weight, as ns.py's).
- ``tbf``: flow 0 alone through ns.py ``TokenBucketShaper`` (``--tb-rate``,
  ``--tb-bucket`` bytes; no link after it) against ``tbf`` with the same rate
  and burst.
- ``red``: ns.py ``REDPort`` (packet thresholds, ``weight_factor``) against
  ``red`` with the same thresholds in bytes (x size), probability and EWMA
  weight.  Not the same algorithm: ns.py drops at ``max_probability`` above
  the max threshold and draws each drop independently; Linux's RED (the
  project's) drops every frame above max and spaces its drops by a count.
  The figures compared are the drop totals and the shares.

ns.py's scheduler buffers are unbounded; the project's are given room for
the whole run (``limit`` 100000 packets) so neither drops in sp/wfq/drr/tbf.

    vswitch-bench nspy [--policies sp,wfq,drr,tbf,red] [--link 10mbit] [--offered 6mbit,6mbit,3mbit]
                       [--weights 1,2,1] [--size 1000] [--seconds 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from vswitch.core.frame import Frame
from vswitch.core.policies import build_scheduler
from vswitch.core.policies.params import parse_rate
from vswitch.core.queues import Queue

POLICIES = ("sp", "wfq", "drr", "tbf", "red")


def arrivals(offered: list[int], size: int, seconds: float) -> list[tuple[int, int]]:
    """(time ns, flow) of every packet: flow i every size*8/offered[i] s from one gap on."""
    out: list[tuple[int, int]] = []
    end = int(seconds * 1e9)
    for fl, rate in enumerate(offered):
        gap = size * 8 * 10**9 / rate
        k = 1
        while k * gap <= end:
            out.append((round(k * gap), fl))
            k += 1
    out.sort()
    return out


# -- the project's side ------------------------------------------------------------------------
def project_run(kind: str, params: dict[str, Any], trace: list[tuple[int, int]], size: int, link: int | None,
                seconds: float, nflows: int) -> dict[str, Any]:
    """The trace through ``kind``; per-flow packets at the sink by ``seconds``, the drops."""
    q = Queue(kind, build_scheduler(kind, **params))
    end = int(seconds * 1e9)
    data = bytes(size)
    tx_ns = size * 8 * 10**9 // link if link else 0
    got = [0] * nflows
    free_at = now = 0
    i, n = 0, len(trace)
    t0 = time.perf_counter()
    while True:
        t_arr = trace[i][0] if i < n else None
        start = None
        if len(q):
            t = max(free_at, now)
            ready = q.next_eligible_ns(t)
            if ready is not None:
                start = max(ready, t)
        if start is not None and (t_arr is None or start < t_arr):
            now = start
            for f in q.pull(1, start):
                free_at = start + tx_ns
                if free_at <= end:
                    got[f.in_port - 1] += 1
            continue
        if t_arr is None:
            break
        f = Frame(data)
        f.in_port = trace[i][1] + 1
        now = t_arr
        q.push("in", [f], t_arr)
        i += 1
    wall = time.perf_counter() - t0
    return {"packets": got, "dropped": sum(q.drops.values()), "wall_s": wall}


def project_params(policy: str, a: argparse.Namespace, nflows: int) -> tuple[str, dict[str, Any]]:
    ports = {fl + 1: fl for fl in range(nflows)}
    if policy == "sp":
        # ns.py: the highest priority value first; prio: band 0 first.
        order = sorted(range(nflows), key=lambda fl: -a.prio[fl])
        return "prio", {"bands": nflows, "classify": "port", "map": {fl + 1: order.index(fl) for fl in ports.values()},
                        "limit": 100_000}
    if policy == "wfq":
        return "wfq", {"weights": a.weights, "classify": "port", "map": ports, "limit": 100_000}
    if policy == "drr":
        # ns.py's quantum: 1500 B x weight / the smallest weight.
        m = min(a.weights)
        if all(w % m == 0 for w in a.weights):
            return "drr", {"quantum": 1500, "weights": [w // m for w in a.weights], "classify": "port",
                           "map": ports, "limit": 100_000}
        return "drr", {"quantum": 1500 // m, "weights": list(a.weights), "classify": "port", "map": ports,
                       "limit": 100_000}
    if policy == "tbf":
        return "tbf", {"rate": a.tb_rate, "burst": a.tb_bucket, "limit": 100_000 * a.size}
    return "red", {"limit": a.red_limit * a.size, "min": a.red_min * a.size, "max": a.red_max * a.size,
                   "probability": a.red_p, "ewma_log": a.red_wlog, "avpkt": a.size, "seed": a.seed}


# -- ns.py's side ------------------------------------------------------------------------------
def nspy_run(policy: str, a: argparse.Namespace, offered: list[int], link: int, seconds: float) -> dict[str, Any]:
    import simpy
    from ns.packet.dist_generator import DistPacketGenerator
    from ns.packet.sink import PacketSink

    random.seed(a.seed)
    env = simpy.Environment()
    sink = PacketSink(env, rec_arrivals=False, rec_waits=False, rec_flow_ids=True)
    nflows = len(offered)
    flows = range(1 if policy == "tbf" else nflows)
    dropped: Any = lambda: 0          # noqa: E731
    if policy == "sp":
        from ns.scheduler.sp import SPServer
        el: Any = SPServer(env, link, {fl: a.prio[fl] for fl in flows})
    elif policy == "wfq":
        from ns.scheduler.wfq import WFQServer
        el = WFQServer(env, link, list(a.weights))
    elif policy == "drr":
        from ns.scheduler.drr import DRRServer
        el = DRRServer(env, link, list(a.weights))
    elif policy == "tbf":
        from ns.shaper.token_bucket import TokenBucketShaper
        el = TokenBucketShaper(env, a.tb_rate, a.tb_bucket)
    else:
        from ns.port.red_port import REDPort
        el = REDPort(env, link, a.red_max, a.red_min, a.red_p, weight_factor=a.red_wlog, qlimit=a.red_limit)
        dropped = lambda: el.packets_dropped        # noqa: E731
    el.out = sink
    for fl in flows:
        gap = a.size * 8 / offered[fl]
        g = DistPacketGenerator(env, f"flow{fl}", lambda gap=gap: gap, lambda: a.size, flow_id=fl)
        g.out = el
    t0 = time.perf_counter()
    env.run(until=seconds)
    wall = time.perf_counter() - t0
    got = [sink.packets_received.get(fl, 0) for fl in range(nflows)]
    return {"packets": got, "dropped": int(dropped()), "wall_s": wall}


def compare(policy: str, a: argparse.Namespace) -> dict[str, Any]:
    offered = list(a.offered)
    if policy == "tbf":
        offered = offered[:1]
    trace = arrivals(offered, a.size, a.seconds)
    kind, params = project_params(policy, a, len(offered))
    link = None if policy == "tbf" else a.link
    p = project_run(kind, params, trace, a.size, link, a.seconds, len(offered))
    n = nspy_run(policy, a, offered, a.link, a.seconds)
    out: dict[str, Any] = {"policy": policy, "project_kind": kind, "offered_packets": len(trace)}
    for name, r in (("project", p), ("nspy", n)):
        total = sum(r["packets"])
        out[name] = {"packets": r["packets"], "dropped": r["dropped"],
                     "mbit": [x * a.size * 8 / a.seconds / 1e6 for x in r["packets"]],
                     "shares": [x / total if total else 0.0 for x in r["packets"]],
                     "packets_per_s": len(trace) / r["wall_s"] if r["wall_s"] else 0.0}
    out["max_share_difference"] = max(abs(x - y) for x, y in
                                      zip(out["project"]["shares"], out["nspy"]["shares"], strict=True))
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vswitch-bench nspy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--policies", default=",".join(POLICIES),
                    help=f"comma-separated, of {', '.join(POLICIES)} (default {','.join(POLICIES)})")
    ap.add_argument("--link", default="10mbit", help="the link's rate (default 10mbit)")
    ap.add_argument("--offered", default="6mbit,6mbit,3mbit", help="each flow's rate (default 6mbit,6mbit,3mbit)")
    ap.add_argument("--weights", default="1,2,1", help="wfq/drr weights per flow (default 1,2,1)")
    ap.add_argument("--prio", default="2,1,3", help="sp: ns.py priority per flow, higher first (default 2,1,3)")
    ap.add_argument("--size", type=int, default=1000, help="packet size in bytes (default 1000)")
    ap.add_argument("--seconds", type=float, default=2.0, help="simulated time (default 2)")
    ap.add_argument("--tb-rate", default="4mbit", help="tbf: the bucket's rate (default 4mbit)")
    ap.add_argument("--tb-bucket", type=int, default=10_000, help="tbf: the bucket in bytes (default 10000)")
    ap.add_argument("--red-min", type=int, default=10, help="red: min threshold, packets (default 10)")
    ap.add_argument("--red-max", type=int, default=40, help="red: max threshold, packets (default 40)")
    ap.add_argument("--red-p", type=float, default=0.1, help="red: max probability (default 0.1)")
    ap.add_argument("--red-wlog", type=int, default=4, help="red: EWMA weight 2^-n (default 4)")
    ap.add_argument("--red-limit", type=int, default=60, help="red: the queue's limit, packets (default 60)")
    ap.add_argument("--seed", type=int, default=1, help="RED's random seed (default 1)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    return ap


def parse(argv: list[str] | None, ap: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """The workload's arguments, checked; ``ap`` a parser that extends `parser()`'s (default it)."""
    ap = ap if ap is not None else parser()
    a = ap.parse_args(argv)
    try:
        a.link = parse_rate(a.link)
        a.offered = [parse_rate(x) for x in a.offered.split(",")]
        a.tb_rate = parse_rate(a.tb_rate)
        a.weights = [int(x) for x in a.weights.split(",")]
        a.prio = [int(x) for x in a.prio.split(",")]
    except ValueError as e:
        ap.error(str(e))
    a.policies = [p for p in a.policies.split(",") if p]
    bad = [p for p in a.policies if p not in POLICIES]
    if bad:
        ap.error(f"--policies: unknown {', '.join(bad)} (known: {', '.join(POLICIES)})")
    if len(a.weights) != len(a.offered) or len(a.prio) != len(a.offered) or min(a.weights) < 1:
        ap.error("--weights and --prio need one value per --offered flow, weights >= 1")
    if a.size < 64 or a.seconds <= 0 or not 0 < a.red_min < a.red_max <= a.red_limit:
        ap.error("need --size >= 64, --seconds > 0, 0 < --red-min < --red-max <= --red-limit")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    try:
        import ns  # noqa: F401
    except ImportError as e:
        print(f"nspy: ns.py is not installed ({e}): .venv/bin/pip install ns.py")
        return 2
    print(f"nspy: {len(a.offered)} flows offering {', '.join(f'{x / 1e6:g}' for x in a.offered)} Mbit/s of "
          f"{a.size} B packets into {a.link / 1e6:g} Mbit/s for {a.seconds} s (tbf: flow 0 alone)")
    print(f"  {'policy':7} {'':8} {'Mbit/s per flow':>26} {'shares':>22} {'dropped':>8} {'packets/s':>10}")
    results = []
    for policy in a.policies:
        r = compare(policy, a)
        results.append(r)
        for name in ("project", "nspy"):
            x = r[name]
            print(f"  {policy:7} {name:8} {' '.join(f'{m:8.3f}' for m in x['mbit']):>26} "
                  f"{' '.join(f'{s:6.3f}' for s in x['shares']):>22} {x['dropped']:8} {x['packets_per_s']:10.0f}")
        print(f"  {'':7} largest share difference {r['max_share_difference']:.4f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"benchmark": "nspy", "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
