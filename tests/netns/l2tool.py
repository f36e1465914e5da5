"""Send or capture raw frames on an interface with scapy (AF_PACKET), run inside a namespace.

    python l2tool.py send IFACE HEX [HEX ...]
    python l2tool.py sniff IFACE SECONDS [src=MAC|dst=MAC|stop=FILE ...]   -> JSON list of {"hex", "vlan"}

``sniff`` prints ``listening`` on stderr once its socket is open, and stops as
soon as each ``src=MAC`` / ``dst=MAC`` given has matched a frame, or once FILE
exists (the test has sent everything), at the latest SECONDS after it began
listening: a test waits for the events it needs rather than for a fixed time.
``send`` writes the frames as they are on a raw AF_PACKET socket (no scapy:
it starts in a fraction of the time).

The guests' kernel has no 8021q module, so VLAN tests send and capture tagged
frames this way; scapy reads the kernel's PACKET_AUXDATA and puts stripped
tags back into the captured frames.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time


def main() -> None:
    cmd, iface = sys.argv[1], sys.argv[2]
    if cmd == "send":
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((iface, 0))
            for h in sys.argv[3:]:
                s.send(bytes.fromhex(h))
        return
    from scapy.all import AsyncSniffer, conf
    from scapy.error import Scapy_Exception
    from scapy.layers.l2 import Dot1Q, Ether
    conf.verb = 0
    conds = [tuple(w.split("=", 1)) for w in sys.argv[4:]]
    wanted = {(k, v.lower()) for k, v in conds if k in ("src", "dst")}
    stop_file = next((v for k, v in conds if k == "stop"), None)

    waits = bool(wanted)

    def seen_all(p) -> bool:
        wanted.difference_update({("src", str(getattr(p, "src", "")).lower()),
                                  ("dst", str(getattr(p, "dst", "")).lower())})
        return waits and not wanted

    started = threading.Event()

    def listening() -> None:
        print("listening", file=sys.stderr, flush=True)
        started.set()
    sniffer = AsyncSniffer(iface=iface, stop_filter=seen_all, started_callback=listening)
    sniffer.start()
    started.wait(60)
    deadline = time.monotonic() + float(sys.argv[3])
    while sniffer.running and time.monotonic() < deadline and not (stop_file and os.path.exists(stop_file)):
        time.sleep(0.05)
    with contextlib.suppress(Scapy_Exception):      # already ended by stop_filter
        sniffer.stop()
    sniffer.join()
    pkts = sniffer.results or []
    out = []
    for p in pkts:
        raw = bytes(p)
        vlan = Ether(raw)[Dot1Q].vlan if Dot1Q in Ether(raw) else None
        out.append({"hex": raw.hex(), "vlan": vlan})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
