"""The SR-IOV extended capability of the PF's config space, and the VF functions it creates.

Hardware only: what the device does with config cycles (nic-model.md C).  What Linux
does with it (sizing the VF BARs, the enable sequence, sysfs) is `sriov.sysfs`; what
the PF driver does is `sriov.physical_function`.

`SriovCapability` links the capability into the PF's `nicmodel.pci.ConfigSpace` at
0x160 (after ARI at 0x150, as lspci shows an 82599) and hooks its registers:

=======  ====  ==========================================================================
offset   size  field (relative to 0x160)
=======  ====  ==========================================================================
0x00     4     header: ID 0x0010, version 1, next 0
0x04     4     SR-IOV Capabilities: 0 (no VF Migration, no ARI Hierarchy Preserved)
0x08     2     SR-IOV Control: bit 0 VF Enable, 1 VF Migration Enable, 2 VF Migration
               Interrupt Enable, 3 VF MSE, 4 ARI Capable Hierarchy (RW)
0x0A     2     SR-IOV Status: bit 0 VF Migration (W1C)
0x0C     2     InitialVFs (RO)
0x0E     2     TotalVFs (RO)
0x10     2     NumVFs (RW; see below)
0x12     1     Function Dependency Link (RO): the PF's own function number
0x14     2     First VF Offset (RO; recomputed when NumVFs or ARI Capable Hierarchy change)
0x16     2     VF Stride (RO)
0x1A     2     VF Device ID (RO)
0x1C     4     Supported Page Sizes (RO, 0x553: 4K 8K 64K 256K 1M 4M)
0x20     4     System Page Size (RW, one supported bit; reset 1 = 4 KiB)
0x24     24    VF BAR0..5: BAR0 and BAR3 64-bit prefetchable, the others not implemented
0x3C     4     VF Migration State Array Offset (RO 0)
=======  ====  ==========================================================================

Rules (PCIe SR-IOV 1.1 section 3.3, as QEMU's pcie_sriov.c and the reference read it;
the device's reaction to what the spec calls undefined is the model's choice, listed in
docs/sriov.md):

* VF Enable 0 -> 1 creates NumVFs `VfFunction`s at once (QEMU creates them all on the
  edge); 1 -> 0 destroys them.  A VF whose NumVFs is 0 gives no VFs.
* While VF Enable is set, writes to NumVFs, ARI Capable Hierarchy and System Page Size
  are ignored (the spec forbids changing them then; Linux's sysfs refuses first).
  A NumVFs above TotalVFs, or a System Page Size that is not exactly one supported
  bit, is ignored too.
* First VF Offset / VF Stride follow the profile and ARI: 82599 and X550 128/2 with ARI,
  384/2 without; 82576 128/2 with ARI (QEMU igb's 0x80/2), 384/2 without; i350 128/4
  with, 384/4 without (reference B; the values with ARI for the 82576/i350 and without
  ARI for the 82599 are taken from the X550's pattern: unverified).  They do not depend
  on NumVFs on these devices; `IovProfile.first_vf_offset` takes it anyway.
* Routing ID of VF k (k = 1..NumVFs) = PF RID + offset + (k-1) * stride, 16 bits: the sum
  carries into the bus number.
* VF BARn size is the device's per-VF size rounded up to the System Page Size; the
  all-ones write returns it; VF k's BAR n = VF BARn base + (k-1) * size.  A VF's memory
  decodes only while VF Enable and VF MSE are both set.
* A VF's own config space: Vendor and Device ID read 0xFFFF, Command has only Bus
  Master Enable writable (Memory Space is RsvdP: VF MSE gates memory), BARs read 0,
  class and subsystem IDs are the PF's, no INTx; MSI-X, PCI Express (FLR capable:
  Device Control bit 15 starts a Function Level Reset) and ARI capabilities.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nicmodel.pci import CAP_EXP, CAP_MSIX, EXT_ARI, EXT_SRIOV, ConfigSpace
from nicmodel.profiles import Profile

__all__ = ["IovProfile", "IOV_PROFILES", "iov_profile", "SriovCapability", "VfFunction", "SRIOV_CAP",
           "rid_str", "VF_ENABLE", "VF_MSE", "ARI_HIERARCHY", "PAGE_4K"]

SRIOV_CAP = 0x160
VF_ENABLE, VF_MIGRATION, VF_MIGRATION_INT, VF_MSE, ARI_HIERARCHY = 0x1, 0x2, 0x4, 0x8, 0x10
PAGE_4K = 4096
_FMT = {1: "<B", 2: "<H", 4: "<I"}

# field offsets inside the capability
CTRL, STATUS, INITIAL, TOTAL, NUMVFS, FDL, OFFSET, STRIDE, VF_DID = 0x08, 0x0A, 0x0C, 0x0E, 0x10, 0x12, 0x14, 0x16, 0x1A
SUP_PS, SYS_PS, VF_BAR0, MIG_STATE = 0x1C, 0x20, 0x24, 0x3C


@dataclass(frozen=True)
class IovProfile:
    """SR-IOV figures of one device (nic-model.md B, C; the driver limit from ixgbe/igb)."""

    name: str
    total_vfs: int          # InitialVFs = TotalVFs in the capability (what the hardware has)
    driver_max_vfs: int     # pci_sriov_set_totalvfs(): what sysfs sriov_totalvfs reports
    offset_ari: int
    offset_no_ari: int
    stride: int
    vf_device_id: int
    vf_bar_sizes: dict[int, int] = field(default_factory=lambda: {0: 16 * 1024, 3: 16 * 1024})
    vf_msix_vectors: int = 3
    supported_page_sizes: int = 0x553

    def first_vf_offset(self, num_vfs: int, ari: bool) -> int:
        """First VF Offset as the device reports it for ``num_vfs`` and ARI (these devices
        ignore NumVFs)."""
        return self.offset_ari if ari else self.offset_no_ari

    def vf_stride(self, num_vfs: int, ari: bool) -> int:
        return self.stride


# 82599: lspci "Initial VFs: 64, Total VFs: 64 ... VF offset: 128, stride: 2, Device ID: 10ed";
# ixgbe sets the driver limit to 63 (IXGBE_MAX_VFS_DRV_LIMIT) and igb to 7.
IOV_PROFILES: dict[str, IovProfile] = {
    "82599": IovProfile("82599", 64, 63, 128, 384, 2, 0x10ED),
    "x550": IovProfile("x550", 64, 63, 128, 384, 2, 0x1565),
    "82576": IovProfile("82576", 8, 7, 128, 384, 2, 0x10CA),
    "i350": IovProfile("i350", 8, 7, 128, 384, 4, 0x1520),
}


def iov_profile(p: Profile) -> IovProfile:
    try:
        return IOV_PROFILES[p.name]
    except KeyError:
        raise ValueError(f"{p.name}: no SR-IOV figures for this profile (known: {', '.join(IOV_PROFILES)})") \
            from None


def rid_str(rid: int, domain: int = 0) -> str:
    """A routing ID as lspci writes it: 0000:bb:dd.f."""
    return f"{domain:04x}:{rid >> 8:02x}:{(rid >> 3) & 0x1F:02x}.{rid & 7}"


class SriovCapability:
    """The SR-IOV capability in a PF's config space, and the VFs it has created.

    ``on_enable(vfs)`` / ``on_disable(vfs)`` are called on the VF Enable edges with the
    VF functions just created / about to go (the PF driver attaches its VF state there).
    """

    def __init__(self, pci: ConfigSpace, profile: Profile, pf_rid: int = 0x0300, base: int = SRIOV_CAP) -> None:
        self.pci = pci
        self.profile = profile
        self.iov = iov = iov_profile(profile)
        self.pf_rid = pf_rid
        self.base = base
        self.vfs: list[VfFunction] = []
        self.on_enable: Callable[[list[VfFunction]], None] | None = None
        self.on_disable: Callable[[list[VfFunction]], None] | None = None
        b = base
        pci.add_ext_capability(b, EXT_SRIOV, 1)
        pci.init(b + 0x04, 0, 4)
        pci.init(b + CTRL, 0, 2, wmask=VF_ENABLE | VF_MIGRATION | VF_MIGRATION_INT | VF_MSE | ARI_HIERARCHY)
        pci.init(b + STATUS, 0, 2, w1c=0x1)
        pci.init(b + INITIAL, iov.total_vfs, 2)
        pci.init(b + TOTAL, iov.total_vfs, 2)
        pci.init(b + NUMVFS, 0, 2, wmask=0xFFFF)
        pci.init(b + FDL, pf_rid & 7, 1)
        pci.init(b + VF_DID, iov.vf_device_id, 2)
        pci.init(b + SUP_PS, iov.supported_page_sizes, 4)
        pci.init(b + SYS_PS, 1, 4, wmask=0xFFFFFFFF)
        pci.init(b + MIG_STATE, 0, 4)
        for n in range(6):
            pci.init(b + VF_BAR0 + 4 * n, 0, 4)
        self._set_bar_masks()
        self._recompute_routing()
        pci.hook(b + CTRL, MIG_STATE - CTRL, self._write)

    # -- raw field access --------------------------------------------------
    def _get(self, rel: int, size: int) -> int:
        return int(struct.unpack_from(_FMT[size], self.pci.data, self.base + rel)[0])

    def _poke(self, rel: int, value: int, size: int) -> None:
        """Set a field's bits regardless of its write mask (the device's own update)."""
        struct.pack_into(_FMT[size], self.pci.data, self.base + rel, value)

    # -- decoded fields ----------------------------------------------------
    @property
    def control(self) -> int:
        return self._get(CTRL, 2)

    @property
    def vf_enable(self) -> bool:
        return bool(self.control & VF_ENABLE)

    @property
    def vf_mse(self) -> bool:
        return bool(self.control & VF_MSE)

    @property
    def ari(self) -> bool:
        return bool(self.control & ARI_HIERARCHY)

    @property
    def num_vfs(self) -> int:
        return self._get(NUMVFS, 2)

    @property
    def total_vfs(self) -> int:
        return self._get(TOTAL, 2)

    @property
    def initial_vfs(self) -> int:
        return self._get(INITIAL, 2)

    @property
    def offset(self) -> int:
        return self._get(OFFSET, 2)

    @property
    def stride(self) -> int:
        return self._get(STRIDE, 2)

    @property
    def vf_device_id(self) -> int:
        return self._get(VF_DID, 2)

    @property
    def system_page_size(self) -> int:
        """System Page Size in bytes (bit n set: 4 KiB * 2**n)."""
        v = self._get(SYS_PS, 4)
        return PAGE_4K << (v.bit_length() - 1) if v else PAGE_4K

    def vf_bar_size(self, bar: int) -> int:
        """Per-VF size of VF BAR ``bar``, rounded up to the System Page Size (0: not implemented)."""
        size = self.iov.vf_bar_sizes.get(bar, 0)
        return max(size, self.system_page_size) if size else 0

    def vf_bar_base(self, bar: int) -> int:
        """Address programmed in VF BAR ``bar`` (a 64-bit BAR takes two registers)."""
        lo = self._get(VF_BAR0 + 4 * bar, 4)
        hi = self._get(VF_BAR0 + 4 * bar + 4, 4) if lo & 0x4 else 0
        return (hi << 32) | (lo & ~0xF)

    def rid_of(self, k: int) -> int:
        """Routing ID of VF k (1..NumVFs): PF RID + offset + (k-1)*stride, carrying into the bus."""
        return (self.pf_rid + self.offset + (k - 1) * self.stride) & 0xFFFF

    # -- config writes -----------------------------------------------------
    def _write(self, off: int, value: int, size: int) -> None:
        was_ctrl, was_num, was_ps = self.control, self.num_vfs, self._get(SYS_PS, 4)
        self.pci.write_masked(off, value, size)
        enabled = bool(was_ctrl & VF_ENABLE)
        if enabled or self.num_vfs > self.total_vfs:
            self._poke(NUMVFS, was_num, 2)        # NumVFs is locked while VF Enable is set
        ps = self._get(SYS_PS, 4)
        if enabled or ps.bit_count() != 1 or not ps & self.iov.supported_page_sizes:
            self._poke(SYS_PS, was_ps, 4)
        ctrl = self.control
        if enabled and (ctrl ^ was_ctrl) & ARI_HIERARCHY:
            ctrl = (ctrl & ~ARI_HIERARCHY) | (was_ctrl & ARI_HIERARCHY)
            self._poke(CTRL, ctrl, 2)
        if self._get(SYS_PS, 4) != was_ps:
            self._set_bar_masks()
        self._recompute_routing()
        if ctrl & VF_ENABLE and not enabled:
            self._create_vfs()
        elif enabled and not ctrl & VF_ENABLE:
            self._destroy_vfs()

    def _set_bar_masks(self) -> None:
        """VF BAR write masks: the address bits above each BAR's (page-rounded) size."""
        pci, b = self.pci, self.base
        for n in range(6):
            size = self.vf_bar_size(n)
            off = b + VF_BAR0 + 4 * n
            if size:
                cur = self._get(VF_BAR0 + 4 * n, 4)
                pci.init(off, (cur & ~(size - 1) & 0xFFFFFFF0) | 0xC, 4, wmask=~(size - 1) & 0xFFFFFFF0)
                pci.init(off + 4, self._get(VF_BAR0 + 4 * n + 4, 4), 4, wmask=0xFFFFFFFF)

    def _recompute_routing(self) -> None:
        n, ari = self.num_vfs, self.ari
        self._poke(OFFSET, self.iov.first_vf_offset(n, ari), 2)
        self._poke(STRIDE, self.iov.vf_stride(n, ari), 2)

    def _create_vfs(self) -> None:
        n = min(self.num_vfs, self.total_vfs)
        self.vfs = [VfFunction(self, k) for k in range(1, n + 1)]
        if self.vfs and self.on_enable is not None:
            self.on_enable(self.vfs)

    def _destroy_vfs(self) -> None:
        gone, self.vfs = self.vfs, []
        for fn in gone:
            fn.alive = False
        if gone and self.on_disable is not None:
            self.on_disable(gone)

    def show(self) -> dict[str, Any]:
        """What lspci -vvv prints for the capability."""
        return {
            "offset": self.base, "control": {"vf_enable": self.vf_enable, "vf_mse": self.vf_mse,
                                             "ari_hierarchy": self.ari},
            "initial_vfs": self.initial_vfs, "total_vfs": self.total_vfs, "num_vfs": self.num_vfs,
            "first_vf_offset": self.offset, "vf_stride": self.stride, "vf_device_id": f"{self.vf_device_id:04x}",
            "supported_page_sizes": f"{self._get(SUP_PS, 4):08x}", "system_page_size": f"{self._get(SYS_PS, 4):08x}",
            "vf_bars": {str(n): {"base": self.vf_bar_base(n), "size": self.vf_bar_size(n)}
                        for n in range(6) if self.vf_bar_size(n)},
        }


class VfFunction:
    """One VF's PCI function: its routing ID, its own config space and its BAR decode.

    ``regs`` (set by the PF driver's layer) is the VF's BAR0 register file: anything with
    ``read32(offset)`` / ``write32(offset, value)``.  ``on_flr`` is called when software
    starts a Function Level Reset (PCIe Device Control bit 15).
    """

    def __init__(self, cap: SriovCapability, k: int) -> None:
        self.cap = cap
        self.k = k                    # 1-based, as the spec numbers VFs
        self.index = k - 1            # 0-based, as Linux's virtfnN and `ip link ... vf N`
        self.rid = cap.rid_of(k)
        self.alive = True
        self.regs: Any = None
        self.on_flr: Callable[[], None] | None = None
        self.pci = c = ConfigSpace()
        pf = cap.pci
        c.init(0x00, 0xFFFF, 2)                          # Vendor ID reads 0xFFFF (E.11, QEMU register_vf)
        c.init(0x02, 0xFFFF, 2)                          # Device ID too: Linux takes it from the PF's cap
        c.init(0x04, 0, 2, wmask=0x0004)                 # Bus Master Enable only; MEM is RsvdP (VF MSE gates)
        c.init(0x06, 0x0010, 2, w1c=0xF900)
        c.init(0x08, pf.read(0x08, 4), 4)                # revision and class as the PF's
        c.init(0x0E, 0x00, 1)
        c.init(0x2C, pf.read(0x2C, 2), 2)                # subsystem vendor / ID: the PF's
        c.init(0x2E, pf.read(0x2E, 2), 2)
        c.init(0x34, 0x70, 1)
        c.init(0x3D, 0x00, 1)                            # no INTx on a VF
        vectors = cap.iov.vf_msix_vectors
        c.init(0x70, CAP_MSIX | (0xA0 << 8), 2)
        c.init(0x72, vectors - 1, 2, wmask=0xC000)
        c.init(0x74, 0x00000003, 4)                      # table in BAR3 at 0
        c.init(0x78, 0x00002003, 4)                      # PBA in BAR3 at 0x2000
        c.init(0xA0, CAP_EXP | (0x00 << 8), 2)
        c.init(0xA2, 0x0002, 2)
        c.init(0xA4, 0x10008CC2, 4)                      # FLR capable (bit 28): VFs must be
        c.init(0xA8, 0x2810, 2, wmask=0xFFFF)            # device control; bit 15 = Initiate FLR
        c.init(0xAA, 0x0000, 2, w1c=0x000F)
        c.add_ext_capability(0x100, EXT_ARI, 1)
        c.init(0x104, 0x0000, 2)
        c.hook(0xA8, 2, self._devctl)

    def _devctl(self, off: int, value: int, size: int) -> None:
        self.pci.write_masked(off, value, size)
        if self.pci.read(0xA8, 2) & 0x8000:
            struct.pack_into("<H", self.pci.data, 0xA8, self.pci.read(0xA8, 2) & 0x7FFF)  # reads back 0
            if self.on_flr is not None:
                self.on_flr()

    @property
    def bdf(self) -> str:
        return rid_str(self.rid)

    @property
    def memory_enabled(self) -> bool:
        """VF memory decodes only with VF Enable and VF MSE set in the PF (and the VF alive)."""
        return self.alive and self.cap.vf_enable and self.cap.vf_mse

    @property
    def bus_master(self) -> bool:
        # Command register bit 2, read straight from the config bytes (the VF DMA path asks
        # once per batch; a config cycle through `read` costs as much as the batch's lookups)
        return self.alive and bool(self.pci.data[0x04] & 0x4)

    def bar_address(self, bar: int) -> int:
        size = self.cap.vf_bar_size(bar)
        return self.cap.vf_bar_base(bar) + self.index * size if size else 0

    def _bar0_offset(self, addr: int) -> int | None:
        if not self.memory_enabled or self.regs is None:
            return None
        base = self.bar_address(0)
        off = addr - base
        return off if base and 0 <= off < self.cap.iov.vf_bar_sizes[0] else None

    def mmio_read(self, addr: int) -> int:
        """A 32-bit memory read on the bus; all-ones when the VF does not decode it."""
        off = self._bar0_offset(addr)
        return 0xFFFFFFFF if off is None else int(self.regs.read32(off)) & 0xFFFFFFFF

    def mmio_write(self, addr: int, value: int) -> bool:
        off = self._bar0_offset(addr)
        if off is None:
            return False
        self.regs.write32(off, value & 0xFFFFFFFF)
        return True
