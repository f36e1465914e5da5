"""``vswitch-bench calibrate``: a cost table for the software path from vswitchd's own measurements.

Reads ``vswitchctl perf-show --json`` (a file, ``-`` for stdin, or a running
vswitchd's control socket) and writes a cost table (TOML) whose software-switch
costs are the measured nanoseconds per stage (`bench.costmodel.from_perf`); every
other cost is the base table's (``--base``, default the defaults).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.costmodel import CostTable, dumps_costs, from_perf, load_costs
from vswitch.schema import ConfigError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench calibrate", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--perf-json", metavar="FILE", help="vswitchctl perf-show --json output (- for stdin)")
    src.add_argument("--socket", metavar="PATH", help="ask the vswitchd on this control socket for perf-show")
    ap.add_argument("--base", metavar="FILE", help="the cost table to start from (default: the defaults)")
    ap.add_argument("--out", metavar="FILE", required=True, help="the cost table to write (TOML)")
    ap.add_argument("--emulation", action="store_true",
                    help="model vswitchd itself: charge the NIC model's measured ns per frame crossing the "
                         "NIC (nic_emulation_ns; default 0, a host whose NIC is hardware)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        base = load_costs(args.base) if args.base else CostTable()
        if args.socket:
            from vswitch.control.client import Client
            from vswitch.control.protocol import ControlError
            try:
                perf = Client(args.socket).call("perf-show")
            except (OSError, ControlError) as e:
                raise ValueError(f"--socket {args.socket}: {e}") from None
            where = args.socket
        else:
            where = args.perf_json
            try:
                text = sys.stdin.read() if where == "-" else Path(where).read_text()
                perf = json.loads(text)
            except OSError as e:
                raise ValueError(f"{where}: cannot read: {e.strerror}") from None
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ValueError(f"{where}: not JSON: {e}") from None
        table, basis = from_perf(perf, base, emulation=args.emulation)
        if Path(args.out).is_dir():
            raise ValueError(f"--out {args.out}: is a directory")
    except (ValueError, ConfigError) as e:
        print(f"vswitch-bench calibrate: {e}", file=sys.stderr)
        return 2
    comment = (f"Calibrated by vswitch-bench calibrate from {where}: {basis['frames']} frames;\n"
               f"read {basis['rx_ns_per_frame']:.1f} + graph {basis['switch_ns_per_frame']:.1f} - NIC model "
               f"{basis['nic_model_ns_per_frame']:.1f} ns/frame -> switch_frame_ns; write "
               f"{basis['tx_ns_per_frame']:.1f} ns/frame -> vhost_frame_ns."
               + (f"\nNIC model {basis['nic_emulation_ns']:.1f} ns per frame crossing the NIC "
                  f"({basis['nic_frames']} frames) -> nic_emulation_ns." if args.emulation else ""))
    try:
        Path(args.out).write_text(dumps_costs(table, comment))
    except OSError as e:
        print(f"vswitch-bench calibrate: {args.out}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: switch_frame_ns {table.host.switch_frame_ns:.1f}, "
          f"vhost_frame_ns {table.host.vhost_frame_ns:.1f}"
          + (f", nic_emulation_ns {table.host.nic_emulation_ns:.1f}" if args.emulation else "")
          + f" (from {basis['frames']} frames)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
