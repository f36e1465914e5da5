"""Generate a trace of N guests and hosts on the wire: pcap or pcapng, with its topology and manifest.

Guests g1..gN (MACs 02:00:00:01:HH:LL, IPv4 10.1.HH.LL, VLANs round-robin
from --vlans) and wire hosts w1..wM behind the uplink (02:00:00:02:HH:LL,
10.2.HH.LL) exchange UDP or TCP-looking IPv4 frames with correct checksums:
east-west (guest to guest on a VLAN) and north-south (inbound from the wire,
outbound to it) in the mix asked, at a fixed size, IMIX or a distribution,
at an offered rate (pps, or Mb/s or Gb/s counted on L1, L2 or the capture
length), constant, on/off or Poisson, with ARP and broadcast background.
The same --seed gives the same bytes.  A frame enters by its source MAC: a
guest's -> its port g<i>, any other -> uplink; the topology (TOML, for
``vswitch-bench replay --config``) and the manifest (JSON, for ``replay
--map-from``) say so.  docs/traces.md has the details.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

from bench.gen_sidecar import NIC_CHOICES, check_nic, write_manifest, write_topology
from bench.tracegen import NS, OVERHEAD, PATTERNS, GenResult, GenSpec, generate, parse_sizes
from vswitch.schema import ConfigError

_UNITS = {"ns": 1, "us": 1000, "ms": 1_000_000, "s": NS}


def parse_time(text: str, what: str) -> int:
    """``1``, ``0.5s``, ``10ms``, ``250us``, ``100ns`` -> ns (a plain number is seconds)."""
    t = text.strip().lower()
    for unit in ("ns", "us", "ms", "s"):
        if t.endswith(unit):
            num, mul = t[: -len(unit)], _UNITS[unit]
            break
    else:
        num, mul = t, NS
    try:
        value = Fraction(num.strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{what} {text!r}: a time such as 1, 0.5s, 10ms, 250us or 100ns") from None
    ns = value * mul
    if ns.denominator != 1 and ns < 1:
        raise ValueError(f"{what} {text!r}: below the trace's 1 ns resolution")
    return int(ns)


def parse_rate(text: str, what: str) -> Fraction:
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{what} {text!r}: not a number") from None
    if value <= 0:
        raise ValueError(f"{what} {text}: must be above 0")
    return value


def parse_vlans(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            v = int(part)
        except ValueError:
            raise ValueError(f"--vlans {text!r}: {part!r} is not a VLAN ID") from None
        if not 0 <= v <= 4094:
            raise ValueError(f"--vlans {text!r}: bad VLAN {v}: a VLAN ID is 0-4094 (4095 is reserved by 802.1Q)")
        out.append(v)
    return tuple(out)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vswitch-bench gen", description=__doc__.split("\n\n")[0],
                                 epilog="Sizes are Ethernet frame sizes with the 4-byte FCS (a 64-byte frame is "
                                 "60 bytes in the capture). docs/traces.md describes the trace, the sidecars "
                                 "and how frames map to ports.")
    ap.add_argument("out", help="the trace to write (.pcap; with --pcapng a pcapng file)")
    ap.add_argument("--pcapng", action="store_true", help="write pcapng (nanosecond timestamps) instead of pcap")
    ap.add_argument("--topology", metavar="FILE",
                    help="the vswitch topology TOML to write (default: OUT with the suffix .toml)")
    ap.add_argument("--manifest", metavar="FILE",
                    help="the JSON manifest to write: guests, flows, counts, rates, the source-MAC -> port map "
                    "(default: OUT with the suffix .json)")
    ap.add_argument("--nic", choices=NIC_CHOICES, default="none",
                    help="put the emulated 82599 in the topology, its wire side the uplink, in this mode "
                    "(default: none: a software switch only)")
    g = ap.add_argument_group("hosts")
    g.add_argument("--guests", type=int, default=4, metavar="N", help="guests g1..gN, one port each (default 4)")
    g.add_argument("--vlans", metavar="LIST",
                   help="VLAN IDs given to the guests round-robin, e.g. 10,20 (0: untagged; default: none, "
                   "every guest untagged)")
    g.add_argument("--tagged-guests", action="store_true",
                   help="guests send their frames tagged with their VLAN (their port is a trunk of that VLAN); "
                   "by default they send untagged into an access port")
    g.add_argument("--wire-hosts", type=int, default=2, metavar="N",
                   help="hosts on the wire, behind the uplink (default 2)")
    t = ap.add_argument_group("traffic")
    t.add_argument("--flows", type=int, default=16, metavar="N",
                   help="data flows in all (1-16384), shared among the classes of the mix (at least one each; "
                   "default 16)")
    t.add_argument("--east-west", type=float, default=0.5, metavar="F",
                   help="share of the data frames between guests (default 0.5); the rest is north-south")
    t.add_argument("--inbound", type=float, default=0.5, metavar="F",
                   help="share of the north-south frames that come from the wire (default 0.5)")
    t.add_argument("--tcp", type=float, default=0.0, metavar="F",
                   help="share of the flows that are TCP-looking, the rest UDP (default 0)")
    t.add_argument("--size", default="64", metavar="SPEC",
                   help="frame sizes with FCS, 64-1518: N, imix (64:7,570:4,1518:1), weighted N:W,N:W,... "
                   "or a uniform range A-B (default 64)")
    r = ap.add_argument_group("rate and time")
    rate = r.add_mutually_exclusive_group()
    rate.add_argument("--pps", metavar="R", help="offered data frames per second (default 100000 if no rate is given)")
    rate.add_argument("--mbps", metavar="R", help="offered data rate in Mb/s, counted as --count says")
    rate.add_argument("--gbps", metavar="R", help="offered data rate in Gb/s, counted as --count says")
    r.add_argument("--count", choices=list(OVERHEAD), default="l1",
                   help="what --mbps/--gbps count: l1 = frame + FCS + 20 bytes of preamble and gap (line rate: "
                   "10 Gb/s is 14,880,952 64-byte frames/s), l2 = frame + FCS, caplen = the captured bytes, as "
                   "tcpreplay (default l1)")
    length = r.add_mutually_exclusive_group()
    length.add_argument("--duration", metavar="TIME",
                        help="length of the data in time: 1, 0.5s, 10ms, ... (default 1 s if no --frames)")
    length.add_argument("--frames", type=int, metavar="N", help="length of the data in frames")
    r.add_argument("--pattern", choices=PATTERNS, default="constant",
                   help="arrivals: constant gaps, on/off bursts (at the rate while on) or Poisson "
                   "(default constant)")
    r.add_argument("--on", default="1ms", metavar="TIME", help="onoff: length of a burst (default 1ms)")
    r.add_argument("--off", default="1ms", metavar="TIME", help="onoff: silence between bursts (default 1ms)")
    b = ap.add_argument_group("background")
    b.add_argument("--arp-pps", default="0", metavar="R",
                   help="ARP requests per second, broadcast, from random hosts (default 0)")
    b.add_argument("--bcast-pps", default="0", metavar="R",
                   help="UDP broadcasts (255.255.255.255, port 9) per second from random hosts (default 0)")
    b.add_argument("--announce", action=argparse.BooleanOptionalAction, default=True,
                   help="every guest and wire host sends a gratuitous ARP first, so a switch knows every MAC "
                   "(default on)")
    ap.add_argument("--seed", type=int, default=1, metavar="N",
                    help="random seed: the same seed, the same bytes (default 1)")
    ap.add_argument("--start", type=float, default=1_700_000_000.0, metavar="SECONDS",
                    help="timestamp of the first frame, seconds since the epoch (default 1700000000)")
    ap.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return ap


def spec_from_args(args: argparse.Namespace) -> GenSpec:
    pps = bps = None
    if args.gbps is not None:
        bps = parse_rate(args.gbps, "--gbps") * 10**9
    elif args.mbps is not None:
        bps = parse_rate(args.mbps, "--mbps") * 10**6
    else:
        pps = parse_rate(args.pps if args.pps is not None else "100000", "--pps")
    duration = frames = None
    if args.frames is not None:
        frames = args.frames
    else:
        duration = parse_time(args.duration if args.duration is not None else "1", "--duration")
    background = {}
    for name in ("arp_pps", "bcast_pps"):
        text = getattr(args, name)
        try:
            value = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"--{name.replace('_', '-')} {text!r}: not a number") from None
        if value < 0:
            raise ValueError(f"--{name.replace('_', '-')} {text}: must be >= 0")
        background[name] = value
    spec = GenSpec(guests=args.guests, vlans=parse_vlans(args.vlans) if args.vlans else (),
                   tagged_guests=args.tagged_guests,
                   wire_hosts=args.wire_hosts, flows=args.flows, east_west=args.east_west, inbound=args.inbound,
                   tcp=args.tcp, sizes=parse_sizes(args.size), pps=pps, bps=bps, count=args.count,
                   duration_ns=duration, frames=frames, pattern=args.pattern,
                   on_ns=parse_time(args.on, "--on"), off_ns=parse_time(args.off, "--off"),
                   seed=args.seed, start_ns=int(Fraction(str(args.start)) * NS), announce=args.announce,
                   **background)
    spec.check()
    check_nic(spec, args.nic)
    return spec


def _rel(path: Path, base: Path) -> str:
    """``path`` as the manifest names it: relative to the manifest's directory."""
    return os.path.relpath(path.resolve(), base.resolve().parent)


def summary(res: GenResult, out: str, wall: float, topology: str, manifest: str) -> str:
    r = res.rates()
    k = res.by_kind
    tcp = sum(1 for f in res.flows if f.proto == "tcp")
    speed = f"{res.frames / wall:,.0f} frames/s" if wall > 0 else "-"
    return (f"gen: wrote {res.frames} frames ({res.bytes} bytes) to {out} in {wall:.2f} s ({speed})\n"
            f"  data: {res.data_frames} frames over {res.span_ns / NS:.6f} s: {r['pps']:,.1f} pps, "
            f"L1 {r['gbps_l1']:.4f} Gb/s, L2 {r['gbps_l2']:.4f} Gb/s; east-west {k['east-west']}, "
            f"inbound {k['inbound']}, outbound {k['outbound']}; {len(res.flows)} flows ({tcp} TCP)\n"
            f"  background: {res.announce} announcements, {res.arp} ARP requests, {res.broadcast} broadcasts\n"
            f"  {len(res.guests)} guests on ports g1..g{len(res.guests)}, {len(res.wire)} wire hosts behind "
            f"uplink; topology {topology}, manifest {manifest}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    topology = Path(args.topology) if args.topology else out.with_suffix(".toml")
    manifest = Path(args.manifest) if args.manifest else out.with_suffix(".json")
    try:
        spec = spec_from_args(args)
        paths = [out, topology, manifest]
        if len({p.resolve() for p in paths}) < 3:
            raise ValueError(f"the trace, topology and manifest must be three files ({', '.join(map(str, paths))})")
        for p in paths:
            if not p.parent.is_dir():
                raise ValueError(f"{p}: no such directory {str(p.parent)!r}")
            if p.is_dir():
                raise ValueError(f"{p}: is a directory")
    except (ValueError, ConfigError) as e:
        print(f"vswitch-bench gen: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        res = generate(spec, out, pcapng=args.pcapng)
        wall = time.perf_counter() - t0
        write_topology(spec, topology, out.name, args.nic)
        write_manifest(res, manifest, _rel(out, manifest), _rel(topology, manifest), ["vswitch-bench", "gen", *argv],
                       args.nic, args.pcapng)
    except OSError as e:
        print(f"vswitch-bench gen: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 1
    if not args.quiet:
        try:
            print(summary(res, str(out), wall, str(topology), str(manifest)), flush=True)
        except BrokenPipeError:             # `| head`: the files are written; the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
