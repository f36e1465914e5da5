"""A VF's DMA path: every buffer its frames use is translated by the IOMMU.

Element `VfDma` (one per VF, ``<nic>.vf<N>``), the part the VF's RX and TX paths cross:

    input ``pool``    frames the NIC's RX DMA wrote into the VF's queues, as the driver
                      drains them (wired from the NIC's ``pool<P>`` output);
    output ``guest``  the frames whose buffer writes the IOMMU allowed, to the guest;
    input ``guest``   frames the guest's driver posts on its TX queue 0;
    output ``pool``   the frames whose buffer reads the IOMMU allowed (to the NIC's
                      ``pool<P>`` input).

How a frame gets a buffer address.  A VF queue's descriptors live in the guest's
memory: the VF driver allocates a ring (VFRDBAL/VFRDBAH/VFRDLEN, VFTDBAL/... on the
VF's BAR0) and writes one buffer address (an IOVA: a guest-physical address) into
each descriptor (`GuestRam.write_ring`, the model's only kept memory contents).  The
DMA engine takes the next descriptor of the queue for each frame (a frame longer than
the queue's buffer size, SRRCTL.BSIZEPACKET, takes several), in ring order:

* per batch, one descriptor fetch: the ring's base is translated (DMA write: the
  write-back of done descriptors) and the ring read from host memory;
* per buffer, the IOMMU translates the buffer (RX: a DMA write, TX: a DMA read),
  through the domain-tagged IOTLB (the common case is inlined here: one page, an IOTLB
  hit; everything else goes through `Iommu.translate`).

A frame whose descriptor or buffer does not translate is dropped ``dma_fault`` (the
IOMMU counts and logs the fault with the VF and the address); it never reaches
another guest's memory, because only the VF's own domain is consulted.  Frames of a VF
whose Bus Master Enable is clear are dropped ``no_bus_master`` (the function may not
issue DMA at all).  Guest frames that find the VF's TX ring full are dropped
``tx_ring_full`` (a TAP-backed guest cannot be pushed back).

Timing (the model's choice): RX buffer writes are translated when the driver drains
the queue (the frame was counted received by the NIC: a posted DMA write that the
IOMMU blocks is invisible to the device), TX buffer reads when the guest hands the
frame to its queue (the descriptor fetch), before the arbiter serves it.

Counters: ``rx_delivered``/``rx_bytes`` (frames written to the guest), ``rx_broadcast``,
``tx_fetched``/``tx_bytes`` (frames read from the guest), ``rx_dma_faults``,
``tx_dma_faults``, ``descriptor_fetches``.
Drop reasons: ``dma_fault``, ``no_bus_master``, ``tx_ring_full``.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, ClassVar

from sriov.errors import SriovError
from sriov.iommu import DmaFault, Domain, HostMemory, Iommu
from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import BROADCAST

if TYPE_CHECKING:
    from sriov.virtual_function import VirtualFunction

__all__ = ["VfDma", "DmaQueue", "GuestRam", "BUFFER_DEFAULT", "MAX_VF_QUEUES"]

BUFFER_DEFAULT = 2048          # SRRCTL.BSIZEPACKET = 2 (KiB): what ixgbevf uses
MAX_VF_QUEUES = 8              # VF register map: queues 0..7
_DID_SHIFT = 52
_READ, _WRITE = 1, 2


class DmaQueue:
    """One VF queue's descriptor ring as the DMA engine sees it."""

    __slots__ = ("index", "ring_iova", "size", "bsize", "head", "bufs", "ring_hpa")

    def __init__(self, index: int) -> None:
        self.index = index
        self.ring_iova = 0
        self.size = 512
        self.bsize = BUFFER_DEFAULT
        self.head = 0
        self.bufs: list[int] = []
        self.ring_hpa = -1

    def reset(self) -> None:
        self.head = 0
        self.ring_hpa = -1
        self.bufs = []

    def config(self) -> dict[str, int]:
        return {"ring_iova": self.ring_iova, "size": self.size, "buffer_size": self.bsize, "head": self.head}


class GuestRam:
    """A guest's RAM as its driver sees it: guest-physical addresses are IOVAs of its domain.

    ``alloc(size)`` hands out guest memory (page aligned, bump allocation) for rings and
    buffers; ``write_ring(iova, addrs)`` stores a descriptor ring the driver wrote (the
    guest writes its own RAM through its own mapping: outside it, SriovError)."""

    def __init__(self, name: str, domain: Domain, memory: HostMemory, size: int, base: int = 0) -> None:
        self.name = name
        self.domain = domain
        self.memory = memory
        self.size = size
        self.base = base
        self.next = base

    def alloc(self, size: int, align: int = 4096) -> int:
        start = -(-self.next // align) * align
        if start + size > self.base + self.size:
            raise SriovError(f"guest {self.name}: out of RAM ({self.size} bytes) allocating {size} bytes",
                             errno.ENOMEM)
        self.next = start + size
        return start

    def write_ring(self, iova: int, addrs: list[int]) -> None:
        hit = self.domain.lookup(iova)
        if hit is None:
            raise SriovError(f"guest {self.name}: address {iova:#x} is not in its RAM")
        self.memory.rings[hit[0]] = list(addrs)


class VfDma(Element):
    INPUTS: ClassVar[tuple[PortId, ...]] = ("guest", "pool")
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ("pool", "guest")
    COUNTERS = ("rx_delivered", "rx_bytes", "rx_broadcast", "tx_fetched", "tx_bytes", "rx_dma_faults",
                "tx_dma_faults", "descriptor_fetches")
    DROP_REASONS = ("dma_fault", "no_bus_master", "tx_ring_full")

    def __init__(self, name: str, vf: VirtualFunction, iommu: Iommu, memory: HostMemory) -> None:
        super().__init__(name)
        self.vf = vf
        self.iommu = iommu
        self.memory = memory
        self.rxq = [DmaQueue(i) for i in range(MAX_VF_QUEUES)]
        self.txq = [DmaQueue(i) for i in range(MAX_VF_QUEUES)]
        self.qindex: dict[int, int] = {}      # NIC queue number -> the VF's queue index
        self.hide_vlan = False                # a port VLAN: the stripped tag is not the guest's

    def reset(self) -> None:
        """A VF reset: ring heads back to 0, descriptors to be fetched again."""
        for q in (*self.rxq, *self.txq):
            q.reset()

    # -- the graph ----------------------------------------------------------------
    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:
        if inp == "pool":
            self.emit("guest", self.rx(batch), now_ns)
        else:
            self.emit("pool", self.tx(batch), now_ns)

    # -- descriptor fetch -------------------------------------------------------------
    def _fetch(self, dq: DmaQueue, rid: int) -> bool:
        """Translate the ring (the descriptors' write-back) and read it; False on a fault."""
        self.counters["descriptor_fetches"] += 1
        try:
            hpa = self.iommu.translate(rid, dq.ring_iova, 16, True)
        except DmaFault:
            return False
        if hpa != dq.ring_hpa:
            dq.ring_hpa = hpa
            dq.bufs = self.memory.rings.get(hpa, [])
        return True

    # -- RX: the NIC writes received frames into the guest's buffers ----------------------
    def rx(self, batch: Batch) -> Batch:
        """The frames of ``batch`` whose buffers translate (DMA writes); the rest dropped."""
        if not batch:
            return batch
        fn = self.vf.fn
        if not fn.bus_master:
            self.drop_many(batch, "no_bus_master")
            return []
        return self._dma(batch, self.rxq, True, fn.rid)

    # -- TX: the NIC reads the guest's frames from its buffers -------------------------------
    def tx(self, batch: Batch) -> Batch:
        """The frames of ``batch`` that fit the VF's TX queue 0 and whose buffers translate
        (DMA reads); the rest dropped."""
        if not batch:
            return batch
        fn = self.vf.fn
        if not fn.bus_master:
            self.drop_many(batch, "no_bus_master")
            return []
        room = self.vf.tx_room()
        if room < len(batch):
            self.drop_many(batch[max(room, 0):], "tx_ring_full")
            batch = batch[:max(room, 0)]
            if not batch:
                return batch
        return self._dma(batch, self.txq, False, fn.rid)

    def _dma(self, batch: Batch, queues: list[DmaQueue], write: bool, rid: int) -> Batch:
        iommu = self.iommu
        c = self.counters
        dom = iommu.context.get(rid)
        fast = dom is not None and iommu.tagged
        trace = iommu.trace
        tlb = iommu.iotlb
        shift = iommu.page_shift
        psize = iommu.page_size
        pmask = psize - 1
        tag = dom.did << _DID_SHIFT if dom is not None else 0
        need = _WRITE if write else _READ
        qindex = self.qindex
        hide = write and self.hide_vlan
        out: Batch = []
        hits = nbytes = bcast = faults = 0
        fetched: DmaQueue | None = None
        dq = queues[0]
        for f in batch:
            if write:
                dq = queues[qindex.get(f.queue, 0)]
            if dq is not fetched:
                if not self._fetch(dq, rid):
                    faults += 1
                    self.drop(f, "dma_fault")
                    continue
                fetched = dq
            d = f.data
            n = len(d)
            slot = dq.head
            bufs = dq.bufs
            if fast and n <= dq.bsize:
                dq.head = slot + 1 if slot + 1 < dq.size else 0
                iova = bufs[slot] if slot < len(bufs) else 0
                if (iova & pmask) + n <= psize:
                    key = tag | iova >> shift
                    e = tlb.pop(key, None)
                    if e is not None:
                        tlb[key] = e
                        if e & need:
                            hits += 1
                            nbytes += n
                            if trace is not None:
                                trace.append((rid, dom.name, iova, (e >> 2) << shift | (iova & pmask),  # type: ignore[union-attr]
                                              n, write))
                            if d[0] & 1 and write and d[0:6] == BROADCAST:
                                bcast += 1
                            if hide:
                                f.vlan = None
                                f.pcp = 0
                            out.append(f)
                            continue
                if not self._translate(rid, iova, n, write):
                    faults += 1
                    self.drop(f, "dma_fault")
                    continue
            elif not self._buffers(dq, rid, n, write):
                faults += 1
                self.drop(f, "dma_fault")
                continue
            nbytes += n
            if write and d[0] & 1 and d[0:6] == BROADCAST:
                bcast += 1
            if hide:
                f.vlan = None
                f.pcp = 0
            out.append(f)
        if hits:
            ic = iommu.counters
            ic["translations"] += hits
            ic["iotlb_hits"] += hits
        if write:
            c["rx_delivered"] += len(out)
            c["rx_bytes"] += nbytes
            c["rx_broadcast"] += bcast
            c["rx_dma_faults"] += faults
        else:
            c["tx_fetched"] += len(out)
            c["tx_bytes"] += nbytes
            c["tx_dma_faults"] += faults
        return out

    def _translate(self, rid: int, iova: int, n: int, write: bool) -> bool:
        try:
            self.iommu.translate(rid, iova, n, write)
        except DmaFault:
            return False
        return True

    def _buffers(self, dq: DmaQueue, rid: int, n: int, write: bool) -> bool:
        """A frame over as many descriptors as its length needs, each buffer translated."""
        left = n
        ok = True
        while left > 0:
            slot = dq.head
            dq.head = slot + 1 if slot + 1 < dq.size else 0
            iova = dq.bufs[slot] if slot < len(dq.bufs) else 0
            part = min(left, dq.bsize)
            if ok and not self._translate(rid, iova, part, write):
                ok = False          # the rest of its descriptors are consumed all the same
            left -= part
        return ok

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap["rx_queues"] = [q.config() for q in self.rxq[:self.vf.num_queues]]
        snap["tx_queues"] = [q.config() for q in self.txq[:self.vf.num_queues]]
        return snap
