"""The sans-IO core: Graph wiring and counters, Element drops (queues: test_queues.py)."""

from __future__ import annotations

import json

import pytest
from helpers import BCAST, eth, mac

from vswitch.core import PORT_COUNTERS, Element, Frame, Graph, GraphError, PortCounters


class Pass(Element):
    """in -> out, unchanged."""

    def push(self, inp, batch, now_ns):
        self.emit("out", batch, now_ns)


class Split(Element):
    """Frames shorter than 100 bytes to 'small', the rest to 'big'; 'minimum' drops runts."""

    OUTPUTS = ("small", "big")
    COUNTERS = ("seen",)
    DROP_REASONS = ("too_short",)

    def push(self, inp, batch, now_ns):
        self.count("seen", len(batch))
        small, big = [], []
        for f in batch:
            if len(f.data) < 20:
                self.drop(f, "too_short")
            elif len(f.data) < 100:
                small.append(f)
            else:
                big.append(f)
        self.emit("small", small, now_ns)
        self.emit("big", big, now_ns)


class Sink(Element):
    OUTPUTS = ()

    def __init__(self, name):
        super().__init__(name)
        self.got: list[tuple[bytes, int]] = []

    def push(self, inp, batch, now_ns):
        self.got.extend((f.data, now_ns) for f in batch)


class Sloppy(Element):
    DROP_REASONS = ("declared",)

    def push(self, inp, batch, now_ns):
        for f in batch:
            self.drop(f, "undeclared")


def frames(*sizes: int) -> list[Frame]:
    return [Frame(bytes([i]) * n) for i, n in enumerate(sizes)]


# -- wiring and links ------------------------------------------------------------------

def test_link_forwards_in_order_and_counts_frames_and_bytes():
    g = Graph()
    a, b = g.add(Pass("a")), g.add(Sink("b"))
    link = g.connect(a, "out", b, "in")
    g.add_port(1, "eth0", a, "in")
    batch = frames(60, 100, 1514)
    g.push(1, batch, 42)
    assert b.got == [(f.data, 42) for f in batch]
    assert (link.packets, link.bytes) == (3, 60 + 100 + 1514)
    g.push(1, frames(64), 43)
    assert (link.packets, link.bytes) == (4, 60 + 100 + 1514 + 64)


def test_push_counts_rx_on_the_port_and_sets_in_port():
    g = Graph()
    a, b = g.add(Pass("a")), g.add(Sink("b"))
    g.connect(a, "out", b, "in")
    p = g.add_port(7, "tap7", a, "in")
    assert isinstance(p, PortCounters)
    batch = frames(60, 70)
    g.push(7, batch, 0)
    assert all(f.in_port == 7 for f in batch)
    assert (p.rx_packets, p.rx_bytes) == (2, 130)
    assert p.tx_packets == p.tx_bytes == 0


def test_each_output_is_its_own_link():
    g = Graph()
    s = g.add(Split("split"))
    lo, hi = g.add(Sink("lo")), g.add(Sink("hi"))
    l_small = g.connect(s, "small", lo, "in")
    l_big = g.connect(s, "big", hi, "in")
    g.add_port(1, "p", s, "in")
    g.push(1, frames(60, 200, 99, 100), 0)
    assert [len(d) for d, _ in lo.got] == [60, 99]
    assert [len(d) for d, _ in hi.got] == [200, 100]
    assert (l_small.packets, l_small.bytes) == (2, 159)
    assert (l_big.packets, l_big.bytes) == (2, 300)
    assert s.counters == {"seen": 4}


def test_egress_callback_counts_tx_on_the_port():
    g = Graph()
    a = g.add(Pass("a"))
    rx = g.add_port(1, "in0", a, "in")
    tx = g.add_port(2, "out0", a, "in")
    got = []
    g.attach_egress(a, "out", 2, lambda batch, now: got.append(([f.data for f in batch], now)))
    batch = [Frame(eth(BCAST, mac(1))), Frame(eth(BCAST, mac(2), payload_len=100))]
    g.push(1, batch, 99)
    assert got == [([batch[0].data, batch[1].data], 99)]
    assert (tx.tx_packets, tx.tx_bytes) == (2, 60 + 114)
    assert (rx.rx_packets, rx.rx_bytes) == (2, 60 + 114)
    assert rx.tx_packets == 0 and tx.rx_packets == 0


def test_ingress_closure_and_a_driver_that_counts_its_own_bytes():
    """A driver pushing through ``ingress`` stamps in_port itself and may hand the byte count;
    an egress with ``counts_bytes`` reports the bytes it was given (its write loop measures them)."""
    g = Graph()
    a = g.add(Pass("a"))
    rx = g.add_port(1, "in0", a, "in")
    tx = g.add_port(2, "out0", a, "in")
    seen = []

    def send(batch, now):
        seen.append([f.in_port for f in batch])
        return 1000                           # whatever the driver measured
    g.attach_egress(a, "out", 2, send, counts_bytes=True)
    push = g.ingress(1)
    push([Frame(eth(BCAST, mac(1)), 5, 1), Frame(eth(BCAST, mac(2)), 5, 1)], 5, 123)
    assert (rx.rx_packets, rx.rx_bytes) == (2, 123)
    assert (tx.tx_packets, tx.tx_bytes) == (2, 1000)
    push([Frame(eth(BCAST, mac(1)), 6, 1)], 6)          # no count given: measured here
    assert (rx.rx_packets, rx.rx_bytes) == (3, 123 + 60)
    assert seen == [[1, 1], [1]]
    g.detach_port(1)
    with pytest.raises(KeyError):
        g.push(1, [Frame(eth(BCAST, mac(1)))], 7)


def test_frames_sent_to_an_unconnected_output_are_counted():
    g = Graph()
    s = g.add(Split("split"))
    lo = g.add(Sink("lo"))
    g.connect(s, "small", lo, "in")          # "big" left unconnected
    g.add_port(1, "p", s, "in")
    g.push(1, frames(60, 200, 300), 0)
    assert s.unconnected == {"big": 2}
    assert s.snapshot()["unconnected"] == {"big": 2}
    assert g.snapshot()["elements"]["split"]["unconnected"] == {"big": 2}
    assert len(lo.got) == 1


def test_empty_batches_are_not_sent():
    g = Graph()
    s = g.add(Split("split"))
    lo = g.add(Sink("lo"))
    l_small = g.connect(s, "small", lo, "in")
    g.add_port(1, "p", s, "in")
    g.push(1, frames(200), 0)
    assert l_small.packets == 0 and lo.got == []
    assert s.unconnected == {"big": 1}


def test_detached_port_makes_its_output_unconnected():
    g = Graph()
    a = g.add(Pass("a"))
    g.add_port(1, "in0", a, "in")
    g.add_port(2, "out0", a, "in")
    got = []
    g.attach_egress(a, "out", 2, lambda b, n: got.extend(b))
    g.detach_port(2)
    g.push(1, frames(60), 0)
    assert got == []
    assert a.unconnected == {"out": 1}
    assert 2 not in g.ports
    g.detach_port(2)                          # forgetting twice is harmless


# -- drops -------------------------------------------------------------------------------

def test_drop_counts_the_reason_and_rx_dropped_on_the_ingress_port():
    g = Graph()
    s = g.add(Split("split"))
    lo, hi = g.add(Sink("lo")), g.add(Sink("hi"))
    g.connect(s, "small", lo, "in")
    g.connect(s, "big", hi, "in")
    p1 = g.add_port(1, "p1", s, "in")
    p2 = g.add_port(2, "p2", s, "in")
    g.push(1, frames(10, 60, 19), 0)
    g.push(2, frames(5), 0)
    assert s.drops == {"too_short": 3}
    assert p1.rx_dropped == 2
    assert p2.rx_dropped == 1
    assert p1.rx_packets == 3 and p2.rx_packets == 1


def test_drop_outside_a_graph_only_counts_the_reason():
    s = Split("alone")
    s.push("in", frames(5), 0)
    assert s.drops == {"too_short": 1}


def test_drop_with_an_undeclared_reason_raises():
    g = Graph()
    e = g.add(Sloppy("sloppy"))
    p = g.add_port(1, "p", e, "in")
    with pytest.raises(ValueError, match="undeclared"):
        g.push(1, frames(60), 0)
    assert e.drops == {"declared": 0}
    assert p.rx_dropped == 0


def test_count_of_an_undeclared_counter_raises():
    with pytest.raises(KeyError):
        Split("s").count("nonsense")


# -- snapshot ----------------------------------------------------------------------------

def test_snapshot_is_one_nested_dict_of_every_counter():
    g = Graph()
    s = g.add(Split("split"))
    lo = g.add(Sink("lo"))
    g.connect(s, "small", lo, "in")
    g.add_port(1, "p1", s, "in")
    g.add_port(2, "p2", lo, "in")
    g.push(1, frames(10, 60, 200), 0)
    snap = g.snapshot()
    assert set(snap) == {"ports", "elements", "links"}
    assert set(snap["ports"]) == {"p1", "p2"}
    assert snap["ports"]["p1"] == {"rx_packets": 3, "rx_bytes": 270, "rx_dropped": 1, "rx_errors": 0,
                                   "rx_missed_errors": 0,
                                   "tx_packets": 0, "tx_bytes": 0, "tx_dropped": 0, "tx_errors": 0}
    assert set(snap["ports"]["p2"]) == set(PORT_COUNTERS)
    assert snap["elements"]["split"]["seen"] == 3
    assert snap["elements"]["split"]["drops"] == {"too_short": 1}
    assert snap["elements"]["split"]["unconnected"] == {"big": 1}
    assert snap["elements"]["lo"]["drops"] == {}
    (name, link), = snap["links"].items()
    assert "split" in name and "small" in name and "lo" in name
    assert link == {"packets": 1, "bytes": 60}
    assert "perf" not in snap
    # a plain tree of dicts and ints: JSON round-trips it unchanged
    assert json.loads(json.dumps(snap)) == snap


def test_snapshot_is_a_copy():
    g = Graph()
    s = g.add(Split("split"))
    g.add_port(1, "p1", s, "in")
    snap = g.snapshot()
    g.push(1, frames(10), 0)
    assert snap["ports"]["p1"]["rx_packets"] == 0
    assert snap["elements"]["split"]["drops"]["too_short"] == 0


# -- bad wiring --------------------------------------------------------------------------

def test_graph_errors_on_bad_wiring():
    g = Graph()
    a, b = g.add(Pass("a")), g.add(Sink("b"))
    stranger = Pass("stranger")
    with pytest.raises(GraphError, match="nope"):
        g.connect(a, "nope", b, "in")
    with pytest.raises(GraphError, match="nope"):
        g.connect(a, "out", b, "nope")
    with pytest.raises(GraphError, match="stranger"):
        g.connect(stranger, "out", b, "in")
    with pytest.raises(GraphError, match="stranger"):
        g.connect(a, "out", stranger, "in")
    with pytest.raises(GraphError, match="'a'"):
        g.add(Pass("a"))
    with pytest.raises(GraphError, match="nope"):
        g.add_port(1, "p1", a, "nope")
    with pytest.raises(GraphError):
        g.add_port(1, "p1", stranger, "in")
    g.add_port(1, "p1", a, "in")
    with pytest.raises(GraphError, match="p1"):
        g.add_port(1, "other", b, "in")
    with pytest.raises(GraphError, match="9"):
        g.attach_egress(a, "out", 9, lambda batch, now: None)
    with pytest.raises(GraphError, match="nope"):
        g.attach_egress(a, "nope", 1, lambda batch, now: None)
    assert isinstance(GraphError("x"), ValueError)
    assert g.links == []


def test_tick_reaches_every_element():
    class Ticker(Pass):
        def __init__(self, name):
            super().__init__(name)
            self.ticks = []

        def tick(self, now_ns):
            self.ticks.append(now_ns)

    g = Graph()
    t1, t2 = g.add(Ticker("t1")), g.add(Ticker("t2"))
    g.tick(5)
    g.tick(9)
    assert t1.ticks == t2.ticks == [5, 9]


# -- timer-based perf accounting ----------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 1000
        self.reads = 0

    def __call__(self):
        self.reads += 1
        return self.now


class Work(Element):
    """Spends ``cost`` ns of the fake clock, then passes the batch on."""

    def __init__(self, name, clock, cost):
        super().__init__(name)
        self.clock, self.cost = clock, cost

    def push(self, inp, batch, now_ns):
        self.clock.now += self.cost
        self.emit("out", batch, now_ns)


def test_timer_accounts_busy_time_per_element_inclusive_of_nested_calls():
    clock = FakeClock()
    g = Graph(timer=clock)
    a = g.add(Work("a", clock, 100))
    b = g.add(Work("b", clock, 30))
    c = g.add(Sink("c"))
    g.connect(a, "out", b, "in")
    g.connect(b, "out", c, "in")
    g.add_port(1, "p", a, "in")
    g.push(1, frames(60), 0)
    g.push(1, frames(60, 60), 1)
    # a's figure includes b's (a profiler's inclusive time); c costs nothing
    assert g.busy_ns == {"a": 2 * 130, "b": 2 * 30, "c": 0}
    assert g.calls == {"a": 2, "b": 2, "c": 2}
    # self_ns: each element's own work, without what it pushed to
    assert g.snapshot()["perf"] == {"a": {"busy_ns": 260, "self_ns": 200, "calls": 2},
                                    "b": {"busy_ns": 60, "self_ns": 60, "calls": 2},
                                    "c": {"busy_ns": 0, "self_ns": 0, "calls": 2}}
    assert len(c.got) == 3


def test_without_a_timer_nothing_reads_a_clock():
    clock = FakeClock()
    g = Graph()
    a = g.add(Work("a", clock, 100))
    g.add_port(1, "p", a, "in")
    g.push(1, frames(60), 0)
    assert clock.reads == 0
    assert g.busy_ns == {"a": 0}


def test_untap_of_a_bound_method_stops_the_tap():
    """A mirror is tapped and untapped with its bound methods (``el.tap_rx``), made anew at each
    access: untap must find the tap by equality, or a deleted mirror goes on copying frames."""
    from vswitch.elements.mirror import Mirror
    g = Graph()
    a = g.add(Pass("a"))
    g.add_port(1, "p", a, "in")
    m = g.add(Mirror("mirror.m", select_all=True))
    g.attach_sink(m, "out", lambda batch, now: None)
    g.tap(-1, "rx", m.tap_rx)
    g.push(1, frames(60), 0)
    assert m.counters["tx_packets"] == 1
    g.untap(m.tap_rx)
    g.push(1, frames(60), 1)
    assert m.counters["tx_packets"] == 1
