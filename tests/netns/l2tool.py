"""Send or capture raw frames on an interface with scapy (AF_PACKET), run inside a namespace.

    python l2tool.py send IFACE HEX [HEX ...]
    python l2tool.py sniff IFACE SECONDS      -> JSON list of {"hex", "vlan"} on stdout

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
    pkts = sniff(iface=iface, timeout=float(sys.argv[3]))
    out = []
    for p in pkts:
        raw = bytes(p)
        vlan = Ether(raw)[Dot1Q].vlan if Dot1Q in Ether(raw) else None
        out.append({"hex": raw.hex(), "vlan": vlan})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
