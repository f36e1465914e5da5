"""``vswitch-bench``: pcap replay, the demo, and the benchmarks.

Subcommands:

``replay``     push captures through a switch in virtual time (offline); with --live, send them onto an
               interface or into a vswitchd port in real time, tcpreplay-style (bench/live_replay.py).
``gen``        generate a trace of N guests and the wire (pcap/pcapng + topology + manifest).
``demo``       three guests (ARP, ping, a broadcast) through a 3-port switch.
``switch``     frames/s of the learning switch (see bench/switch_bench.py).
``nic-sorter`` cost per frame of the NIC model's VMDq sorter + ring enqueue.
``sriov``      cost per frame of the SR-IOV VF RX/TX paths (IOMMU on) against VMDq's.
``policies``   cost per frame of each queue policy (see bench/policies.py).
``tbf-kernel`` the project's tbf against the kernel's on a veth (see bench/tbf_kernel.py).
``nspy``       the project's SP, WFQ, DRR, token bucket, RED against ns.py's (bench/nspy_compare.py).
``peers``      vswitchd against the Linux bridge, vde_switch, a bare relay, optionally OVS (root; iperf3, vde2).
``replay-bench`` ``replay --live`` against Debian's tcpreplay on a veth (root; tcpreplay).
``experiment`` run an experiment file's sweep (locally or on Dask): tables, plots (bench/experiments/).
``replay-speed`` offline replay's Mpps end to end from a pcap, against dpkt's reader and ns.py.
``sweep-speed`` a sweep's points/s on the local pool; the runner's packets/s against ns.py's (bench/sweep_speed.py).

Exit status: 0 success; 1 a capture could not be (fully) read or was refused;
2 bad arguments or configuration, or a replay output that cannot be written.
"""

from __future__ import annotations

if __name__ == "__main__":          # run as a program: choose the dataplane build before importing it
    from vswitch import compiled as _compiled
    _compiled.install()

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from bench.gen_sidecar import load_port_map
from vswitch.core.frame import parse_mac
from vswitch.drivers.replay import (
    ReplayDriver,
    ReplayResult,
    SourceMacAssigner,
    records_by_source_mac,
    records_per_port,
)
from vswitch.graph_dot import to_dot
from vswitch.io.pcap import CaptureError, NotEthernet, read_capture
from vswitch.render import (
    fdb_table,
    make_console,
    port_counters_table,
    print_tables,
    switch_counters_table,
)
from vswitch.topology import ConfigError, PortConfig, Topology, build_dataplane, load_topology
from vswitch.views import fdb_view


class UsageError(Exception):
    pass


def _kv(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise UsageError(f"{what} {text!r}: expected NAME=VALUE")
    return key, value


def _topology(args: argparse.Namespace, names: list[str] | None) -> Topology:
    if args.config:
        topo = load_topology(args.config)
        if not topo.ports:
            raise ConfigError(f"{args.config}: no ports configured")
        if names:
            known = {p.name for p in topo.ports}
            for n in names:
                if n not in known:
                    raise UsageError(f"--port {n}=...: no port {n!r} in {args.config} "
                                     f"(ports: {', '.join(sorted(known))})")
        return topo
    if names:
        return Topology(ports=[PortConfig(n, type="replay") for n in names])
    if args.ports < 1:
        raise UsageError(f"--ports {args.ports}: need at least 1 port")
    return Topology(ports=[PortConfig(f"p{i}", type="replay") for i in range(1, args.ports + 1)])


def _err(text: str) -> None:
    """A refusal or error: one line on stderr, never wrapped (rich wraps stdout that is not a tty)."""
    print(text, file=sys.stderr)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _summary(res: ReplayResult, wall_s: float, snap: dict[str, Any], label: str) -> str:
    sw = next(iter(snap["elements"].values()))
    drops = {k: v for k, v in sw["drops"].items() if v}
    dropped = sum(drops.values())
    detail = f" ({', '.join(f'{k} {v}' for k, v in drops.items())})" if drops else ""
    rate = res.frames / wall_s if wall_s > 0 else 0.0
    span = f"capture spans {res.duration_ns / 1e9:.3f} s"
    if res.out_of_order:
        span += f"; {_count(res.out_of_order, 'record')} out of order (time not moved back)"
    notes = "".join(f"; {n}" for n in res.notes)
    return (f"{label}: replayed {_count(res.frames, 'frame')} ({res.bytes} bytes) in {wall_s:.3f} s wall "
            f"({rate:,.0f} frames/s; {span}): "
            f"forwarded {sw['forwarded']}, flooded {sw['flooded']}, dropped {dropped}{detail}{notes}")


def _replay_one(args: argparse.Namespace, topo: Topology, records_for, label: str,
                out_dir: Path | None, console: Console, tables: bool,
                graph_dot: TextIO | None = None) -> tuple[int, dict[str, Any]]:
    dp = build_dataplane(topo)
    try:
        records = records_for(dp)        # opened and checked up front; this reopens them
    except NotEthernet as e:
        _err(f"refused: {e}")
        return 1, {"error": str(e), "refused": True}
    except CaptureError as e:
        _err(f"error: {e}")
        return 1, {"error": str(e)}
    driver = ReplayDriver(dp, out_dir=out_dir, batch=args.batch)
    t0 = time.perf_counter()
    res = driver.run(records)
    wall = time.perf_counter() - t0
    snap = dp.graph.snapshot()
    if graph_dot is not None:                # the graph after the replay, its links' counts included
        graph_dot.write(to_dot(dp.graph.describe(), title=label))
    console.print(_summary(res, wall, snap, label), markup=False, highlight=False, soft_wrap=True)
    status = 0
    if res.error:
        before = ("no frame came before it" if not res.frames else
                  "the 1 frame before it was replayed" if res.frames == 1 else
                  f"the {res.frames} frames before it were replayed")
        _err(f"error: {res.error} ({before})")
        status = 1
    if tables:
        now = res.last_ts_ns or 0
        print_tables(fdb_table(fdb_view(dp.switch, now)), port_counters_table(snap["ports"]),
                     switch_counters_table(snap["elements"][dp.switch.name]),
                     console=console)
    out = {"frames": res.frames, "bytes": res.bytes, "duration_ns": res.duration_ns,
           "out_of_order": res.out_of_order, "skipped": res.skipped, "notes": res.notes,
           "error": res.error, "outputs": res.outputs, "counters": snap}
    return status, out


def _check_capture(path: str) -> None:
    """Open and check a capture's header now (CaptureError / NotEthernet), before any replay."""
    read_capture(path).close()


def _open_outputs(json_path: str | None, out_dirs: list[tuple[Path, list[str]]]) -> TextIO | None:
    """Make the --out directories and files and open --json before the replay, so that an
    unwritable path is refused before any work; what this made is removed again on a refusal."""
    made: list[Path] = []
    what = ""
    try:
        for d, names in out_dirs:
            what = f"--out {d}"
            for parent in [*reversed(d.parents), d]:
                if not parent.exists():
                    made.append(parent)
                    parent.mkdir()
            for name in names:
                p = d / f"{name}.pcap"
                if not p.exists():
                    made.append(p)
                open(p, "ab").close()
        if json_path is None:
            return None
        what = f"--json {json_path}"
        if not Path(json_path).exists():
            made.append(Path(json_path))
        return open(json_path, "a")  # noqa: SIM115 - written and closed after the replay
    except OSError as e:
        for p in reversed(made):
            with contextlib.suppress(OSError):
                p.rmdir() if p.is_dir() else p.unlink()
        where = f" {e.filename}" if e.filename and what.split(" ", 1)[1] != str(e.filename) else ""
        raise UsageError(f"{what}: cannot write{where}: {e.strerror}") from None


_LIVE_ONLY = ("iface", "socket", "multiplier", "pps", "mbps", "topspeed", "loop", "limit", "duration", "preload")


def cmd_replay(args: argparse.Namespace) -> int:
    if args.live:
        from bench.live_cli import live_options, run
        return run(live_options(args))
    given = [f"--{k}" for k in _LIVE_ONLY if getattr(args, k) not in (None, False)]
    if given:
        raise UsageError(f"{', '.join(given)}: only with --live (offline replay runs in the captures' own time)")
    console = make_console()
    fixed: dict[bytes, str] = {}
    pinned = None
    if args.map_from:
        if args.port:
            raise UsageError("--map-from places frames by source MAC: give captures, not --port NAME=FILE")
        pinned = load_port_map(args.map_from)
        fixed.update(pinned.macs)
        if not args.config:
            if pinned.topology is None:
                raise UsageError(f"--map-from {args.map_from}: the manifest names no topology; give --config")
            args.config = str(pinned.topology)
    for m in args.map:
        mac, port = _kv(m, "--map")
        try:
            fixed[parse_mac(mac)] = port
        except ValueError as e:
            raise UsageError(f"--map {m!r}: {e}") from None
    results: dict[str, Any] = {}
    status = 0
    out_root = Path(args.out) if args.out else None
    # Everything is checked before anything is replayed: the captures (a missing or unreadable
    # one ends the run here; a non-Ethernet one is refused and the others run), then the outputs.
    jobs: list[tuple[str, str, Topology, Any, Path | None, bool]] = []
    if args.port:
        if args.captures:
            raise UsageError("give either --port NAME=FILE (one capture per port) or captures, not both")
        files = dict(_kv(p, "--port") for p in args.port)
        for path in files.values():
            if not Path(path).is_file():
                raise UsageError(f"--port ...={path}: no such file")
        topo = _topology(args, list(files))
        for path in files.values():
            _check_capture(path)

        def per_port(dp):
            return records_per_port({dp.numbers[n]: f for n, f in files.items()})
        jobs.append(("ports", "per-port captures", topo, per_port, out_root, not args.quiet))
    else:
        if not args.captures:
            raise UsageError("nothing to replay: give capture files, or --port NAME=FILE")
        many = len(args.captures) > 1
        for cap in args.captures:
            topo = _topology(args, None)
            names = [p.name for p in topo.ports]
            if pinned is not None:
                for port in {*pinned.macs.values(), pinned.default_port} - set(names):
                    raise UsageError(f"--map-from {args.map_from}: port {port!r} is not in {args.config} "
                                     f"(ports: {', '.join(names)})")
            for port in fixed.values():
                if port not in names:
                    raise UsageError(f"--map ...={port}: no port {port!r} (ports: {', '.join(names)})")
            try:
                _check_capture(cap)
            except NotEthernet as e:
                _err(f"refused: {e}")
                results[cap] = {"error": str(e), "refused": True}
                status = 1
                continue

            def by_mac(dp, cap=cap):
                assign = SourceMacAssigner(list(dp.switch.ports),
                                           {m: dp.numbers[p] for m, p in fixed.items()},
                                           dp.numbers[pinned.default_port] if pinned is not None else None)
                return records_by_source_mac(cap, assign)
            out_dir = (out_root / Path(cap).stem if many else out_root) if out_root else None
            jobs.append((cap, cap, topo, by_mac, out_dir, not args.quiet and not many))
    if args.graph_dot and len(jobs) != 1:
        raise UsageError(f"--graph-dot draws one replay's graph: give one capture or --port NAME=FILE, "
                         f"not {len(jobs)} replays")
    json_file = _open_outputs(args.json, [(d, [p.name for p in t.ports]) for _, _, t, _, d, _ in jobs
                                          if d is not None])
    dot_file = None
    try:
        if args.graph_dot:
            try:
                dot_file = open(args.graph_dot, "w")  # noqa: SIM115 - written after the replay
            except OSError as e:
                raise UsageError(f"--graph-dot {args.graph_dot}: cannot write: {e.strerror}") from None
        for key, label, topo, records_for, out_dir, tables in jobs:
            st, results[key] = _replay_one(args, topo, records_for, label, out_dir, console, tables, dot_file)
            status = max(status, st)
        if json_file is not None:
            json_file.truncate(0)
            json_file.write(json.dumps(results, indent=2) + "\n")
    finally:
        for f in (json_file, dot_file):
            if f is not None:
                f.close()
    return status


def cmd_demo(args: argparse.Namespace) -> int:
    from bench.demo import run_demo
    return run_demo(args.out, offline=args.offline)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench", description="pcap replay, demo and benchmarks")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND", title="commands")

    rp = sub.add_parser("replay", help="replay captures through a switch in virtual time (--live: onto an interface)",
                        description="Replay pcap/pcapng captures through the learning switch offline, "
                        "in the captures' own time. Either one capture per port (--port NAME=FILE), or "
                        "captures whose frames enter by source MAC: each new source MAC takes the next "
                        "port round-robin (a host stays on one port), unless --map MAC=PORT says otherwise, "
                        "or --map-from a generated trace's manifest.")
    rp.add_argument("captures", nargs="*", help="capture files (each replayed through a fresh switch)")
    rp.add_argument("--port", action="append", default=[], metavar="NAME=FILE",
                    help="frames of FILE enter on port NAME (repeat for each port)")
    rp.add_argument("--ports", type=int, default=4, help="number of ports p1..pN without --config (default 4)")
    rp.add_argument("--map", action="append", default=[], metavar="MAC=PORT",
                    help="pin a source MAC to a port")
    rp.add_argument("--map-from", metavar="MANIFEST",
                    help="the manifest of `vswitch-bench gen`: its source MACs enter by their ports, any other "
                    "by its uplink (--map still overrides); without --config, its topology")
    rp.add_argument("--config", help="topology TOML (bridge settings and ports)")
    rp.add_argument("--out", help="directory for one pcap per egress port")
    rp.add_argument("--json", help="write the counter snapshot(s) as JSON to this file")
    rp.add_argument("--graph-dot", metavar="FILE",
                    help="write the graph after the replay as Graphviz DOT (as vswitchctl graph --dot) to FILE")
    rp.add_argument("--batch", type=int, default=64, help="frames per batch (default 64)")
    rp.add_argument("-q", "--quiet", action="store_true", help="summary line only, no tables")
    lv = rp.add_argument_group(
        "live replay (--live)", "Send the captures onto an interface in real time, as tcpreplay does, and print "
        "tcpreplay's summary lines. One speed mode at most (default: the capture's own timing). With --live, "
        "--port NAME names a port of the running vswitchd (--socket): the frames enter the switch on that port, "
        "sent from outside it (a tap port: on its TAP, from the TAP's namespace; an attach port on a veth: on the "
        "veth's peer), and the daemon's counter deltas follow; --batch is frames per sendmmsg call with "
        "--preload (1: one send per frame); --json writes the summary.")
    lv.add_argument("--live", action="store_true", help="send onto --iface IF or into --port NAME, in real time")
    lv.add_argument("-i", "--iface", metavar="IF", help="the interface to send on (of this network namespace)")
    lv.add_argument("--socket", metavar="PATH", help="vswitchd's control socket, for --port (default: vswitchd's)")
    lv.add_argument("-x", "--multiplier", type=float, metavar="F", help="the capture's timing, F times as fast")
    lv.add_argument("-p", "--pps", type=float, metavar="R", help="R packets per second")
    lv.add_argument("-M", "--mbps", type=float, metavar="M",
                    help="M megabits per second of captured bytes (0: top speed)")
    lv.add_argument("-t", "--topspeed", action="store_true", help="as fast as possible")
    lv.add_argument("-l", "--loop", type=int, metavar="N", help="replay the captures N times (0: forever; default 1)")
    lv.add_argument("-L", "--limit", type=int, metavar="N", help="send at most N frames")
    lv.add_argument("--duration", type=float, metavar="S", help="send for at most S seconds")
    lv.add_argument("-K", "--preload", action="store_true",
                    help="read the captures into memory before sending (tcpreplay's --preload-pcap)")
    rp.set_defaults(func=cmd_replay)

    dm = sub.add_parser("demo", help="three guests through a 3-port switch (live as root, else offline)",
                        description="Three guests (ARP, ping, a broadcast) through a 3-port switch. As root: "
                        "vswitchd with the guests in network namespaces on TAP ports, pinging each other, "
                        "then what vswitchctl shows; everything it created is removed at the end. Otherwise, "
                        "or with --offline: a generated trace of the same guests replayed in virtual time, "
                        "then the MAC table and the counters.")
    dm.add_argument("--offline", action="store_true", help="replay a generated trace even as root")
    dm.add_argument("--out", default=None, metavar="DIR",
                    help="offline: keep the generated captures and the per-port egress pcaps in DIR")
    dm.set_defaults(func=cmd_demo)

    sub.add_parser("switch", help="learning switch frames/s benchmark", add_help=False)
    sub.add_parser("nic-sorter", help="NIC model sorter + ring benchmark", add_help=False)
    sub.add_parser("nic-tx", help="NIC model TX service benchmark: arbitration, limiters, VEB (64 pools)",
                   description="Cost per frame of the NIC model's TX service (bench/nic_tx.py)", add_help=False)
    sub.add_parser("sriov", help="SR-IOV VF RX/TX paths through the IOMMU against VMDq (63 VFs)",
                   description="Cost per frame of the NIC model's SR-IOV VF RX and TX paths with the IOMMU on, "
                   "against the VMDq sorter path measured in the same run (bench/sriov.py)", add_help=False)
    sub.add_parser("peers", help="vswitchd vs the Linux bridge and vde_switch (root)", add_help=False)
    sub.add_parser("replay-bench", help="replay --live vs Debian's tcpreplay on a veth: rate accuracy, top speed "
                   "(root)", add_help=False)
    sub.add_parser("policies", help="cost per frame of each queue policy (enqueue + dequeue), the policer",
                   description="Cost per frame of every queue policy through a core Queue under a standing "
                   "backlog, and of the policer element (bench/policies.py)", add_help=False)
    sub.add_parser("tbf-kernel", help="the project's tbf against the kernel's on a veth, same traffic (root)",
                   description="The same offered UDP stream through the kernel's tbf on a veth between two "
                   "namespaces and through the project's tbf: delivered rate, drops, burst (bench/tbf_kernel.py)",
                   add_help=False)
    sub.add_parser("nspy", help="the project's SP, WFQ, DRR, token bucket and RED against ns.py's",
                   description="One small workload through ns.py's schedulers and the project's: per-flow "
                   "throughput shares and drop counts (bench/nspy_compare.py)", add_help=False)
    sub.add_parser("live-path", help="Python cost per frame of vswitchd's data path, system calls stubbed",
                   add_help=False)
    sub.add_parser("compare-commits", help="this tree against another commit: the benchmarks, interleaved",
                   description="Check REV out into a temporary worktree and run the same benchmarks for both "
                   "trees, interleaved, each run a fresh process; a table of medians, ratios and verdicts "
                   "(ok within +5 %).", add_help=False)
    sub.add_parser("experiment", help="run an experiment TOML's sweep: CSV/Parquet/JSON tables and plots",
                   description="Run every point of an experiment's sweep (bench/experiments/cli.py)", add_help=False)
    sub.add_parser("replay-speed", help="offline replay's Mpps end to end from a 64 B pcap, software and VMDq, "
                   "compiled and interpreted, against dpkt's reader and ns.py", add_help=False)
    sub.add_parser("sweep-speed", help="the experiment runner's speed: a sweep's points/s on the local pool, "
                   "its packets/s against ns.py's on the same workload", add_help=False)
    sub.add_parser("gen", help="generate a trace: guests, east-west and north-south flows, rates, bursts",
                   description="Generate a pcap/pcapng trace of N guests and hosts on the wire, with a vswitch "
                   "topology and a JSON manifest (bench/gen.py)", add_help=False)

    # These subcommands own their argument parsing.
    modules = {
        "switch": "bench.switch_bench",
        "nic-sorter": "bench.nic_sorter",
        "peers": "bench.peers",
        "live-path": "bench.live_path",
        "compare-commits": "bench.compare_commits",
        "nic-tx": "bench.nic_tx",
        "gen": "bench.gen",
        "replay-bench": "bench.replay_bench",
        "sriov": "bench.sriov",
        "compare": "bench.compare",
        "calibrate": "bench.calibrate",
        "policies": "bench.policies",
        "experiment": "bench.experiments.cli",
        "replay-speed": "bench.replay_speed",
        "tbf-kernel": "bench.tbf_kernel",
        "nspy": "bench.nspy_compare",
        "sweep-speed": "bench.sweep_speed",
    }
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in modules:
        import importlib
        return int(importlib.import_module(modules[argv[0]]).main(argv[1:]))
    args = ap.parse_args(argv)
    if args.cmd is None:
        ap.error(f"choose a command: {', '.join(sub.choices)} (vswitch-bench --help says what each does)")
    if getattr(args, "batch", 1) < 1:
        ap.error(f"--batch {args.batch}: must be >= 1")
    try:
        return int(args.func(args))
    except (UsageError, ConfigError, ValueError) as e:
        print(f"vswitch-bench: {e}", file=sys.stderr)
        return 2
    except CaptureError as e:
        print(f"vswitch-bench: {e}", file=sys.stderr)
        return 1
    except OSError as e:         # e.g. an output that fails while it is written (disk full)
        print(f"vswitch-bench: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
