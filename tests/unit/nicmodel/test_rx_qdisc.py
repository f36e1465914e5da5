"""A queue policy between an RX ring and the host's NAPI poll (issue 13 item 2): `Nic.set_rx_qdisc`.

DMA fills the ring as before; each poll takes the ring into the policy and returns what the
policy lets go, so the policy decides the order (strict priority), bounds the buffer with its
own limit and drop reasons, shapes (tbf: the queue comes back when the next frame may leave),
and gives back what it held when removed (dropped, ``qdisc_removed``)."""

from __future__ import annotations

import pytest
from nic_frames import eth, mac

from nicmodel.nic import Nic
from nicmodel.tables import NicError
from vswitch.core.frame import Frame
from vswitch.core.graph import Graph
from vswitch.core.policies import build_scheduler

POOL = 3


def nic_with_pool() -> tuple[Nic, int]:
    nic = Nic()
    nic.program_pool(POOL, mac=mac(POOL))
    return nic, nic.state.pool_queues(POOL)[0]


def ip_frame(tos: int, size: int = 200) -> Frame:
    f = eth(mac(POOL), src=mac(900), size=size)
    d = bytearray(f.data)
    d[14] = 0x45
    d[15] = tos
    f.data = bytes(d)
    return f


def is_high(f: Frame) -> bool:
    return f.data[15] == 46 << 2


def test_strict_priority_orders_what_the_poll_takes():
    nic, q = nic_with_pool()
    nic.set_rx_qdisc(q, build_scheduler("prio", bands=2, classify="dscp", map={46: 0}, default_class=1))
    nic.rx([ip_frame(0) for _ in range(100)] + [ip_frame(46 << 2) for _ in range(10)], 0)
    first = nic.poll(q, 64, 1)
    assert [is_high(f) for f in first] == [True] * 10 + [False] * 54
    assert len(nic.poll(q, 64, 2)) == 46
    s = nic.rx_qdisc_show()[str(q)]
    assert s["sent_packets"] == 110 and s["scheduler"]["kind"] == "prio"
    assert nic.snapshot()["rx_qdisc"][str(q)]["sent_packets"] == 110


def test_without_a_policy_the_ring_is_fifo():
    nic, q = nic_with_pool()
    nic.rx([ip_frame(0) for _ in range(100)] + [ip_frame(46 << 2) for _ in range(10)], 0)
    assert not any(is_high(f) for f in nic.poll(q, 64, 1))


def test_policy_limit_bounds_the_buffer_and_counts_its_drops():
    nic, q = nic_with_pool()
    nic.set_rx_qdisc(q, build_scheduler("pfifo", limit=50))
    nic.rx([ip_frame(0) for _ in range(110)], 0)             # the ring (512) takes them all
    got = nic.poll(q, 64, 1)
    assert len(got) == 50
    s = nic.rx_qdisc_show()[str(q)]
    assert s["drops"]["queue_full"] == 60 and s["backlog_packets"] == 0
    assert nic.rings.queues[q].rx_dropped == 0               # not the ring's drops
    assert nic.snapshot()["drops"]["queue_full"] == 60          # outside a graph: "drops"


def test_backlog_and_interrupts_count_what_the_policy_holds():
    nic, q = nic_with_pool()
    nic.set_rx_qdisc(q, build_scheduler("pfifo", limit=1000))
    nic.rx([ip_frame(0) for _ in range(200)], 0)
    assert nic.rxq[q].backlog_packets == 200
    assert len(nic.poll(q, 64, 1)) == 64
    assert len(nic.rings.queues[q].ring) == 0                # the ring went into the policy
    assert nic.rxq[q].backlog_packets == 136
    assert [len(nic.poll(q, 64, 2)) for _ in range(3)] == [64, 64, 8]


def test_tbf_on_an_rx_queue_shapes_in_a_graph():
    """In a graph, a shaped RX queue is polled again when its next frame may leave (no new
    interrupt needed): 1000 B frames at 8 Mbit/s leave 1 ms apart after the burst."""
    g = Graph()
    nic, q = nic_with_pool()
    g.add(nic)
    out: list[tuple[int, Frame]] = []
    g.attach_sink(nic, f"pool{POOL}", lambda batch, t: out.extend((t, f) for f in batch))
    nic.set_rx_qdisc(q, build_scheduler("tbf", rate="8mbit", burst=2000, limit=100_000))
    nic.push("wire", [ip_frame(0, size=1000) for _ in range(12)], 0)
    t = 0
    while t < 50_000_000:
        g.run_until(t)
        nxt = g.next_deadline_ns()
        if nxt is None and not g.has_ready():
            break
        t = max(t + 1, nxt if nxt is not None else t + 1)
    assert len(out) == 12
    times = [t for t, _ in out]
    gaps = [b - a for a, b in zip(times[2:], times[3:], strict=False)]
    assert all(abs(gap - 1_000_000) < 20_000 for gap in gaps), gaps
    s = nic.rx_qdisc_show()[str(q)]
    assert s["overlimits"] > 0 and s["sent_packets"] == 12


def test_removing_a_policy_drops_what_it_held_and_restores_the_ring():
    nic, q = nic_with_pool()
    nic.set_rx_qdisc(q, build_scheduler("pfifo", limit=1000))
    nic.rx([ip_frame(0) for _ in range(100)], 0)
    nic.poll(q, 10, 1)                                       # 90 now in the policy
    nic.set_rx_qdisc(q, None)
    assert nic.rx_qdisc == {} and nic.rxq[q].scheduler is nic.rings.queues[q]
    assert nic.drops["qdisc_removed"] == 90
    nic.rx([ip_frame(0) for _ in range(5)], 2)
    assert len(nic.poll(q, 64, 3)) == 5


def test_replacing_a_policy_and_a_function_reset():
    nic, q = nic_with_pool()
    nic.set_rx_qdisc(q, build_scheduler("pfifo", limit=1000))
    nic.rx([ip_frame(0) for _ in range(20)], 0)
    nic.poll(q, 5, 1)
    nic.set_rx_qdisc(q, build_scheduler("fq_codel"))
    assert nic.drops["qdisc_removed"] == 15
    assert nic.rx_qdisc_show()[str(q)]["scheduler"]["kind"] == "fq_codel"
    nic.rx([ip_frame(0) for _ in range(20)], 2)
    nic.poll(q, 5, 3)
    rx, _ = nic.flush_pool(POOL)
    assert rx == 15 and nic.rxq[q].backlog_packets == 0


def test_bad_queue_is_refused():
    nic, _ = nic_with_pool()
    with pytest.raises(NicError, match="queue 999 out of range"):
        nic.set_rx_qdisc(999, build_scheduler("pfifo"))
    assert nic.rx_qdisc == {}
