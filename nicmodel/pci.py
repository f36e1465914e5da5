"""PCI function: 4 KiB PCIe configuration space of the NIC (nic-model.md C).

`ConfigSpace` holds the bytes plus two masks: ``wmask`` (bits software may
write) and ``w1cmask`` (bits a write of 1 clears).  Everything else is
read-only.  ``read(off, size)`` / ``write(off, value, size)`` honour them,
so a write to a read-only field is ignored, as on real hardware.

Layout built by ``ConfigSpace.for_profile`` (offsets as lspci shows an 82599):

=========  ==================================================================
0x00       type-0 header: vendor 0x8086, the profile's device ID, command
           (IO/MEM/Bus Master/INTx-disable writable), status (bit 4
           capabilities list, error bits 15:11 write-1-to-clear), revision,
           class 0x020000, header type 0, BAR0 64-bit memory (the register
           file), BAR3 64-bit memory (MSI-X table + PBA), subsystem IDs,
           capabilities pointer 0x40, interrupt pin A
0x40       Power Management (PMCSR power state RW, PME_Status W1C)
0x50       MSI (64-bit address)
0x70       MSI-X (table size = queues/2 vectors, enable + function mask RW)
0xA0       PCI Express v2, endpoint (device control RW, device status W1C)
0x100      AER -> 0x140 Device Serial Number -> 0x150 ARI (next 0: `sriov` links
           the SR-IOV capability in at 0x160 with ``add_ext_capability``)
=========  ==================================================================

BAR sizes are the model's (unverified): 512 KiB (82599/X550) or 128 KiB
(82576/i350) for BAR0, 16 KiB for the MSI-X BAR.  Sizing works as the
all-ones write: the low bits of a BAR are read-only zeros below its size.
A VF owns a `ConfigSpace` of its own (Vendor/Device ID 0xFFFF, E.11:
`sriov.capability.VfFunction`).  ``hook(off, size, fn)`` routes writes to a range
through ``fn`` (a capability whose registers have side effects), which applies the
masks with ``write_masked``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from nicmodel.profiles import Profile

__all__ = ["ConfigSpace", "CAP_PM", "CAP_MSI", "CAP_MSIX", "CAP_EXP",
           "EXT_AER", "EXT_DSN", "EXT_ARI", "EXT_SRIOV", "WriteHook"]

CAP_PM, CAP_MSI, CAP_MSIX, CAP_EXP = 0x01, 0x05, 0x11, 0x10
EXT_AER, EXT_DSN, EXT_ARI, EXT_SRIOV = 0x0001, 0x0003, 0x000E, 0x0010
SIZE = 4096
_FMT = {1: "<B", 2: "<H", 4: "<I"}
# hook(off, value, size): a config write that touches a hooked range goes to it instead
WriteHook = Callable[[int, int, int], None]


class ConfigSpace:
    def __init__(self) -> None:
        self.data = bytearray(SIZE)
        self.wmask = bytearray(SIZE)
        self.w1cmask = bytearray(SIZE)
        self.bar_sizes: dict[int, int] = {}
        self._last_ext = 0
        self._hooks: list[tuple[int, int, WriteHook]] = []

    # -- raw field setup (used while building; ignores the masks) ----------
    def init(self, off: int, value: int, size: int, wmask: int = 0, w1c: int = 0) -> None:
        struct.pack_into(_FMT[size], self.data, off, value)
        struct.pack_into(_FMT[size], self.wmask, off, wmask)
        struct.pack_into(_FMT[size], self.w1cmask, off, w1c)

    # -- config cycles -----------------------------------------------------
    def read(self, off: int, size: int = 4) -> int:
        self._check(off, size)
        return int(struct.unpack_from(_FMT[size], self.data, off)[0])

    def write(self, off: int, value: int, size: int = 4) -> None:
        """A config write: writable bits take ``value``, W1C bits clear where ``value`` has 1s.

        A write touching a range given to `hook` goes to that hook instead (it applies the
        masks itself with `write_masked`, before or after its side effects)."""
        self._check(off, size)
        for lo, hi, hook in self._hooks:
            if off < hi and lo < off + size:
                hook(off, value, size)
                return
        self.write_masked(off, value, size)

    def hook(self, off: int, size: int, fn: WriteHook) -> None:
        """Send config writes that touch ``[off, off + size)`` to ``fn(off, value, size)``: a
        capability whose registers have side effects (SR-IOV's VF Enable edge, NumVFs locked
        while VFs are enabled, BAR masks that follow the System Page Size)."""
        self._hooks.append((off, off + size, fn))

    def write_masked(self, off: int, value: int, size: int = 4) -> None:
        """The plain config write (masks only, no hooks)."""
        self._check(off, size)
        for k in range(size):
            b = (value >> (8 * k)) & 0xFF
            i = off + k
            cur, wm, w1c = self.data[i], self.wmask[i], self.w1cmask[i]
            self.data[i] = ((cur & ~wm) | (b & wm)) & ~(b & w1c) & 0xFF

    @staticmethod
    def _check(off: int, size: int) -> None:
        if size not in _FMT or off < 0 or off + size > SIZE or off % size:
            raise ValueError(f"config access of {size} bytes at {off:#x}: must be aligned and inside 4 KiB")

    # -- capability walks (nic-model.md C "Capability walks") ---------------
    def capabilities(self) -> list[tuple[int, int]]:
        """Standard list as (offset, id), bounded to 48 hops."""
        out: list[tuple[int, int]] = []
        if not self.read(0x06, 2) & 0x10:
            return out
        p = self.data[0x34] & 0xFC
        hops = 0
        while p and hops < 48:
            out.append((p, self.data[p]))
            p = self.data[p + 1] & 0xFC
            hops += 1
        return out

    def ext_capabilities(self) -> list[tuple[int, int, int]]:
        """Extended list from 0x100 as (offset, id, version)."""
        out: list[tuple[int, int, int]] = []
        p = 0x100
        hops = 0
        while p and hops < 480:
            hdr = self.read(p, 4)
            if hdr in (0, 0xFFFFFFFF):
                break
            out.append((p, hdr & 0xFFFF, (hdr >> 16) & 0xF))
            p = (hdr >> 20) & 0xFFC
            hops += 1
        return out

    def find_capability(self, cap_id: int) -> int | None:
        return next((off for off, i in self.capabilities() if i == cap_id), None)

    def find_ext_capability(self, cap_id: int) -> int | None:
        return next((off for off, i, _ in self.ext_capabilities() if i == cap_id), None)

    def add_ext_capability(self, off: int, cap_id: int, version: int = 1) -> None:
        """Append an extended capability header at ``off`` (e.g. SR-IOV at 0x160) to the list."""
        if off % 4 or not 0x100 <= off < SIZE:
            raise ValueError(f"extended capability offset {off:#x} must be dword-aligned in 0x100..0xFFF")
        self.init(off, cap_id | (version << 16), 4)
        if self._last_ext:
            hdr = self.read(self._last_ext, 4)
            self.init(self._last_ext, (hdr & 0x000FFFFF) | (off << 20), 4)
        self._last_ext = off

    # -- decoded fields ----------------------------------------------------
    @property
    def memory_enabled(self) -> bool:
        return bool(self.read(0x04, 2) & 0x2)

    @property
    def bus_master(self) -> bool:
        return bool(self.read(0x04, 2) & 0x4)

    def bar_address(self, bar: int) -> int:
        lo = self.read(0x10 + 4 * bar, 4) & ~0xF
        hi = self.read(0x14 + 4 * bar, 4) if self.read(0x10 + 4 * bar, 4) & 0x4 else 0
        return (hi << 32) | lo

    def _bar64(self, bar: int, size: int) -> None:
        self.bar_sizes[bar] = size
        self.init(0x10 + 4 * bar, 0x4, 4, wmask=~(size - 1) & 0xFFFFFFF0)  # 64-bit, non-prefetchable
        self.init(0x14 + 4 * bar, 0, 4, wmask=0xFFFFFFFF)

    # -- the NIC's function ------------------------------------------------
    @classmethod
    def for_profile(cls, p: Profile) -> ConfigSpace:
        c = cls()
        c.init(0x00, 0x8086, 2)
        c.init(0x02, p.device_id, 2)
        c.init(0x04, 0, 2, wmask=0x0407)                 # IO, MEM, Bus Master, INTx disable
        c.init(0x06, 0x0010, 2, w1c=0xF900)             # capabilities list; error bits W1C
        c.init(0x08, p.revision | (0x020000 << 8), 4)     # revision, class Ethernet
        c.init(0x0C, 0, 1, wmask=0xFF)                   # cache line size
        c.init(0x0E, 0x00, 1)                            # header type 0, single function
        c._bar64(0, 512 * 1024 if p.num_queues >= 64 else 128 * 1024)
        c._bar64(3, 16 * 1024)
        c.init(0x2C, 0x8086, 2)
        c.init(0x2E, p.subsystem_id, 2)
        c.init(0x34, 0x40, 1)
        c.init(0x3C, 0, 1, wmask=0xFF)                   # interrupt line
        c.init(0x3D, 0x01, 1)                            # INTA
        # Power management: PMC RO, PMCSR power state RW, PME_Status W1C
        c.init(0x40, CAP_PM | (0x50 << 8), 2)
        c.init(0x42, 0x4823, 2)
        c.init(0x44, 0x0000, 2, wmask=0x0103, w1c=0x8000)
        # MSI, 64-bit, 1 message
        c.init(0x50, CAP_MSI | (0x70 << 8), 2)
        c.init(0x52, 0x0180, 2, wmask=0x0071)
        c.init(0x54, 0, 4, wmask=0xFFFFFFFC)
        c.init(0x58, 0, 4, wmask=0xFFFFFFFF)
        c.init(0x5C, 0, 2, wmask=0xFFFF)
        # MSI-X: table size N-1 RO, enable + function mask RW; table and PBA in BAR3
        vectors = max(1, p.num_queues // 2)
        c.init(0x70, CAP_MSIX | (0xA0 << 8), 2)
        c.init(0x72, vectors - 1, 2, wmask=0xC000)
        c.init(0x74, 0x00000003, 4)
        c.init(0x78, 0x00002003, 4)
        # PCI Express capability v2, endpoint
        c.init(0xA0, CAP_EXP | (0x00 << 8), 2)
        c.init(0xA2, 0x0002, 2)
        c.init(0xA4, 0x10008CC2, 4)                      # device caps: FLR capable (bit 28), 512B payload
        c.init(0xA8, 0x2810, 2, wmask=0xFFFF & ~0x0000)  # device control
        c.init(0xAA, 0x0000, 2, w1c=0x000F)              # device status errors W1C
        c.init(0xAC, 0x00000000 | (8 << 4) | 2, 4)       # link caps: x8, 5 GT/s
        c.init(0xB0, 0x0000, 2, wmask=0x0FFB)            # link control
        c.init(0xB2, 0x1000 | (8 << 4) | 2, 2)           # link status: x8, 5 GT/s
        # Extended capabilities
        c.add_ext_capability(0x100, EXT_AER, 1)
        c.init(0x104, 0, 4, w1c=0xFFFFFFFF)              # uncorrectable error status
        c.init(0x108, 0, 4, wmask=0xFFFFFFFF)            # uncorrectable error mask
        c.init(0x10C, 0x00062030, 4, wmask=0xFFFFFFFF)   # severity
        c.init(0x110, 0, 4, w1c=0xFFFFFFFF)              # correctable error status
        c.init(0x114, 0x00002000, 4, wmask=0xFFFFFFFF)   # correctable error mask
        c.add_ext_capability(0x140, EXT_DSN, 1)
        c.init(0x144, 0x00000001, 4)
        c.init(0x148, 0x001B21FF, 4)
        c.add_ext_capability(0x150, EXT_ARI, 1)
        c.init(0x154, 0x0000, 2)                         # next function number 0
        return c
