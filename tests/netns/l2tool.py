"""Send or capture raw frames on an interface with scapy (AF_PACKET), run inside a namespace.

    python l2tool.py send IFACE HEX [HEX ...]
    python l2tool.py sniff IFACE SECONDS [src=MAC|dst=MAC ...]   -> JSON list of {"hex", "vlan"} on stdout

``sniff`` prints ``listening`` on stderr once its socket is open, and stops as
soon as each ``src=MAC`` / ``dst=MAC`` given has matched a frame (at the
latest after SECONDS), so a test waits for the frames it needs rather than
for a fixed time.

The guests' kernel has no 8021q module, so VLAN tests send and capture tagged
frames this way; scapy reads the kernel's PACKET_AUXDATA and puts stripped
tags back into the captured frames.
"""

from __future__ import annotations

import json
import sys

from scapy.all import conf, sendp, sniff
from scapy.layers.l2 import Dot1Q, Ether


def main() -> None:
    conf.verb = 0
    cmd, iface = sys.argv[1], sys.argv[2]
    if cmd == "send":
        for h in sys.argv[3:]:
            sendp(bytes.fromhex(h), iface=iface)
        return
    wanted = {tuple(w.lower().split("=", 1)) for w in sys.argv[4:]}

    def seen_all(p) -> bool:
        wanted.difference_update({("src", str(getattr(p, "src", "")).lower()),
                                  ("dst", str(getattr(p, "dst", "")).lower())})
        return bool(sys.argv[4:]) and not wanted

    pkts = sniff(iface=iface, timeout=float(sys.argv[3]), stop_filter=seen_all,
                 started_callback=lambda: print("listening", file=sys.stderr, flush=True))
    out = []
    for p in pkts:
        raw = bytes(p)
        vlan = Ether(raw)[Dot1Q].vlan if Dot1Q in Ether(raw) else None
        out.append({"hex": raw.hex(), "vlan": vlan})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
