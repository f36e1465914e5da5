"""A VF's DMA path: every buffer its frames use is translated by the IOMMU.

Element `VfDma` (one per VF, ``<nic>.vf<N>``), the part the VF's RX and TX paths cross:

    input ``pool``    frames the NIC's RX DMA wrote into the VF's queues, as the driver
                      drains them (wired from the NIC's ``pool<P>`` output);
    output ``guest``  the frames whose buffer writes the IOMMU allowed, to the guest;
    input ``guest``   frames the guest posts: each flow on one of the TX queues its driver
                      enabled (`tx_split`, the guest stack's choice), each batch one queue's;
    output ``pool``   the frames whose buffer reads the IOMMU allowed (to the NIC's
                      ``pool<P>`` input), a batch per TX queue, each frame's ``queue`` the
                      NIC's number of it (the NIC puts the batch on that queue).

How a frame gets a buffer address.  A VF queue's descriptors live in the guest's
memory: the VF driver allocates a ring (VFRDBAL/VFRDBAH/VFRDLEN, VFTDBAL/... on the
VF's BAR0) and writes one buffer address (an IOVA: a guest-physical address) into
each descriptor (`GuestRam.write_ring`, the model's only kept memory contents).  The
DMA engine takes the next descriptor of the queue for each frame (a frame longer than
the queue's buffer size, SRRCTL.BSIZEPACKET, takes several), in ring order:

* per batch, one descriptor fetch: the ring's base is translated (DMA write: the
  write-back of done descriptors) and the ring read from host memory;
* per buffer, the IOMMU translates the buffer (RX: a DMA write, TX: a DMA read),
  through the domain-tagged IOTLB.  The common case is inlined here, by runs: the
  descriptors from the head on whose buffers share a page (worked out once per ring,
  again when a descriptor, the ring's translation, the domain or the sizes change) are
  one IOTLB lookup, the rest of the run hits the entry it made the most recently used
  -- the counts, the IOTLB's order and the faults are those of the frames taken one by
  one (`tests/unit/sriov/test_sriov_dma_paths.py` holds the two paths equal); a frame
  over several buffers or across a page, an untagged IOTLB or a trace go frame by frame
  or through `Iommu.translate`.

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

Counters: ``rx_delivered`` (frames written to the guest), ``tx_fetched`` (frames read
from the guest), ``rx_dma_faults``, ``tx_dma_faults``, ``descriptor_fetches``.
Drop reasons: ``dma_fault``, ``no_bus_master``, ``tx_ring_full``.
"""

from __future__ import annotations

import errno
from collections import deque
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

from nicmodel.sorter import rss_index
from sriov.errors import SriovError
from sriov.iommu import DmaFault, Domain, HostMemory, Iommu
from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import Frame

if TYPE_CHECKING:
    from nicmodel.tx_arbiter import TxQueue
    from sriov.virtual_function import VirtualFunction

__all__ = ["VfDma", "DmaQueue", "GuestRam", "BUFFER_DEFAULT", "MAX_VF_QUEUES"]

BUFFER_DEFAULT = 2048          # SRRCTL.BSIZEPACKET = 2 (KiB): what ixgbevf uses
MAX_VF_QUEUES = 8              # VF register map: queues 0..7
_DID_SHIFT = 52
_READ, _WRITE = 1, 2
_SINK: deque[object] = deque(maxlen=0)
_DRAIN = _SINK.extend                   # runs an iterator to its end in C (the IOTLB's evictions)


class DmaQueue:
    """One VF queue's descriptor ring as the DMA engine sees it."""

    __slots__ = ("index", "ring_iova", "size", "bsize", "head", "bufs", "ring_hpa", "keys", "lims", "kver",
                 "runs", "pfns", "minlim", "run_of", "run_keys", "run_ents", "run_bad", "distinct")

    def __init__(self, index: int) -> None:
        self.index = index
        self.ring_iova = 0
        self.size = 512
        self.bsize = BUFFER_DEFAULT
        self.head = 0
        self.bufs: list[int] = []
        self.ring_hpa = -1
        # per descriptor: its buffer's IOTLB key (domain tag | page) and how many bytes fit in
        # the buffer without crossing the page; rebuilt when the ring, the domain or the sizes change
        self.keys: list[int] = []
        self.lims: list[int] = []
        # per descriptor: the end (exclusive, at most ``size``) of the run of descriptors from it
        # whose buffers share its page -- a run is one IOTLB lookup; and the smallest room of all
        self.runs: list[int] = []
        self.pfns: list[int] = []          # and its buffer's page frame number (the walk's index)
        self.minlim = 0
        # the same runs numbered in ring order: per descriptor the number of its run; per run its
        # IOTLB key and its page's entry in the domain's table as the ring was read (0: none);
        # run_bad[need][r]: how many of the runs before r would fault an access needing ``need``
        # (read 1, write 2); and whether no two runs of the ring share a page (then a burst that
        # does not come round to its first run again looks up distinct pages).  The entries
        # are read again when the domain's table changes (`Domain.version`, in ``kver``).
        self.run_of: list[int] = []
        self.run_keys: list[int] = []
        self.run_ents: list[int] = []
        self.run_bad: list[list[int]] = []
        self.distinct = False
        self.kver: tuple[int, ...] = ()

    def reset(self) -> None:
        self.head = 0
        self.ring_hpa = -1
        self.bufs = []
        self.kver = ()

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

    def _hpa(self, iova: int) -> int:
        hit = self.domain.lookup(iova)
        if hit is None:
            raise SriovError(f"guest {self.name}: address {iova:#x} is not in its RAM", errno.EFAULT)
        return hit[0]

    def write_ring(self, iova: int, addrs: list[int]) -> None:
        """The driver writes a descriptor ring at ``iova``: one buffer address per descriptor."""
        self.memory.write_ring(self._hpa(iova), addrs)

    def write_descriptor(self, iova: int, slot: int, addr: int) -> None:
        """The driver writes descriptor ``slot`` of the ring at ``iova`` (any address at all)."""
        self.memory.write_descriptor(self._hpa(iova), slot, addr)


class VfDma(Element):
    INPUTS: ClassVar[tuple[PortId, ...]] = ("guest", "pool")
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ("pool", "guest")
    COUNTERS = ("rx_delivered", "tx_fetched", "rx_dma_faults", "tx_dma_faults", "descriptor_fetches")
    DROP_REASONS = ("dma_fault", "no_bus_master", "tx_ring_full")

    def __init__(self, name: str, vf: VirtualFunction, iommu: Iommu, memory: HostMemory) -> None:
        super().__init__(name)
        self.vf = vf
        self.iommu = iommu
        self.memory = memory
        self.rxq = [DmaQueue(i) for i in range(MAX_VF_QUEUES)]
        self.txq = [DmaQueue(i) for i in range(MAX_VF_QUEUES)]
        self.qindex: dict[int, int] = {}      # NIC queue number -> the VF's queue index
        self.txrings: list[TxQueue] = []      # the NIC's TX queue of each of the VF's queues
        # NIC numbers of the TX queues the VF's driver enabled (VFTXDCTL), in order; the guest's
        # flows spread over them (`tx_split`); none enabled: queue 0 (its frames wait on the
        # ring until the queue is enabled, or a reset empties it)
        self.txsel: tuple[int, ...] = ()
        self.hide_vlan = False                # a port VLAN: the stripped tag is not the guest's
        # Streaming bursts translated at once (`_burst`); off, the run loop takes them: the same
        # model, compared by the tests (a compiled VfDma cannot be patched).  How many taken.
        self.bursts = True
        self.bursts_taken = 0

    def reset(self) -> None:
        """A VF reset: ring heads back to 0, descriptors to be fetched again."""
        for q in (*self.rxq, *self.txq):
            q.reset()
        self.refresh_tx()

    # -- the graph ----------------------------------------------------------------
    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:
        if inp == "pool":
            self.emit("guest", self.rx(batch), now_ns)
        else:
            for ok in self.tx_guest(batch):
                self.emit("pool", ok, now_ns)

    def tx_guest(self, batch: Batch) -> list[Batch]:
        """What the ``guest`` input does with a batch: `tx_split`, then `tx` of each queue's
        frames; the batches that passed, each one queue's, none empty."""
        out: list[Batch] = []
        for one in self.tx_split(batch):
            ok = self.tx(one)
            if ok:
                out.append(ok)
        return out

    # -- the guest's TX queue choice --------------------------------------------------
    def refresh_tx(self) -> None:
        """The TX queues the driver enabled, read again (after a VFTXDCTL write or a reset)."""
        txa = self.vf.nic.txa
        self.txsel = tuple(q for q in self.vf.nic_queues if txa.queues[q].enabled)

    def tx_split(self, batch: Batch) -> list[Batch]:
        """The guest's frames by the TX queue its network stack puts them on: with one queue
        enabled all of them, with more each flow on one (Linux's skb_tx_hash over the
        driver's real_num_tx_queues; the model hashes as the NIC's RSS, `rss_index`).  Each
        frame's ``queue`` becomes the NIC's number of its queue, which `tx` and the NIC's
        ``pool<P>`` input read; the batches in queue order, none empty."""
        sel = self.txsel
        if len(sel) <= 1:
            q = sel[0] if sel else self.vf.nic_queues[0]
            for f in batch:
                f.queue = q
            return [batch] if batch else []
        n = len(sel)
        groups: list[Batch] = [[] for _ in range(n)]
        for f in batch:
            groups[rss_index(f.data, n)].append(f)
        out: list[Batch] = []
        for q, g in zip(sel, groups, strict=True):
            if g:
                for f in g:
                    f.queue = q
                out.append(g)
        return out

    # -- descriptor fetch -------------------------------------------------------------
    def _fetch(self, dq: DmaQueue, rid: int) -> bool:
        """Translate the ring (the descriptors' write-back) and read it; False on a fault."""
        self.counters["descriptor_fetches"] += 1
        try:
            hpa = self.iommu.translate(rid, dq.ring_iova, 16, True)
        except DmaFault:
            return False
        self._read_ring(dq, hpa, self.iommu.context.get(rid))
        return True

    def _read_ring(self, dq: DmaQueue, hpa: int, dom: Domain | None) -> None:
        """The ring at host address ``hpa`` as read: its buffers' IOTLB keys, rooms and page runs,
        worked out again only when a descriptor was written, or the ring's translation, the
        domain, its table or the sizes changed."""
        io = self.iommu
        did, dver = (dom.did, dom.version) if dom is not None else (-1, -1)
        ver = (self.memory.version, hpa, did, dver, io.page_shift, dq.bsize, dq.size)
        if ver == dq.kver:
            return
        dq.ring_hpa = hpa
        bufs = dq.bufs = self.memory.rings.get(hpa, [])
        tag = did << _DID_SHIFT
        shift, psize, pmask, bsize, size = io.page_shift, io.page_size, io.page_size - 1, dq.bsize, dq.size
        addrs = [bufs[s] if s < len(bufs) else 0 for s in range(size)]
        pfns = dq.pfns = [a >> shift for a in addrs]
        keys = dq.keys = [tag | p for p in pfns]
        dq.lims = [min(bsize, psize - (a & pmask)) for a in addrs]
        dq.minlim = min(dq.lims, default=0)
        runs = [size] * size
        for s in range(size - 2, -1, -1):
            if keys[s] == keys[s + 1]:
                runs[s] = runs[s + 1]
            else:
                runs[s] = s + 1
        dq.runs = runs
        run_of = dq.run_of = [0] * size
        starts = [s for s in range(size) if s == 0 or keys[s] != keys[s - 1]]
        for r, s in enumerate(starts):
            run_of[s:runs[s]] = [r] * (runs[s] - s)
        dq.run_keys = [keys[s] for s in starts]
        ents = dq.run_ents = [dom.table.get(pfns[s], 0) if dom is not None else 0 for s in starts]
        dq.run_bad = [[]]
        for need in (_READ, _WRITE):
            bad = [0]
            for e in ents:
                bad.append(bad[-1] + (not e & need))
            dq.run_bad.append(bad)
        dq.distinct = len(set(dq.run_keys)) == len(starts)
        dq.kver = ver

    # -- RX: the NIC writes received frames into the guest's buffers ----------------------
    def rx(self, batch: Batch) -> Batch:
        """The frames of ``batch`` whose buffers translate (DMA writes); the rest dropped."""
        if not batch:
            return batch
        fn = self.vf.fn
        if not fn.bus_master:
            self.drop_many(batch, "no_bus_master")
            return []
        return self._dma(batch, self.rxq[self.qindex.get(batch[0].queue, 0)], True, fn.rid)

    # -- TX: the NIC reads the guest's frames from its buffers -------------------------------
    def tx(self, batch: Batch) -> Batch:
        """The frames of ``batch`` (one TX queue's, `tx_split`: the queue its first frame's
        ``queue`` names, else queue 0) that fit that queue's ring and whose buffers translate
        (DMA reads); the rest dropped."""
        if not batch:
            return batch
        fn = self.vf.fn
        if not fn.bus_master:
            self.drop_many(batch, "no_bus_master")
            return []
        qi = self.qindex.get(batch[0].queue, 0)
        tq = self.txrings[qi]
        room = tq.size - len(tq.ring)
        if room < len(batch):
            self.drop_many(batch[max(room, 0):], "tx_ring_full")
            batch = batch[:max(room, 0)]
            if not batch:
                return batch
        return self._dma(batch, self.txq[qi], False, fn.rid)

    def _dma(self, batch: Batch, dq: DmaQueue, write: bool, rid: int) -> Batch:
        """Translate each frame's buffer(s) in the order of ``dq``'s ring; the frames that passed.

        A batch is one queue's (RX: a drain, what the NIC's ``pool<P>`` output emits and
        `VirtualFunction.receive` hands over; TX: `tx_split`'s), and ``dq`` that queue's ring,
        picked by the caller from the first frame's ``queue``.  The common case
        is written out inline: a domain-tagged IOTLB, no trace, a ring base that sits in one
        page, every frame of the batch fitting the smallest room of the ring's buffers (no
        frame over several buffers or across a page; for RX known without reading the
        lengths when the queue's `RxQueue.len_bound` fits that room).  Then the descriptor fetch is one IOTLB
        lookup, and the buffers are translated by runs: the descriptors from the head on
        whose buffers share a page (`DmaQueue.runs`, worked out per ring) are one lookup --
        the IOTLB, else the walk of the domain's table -- and the frames after the first of a
        run hit the entry the first one made the most recently used.  A frame's fault is its
        own (faults are not cached: each frame of a faulting run looks the page up again).
        The counts are what `Iommu.lookup_page` counts for the same frames one by one.
        Anything else goes frame by frame (`_frames`) or through `Iommu.translate`."""
        iommu = self.iommu
        dom = iommu.context.get(rid)
        ring = dq.ring_iova
        psize = iommu.page_size
        if (dom is None or not iommu.tagged or iommu.trace is not None
                or ring & (psize - 1) > psize - 16 or ring + 16 > 1 << iommu.address_width):
            if not self._fetch(dq, rid):
                self.drop_many(batch, "dma_fault")
                return self._count([], write, len(batch))
            if dom is None or not iommu.tagged:
                return self._dma_slow(batch, dq, write, rid)
            return self._frames(batch, dq, write, rid, dom)
        # the descriptor fetch: the ring's page through the IOTLB (a DMA write: the write-back)
        self.counters["descriptor_fetches"] += 1
        tlb = iommu.iotlb
        table = dom.table
        cap = iommu.iotlb_entries
        shift = iommu.page_shift
        tag = dom.did << _DID_SHIFT
        key = tag | ring >> shift
        e = tlb.pop(key, None)
        if e is None:
            misses = 1
            e = table.get(ring >> shift)
            if e is not None:
                if len(tlb) >= cap:
                    del tlb[next(iter(tlb))]        # least recently used
                tlb[key] = e
        else:
            misses = 0
            tlb[key] = e
        if e is None or not e & _WRITE:
            self._tally(1, misses)
            iommu.fault(rid, ring, True, 0x05, dom)
            self.drop_many(batch, "dma_fault")
            return self._count([], write, len(batch))
        hpa = (e >> 2) << shift | (ring & (psize - 1))
        if (self.memory.version, hpa, dom.did, dom.version, shift, dq.bsize, dq.size) != dq.kver:   # as _read_ring
            self._read_ring(dq, hpa, dom)
        n = len(batch)
        # RX: the frames came from one NIC queue, none longer than its ``len_bound``; when that
        # fits the ring's smallest room the lengths need not be read (half the cost of a
        # streaming batch with large pages).  Otherwise a list comprehension: a third cheaper
        # than max(map(len, map(attrgetter("data"), ...))).
        if ((not write or self._rx_bound(batch[0].queue) > dq.minlim)
                and max([len(f.data) for f in batch]) > dq.minlim):
            self._tally(1, misses)
            return self._frames(batch, dq, write, rid, dom)
        need = _WRITE if write else _READ
        keys, pfns, runs, head, size = dq.keys, dq.pfns, dq.runs, dq.head, dq.size
        # A burst of new pages, worth it where the batch spans many runs (small pages); a batch
        # within a run or two (large pages), or whose first page is cached, spares the attempt.
        if self.bursts and 4 * (runs[head] - head) <= n and keys[head] not in tlb:
            got = self._burst(dq, n, tlb, cap, need)
            if got >= 0:
                self.bursts_taken += 1
                # _tally(n + 1, misses + got) and _count(batch, write, 0), written out: the
                # streaming case's two calls cost as much as the rest of its bookkeeping
                misses += got
                ic = iommu.counters
                ic["translations"] += n + 1
                ic["iotlb_hits"] += n + 1 - misses
                ic["iotlb_misses"] += misses
                ic["page_walks"] += misses
                ic["walk_reads"] += misses * iommu.walk_levels
                if write:
                    self.counters["rx_delivered"] += n
                    if self.hide_vlan:
                        return self._count(batch, write, 0, False)
                else:
                    self.counters["tx_fetched"] += n
                return batch
        bad: list[Frame] | None = None
        i = 0
        while i < n:
            m = runs[head] - head
            if m > n - i:
                m = n - i
            key = keys[head]
            e = tlb.pop(key, None)
            if e is None:
                misses += 1
                e = table.get(pfns[head])
                if e is not None:
                    if len(tlb) >= cap:
                        del tlb[next(iter(tlb))]    # least recently used
                    tlb[key] = e
            else:
                tlb[key] = e
            if e is None or not e & need:
                if e is None:
                    misses += m - 1                 # each frame's own lookup misses again
                for j in range(m):
                    self._fault(dq, head + j, rid, write, dom)
                bad = batch[i:i + m] if bad is None else bad + batch[i:i + m]
            head += m
            if head == size:
                head = 0
            i += m
        dq.head = head
        self._tally(n + 1, misses)
        if bad is None:
            return self._count(batch, write, 0)
        self.drop_many(bad, "dma_fault")
        gone = set(map(id, bad))
        return self._count([f for f in batch if id(f) not in gone], write, len(bad))

    def _rx_bound(self, queue: int) -> int:
        """The longest frame NIC queue ``queue`` (one of the VF's) can hold: `RxQueue.len_bound`;
        for anything else (a frame not from one of its queues) no bound."""
        if queue not in self.qindex:
            return 1 << 30
        return self.vf.nic.rings.queues[queue].len_bound

    @staticmethod
    def _burst(dq: DmaQueue, n: int, tlb: dict[int, int], cap: int, need: int) -> int:
        """The runs of the next ``n`` descriptors of ``dq`` translated at once where that is the
        frames' model taken one by one without a branch: the pages distinct, none of them in the
        IOTLB (each run one miss and one walk), every one mapped with the permission ``need``
        (the ring's entries of the domain's table, `DmaQueue.run_ents`, read with the ring).
        Then each page is walked and goes into the IOTLB in ring order, the least recently used
        entries out as one insert after another would have pushed them (with more pages than
        entries only the last ``cap`` stay); the ring's head moves on; the misses returned.
        Anything else (a page already cached, one unmapped or not permitted, pages repeated, a
        burst longer than the ring) changes nothing and returns -1: the run loop handles it.
        This is the streaming case of small pages -- every buffer page new to the IOTLB since the
        ring last came round -- done in a few calls per burst instead of a loop turn per page."""
        size = dq.size
        if not dq.distinct or n > size:
            return -1
        head = dq.head
        run_of, end, bad = dq.run_of, head + n, dq.run_bad[need]
        r0 = run_of[head]
        if end <= size:
            r1 = run_of[end - 1] + 1
            if bad[r1] != bad[r0]:
                return -1
            ks = dq.run_keys[r0:r1]
            if not tlb.keys().isdisjoint(ks):
                return -1
            es = dq.run_ents[r0:r1]
        else:
            end -= size
            r1 = run_of[end - 1] + 1
            if r1 > r0 or bad[-1] != bad[r0] or bad[r1]:     # back in its first run: a page twice
                return -1
            ks = dq.run_keys[r0:] + dq.run_keys[:r1]
            if not tlb.keys().isdisjoint(ks):
                return -1
            es = dq.run_ents[r0:] + dq.run_ents[:r1]
        k = len(ks)
        over = len(tlb) + k - cap            # entries the inserts push out, oldest first
        if over >= len(tlb):
            tlb.clear()
            if k > cap:
                ks, es = ks[-cap:], es[-cap:]
        elif over > 0:
            _DRAIN(map(tlb.pop, list(islice(tlb, over))))
        tlb.update(zip(ks, es, strict=False))        # the same length: slices of the same runs
        dq.head = end if end < size else 0
        return k

    def _frames(self, batch: Batch, dq: DmaQueue, write: bool, rid: int, dom: Domain) -> Batch:
        """Frame by frame, the ring fetched (a tagged IOTLB): each descriptor's IOTLB key and
        room are precomputed per ring (`_read_ring`); a frame on the same page as the one
        before is an IOTLB hit without a lookup (that entry is the most recently used
        already); otherwise the IOTLB, else the walk of the domain's table, counted as
        `Iommu.lookup_page` counts them.  A frame over several buffers or across a page goes
        through `Iommu.translate`; with a trace, every translation is recorded."""
        iommu = self.iommu
        trace = iommu.trace
        tlb = iommu.iotlb
        table = dom.table
        cap = iommu.iotlb_entries
        tag = dom.did << _DID_SHIFT
        need = _WRITE if write else _READ
        keys, lims, head, size = dq.keys, dq.lims, dq.head, dq.size
        misses = nslow = 0
        last_key = -1
        last_e = 0
        bad: list[Frame] | None = None
        for f in batch:
            if len(f.data) <= lims[head]:
                key = keys[head]
                head += 1
                if head == size:
                    head = 0
                if key != last_key:
                    e = tlb.pop(key, None)
                    if e is None:
                        misses += 1
                        e = table.get(key ^ tag)
                        if e is not None:
                            if len(tlb) >= cap:
                                del tlb[next(iter(tlb))]    # least recently used
                            tlb[key] = e
                    else:
                        tlb[key] = e
                    if e is None or not e & need:
                        self._fault(dq, head - 1 if head else size - 1, rid, write, dom)
                        bad = [f] if bad is None else bad + [f]
                        last_key = -1
                        continue
                    last_key = key
                    last_e = e
                if trace is not None:
                    self._trace(dq, head - 1 if head else size - 1, rid, dom, last_e, len(f.data), write)
            else:
                nslow += 1
                dq.head = head
                ok = self._buffers(dq, rid, len(f.data), write)
                head = dq.head
                last_key = -1                            # the IOTLB's order moved under us
                if not ok:
                    bad = [f] if bad is None else bad + [f]
        dq.head = head
        nfast = len(batch) - nslow
        if nfast:
            self._tally(nfast, misses)
        if bad is None:
            return self._count(batch, write, 0)
        self.drop_many(bad, "dma_fault")
        gone = set(map(id, bad))
        return self._count([f for f in batch if id(f) not in gone], write, len(bad))

    def _tally(self, lookups: int, misses: int) -> None:
        """``lookups`` page translations, ``misses`` of them IOTLB misses (each a page walk):
        the IOMMU's counters as `Iommu.lookup_page` counts the same lookups one by one."""
        ic = self.iommu.counters
        ic["translations"] += lookups
        ic["iotlb_hits"] += lookups - misses
        if misses:
            ic["iotlb_misses"] += misses
            ic["page_walks"] += misses
            ic["walk_reads"] += misses * self.iommu.walk_levels

    def _trace(self, dq: DmaQueue, slot: int, rid: int, dom: Domain, e: int, n: int, write: bool) -> None:
        iova = dq.bufs[slot] if slot < len(dq.bufs) else 0
        shift = self.iommu.page_shift
        self.iommu.trace.append((rid, dom.name, iova, (e >> 2) << shift | (iova & (self.iommu.page_size - 1)),  # type: ignore[union-attr]
                                 n, write))

    def _count(self, out: Batch, write: bool, faults: int, count: bool = True) -> Batch:
        """The frames that passed counted (unless ``count`` is off: done already) and, for RX
        with a port VLAN, its stripped tag taken off them."""
        c = self.counters
        if write:
            if count:
                c["rx_delivered"] += len(out)
                c["rx_dma_faults"] += faults
            if self.hide_vlan:                           # a port VLAN: the tag is not the guest's
                for f in out:
                    f.vlan = None
                    f.pcp = 0
        elif count:
            c["tx_fetched"] += len(out)
            c["tx_dma_faults"] += faults
        return out

    def _fault(self, dq: DmaQueue, slot: int, rid: int, write: bool, dom: Domain) -> None:
        iova = dq.bufs[slot] if slot < len(dq.bufs) else 0
        self.iommu.fault(rid, iova, write, 0x05 if write else 0x06, dom)

    def _dma_slow(self, batch: Batch, dq: DmaQueue, write: bool, rid: int) -> Batch:
        """Every buffer through `Iommu.translate` (no domain: each faults; an untagged IOTLB)."""
        out: Batch = []
        faults = 0
        for f in batch:
            if self._buffers(dq, rid, len(f.data), write):
                out.append(f)
            else:
                faults += 1
                self.drop(f, "dma_fault")
        return self._count(out, write, faults)

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
