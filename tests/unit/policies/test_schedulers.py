"""The class-based schedulers' defining properties, through a core Queue as a driver drains it.

Frames enter by ``Queue.push`` with ``in_port`` set (the classifier's key is the port), leave by
``Queue.pull``; each property is checked on what leaves."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from policy_frames import ipv4, plain

from vswitch.core.frame import Frame
from vswitch.core.policies import Classifier, Drr, RoundRobin, StrictPriority, Wfq, Wrr, build_scheduler
from vswitch.core.queues import Queue

LMAX = 1500


def frames_of(port: int, sizes: list[int]) -> list[Frame]:
    return [plain(n, in_port=port, fill=i) for i, n in enumerate(sizes)]


def by_port(classes: int) -> Classifier:
    """Port p -> class p (ports 0..classes-1)."""
    return Classifier("port", classes, {p: p for p in range(classes)})


def service(q: Queue, n: int, classes: int) -> list[list[int]]:
    """Pull ``n`` frames one at a time; after each, the bytes each class has had so far."""
    got = [0] * classes
    out = []
    for _ in range(n):
        f = q.pull(1, 0)
        assert f, "a work-conserving scheduler with backlog sent nothing"
        got[f[0].in_port] += len(f[0])
        out.append(list(got))
    return out


# -- DRR -----------------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(quantum=st.integers(64, 4000), nclasses=st.integers(2, 4),
       sizes=st.lists(st.lists(st.integers(64, LMAX), min_size=60, max_size=60), min_size=4, max_size=4))
def test_drr_service_of_backlogged_classes_differs_by_at_most_a_quantum_plus_a_frame(quantum, nclasses, sizes):
    """From the moment they are all backlogged, any two classes' service (bytes) never differs by
    more than one quantum plus one maximum frame; over any sub-interval by less than a quantum
    plus two frames (each end may carry a deficit, Shreedhar and Varghese's bound)."""
    q = Queue("q", Drr(by_port(nclasses), quantum=quantum))
    for c in range(nclasses):
        q.push("in", frames_of(c, sizes[c]), 0)
    total = [sum(s) for s in sizes[:nclasses]]
    history = [[0] * nclasses]
    while True:
        f = q.pull(1, 0)
        got = list(history[-1])
        got[f[0].in_port] += len(f[0])
        if any(g == t for g, t in zip(got, total, strict=True)):
            break                                   # a class has emptied: no longer all backlogged
        history.append(got)
    for s in history:
        assert max(s) - min(s) <= quantum + LMAX, (s, quantum)
    for i in range(0, len(history), 7):
        for j in range(i, len(history), 5):
            d = [b - a for a, b in zip(history[i], history[j], strict=True)]
            assert max(d) - min(d) < quantum + 2 * LMAX


def test_drr_shares_bytes_not_packets_between_big_and_small_frames():
    q = Queue("q", Drr(by_port(2), quantum=1514, limit=10_000))
    q.push("in", frames_of(0, [1500] * 300) + frames_of(1, [100] * 4000), 0)
    got = service(q, 1500, 2)[-1]
    assert abs(got[0] - got[1]) <= 1514 + LMAX
    assert min(got) / sum(got) >= 0.49                # each of the two at least (about) half


def test_drr_weights_give_bytes_in_their_ratio():
    q = Queue("q", Drr(by_port(2), quantum=1000, weights=[3, 1], limit=10_000))
    q.push("in", frames_of(0, [700] * 2000) + frames_of(1, [300] * 4000), 0)
    got = service(q, 3000, 2)[-1]
    assert abs(got[0] / got[1] - 3) <= 0.05 * 3


# -- WRR and RR -----------------------------------------------------------------------------------

def test_wrr_3_to_1_gives_3_to_1_within_5_percent():
    q = Queue("q", Wrr(by_port(2), [3, 1], limit=10_000))
    q.push("in", frames_of(0, [1000] * 3000) + frames_of(1, [1000] * 3000), 0)
    got = service(q, 4000, 2)[-1]
    assert abs(got[0] / got[1] - 3) <= 0.05 * 3


def test_wrr_serves_a_class_its_weight_in_a_row_then_moves_on():
    q = Queue("q", Wrr(by_port(2), [3, 1]))
    q.push("in", frames_of(0, [100] * 7) + frames_of(1, [100] * 3), 0)
    order = [f.in_port for f in q.pull(10, 0)]
    assert order == [0, 0, 0, 1, 0, 0, 0, 1, 0, 1]


def test_round_robin_alternates_between_backlogged_classes():
    q = Queue("q", RoundRobin(by_port(3)))
    q.push("in", frames_of(0, [60] * 3) + frames_of(1, [1500] * 2) + frames_of(2, [60]), 0)
    assert [f.in_port for f in q.pull(10, 0)] == [0, 1, 2, 0, 1, 0]


# -- WFQ (start-time fair queueing) -------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(weights=st.lists(st.integers(1, 5), min_size=2, max_size=3),
       sizes=st.lists(st.lists(st.integers(64, LMAX), min_size=60, max_size=60), min_size=3, max_size=3))
def test_wfq_normalised_service_of_backlogged_classes_stays_within_the_sfq_bound(weights, sizes):
    """STFQ (Goyal et al., Theorem 1): for classes i, j backlogged throughout,
    |W_i/w_i - W_j/w_j| <= Lmax_i/w_i + Lmax_j/w_j."""
    n = len(weights)
    q = Queue("q", Wfq(by_port(n), weights))
    for c in range(n):
        q.push("in", frames_of(c, sizes[c]), 0)
    total = [sum(s) for s in sizes[:n]]
    got = [0] * n
    while True:
        f = q.pull(1, 0)[0]
        got[f.in_port] += len(f)
        if any(g == t for g, t in zip(got, total, strict=True)):
            break
        for i in range(n):
            for j in range(i + 1, n):
                bound = max(sizes[i]) / weights[i] + max(sizes[j]) / weights[j]
                assert abs(got[i] / weights[i] - got[j] / weights[j]) <= bound + 1e-9


def test_wfq_equal_weights_give_each_of_two_backlogged_classes_half():
    q = Queue("q", build_scheduler("wfq", weights="1,1", map="0:0,1:1", limit=10_000))
    q.push("in", frames_of(0, [1500] * 400) + frames_of(1, [64] * 5000), 0)
    got = service(q, 3000, 2)[-1]
    assert min(got) / sum(got) >= 0.49


def test_wfq_a_class_that_was_idle_gets_no_credit_for_its_idle_time():
    """Start tags begin at the current virtual time: a class arriving late competes from now, it
    does not catch up on the service it missed (virtual time is not reset)."""
    q = Queue("q", Wfq(by_port(2), [1, 1]))
    q.push("in", frames_of(0, [1000] * 100), 0)
    q.pull(50, 0)
    q.push("in", frames_of(1, [1000] * 100), 0)
    order = [f.in_port for f in q.pull(20, 0)]
    assert order.count(1) <= 11 and order.count(0) >= 9


# -- strict priority ---------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(script=st.lists(st.one_of(st.tuples(st.just("push"), st.lists(st.integers(0, 2), min_size=1, max_size=8)),
                                 st.tuples(st.just("pull"), st.integers(1, 6))), max_size=40))
def test_strict_priority_never_sends_a_band_while_a_higher_one_has_frames(script):
    s = StrictPriority(by_port(3), limit=50)
    q = Queue("q", s)
    for op, arg in script:
        if op == "push":
            q.push("in", [plain(100, in_port=b) for b in arg], 0)
            continue
        for _ in range(arg):
            before = [s.class_backlog(b)[0] for b in range(3)]
            got = q.pull(1, 0)
            if not got:
                assert sum(before) == 0
                break
            band = got[0].in_port
            assert all(before[b] == 0 for b in range(band)), (before, band)


def test_strict_priority_starves_the_low_class():
    q = Queue("q", StrictPriority(by_port(2)))
    q.push("in", frames_of(1, [100] * 50), 0)
    for _ in range(20):                       # the high band stays backlogged; the low one waits
        q.push("in", frames_of(0, [100] * 10), 0)
        assert {f.in_port for f in q.pull(10, 0)} == {0}
    assert q.scheduler.class_backlog(1)[0] == 50
    assert {f.in_port for f in q.pull(100, 0)} == {1}       # it sends once the high band is empty


def test_pfifo_fast_bands_follow_the_linux_priomap():
    q = Queue("q", build_scheduler("pfifo_fast"))
    bulk, best, interactive = ipv4(tos=0x08, sport=1), ipv4(tos=0x00, sport=2), ipv4(tos=0x10, sport=3)
    q.push("in", [bulk, best, interactive], 0)
    assert q.pull(3, 0) == [interactive, best, bulk]         # bands 0, 1, 2
    per_class = q.snapshot()["scheduler"]["per_class"]
    assert [per_class[b]["sent_packets"] for b in "012"] == [1, 1, 1]


def test_per_class_counters_as_tc_class_show():
    q = Queue("q", Drr(by_port(2), limit=2))
    q.push("in", frames_of(0, [100, 200, 300]) + frames_of(1, [50]), 0)
    q.pull(2, 0)
    pc = q.snapshot()["scheduler"]["per_class"]
    assert pc["0"]["dropped"] == 1 and pc["1"]["dropped"] == 0
    assert pc["0"]["sent_packets"] + pc["1"]["sent_packets"] == 2
    assert pc["0"]["backlog_packets"] + pc["1"]["backlog_packets"] == 1
    assert q.drops["queue_full"] == 1
