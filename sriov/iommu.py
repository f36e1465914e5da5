"""An IOMMU on the VF DMA path: domains, page tables, a domain-tagged IOTLB, DMA faults.

Direct assignment hands a guest a device that DMAs with the addresses the guest's
driver writes into descriptors: guest-physical addresses, which mean nothing to the
host.  The IOMMU (Intel VT-d, AMD-Vi) translates each DMA by the requester's routing
ID: a context entry picks the device's domain, the domain's page table maps I/O
virtual addresses (IOVA, here the guest's physical addresses) to host-physical ones,
and a DMA outside the guest's mappings faults instead of touching another guest.

`Iommu`
    ``domain(name)`` makes a `Domain`; ``attach(rid, domain)`` is the context entry of
    a requester; ``Domain.map(iova, hpa, size, read=, write=)`` / ``unmap`` edit its
    page table (``unmap`` invalidates the IOTLB entries it covers: page-selective
    invalidation).  ``translate(rid, iova, length, write)`` returns the host address
    or raises `DmaFault`; ``Iommu.fault_log`` keeps the last faults.

IOTLB.  A fully associative cache of ``iotlb_entries`` translations, least recently
used out, each entry tagged by domain id (VT-d's DID): guests' entries live side by
side, so switching from one guest's DMA to another's needs no flush -- the tagged
TLB argument.  ``tagged=False`` models an IOTLB without tags, which must be flushed
whenever the domain changes (counted in ``flushes``): the cost the tags remove.

Defaults (settable per `Iommu`; the sizes of real IOTLBs are not published, these are
the model's): ``page_size`` 4096 (VT-d's base page, what Linux's VFIO maps a guest's
RAM with unless it is backed by huge pages; 2 MiB and 1 GiB are the superpage
sizes), ``iotlb_entries`` 64, ``address_width`` 48 bits (4-level tables: a page walk
reads 4 entries with 4 KiB pages, 3 with 2 MiB, 2 with 1 GiB).

Counters (``counters``): ``translations`` (pages translated), ``iotlb_hits``,
``iotlb_misses``, ``page_walks`` (one per miss), ``walk_reads`` (table entries read),
``invalidations`` (IOTLB entries invalidated by unmap/detach, or whole flushes),
``flushes`` (untagged IOTLB flushed on a domain switch), ``faults``.

Fault reasons, numbered as VT-d's (Linux dmar.c prints them):
0x02 "Present bit in context entry is clear" (the requester is in no domain),
0x04 "Access beyond MGAW" (address beyond the address width),
0x05 "PTE Write access is not set" (a write to a page not mapped writable, or not mapped),
0x06 "PTE Read access is not set".

`HostMemory` hands out host-physical ranges (a guest's RAM) and says who owns an
address, so tests can check that no VF ever touched another guest's memory
(``Iommu.trace``: when a list, every successful translation appends (rid, domain,
iova, hpa, length, write)).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from sriov.capability import rid_str
from sriov.errors import SriovError

__all__ = ["Iommu", "Domain", "DmaFault", "FaultRecord", "HostMemory", "PAGE_SIZES", "FAULT_REASONS"]

PAGE_SIZES = (4096, 2 * 1024 * 1024, 1024 * 1024 * 1024)
FAULT_REASONS = {
    0x02: "Present bit in context entry is clear",
    0x04: "Access beyond MGAW",
    0x05: "PTE Write access is not set",
    0x06: "PTE Read access is not set",
}
READ, WRITE = 1, 2
_DID_SHIFT = 52          # IOTLB key: domain id above the page frame number


@dataclass(frozen=True)
class FaultRecord:
    """One DMA fault, as the IOMMU's fault recording register holds it."""

    rid: int
    iova: int
    write: bool
    reason: int
    domain: str | None
    who: str            # the requester as the model names it ("vf 3")

    def text(self) -> str:
        kind = "DMA Write" if self.write else "DMA Read"
        return (f"DMAR: [{kind}] Request device [{rid_str(self.rid)[5:]}] fault addr {self.iova:#x} "
                f"[fault reason {self.reason:#04x}] {FAULT_REASONS[self.reason]} ({self.who}"
                f"{', domain ' + self.domain if self.domain else ''})")

    def as_dict(self) -> dict[str, Any]:
        return {"rid": rid_str(self.rid), "iova": self.iova, "write": self.write, "reason": self.reason,
                "reason_text": FAULT_REASONS[self.reason], "domain": self.domain, "who": self.who,
                "text": self.text()}


class DmaFault(Exception):
    """A DMA the IOMMU refused; ``record`` says who, where and why."""

    def __init__(self, record: FaultRecord) -> None:
        super().__init__(record.text())
        self.record = record


class Domain:
    """One guest's I/O address space: a page table of IOVA page -> (host page, permissions)."""

    def __init__(self, iommu: Iommu, did: int, name: str) -> None:
        self.iommu = iommu
        self.did = did
        self.name = name
        self.table: dict[int, int] = {}     # iova pfn -> host pfn << 2 | permission bits
        self.mapped_bytes = 0
        self.version = 0                    # moves on every map and unmap: DMA engines re-read

    def map(self, iova: int, hpa: int, size: int, *, read: bool = True, write: bool = True) -> None:
        """Map ``size`` bytes at ``iova`` to ``hpa`` (page aligned; an existing mapping in the
        range is refused with EEXIST-like EINVAL, as iommu_map refuses a mapped IOVA)."""
        ps = self.iommu.page_size
        if iova % ps or hpa % ps or size <= 0 or size % ps:
            raise SriovError(f"domain {self.name}: map iova {iova:#x} hpa {hpa:#x} size {size:#x}: "
                             f"must be positive multiples of the page size {ps:#x}")
        if iova + size > 1 << self.iommu.address_width:
            raise SriovError(f"domain {self.name}: iova {iova:#x}+{size:#x} beyond the "
                             f"{self.iommu.address_width}-bit address width")
        if not (read or write):
            raise SriovError(f"domain {self.name}: a mapping needs read or write permission")
        shift = self.iommu.page_shift
        first, n = iova >> shift, size >> shift
        if any(first + i in self.table for i in range(n)):
            raise SriovError(f"domain {self.name}: iova range {iova:#x}+{size:#x} is already mapped")
        perm = (READ if read else 0) | (WRITE if write else 0)
        hp = hpa >> shift
        for i in range(n):
            self.table[first + i] = ((hp + i) << 2) | perm
        self.mapped_bytes += size
        self.version += 1

    def unmap(self, iova: int, size: int) -> int:
        """Unmap the pages of ``[iova, iova + size)``; their IOTLB entries are invalidated.
        Returns the bytes unmapped."""
        ps, shift = self.iommu.page_size, self.iommu.page_shift
        first, last = iova >> shift, (iova + size - 1) >> shift
        gone = [p for p in range(first, last + 1) if self.table.pop(p, None) is not None]
        self.mapped_bytes -= len(gone) * ps
        self.version += 1
        self.iommu._invalidate_pages(self.did, gone)
        return len(gone) * ps

    def lookup(self, iova: int) -> tuple[int, int] | None:
        """(host address, permission bits) of ``iova`` by a walk, without the IOTLB or counters."""
        e = self.table.get(iova >> self.iommu.page_shift)
        if e is None:
            return None
        return ((e >> 2) << self.iommu.page_shift) | (iova & (self.iommu.page_size - 1)), e & 3


class Iommu:
    """DMA remapping for requesters (routing IDs) attached to domains; see the module docstring."""

    def __init__(self, *, page_size: int = 4096, iotlb_entries: int = 64, tagged: bool = True,
                 address_width: int = 48, fault_log: int = 256) -> None:
        if page_size not in PAGE_SIZES:
            raise SriovError(f"IOMMU page size {page_size}: VT-d pages are 4 KiB, 2 MiB or 1 GiB")
        if iotlb_entries < 1:
            raise SriovError(f"IOTLB size {iotlb_entries}: needs at least one entry")
        if address_width not in (39, 48, 57):
            raise SriovError(f"address width {address_width}: VT-d uses 39, 48 or 57 bits (3/4/5 levels)")
        self.page_size = page_size
        self.page_shift = page_size.bit_length() - 1
        self.iotlb_entries = iotlb_entries
        self.tagged = tagged
        self.address_width = address_width
        # levels walked: 9 bits per level above the page offset
        self.walk_levels = -(-(address_width - self.page_shift) // 9)
        self.domains: dict[str, Domain] = {}
        self.context: dict[int, Domain] = {}
        self.names: dict[int, str] = {}          # rid -> what the fault log calls it
        self.iotlb: dict[int, int] = {}
        self._last_did = -1
        self._next_did = 1
        self.counters = dict.fromkeys(("translations", "iotlb_hits", "iotlb_misses", "page_walks", "walk_reads",
                                       "invalidations", "flushes", "faults"), 0)
        self.fault_log: deque[FaultRecord] = deque(maxlen=fault_log)
        self.trace: list[tuple[int, str, int, int, int, bool]] | None = None

    # -- domains and context entries ------------------------------------------
    def domain(self, name: str) -> Domain:
        """A new domain (one per guest)."""
        if name in self.domains:
            raise SriovError(f"IOMMU domain {name!r} already exists")
        d = Domain(self, self._next_did, name)
        self._next_did += 1
        self.domains[name] = d
        return d

    def attach(self, rid: int, domain: Domain | None, who: str = "") -> None:
        """Context entry of requester ``rid``: its DMA goes through ``domain`` (None: none, so
        every DMA faults with reason 0x02).  A change invalidates the requester's old domain
        entries, as a context-cache plus domain-selective IOTLB invalidation does."""
        old = self.context.pop(rid, None)
        if domain is not None:
            if domain.iommu is not self:
                raise SriovError(f"domain {domain.name!r} belongs to another IOMMU")
            self.context[rid] = domain
        if who:
            self.names[rid] = who
        if old is not None and old is not domain:
            self.invalidate_domain(old)

    def remove_domain(self, domain: Domain) -> None:
        """Destroy a domain (its guest is gone): requesters still attached lose their context
        entry, its IOTLB entries are invalidated."""
        for rid, d in list(self.context.items()):
            if d is domain:
                del self.context[rid]
        self.invalidate_domain(domain)
        self.domains.pop(domain.name, None)

    def invalidate_domain(self, domain: Domain) -> int:
        """Domain-selective IOTLB invalidation: drop every entry tagged with its id."""
        did = domain.did
        if not self.tagged:
            return self.flush()
        gone = [k for k in self.iotlb if k >> _DID_SHIFT == did]
        for k in gone:
            del self.iotlb[k]
        self.counters["invalidations"] += len(gone)
        return len(gone)

    def flush(self) -> int:
        """Global IOTLB invalidation."""
        n = len(self.iotlb)
        self.iotlb.clear()
        self.counters["invalidations"] += n
        return n

    def _invalidate_pages(self, did: int, pfns: list[int]) -> None:
        tlb = self.iotlb
        n = 0
        for p in pfns:
            k = (did << _DID_SHIFT | p) if self.tagged else p
            if tlb.pop(k, None) is not None:
                n += 1
        self.counters["invalidations"] += n

    # -- translation ----------------------------------------------------------
    def fault(self, rid: int, iova: int, write: bool, reason: int, domain: Domain | None) -> DmaFault:
        rec = FaultRecord(rid, iova, write, reason, domain.name if domain else None,
                          self.names.get(rid, rid_str(rid)))
        self.counters["faults"] += 1
        self.fault_log.append(rec)
        return DmaFault(rec)

    def translate(self, rid: int, iova: int, length: int, write: bool) -> int:
        """Host address of a DMA of ``length`` bytes at ``iova`` by requester ``rid``, every
        page it touches translated (the IOTLB first, a page walk on a miss); `DmaFault` if any
        page is not mapped with the permission the access needs."""
        d = self.context.get(rid)
        if d is None:
            raise self.fault(rid, iova, write, 0x02, None)
        if iova < 0 or iova + length > 1 << self.address_width:
            raise self.fault(rid, iova, write, 0x04, d)
        shift = self.page_shift
        first = iova >> shift
        last = (iova + max(length, 1) - 1) >> shift
        need = WRITE if write else READ
        hpa = -1
        for pfn in range(first, last + 1):
            e = self.lookup_page(d, pfn)
            if e < 0 or not e & need:
                raise self.fault(rid, pfn << shift if pfn != first else iova, write, 0x05 if write else 0x06, d)
            if hpa < 0:
                hpa = ((e >> 2) << shift) | (iova & (self.page_size - 1))
        if self.trace is not None:
            self.trace.append((rid, d.name, iova, hpa, length, write))
        return hpa

    def lookup_page(self, d: Domain, pfn: int) -> int:
        """One page through the IOTLB: its table entry (host pfn << 2 | permissions), -1 if not
        mapped.  Counts a translation, and a hit or a miss with its page walk."""
        c = self.counters
        c["translations"] += 1
        if self.tagged:
            key = d.did << _DID_SHIFT | pfn
        else:
            key = pfn
            if d.did != self._last_did:
                if self.iotlb:
                    self.iotlb.clear()
                    c["flushes"] += 1
                self._last_did = d.did
        tlb = self.iotlb
        e = tlb.pop(key, None)
        if e is not None:
            tlb[key] = e                 # most recently used goes to the end
            c["iotlb_hits"] += 1
            return e
        c["iotlb_misses"] += 1
        c["page_walks"] += 1
        c["walk_reads"] += self.walk_levels
        found = d.table.get(pfn)
        if found is None:
            return -1                    # faults are not cached (VT-d caches only present entries)
        if len(tlb) >= self.iotlb_entries:
            del tlb[next(iter(tlb))]     # least recently used
        tlb[key] = found
        return found

    def snapshot(self) -> dict[str, Any]:
        c: dict[str, Any] = dict(self.counters)
        t = c["translations"]
        c["iotlb_hit_rate"] = round(c["iotlb_hits"] / t, 6) if t else 0.0
        return c

    def show(self) -> dict[str, Any]:
        return {
            "page_size": self.page_size, "iotlb_entries": self.iotlb_entries, "tagged": self.tagged,
            "address_width": self.address_width, "iotlb_used": len(self.iotlb),
            "domains": {d.name: {"did": d.did, "mapped_bytes": d.mapped_bytes,
                                 "requesters": sorted(rid_str(r) for r, x in self.context.items() if x is d)}
                        for d in self.domains.values()},
            "counters": self.snapshot(),
            "faults": [f.as_dict() for f in self.fault_log],
        }


class HostMemory:
    """Host-physical memory handed out in page-aligned ranges (a guest's RAM); ``owner(hpa)``.

    The only contents the model keeps are descriptor rings: ``rings[hpa]`` is the list of
    buffer addresses a guest's driver wrote into the ring that starts at host address
    ``hpa`` (frame bytes are not copied: a DMA is its translations)."""

    def __init__(self, base: int = 0x1_0000_0000, align: int = 2 * 1024 * 1024) -> None:
        self.next = base
        self.align = align
        self.ranges: list[tuple[int, int, str]] = []
        self.rings: dict[int, list[int]] = {}
        self.version = 0            # moves on every descriptor write: DMA engines re-read

    def write_ring(self, hpa: int, addrs: list[int]) -> None:
        """A driver wrote a whole descriptor ring starting at host address ``hpa``."""
        self.rings[hpa] = list(addrs)
        self.version += 1

    def write_descriptor(self, hpa: int, slot: int, addr: int) -> None:
        """A driver (or a buggy or hostile one) wrote one descriptor's buffer address."""
        ring = self.rings.setdefault(hpa, [])
        if slot >= len(ring):
            ring.extend([0] * (slot + 1 - len(ring)))
        ring[slot] = addr
        self.version += 1

    def allocate(self, size: int, owner: str) -> int:
        a = self.align
        start = -(-self.next // a) * a
        self.next = start + -(-size // a) * a
        self.ranges.append((start, start + size, owner))
        return start

    def owner(self, hpa: int) -> str | None:
        for lo, hi, who in self.ranges:
            if lo <= hpa < hi:
                return who
        return None
