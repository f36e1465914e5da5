"""``vswitch-bench replay --live``'s arguments: checked and turned into `LiveOptions`, each refusal
one line (`LiveUsageError`, exit 2); `run` says a capture, interface or port problem in one line."""

from __future__ import annotations

import argparse
import sys

from bench.live_replay import LiveOptions, TargetError, run_live
from bench.replay_pacing import Limits, Speed
from vswitch.io.pcap import CaptureError, NotEthernet

OFFLINE_ONLY = {"map": "--map", "config": "--config", "out": "--out"}


class LiveUsageError(ValueError):
    """Bad --live arguments (bench.cli prints it as one line, exit 2)."""


def live_options(args: argparse.Namespace) -> LiveOptions:
    for key, opt in OFFLINE_ONLY.items():
        if getattr(args, key, None):
            raise LiveUsageError(f"{opt}: offline replay only (--live sends the frames to an interface)")
    if args.ports != 4:
        raise LiveUsageError("--ports: offline replay only (--live sends the frames to an interface)")
    if not args.captures:
        raise LiveUsageError("--live: nothing to replay: give one or more capture files")
    port = None
    if args.port:
        if len(args.port) > 1:
            raise LiveUsageError(f"--port: give one port with --live (got {len(args.port)})")
        port = args.port[0]
        if "=" in port:
            raise LiveUsageError(f"--port {port}: with --live, --port takes a vswitchd port NAME, not NAME=FILE")
    if (args.iface is None) == (port is None):
        raise LiveUsageError("--live: give either --iface IF or --port NAME" +
                             (" (not both)" if port is not None else ""))
    if args.socket is not None and port is None:
        raise LiveUsageError("--socket: only with --port NAME")
    modes = [(flag, v) for flag, v in (("--multiplier", args.multiplier), ("--pps", args.pps),
                                       ("--mbps", args.mbps), ("--topspeed", args.topspeed or None))
             if v is not None]
    if len(modes) > 1:
        raise LiveUsageError(f"{' and '.join(f for f, _ in modes)}: choose one speed mode")
    speed = Speed()
    if modes:
        flag, v = modes[0]
        if flag == "--topspeed" or (flag == "--mbps" and v == 0):
            speed = Speed("topspeed", 0.0)
        else:
            if not v > 0 or v == float("inf"):
                raise LiveUsageError(f"{flag} {v:g}: must be a number > 0" + (" (0 means --topspeed)"
                                                                              if flag == "--mbps" else ""))
            speed = Speed(flag[2:], float(v))
    loops = 1 if args.loop is None else args.loop
    if loops < 0:
        raise LiveUsageError(f"--loop {loops}: must be >= 0 (0 loops until --limit, --duration or Ctrl-C)")
    if args.limit is not None and args.limit < 1:
        raise LiveUsageError(f"--limit {args.limit}: must be >= 1")
    if args.duration is not None and not 0 < args.duration < float("inf"):
        raise LiveUsageError(f"--duration {args.duration:g}: must be a number of seconds > 0")
    limits = Limits(loops=loops, limit=args.limit or 0,
                    duration_ns=None if args.duration is None else int(args.duration * 1e9))
    return LiveOptions(captures=list(args.captures), speed=speed, limits=limits, preload=args.preload,
                       batch=args.batch, iface=args.iface, port=port, socket=args.socket, json_path=args.json)


def run(opts: LiveOptions) -> int:
    try:
        return run_live(opts)
    except NotEthernet as e:
        print(f"vswitch-bench: refused: {e}", file=sys.stderr)
        return 1
    except CaptureError as e:
        print(f"vswitch-bench: {e}", file=sys.stderr)
        return 1
    except TargetError as e:
        print(f"vswitch-bench: {e}", file=sys.stderr)
        return 2
