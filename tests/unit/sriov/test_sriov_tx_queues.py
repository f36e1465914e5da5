"""A VF's TX queues: the guest's stack puts each flow on one of the TX queues its driver
enabled (ixgbevf: min(CPUs, 2)), directly (`VirtualFunction.send`) and through the graph; and
``max_tx_rate`` is per queue, as ixgbe writes the same RTTBCNRC factor to each of the VF's
queues (nic-model.md E.9): two flows on two queues may send twice the rate."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sriov_helpers import GIG, WIRE, Rig, make_pf, vmac

from nicmodel.sorter import rss_index
from tests.unit.nicmodel.nic_frames import udp


def accepted(pf, k: int) -> list[int]:
    """Frames ever put on each of VF k's TX queues (by the VF's queue index)."""
    return [pf.nic.txa.queues[q].accepted for q in pf.vf(k).nic_queues]


@pytest.mark.parametrize("cpus,used", [(1, 1), (2, 2), (4, 2)])
def test_a_guests_flows_go_on_the_tx_queues_its_driver_enabled(cpus: int, used: int) -> None:
    pf = make_pf(numvfs=8)                                   # 32 x 4: four queues per VF
    vf = pf.vf(1)
    vf.attach_guest("vm1", ram_bytes=16 * 1024 * 1024, mac=vmac(1), cpus=cpus)
    frames = [udp(WIRE, i, vmac(1)) for i in range(200)]
    want = Counter(rss_index(f.data, used) for f in frames)
    assert vf.send(frames, 0) == 200
    got = accepted(pf, 1)
    assert got == [want[i] for i in range(vf.num_queues)]
    assert sum(1 for n in got if n) == used
    assert len(pf.nic.tx_service(GIG)) == 200                # every one of them reaches the wire


def test_one_flow_stays_on_one_tx_queue() -> None:
    pf = make_pf(numvfs=8)
    vf = pf.vf(2)
    vf.attach_guest("vm2", ram_bytes=16 * 1024 * 1024, mac=vmac(2), cpus=2)
    vf.send([udp(WIRE, 7, vmac(2)) for _ in range(50)], 0)
    assert sorted(accepted(pf, 2)) == [0, 0, 0, 50]


def test_through_the_graph_each_flow_goes_on_its_queue_in_order() -> None:
    pf = make_pf(numvfs=8)
    pf.vf(0).attach_guest("vm0", ram_bytes=16 * 1024 * 1024, mac=vmac(0), cpus=2)
    rig = Rig(pf, [0])
    frames = [udp(WIRE, i % 20, vmac(0)) for i in range(120)]
    rig.from_vf(0, frames, 0)
    rig.run(GIG)
    want = Counter(rss_index(f.data, 2) for f in frames)
    assert accepted(pf, 0) == [want[0], want[1], 0, 0] and want[0] and want[1]
    out = rig.take("up")
    assert len(out) == 120
    # a flow's frames leave in the order the guest sent them (one queue, one FIFO)
    for i in range(20):
        mine = [f for f in out if f.data == frames[i].data]
        assert mine == [f for f in frames if f.data == frames[i].data]


def test_a_vf_reset_leaves_queue_0_until_the_driver_enables_its_queues_again() -> None:
    pf = make_pf(numvfs=8)
    vf = pf.vf(3)
    g = vf.attach_guest("vm3", ram_bytes=16 * 1024 * 1024, mac=vmac(3), cpus=2)
    assert vf.dma.txsel == tuple(vf.nic_queues[:2])
    vf.hardware_reset()
    assert vf.dma.txsel == ()
    g.driver.probe()
    g.driver.open(mac=vmac(3))
    assert vf.dma.txsel == tuple(vf.nic_queues[:2])


def shaped(pf, k: int, flows: list[int], rate_mbps: int) -> tuple[float, list[int]]:
    """VF k's guest keeps its TX rings full with ``flows`` for 100 ms of model time; the VF's
    rate on the wire (b/s, FCS and the preamble/IFG counted) and the frames sent per queue."""
    vf = pf.vf(k)
    pf.set_vf_rate(k, rate_mbps)
    t, sent, i = 0, [], 0
    while t < 100_000_000:
        sent.extend(pf.nic.tx_service(t))
        room = min(vf.tx_room(q) for q in vf.dma.txsel)
        batch = []
        for _ in range(room):
            batch.append(udp(WIRE, flows[i % len(flows)], vmac(k)))
            i += 1
        vf.send(batch, t)
        t += 1_000_000
    first, last = sent[0].ts_ns, sent[-1].ts_ns
    bits = sum((len(f.data) + 24) * 8 for f in sent[:-1])
    per = Counter(f.queue for f in sent)
    return bits / ((last - first) / 1e9), [per[q] for q in vf.nic_queues]


def two_flows_on_two_queues() -> list[int]:
    a = next(i for i in range(256) if rss_index(udp(WIRE, i, vmac(0)).data, 2) == 0)
    b = next(i for i in range(256) if rss_index(udp(WIRE, i, vmac(0)).data, 2) == 1)
    return [a, b]


def test_max_tx_rate_limits_each_queue_so_two_queues_send_twice_the_rate() -> None:
    pf = make_pf(numvfs=40)                                  # 64 x 2
    pf.vf(0).attach_guest("vm0", ram_bytes=16 * 1024 * 1024, mac=vmac(0), cpus=2)
    rate, per = shaped(pf, 0, two_flows_on_two_queues(), 100)
    assert abs(rate - 200e6) / 200e6 < 0.01, rate
    assert abs(per[0] - per[1]) <= 0.01 * per[0], per


def test_one_flow_of_a_two_queue_vf_gets_the_rate_once() -> None:
    pf = make_pf(numvfs=40)
    pf.vf(0).attach_guest("vm0", ram_bytes=16 * 1024 * 1024, mac=vmac(0), cpus=2)
    rate, per = shaped(pf, 0, two_flows_on_two_queues()[:1], 100)
    assert abs(rate - 100e6) / 100e6 < 0.01, rate
    assert per[1] == 0


@settings(max_examples=40, deadline=None)
@given(cpus=st.integers(1, 4), flows=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=60))
def test_no_frame_goes_on_a_tx_queue_the_driver_did_not_enable(cpus: int, flows: list[int]) -> None:
    pf = make_pf(numvfs=8)
    vf = pf.vf(5)
    g = vf.attach_guest("vm5", ram_bytes=16 * 1024 * 1024, mac=vmac(5), cpus=cpus)
    assert vf.send([udp(WIRE, i, vmac(5)) for i in flows], 0) == len(flows)
    got = accepted(pf, 5)
    assert sum(got) == len(flows) and not any(got[g.driver.num_tx_queues:])


def test_the_nics_pool_input_takes_the_queue_the_first_frame_names_else_queue_0() -> None:
    pf = make_pf(numvfs=8)
    nic, vf = pf.nic, pf.vf(4)
    vf.attach_guest("vm4", ram_bytes=16 * 1024 * 1024, mac=vmac(4), cpus=2)
    q0, q1 = vf.nic_queues[:2]
    one = udp(WIRE, 1, vmac(4))
    one.queue = q1
    nic.push(f"pool{vf.pool}", [one], 0)                     # stamped: its queue
    stale = udp(WIRE, 2, vmac(4))
    stale.queue = pf.vf(5).nic_queues[1]                     # another pool's queue: queue 0
    nic.push(f"pool{vf.pool}", [stale], 0)
    nic.push(f"pool{vf.pool}", [], 0)                        # nothing: no queue, no change
    assert accepted(pf, 4) == [1, 1, 0, 0]
    assert (nic.txa.queues[q0].ring[0][0], nic.txa.queues[q1].ring[0][0]) == (stale, one)
