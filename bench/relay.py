"""A bare Python relay between two TAP devices: the floor of any Python TAP switch.

    python -m bench.relay NAME_A=NETNS_A NAME_B=NETNS_B

Creates two TAPs with the same offloads as vswitchd's (IFF_VNET_HDR, checksum
and TSO), moves each into its namespace, and copies every frame from one to
the other on uvloop: no learning, no VLANs, no counters, no Frame objects.
`bench.peers` runs it beside vswitchd, so a run shows how much of vswitchd's
cost is the switch and how much is the Python I/O any such switch pays.
It prints ``ready`` once both TAPs are up and exits on SIGTERM/SIGINT,
removing the TAPs.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from vswitch.io import netlink
from vswitch.io.memory import keep_heap
from vswitch.io.tap import TapPort


async def relay(pairs: list[tuple[str, str]]) -> None:
    taps = [TapPort(name) for name, _ in pairs]
    try:
        for (name, ns) in pairs:
            await netlink.aconfigure(name, netns=ns)
        loop = asyncio.get_running_loop()

        def forward(src: TapPort, dst: TapPort):
            def readable() -> None:
                for vnet, data in src.read_batch(64):
                    dst.write(vnet, data)
            return readable

        a, b = taps
        loop.add_reader(a.fileno(), forward(a, b))
        loop.add_reader(b.fileno(), forward(b, a))
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("ready", flush=True)
        await stop.wait()
    finally:
        for t in taps:
            t.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    pairs = [tuple(a.split("=", 1)) for a in args]
    if len(pairs) != 2 or any(len(p) != 2 for p in pairs):
        print("usage: python -m bench.relay TAP_A=NETNS_A TAP_B=NETNS_B", file=sys.stderr)
        return 2
    keep_heap()                     # as vswitchd does: no page-fault churn per super-frame
    import uvloop
    uvloop.run(relay(pairs))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
