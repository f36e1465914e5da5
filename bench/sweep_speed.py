"""Benchmark: the experiment runner's speed: a sweep's points per second on the local pool, and
its packets per second against ns.py's on the same workload, in the same run.

The workload is `bench.nspy_compare`'s (its defaults: ``--flows`` constant-rate
flows of ``--size``-byte packets, 6, 6 and 3 Mbit/s into a 10 Mbit/s link,
through SP, WFQ, DRR, a token bucket and RED with ns.py's parameters), written
as a kind ``queue`` experiment (bench/experiments/queue_kind.py: each flow a
source entering by its own port, the policy the bottleneck port's qdisc, the
discrete driver draining it at the link's rate), one named qdisc per policy.

1. **Points per second.**  The sweep (the policies x ``--seeds`` seeds) runs
   through `bench.experiments.cli.run_experiment` with ``--jobs`` 1 (inline)
   and each other ``--jobs`` (the local process pool), as ``vswitch-bench
   experiment FILE --jobs N`` does, outputs (CSV, Parquet, JSON, no plots) and
   all: points / wall-clock seconds.  The pool's figure includes starting its
   processes (spawn): a sweep of few points pays it in full.  The time the
   points' own runs took (their ``wall_s``, summed) is printed beside it: the
   rest is the runner's (starting, the outputs).
2. **Packets per second.**  Each policy's point through the runner's task
   (`bench.experiments.kinds.run_point`, what the pool and the Dask workers
   call) and through ns.py (`bench.nspy_compare.nspy_run`), one after the
   other in this process, ``--repeat`` times; for each the workload's offered
   packets over the best wall-clock time, and the ratio runner / ns.py.
   Each side's per-flow shares are printed too (they should agree: the test
   of that is tests/unit/test_nspy_compare.py).  tbf: ns.py's shaper has no
   link after it and one flow; the runner's has the link and that flow.

The runner builds a switch with a port per source and learns the sink, runs
each frame through the dataplane graph (the switch, the port's Queue and its
scheduler) and the discrete driver's event loop and records sojourn and
latency in HDR histograms: more per packet than ns.py's generator, scheduler
and sink, which is what the ratio measures.

    vswitch-bench sweep-speed [--jobs 1,2] [--seeds 2] [--seconds 2] [--repeat 3]
                              [--policies sp,wfq,drr,tbf,red] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import tomli_w

from bench import nspy_compare
from vswitch import compiled


def experiment_doc(a: argparse.Namespace, policies: list[str], seeds: int) -> dict[str, Any]:
    """The nspy workload as a kind ``queue`` experiment: one named qdisc per policy, an axis of them."""
    qdiscs: dict[str, Any] = {}
    for policy in policies:
        nflows = 1 if policy == "tbf" else len(a.offered)
        kind, params = nspy_compare.project_params(policy, a, nflows)
        if "map" in params:
            params = {**params, "map": {str(k): v for k, v in params["map"].items()}}
        qdiscs[policy] = {"kind": kind, **params}
    sources = {f"f{i}": {"rate": rate, "size": a.size} for i, rate in enumerate(a.offered)}
    return {
        "experiment": {"name": "sweep-speed", "description": "the nspy workload through each policy",
                       "kind": "queue", "seed": 1, "seeds": seeds},
        "traffic": {"duration": f"{a.seconds}s", "sources": sources},
        "policy": {"link": {"bandwidth": a.link, "qdisc": policies[0], "qdiscs": qdiscs}},
        "measure": {"percentiles": [50, 99]},
        "sweep": {"axes": {"policy.link.qdisc": policies}},
    }


def points_per_second(path: Path, out: Path, jobs: int) -> dict[str, Any]:
    from bench.experiments.cli import run_experiment
    from bench.experiments.spec import load_experiment
    exp = load_experiment(path)
    t0 = time.perf_counter()
    got = run_experiment(exp, out, jobs=jobs)
    wall = time.perf_counter() - t0
    if got["failed"]:
        raise RuntimeError(f"sweep-speed: points failed: {got['failed']}")
    with open(out / "points.jsonl") as fh:
        in_points = sum(json.loads(line)["wall_s"] for line in fh if line.strip())
    return {"jobs": jobs, "points": got["points"], "wall_s": wall, "points_per_s": got["points"] / wall,
            "in_points_s": in_points}


def tbf_only(doc: dict[str, Any], policy: str) -> dict[str, Any]:
    """The point's sources: ns.py's tbf run has flow 0 alone."""
    if policy != "tbf":
        return doc
    d = json.loads(json.dumps(doc))
    d["traffic"]["sources"] = {"f0": d["traffic"]["sources"]["f0"]}
    return d


def packets_per_second(a: argparse.Namespace, doc: dict[str, Any], policy: str, tmp: Path) -> dict[str, Any]:
    from bench.experiments.kinds import run_point
    from bench.experiments.spec import load_experiment
    d = tbf_only(doc, policy)
    d["sweep"] = {"axes": {"policy.link.qdisc": [policy]}}
    d["experiment"] = {**d["experiment"], "seeds": 1}
    path = tmp / f"pps-{policy}.toml"
    path.write_text(tomli_w.dumps(d))
    point = load_experiment(path).points[0]
    offered = a.offered[:1] if policy == "tbf" else list(a.offered)
    packets = len(nspy_compare.arrivals(offered, a.size, a.seconds))
    runner_s, nspy_s = [], []
    res: dict[str, Any] = {}
    ns: dict[str, Any] = {}
    for _ in range(a.repeat):
        res = run_point("queue", point.params, point.seed)
        runner_s.append(res["wall_s"])
        ns = nspy_compare.nspy_run(policy, a, offered, a.link, a.seconds)
        nspy_s.append(ns["wall_s"])
    m = res["metrics"]
    ntotal = sum(ns["packets"])
    r_pps, n_pps = packets / min(runner_s), packets / min(nspy_s)
    return {"policy": policy, "packets": packets, "runner_wall_s": min(runner_s), "nspy_wall_s": min(nspy_s),
            "runner_packets_per_s": r_pps, "nspy_packets_per_s": n_pps, "ratio": r_pps / n_pps,
            "runner_shares": [m[f"flow_f{i}_share"] for i in range(len(offered))],
            "nspy_shares": [x / ntotal if ntotal else 0.0 for x in ns["packets"]]}


def parser() -> argparse.ArgumentParser:
    ap = nspy_compare.parser()
    ap.prog = "vswitch-bench sweep-speed"
    ap.description = __doc__.split("\n\n")[0]
    ap.add_argument("--jobs", default="1,2", help="the local pool's sizes to time the sweep with (default 1,2)")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per policy in the sweep (default 2)")
    ap.add_argument("--repeat", type=int, default=3, help="packets/s: runs of each side, best taken (default 3)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    a = nspy_compare.parse(argv, ap)
    try:
        a.jobs = [int(x) for x in a.jobs.split(",") if x]
    except ValueError:
        ap.error(f"--jobs {a.jobs!r}: comma-separated integers")
    if not a.jobs or min(a.jobs) < 1 or a.seeds < 1 or a.repeat < 1:
        ap.error("need --jobs >= 1 each, --seeds >= 1, --repeat >= 1")
    try:
        import ns  # noqa: F401
    except ImportError as e:
        print(f"sweep-speed: ns.py is not installed ({e}): .venv/bin/pip install ns.py")
        return 2
    doc = experiment_doc(a, a.policies, a.seeds)
    print(f"sweep-speed: dataplane {compiled.status()}; the nspy workload ({len(a.offered)} flows of {a.size} B "
          f"into {a.link / 1e6:g} Mbit/s, {a.seconds} s simulated) through {', '.join(a.policies)}")
    results: dict[str, Any] = {"benchmark": "sweep-speed", "dataplane": compiled.status(), "sweep": [], "pps": []}
    with tempfile.TemporaryDirectory(prefix="vsw-sweep-speed-") as td:
        tmp = Path(td)
        path = tmp / "sweep.toml"
        path.write_text(tomli_w.dumps(doc))
        print(f"  sweep of {len(a.policies) * a.seeds} points (the policies x {a.seeds} seeds), local pool:")
        for j in a.jobs:
            r = points_per_second(path, tmp / f"out-j{j}", j)
            results["sweep"].append(r)
            print(f"    --jobs {j}: {r['points']} points in {r['wall_s']:.2f} s: {r['points_per_s']:.2f} points/s "
                  f"({r['in_points_s']:.2f} s inside the points' runs)")
        print(f"  packets/s, best of {a.repeat} (offered packets / wall): runner (kind queue) vs ns.py")
        print(f"    {'policy':7} {'packets':>8} {'runner':>10} {'ns.py':>10} {'ratio':>6}  shares runner / ns.py")
        for policy in a.policies:
            r = packets_per_second(a, doc, policy, tmp)
            results["pps"].append(r)
            shares = " ".join(f"{x:.3f}" for x in r["runner_shares"]) + " / " + \
                " ".join(f"{x:.3f}" for x in r["nspy_shares"])
            print(f"    {policy:7} {r['packets']:8} {r['runner_packets_per_s']:10.0f} {r['nspy_packets_per_s']:10.0f} "
                  f"{r['ratio']:6.2f}  {shares}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
