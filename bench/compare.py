"""``vswitch-bench compare``: one trace through the software switch, VMDq and SR-IOV in the
discrete driver, side by side: throughput, latency per guest, drops by stage and reason,
the utilisation of every resource, and the bottleneck named.

`run_point` runs one design on one trace and returns a plain dict (what ``--json``
writes per mode); a sweep runner calls it for each point of its grid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.costmodel import CostTable, load_costs
from bench.gen_sidecar import PortMap, load_port_map
from bench.modes import MODES, build_mode, plan_for
from vswitch.drivers.discrete import HIST_MAX_NS, NS, DiscreteDriver
from vswitch.drivers.replay import SourceMacAssigner, records_by_source_mac
from vswitch.io.pcap import CaptureError
from vswitch.schema import ConfigError
from vswitch.topology import Topology, load_topology

SATURATED = 0.95      # a resource this busy over the run is saturated
FCS = 4


def _gbps(nbytes: float, span_ns: float) -> float:
    return nbytes * 8 / span_ns if span_ns > 0 else 0.0


def run_point(topology: Topology, trace: str | Path, costs: CostTable, mode: str, *, cores: int = 1,
              port_map: PortMap | None = None, time_mode: str = "recorded", multiplier: float = 1.0,
              pps: float = 0.0, mbps: float = 0.0, progress: Any = None,
              histograms: dict[str, HdrHistogram] | None = None) -> dict[str, Any]:
    """Run ``trace`` through ``mode`` (software, vmdq, sriov) of ``topology`` in the discrete
    driver with ``costs`` on ``cores`` hypervisor cores, and return the result as plain data:
    ``offered``, ``delivered`` (pps, L2/L1 Gb/s), ``ports`` (frames, latency mean/p50/p99/p999
    per port), ``drops`` (element -> reason -> frames), ``resources`` (kind, utilisation,
    busy_ns, frames, polls), ``bottleneck``, ``host_cpu_cores``, ``assumed`` and
    ``latency_cdf`` (guest-bound frames).  Frames enter by source MAC (``port_map``: a
    generated trace's manifest; without one, round robin by first appearance).  Raises
    ValueError / ConfigError on bad input, CaptureError if the trace cannot be read.
    ``histograms``, if given, gets each port's latency histogram (port name -> HDR histogram)."""
    dp, pf = build_mode(topology, mode)
    plan = plan_for(mode, topology, dp, costs, cores, pf)
    ports = sorted(dp.numbers.values())
    if port_map is not None:
        missing = {*port_map.macs.values(), port_map.default_port} - set(dp.numbers)
        if missing:
            raise ConfigError(f"the manifest names port(s) {', '.join(sorted(missing))} the topology lacks")
        assign = SourceMacAssigner(ports, {m: dp.numbers[p] for m, p in port_map.macs.items()},
                                   dp.numbers[port_map.default_port])
    else:
        assign = SourceMacAssigner(ports)
    records = records_by_source_mac(trace, assign)
    try:
        drv = DiscreteDriver(dp, plan, time_mode=time_mode, multiplier=multiplier, pps=pps, mbps=mbps,
                             progress=progress)
        res = drv.run(records)
    finally:
        for cap in records.captures:
            cap.close()
    span = res.span_ns
    util = res.utilisation()
    uplink = dp.uplink
    out_frames = sum(d.frames for d in res.delivered.values())
    out_bytes = sum(d.bytes for d in res.delivered.values())
    out_l1 = sum(d.l1_bytes for d in res.delivered.values())
    cdf = HdrHistogram(1, HIST_MAX_NS, 3)
    port_view = {}
    for name, d in res.delivered.items():
        port_view[name] = d.view()
        if histograms is not None:
            histograms[name] = d.hist
        if name != uplink and d.frames:
            cdf.add(d.hist)
    resources = {n: {"kind": r.kind, "utilisation": util[n], "busy_ns": r.busy_ns, "frames": r.frames,
                     "polls": r.polls} for n, r in res.resources.items()}
    # Frames a resource's queues dropped: it did not keep up with what arrived.
    drains = {name: cost.resource for name, cost in plan.stages.items()}
    drains.update({q.name: q.cost.resource for specs in plan.egress.values() for q in specs})
    drains.update({q.name: q.cost.resource for q in plan.entry.values()})
    behind: dict[str, int] = {}
    for qname, rname in drains.items():
        el = res.snapshot["elements"].get(qname, {})
        n = sum(el.get("drops", {}).values()) + int(el.get("rx_dropped", 0))
        if n:
            behind[rname] = behind.get(rname, 0) + n
    for n, r in resources.items():
        r["dropped_in_front"] = behind.get(n, 0)
    # The bottleneck: of the resources that dropped frames in front of them, the busiest; if none
    # did, the busiest of all (under the same offered load, the one that saturates first).
    pool = [n for n in util if behind.get(n)] or list(util)
    top = max(pool, key=lambda n: util[n]) if pool else None
    policies = nic_policies(res.snapshot)
    drops = res.drops()
    drops.update({name: d["drops"] for name, d in policies.items() if d["drops"]})
    total_drops = sum(sum(v.values()) for v in drops.values())
    bottleneck: dict[str, Any] = {"resource": top, "utilisation": util.get(top, 0.0) if top else 0.0,
                                  "saturated": bool(top and (util[top] >= SATURATED or behind.get(top))),
                                  "dropped_in_front": behind.get(top, 0) if top else 0}
    if drops:
        where, reasons = max(drops.items(), key=lambda kv: sum(kv[1].values()))
        bottleneck["drops_at"] = {"element": where, "reasons": reasons}
    offered_span = max(0.0, res.last_in_ns - (res.first_ns or 0.0))
    return {
        "mode": mode,
        "offered": {"frames": res.frames_in, "bytes": res.bytes_in, "span_ns": offered_span,
                    "pps": res.frames_in * NS / offered_span if offered_span else 0.0},
        "delivered": {"frames": out_frames, "bytes": out_bytes, "span_ns": span,
                      "pps": out_frames * NS / span if span else 0.0,
                      "gbps_l2": _gbps(out_bytes + FCS * out_frames, span), "gbps_l1": _gbps(out_l1, span)},
        "ports": port_view,
        "drops": drops, "drops_total": total_drops,
        "resources": resources,
        "bottleneck": bottleneck,
        "host_cpu_cores": sum(util[n] for n, r in res.resources.items() if r.kind == "core"),
        "guest_cpu_cores": sum(util[n] for n, r in res.resources.items() if r.kind == "vcpu"),
        "assumed": plan.assumed | {"time": time_mode, "multiplier": multiplier, "pps": pps, "mbps": mbps},
        "latency_cdf": _cdf_points(cdf),
        "policies": policies,
        "error": res.error,
    }


def nic_policies(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The NIC's queue policies (a port's rx_qdisc on its RX queues, tx_qdisc on its TX queue) by
    name, ``<nic>.rxq<N>.qdisc`` / ``<nic>.pool<P>.qdisc``: direction, kind, tc's counters and the
    nonzero drops by reason.  Their queues are the NIC's own, not graph elements, so the graph's
    drops do not have them."""
    out: dict[str, dict[str, Any]] = {}
    for name, el in snapshot.get("elements", {}).items():
        for view, label, direction in (("rx_qdisc", "rxq", "rx"), ("tx_qdisc", "pool", "tx")):
            for k, q in (el.get(view) or {}).items():
                out[f"{name}.{label}{k}.qdisc"] = {
                    "direction": direction, "kind": q["scheduler"]["kind"], "sent_packets": q["sent_packets"],
                    "overlimits": q["overlimits"], "backlog_packets": q["backlog_packets"],
                    "drops": {r: n for r, n in q["drops"].items() if n}}
    return out


def _cdf_points(h: HdrHistogram, most: int = 200) -> list[tuple[int, float]]:
    total = h.get_total_count()
    if not total:
        return []
    pts: list[tuple[int, float]] = []
    seen = 0
    for item in h.get_recorded_iterator():
        seen += item.count_added_in_this_iter_step
        pts.append((int(item.value_iterated_to), seen / total))
    step = max(1, len(pts) // most)
    return pts[::step] + ([pts[-1]] if (len(pts) - 1) % step else [])


# -- the report -----------------------------------------------------------------------------

def _us(ns: float) -> str:
    return f"{ns / 1000:.2f}"


def render(results: list[dict[str, Any]]):
    from rich.table import Table
    t = Table(title="vswitch-bench compare: one trace, each design in the discrete driver")
    t.add_column("")
    for r in results:
        t.add_column(r["mode"], justify="right")

    def row(label: str, fn) -> None:
        t.add_row(label, *[fn(r) for r in results])
    row("offered frames", lambda r: f"{r['offered']['frames']:,}")
    row("delivered frames", lambda r: f"{r['delivered']['frames']:,}")
    row("delivered Mpps", lambda r: f"{r['delivered']['pps'] / 1e6:.3f}")
    row("delivered Gb/s L2", lambda r: f"{r['delivered']['gbps_l2']:.3f}")
    row("delivered Gb/s L1", lambda r: f"{r['delivered']['gbps_l1']:.3f}")
    row("host CPU (cores)", lambda r: f"{r['host_cpu_cores']:.3f}")
    row("guest CPU (vCPUs)", lambda r: f"{r['guest_cpu_cores']:.3f}")
    names = sorted({p for r in results for p in r["ports"]})
    for p in names:
        row(f"{p} latency p50/p99/p999 us",
            lambda r, p=p: ("/".join(_us(r["ports"][p]["latency_ns"][k]) for k in ("p50", "p99", "p999"))
                            if r["ports"].get(p, {}).get("frames") else "-"))
    row("drops", lambda r: f"{r['drops_total']:,}")
    reasons = sorted({f"{el}: {why}" for r in results for el, d in r["drops"].items() for why in d})
    for key in reasons:
        el, why = key.split(": ")
        row(f"  {key}", lambda r, el=el, why=why: f"{r['drops'].get(el, {}).get(why, 0):,}")
    res_names = sorted({n for r in results for n in r["resources"]},
                       key=lambda n: (not n.startswith("wire"), not n.startswith("pcie"), n))
    for n in res_names:
        row(f"util {n}", lambda r, n=n: (f"{100 * r['resources'][n]['utilisation']:.1f}%"
                                         if n in r["resources"] else "-"))
    row("BOTTLENECK", lambda r: (f"{r['bottleneck']['resource']} {100 * r['bottleneck']['utilisation']:.1f}%"
                                 + (" (saturated)" if r["bottleneck"]["saturated"] else "")))
    row("assumed", lambda r: (f"{r['assumed']['cores']} core(s), rings nic {r['assumed']['rings']['nic_rx']}"
                              f"/virtio {r['assumed']['rings']['virtio'] or '-'}"
                              f"/backlog {r['assumed']['rings']['backlog'] or '-'}"))
    return t


def plot(results: list[dict[str, Any]], out: Path) -> list[Path]:
    """throughput.png (Gb/s and host CPU per mode), latency_cdf.png, utilisation.png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out.mkdir(parents=True, exist_ok=True)
    modes = [r["mode"] for r in results]
    files = []
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = range(len(modes))
    ax.bar([x - 0.2 for x in xs], [r["delivered"]["gbps_l1"] for r in results], 0.4, label="delivered Gb/s (L1)")
    ax.set_ylabel("Gb/s (L1)")
    ax2 = ax.twinx()
    ax2.bar([x + 0.2 for x in xs], [r["host_cpu_cores"] for r in results], 0.4, color="tab:red",
            label="host CPU (cores)")
    ax2.set_ylabel("host CPU (cores)")
    ax.set_xticks(list(xs), modes)
    ax.set_title("throughput and host CPU per design")
    fig.legend(loc="upper right")
    fig.tight_layout()
    files.append(out / "throughput.png")
    fig.savefig(files[-1])
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        pts = r["latency_cdf"]
        if pts:
            ax.plot([p[0] / 1000 for p in pts], [p[1] for p in pts], label=r["mode"])
    ax.set_xscale("log")
    ax.set_xlabel("latency to a guest (us)")
    ax.set_ylabel("fraction of frames")
    ax.set_title("latency CDF")
    ax.legend()
    fig.tight_layout()
    files.append(out / "latency_cdf.png")
    fig.savefig(files[-1])
    plt.close(fig)
    names = sorted({n for r in results for n in r["resources"]})
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names)), 4))
    w = 0.8 / len(results)
    for i, r in enumerate(results):
        ax.bar([k + i * w for k in range(len(names))],
               [100 * r["resources"].get(n, {}).get("utilisation", 0.0) for n in names], w, label=r["mode"])
    ax.set_xticks([k + 0.4 - w / 2 for k in range(len(names))], names, rotation=45, ha="right")
    ax.set_ylabel("utilisation %")
    ax.axhline(100 * SATURATED, color="grey", linestyle=":")
    ax.set_title("utilisation of every resource")
    ax.legend()
    fig.tight_layout()
    files.append(out / "utilisation.png")
    fig.savefig(files[-1])
    plt.close(fig)
    return files


# -- the command ----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vswitch-bench compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("trace", help="the trace (pcap/pcapng), e.g. one vswitch-bench gen wrote")
    ap.add_argument("--modes", help="designs, comma-separated (default all three; with --live, those vswitchd "
                    "runs)")
    ap.add_argument("--guests", type=int, metavar="N",
                    help="guests the trace's topology must have (a check: the topology decides)")
    ap.add_argument("--cores", type=int, default=1, metavar="C", help="hypervisor cores (default 1)")
    ap.add_argument("--costs", metavar="FILE", help="a cost table (TOML, docs/costmodel.md; default: the defaults)")
    ap.add_argument("--zero-host", action="store_true", help="every host and guest cost zero (line-rate runs)")
    ap.add_argument("--map-from", metavar="MANIFEST",
                    help="the trace's manifest (default: TRACE with the suffix .json, if it exists)")
    ap.add_argument("--config", metavar="TOML", help="the topology (default: the one the manifest names)")
    speed = ap.add_mutually_exclusive_group()
    speed.add_argument("--multiplier", type=float, metavar="F", help="scale the trace's gaps (x2 halves them)")
    speed.add_argument("--pps", type=float, metavar="R", help="pace the trace at R frames/s")
    speed.add_argument("--mbps", type=float, metavar="R", help="pace the trace at R Mb/s (caplen, as tcpreplay)")
    speed.add_argument("--topspeed", action="store_true", help="every frame due at once: the links pace them")
    ap.add_argument("--json", metavar="FILE", help="write the full result as JSON")
    ap.add_argument("--plot", metavar="DIR", help="write PNG charts into DIR")
    ap.add_argument("-q", "--quiet", action="store_true", help="no table, no progress bar")
    lv = ap.add_argument_group("against vswitchd (--live; root)", "Replay the trace into a vswitchd started in "
                               "each mode (guests on TAPs in namespaces, the uplink on a veth), and set its "
                               "counters and perf-show next to the model's prediction, calibrated from that "
                               "daemon's own perf-show and CPU time unless --costs (bench/live_compare.py)")
    lv.add_argument("--live", action="store_true", help="measure vswitchd too (one core: --cores 1)")
    lv.add_argument("--reps", type=int, default=1, metavar="N", help="with --live: replays per mode, the "
                    "best kept (default 1)")
    lv.add_argument("--cpu", type=int, metavar="N", help="with --live: pin vswitchd to CPU N and send from "
                    "the other CPUs (its one core; the sender never shares it)")
    return ap


def options(args: argparse.Namespace) -> dict[str, Any]:
    """Checked arguments -> run_point's keyword arguments and what else the run needs."""
    from bench.live_compare import LIVE_MODES
    live = bool(getattr(args, "live", False))
    text = args.modes if args.modes is not None else ",".join(LIVE_MODES if live else MODES)
    modes = [m.strip() for m in text.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            raise ValueError(f"--modes: {m!r} is not a design (use {', '.join(MODES)})")
        if live and m not in LIVE_MODES:
            raise ValueError(f"--modes {m}: vswitchd does not run this design (its [nic] mode takes "
                             f"{', '.join(LIVE_MODES)}); leave it out of --live")
    if live:
        for flag, given in (("--cores", args.cores != 1), ("--zero-host", args.zero_host),
                            ("--plot", args.plot is not None)):
            if given:
                raise ValueError(f"{flag}: not with --live (vswitchd forwards on one core"
                                 + (", with its own costs)" if flag == "--zero-host" else ")"
                                    if flag == "--cores" else "; --plot draws the model's runs)"))
        if not 1 <= args.reps <= 100:
            raise ValueError(f"--reps {args.reps}: must be 1-100")
        if args.cpu is not None:
            have = sorted(os.sched_getaffinity(0))
            if args.cpu not in have:
                raise ValueError(f"--cpu {args.cpu}: not a CPU this process may use ({', '.join(map(str, have))})")
            if len(have) < 2:
                raise ValueError(f"--cpu {args.cpu}: only one CPU here: the sender needs another")
    elif args.reps != 1:
        raise ValueError("--reps: only with --live")
    elif args.cpu is not None:
        raise ValueError("--cpu: only with --live")
    if not modes or len(set(modes)) != len(modes):
        raise ValueError(f"--modes {args.modes!r}: name each design once")
    if args.cores < 1 or args.cores > 256:
        raise ValueError(f"--cores {args.cores}: must be 1-256")
    trace = Path(args.trace)
    if not trace.is_file():
        raise ValueError(f"{trace}: no such file")
    manifest = Path(args.map_from) if args.map_from else trace.with_suffix(".json")
    port_map = load_port_map(manifest) if (args.map_from or manifest.is_file()) else None
    if args.json and port_map is not None and Path(args.json).resolve() == manifest.resolve():
        raise ValueError(f"--json {args.json}: that is the trace's manifest; write the result elsewhere")
    config = args.config or (str(port_map.topology) if port_map and port_map.topology else None)
    if config is None:
        raise ValueError(f"{trace}: no topology: give --config, or --map-from the trace's manifest")
    topo = load_topology(config)
    uplink = topo.nic.uplink if topo.nic else "uplink"
    guests = [p.name for p in topo.ports if p.name != uplink]
    if args.guests is not None and args.guests != len(guests):
        raise ValueError(f"--guests {args.guests}: {config} has {len(guests)} guest(s) "
                         f"({', '.join(guests)}); generate the trace with --guests {args.guests}")
    costs = load_costs(args.costs) if args.costs else CostTable()
    if args.zero_host:
        costs = costs.zero_host()
    kw: dict[str, Any] = {"cores": args.cores, "port_map": port_map}
    for name in ("multiplier", "pps", "mbps"):
        v = getattr(args, name)
        if v is not None and not (v > 0 and v < float("inf")):
            raise ValueError(f"--{name} {v}: must be above 0")
    if args.multiplier is not None:
        kw.update(time_mode="recorded", multiplier=args.multiplier)
    elif args.pps is not None:
        kw.update(time_mode="pps", pps=args.pps)
    elif args.mbps is not None:
        kw.update(time_mode="mbps", mbps=args.mbps)
    elif args.topspeed:
        kw.update(time_mode="topspeed")
    return {"modes": modes, "topology": topo, "trace": trace, "costs": costs, "kw": kw}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        o = options(args)
        if args.json and Path(args.json).is_dir():
            raise ValueError(f"--json {args.json}: is a directory")
    except (ValueError, ConfigError) as e:
        print(f"vswitch-bench compare: {e}", file=sys.stderr)
        return 2
    if args.live:
        return _main_live(args, o)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    console = Console(stderr=True)
    total = None
    pm = o["kw"]["port_map"]
    if pm is not None:
        try:
            total = json.loads(Path(args.map_from or o["trace"].with_suffix(".json")).read_text())["frames"]["total"]
        except (OSError, KeyError, TypeError, ValueError):
            total = None
    results = []
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True, disable=args.quiet or not console.is_terminal) as bar:
            for mode in o["modes"]:
                task = bar.add_task(mode, total=total)
                r = run_point(o["topology"], o["trace"], o["costs"], mode,
                              progress=lambda n, task=task: bar.update(task, completed=n), **o["kw"])
                bar.update(task, completed=r["offered"]["frames"])
                results.append(r)
    except (ValueError, ConfigError) as e:
        print(f"vswitch-bench compare: {e}", file=sys.stderr)
        return 2
    except CaptureError as e:
        print(f"vswitch-bench compare: {e}", file=sys.stderr)
        return 1
    status = 1 if any(r["error"] for r in results) else 0
    for r in results:
        if r["error"]:
            print(f"vswitch-bench compare: {r['mode']}: {r['error']}", file=sys.stderr)
    if not args.quiet:
        Console().print(render(results))
    try:
        if args.json:
            Path(args.json).write_text(json.dumps({"trace": str(o["trace"]), "results": results}, indent=1))
        if args.plot:
            for f in plot(results, Path(args.plot)):
                if not args.quiet:
                    print(f"wrote {f}")
    except OSError as e:
        print(f"vswitch-bench compare: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 1
    return status


def _main_live(args: argparse.Namespace, o: dict[str, Any]) -> int:
    from rich.console import Console

    from bench.live_compare import LiveError, check_environment, render, run_live_compare, summary_lines
    from bench.live_replay import TargetError
    from bench.replay_pacing import Speed
    kw = o["kw"]
    mode = kw.get("time_mode", "recorded")
    speed = (Speed("multiplier", kw.get("multiplier", 1.0)) if mode == "recorded" else
             Speed("topspeed", 0.0) if mode == "topspeed" else Speed(mode, kw[mode]))
    try:
        check_environment()
        results = run_live_compare(o["topology"], o["trace"], kw["port_map"], o["modes"], speed,
                                   o["costs"] if args.costs else None, reps=args.reps, log=sys.stderr,
                                   cpu=args.cpu)
    except (LiveError, TargetError, ValueError, ConfigError) as e:
        print(f"vswitch-bench compare: {e}", file=sys.stderr)
        return 2
    except CaptureError as e:
        print(f"vswitch-bench compare: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vswitch-bench compare: interrupted (everything it created is removed)", file=sys.stderr)
        return 130
    if not args.quiet:
        Console(width=max(160, 40 + 36 * len(results))).print(render(results))
    for line in summary_lines(results):
        print(line)
    if args.json:
        try:
            Path(args.json).write_text(json.dumps({"trace": str(o["trace"]), "live": True, "results": results},
                                                  indent=1, default=str))
        except OSError as e:
            print(f"vswitch-bench compare: {args.json}: {e.strerror or e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
