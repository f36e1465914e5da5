"""Queues and schedulers in the core, and the graph's readiness and deadlines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vswitch.core import Element, Frame, Graph
from vswitch.core.queues import Queue
from vswitch.core.scheduler import Fifo, Scheduler


def frames(*sizes: int) -> list[Frame]:
    return [Frame(bytes([i % 256]) * n) for i, n in enumerate(sizes)]


class Sink(Element):
    OUTPUTS = ()

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.got: list[tuple[int, Frame]] = []

    def push(self, inp, batch, now_ns):
        self.got.extend((now_ns, f) for f in batch)


def wired(q: Queue) -> tuple[Graph, Sink]:
    g = Graph()
    g.add(q)
    sink = g.add(Sink("sink"))
    g.connect(q, "out", sink, "in")
    g.add_port(1, "p", q, "in")
    return g, sink


# -- FIFO --------------------------------------------------------------------------------

def test_fifo_tail_drops_beyond_its_packet_limit():
    g = Graph()
    q = g.add(Queue("q", Fifo(limit=3)))
    p = g.add_port(1, "p", q, "in")
    g.push(1, frames(60, 61, 62, 63, 64), 0)
    assert len(q) == 3
    assert q.counters["enqueued"] == 3 and q.drops == {"queue_full": 2}
    assert p.rx_dropped == 2                  # a queue's drop counts on the port it came in by
    assert [len(f) for f in q.pull(10, 0)] == [60, 61, 62]


def test_fifo_byte_limit_refuses_what_would_overflow_it():
    q = Queue("q", Fifo(limit=None, limit_bytes=250))
    q.push("in", frames(100, 100, 100, 50), 0)
    assert [len(f) for f in q.pull(10, 0)] == [100, 100, 50]
    assert q.drops["queue_full"] == 1


def test_fifo_head_drop_keeps_the_newest():
    q = Queue("q", Fifo(limit=3, drop="head"))
    q.push("in", frames(1, 2, 3, 4, 5), 0)
    assert [len(f) for f in q.pull(10, 0)] == [3, 4, 5]
    assert q.drops["queue_full"] == 2
    assert q.counters["enqueued"] == 5        # every arrival was taken; two older ones left


def test_fifo_head_drop_by_bytes_refuses_a_frame_larger_than_the_limit():
    q = Queue("q", Fifo(limit=None, limit_bytes=100, drop="head"))
    q.push("in", frames(40, 40, 150, 60), 0)
    assert [len(f) for f in q.pull(10, 0)] == [40, 60]


@pytest.mark.parametrize("kw, msg", [({"limit": None}, "needs a limit"), ({"limit": 0}, ">= 1"),
                                     ({"limit_bytes": 0}, "limit_bytes"), ({"drop": "middle"}, "drop")])
def test_fifo_refuses_bad_settings(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Fifo(**kw)


def test_queue_capacity_is_a_tail_drop_fifo_and_must_be_positive():
    q = Queue("q", capacity=2)
    assert isinstance(q.scheduler, Fifo) and q.scheduler.limit == 2
    with pytest.raises(ValueError, match="capacity"):
        Queue("q", capacity=0)
    with pytest.raises(ValueError, match="not both"):
        Queue("q", Fifo(), capacity=3)


def test_a_scheduler_belongs_to_one_queue():
    s = Fifo()
    Queue("a", s)
    with pytest.raises(ValueError, match="already belongs"):
        Queue("b", s)


# -- counters as tc words them -------------------------------------------------------------

def test_sent_requeues_and_backlog():
    q = Queue("q", capacity=10)
    q.push("in", frames(10, 20, 30, 40), 0)
    got = q.pull(3, 0)
    q.requeue_front(got[1:])                  # the device took only the first
    assert q.counters["sent_packets"] == 1 and q.counters["sent_bytes"] == 10
    assert q.counters["requeues"] == 2
    assert (q.backlog_packets, q.backlog_bytes) == (3, 90)
    assert [len(f) for f in q.pull(10, 0)] == [20, 30, 40]
    snap = q.snapshot()
    assert snap["sent_packets"] == 4 and snap["sent_bytes"] == 100
    assert snap["backlog_packets"] == 0 and snap["max_depth"] == 4
    assert snap["scheduler"] == {"kind": "fifo", "drop": "tail", "limit": 10}


class Paced(Scheduler):
    """A test shaper: one frame per ``gap`` ns, the first at ``start``."""

    KIND = "paced"
    DROP_REASONS = ("over",)

    def __init__(self, gap: int, start: int = 0, limit: int = 100) -> None:
        super().__init__()
        self.gap, self.next, self.limit = gap, start, limit
        self.q: list[Frame] = []

    def enqueue(self, frame, now_ns):
        if len(self.q) >= self.limit:
            self.drop(frame, "over")
            return False
        self.q.append(frame)
        self.backlog_packets += 1
        self.backlog_bytes += len(frame.data)
        return True

    def dequeue(self, now_ns):
        if not self.q or now_ns < self.next:
            return None
        self.next = max(self.next, now_ns) + self.gap
        f = self.q.pop(0)
        self.backlog_packets -= 1
        self.backlog_bytes -= len(f.data)
        return f

    def next_eligible_ns(self, now_ns):
        return max(self.next, now_ns) if self.q else None


def test_a_held_back_dequeue_counts_an_overlimit_and_adopted_drop_reasons():
    q = Queue("q", Paced(gap=100, start=50, limit=2))
    q.push("in", frames(1, 2, 3), 0)
    assert q.drops == {"over": 1}
    assert q.pull(5, 0) == [] and q.counters["overlimits"] == 1
    assert len(q.pull(5, 60)) == 1 and q.counters["overlimits"] == 2


# -- readiness and deadlines --------------------------------------------------------------

def test_push_makes_a_queue_ready_and_drain_emits_and_counts_the_link():
    q = Queue("q", capacity=100)
    g, sink = wired(q)
    assert g.take_ready() == []
    g.push(1, frames(*[60] * 5), 7)
    assert g.take_ready() == [q]
    assert g.take_ready() == []               # taken
    assert q.drain(3, 9) == 3
    assert g.take_ready() == [q]              # frames left: still ready
    assert q.drain(3, 9) == 2
    assert g.take_ready() == []               # empty: not ready
    assert [t for t, _ in sink.got] == [9] * 5
    link = g.snapshot()["links"]["q[out] -> sink[in]"]
    assert link == {"packets": 5, "bytes": 300}


def test_a_shaped_queue_asks_for_a_deadline_and_run_until_drains_it_at_that_time():
    q = Queue("q", Paced(gap=1000, start=500))
    g, sink = wired(q)
    g.push(1, frames(10, 11, 12), 0)
    assert g.take_ready() == []
    assert g.next_deadline_ns() == 500
    g.run_until(400)
    assert sink.got == []
    g.run_until(10_000)
    assert [(t, len(f)) for t, f in sink.got] == [(500, 10), (1500, 11), (2500, 12)]
    assert g.next_deadline_ns() is None


def test_an_earlier_request_replaces_a_later_one_and_stale_entries_never_fire():
    woken: list[int] = []

    class Timer(Element):
        def on_deadline(self, now_ns):
            woken.append(now_ns)

    g = Graph()
    t = g.add(Timer("t"))
    g.schedule(t, 300)
    g.schedule(t, 500)                        # later than the live request: ignored
    g.schedule(t, 100)                        # earlier: replaces it
    assert g.next_deadline_ns() == 100
    assert g.fire(99) == 0
    assert g.fire(1000) == 1                  # once, not for the replaced 300
    assert woken == [1000]
    assert g.next_deadline_ns() is None


def test_run_until_fires_deadlines_in_time_order_at_their_own_time():
    order: list[tuple[str, int]] = []

    class Timer(Element):
        def on_deadline(self, now_ns):
            order.append((self.name, now_ns))

    g = Graph()
    a, b = g.add(Timer("a")), g.add(Timer("b"))
    g.schedule(b, 20)
    g.schedule(a, 10)
    g.run_until(15)
    assert order == [("a", 10)]
    g.run_until(100)
    assert order == [("a", 10), ("b", 20)]


def test_run_due_fires_what_fell_due_at_the_time_it_runs_and_leaves_the_future():
    # The live driver's run_until: a deadline already past fires at the time of the call (a
    # late timer's), one still ahead waits; what the firing made ready is drained then too.
    order: list[tuple[str, int]] = []
    q = Queue("q", capacity=10)
    g, sink = wired(q)

    class Timer(Element):
        def on_deadline(self, now_ns):
            order.append((self.name, now_ns))
            if self.name == "a":
                q.push("in", frames(7), now_ns)

    a, b, c = g.add(Timer("a")), g.add(Timer("b")), g.add(Timer("c"))
    g.schedule(b, 20)
    g.schedule(a, 10)
    g.schedule(c, 200)
    assert g.run_due(5) == 0 and order == []
    assert g.run_due(100) == 1
    assert order == [("a", 100), ("b", 100)]
    assert [(t, len(f)) for t, f in sink.got] == [(100, 7)]
    assert g.next_deadline_ns() == 200


class CountingGate:
    def __init__(self) -> None:
        self.enq: list[int] = []
        self.polls: list[tuple[int, int]] = []

    def enqueued(self, queue, now_ns):
        self.enq.append(now_ns)

    def drained(self, queue, n, budget, now_ns):
        self.polls.append((n, budget))


def test_a_gated_queue_is_ready_only_when_its_gate_wakes_it():
    gate = CountingGate()
    q = Queue("q", capacity=10, gate=gate)
    g, sink = wired(q)
    g.push(1, frames(1, 2), 5)
    assert gate.enq == [5] and g.take_ready() == []
    q.wake(6)                                 # the gate's interrupt fired
    assert g.take_ready() == [q]
    q.drain(64, 6)
    assert gate.polls == [(2, 64)]


def test_adding_a_composite_adds_its_parts():
    class Box(Element):
        def __init__(self, name):
            super().__init__(name)
            self.inner = Queue(f"{name}.q", capacity=4)

        def parts(self):
            return (self.inner,)

    g = Graph()
    box = g.add(Box("box"))
    assert g.elements["box.q"] is box.inner and box.inner.graph is g
    assert "box.q" in g.snapshot()["elements"]


# -- properties ----------------------------------------------------------------------------

ops = st.lists(st.one_of(
    st.tuples(st.just("push"), st.lists(st.integers(1, 300), min_size=1, max_size=20)),
    st.tuples(st.just("pull"), st.integers(0, 30)),
    st.tuples(st.just("requeue"), st.integers(0, 5)),
), max_size=40)


@settings(max_examples=200, deadline=None)
@given(limit=st.one_of(st.none(), st.integers(1, 20)), limit_bytes=st.one_of(st.none(), st.integers(300, 3000)),
       drop=st.sampled_from(["tail", "head"]), script=ops)
def test_fifo_conserves_frames_and_never_exceeds_its_limits(limit, limit_bytes, drop, script):
    if limit is None and limit_bytes is None:
        limit = 5
    q = Queue("q", Fifo(limit=limit, limit_bytes=limit_bytes, drop=drop))
    arrived = 0
    held: list[Frame] = []
    for op, arg in script:
        if op == "push":
            q.push("in", frames(*arg), 0)
            arrived += len(arg)
        elif op == "pull":
            held.extend(q.pull(arg, 0))
        elif held:
            back = held[-arg:] if arg else []
            del held[len(held) - len(back):]
            q.requeue_front(back)
        s = q.scheduler
        assert limit is None or s.backlog_packets <= limit
        assert limit_bytes is None or s.backlog_bytes <= limit_bytes
        assert arrived == q.counters["sent_packets"] + q.backlog_packets + sum(q.drops.values())
        assert q.counters["sent_packets"] == len(held)
