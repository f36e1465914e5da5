"""Link configuration and a link monitor over rtnetlink, with pyroute2.

Configuration and queries (`ifindex`, `link_state`, `move_to_netns`, `set_up`,
`set_mtu`, `add_address`, `configure`) are synchronous: each call opens an ``IPRoute``,
does one or two requests (sub-millisecond) and closes it.  pyroute2 0.9 runs
its own event loop inside its sync API and refuses to nest in a running loop,
so from asyncio call the ``a*`` twins (``await aconfigure(...)``), which run
the same code in a worker thread.

`LinkMonitor` is a plain non-blocking ``NETLINK_ROUTE`` socket subscribed
to ``RTMGRP_LINK`` whose messages pyroute2's marshal decodes.  The daemon
``loop.add_reader(mon.fileno(), ...)``s it and calls `LinkMonitor.read_events`,
which turns RTM_NEWLINK/RTM_DELLINK into ``appeared`` / ``changed`` / ``gone``
events by name.  ``start()`` dumps the existing links first, so a port whose
interface already exists is reported ``appeared`` like one created later.
`LinkMonitor.link` gives a link's state as the monitor last heard it.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import Any, NamedTuple

from pyroute2 import IPRoute
from pyroute2 import config as _pyroute2_config
from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, rtnl
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

__all__ = ["LinkEvent", "LinkMonitor", "LinkNotFound", "LinkState", "ifindex", "link_state", "move_to_netns",
           "set_up", "set_mtu", "add_address", "configure", "aifindex", "alink_state", "amove_to_netns",
           "aset_up", "aset_mtu", "aadd_address", "aconfigure"]

# pyroute2 reaches another namespace through a forked child that it later stops
# with SIGTERM.  The child inherits the daemon's signal handling (the event loop's
# signal wake-up fd), so without this its SIGTERM reads, in the daemon, as "stop".
_pyroute2_config.disable_mp_signal = True

IFF_UP = 0x1
IFF_RUNNING = 0x40


class LinkNotFound(LookupError):
    """No interface of that name (in that namespace)."""


class LinkState(NamedTuple):
    """An interface's index and state: ``up`` is administratively up (IFF_UP), ``running``
    has carrier and is operationally up (IFF_RUNNING: the kernel sets it only on an
    interface that is up)."""

    ifindex: int
    up: bool
    running: bool
    mtu: int


def _ipr(netns: str | None) -> IPRoute:
    # flags=0: never create a namespace by accident (pyroute2's default is O_CREAT).
    return IPRoute(netns=netns, flags=0) if netns else IPRoute()


def _lookup(ipr: IPRoute, name: str, netns: str | None) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise LinkNotFound(f"no interface {name!r}" + (f" in netns {netns!r}" if netns else ""))
    return int(found[0])


def netns_exists(name: str) -> bool:
    """Whether ``ip netns`` has a namespace called ``name`` (its bind mount under /run/netns)."""
    from pyroute2 import netns
    return name in netns.listnetns()


def ifindex(name: str, netns: str | None = None) -> int | None:
    """The interface's index, or None if it does not exist."""
    with _ipr(netns) as ipr:
        found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def link_state(name: str, netns: str | None = None) -> LinkState | None:
    """The interface's `LinkState`, or None if it does not exist."""
    with _ipr(netns) as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return None
        try:
            msgs = list(ipr.link("get", index=found[0]))
        except NetlinkError as e:
            if e.code == errno.ENODEV:       # removed since the lookup
                return None
            raise
    if not msgs:
        return None
    msg = msgs[0]
    flags = msg["flags"]
    return LinkState(int(msg["index"]), bool(flags & IFF_UP), bool(flags & IFF_RUNNING),
                     int(msg.get("IFLA_MTU") or 0))


def move_to_netns(name: str, netns: str) -> None:
    """Move interface ``name`` (from this namespace) into the named namespace (must exist)."""
    with _ipr(None) as ipr:
        ipr.link("set", index=_lookup(ipr, name, None), net_ns_fd=netns)


def set_up(name: str, netns: str | None = None, up: bool = True) -> None:
    with _ipr(netns) as ipr:
        ipr.link("set", index=_lookup(ipr, name, netns), state="up" if up else "down")


def set_mtu(name: str, mtu: int, netns: str | None = None) -> None:
    with _ipr(netns) as ipr:
        ipr.link("set", index=_lookup(ipr, name, netns), mtu=mtu)


def add_address(name: str, cidr: str, netns: str | None = None) -> None:
    """Add ``cidr`` (``10.0.0.1/24``, ``fd00::1/64``) to the interface; an existing address is fine."""
    addr, plen = cidr.split("/")
    with _ipr(netns) as ipr:
        try:
            ipr.addr("add", index=_lookup(ipr, name, netns), address=addr, prefixlen=int(plen))
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise


def configure(name: str, *, netns: str | None = None, mtu: int | None = None, up: bool = True,
              addresses: tuple[str, ...] | list[str] = (), mac: str | None = None) -> None:
    """Set up ``name`` in ``netns`` (None: here): MAC, MTU, addresses, then up (or down).

    An interface still in this namespace is moved into ``netns`` first, so
    the same call serves a fresh TAP and one already moved (a restart).
    """
    if netns and ifindex(name) is not None:
        move_to_netns(name, netns)
    with _ipr(netns) as ipr:
        idx = _lookup(ipr, name, netns)
        if mac is not None:
            ipr.link("set", index=idx, address=mac)
        if mtu is not None:
            ipr.link("set", index=idx, mtu=mtu)
        for cidr in addresses:
            addr, plen = cidr.split("/")
            try:
                ipr.addr("add", index=idx, address=addr, prefixlen=int(plen))
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
        ipr.link("set", index=idx, state="up" if up else "down")


def _threaded(fn: Callable[..., Any]) -> Callable[..., Any]:
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)
    run.__name__ = "a" + fn.__name__
    run.__doc__ = f"``{fn.__name__}`` in a worker thread, for use from a running event loop."
    return run


aifindex = _threaded(ifindex)
alink_state = _threaded(link_state)
amove_to_netns = _threaded(move_to_netns)
aset_up = _threaded(set_up)
aset_mtu = _threaded(set_mtu)
aadd_address = _threaded(add_address)
aconfigure = _threaded(configure)


class LinkEvent(NamedTuple):
    kind: str        # "appeared", "changed" (flags or MTU) or "gone"
    name: str
    ifindex: int
    up: bool         # administratively up (IFF_UP)
    running: bool    # carrier (IFF_RUNNING)
    mtu: int


class LinkMonitor:
    """Link appear/change/disappear events from the kernel, by interface name.

    ``links`` maps the names currently present to their ifindex.  If the
    socket's buffer overflows (ENOBUFS: events were lost), the monitor
    re-dumps and reports the difference, so no appearance or removal is missed.
    """

    def __init__(self, rcvbuf: int = 1 << 20) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                             socket.NETLINK_ROUTE)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind((0, rtnl.RTMGRP_LINK))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._marshal = MarshalRtnl()
        self._state: dict[int, tuple[str, int, int]] = {}   # ifindex -> (name, flags, mtu)
        self._seq = 0
        self._dump_seq: int | None = None
        self._dump_seen: set[int] = set()
        self._resync_pending = False

    @property
    def links(self) -> dict[str, int]:
        return {name: idx for idx, (name, _, _) in self._state.items()}

    def link(self, name: str) -> LinkState | None:
        """``name``'s state as the last message about it said; None if it is not present
        (or not heard of yet: call `read_events` first to take in what is queued)."""
        for idx, (n, flags, mtu) in self._state.items():
            if n == name:
                return LinkState(idx, bool(flags & IFF_UP), bool(flags & IFF_RUNNING), mtu)
        return None

    def fileno(self) -> int:
        return self.sock.fileno()

    def start(self) -> None:
        """Request a dump of existing links; they come out of `read_events` as ``appeared``.

        A socket runs one dump at a time (the kernel answers a second request
        with EBUSY, which would read as an empty dump and report every link
        gone), so while one is running this only asks for another after it.
        """
        if self._dump_seq is not None:
            self._resync_pending = True
            return
        self._seq += 1
        msg = ifinfmsg()
        msg["family"] = socket.AF_UNSPEC
        msg["header"]["type"] = rtnl.RTM_GETLINK
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_DUMP
        msg["header"]["sequence_number"] = self._seq
        msg.encode()
        self.sock.send(msg.data)
        self._dump_seq = self._seq
        self._dump_seen = set()

    def read_events(self, max_msgs: int = 256) -> list[LinkEvent]:
        """Drain pending netlink messages (non-blocking) into events."""
        events: list[LinkEvent] = []
        for _ in range(max_msgs):
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                self.start()   # events were lost: resynchronise from a full dump
                continue
            for msg in self._marshal.parse(data):
                self._handle(msg, events)
        return events

    def _handle(self, msg: Any, events: list[LinkEvent]) -> None:
        mtype, seq = msg["header"]["type"], msg["header"]["sequence_number"]
        if mtype in (NLMSG_DONE, NLMSG_ERROR):
            if seq == self._dump_seq and seq:
                self._dump_seq = None
                # A resync asked for meanwhile (that dump may have lost messages too),
                # or an error that ended it early: prune nothing, dump again.
                if self._resync_pending or (mtype == NLMSG_ERROR and msg.get("error")):
                    self._resync_pending = False
                    self.start()
                    return
                for idx in [i for i in self._state if i not in self._dump_seen]:
                    name, flags, mtu = self._state.pop(idx)
                    events.append(LinkEvent("gone", name, idx, bool(flags & IFF_UP),
                                            bool(flags & IFF_RUNNING), mtu))
            return
        if mtype not in (rtnl.RTM_NEWLINK, rtnl.RTM_DELLINK):
            return
        idx = msg["index"]
        name = msg.get("IFLA_IFNAME") or ""
        flags = msg["flags"]
        mtu = msg.get("IFLA_MTU") or 0
        up, running = bool(flags & IFF_UP), bool(flags & IFF_RUNNING)
        old = self._state.get(idx)
        if mtype == rtnl.RTM_DELLINK:
            if old is not None:
                del self._state[idx]
                events.append(LinkEvent("gone", old[0], idx, up, running, old[2]))
            return
        if self._dump_seq is not None and seq == self._dump_seq:
            self._dump_seen.add(idx)
        if old is None:
            events.append(LinkEvent("appeared", name, idx, up, running, mtu))
        elif old[0] != name:   # renamed: the old name is gone, the new one appeared
            events.append(LinkEvent("gone", old[0], idx, up, running, old[2]))
            events.append(LinkEvent("appeared", name, idx, up, running, mtu))
        elif (old[1] & (IFF_UP | IFF_RUNNING)) != (flags & (IFF_UP | IFF_RUNNING)) or old[2] != mtu:
            events.append(LinkEvent("changed", name, idx, up, running, mtu))
        self._state[idx] = (name, flags, mtu)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LinkMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
