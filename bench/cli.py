"""``vswitch-bench``: pcap replay, the demo, and the benchmarks.

Subcommands:

``replay``     push captures through a switch in virtual time (offline).
``demo``       three guests (ARP, ping, a broadcast) through a 3-port switch.
``switch``     frames/s of the learning switch (see bench/switch_bench.py).
``nic-sorter`` cost per frame of the NIC model's VMDq sorter + ring enqueue.
``peers``      vswitchd against the Linux bridge, vde_switch, a bare relay, optionally OVS (root; iperf3, vde2).

Exit status: 0 success; 1 a capture could not be (fully) read or was refused;
2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from vswitch.core.frame import parse_mac
from vswitch.drivers.replay import (
    ReplayDriver,
    ReplayResult,
    SourceMacAssigner,
    records_by_source_mac,
    records_per_port,
)
from vswitch.io.pcap import CaptureError, NotEthernet
from vswitch.render import (
    element_counters_table,
    fdb_table,
    make_console,
    port_counters_table,
    print_tables,
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


def _summary(res: ReplayResult, wall_s: float, snap: dict[str, Any], label: str) -> str:
    sw = next(iter(snap["elements"].values()))
    drops = {k: v for k, v in sw["drops"].items() if v}
    dropped = sum(drops.values())
    detail = f" ({', '.join(f'{k} {v}' for k, v in drops.items())})" if drops else ""
    rate = res.frames / wall_s if wall_s > 0 else 0.0
    return (f"{label}: replayed {res.frames} frames ({res.bytes} bytes) in {wall_s:.3f} s wall "
            f"({rate:,.0f} frames/s; capture spans {res.duration_ns / 1e9:.3f} s): "
            f"forwarded {sw['forwarded']}, flooded {sw['flooded']}, dropped {dropped}{detail}")


def _replay_one(args: argparse.Namespace, topo: Topology, records_for, label: str,
                out_dir: Path | None, console: Console, tables: bool) -> tuple[int, dict[str, Any]]:
    dp = build_dataplane(topo)
    driver = ReplayDriver(dp, out_dir=out_dir, batch=args.batch)
    t0 = time.perf_counter()
    try:
        res = driver.run(records_for(dp))
    except NotEthernet as e:
        console.print(f"refused: {e}", markup=False, highlight=False)
        return 1, {"error": str(e), "refused": True}
    wall = time.perf_counter() - t0
    snap = dp.graph.snapshot()
    console.print(_summary(res, wall, snap, label), markup=False, highlight=False)
    status = 0
    if res.error:
        console.print(f"error: {res.error} (frames before it were replayed)", markup=False, highlight=False)
        status = 1
    if tables:
        now = res.last_ts_ns or 0
        print_tables(fdb_table(fdb_view(dp.switch, now)), port_counters_table(snap["ports"]),
                     element_counters_table(dp.switch.name, snap["elements"][dp.switch.name]),
                     console=console)
    out = {"frames": res.frames, "bytes": res.bytes, "duration_ns": res.duration_ns,
           "error": res.error, "outputs": res.outputs, "counters": snap}
    return status, out


def cmd_replay(args: argparse.Namespace) -> int:
    console = make_console()
    fixed = {}
    for m in args.map:
        mac, port = _kv(m, "--map")
        try:
            fixed[parse_mac(mac)] = port
        except ValueError as e:
            raise UsageError(f"--map {m!r}: {e}") from None
    results: dict[str, Any] = {}
    status = 0
    out_root = Path(args.out) if args.out else None
    if args.port:
        if args.captures:
            raise UsageError("give either --port NAME=FILE (one capture per port) or captures, not both")
        files = dict(_kv(p, "--port") for p in args.port)
        for path in files.values():
            if not Path(path).is_file():
                raise UsageError(f"--port ...={path}: no such file")
        topo = _topology(args, list(files))

        def per_port(dp):
            return records_per_port({dp.numbers[n]: f for n, f in files.items()})
        status, results["ports"] = _replay_one(args, topo, per_port, "per-port captures", out_root,
                                               console, not args.quiet)
    else:
        if not args.captures:
            raise UsageError("nothing to replay: give capture files, or --port NAME=FILE")
        many = len(args.captures) > 1
        for cap in args.captures:
            topo = _topology(args, None)
            names = [p.name for p in topo.ports]
            for port in fixed.values():
                if port not in names:
                    raise UsageError(f"--map ...={port}: no port {port!r} (ports: {', '.join(names)})")

            def by_mac(dp, cap=cap):
                assign = SourceMacAssigner(list(dp.switch.ports),
                                           {m: dp.numbers[p] for m, p in fixed.items()})
                return records_by_source_mac(cap, assign)
            out_dir = (out_root / Path(cap).stem if many else out_root) if out_root else None
            st, results[cap] = _replay_one(args, topo, by_mac, cap, out_dir, console,
                                           not args.quiet and not many)
            status = max(status, st)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return status


def cmd_demo(args: argparse.Namespace) -> int:
    from bench.demo import run_demo
    return run_demo(args.out, offline=args.offline)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench", description="pcap replay, demo and benchmarks")
    sub = ap.add_subparsers(dest="cmd", required=True)

    rp = sub.add_parser("replay", help="replay captures through a switch in virtual time",
                        description="Replay pcap/pcapng captures through the learning switch offline, "
                        "in the captures' own time. Either one capture per port (--port NAME=FILE), or "
                        "captures whose frames enter by source MAC: each new source MAC takes the next "
                        "port round-robin (a host stays on one port), unless --map MAC=PORT says otherwise.")
    rp.add_argument("captures", nargs="*", help="capture files (each replayed through a fresh switch)")
    rp.add_argument("--port", action="append", default=[], metavar="NAME=FILE",
                    help="frames of FILE enter on port NAME (repeat for each port)")
    rp.add_argument("--ports", type=int, default=4, help="number of ports p1..pN without --config (default 4)")
    rp.add_argument("--map", action="append", default=[], metavar="MAC=PORT",
                    help="pin a source MAC to a port")
    rp.add_argument("--config", help="topology TOML (bridge settings and ports)")
    rp.add_argument("--out", help="directory for one pcap per egress port")
    rp.add_argument("--json", help="write the counter snapshot(s) as JSON to this file")
    rp.add_argument("--batch", type=int, default=64, help="frames per batch (default 64)")
    rp.add_argument("-q", "--quiet", action="store_true", help="summary line only, no tables")
    rp.set_defaults(func=cmd_replay)

    dm = sub.add_parser("demo", help="three guests through a 3-port switch (live as root, else offline)")
    dm.add_argument("--offline", action="store_true", help="replay a generated trace even as root")
    dm.add_argument("--out", default=None, help="offline: keep the generated captures here")
    dm.set_defaults(func=cmd_demo)

    sub.add_parser("switch", help="learning switch frames/s benchmark", add_help=False)
    sub.add_parser("nic-sorter", help="NIC model sorter + ring benchmark", add_help=False)
    sub.add_parser("nic-tx", help="NIC model TX service benchmark: arbitration, limiters, VEB (64 pools)",
                   description="Cost per frame of the NIC model's TX service (bench/nic_tx.py)", add_help=False)
    sub.add_parser("peers", help="vswitchd vs the Linux bridge and vde_switch (root)", add_help=False)
    sub.add_parser("live-path", help="Python cost per frame of vswitchd's data path, system calls stubbed",
                   add_help=False)

    # These subcommands own their argument parsing.
    modules = {"switch": "bench.switch_bench", "nic-sorter": "bench.nic_sorter", "peers": "bench.peers",
               "live-path": "bench.live_path"}
    argv = sys.argv[1:] if argv is None else argv
    modules["nic-tx"] = "bench.nic_tx"
    if argv and argv[0] in modules:
        import importlib
        return int(importlib.import_module(modules[argv[0]]).main(argv[1:]))
    args = ap.parse_args(argv)
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


if __name__ == "__main__":
    raise SystemExit(main())
