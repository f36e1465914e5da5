"""The IOMMU on the VF DMA path: translations, faults, the domain-tagged IOTLB, isolation."""

from __future__ import annotations

import errno

from hypothesis import given, settings
from hypothesis import strategies as st
from sriov_helpers import WIRE, eth, make_pf, refused, vmac, with_guests

from sriov.iommu import DmaFault, Iommu

MB = 1024 * 1024


def test_translate_map_unmap_and_the_fault_reasons() -> None:
    io = Iommu()
    d = io.domain("vm1")
    d.map(0, 0x4000_0000, 4 * MB)
    io.attach(0x0380, d, who="vf 0")
    assert io.translate(0x0380, 0x1234, 100, True) == 0x4000_1234
    assert io.counters["iotlb_misses"] == 1 and io.counters["page_walks"] == 1 and io.counters["walk_reads"] == 4
    assert io.translate(0x0380, 0x1F00, 100, False) == 0x4000_1F00
    assert io.counters["iotlb_hits"] == 1
    assert io.translate(0x0380, 0x1F80, 0x100, True) == 0x4000_1F80    # crosses into the next page
    assert io.counters["translations"] == 4
    for rid, iova, write, reason in ((0x0382, 0x1000, True, 0x02),    # no context entry
                                     (0x0380, 4 * MB, True, 0x05),    # beyond its mappings
                                     (0x0380, 4 * MB, False, 0x06),
                                     (0x0380, 1 << 48, True, 0x04)):  # beyond the address width
        try:
            io.translate(rid, iova, 64, write)
        except DmaFault as e:
            assert e.record.reason == reason and e.record.iova == iova
        else:
            raise AssertionError("no fault")
    assert io.counters["faults"] == 4
    assert io.fault_log[1].text() == ("DMAR: [DMA Write] Request device [03:10.0] fault addr 0x400000 "
                                      "[fault reason 0x05] PTE Write access is not set (vf 0, domain vm1)")
    ro = io.domain("ro")
    ro.map(0, 0x8000_0000, 4096, write=False)
    io.attach(0x0384, ro)
    assert io.translate(0x0384, 0x10, 4, False) == 0x8000_0010
    refused(lambda: d.map(0, 0x5000_0000, 4096), errno.EINVAL, "already mapped")
    refused(lambda: d.map(1, 0, 4096), errno.EINVAL, "multiples of the page size")
    assert d.unmap(0x1000, 4096) == 4096 and io.counters["invalidations"] == 1   # its IOTLB entry too
    try:
        io.translate(0x0380, 0x1234, 4, True)
    except DmaFault:
        pass
    else:
        raise AssertionError("the unmapped page still translated")


def test_page_and_iotlb_sizes_are_settable_and_checked() -> None:
    io = Iommu(page_size=2 * MB, iotlb_entries=8)
    assert io.walk_levels == 3 and io.show()["iotlb_entries"] == 8
    refused(lambda: Iommu(page_size=8192), errno.EINVAL, "4 KiB, 2 MiB or 1 GiB")
    refused(lambda: Iommu(iotlb_entries=0), errno.EINVAL)
    d = io.domain("g")
    d.map(0, 0, 64 * MB)
    io.attach(1, d)
    for i in range(16):                                   # 16 pages through an 8-entry IOTLB
        io.translate(1, i * 2 * MB, 64, True)
    assert len(io.iotlb) == 8
    io.translate(1, 0, 64, True)                          # the first was evicted (LRU)
    assert io.counters["iotlb_hits"] == 0


def test_a_vf_dma_outside_its_guest_faults_and_only_that_frame_is_lost() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0, 1])
    vf = pf.vf(0)
    ram = vf.guest.ram
    ring = vf.guest.driver.rings[("rx", 0)]
    ram.write_descriptor(ring, 1, ram.size + 0x1000)      # a corrupt descriptor: beyond its RAM
    pf.nic.rx([eth(vmac(0), WIRE) for _ in range(3)], 0)
    got = vf.receive()
    assert len(got) == 2 and vf.dma.drops["dma_fault"] == 1
    assert vf.stats()["rx_dropped"] == 1 and vf.stats()["rx_packets"] == 3
    rec = pf.iommu.fault_log[-1]
    assert (rec.who, rec.iova, rec.write, rec.reason, rec.domain) == ("vf 0", ram.size + 0x1000, True, 5, "vm0")
    assert pf.show()["iommu"]["faults"][-1]["text"].startswith("DMAR: [DMA Write] Request device [03:10.0]")
    ram.write_descriptor(vf.guest.driver.rings[("tx", 0)], 0, 1 << 40)   # its first TX buffer too
    assert vf.send([eth(WIRE, vmac(0)), eth(WIRE, vmac(0))], 0) == 1
    assert vf.stats()["tx_dropped"] == 1 and pf.iommu.fault_log[-1].write is False
    pf.nic.rx([eth(vmac(1), WIRE)], 0)
    assert len(pf.vf(1).receive()) == 1                   # the other guest is untouched


def test_a_vf_without_a_domain_or_without_bus_mastering_dmas_nothing() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0])
    vf = pf.vf(0)
    vf.fn.pci.write(0x04, 0, 2)                           # Bus Master Enable off
    pf.nic.rx([eth(vmac(0), WIRE)], 0)
    assert vf.receive() == [] and vf.dma.drops["no_bus_master"] == 1
    vf.fn.pci.write(0x04, 0x4, 2)
    vf.attach_domain(None)
    pf.nic.rx([eth(vmac(0), WIRE)], 0)
    assert vf.receive() == [] and pf.iommu.fault_log[-1].reason == 0x02


def stream(pf, vfs: list[int], rounds: int, batch: int = 32) -> None:
    for r in range(rounds):
        for k in vfs:
            pf.nic.rx([eth(vmac(k), WIRE) for _ in range(batch)], r)
            pf.vf(k).receive(batch, r)


def hit_rate(io: Iommu) -> float:
    return io.counters["iotlb_hits"] / io.counters["translations"]


def test_iotlb_hit_rates_follow_page_size_and_tags() -> None:
    # 4 KiB pages, 2 KiB buffers: each page serves two frames, so about half the buffer
    # translations hit (plus the per-batch descriptor fetch, which hits once warm).
    small = make_pf(numvfs=2)
    with_guests(small, [0])
    small.iommu.counters.update(dict.fromkeys(small.iommu.counters, 0))
    stream(small, [0], 64)
    assert 0.50 <= hit_rate(small.iommu) <= 0.53
    # 2 MiB pages: a VF's rings and buffers sit in a few pages; almost everything hits.
    big = make_pf(numvfs=2, iommu=Iommu(page_size=2 * MB))
    with_guests(big, [0])
    big.iommu.counters.update(dict.fromkeys(big.iommu.counters, 0))
    stream(big, [0], 64)
    assert hit_rate(big.iommu) > 0.99
    # Two guests taking turns: with tags nothing is flushed and both keep their entries;
    # without tags every switch flushes the IOTLB.
    for tagged in (True, False):
        pf = make_pf(numvfs=2, iommu=Iommu(page_size=2 * MB, tagged=tagged))
        with_guests(pf, [0, 1])
        pf.iommu.counters.update(dict.fromkeys(pf.iommu.counters, 0))
        stream(pf, [0, 1], 32)
        if tagged:
            assert pf.iommu.counters["flushes"] == 0 and hit_rate(pf.iommu) > 0.99
        else:
            assert pf.iommu.counters["flushes"] >= 63 and hit_rate(pf.iommu) < 0.97


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 511), st.integers(0, 3 * 16 * MB)), max_size=40),
       st.lists(st.integers(0, 2), min_size=1, max_size=60))
def test_no_vf_ever_touches_another_guests_memory(corrupt, senders) -> None:
    """Whatever addresses a guest's driver writes into its descriptors (its own RAM, beyond it,
    where another guest's RAM sits in host memory), every DMA of its VF lands in its own RAM."""
    pf = make_pf(numvfs=3)
    with_guests(pf, [0, 1, 2])
    for k, slot, addr in corrupt:
        vf = pf.vf(k)
        for kind in ("rx", "tx"):
            vf.guest.ram.write_descriptor(vf.guest.driver.rings[(kind, 0)], slot, addr)
    pf.iommu.trace = []
    for i, k in enumerate(senders):
        pf.nic.rx([eth(vmac(k), WIRE, size=60 + 700 * (i % 3))], i)
        pf.vf(k).receive(64, i)
        pf.vf(k).send([eth(WIRE, vmac(k))], i)
    owners = {pf.vf(k).rid: f"vm{k}" for k in range(3)}
    assert pf.iommu.trace
    for rid, domain, _iova, hpa, length, _write in pf.iommu.trace:
        assert domain == owners[rid]
        assert pf.memory.owner(hpa) == owners[rid] and pf.memory.owner(hpa + length - 1) == owners[rid]
