"""Benchmark: cost per frame of the NIC model's VMDq sorter plus RX ring enqueue.

Offline, no I/O: a NIC with ``--pools`` pools, each with its own MAC, a
pre-built list of 64-byte unicast frames spread over the pools, pushed in
batches of ``--batch``.  Only ``Nic.rx`` (sorter + ring enqueue + interrupt
bookkeeping) is timed; rings are drained with ``Nic.poll`` between rounds,
outside the timed region, and that poll cost is reported on its own line.

    python -m bench.nic_sorter [--pools 64] [--batch 64] [--frames 65536]
                               [--rounds 20] [--mrqc 0x8] [--profile 82599]
"""

from __future__ import annotations

import argparse
import json
import struct
import time
from pathlib import Path

from nicmodel.nic import Nic
from vswitch import compiled
from vswitch.core.frame import Frame


def build(profile: str, mrqc: int, pools: int, nframes: int) -> tuple[Nic, list[Frame]]:
    nic = Nic("bench", profile, mrqc=mrqc)
    pools = min(pools, nic.state.num_pools)
    macs = [bytes([2, 0, 0, 0, p >> 8, p & 0xFF]) for p in range(pools)]
    for p, m in enumerate(macs):
        nic.program_pool(p, mac=m)
    frames = []
    src = bytes.fromhex("0200000000ff")
    for i in range(nframes):
        # IPv4/UDP, 64 bytes on the wire (60 without FCS); addresses vary so RSS has work
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, 0, 0, 64, 17, 0,
                         bytes([10, 0, 0, i & 0xFF]), bytes([10, 0, 1, (i >> 8) & 0xFF]))
        udp = struct.pack("!HHHH", 1024 + (i & 0xFF), 80, 26, 0)
        frames.append(Frame(macs[i % pools] + src + b"\x08\x00" + ip + udp + bytes(18)))
    return nic, frames


def run(nic: Nic, frames: list[Frame], batch: int, rounds: int) -> tuple[int, int, int]:
    """Returns (frames sorted, ns spent in rx, ns spent draining)."""
    clock = time.perf_counter_ns
    batches = [frames[i:i + batch] for i in range(0, len(frames), batch)]
    nq = nic.profile.num_queues
    rx_ns = poll_ns = n = 0
    ring_room = min(q.size for q in nic.rings.queues)
    # drain often enough that no ring ever fills (a full ring would leave the fast path)
    drain_every = max(1, ring_room * nic.state.num_pools // (2 * batch))
    for _ in range(rounds):
        for k, b in enumerate(batches):
            for f in b:  # frames are reused: reset what the NIC annotated
                f.pool = f.queue = -1
            t0 = clock()
            nic.rx(b, 0)
            rx_ns += clock() - t0
            n += len(b)
            if (k + 1) % drain_every == 0 or k == len(batches) - 1:
                t0 = clock()
                for q in range(nq):
                    while len(nic.poll(q, 4096, 0)) == 4096:
                        pass
                poll_ns += clock() - t0
    return n, rx_ns, poll_ns


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench nic-sorter", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="82599", help="NIC profile (default 82599)")
    ap.add_argument("--mrqc", type=lambda s: int(s, 0), default=0x8,
                    help="VMDq layout (82599: 0x8 64x2 no RSS, 0xB 64x2 RSS, 0xA 32x4 RSS; default 0x8)")
    ap.add_argument("--pools", type=int, default=64, help="pools, each with its own MAC (default 64)")
    ap.add_argument("--batch", type=int, default=64, help="frames per Nic.rx call (default 64)")
    ap.add_argument("--frames", type=int, default=65536, help="frames in the traffic set (default 65536)")
    ap.add_argument("--rounds", type=int, default=20, help="repetitions of the traffic set (default 20)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = ap.parse_args(argv)
    nic, frames = build(args.profile, args.mrqc, args.pools, args.frames)
    run(nic, frames[: args.batch * 16], args.batch, 1)  # warm-up: fills the plan cache
    n, rx_ns, poll_ns = run(nic, frames, args.batch, args.rounds)
    us = rx_ns / n / 1000
    snap = nic.snapshot()
    print(f"nic-sorter: profile {args.profile} mrqc {args.mrqc:#x}, {nic.state.num_pools} pools, "
          f"batch {args.batch}, {n} frames of {len(frames[0])} B")
    print(f"sorter + ring enqueue: {us:.3f} us/frame, {n / (rx_ns / 1e9):,.0f} frames/s")
    print(f"poll (drain, counted apart): {poll_ns / n / 1000:.3f} us/frame")
    lost = sum(snap["drops"].values())
    print(f"drops: {lost}, interrupts: {snap['interrupts']['interrupts']}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "benchmark": "nic-sorter", "dataplane": compiled.status(),
            "settings": {"profile": args.profile, "mrqc": args.mrqc, "pools": nic.state.num_pools,
                         "batch": args.batch, "frames": n, "frame_bytes": len(frames[0])},
            "sorter_us_per_frame": us, "frames_per_s": n / (rx_ns / 1e9), "poll_us_per_frame": poll_ns / n / 1000,
            "drops": lost, "interrupts": snap["interrupts"]["interrupts"]}, indent=2) + "\n")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
