"""Benchmark: the Python cost per frame of vswitchd's data path, system calls taken out.

Two TAP ports of a real `LiveSwitch` whose devices are real `TapPort` objects
(real TAP devices, left down, so root is needed; removed at the end), except
that ``os.read`` and ``os.write`` are replaced by stubs: the read stub
hands out pre-built 64-byte frames (with their virtio-net header) and then says
EAGAIN, the write stub takes the bytes and returns.  One `_readable` call is one
wake-up: read the batch, build the frames, switch them, count them, write them.
The peer in the same run is a bare relay over the same stubbed ports (the
`bench.relay` loop: `read_batch` then `write`), the floor of any Python TAP
switch.  What is left over the floor is the interpreter's (or the compiled
modules') share of a frame, which `vswitch-bench peers` cannot separate from
the kernel's.

    python -m bench.live_path [--batch 50] [--frames 200000] [--rounds 5] [--idle-ms MS]

``--idle-ms`` sleeps before every wake-up, as the daemon does between frames
at a ping's rate, and reports the median wake-up instead of the best round:
what a wake-up costs when the CPU's caches have gone cold meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vswitch import compiled
from vswitch.drivers import live
from vswitch.io.tap import TapPort
from vswitch.topology import PortConfig, Topology

IDLE_WAKEUPS = 500                                    # per round, with --idle-ms
A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")


def stub_tap(name: str, poll: Any) -> TapPort:
    """A real TapPort (never read or written once os is stubbed) whose poll(0) always says
    another frame waits, so the read loop runs until the read stub says EAGAIN."""
    t = TapPort(name)
    t._poll = poll
    return t


class Stubs:
    """os.read hands out ``batch`` copies of a frame, then raises EAGAIN; os.write discards."""

    def __init__(self) -> None:
        self.queue: Iterator[bytes] = iter(())

    def read(self, fd: int, n: int) -> bytes:
        b = next(self.queue, None)
        if b is None:
            raise BlockingIOError
        return b[:]                                   # a fresh bytes, as the kernel's read gives

    @staticmethod
    def write(fd: int, data: bytes) -> int:
        return len(data)


def timed(fn: Callable[[], None], stubs: Stubs, raw: bytes, batch: int, n: int, rounds: int,
          idle_s: float = 0.0) -> float:
    """Best ns per frame over ``rounds`` of ``n`` wake-ups of ``batch`` frames; with
    ``idle_s``, a sleep before each wake-up and the median wake-up's ns per frame."""
    best = float("inf")
    for _ in range(rounds):
        each: list[int] = []
        for _ in range(n):
            if idle_s:
                time.sleep(idle_s)
            stubs.queue = iter([raw] * batch)
            t0 = time.perf_counter_ns()
            fn()
            each.append(time.perf_counter_ns() - t0)
        best = min(best, statistics.median(each) / batch if idle_s else sum(each) / (n * batch))
    return best


async def measure(batch: int, frames: int, rounds: int, idle_s: float = 0.0) -> tuple[float, float]:
    r, w = os.pipe()                                  # always readable: poll(0) says "more"
    os.write(w, b"x")
    poll = select.poll()
    poll.register(r, select.POLLIN)
    stubs = Stubs()
    real = os.read, os.write
    prefix = f"vslp{os.getpid() & 0xFFFF:04x}"
    sw = live.LiveSwitch(Topology(ports=[PortConfig(prefix + "a"), PortConfig(prefix + "b")]))

    async def open_stub(lp: live.LivePort) -> None:
        lp.dev, lp.state = stub_tap(lp.cfg.name, poll), "up"
    sw.devices.open = open_stub  # type: ignore[method-assign]
    sw.io.start(asyncio.get_running_loop())
    try:
        os.read, os.write = stubs.read, stubs.write   # type: ignore[assignment]
        for p in list(sw.topo.ports):
            await sw.add_port(p, persist=False)
        a, b = sw.ports[prefix + "a"], sw.ports[prefix + "b"]
        hdr = bytes(10)
        stubs.queue = iter([hdr + A + B + b"\x08\x00" + bytes(50)])   # B is learned on b
        sw.io._readable(b)
        raw = hdr + B + A + b"\x08\x00" + bytes(50)
        n = max(1, frames // batch)
        if idle_s:
            n = min(n, IDLE_WAKEUPS)
        switch_ns = timed(lambda: sw.io._readable(a), stubs, raw, batch, n, rounds, idle_s)
        src, dst = a.dev, b.dev
        assert isinstance(src, TapPort) and isinstance(dst, TapPort)

        def relay() -> None:
            for vnet, data in src.read_batch(64):
                dst.write(vnet, data)
        relay_ns = timed(relay, stubs, raw, batch, n, rounds, idle_s)
        assert sw.dp.graph.ports[b.number].tx_packets >= n * batch * rounds   # the switch did forward
    finally:
        os.read, os.write = real
        for lp in sw.ports.values():
            if lp.dev is not None:
                lp.dev.close()                        # not persistent: the TAP goes with its fd
        os.close(r)
        os.close(w)
    return switch_ns, relay_ns


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench live-path", description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=50, help="frames per wake-up (default 50)")
    ap.add_argument("--frames", type=int, default=200_000, help="frames per round (default 200000)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; the best is shown (default 5)")
    ap.add_argument("--idle-ms", type=float, default=0.0,
                    help="sleep this long before each wake-up and report the median wake-up "
                    f"(at most {IDLE_WAKEUPS} wake-ups per round; default 0: back to back)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = ap.parse_args(argv)
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        print("vswitch-bench live-path: needs root and /dev/net/tun (it opens two TAP devices)")
        return 2
    if args.batch < 1 or args.batch > live.BATCH or args.frames < 1 or args.rounds < 1 \
            or not 0 <= args.idle_ms <= 1000:
        print(f"vswitch-bench live-path: --batch must be 1-{live.BATCH}, --frames and --rounds >= 1, "
              "--idle-ms 0-1000")
        return 2
    idle_s = args.idle_ms / 1000
    switch_ns, relay_ns = asyncio.run(measure(args.batch, args.frames, args.rounds, idle_s))
    how = f"median wake-up after {args.idle_ms:g} ms idle" if idle_s else "back to back"
    print(f"dataplane {compiled.status()}, {args.batch} frames per wake-up, {how}, best of {args.rounds} rounds")
    print(f"  vswitchd data path: {switch_ns:7.0f} ns/frame")
    print(f"  bare relay (floor): {relay_ns:7.0f} ns/frame")
    print(f"  vswitchd - floor:   {switch_ns - relay_ns:7.0f} ns/frame ({switch_ns / relay_ns:.2f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "benchmark": "live-path", "dataplane": compiled.status(),
            "settings": {"batch": args.batch, "frames": args.frames, "rounds": args.rounds, "idle_ms": args.idle_ms},
            "figure": "median wake-up" if idle_s else "best round",
            "vswitchd_ns_per_frame": switch_ns, "relay_ns_per_frame": relay_ns,
            "ratio_to_relay": switch_ns / relay_ns}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
