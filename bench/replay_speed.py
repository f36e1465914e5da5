"""``vswitch-bench replay-speed``: offline replay's frames/s end to end from the pcap file.

A 64-byte trace (``vswitch-bench gen``: 8 guests, every frame from the wire to a guest at
10 GbE line-rate spacing, so each batch is a run of one port's frames) is replayed as
``vswitch-bench replay --map-from`` replays it: open the file, stream its records, push them
through the graph (the learning switch in software mode; the emulated 82599 sorting into
the guests' VMDq pools, its rings, NAPI polls and the pools' egress in ``--modes vmdq``),
egress counted (``--egress``: written to per-port pcaps too), deadlines flushed.  Each run is
a fresh process, compiled (``make compile``) and interpreted (``VSWITCH_PURE=1``), the cases
interleaved, ``--runs`` rounds; the best and the median are reported, with each process's
peak RSS (``ru_maxrss``).  ``--mixed`` adds the generator's default mix (half east-west: the
ingress port changes almost every frame, so batches are about one frame long).

Peers measured in the same run, as the project's benchmarks do: dpkt's pcap reader alone
(``dpkt.pcap.Reader`` over the same file, doing nothing with the frames), and, when the
``ns.py`` package is importable (``pip install ns.py``), ns.py's packets/s on the nearest
workload it has (a ``DistPacketGenerator`` of 64-byte packets at the same spacing -> a
10 Gb/s ``Port`` -> a ``PacketSink``); if it cannot run the output says why.

Rates are frames per CPU second of the replaying process (``time.process_time``), so a
machine shared with other work skews them less than wall time would; the wall-time rate is
shown beside.  ``--trace FILE`` replays a given trace instead (with its manifest beside it,
FILE with the suffix .json, for every mode it is given for).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGETS = {"software": 2.0, "vmdq": 1.0}     # Mpps, compiled (issue 12 item 8)


def _gen(path: Path, frames: int, nic: str, mixed: bool) -> None:
    from bench.gen import main as gen_main
    args = [str(path), "-q", "--guests", "8", "--frames", str(frames), "--pps", "14880952"]
    if not mixed:
        args += ["--east-west", "0", "--inbound", "1"]
    if nic != "none":
        args += ["--nic", nic]
    if gen_main(args) != 0:
        raise SystemExit(f"replay-speed: vswitch-bench gen {' '.join(args)} failed")


# -- the measured processes ------------------------------------------------------------------------

def _child_replay(trace: str, batch: int, egress: str | None) -> dict[str, Any]:
    from bench.gen_sidecar import load_port_map
    from vswitch import compiled
    from vswitch.drivers.replay import ReplayDriver, SourceMacAssigner, records_by_source_mac
    from vswitch.topology import build_dataplane, load_topology

    pm = load_port_map(Path(trace).with_suffix(".json"))
    topo = load_topology(pm.topology) if pm.topology is not None else None
    assert topo is not None, "the manifest names no topology"
    dp = build_dataplane(topo)
    assign = SourceMacAssigner(list(dp.switch.ports), {m: dp.numbers[p] for m, p in pm.macs.items()},
                               dp.numbers[pm.default_port])
    c0, w0 = time.process_time(), time.perf_counter()
    res = ReplayDriver(dp, out_dir=egress, batch=batch).run(records_by_source_mac(trace, assign))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    snap = dp.graph.snapshot()
    tx = sum(p["tx_packets"] for p in snap["ports"].values())
    return {"frames": res.frames, "cpu_s": cpu, "wall_s": wall, "tx_packets": tx, "error": res.error,
            "build": compiled.status(), "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def _child_dpkt(trace: str) -> dict[str, Any]:
    import dpkt
    c0, w0 = time.process_time(), time.perf_counter()
    n = 0
    with open(trace, "rb") as f:
        for _ts, _buf in dpkt.pcap.Reader(f):
            n += 1
    return {"frames": n, "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0,
            "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def _child_nspy(packets: int) -> dict[str, Any]:
    try:
        import simpy
        from ns.packet.dist_generator import DistPacketGenerator
        from ns.packet.sink import PacketSink
        from ns.port.port import Port
    except Exception as e:                                       # noqa: BLE001 - reported, not hidden
        return {"error": f"ns.py cannot be imported ({type(e).__name__}: {e}); `pip install ns.py` into the venv"}
    gap = 64 * 8 * 1.05 / 10e9      # 64 B at 10 Gb/s with its preamble and gap: 67.2 ns
    env = simpy.Environment()
    gen = DistPacketGenerator(env, "gen", lambda: gap, lambda: 64, flow_id=0)
    port = Port(env, rate=10e9, qlimit=512)
    sink = PacketSink(env, rec_arrivals=False, rec_waits=False, rec_flow_ids=False)
    gen.out = port
    port.out = sink
    c0, w0 = time.process_time(), time.perf_counter()
    env.run(until=packets * gap)
    got = sum(sink.packets_received.values())
    return {"frames": got, "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0}


def _child(argv: list[str]) -> int:
    from vswitch import compiled
    compiled.install()            # before the dataplane is imported: compiled, or VSWITCH_PURE=1
    kind = argv[0]
    if kind == "replay":
        out = _child_replay(argv[1], int(argv[2]), argv[3] if len(argv) > 3 else None)
    elif kind == "dpkt":
        out = _child_dpkt(argv[1])
    else:
        out = _child_nspy(int(argv[1]))
    print(json.dumps(out))
    return 0


def _run(args: list[str], pure: bool = False) -> dict[str, Any]:
    env = dict(os.environ)
    env["VSWITCH_PURE"] = "1" if pure else "0"
    r = subprocess.run([sys.executable, "-m", "bench.replay_speed", "--child", *args], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- the benchmark ---------------------------------------------------------------------------------

def _mpps(r: dict[str, Any], key: str = "cpu_s") -> float:
    return r["frames"] / r[key] / 1e6 if r.get(key) else 0.0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return _child(argv[1:])
    ap = argparse.ArgumentParser(prog="vswitch-bench replay-speed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="frames in each generated trace (default 1000000)")
    ap.add_argument("--trace", help="replay this trace (its manifest beside it) instead of generating one")
    ap.add_argument("--modes", default="software,vmdq", help="software, vmdq or both (default both)")
    ap.add_argument("--builds", default="compiled,pure", help="compiled, pure or both (default both)")
    ap.add_argument("--runs", type=int, default=3, help="rounds, best and median reported (default 3)")
    ap.add_argument("--batch", type=int, default=64, help="frames per batch (default 64)")
    ap.add_argument("--mixed", action="store_true", help="also the default mix (half east-west)")
    ap.add_argument("--egress", action="store_true", help="write the per-port egress pcaps too")
    ap.add_argument("--nspy-packets", type=int, default=200_000, help="ns.py packets to simulate (default 200000)")
    ap.add_argument("--no-nspy", action="store_true", help="skip ns.py")
    ap.add_argument("--dir", help="where the traces go (default: a temporary directory, removed)")
    ap.add_argument("--json", help="write every run's figures as JSON here")
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    builds = [b for b in args.builds.split(",") if b]
    for m in modes:
        if m not in TARGETS:
            ap.error(f"--modes {m!r}: software or vmdq")
    for b in builds:
        if b not in ("compiled", "pure"):
            ap.error(f"--builds {b!r}: compiled or pure")
    from vswitch.compiled import build_state
    if "compiled" in builds and build_state() != "compiled":
        print(f"replay-speed: no current mypyc build ({build_state()}): run `make compile`; "
              "the compiled rows are skipped")
        builds.remove("compiled")

    tmp = None
    if args.dir:
        work = Path(args.dir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="replay-speed-")
        work = Path(tmp.name)
    try:
        traces: dict[str, str] = {}
        for m in modes:
            for mixed in ([False, True] if args.mixed else [False]):
                key = f"{m}{' mixed' if mixed else ''}"
                if args.trace:
                    traces[key] = args.trace
                    continue
                path = work / f"{m}{'-mixed' if mixed else ''}-{args.frames}.pcap"
                if not path.exists():
                    print(f"generating {path} ({args.frames} frames of 64 B)", flush=True)
                    _gen(path, args.frames, "vmdq" if m == "vmdq" else "none", mixed)
                traces[key] = str(path)
        runs: dict[str, list[dict[str, Any]]] = {}
        first = next(iter(traces.values()))
        for r in range(args.runs):
            for key, trace in traces.items():
                for b in builds:
                    egress = [str(work / f"egress-{key.replace(' ', '-')}-{b}")] if args.egress else []
                    res = _run(["replay", trace, str(args.batch), *egress], pure=(b == "pure"))
                    runs.setdefault(f"{key} {b}", []).append(res)
            runs.setdefault("dpkt reader alone", []).append(_run(["dpkt", first]))
            if not args.no_nspy:
                runs.setdefault("ns.py gen->port->sink", []).append(_run(["nspy", str(args.nspy_packets)]))
            print(f"round {r + 1}/{args.runs} done", flush=True)
        _report(runs, traces, args)
        if args.json:
            Path(args.json).write_text(json.dumps({"traces": traces, "runs": runs}, indent=2) + "\n")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


def _report(runs: dict[str, list[dict[str, Any]]], traces: dict[str, str], args: argparse.Namespace) -> None:
    def best(rs: list[dict[str, Any]]) -> float:
        ok = [_mpps(r) for r in rs if not r.get("error")]
        return max(ok) if ok else 0.0
    dpkt_best = best(runs.get("dpkt reader alone", []))
    nspy = runs.get("ns.py gen->port->sink", [])
    nspy_best = best(nspy)
    print(f"\n64 B frames, {args.frames if not args.trace else 'the given'} per trace, batch {args.batch}, "
          f"best of {args.runs} (Mpps per CPU second of the process; wall-time rate beside)")
    print(f"{'case':34s} {'best':>7s} {'median':>7s} {'wall':>7s} {'peak RSS':>9s} {'x dpkt':>7s} {'x ns.py':>8s}")
    for case, rs in runs.items():
        errs = [r["error"] for r in rs if r.get("error")]
        ok = [r for r in rs if not r.get("error")]
        if not ok:
            print(f"{case:34s} cannot run: {errs[0] if errs else 'no result'}")
            continue
        rates = [_mpps(r) for r in ok]
        b = max(rates)
        wall = max(_mpps(r, "wall_s") for r in ok)
        rss = max(r.get("maxrss_kb", 0) for r in ok)
        rss_s = f"{rss / 1024:.0f} MiB" if rss else "-"
        xd = f"{b / dpkt_best:.2f}" if dpkt_best else "-"
        xn = f"{b / nspy_best:.1f}" if nspy_best else "-"
        print(f"{case:34s} {b:7.3f} {statistics.median(rates):7.3f} {wall:7.3f} {rss_s:>9s} {xd:>7s} {xn:>8s}")
        builds = {r["build"] for r in ok if "build" in r}
        if case.endswith(" compiled") and any(not b.startswith("compiled") for b in builds):
            print(f"{'':34s} (NOT compiled: {', '.join(sorted(builds))})")
        if errs:
            print(f"{'':34s} ({len(errs)} run(s) failed: {errs[0]})")
    if nspy and not nspy_best:
        print(f"ns.py: cannot run: {nspy[0].get('error')}")
    elif nspy:
        print(f"ns.py: {nspy_best * 1e6:,.0f} packets/s simulated (its nearest workload, not a pcap replay)")
    for case, rs in runs.items():
        mode = case.split(" ")[0]
        if case.endswith(" compiled") and " mixed" not in case and mode in TARGETS:
            b = best(rs)
            verdict = "met" if b >= TARGETS[mode] else "NOT met"
            print(f"target {mode} compiled >= {TARGETS[mode]:.1f} Mpps: {verdict} ({b:.3f})")


if __name__ == "__main__":
    raise SystemExit(main())
