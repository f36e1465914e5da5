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
)


def world(page_size: int, entries: int, traced: bool):
    pf = make_pf(numvfs=3, iommu=Iommu(page_size=page_size, iotlb_entries=entries))
    with_guests(pf, [0, 1, 2])
    pf.iommu.trace = [] if traced else None        # a trace makes every batch go frame by frame
    return pf


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
    slow = play(world(page_size, entries, True), steps)
    assert fast == slow


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
