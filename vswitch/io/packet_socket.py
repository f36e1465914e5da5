"""Attach to an existing interface (a QEMU/libvirt tap, a veth) with an AF_PACKET socket.

``PacketSocketPort(ifname)`` binds a ``SOCK_RAW`` socket to ``ETH_P_ALL`` on
that interface, makes the interface promiscuous for as long as the socket
lives (``PACKET_MR_PROMISC``: the membership is counted and dropped by the
kernel on close), ignores the interface's outgoing frames
(``PACKET_IGNORE_OUTGOING``: the switch never reads back what it, or the
host, transmits) and is non-blocking.

With ``vnet_hdr=True`` (the default) every frame carries the 10-byte
``struct virtio_net_hdr`` (``PACKET_VNET_HDR`` knows no other size): a
virtio guest's 64 KiB TCP super-frames with partial checksums arrive whole,
with their GSO metadata, and can be written out the same way.  Without it
such frames would arrive with broken checksums and nothing to fix them with.

The kernel strips 802.1Q tags on receive into skb metadata; they are read
back from ``PACKET_AUXDATA`` and put into the frame again, so a trunk sees
tagged frames (``csum_start`` is moved by the 4 bytes).

Frames that arrive faster than the switch reads them are dropped by the kernel when the
socket's receive queue is full, before the switch sees them: `kernel_drops` reads that count
(``PACKET_STATISTICS``' ``tp_drops``, what tcpdump reports as "dropped by kernel").

Interface removal surfaces as `PortGone` from `read_batch` or `write`;
interface down only drops frames (`write` returns False).
"""

from __future__ import annotations

import errno
import select
import socket
import struct
from collections.abc import Sequence

from vswitch.core.frame import Frame
from vswitch.core.gso import F_NEEDS_CSUM, VNET_HDR_LEN, VNET_NONE, shift_offsets
from vswitch.io.errors import GONE_ERRNOS, PortGone

__all__ = ["PacketSocketPort", "RX_FRAME_MAX"]

# <linux/if_packet.h>
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_P_ALL = 0x0003
SO_SNDBUFFORCE = 32   # <asm-generic/socket.h>; not exported by Python's socket module
SO_RCVBUFFORCE = 33
ETH_P_8021Q = 0x8100

RX_FRAME_MAX = 65536 + 256   # a GSO super-frame plus L2 headers and tags
SOCK_BUF = 4 << 20           # the default 208 KiB holds only three super-frames

_AUX = struct.Struct("IIIHHHH")          # struct tpacket_auxdata
_MREQ = struct.Struct("iHH8s")           # struct packet_mreq
_STATS = struct.Struct("II")             # struct tpacket_stats: tp_packets, tp_drops
_TAG = struct.Struct("!HH")
_ANC_SIZE = socket.CMSG_SPACE(_AUX.size)


class PacketSocketPort:
    """An AF_PACKET attachment to interface ``ifname``.  ``fileno()`` is for ``loop.add_reader``.

    Raises `PortGone` (errno ENODEV) if the interface does not exist: the
    daemon keeps such a port ``pending`` until netlink reports the interface.
    """

    def __init__(self, ifname: str, *, vnet_hdr: bool = True, promisc: bool = True,
                 sock_buf: int = SOCK_BUF) -> None:
        self.name = ifname
        self.vnet_hdr = vnet_hdr
        self.vnet_hdr_len = VNET_HDR_LEN if vnet_hdr else 0
        self.last_errno = 0
        self.rx_truncated = 0
        self.rx_gso = 0          # frames read with a GSO type (super-frames)
        self.rx_max = 0          # largest frame read
        self.rx_kernel_dropped = 0   # frames the kernel dropped at the full receive queue (kernel_drops)
        # Protocol 0 at creation: nothing is queued until bind() picks the interface.
        kind = socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        sock = socket.socket(socket.AF_PACKET, kind, 0)
        try:
            try:
                self.ifindex = socket.if_nametoindex(ifname)
            except OSError as e:
                raise PortGone(ifname, errno.ENODEV, "no such interface") from e
            if vnet_hdr:
                sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, force, sock_buf)
                except PermissionError:
                    sock.setsockopt(socket.SOL_SOCKET, plain, sock_buf)
            try:
                sock.bind((ifname, ETH_P_ALL))
            except OSError as e:
                if e.errno in GONE_ERRNOS or e.errno == errno.ENETDOWN:
                    raise PortGone(ifname, e.errno) from e
                raise
            if promisc:
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                                _MREQ.pack(self.ifindex, PACKET_MR_PROMISC, 0, b""))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._hdr = bytearray(VNET_HDR_LEN)
        self._buf = bytearray(RX_FRAME_MAX)
        self._mv = memoryview(self._buf)
        self._bufs = [self._hdr, self._buf] if vnet_hdr else [self._buf]
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)

    def fileno(self) -> int:
        return self.sock.fileno()

    def kernel_drops(self) -> int:
        """Frames the kernel has dropped since the socket opened because its receive queue was
        full.  Reading ``PACKET_STATISTICS`` resets the kernel's count, so it is added up here."""
        try:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        except OSError:                  # closed: what was read before stands
            return self.rx_kernel_dropped
        self.rx_kernel_dropped += _STATS.unpack(raw)[1]
        return self.rx_kernel_dropped

    def _gone_or_down(self, e: OSError) -> None:
        """ENETDOWN means down *or* unregistered: tell them apart by the ifindex."""
        try:
            socket.if_indextoname(self.ifindex)
        except OSError:
            raise PortGone(self.name, errno.ENODEV, "interface removed") from e

    def read_batch(self, max_frames: int = 64) -> list[tuple[bytes | None, bytes]]:
        """`read_frames` as ``[(vnet_hdr, frame), ...]`` (for tools and tests)."""
        return [(f.vnet, f.data) for f in self.read_frames(max_frames, 0, -1)[0]]

    def read_frames(self, max_frames: int, now_ns: int, in_port: int) -> tuple[list[Frame], int]:
        """Read up to ``max_frames`` frames until the socket would block, as `Frame`
        objects stamped with ``now_ns`` and ``in_port``; returns them and their total
        length.

        A frame's ``vnet`` is its 10-byte virtio-net header when that asks for work
        (partial checksum, GSO type), else None (always None on a socket opened with
        ``vnet_hdr=False``).  A VLAN tag the kernel took out (auxdata) is put back.
        Truncated frames (over `RX_FRAME_MAX`) are skipped and counted in
        ``rx_truncated``.  Adds to ``rx_gso`` and raises ``rx_max`` as `TapPort` does.
        """
        out: list[Frame] = []
        total = 0
        recv, bufs, mv, hdr, hlen = (self.sock.recvmsg_into, self._bufs, self._mv, self._hdr,
                                     self.vnet_hdr_len)
        while len(out) < max_frames:
            try:
                n, anc, flags, _ = recv(bufs, _ANC_SIZE)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno in GONE_ERRNOS:
                    raise PortGone(self.name, e.errno) from e
                if e.errno == errno.ENETDOWN:
                    self._gone_or_down(e)
                    break
                raise
            if flags & socket.MSG_TRUNC:
                self.rx_truncated += 1
                continue
            frame = bytes(mv[: n - hlen])
            vnet = None
            if hlen and (hdr[0] & F_NEEDS_CSUM or hdr[1]):
                vnet = bytes(hdr)
                if hdr[1]:
                    self.rx_gso += 1
            for level, typ, data in anc:
                if level == SOL_PACKET and typ == PACKET_AUXDATA and len(data) >= _AUX.size:
                    status, _, _, _, _, tci, tpid = _AUX.unpack_from(data)
                    if status & TP_STATUS_VLAN_VALID:
                        if not status & TP_STATUS_VLAN_TPID_VALID or not tpid:
                            tpid = ETH_P_8021Q
                        frame = frame[:12] + _TAG.pack(tpid, tci) + frame[12:]
                        if vnet is not None:
                            vnet = shift_offsets(vnet, 4)
            n = len(frame)
            total += n
            if n > self.rx_max:
                self.rx_max = n
            out.append(Frame(frame, now_ns, in_port, None, 0, vnet))
            if len(out) == 1 and not self._poll.poll(0):     # see TapPort.read_frames
                break
        return out, total

    def write(self, vnet: bytes | None, frame: bytes) -> bool:
        """Transmit one frame on the interface (to the guest behind it).

        On a ``vnet_hdr`` socket ``vnet`` may carry GSO/checksum metadata
        (None means a plain frame); otherwise it must be None or all zero
        (use `vswitch.core.gso.to_plain` first).  Returns False if the
        frame was dropped (interface down, queue full, too big, bad header;
        errno in ``last_errno``).  Raises `PortGone` if the interface vanished.
        """
        try:
            if self.vnet_hdr:
                self.sock.sendmsg((vnet if vnet is not None else VNET_NONE, frame))
            else:
                self.sock.send(frame)
            return True
        except OSError as e:
            if e.errno in GONE_ERRNOS:
                raise PortGone(self.name, e.errno) from e
            if e.errno in (errno.ENETDOWN, errno.EAGAIN, errno.ENOBUFS, errno.EMSGSIZE, errno.EINVAL):
                self.last_errno = e.errno
                return False
            raise

    def write_frames(self, frames: Sequence[Frame]) -> tuple[int, int, int]:
        """`write` for each frame; returns ``(nbytes, failed, failed_bytes)`` as
        `TapPort.write_frames` does.  Raises `PortGone`."""
        total = failed = failed_bytes = 0
        write = self.write
        for i, f in enumerate(frames):
            n = len(f.data)
            total += n
            try:
                ok = write(f.vnet, f.data)
            except PortGone as e:
                e.handled, e.failed, e.failed_bytes = i, failed, failed_bytes
                raise
            if not ok:
                failed += 1
                failed_bytes += n
        return total, failed, failed_bytes

    def close(self) -> None:
        """Close the socket (promiscuous mode is released by the kernel)."""
        self.sock.close()

    def __enter__(self) -> PacketSocketPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PacketSocketPort({self.name!r}, ifindex={self.ifindex}, vnet_hdr={self.vnet_hdr})"
