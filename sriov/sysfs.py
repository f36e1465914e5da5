"""What Linux's PCI core does with the SR-IOV capability (drivers/pci/iov.c), and its sysfs files.

`PciIov` is ``struct pci_sriov`` with the functions that fill it:

* ``init()`` (``sriov_init`` at probe): ARI Capable Hierarchy set when the PF is function 0
  and the hierarchy has ARI, System Page Size set to the page size (4 KiB), each VF BAR
  sized by the all-ones write and assigned from ``mmio_base`` (a resource of size x
  TotalVFs, aligned to it), and First VF Offset / VF Stride read for every NumVFs
  (``compute_max_vf_buses``: both must be non-zero, else EIO).
* ``enable(n)`` (``sriov_enable``): n <= TotalVFs, the VF BARs assigned ("not enough MMIO
  resources for SR-IOV": ENOMEM), the last VF's bus within the PF's bus range ("can't
  enable %d VFs (bus %02x out of range of ...)": ENOMEM), then NumVFs, then VF Enable |
  VF MSE (the device creates the VFs), then the VF devices (``virtfnN``).
* ``disable()`` (``sriov_disable``): the VF devices go, VF Enable | VF MSE cleared, NumVFs 0.

`Sysfs` is the PF's device directory (/sys/bus/pci/devices/0000:03:00.0/):

``sriov_totalvfs``  the driver's limit (``pci_sriov_set_totalvfs``: ixgbe 63, igb 7), else TotalVFs
``sriov_numvfs``    read: the VFs enabled; write (``sriov_numvfs_store``):
                    not a number -> EINVAL; above sriov_totalvfs -> ERANGE; the current
                    value -> nothing; 0 -> the driver disables; nonzero while nonzero ->
                    EBUSY ("%d VFs already enabled. Disable before enabling %d VFs");
                    else the driver's ``sriov_configure(n)``
``sriov_offset``, ``sriov_stride``, ``sriov_vf_device`` (hex), ``sriov_drivers_autoprobe``,
``virtfnN``         -> ``../0000:bb:dd.f`` (the VF's directory), one per VF.

Errors are `SriovError` with the errno the kernel returns; a refused write changes nothing.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from sriov.capability import ARI_HIERARCHY, CTRL, NUMVFS, SYS_PS, VF_BAR0, VF_ENABLE, VF_MSE, rid_str
from sriov.errors import SriovError

if TYPE_CHECKING:
    from sriov.capability import SriovCapability
    from sriov.physical_function import SriovPf

__all__ = ["PciIov", "Sysfs", "SYSFS_FILES"]

SYSFS_FILES = ("sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_vf_device",
               "sriov_drivers_autoprobe")


class PciIov:
    """Linux's struct pci_sriov for one PF (see the module docstring)."""

    def __init__(self, cap: SriovCapability, *, ari: bool = True, bus_end: int | None = None,
                 mmio_base: int = 0x38_0000_0000) -> None:
        self.cap = cap
        self.pos = cap.base
        self.ari = ari
        bus = cap.pf_rid >> 8
        self.bus_start = bus
        self.bus_end = bus + 1 if bus_end is None else bus_end
        self.mmio_base = mmio_base
        self.total_vfs = 0
        self.initial_vfs = 0
        self.driver_max_vfs = 0
        self.num_vfs = 0
        self.offset = 0
        self.stride = 0
        self.max_vf_buses = 0
        self.resources: dict[int, tuple[int, int]] = {}   # VF BAR -> (base, size of one VF's BAR)
        self.drivers_autoprobe = True
        self.virtfn: list[int] = []                       # routing IDs of the VF devices added

    # -- config access as the kernel does it ---------------------------------------
    def _rd(self, rel: int, size: int) -> int:
        return self.cap.pci.read(self.pos + rel, size)

    def _wr(self, rel: int, value: int, size: int) -> None:
        self.cap.pci.write(self.pos + rel, value, size)

    def set_numvfs(self, n: int) -> None:
        """pci_iov_set_numvfs: write NumVFs, then re-read First VF Offset and VF Stride."""
        self._wr(NUMVFS, n, 2)
        self.offset = self._rd(0x14, 2)
        self.stride = self._rd(0x16, 2)

    def virtfn_bus(self, vf_id: int) -> int:
        """Bus number of VF ``vf_id`` (0-based) at the current offset and stride."""
        return ((self.cap.pf_rid + self.offset + self.stride * vf_id) >> 8) & 0xFF

    # -- probe ---------------------------------------------------------------------
    def init(self, page_size: int = 4096) -> None:
        """sriov_init: ARI, page size, VF BARs sized and assigned, offsets and buses checked."""
        cap = self.cap
        ctrl = self._rd(CTRL, 2)
        if self.ari and (cap.pf_rid & 7) == 0:
            ctrl |= ARI_HIERARCHY
        else:
            ctrl &= ~ARI_HIERARCHY
        self._wr(CTRL, ctrl, 2)
        self.total_vfs = self._rd(0x0E, 2)
        self.initial_vfs = self._rd(0x0C, 2)
        supported = self._rd(0x1C, 4)
        pgsz = page_size >> 12
        if supported & pgsz:
            self._wr(SYS_PS, pgsz, 4)
        base = self.mmio_base
        n = -1
        while n < 5:
            n += 1
            size = self._size_bar(n)
            if not size:
                continue
            total = size * self.total_vfs
            base = -(-base // total) * total               # a resource aligned to its size
            self._wr(VF_BAR0 + 4 * n, base & 0xFFFFFFFF, 4)
            self._wr(VF_BAR0 + 4 * n + 4, base >> 32, 4)
            self.resources[n] = (base, size)
            base += total
            if self._rd(VF_BAR0 + 4 * n, 4) & 0x4:
                n += 1                                     # a 64-bit BAR takes the next register too
        self.max_vf_buses = 0
        for nr in range(1, self.total_vfs + 1):           # compute_max_vf_buses
            self.set_numvfs(nr)
            if not self.offset or (nr > 1 and not self.stride):
                self.set_numvfs(0)
                raise SriovError(f"{rid_str(cap.pf_rid)}: SR-IOV: First VF Offset or VF Stride is 0", errno.EIO)
            self.max_vf_buses = max(self.max_vf_buses, self.virtfn_bus(nr - 1))
        self.set_numvfs(0)

    def _size_bar(self, n: int) -> int:
        """One VF's size of VF BAR n by the all-ones write (0: not implemented)."""
        rel = VF_BAR0 + 4 * n
        lo = self._rd(rel, 4)
        self._wr(rel, 0xFFFFFFFF, 4)
        mask = self._rd(rel, 4)
        self._wr(rel, lo, 4)
        if not mask & ~0xF:
            return 0
        hi_mask = 0xFFFFFFFF
        if mask & 0x4:                                     # 64-bit: the high dword too
            hi = self._rd(rel + 4, 4)
            self._wr(rel + 4, 0xFFFFFFFF, 4)
            hi_mask = self._rd(rel + 4, 4)
            self._wr(rel + 4, hi, 4)
        full = (hi_mask << 32) | (mask & ~0xF)
        return (~full & 0xFFFFFFFFFFFFFFFF) + 1

    # -- enable / disable -----------------------------------------------------------------
    def enable(self, n: int) -> None:
        """sriov_enable(n): the checks, NumVFs, VF Enable | VF MSE, the VF devices."""
        if not n:
            return
        where = rid_str(self.cap.pf_rid)
        if self.num_vfs:
            raise SriovError(f"{where}: {self.num_vfs} VFs already enabled", errno.EINVAL)
        if self.initial_vfs > self.total_vfs:
            raise SriovError(f"{where}: InitialVFs {self.initial_vfs} > TotalVFs {self.total_vfs}", errno.EIO)
        if n > self.total_vfs or n > self.initial_vfs:
            raise SriovError(f"{where}: {n} VFs: the device has {self.total_vfs}", errno.EINVAL)
        if len(self.resources) != len([b for b in range(6) if self.cap.vf_bar_size(b)]):
            raise SriovError(f"{where}: not enough MMIO resources for SR-IOV", errno.ENOMEM)
        old_offset, old_stride = self.offset, self.stride
        self.set_numvfs(n)
        bus = self.virtfn_bus(n - 1)
        if bus > self.bus_end:
            self.set_numvfs(0)
            self.offset, self.stride = old_offset, old_stride
            raise SriovError(f"{where}: can't enable {n} VFs (bus {bus:02x} out of range of "
                             f"[bus {self.bus_start:02x}-{self.bus_end:02x}])", errno.ENOMEM)
        self._wr(CTRL, self._rd(CTRL, 2) | VF_ENABLE | VF_MSE, 2)
        self.virtfn = [fn.rid for fn in self.cap.vfs]
        self.num_vfs = n

    def disable(self) -> None:
        """sriov_disable: remove the VF devices, clear VF Enable | VF MSE, NumVFs = 0."""
        if not self.num_vfs:
            return
        self.virtfn = []
        self._wr(CTRL, self._rd(CTRL, 2) & ~(VF_ENABLE | VF_MSE), 2)
        self.set_numvfs(0)
        self.num_vfs = 0

    def totalvfs(self) -> int:
        """pci_sriov_get_totalvfs: the driver's limit if it set one."""
        return self.driver_max_vfs or self.total_vfs


class Sysfs:
    """The PF's sysfs directory: ``read(name)`` returns the file's text, ``write(name, text)``."""

    def __init__(self, iov: PciIov, pf: SriovPf) -> None:
        self.iov = iov
        self.pf = pf

    def listdir(self) -> list[str]:
        return [*SYSFS_FILES, *(f"virtfn{k}" for k in range(len(self.iov.virtfn)))]

    def read(self, name: str) -> str:
        iov = self.iov
        if name == "sriov_totalvfs":
            return f"{iov.totalvfs()}\n"
        if name == "sriov_numvfs":
            return f"{iov.num_vfs}\n"
        if name == "sriov_offset":
            return f"{iov.offset}\n"
        if name == "sriov_stride":
            return f"{iov.stride}\n"
        if name == "sriov_vf_device":
            return f"{iov.cap.vf_device_id:x}\n"
        if name == "sriov_drivers_autoprobe":
            return f"{int(iov.drivers_autoprobe)}\n"
        if name.startswith("virtfn") and name[6:].isdigit() and int(name[6:]) < len(iov.virtfn):
            return f"../{rid_str(iov.virtfn[int(name[6:])])}"
        raise SriovError(f"{name}: no such file in {rid_str(iov.cap.pf_rid)}", errno.ENOENT)

    def write(self, name: str, text: str) -> None:
        if name == "sriov_numvfs":
            self.write_numvfs(text)
        elif name == "sriov_drivers_autoprobe":
            t = text.strip()
            if t not in ("0", "1", "y", "n", "Y", "N", "on", "off"):
                raise SriovError(f"sriov_drivers_autoprobe: {t!r} is not a boolean", errno.EINVAL)
            self.iov.drivers_autoprobe = t in ("1", "y", "Y", "on")
        elif name in SYSFS_FILES or name.startswith("virtfn"):
            raise SriovError(f"{name}: read-only (no store in sysfs)", errno.EACCES)
        else:
            raise SriovError(f"{name}: no such file in {rid_str(self.iov.cap.pf_rid)}", errno.ENOENT)

    def write_numvfs(self, text: str) -> None:
        """sriov_numvfs_store, errors and all (see the module docstring)."""
        iov = self.iov
        t = text.strip()
        try:
            num = int(t, 0)
        except ValueError:
            num = -1
        if not 0 <= num <= 0xFFFF:                       # kstrtou16 failed
            raise SriovError(f"sriov_numvfs: {t!r} is not a number", errno.EINVAL)
        total = iov.totalvfs()
        if num > total:
            raise SriovError(f"sriov_numvfs: {num} VFs: sriov_totalvfs is {total}", errno.ERANGE)
        if num == iov.num_vfs:
            return
        if num == 0:
            self.pf.sriov_configure(0)
            return
        if iov.num_vfs:
            raise SriovError(f"{iov.num_vfs} VFs already enabled. Disable before enabling {num} VFs",
                             errno.EBUSY)
        self.pf.sriov_configure(num)
