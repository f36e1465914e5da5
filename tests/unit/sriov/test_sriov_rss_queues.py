"""A VF's queues: ixgbevf uses min(guest CPUs, 2) of what GET_QUEUES offers and writes
VFPSRTYPE so the NIC's RSS spreads over exactly those (RQPL 1 with two, 0 with one); a VF
reset puts PSRTYPE back to 0."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sriov_helpers import WIRE, make_pf, vmac

from nicmodel.sorter import rss_index
from sriov.vf_driver import PSRTYPE_HDRS, PSRTYPE_RQPL_2
from sriov.vf_regs import DCTL_ENABLE, VFCTRL, VFCTRL_RST, VFPSRTYPE, VFRXDCTL
from tests.unit.nicmodel.nic_frames import udp


def per_queue(pf, k: int, n: int = 256) -> Counter[int]:
    """``n`` flows to VF k's guest from the wire; the frames on each of the VF's queues (by index)."""
    vf = pf.vf(k)
    pf.nic.rx([udp(vmac(k), i, WIRE) for i in range(n)], 0)
    hit: Counter[int] = Counter()
    for i, q in enumerate(vf.nic_queues):
        hit[i] = len(pf.nic.poll(q, 4096, 0))
    return hit


@pytest.mark.parametrize("numvfs,cpus,used", [(63, 1, 1), (63, 2, 2), (63, 8, 2),
                                              (8, 1, 1), (8, 2, 2), (8, 4, 2)])
def test_ixgbevf_opens_min_cpus_2_queues_and_rss_spreads_over_exactly_those(numvfs: int, cpus: int,
                                                                            used: int) -> None:
    pf = make_pf(numvfs=numvfs)
    vf = pf.vf(1)
    g = vf.attach_guest("vm1", ram_bytes=16 * 1024 * 1024, mac=vmac(1), cpus=cpus)
    d = g.driver
    assert d.max_rx_queues == vf.num_queues == (2 if numvfs > 31 else 4)    # what GET_QUEUES offered
    assert (d.num_rx_queues, d.num_tx_queues) == (used, used)
    bar = vf.bar0()
    assert bar.read32(VFPSRTYPE) == PSRTYPE_HDRS | (PSRTYPE_RQPL_2 if used > 1 else 0)
    enabled = [bool(bar.read32(VFRXDCTL + 0x40 * i) & DCTL_ENABLE) for i in range(vf.num_queues)]
    assert enabled == [i < used for i in range(vf.num_queues)]
    hit = per_queue(pf, 1)
    assert [i for i in range(vf.num_queues) if hit[i]] == list(range(used))
    assert any(f"{used} rx, {used} tx used ({cpus} cpus)" in line for line in d.transcript)


def test_every_frame_reaches_the_guest_on_the_queues_it_opened() -> None:
    pf = make_pf(numvfs=4)
    for k, cpus in ((0, 1), (1, 2)):
        pf.vf(k).attach_guest(f"vm{k}", ram_bytes=16 * 1024 * 1024, mac=vmac(k), cpus=cpus)
    for k in (0, 1):
        pf.nic.rx([udp(vmac(k), i, WIRE) for i in range(200)], 0)
        assert len(pf.vf(k).receive(budget=4096)) == 200


def test_a_vf_reset_puts_psrtype_back_and_the_driver_rewrites_it() -> None:
    pf = make_pf(numvfs=4)
    vf = pf.vf(2)
    g = vf.attach_guest("vm2", ram_bytes=16 * 1024 * 1024, mac=vmac(2), cpus=2)
    bar = vf.bar0()
    bar.write32(VFCTRL, VFCTRL_RST)
    assert bar.read32(VFPSRTYPE) == 0
    assert pf.nic.state.rss_queues(vf.pool) == 1
    g.driver.probe()                                         # the guest's driver comes back
    g.driver.open(mac=vmac(2))
    assert bar.read32(VFPSRTYPE) & PSRTYPE_RQPL_2
    hit = per_queue(pf, 2)                                   # 32 x 4: two of the four queues
    assert hit[0] and hit[1] and not hit[2] and not hit[3]


def test_vf_pools_start_at_psrtype_0_while_the_pf_pool_keeps_its_queues() -> None:
    pf = make_pf(numvfs=8)                                   # 32 x 4 (MRQC 0xA)
    st_ = pf.nic.state
    assert [st_.rss_queues(p) for p in range(8)] == [1] * 8
    assert st_.rss_queues(8) == 4                            # the PF's pool, as ixgbe_setup_psrtype


@settings(max_examples=30, deadline=None)
@given(cpus=st.integers(1, 6), k=st.integers(0, 7), flows=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=80))
def test_no_frame_lands_on_a_queue_the_guest_did_not_open(cpus: int, k: int, flows: list[int]) -> None:
    pf = make_pf(numvfs=8)
    vf = pf.vf(k)
    g = vf.attach_guest(f"vm{k}", ram_bytes=16 * 1024 * 1024, mac=vmac(k), cpus=cpus)
    pf.nic.rx([udp(vmac(k), i, WIRE) for i in flows], 0)
    got = [len(pf.nic.poll(q, 4096, 0)) for q in vf.nic_queues]
    assert sum(got) == len(flows)
    assert not any(got[g.driver.num_rx_queues:])


@pytest.mark.parametrize("numvfs,cpus", [(63, 1), (63, 2), (8, 2)])
def test_the_reta_a_vf_reads_names_the_queue_each_flow_lands_on(numvfs: int, cpus: int) -> None:
    """GET_RETA's entry for a flow's hash, masked to the queues the guest opened (RQPL), is the
    queue the NIC put that flow's frames on."""
    pf = make_pf(numvfs=numvfs)
    pf.set_vf_query_rss(1, True)
    vf = pf.vf(1)
    g = vf.attach_guest("vm1", ram_bytes=16 * 1024 * 1024, mac=vmac(1), cpus=cpus)
    reta = g.driver.get_reta()
    used = g.driver.num_rx_queues
    for i in range(300):
        f = udp(vmac(1), i, WIRE)
        want = reta[rss_index(f.data, 256) & 0x7F] & (used - 1)
        pf.nic.rx([f], 0)
        got = [j for j, q in enumerate(vf.nic_queues) if pf.nic.poll(q, 4, 0)]
        assert got == [want], (i, got, want)
