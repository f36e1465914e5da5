"""A guest interface's receive filter as its kernel holds it: multicast list and flags.

What Linux hands a NIC driver's ``ndo_set_rx_mode`` is the netdev's link-layer multicast
list (``netdev_mc_list``: every group the stack joined -- IPv6's all-nodes and
solicited-node groups, IPv4's all-hosts, a packet socket's PACKET_MR_MULTICAST -- as
``/proc/net/dev_mcast`` prints it) and its IFF_ALLMULTI / IFF_PROMISC flags.  For a tap
guest in its own namespace the tap is the guest's netdev, so that is the guest's own
filter.  `read_filters(netns, names)` reads it for the named interfaces of one namespace:
in a short-lived thread that enters the namespace (``setns`` changes the calling thread
only; the thread ends there, so no other work ever runs in the guest's namespace), reading
``/proc/thread-self/net/dev_mcast`` (the thread's namespace, where ``/proc/net`` would be
the process's) and the flags with SIOCGIFFLAGS on a socket made in that namespace.

An interface missing from the namespace is left out of the result; a namespace that
cannot be entered raises OSError.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import threading
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["RxFilter", "read_filters", "parse_dev_mcast", "IFF_PROMISC", "IFF_ALLMULTI"]

IFF_PROMISC = 0x100
IFF_ALLMULTI = 0x200
SIOCGIFFLAGS = 0x8913


class RxFilter(NamedTuple):
    groups: tuple[bytes, ...]     # link-layer multicast addresses, in the kernel's order
    allmulti: bool
    promisc: bool


def parse_dev_mcast(text: str) -> dict[str, list[bytes]]:
    """``/proc/net/dev_mcast`` lines (``ifindex name users global hex-address``) by name."""
    out: dict[str, list[bytes]] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) != 5 or len(f[4]) != 12:
            continue
        try:
            mac = bytes.fromhex(f[4])
        except ValueError:
            continue
        out.setdefault(f[1], []).append(mac)
    return out


def _flags(sock: socket.socket, name: str) -> int | None:
    try:
        res = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("16sh14x", name.encode()[:15], 0))
    except OSError:
        return None                  # no such interface (here)
    return int(struct.unpack("16sh14x", res)[1])


def _read_here(names: list[str]) -> dict[str, RxFilter]:
    with open("/proc/thread-self/net/dev_mcast") as f:
        lists = parse_dev_mcast(f.read())
    out: dict[str, RxFilter] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in names:
            flags = _flags(s, name)
            if flags is not None:
                out[name] = RxFilter(tuple(lists.get(name, ())), bool(flags & IFF_ALLMULTI),
                                     bool(flags & IFF_PROMISC))
    return out


def read_filters(netns: str | None, names: Iterable[str]) -> dict[str, RxFilter]:
    """The receive filters of interfaces ``names`` in namespace ``netns`` (None: here)."""
    wanted = list(names)
    if netns is None:
        return _read_here(wanted)
    result: list[dict[str, RxFilter]] = []
    error: list[BaseException] = []

    def run() -> None:
        from pyroute2 import netns as _netns
        try:
            _netns.setns(netns, flags=0, fork=False)       # flags=0: never create one
            result.append(_read_here(wanted))
        except BaseException as e:                         # handed to the caller's thread
            error.append(e)

    t = threading.Thread(target=run, name=f"rx-filter-{netns}", daemon=True)
    t.start()
    t.join()
    if error:
        e = error[0]
        raise e if isinstance(e, OSError) else OSError(f"netns {netns!r}: {e}")
    return result[0]
