"""Shared filter tables of the port: RAR/MPSAR, VLVF/VLVFB and the 4096-bit hash tables.

These are the tables every pool shares (nic-model.md A "Port", B, E.10).
They are finite: adding to a full table raises `TableFull`, never grows.

* `RarTable`  -- exact MAC filters; entry i = {mac, AV (valid), MPSAR pool bitmap}.
  ``lookup`` maps a MAC to the pool bitmap of the *lowest-numbered* valid entry
  holding it (the model's choice for duplicate entries; the API never creates
  duplicates, BAR0 writes can).
* `VlvfTable` -- VLAN pool filters; entry i = {vid, VIEN (valid), VLVFB bitmap}.
* `HashTable` -- MTA, UTA or VFTA: 4096 bits held in one Python int (bit h).
* `hash12(da, mo)` -- the 12-bit MTA/UTA hash from DA octets 4-5 (E.2): not a CRC.
"""

from __future__ import annotations

import errno as _errno

__all__ = ["NicError", "TableFull", "RarTable", "VlvfTable", "HashTable", "hash12"]

_MO_SHIFT = (4, 3, 2, 0)


class NicError(ValueError):
    """A configuration request the modelled hardware (or its driver) refuses.

    ``errno`` is what the Linux driver would return for it (EINVAL unless said otherwise:
    EOPNOTSUPP for a feature the device lacks, ENOSPC for a full table); the message says
    what is wrong and the valid range.  A refused request changes nothing.
    """

    def __init__(self, message: str, errno: int = _errno.EINVAL) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


class TableFull(NicError):
    """A shared hardware table has no free entry (as ENOSPC / a mailbox NACK would say)."""

    def __init__(self, message: str, errno: int = _errno.ENOSPC) -> None:
        super().__init__(message, errno)


def hash12(da: bytes, mo: int = 0) -> int:
    """MTA/UTA vector: ``((da[5] << 8) | da[4]) >> {4,3,2,0}[MO] & 0xFFF`` (nic-model.md E.2)."""
    return (((da[5] << 8) | da[4]) >> _MO_SHIFT[mo]) & 0xFFF


class HashTable:
    """A 4096-bit table (MTA, UTA or VFTA) as 128 32-bit registers: register h>>5, bit h&31."""

    __slots__ = ("name", "bits")

    def __init__(self, name: str) -> None:
        self.name = name
        self.bits = 0

    def set(self, h: int, on: bool = True) -> None:
        if not 0 <= h < 4096:
            raise NicError(f"{self.name}: bit {h} out of range 0..4095")
        if on:
            self.bits |= 1 << h
        else:
            self.bits &= ~(1 << h)

    def test(self, h: int) -> bool:
        return (self.bits >> h) & 1 == 1

    def read_word(self, i: int) -> int:
        return (self.bits >> (32 * i)) & 0xFFFFFFFF

    def write_word(self, i: int, value: int) -> None:
        mask = 0xFFFFFFFF << (32 * i)
        self.bits = (self.bits & ~mask) | ((value & 0xFFFFFFFF) << (32 * i))

    def set_bits(self) -> list[int]:
        b, out, h = self.bits, [], 0
        while b:
            if b & 1:
                out.append(h)
            b >>= 1
            h += 1
        return out


class RarTable:
    """Receive Address Registers with their MPSAR pool bitmaps."""

    def __init__(self, size: int, device: str) -> None:
        self.size = size
        self.device = device
        self.mac: list[bytes] = [bytes(6)] * size
        self.valid: list[bool] = [False] * size
        self.pools: list[int] = [0] * size
        self.lookup: dict[bytes, int] = {}

    # -- register-level access (BAR0 RAL/RAH/MPSAR) -------------------------
    def set_entry(self, i: int, mac: bytes, valid: bool, pools: int) -> None:
        if not 0 <= i < self.size:
            raise NicError(f"RAR index {i} out of range: {self.size} entries on {self.device}")
        self.mac[i], self.valid[i], self.pools[i] = bytes(mac), valid, pools
        self._rebuild()

    def _rebuild(self) -> None:
        lookup: dict[bytes, int] = {}
        for i in range(self.size):
            if self.valid[i] and self.mac[i] not in lookup:
                lookup[self.mac[i]] = self.pools[i]
        self.lookup = lookup

    # -- API-level access (what a driver's set_vmdq/add_mac does) ------------
    def find(self, mac: bytes) -> int | None:
        for i in range(self.size):
            if self.valid[i] and self.mac[i] == mac:
                return i
        return None

    def add(self, mac: bytes, pool: int) -> int:
        """Give ``pool`` the exact filter ``mac``: share an entry holding it, else take a free one."""
        i = self.find(mac)
        if i is None:
            for j in range(self.size):
                if not self.valid[j] and self.pools[j] == 0:
                    i = j
                    break
            else:
                raise TableFull(f"RAR table full: {self.size} entries on {self.device} "
                                f"(cannot add {mac.hex(':')} for pool {pool})")
            self.mac[i] = bytes(mac)
            self.valid[i] = True
        self.pools[i] |= 1 << pool
        self._rebuild()
        return i

    def remove(self, mac: bytes, pool: int) -> None:
        i = self.find(mac)
        if i is None:
            return
        self.pools[i] &= ~(1 << pool)
        if self.pools[i] == 0:
            self.valid[i] = False
            self.mac[i] = bytes(6)
        self._rebuild()

    def mask_pools(self, mask: int) -> None:
        """Clear MPSAR bits outside ``mask``; an entry that loses its last pool is freed."""
        for i in range(self.size):
            p = self.pools[i]
            if p & ~mask:
                self.pools[i] = p & mask
                if not self.pools[i]:
                    self.valid[i], self.mac[i] = False, bytes(6)
        self._rebuild()

    def macs_of(self, pool: int) -> list[bytes]:
        return [self.mac[i] for i in range(self.size) if self.valid[i] and (self.pools[i] >> pool) & 1]

    def used(self) -> int:
        return sum(1 for i in range(self.size) if self.valid[i] or self.pools[i])


class VlvfTable:
    """VLAN pool filter table, shared by all pools: {vid, VIEN, VLVFB pool bitmap}."""

    def __init__(self, size: int, device: str) -> None:
        self.size = size
        self.device = device
        self.vid: list[int] = [0] * size
        self.valid: list[bool] = [False] * size
        self.pools: list[int] = [0] * size
        self.lookup: dict[int, int] = {}
        self.index: dict[int, int] = {}

    def set_entry(self, i: int, vid: int, valid: bool, pools: int) -> None:
        if not 0 <= i < self.size:
            raise NicError(f"VLVF index {i} out of range: {self.size} entries on {self.device}")
        self.vid[i], self.valid[i], self.pools[i] = vid & 0xFFF, valid, pools
        self._rebuild()

    def _rebuild(self) -> None:
        lookup: dict[int, int] = {}
        index: dict[int, int] = {}
        for i in range(self.size):
            if self.valid[i] and self.vid[i] not in lookup:
                lookup[self.vid[i]] = self.pools[i]
                index[self.vid[i]] = i
        self.lookup, self.index = lookup, index

    def add(self, vid: int, pool: int) -> int:
        if not 0 <= vid <= 4095:
            raise NicError(f"VLAN id {vid} out of range 0..4095")
        i = self.index.get(vid)
        if i is None:
            for j in range(self.size):
                if not self.valid[j]:
                    i = j
                    break
            else:
                raise TableFull(f"VLVF table full: {self.size} entries on {self.device} "
                                f"(cannot add VLAN {vid} for pool {pool})")
            self.vid[i], self.valid[i], self.pools[i] = vid, True, 0
        self.pools[i] |= 1 << pool
        self._rebuild()
        return i

    def remove(self, vid: int, pool: int) -> None:
        i = self.index.get(vid)
        if i is None:
            return
        self.pools[i] &= ~(1 << pool)
        if self.pools[i] == 0:
            self.valid[i], self.vid[i] = False, 0
        self._rebuild()

    def mask_pools(self, mask: int) -> None:
        """Clear VLVFB bits outside ``mask``; an entry that loses its last pool is freed."""
        for i in range(self.size):
            p = self.pools[i]
            if p & ~mask:
                self.pools[i] = p & mask
                if not self.pools[i]:
                    self.valid[i], self.vid[i] = False, 0
        self._rebuild()

    def vids_of(self, pool: int) -> list[int]:
        return [self.vid[i] for i in range(self.size) if self.valid[i] and (self.pools[i] >> pool) & 1]

    def used(self) -> int:
        return sum(self.valid)
