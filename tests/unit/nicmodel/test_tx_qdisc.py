"""A queue policy in front of a pool's TX queue (issue 13 item 2, the NIC's part): `Nic.set_tx_qdisc`
puts any `build_scheduler` policy between a guest's ``tx`` and its pool's TX ring.  It decides
the order of what the ring cannot hold (strict priority), shapes what reaches the ring (tbf,
checked on the frames' wire start times in one long ``tx_service``), drops by its own rules with
its own counters, and leaves the ring's and the arbiter's behaviour as they were."""

from __future__ import annotations

import pytest
from nic_frames import eth, mac

from nicmodel.nic import Nic
from vswitch.core.frame import Frame
from vswitch.core.policies import build_scheduler

POOL = 3


def nic_with_pool(tx_ring: int = 64) -> Nic:
    nic = Nic()
    nic.set_rings(tx=tx_ring)
    nic.program_pool(POOL, mac=mac(POOL))
    return nic


def ip_frame(tos: int, size: int = 200) -> Frame:
    f = eth(mac(999), src=mac(POOL), size=size)
    d = bytearray(f.data)
    d[14] = 0x45
    d[15] = tos
    f.data = bytes(d)
    return f


def run(nic: Nic, until_ns: int, step_ns: int) -> list[Frame]:
    out: list[Frame] = []
    t = 0
    while t < until_ns:
        t += step_ns
        out += nic.tx_service(t)
    return out


def test_strict_priority_orders_what_the_ring_cannot_hold():
    nic = nic_with_pool()
    nic.set_tx_qdisc(POOL, build_scheduler("prio", bands=2, classify="dscp", map={46: 0}, default_class=1))
    low = [ip_frame(0) for _ in range(200)]
    high = [ip_frame(46 << 2) for _ in range(100)]
    assert nic.tx(POOL, low, 0) == 200
    assert nic.tx(POOL, high, 0) == 100
    out = run(nic, 10_000_000, 10_000)
    assert len(out) == 300
    kinds = ["high" if f.data[15] == 46 << 2 else "low" for f in out]
    # The first 64 low frames were on the ring before the high ones came; then every high one
    # leaves before the low ones the policy still held.
    assert kinds == ["low"] * 64 + ["high"] * 100 + ["low"] * 136
    s = nic.tx_qdisc_show()[str(POOL)]
    assert s["sent_packets"] == 300 and s["scheduler"]["kind"] == "prio"


def test_without_a_policy_the_ring_is_one_fifo():
    nic = nic_with_pool(tx_ring=512)
    nic.tx(POOL, [ip_frame(0) for _ in range(200)], 0)
    nic.tx(POOL, [ip_frame(46 << 2) for _ in range(100)], 0)
    out = run(nic, 10_000_000, 10_000)
    assert [f.data[15] for f in out] == [0] * 200 + [46 << 2] * 100


@pytest.mark.parametrize("rate, burst, size", [(100_000_000, 3000, 1000), (40_000_000, 10_000, 500)])
def test_tbf_on_a_pool_shapes_its_wire_start_times(rate, burst, size):
    nic = nic_with_pool()
    nic.set_tx_qdisc(POOL, build_scheduler("tbf", rate=rate, burst=burst, limit=10**6))
    nic.tx(POOL, [ip_frame(0, size) for _ in range(1000)], 0)
    window = 10_000_000
    out = nic.tx_service(window)                      # one call: the policy feeds the ring on time
    envelope = burst + rate * window // 8_000_000_000
    sent = len(out) * size
    assert envelope - 2 * size <= sent <= envelope, (sent, envelope)
    starts = [f.ts_ns for f in out]
    # After the burst, one frame per size*8/rate.
    gap = size * 8 * 10**9 // rate
    tail = starts[burst // size + 1:]
    assert all(abs((b - a) - gap) <= 1 for a, b in zip(tail, tail[1:], strict=False)), tail[:5]
    # The NIC says when it next has a frame to start: the shaper's next eligible time.
    nxt = nic.next_tx_ns()
    assert nxt is not None and window < nxt <= window + gap


def test_the_policy_drops_by_its_own_rules_and_removal_hands_its_frames_on():
    nic = nic_with_pool()
    nic.set_tx_qdisc(POOL, build_scheduler("pfifo", limit=100))
    # The policy takes 100 (its limit) and drops 200; 64 of its 100 move to the ring at once.
    nic.tx(POOL, [ip_frame(0) for _ in range(300)], 0)
    s = nic.tx_qdisc_show()[str(POOL)]
    assert s["drops"]["queue_full"] == 200 and s["backlog_packets"] == 36
    assert nic.snapshot()["drops"]["queue_full"] == 200
    sent = len(nic.tx_service(5_000))                      # a few leave, the ring refills
    held = nic.tx_qdisc[POOL].backlog_packets
    assert 0 < held < 36
    nic.tx_service(5_000)
    nic.set_tx_qdisc(POOL, None)                           # the ring has room for some of them
    assert nic.tx_qdisc == {}
    sent += len(run(nic, 10_000_000, 10_000))
    removed = nic.snapshot()["drops"].get("qdisc_removed", 0)
    assert sent + removed == 100


def test_bad_pool_is_refused():
    nic = nic_with_pool()
    with pytest.raises(Exception, match="pool"):
        nic.set_tx_qdisc(999, build_scheduler("pfifo"))
