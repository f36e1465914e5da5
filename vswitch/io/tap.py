"""A TAP device the switch creates and owns, with virtio-net headers and offloads.

``TapPort(name)`` opens ``/dev/net/tun`` with ``IFF_TAP|IFF_NO_PI|IFF_VNET_HDR``,
sets a 10-byte virtio-net header (``TUNSETVNETHDRSZ``) and tells the kernel
that this reader handles partial checksums and TCP segmentation
(``TUNSETOFFLOAD``): the kernel then hands over 64 KiB GSO super-frames with
their metadata instead of segmenting them.  The fd is non-blocking.

Every frame read or written carries a 10-byte ``struct virtio_net_hdr``
(little-endian, as the kernel uses on little-endian hosts).  10 and not 12
bytes (the ``_mrg_rxbuf`` layout) because AF_PACKET's ``PACKET_VNET_HDR``
only knows the 10-byte header: with one size everywhere the header read on
any port is written unchanged to any other (``num_buffers`` is meaningless
on a TAP anyway).

The device lives as long as the fd unless it is made persistent.  Moving the
interface into another network namespace keeps this fd attached; deleting
that namespace destroys the device (the fd then fails with EBADFD, raised as
`PortGone`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
from collections.abc import Sequence
from typing import Final, NoReturn

from vswitch.core.frame import Frame
from vswitch.core.gso import F_NEEDS_CSUM, VNET_HDR_LEN, VNET_NONE
from vswitch.io.errors import GONE_ERRNOS, PortGone

__all__ = ["TapPort", "TUN_F_CSUM", "TUN_F_TSO4", "TUN_F_TSO6", "TUN_F_TSO_ECN", "DEFAULT_OFFLOADS",
           "RX_FRAME_MAX"]

# <linux/if_tun.h>
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
DEFAULT_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN

IFNAMSIZ = 16
# A GSO super-frame is at most 64 KiB of IP packet plus L2 headers; keep slack
# for VLAN tags.  A shorter buffer would silently truncate super-frames.
RX_FRAME_MAX: Final = 65536 + 256

_IFREQ = struct.Struct("16sH22x")
# write() errors that drop one frame and leave the device usable: interface down (EIO),
# queue full, a frame or header the kernel rejects.
_DROP_ERRNOS: Final = frozenset({errno.EIO, errno.EAGAIN, errno.ENOBUFS, errno.EINVAL, errno.EMSGSIZE, errno.EFAULT})


def _gone_in_batch(name: str, e: OSError, frames: Sequence[Frame], f: Frame, failed: int,
                   failed_bytes: int) -> PortGone:
    gone = PortGone(name, e.errno or errno.ENODEV)
    gone.handled = list(frames).index(f)
    gone.failed, gone.failed_bytes = failed, failed_bytes
    return gone


class TapPort:
    """An owned TAP device.  ``fileno()`` is for ``loop.add_reader``."""

    vnet_hdr_len = VNET_HDR_LEN

    def __init__(self, name: str, *, offloads: int = DEFAULT_OFFLOADS, persist: bool = False) -> None:
        if len(name.encode()) >= IFNAMSIZ:
            raise ValueError(f"TAP name {name!r} is longer than {IFNAMSIZ - 1} bytes")
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            ifr = fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
            self.name = ifr[:IFNAMSIZ].rstrip(b"\0").decode()
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
            # TUNSETOFFLOAD takes its flags by value (an int argument), not a pointer.
            fcntl.ioctl(fd, TUNSETOFFLOAD, offloads)
            if persist:
                fcntl.ioctl(fd, TUNSETPERSIST, 1)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.offloads = offloads
        self.persist = persist
        self.last_errno = 0
        self.rx_gso = 0          # frames read with a GSO type (super-frames)
        self.rx_max = 0          # largest frame read
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def fileno(self) -> int:
        return self.fd

    def read_batch(self, max_frames: int = 64) -> list[tuple[bytes | None, bytes]]:
        """Read up to ``max_frames`` frames until the fd would block.

        Returns ``[(vnet_hdr, frame), ...]``: ``vnet_hdr`` is the 10-byte header when it
        asks for work (a partial checksum or a GSO type), else None (a plain frame).
        Raises `PortGone` if the device was destroyed.  The switch reads with
        `read_frames`; this bare form is for relays and tests.
        """
        out: list[tuple[bytes | None, bytes]] = []
        read, fd = os.read, self.fd
        while len(out) < max_frames:
            try:
                b = read(fd, RX_FRAME_MAX + VNET_HDR_LEN)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as e:
                self._read_failed(e)
            if len(b) <= VNET_HDR_LEN:
                continue
            out.append((b[:VNET_HDR_LEN] if b[0] & F_NEEDS_CSUM or b[1] else None, b[VNET_HDR_LEN:]))
            if len(out) == 1 and not self._poll.poll(0):     # see read_frames
                break
        return out

    def read_frames(self, max_frames: int, now_ns: int, in_port: int) -> tuple[list[Frame], int]:
        """Read up to ``max_frames`` frames until the fd would block, as `Frame` objects
        stamped with ``now_ns`` and ``in_port``; returns them and their total length.

        A frame's ``vnet`` is its 10-byte virtio-net header when that asks for work
        (a partial checksum or a GSO type), else None.  Adds to ``rx_gso`` (frames
        with a GSO type) and raises ``rx_max`` (largest frame so far).  Raises
        `PortGone` if the device was destroyed.
        """
        out: list[Frame] = []
        append = out.append
        read, fd, size, hlen = os.read, self.fd, RX_FRAME_MAX + VNET_HDR_LEN, VNET_HDR_LEN
        biggest = self.rx_max + hlen
        total = 0
        while True:
            try:
                # One read into a fresh bytes, then one slice: measured ~0.35 us per frame
                # cheaper than readv into two reused buffers plus two copies out of them.
                b = read(fd, size)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as e:
                self._read_failed(e)
            n = len(b)
            if n <= hlen:
                continue
            total += n
            if n > biggest:
                biggest = n
            if b[0] & F_NEEDS_CSUM or b[1]:      # only a header that asks for work travels on
                if b[1]:
                    self.rx_gso += 1
                append(Frame(b[hlen:], now_ns, in_port, None, 0, b[:hlen]))
            else:
                append(Frame(b[hlen:], now_ns, in_port, None, 0, None))
            if len(out) >= max_frames:
                break
            # After the first frame, ask poll() whether another waits: at low rates a
            # wake-up carries one frame, and a read that fails with EAGAIN costs a Python
            # exception (~1.3 us here) where poll(0) costs ~0.4 us.  Under load the loop
            # goes on reading, and the one EAGAIN per batch is amortised.
            if len(out) == 1 and not self._poll.poll(0):
                break
        self.rx_max = biggest - hlen
        return out, total - hlen * len(out)

    def _read_failed(self, e: OSError) -> NoReturn:
        if e.errno in GONE_ERRNOS:
            raise PortGone(self.name, e.errno) from e
        raise e

    def write(self, vnet: bytes | None, frame: bytes) -> bool:
        """Hand one frame (with its virtio-net header, or none) to the kernel.

        Returns False when the frame was dropped: interface down (EIO), no
        buffer space, or rejected as malformed (EINVAL, e.g. a bad GSO
        header).  ``last_errno`` keeps the reason.  Raises `PortGone`.
        """
        try:
            if len(frame) < 2048:      # small: one buffer is cheaper than writev's two
                os.write(self.fd, (vnet if vnet is not None else VNET_NONE) + frame)
            else:                      # a super-frame: no 64 KB concatenation copy
                os.writev(self.fd, (vnet if vnet is not None else VNET_NONE, frame))
            return True
        except OSError as e:
            if e.errno in GONE_ERRNOS:
                raise PortGone(self.name, e.errno) from e
            if e.errno in _DROP_ERRNOS:
                self.last_errno = e.errno
                return False
            raise

    def write_frames(self, frames: Sequence[Frame]) -> tuple[int, int, int]:
        """Hand frames to the kernel, each with its virtio-net header (or a blank one).

        Returns ``(nbytes, failed, failed_bytes)``: the frames' total length, and how
        many of them (and how many bytes) were dropped as `write` drops them.  Raises
        `PortGone` (frames after the one that raised were not written).
        """
        total = failed = failed_bytes = 0
        fd, write, writev, none = self.fd, os.write, os.writev, VNET_NONE
        for f in frames:
            d = f.data
            n = len(d)
            total += n
            try:
                v = f.vnet
                if n < 2048:           # small: one buffer is cheaper than writev's two
                    write(fd, (none if v is None else v) + d)
                else:                  # a super-frame: no 64 KB concatenation copy
                    writev(fd, (none if v is None else v, d))
            except OSError as e:
                if e.errno in GONE_ERRNOS:
                    raise _gone_in_batch(self.name, e, frames, f, failed, failed_bytes) from e
                if e.errno not in _DROP_ERRNOS:
                    raise
                self.last_errno = e.errno
                failed += 1
                failed_bytes += n
        return total, failed, failed_bytes

    def close(self, *, remove: bool | None = None) -> None:
        """Close the fd.  The device disappears with it unless persistent.

        ``remove=True`` deletes a persistent device too (clears the flag
        first); ``remove=False`` on a non-persistent device makes it
        persistent so it survives.
        """
        if self.fd < 0:
            return
        want_persist = self.persist if remove is None else not remove
        try:
            if want_persist != self.persist:
                fcntl.ioctl(self.fd, TUNSETPERSIST, int(want_persist))
        except OSError:
            pass  # device already gone (EBADFD): nothing left to keep or remove
        finally:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> TapPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TapPort({self.name!r}, fd={self.fd}, persist={self.persist})"
