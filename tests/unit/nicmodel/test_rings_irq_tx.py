"""Rings (overflow law, sizes), interrupt moderation + NAPI, TX arbitration and shaping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nic_frames import eth, mac

from nicmodel.nic import Nic
from nicmodel.tables import NicError


def burst_drops(B: int, R: int, gap_ns: int, service_ns: int) -> tuple[int, int]:
    """B frames at t = i*gap into a ring of R, drained one frame every service_ns.

    Returns (frames dropped, frames drained during the burst).  At equal times
    the consumer runs first.
    """
    nic = Nic()
    nic.program_pool(1, mac=mac(1))
    q = nic.state.pool_queues(1)[0]
    nic.set_rings(rx=R, queue=q)
    drained = 0
    next_service = service_ns
    frame = eth(mac(1))
    for i in range(B):
        t = i * gap_ns
        while next_service <= t:
            drained += len(nic.poll(q, 1, next_service))
            next_service += service_ns
        nic.rx([frame.copy()], t)
    return nic.snapshot()["queues"][f"q{q}_rx_dropped"], drained


@pytest.mark.parametrize("B,R,gap_ns,service_ns", [
    (1000, 512, 67, 200),     # 64 B line rate at 10G into a 5 Mpps consumer
    (600, 512, 67, 1000),
    (4096, 64, 100, 150),
    (300, 512, 67, 100),      # fits: no loss
])
def test_ring_overflow_law(B: int, R: int, gap_ns: int, service_ns: int) -> None:
    """experiments.md C.7: loss = max(0, B - R - mu*t), mu*t = drains during the burst."""
    t_burst = (B - 1) * gap_ns
    mu_t = t_burst // service_ns
    dropped, drained = burst_drops(B, R, gap_ns, service_ns)
    assert drained == mu_t
    assert dropped == max(0, B - R - mu_t)


@settings(max_examples=30, deadline=None)
@given(B=st.integers(1, 1500), R=st.sampled_from([64, 128, 512, 1024]),
       gap_ns=st.integers(10, 500), ratio=st.integers(1, 20))
def test_ring_overflow_law_hypothesis(B: int, R: int, gap_ns: int, ratio: int) -> None:
    service_ns = gap_ns * ratio  # the consumer is never faster than the arrivals
    dropped, drained = burst_drops(B, R, gap_ns, service_ns)
    assert dropped == max(0, B - R - ((B - 1) * gap_ns) // service_ns)


@pytest.mark.parametrize("size,ok", [(63, False), (64, True), (512, True), (4096, True), (4097, False)])
def test_ring_size_range(size: int, ok: bool) -> None:
    nic = Nic()
    if ok:
        nic.set_rings(rx=size, tx=size)
        assert nic.config()["rings"]["5"]["rx"]["size"] == size
        assert nic.config()["rings"]["5"]["tx"]["size"] == size
    else:
        with pytest.raises(NicError, match="64..4096"):
            nic.set_rings(rx=size)


def test_default_ring_is_512() -> None:
    assert {r["rx"]["size"] for r in Nic().config()["rings"].values()} == {512}


def test_every_queue_has_counters() -> None:
    """All 128 queues expose q<N>_rx_/tx_ counters (not 16 as snabbco/snabb#924)."""
    q = Nic().snapshot()["queues"]
    for n in range(128):
        for k in ("rx_packets", "rx_bytes", "rx_dropped", "tx_packets", "tx_bytes"):
            assert f"q{n}_{k}" in q


# -- interrupt moderation ------------------------------------------------------

def _nic_q() -> tuple[Nic, int]:
    nic = Nic()
    nic.program_pool(1, mac=mac(1))
    return nic, nic.state.pool_queues(1)[0]


def test_no_moderation_interrupts_at_once_then_napi_masks() -> None:
    nic, q = _nic_q()
    assert nic.rx([eth(mac(1))], 0) == [q]
    assert nic.rx([eth(mac(1))], 10) == []          # masked until the poll completes
    assert len(nic.poll(q, 64, 20)) == 2            # < budget: re-armed
    assert nic.rx([eth(mac(1))], 30) == [q]
    irq = nic.snapshot()["interrupts"]
    assert irq["interrupts"] == 2 and irq["polls"] == 1


def test_rx_usecs_delays_the_interrupt() -> None:
    nic, q = _nic_q()
    nic.set_coalesce(rx_usecs=50)
    assert nic.rx([eth(mac(1))], 1_000) == []
    assert nic.next_timer_ns() == 51_000
    assert nic.expire(50_999) == []
    assert nic.rx([eth(mac(1))], 20_000) == []
    assert nic.expire(51_000) == [q]
    assert nic.snapshot()["interrupts"]["interrupts"] == 1


def test_rx_frames_threshold() -> None:
    nic, q = _nic_q()
    nic.set_coalesce(rx_usecs=0, rx_frames=8)
    raised = [nic.rx([eth(mac(1))], i) for i in range(8)]
    assert raised == [[]] * 7 + [[q]]


@pytest.mark.parametrize("usecs,expected", [(0, 100), (50, 20), (200, 5)])
def test_interrupt_rate_falls_with_rx_usecs(usecs: int, expected: int) -> None:
    """experiments.md C.6: one frame every 10 us for 1 ms; the driver polls at each interrupt."""
    nic, q = _nic_q()
    nic.set_coalesce(rx_usecs=usecs)
    for i in range(100):
        t = i * 10_000
        for qq in nic.expire(t):
            nic.poll(qq, 64, t)
        for qq in nic.rx([eth(mac(1))], t):
            nic.poll(qq, 64, t)
    for qq in nic.expire(10**9):
        nic.poll(qq, 64, 10**9)
    assert nic.snapshot()["interrupts"]["interrupts"] == expected


def test_napi_budget_caps_poll() -> None:
    nic, q = _nic_q()
    nic.rx([eth(mac(1)) for _ in range(150)], 0)
    assert [len(nic.poll(q, 64, 1)) for _ in range(3)] == [64, 64, 22]
    irq = nic.snapshot()["interrupts"]
    assert irq["interrupts"] == 1 and irq["polls"] == 3 and irq["budget_exhausted"] == 2


# -- TX ------------------------------------------------------------------------

def _tx_nic(mode: str) -> Nic:
    nic = Nic(tx_arbitration=mode)
    for p in (1, 2):
        nic.program_pool(p, mac=mac(p))
    return nic


def test_tx_round_robin_alternates() -> None:
    nic = _tx_nic("rr")
    nic.tx(1, [eth(mac(9), src=mac(1)) for _ in range(4)], 0)
    nic.tx(2, [eth(mac(9), src=mac(2)) for _ in range(2)], 0)
    order = [f.data[11] for f in nic.tx_service(10**9)]
    assert order == [1, 2, 1, 2, 1, 1]


@pytest.mark.parametrize("w1,w2", [(3, 1), (1, 1), (2, 5)])
def test_tx_weighted_credit_split(w1: int, w2: int) -> None:
    """experiments.md C.8: weights 3:1 give a 3:1 byte split (within 5%) while both are backlogged."""
    nic = _tx_nic("wrr")
    nic.set_tx_weight(1, w1 * 20)
    nic.set_tx_weight(2, w2 * 20)
    nic.set_rings(tx=4096)
    nic.tx(1, [eth(mac(9), src=mac(1), size=600) for _ in range(4000)], 0)
    nic.tx(2, [eth(mac(9), src=mac(2), size=600) for _ in range(4000)], 0)
    sent = nic.tx_service(10**15, limit=2000)
    b1 = sum(len(f) for f in sent if f.data[11] == 1)
    b2 = sum(len(f) for f in sent if f.data[11] == 2)
    assert abs(b1 / b2 - w1 / w2) <= 0.05 * (w1 / w2)


def test_tx_full_ring_backpressures_not_drops() -> None:
    nic = _tx_nic("rr")
    nic.set_rings(tx=64)
    assert nic.tx(1, [eth(mac(9), src=mac(1)) for _ in range(100)], 0) == 64
    assert len(nic.tx_service(10**9)) == 64


def test_tx_vfte_off_stalls_then_resumes() -> None:
    nic = _tx_nic("rr")
    nic.set_pool_enabled(1, tx=False)
    nic.tx(1, [eth(mac(9), src=mac(1))], 0)
    assert nic.tx_service(10**9) == []
    nic.set_pool_enabled(1, tx=True)
    assert len(nic.tx_service(2 * 10**9)) == 1


def test_wire_speed_paces_transmission() -> None:
    """10G, 64-byte frames: one frame per (60+24)*8/10 = 67.2 ns -> 68 ns rounded up."""
    nic = _tx_nic("rr")
    nic.tx(1, [eth(mac(9), src=mac(1)) for _ in range(100)], 0)
    assert len(nic.tx_service(68 * 10 - 1)) == 10
