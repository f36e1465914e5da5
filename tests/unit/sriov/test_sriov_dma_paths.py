"""The VF DMA path's batched translation (by page runs) against the frame-by-frame one.

`VfDma._dma` translates a batch's buffers one IOTLB lookup per run of descriptors whose
buffers share a page; with a trace on (or a frame that does not fit its buffer) it goes
frame by frame.  Both must be the same model: the same frames delivered and dropped, the
same IOTLB counts, contents and order, the same faults logged, the same ring heads."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sriov import Iommu
from sriov.errors import SriovError
from tests.unit.sriov.sriov_helpers import WIRE, eth, make_pf, vmac, with_guests

MB = 1024 * 1024
RAM = 16 * MB

step = st.one_of(
    st.tuples(st.just("rx"), st.integers(0, 2), st.integers(1, 40), st.sampled_from([60, 60, 60, 1500, 3000])),
    st.tuples(st.just("tx"), st.integers(0, 2), st.integers(1, 40), st.sampled_from([60, 60, 1500, 3000])),
    # a descriptor rewritten: inside the guest's RAM, beyond it, anywhere (another guest's)
    st.tuples(st.just("desc"), st.integers(0, 2), st.sampled_from(["rx", "tx"]), st.integers(0, 511),
              st.one_of(st.integers(0, RAM - 1), st.integers(RAM, 4 * RAM))),
    # a page of the guest's RAM unmapped, or mapped again read-only (RX writes fault, TX reads pass)
    st.tuples(st.just("unmap"), st.integers(0, 2), st.integers(0, 3), st.booleans()),
    # frames left in the VF's ring for a later "rx", and its pool's max frame changed meanwhile
    # (a frame received under a long max frame is still long when the max frame shrinks)
    st.tuples(st.just("arrive"), st.integers(0, 2), st.integers(1, 20), st.sampled_from([60, 1500, 3000])),
    st.tuples(st.just("max_frame"), st.integers(0, 2), st.sampled_from([None, 1600, 2048, 3100, 9018])),
)


def world(page_size: int, entries: int, traced: bool, burst: bool = True):
    pf = make_pf(numvfs=3, iommu=Iommu(page_size=page_size, iotlb_entries=entries))
    with_guests(pf, [0, 1, 2])
    pf.iommu.trace = [] if traced else None        # a trace makes every batch go frame by frame
    if not burst:                                  # the run loop alone: no burst at once
        for vf in pf.vfs:
            vf.dma.bursts = False
    return pf


def counting_bursts(pf):
    """The VFs' bursts translated at once (`VfDma._burst` not declining) from now on."""
    base = sum(vf.dma.bursts_taken for vf in pf.vfs)
    return lambda: sum(vf.dma.bursts_taken for vf in pf.vfs) - base


def play(pf, steps) -> list:
    seen = []
    t = 0
    for s in steps:
        t += 1_000_000
        vf = pf.vf(s[1])
        if s[0] == "rx":
            pf.nic.rx([eth(vmac(s[1]), WIRE, size=s[3]) for _ in range(s[2])], t)
            seen.append([len(f.data) for f in vf.receive(64, t)])
        elif s[0] == "tx":
            seen.append(vf.send([eth(WIRE, vmac(s[1]), size=s[3]) for _ in range(s[2])], t))
            pf.nic.tx_service(t + 500_000)
        elif s[0] == "arrive":
            pf.nic.rx([eth(vmac(s[1]), WIRE, size=s[3]) for _ in range(s[2])], t)
        elif s[0] == "max_frame":
            pf.nic.set_max_frame(vf.pool, s[2])
        elif s[0] == "desc":
            g = vf.guest
            try:
                g.ram.write_descriptor(g.driver.rings[(s[2], 0)], s[3], s[4])
            except SriovError:
                seen.append("ring unmapped")      # the guest's own RAM is gone under its ring
        else:
            dom = vf.guest.domain
            ps = pf.iommu.page_size
            # the first pages hold the rings and the first buffers
            iova = s[2] * ps
            hit = dom.lookup(iova)
            if hit is not None:
                dom.unmap(iova, ps)
                if s[3]:
                    dom.map(iova, hit[0] - hit[0] % ps, ps, write=False)
    io = pf.iommu
    return [seen, dict(io.counters), list(io.iotlb.items()), [f.text() for f in io.fault_log],
            [(dict(v.dma.counters), dict(v.dma.drops), [q.head for q in v.dma.rxq + v.dma.txq]) for v in pf.vfs]]


@settings(max_examples=40, deadline=None)
@given(st.lists(step, min_size=1, max_size=30), st.sampled_from([4096, 2 * MB]), st.sampled_from([2, 8, 64]))
def test_batched_translation_is_the_frame_by_frame_model(steps, page_size, entries) -> None:
    fast = play(world(page_size, entries, False), steps)
    runs = play(world(page_size, entries, False, burst=False), steps)
    slow = play(world(page_size, entries, True), steps)
    assert fast == slow
    assert runs == slow


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["rx", "tx"]), st.integers(0, 2), st.integers(8, 64)),
                min_size=1, max_size=40),
       st.sampled_from([2, 8, 16, 64]))
def test_streaming_bursts_translated_at_once_are_the_frame_by_frame_model(steps, entries) -> None:
    # 4 KiB pages and small frames, 8 or more a burst (over four runs or more): most bursts are
    # new pages only, so `_burst` takes them (with a few IOTLB entries, more pages than entries
    # too); the rest the run loop.
    steps = [(k, vf, n, 60) for k, vf, n in steps]
    pf = world(4096, entries, False)
    taken = counting_bursts(pf)
    assert play(pf, steps) == play(world(4096, entries, True), steps)
    assert taken() > 0


def test_a_ring_coming_round_streams_every_burst_at_once() -> None:
    # 512 descriptors, 2 KiB buffers: 200-frame bursts go round the ring (a burst across its
    # end included) with every page new to a 64-entry IOTLB each time
    pf = world(4096, 64, False)
    taken = counting_bursts(pf)
    steps = [("rx", 0, 40, 60)] * 30 + [("tx", 1, 40, 60)] * 30
    assert play(pf, steps) == play(world(4096, 64, True), steps)
    assert taken() == 60


def test_a_run_is_one_lookup_and_its_other_frames_hit() -> None:
    # 4 KiB pages, 2 KiB buffers in ring order: 32 frames from a fresh head are 16 runs of two,
    # so 16 lookups (misses: the IOTLB is cold for these pages) and 16 hits, plus the fetch.
    pf = make_pf(numvfs=1)
    with_guests(pf, [0])
    io = pf.iommu
    io.iotlb.clear()
    io.counters.update(dict.fromkeys(io.counters, 0))
    pf.nic.rx([eth(vmac(0), WIRE) for _ in range(32)], 0)
    assert len(pf.vf(0).receive(64, 0)) == 32
    c = io.counters
    assert (c["translations"], c["iotlb_misses"], c["iotlb_hits"], c["page_walks"]) == (33, 17, 16, 17)


def test_bursts_ending_at_the_ring_end_or_coming_back_to_their_first_run() -> None:
    # RX: eight bursts of 64 end exactly at descriptor 512 (the head back to 0).  TX: from
    # descriptor 1, a burst of the whole ring ends in the run it started in, so its page is
    # looked up twice (with 300 entries the second time a hit; VF 0's and VF 2's pages have
    # pushed it out of the IOTLB before, so the burst's pages are all new); then 511 from 1.
    steps = [("rx", 0, 64, 60)] * 9 + [("tx", 1, 1, 60), ("tx", 0, 512, 60)] + [("rx", 2, 64, 60)] * 4 + [
        ("tx", 1, 512, 60), ("tx", 1, 511, 60), ("tx", 1, 2, 60), ("tx", 1, 512, 60)]
    for entries in (64, 300):
        assert play(world(4096, entries, False), steps) == play(world(4096, entries, True), steps)


def test_a_streaming_burst_to_a_port_vlan_vf_hands_the_guest_untagged_frames() -> None:
    # a port VLAN: the NIC strips the tag, and the DMA path (the burst's own bookkeeping
    # included) takes the stripped tag off the frames, as the frame-by-frame path does
    def run(traced: bool):
        pf = world(4096, 64, traced)
        pf.set_vf_vlan(0, 100, qos=3)
        taken = counting_bursts(pf)
        got = []
        for t in range(1, 9):
            pf.nic.rx([eth(vmac(0), WIRE, vlan=100, pcp=3) for _ in range(40)], t * 1_000_000)
            got += [(f.vlan, f.pcp, len(f.data)) for f in pf.vf(0).receive(64, t * 1_000_000)]
        return got, taken(), dict(pf.iommu.counters), dict(pf.vf(0).dma.counters)
    fast, slow = run(False), run(True)
    assert fast[1] > 0 and slow[1] == 0                 # bursts taken, and none with a trace
    assert fast[0] == slow[0] == [(None, 0, 60)] * 320
    assert fast[2:] == slow[2:]


def test_a_long_frame_left_in_the_ring_after_its_max_frame_shrank_takes_all_its_buffers() -> None:
    # The DMA skips reading the lengths of a batch when its queue's `len_bound` fits every buffer;
    # the bound is what the queue ever admitted, not today's max frame.
    pf = world(4096, 64, False)
    vf = pf.vf(0)
    pf.nic.set_max_frame(vf.pool, 9018)
    pf.nic.rx([eth(vmac(0), WIRE, size=3000)], 1_000_000)
    pf.nic.set_max_frame(vf.pool, None)              # 1518 again before the guest drains the ring
    assert [len(f.data) for f in vf.receive(64, 2_000_000)] == [3000]
    assert sum(q.head for q in vf.dma.rxq) == 2      # two 2 KiB buffers
    pf.nic.rx([eth(vmac(0), WIRE, size=60) for _ in range(4)], 3_000_000)
    assert len(vf.receive(64, 4_000_000)) == 4
    assert sum(q.head for q in vf.dma.rxq) == 6
