"""``vswitch-bench replay --live``: send captures onto an interface in real time, tcpreplay-style.

Where the frames go:

``--iface IF``   an interface of this network namespace (run it under ``ip netns exec NS``
                 for another).  Frames are sent as they are in the capture, with an
                 AF_PACKET socket bound to IF: the kernel transmits them on IF (a veth's
                 peer receives them, a TAP's reader reads them, a NIC puts them on the wire).
``--port NAME``  a port of the vswitchd behind ``--socket``: the frames enter the switch on
                 that port, sent from outside the switch, from where the port's guest sits:
                 *tap* port: sent on the TAP interface itself, from the namespace it is in
                 (its ``netns``, else the daemon's): the kernel hands a frame transmitted on
                 a TAP to the file descriptor behind it, which is vswitchd's, so vswitchd
                 reads each one as the port's rx.  *attach* port on a veth: sent on the
                 veth's peer (found by netlink, in whichever named namespace it is), so the
                 frames arrive on the attached interface as received traffic, which is what
                 vswitchd reads (it ignores frames going out of the interface).  An attach
                 port on anything else (a VM's tap, a NIC) is refused: frames enter through
                 it only from its far side (the VM, the wire); use ``--iface`` there.
                 After the run the daemon's counter deltas are printed: the port's, the
                 switch's, the other ports' tx, and the kernel's own counters of the
                 interface sent on (a TAP's tx_dropped counts frames vswitchd did not read
                 in time).

The schedule is `bench.replay_pacing` (cumulative: the ideal time of frame k never
depends on when frame k-1 left).  The sender sleeps until ``spin_ns`` before a frame is
due, then spins on the monotonic clock (the sleep's granularity is tens of µs here: the
process's timer slack is set to 1 ns, best effort); frames already due go at once, as a
batch.  The time spent waiting is first spent reading the plan ahead (up to LOOKAHEAD
frames or LOOKAHEAD_BYTES), so that after a stall (the process descheduled on a busy
machine) the frames that have fallen due are already read and go at send speed.  Frames
that are due together go up to ``--batch`` per sendmmsg(2): with ``--preload`` (the
captures read into memory first) straight from memory, streamed copied into a staging
buffer; with ``--batch 1`` each frame is one send(2).  As tcpreplay, an ENOBUFS or EAGAIN is retried
(and counted) and any other error fails that frame (counted) and the run goes on; an
interface that vanishes ends the run.  The elapsed time runs from just before the first
frame to just after the last one was handed to the kernel.

``--duration S``: no frame is due at or after S seconds, and the clock is checked before
each frame (before each batch at top speed): tcpreplay instead stops after the first
packet it sent past S.  ``--loop 0`` loops until --limit, --duration or Ctrl-C (the
summary is printed then too).

Exit status: 0 the run completed (some frames may have failed: the summary says how many);
1 a capture could not be read or is not Ethernet, or the interface vanished mid-run;
2 bad arguments, no such interface or port, or no permission; 130 interrupted.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bench.replay_pacing import Limits, Progress, Records, Schedule, Speed, plan
from bench.replay_summary import FlowCount, SendStats, summary_lines
from vswitch.io.pcap import CaptureError, read_capture

SPIN_NS = 200_000            # sleep until this long before a frame is due, then spin
CLOCK_EVERY = 64             # behind schedule, read the clock at least every this many frames
MAX_BATCH = 1024             # UIO_MAXIOV: sendmmsg's limit per call
LOOKAHEAD = 16384            # frames read ahead while waiting for the next one to be due ...
LOOKAHEAD_BYTES = 8 << 20    # ... and their bytes at most
READ_MARGIN_NS = 2_000       # stop reading ahead this long before a frame is due (a read may overrun it)
GONE = (errno.ENODEV, errno.ENXIO)
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
PR_SET_TIMERSLACK = 29
CLONE_NEWNET = 0x40000000


class TargetError(Exception):
    """The interface or port cannot be sent to (exit 2, one line)."""


class InterfaceGone(Exception):
    """The interface vanished during the run."""


# -- sendmmsg --------------------------------------------------------------------------------

class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        _LIBC.sendmmsg.restype = ctypes.c_int
    return _LIBC


def set_timer_slack(ns: int = 1) -> bool:
    """Make the process's sleeps end closer to when asked (PR_SET_TIMERSLACK); best effort."""
    try:
        return int(_libc().prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class Preloaded:
    """The captures' frames in memory, concatenated in replay order, with a sendmmsg(2) vector
    over them built on first use (80 bytes per frame besides the frame itself)."""

    def __init__(self, captures: Sequence[Sequence[tuple[int, bytes]]]) -> None:
        self.records = [rec for cap in captures for rec in cap]
        self.sizes = [len(cap) for cap in captures]
        self.count = len(self.records)
        cum = [0]
        for _, data in self.records:
            cum.append(cum[-1] + len(data))
        self.cum = cum
        self._vec: tuple[bytearray, bytearray, bytearray, int] | None = None

    def factories(self) -> list[Callable[[], Records]]:
        out: list[Callable[[], Records]] = []
        lo = 0
        for n in self.sizes:
            out.append(functools.partial(self._slice, lo, n))
            lo += n
        return out

    def _slice(self, lo: int, n: int) -> Records:
        return self.records[lo:lo + n]

    def vector(self) -> int:
        """Address of the mmsghdr array (one message, one iovec, per frame)."""
        if self._vec is None:
            data = bytearray(b"".join(d for _, d in self.records))
            n = self.count
            iov_size, msg_size = ctypes.sizeof(_IoVec), ctypes.sizeof(_MMsgHdr)
            iovs, msgs = bytearray(iov_size * max(n, 1)), bytearray(msg_size * max(n, 1))
            base = ctypes.addressof((ctypes.c_char * len(data)).from_buffer(data)) if data else 0
            iov_base = ctypes.addressof((ctypes.c_char * len(iovs)).from_buffer(iovs))
            iov = struct.Struct("PN")
            ptr, size = struct.Struct("P"), struct.Struct("N")
            at_iov = _MMsgHdr.msg_hdr.offset + _MsgHdr.msg_iov.offset
            at_len = _MMsgHdr.msg_hdr.offset + _MsgHdr.msg_iovlen.offset
            cum = self.cum
            for i in range(n):
                iov.pack_into(iovs, i * iov_size, base + cum[i], cum[i + 1] - cum[i])
                ptr.pack_into(msgs, i * msg_size + at_iov, iov_base + i * iov_size)
                size.pack_into(msgs, i * msg_size + at_len, 1)
            addr = ctypes.addressof((ctypes.c_char * len(msgs)).from_buffer(msgs))
            self._vec = (data, iovs, msgs, addr)        # the buffers must live as long as the vector
        return self._vec[3]


# -- the sender -------------------------------------------------------------------------------

@contextlib.contextmanager
def in_netns(path: str | None) -> Iterator[None]:
    """Run the block in the network namespace at ``path`` (/run/netns/NAME or /proc/PID/ns/net)."""
    if path is None:
        yield
        return
    from pyroute2 import netns
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise TargetError(f"network namespace {path}: {e.strerror}") from None
    back = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            netns.setns(fd, flags=0)
        except OSError as e:
            raise TargetError(f"cannot enter network namespace {path}: {os.strerror(e.errno or 0)} "
                              "(entering a namespace needs root)") from None
        try:
            yield
        finally:
            netns.setns(back, flags=0)
    finally:
        os.close(back)
        os.close(fd)


def ns_path(name: str | None) -> str | None:
    return None if name is None else (name if name.startswith("/") else f"/run/netns/{name}")


class PacketSender:
    """An AF_PACKET socket bound to one interface, sending whole Ethernet frames, with tcpreplay's
    counters (`SendStats`).  Protocol 0: it receives nothing."""

    def __init__(self, ifname: str, netns: str | None = None) -> None:
        self.ifname = ifname
        where = f"--iface {ifname}" + (f" (netns {netns})" if netns else "")
        self.stats = SendStats()
        with in_netns(netns):
            try:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
            except PermissionError:
                raise TargetError(f"{where}: cannot open a packet socket: permission denied (sending raw "
                                  "frames needs root or CAP_NET_RAW)") from None
            try:
                try:
                    socket.if_nametoindex(ifname)
                except OSError:
                    raise TargetError(f"{where}: no such interface") from None
                try:
                    sock.bind((ifname, 0))
                    flags = struct.unpack_from("H", _ioctl_ifreq(sock, SIOCGIFFLAGS, ifname), 16)[0]
                except OSError as e:
                    raise TargetError(f"{where}: {e.strerror or e}") from None
                if not flags & IFF_UP:
                    raise TargetError(f"{where}: the interface is down")
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self.fd = sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def _failed(self, err: int, frames: int = 1) -> None:
        if err in GONE:
            raise InterfaceGone(f"{self.ifname}: {os.strerror(err)}")
        st = self.stats
        st.failed += frames
        name = errno.errorcode.get(err, str(err))
        st.errors[name] = st.errors.get(name, 0) + frames

    def send(self, frame: bytes) -> None:
        st = self.stats
        while True:
            try:
                n = self.sock.send(frame)
            except (BlockingIOError, InterruptedError):
                st.retry_eagain += 1
                continue
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    st.retry_enobufs += 1
                    continue
                self._failed(e.errno or 0)
                return
            break
        if n == len(frame):
            st.sent += 1
            st.bytes += n
        else:
            st.truncated += 1

    def send_run(self, pre: Preloaded, lo: int, n: int) -> None:
        """Frames lo .. lo+n-1 of `pre` with sendmmsg(2), straight from the preloaded vector."""
        self.send_mmsg(pre.vector(), lo, n, pre.cum)

    def send_mmsg(self, vector: int, lo: int, n: int, cum: Sequence[int]) -> None:
        """Messages lo .. lo+n-1 of the mmsghdr array at ``vector`` with sendmmsg(2); ``cum[i]`` is
        the bytes of messages before i.  A packet socket sends a frame whole or not at all
        (net/packet/af_packet.c packet_snd), so no message is ever truncated here."""
        libc, fd, st = _libc(), self.fd, self.stats
        size = ctypes.sizeof(_MMsgHdr)
        while n > 0:
            k = libc.sendmmsg(fd, vector + lo * size, n, 0)
            if k > 0:
                st.sent += k
                st.bytes += cum[lo + k] - cum[lo]
                lo += k
                n -= k
                continue
            err = ctypes.get_errno()
            if err == errno.EINTR:
                continue
            if err == errno.EAGAIN:
                st.retry_eagain += 1
            elif err == errno.ENOBUFS:
                st.retry_enobufs += 1
            else:                           # the first message failed: count it, go on with the rest
                self._failed(err)
                lo += 1
                n -= 1


class _Direct:
    """One send(2) per frame."""

    pending = 0

    def __init__(self, sender: Any) -> None:
        self.add = sender.send

    def flush(self) -> None:
        pass


class _Vector:
    """Runs of consecutive preloaded frames, one sendmmsg(2) each, without copying.  The frames
    given to `add` are those of the preloaded captures, in order, looping."""

    def __init__(self, sender: Any, pre: Preloaded, batch: int) -> None:
        self.sender, self.pre, self.batch = sender, pre, batch
        self.lo = self.pending = self.idx = 0

    def add(self, data: bytes) -> None:
        n = self.pending
        if n and (n >= self.batch or self.idx != self.lo + n):
            self.flush()
            n = 0
        if not n:
            self.lo = self.idx
        self.pending = n + 1
        self.idx += 1
        if self.idx == self.pre.count:
            self.idx = 0

    def flush(self) -> None:
        if self.pending:
            self.sender.send_run(self.pre, self.lo, self.pending)
            self.pending = 0


class _Staged:
    """Streamed frames copied into one buffer, up to ``batch`` (or 1 MiB) per sendmmsg(2); a frame
    larger than the buffer goes alone with send(2)."""

    SIZE = 1 << 20

    def __init__(self, sender: Any, batch: int) -> None:
        self.sender, self.batch = sender, batch
        self.buf = bytearray(self.SIZE)
        self.mv = memoryview(self.buf)
        base = ctypes.addressof((ctypes.c_char * self.SIZE).from_buffer(self.buf))
        iov_size, msg_size = ctypes.sizeof(_IoVec), ctypes.sizeof(_MMsgHdr)
        self.iovs = bytearray(iov_size * batch)
        self.msgs = bytearray(msg_size * batch)
        iov_base = ctypes.addressof((ctypes.c_char * len(self.iovs)).from_buffer(self.iovs))
        for i in range(batch):
            struct.pack_into("P", self.msgs, i * msg_size + _MMsgHdr.msg_hdr.offset + _MsgHdr.msg_iov.offset,
                             iov_base + i * iov_size)
            struct.pack_into("N", self.msgs, i * msg_size + _MMsgHdr.msg_hdr.offset + _MsgHdr.msg_iovlen.offset, 1)
        self.vector = ctypes.addressof((ctypes.c_char * len(self.msgs)).from_buffer(self.msgs))
        self.base = base
        self.iov = struct.Struct("PN")
        self.iov_size = iov_size
        self.cum = [0] * (batch + 1)
        self.pending = 0

    def add(self, data: bytes) -> None:
        n, size = self.pending, len(data)
        off = self.cum[n]
        if n >= self.batch or off + size > self.SIZE:
            self.flush()
            n = off = 0
        if size > self.SIZE:
            self.sender.send(data)
            return
        self.mv[off:off + size] = data
        self.iov.pack_into(self.iovs, n * self.iov_size, self.base + off, size)
        self.cum[n + 1] = off + size
        self.pending = n + 1

    def flush(self) -> None:
        if self.pending:
            self.sender.send_mmsg(self.vector, 0, self.pending, self.cum)
            self.pending = 0


def _ioctl_ifreq(sock: socket.socket, req: int, ifname: str) -> bytes:
    import fcntl
    return fcntl.ioctl(sock.fileno(), req, struct.pack("16s16x", ifname.encode()))


# -- the timed loops --------------------------------------------------------------------------

class Pacer:
    """Sends planned frames at their due times.  ``clock`` (ns, monotonic) and ``sleep`` (s) are
    the system's unless a test gives its own; ``start`` and ``end`` (clock ns) are set by a run,
    also when it ends by an exception (Ctrl-C, the interface gone)."""

    def __init__(self, sender: Any, clock: Callable[[], int] = time.perf_counter_ns,
                 sleep: Callable[[float], None] = time.sleep, spin_ns: int = SPIN_NS) -> None:
        self.sender = sender
        self.clock = clock
        self.sleep = sleep
        self.spin_ns = spin_ns
        self.start = self.end = 0
        self.stopped_by_clock = False

    def _wait(self, t: int, now: int) -> None:
        rem = t - now
        if rem > self.spin_ns:
            self.sleep((rem - self.spin_ns) / 1e9)
        clock = self.clock
        while clock() < t:
            pass

    def _wait_reading(self, t: int, now: int, it: Iterator[tuple[int, bytes]], ahead: deque[tuple[int, bytes]],
                      ahead_bytes: list[int]) -> bool:
        """`_wait`, but with the time before ``t`` spent reading the plan ahead into ``ahead`` (up
        to LOOKAHEAD frames or bytes, stopping READ_MARGIN_NS before ``t``), so that a sender that
        falls behind later has the frames read already.  Returns False once ``it`` is exhausted."""
        clock = self.clock
        more = True
        while more and len(ahead) < LOOKAHEAD and ahead_bytes[0] < LOOKAHEAD_BYTES and t - now > READ_MARGIN_NS:
            try:
                item = next(it)
            except StopIteration:
                more = False
                break
            ahead.append(item)
            ahead_bytes[0] += len(item[1])
            now = clock()
        if t > now:
            self._wait(t, now)
        return more

    def run(self, items: Iterator[tuple[int, bytes]], duration_ns: int | None = None,
            pre: Preloaded | None = None, batch: int = 1, stamp: bool = True) -> None:
        """Send each (due ns, frame) of ``items`` at start + due.  With ``batch`` > 1 the frames
        that are due go up to ``batch`` per sendmmsg: straight from ``pre`` when given (the frames
        of ``items`` are then those of ``pre``, in order, looping), else copied into a staging
        buffer; with ``batch`` 1, one send each.  With ``stamp`` the run ends when the last send
        returned (a clock read after each frame; at top speed, without it, when ``items`` is
        exhausted)."""
        clock = self.clock
        out: Any = (_Direct(self.sender) if batch <= 1 else _Vector(self.sender, pre, batch) if pre is not None
                    else _Staged(self.sender, batch))
        add = out.add
        stamp_each = stamp and isinstance(out, _Direct)    # batched, the last flush is the last send
        deadline = duration_ns
        it = iter(items)
        ahead: deque[tuple[int, bytes]] = deque()
        ahead_bytes = [0]
        more = True
        self.start = now = clock()
        start = self.start
        last = 0
        since = 0
        try:
            while True:
                if ahead:
                    due, data = ahead.popleft()
                    ahead_bytes[0] -= len(data)
                elif more:
                    try:
                        due, data = next(it)
                    except StopIteration:
                        break
                else:
                    break
                t = start + due
                if t > now or since >= CLOCK_EVERY:
                    if out.pending:
                        out.flush()
                    now = clock()
                    since = 0
                    if t > now:
                        if more:
                            more = self._wait_reading(t, now, it, ahead, ahead_bytes)
                        else:
                            self._wait(t, now)
                        now = clock()
                elif deadline is not None:
                    now = clock()
                if deadline is not None and now - start >= deadline:
                    self.stopped_by_clock = True
                    break
                since += 1
                add(data)
                if stamp_each:
                    last = clock()
            if out.pending:
                out.flush()
                if stamp:
                    last = clock()
        finally:
            self.end = last if stamp and last else clock()

    def run_topspeed(self, pre: Preloaded, limits: Limits, batch: int, progress: Progress) -> None:
        """Top speed from memory: runs of ``batch`` frames straight from the preloaded vector (one
        sendmmsg each), or one send per frame with ``batch`` 1; the same frames `plan` gives."""
        clock, sender = self.clock, self.sender
        deadline = limits.duration_ns
        total = pre.count
        frames = [d for _, d in pre.records]
        self.start = start = clock()
        sent = 0
        try:
            if not total:
                progress.stopped_by = "empty"
                return
            while limits.loops == 0 or progress.loops < limits.loops:
                progress.loops += 1
                lo = 0
                while lo < total:
                    if deadline is not None and clock() - start >= deadline:
                        self.stopped_by_clock = True
                        progress.stopped_by = "duration"
                        return
                    n = min(batch, total - lo)
                    if limits.limit:
                        n = min(n, limits.limit - sent)
                    if batch > 1:
                        sender.send_run(pre, lo, n)
                    else:
                        sender.send(frames[lo])
                    sent += n
                    lo += n
                    progress.frames = sent
                    if limits.limit and sent >= limits.limit:
                        progress.stopped_by = "limit"
                        return
        finally:
            self.end = clock()


# -- where to send ----------------------------------------------------------------------------

@dataclass
class Target:
    ifname: str                        # the interface sent on
    netns: str | None = None           # the path of its namespace (None: this one)
    port: dict[str, Any] | None = None  # vswitchd's ``show`` of the port
    how: str = ""                      # what "into the port" meant, for the report
    netns_label: str | None = None


def _daemon_pid(sock_path: str) -> int | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.connect(sock_path)
        pid, _uid, _gid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                           struct.calcsize("3i")))
        return pid
    except OSError:
        return None
    finally:
        s.close()


def _same_netns(path: str) -> bool:
    try:
        return os.stat(path).st_ino == os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return True


def _veth_peer(ifname: str, here: str | None) -> tuple[str, str | None, str | None]:
    """(peer name, its namespace path, its namespace name) of veth ``ifname`` in namespace ``here``."""
    from pyroute2 import IPRoute
    with in_netns(here):
        ip = IPRoute()
    try:
        idx = ip.link_lookup(ifname=ifname)
        if not idx:
            raise TargetError(f"attach port {ifname}: no interface {ifname} in vswitchd's namespace")
        link = ip.get_links(idx[0])[0]
        info = link.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        if kind != "veth":
            raise TargetError(
                f"--port {ifname}: an attach port on a {kind or 'physical or unknown'} interface: frames "
                "enter the switch through it only from its far side (the VM behind a tap, the wire); "
                "send there with --iface")
        peer_idx = link.get_attr("IFLA_LINK")
        nsid = link.get_attr("IFLA_LINK_NETNSID")
        if nsid is None:
            peer = ip.get_links(peer_idx)[0].get_attr("IFLA_IFNAME")
            return peer, here, None
        for name in sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []:
            path = f"/run/netns/{name}"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                got = ip.get_netnsid(fd=fd)
            except Exception:           # pyroute2 raises NetlinkError for a namespace without an id
                got = None
            finally:
                os.close(fd)
            if got and got.get("nsid") == nsid:
                with in_netns(path), IPRoute() as ip2:
                    peer = ip2.get_links(peer_idx)[0].get_attr("IFLA_IFNAME")
                return peer, path, name
        raise TargetError(f"--port {ifname}: the peer of veth {ifname} is in a network namespace with no "
                          "name under /run/netns; send there with ip netns exec ... --iface")
    finally:
        ip.close()


def resolve_port(client: Any, name: str, sock_path: str) -> Target:
    from vswitch.control.protocol import ControlError
    try:
        ports = client.call("show")["ports"]
    except ControlError as e:
        raise TargetError(f"--port {name}: {e}") from None
    port = next((p for p in ports if p["name"] == name), None)
    if port is None:
        have = ", ".join(p["name"] for p in ports) or "none"
        raise TargetError(f"--port {name}: vswitchd at {sock_path} has no such port (ports: {have})")
    if port.get("state") != "up":
        why = f" ({port['error']})" if port.get("error") else ""
        raise TargetError(f"--port {name}: the port is {port.get('state')}{why}")
    pid = _daemon_pid(sock_path)
    daemon_ns = f"/proc/{pid}/ns/net" if pid and not _same_netns(f"/proc/{pid}/ns/net") else None
    if port["type"] == "tap":
        ns = ns_path(port["netns"]) if port.get("netns") else daemon_ns
        where = f"netns {port['netns']}" if port.get("netns") else "vswitchd's namespace"
        return Target(name, ns, port, f"tap: sent on its TAP {name} in {where}; vswitchd reads them as the "
                      "port's rx", port.get("netns"))
    if port["type"] == "attach":
        peer, ns, ns_name = _veth_peer(name, daemon_ns)
        where = f"netns {ns_name}" if ns_name else "vswitchd's namespace"
        return Target(peer, ns, port, f"attach: sent on {peer} in {where}, the peer of veth {name}, so they "
                      f"arrive on {name} as received traffic, which vswitchd reads", ns_name)
    raise TargetError(f"--port {name}: a {port['type']} port takes no live frames")


def link_stats(ifname: str, netns: str | None) -> dict[str, int] | None:
    """The kernel's IFLA_STATS64 of the interface (None if it cannot be read)."""
    try:
        from pyroute2 import IPRoute
        with in_netns(netns):
            ip = IPRoute()
        with ip:
            idx = ip.link_lookup(ifname=ifname)
            if not idx:
                return None
            return dict(ip.get_links(idx[0])[0].get_attr("IFLA_STATS64"))
    except Exception:
        return None


# -- the run ----------------------------------------------------------------------------------

@dataclass
class LiveOptions:
    captures: list[str]
    speed: Speed
    limits: Limits
    preload: bool = False
    batch: int = 64
    iface: str | None = None
    port: str | None = None
    socket: str | None = None
    json_path: str | None = None


def _delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in b.items():
        if isinstance(v, dict):
            out[k] = _delta(a.get(k, {}) if isinstance(a.get(k), dict) else {}, v)
        elif isinstance(v, int) and not isinstance(v, bool):
            out[k] = v - int(a.get(k, 0) or 0)
    return out


def _counters(client: Any) -> dict[str, Any]:
    return dict(client.call("counters"))


def _wait_drained(client: Any, name: str, before: dict[str, Any], sent: int, timeout: float = 10.0) -> None:
    """Until the port has counted ``sent`` more frames (rx or dropped) or its counters stop moving."""
    deadline = time.monotonic() + timeout
    last, still = -1, time.monotonic()
    while time.monotonic() < deadline:
        p = client.call("counters", port=name)["ports"][name]
        b = before["ports"][name]
        got = (p["rx_packets"] - b["rx_packets"]) + (p["rx_dropped"] - b["rx_dropped"])
        if got >= sent:
            return
        if got != last:
            last, still = got, time.monotonic()
        elif time.monotonic() - still > 0.5:
            return
        time.sleep(0.02)


def _port_lines(target: Target, d: dict[str, Any], kernel: dict[str, int] | None) -> list[str]:
    name = target.port["name"] if target.port else target.ifname
    pd = d["ports"].get(name, {})
    out = [f"vswitchd port {name} ({target.how}):",
           "\t" + ", ".join(f"{k} {v:+d}" for k, v in pd.items())]
    sw = d.get("switch", {})
    drops = sw.get("drops", {})
    dropped = sum(drops.values())
    detail = ", ".join(f"{k} {v:+d}" for k, v in drops.items() if v)
    out.append(f"vswitchd switch: forwarded {sw.get('forwarded', 0):+d}, flooded {sw.get('flooded', 0):+d} "
               f"(copies {sw.get('flood_copies', 0):+d}), dropped {dropped:+d}" + (f" ({detail})" if detail else ""))
    others = [(n, p) for n, p in d["ports"].items() if n != name]
    if others:
        out.append("vswitchd other ports: " + ", ".join(
            f"{n} tx_packets {p.get('tx_packets', 0):+d} tx_dropped {p.get('tx_dropped', 0):+d}" for n, p in others))
    if kernel is not None:
        keys = ("tx_packets", "tx_bytes", "tx_dropped", "tx_errors")
        where = f" (netns {target.netns_label})" if target.netns_label else ""
        out.append(f"kernel counters of {target.ifname}{where}: " + ", ".join(f"{k} {kernel.get(k, 0):+d}"
                                                                          for k in keys))
    return out


def _streamed(paths: Sequence[str]) -> list[Callable[[], Records]]:
    """A factory per capture that opens it afresh on each call; the first call gets a capture
    opened now, so that opening the first one is not part of the timed run (as in tcpreplay)."""
    opened: list[Any] = [read_capture(p) for p in paths[:1]] + [None] * (len(paths) - 1)

    def factory(i: int, path: str) -> Callable[[], Records]:
        def records() -> Records:
            cap, opened[i] = opened[i], None
            return cap if cap is not None else read_capture(path)
        return records
    return [factory(i, p) for i, p in enumerate(paths)]


def run_live(opts: LiveOptions, out: Any = None, err: Any = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr

    def fail(text: str) -> None:
        print(f"vswitch-bench: {text}", file=err)

    # Everything is checked before anything is sent: the captures, then the target.
    for path in opts.captures:
        read_capture(path).close()       # CaptureError / NotEthernet: the caller says it in one line
    client = None
    if opts.port is not None:
        from vswitch.control.client import Client
        from vswitch.control.protocol import DEFAULT_SOCKET
        sock_path = opts.socket or DEFAULT_SOCKET
        client = Client(sock_path)
        target = resolve_port(client, opts.port, sock_path)
    else:
        assert opts.iface is not None
        target = Target(opts.iface)
    sender = PacketSender(target.ifname, target.netns)
    try:
        pre = None
        if opts.preload:
            try:
                pre = Preloaded([list(read_capture(p)) for p in opts.captures])
            except CaptureError as e:
                raise CaptureError(f"{e} (while preloading; nothing was sent)") from None
            if opts.batch > 1:
                pre.vector()
        factories = pre.factories() if pre is not None else _streamed(opts.captures)
        before = _counters(client) if client is not None else None
        kernel0 = link_stats(target.ifname, target.netns)
        set_timer_slack(1)
        pacer = Pacer(sender)
        progress = Progress()
        interrupted, gone, read_error = False, None, None
        try:
            if pre is not None and opts.speed.mode == "topspeed":
                pacer.run_topspeed(pre, opts.limits, min(opts.batch, MAX_BATCH), progress)
            else:
                items = plan(factories, opts.speed, opts.limits, progress, Schedule(opts.speed))
                pacer.run(items, opts.limits.duration_ns, pre, min(opts.batch, MAX_BATCH),
                          stamp=opts.speed.mode != "topspeed")
        except KeyboardInterrupt:
            interrupted = True
        except InterfaceGone as e:
            gone = str(e)
        except CaptureError as e:
            read_error = str(e)
        elapsed = pacer.end - pacer.start
        st = sender.stats
        flows = _flows(opts, pre, st.attempted)
        lines = summary_lines(target.ifname, st, elapsed, flows)
        for line in lines:
            print(line, file=out)
        res_port = None
        if client is not None and before is not None:
            _wait_drained(client, opts.port or "", before, st.sent)
            after = _counters(client)
            kernel1 = link_stats(target.ifname, target.netns)
            kd = _delta(kernel0, kernel1) if kernel0 and kernel1 else None
            delta = _delta(before, after)
            res_port = {"delta": delta, "kernel_delta": kd}
            for line in _port_lines(target, delta, kd):
                print(line, file=out)
        out.flush()
        if st.errors:
            fail("failed frames: " + ", ".join(
                f"{c} x {os.strerror(getattr(errno, n))} ({n})" if hasattr(errno, n) else f"{c} x errno {n}"
                for n, c in st.errors.items()))
        if opts.json_path:
            doc = {"interface": target.ifname, "netns": target.netns_label, "how": target.how or None,
                   "speed": {"mode": opts.speed.mode, "value": opts.speed.value},
                   "preload": opts.preload, "batch": opts.batch,
                   "packets": st.sent, "bytes": st.bytes, "elapsed_ns": elapsed,
                   "failed": st.failed, "truncated": st.truncated, "retried_enobufs": st.retry_enobufs,
                   "retried_eagain": st.retry_eagain, "errors": st.errors, "loops": progress.loops,
                   "stopped_by": "clock" if pacer.stopped_by_clock else progress.stopped_by,
                   "flows": None if flows is None else dict(zip(("flows", "flow_packets", "non_flow_packets"),
                                                                flows, strict=True)),
                   "summary": lines, "port": res_port, "interrupted": interrupted, "gone": gone}
            with open(opts.json_path, "w") as f:
                f.write(json.dumps(doc, indent=2) + "\n")
        if gone:
            fail(f"the interface vanished after {st.attempted} frames: {gone}")
            return 1
        if read_error:
            fail(f"error: {read_error} (the frames before it were sent)")
            return 1
        if interrupted:
            fail(f"interrupted after {st.attempted} frames")
            return 130
        return 0
    finally:
        sender.close()


def _flows(opts: LiveOptions, pre: Preloaded | None, attempted: int) -> tuple[int, int, int] | None:
    if pre is not None:
        lo = 0
        caps = []
        for n in pre.sizes:
            caps.append([d for _, d in pre.records[lo:lo + n]])
            lo += n
        return FlowCount.of(caps).totals(attempted, preloaded=True)
    # Streamed: classify the frames of one loop (at most the frames attempted), reading the captures
    # again after the run so that the timed loop never parses a header; then count as tcpreplay did
    # while it sent.
    left = [attempted]

    def frames(path: str) -> Iterator[bytes]:
        for _, d in read_capture(path):
            if left[0] <= 0:
                return
            left[0] -= 1
            yield d
    try:
        fc = FlowCount.of(frames(p) for p in opts.captures)
    except CaptureError:
        return None
    return fc.totals(attempted, preloaded=False)
