"""CoDel against RFC 8289's pseudocode: entering the dropping state once the sojourn time has stayed
above target for an interval, the control law's drop times (interval / sqrt(count) apart), leaving
it when the sojourn falls below target, and resuming with count - lastcount on a quick re-entry.

The expected drop times are computed here from the RFC's control law, with floats, not by the
code under test: next_drop = previous next_drop + INTERVAL / sqrt(count)."""

from __future__ import annotations

import math
from collections import deque

from hypothesis import given, settings, target
from hypothesis import strategies as st
from policy_frames import MS, ipv4

from vswitch.core.policies import CoDel
from vswitch.core.queues import Queue

TARGET, INTERVAL = 5 * MS, 100 * MS


class Run:
    """A queue with a standing backlog, dequeued once per 1 ms tick (one frame per tick, so the
    sojourn time of the head is known), recording the ticks at which CoDel dropped (or marked)."""

    def __init__(self, ecn: bool = False, tos: int = 0) -> None:
        self.q = Queue("q", CoDel(limit=100_000, target=TARGET, interval=INTERVAL, ecn=ecn))
        self.tos = tos
        self.t = 0
        self.events: list[int] = []

    def fill(self, n: int) -> None:
        self.q.push("in", [ipv4(1000, tos=self.tos) for _ in range(n)], self.t)

    def signals(self) -> int:
        return self.q.drops["codel_drop"] + self.q.scheduler.counters["ecn_mark"]

    def tick(self, n: int = 1, refill: bool = True) -> None:
        """Advance 1 ms, dequeue ``n`` frames (and with ``refill`` add as many)."""
        self.t += MS
        before = self.signals()
        self.q.pull(n, self.t)
        if self.signals() > before:
            self.events.extend([self.t] * (self.signals() - before))
        if refill:
            self.fill(n)


def rfc_schedule(enter: int, count_at_entry: int, until: int) -> list[int]:
    """Drop ticks (ms grid) RFC 8289 gives from entering the dropping state at ``enter``: a drop
    there, then at the first tick at or after each next_drop, next_drop += INTERVAL / sqrt(count)."""
    drops = [enter]
    count = count_at_entry
    next_drop = enter + INTERVAL / math.sqrt(count)
    while True:
        tick = math.ceil(next_drop / MS) * MS
        if tick > until:
            return drops
        drops.append(tick)
        count += 1
        next_drop += INTERVAL / math.sqrt(count)


def test_codel_enters_dropping_after_an_interval_above_target_and_drops_by_the_control_law():
    r = Run()
    r.fill(3000)
    for _ in range(2000):
        r.tick()
    # The head's sojourn reaches 5 ms at t = 5 ms: first_above_time = 105 ms; the dequeue at
    # 105 ms finds it passed and enters the dropping state (the RFC's ">=").
    expected = rfc_schedule(105 * MS, 1, r.t)
    assert r.events == expected
    st = r.q.scheduler.stats()
    assert st["dropping"] is True and st["count"] == len(expected) and st["lastcount"] == 1


def test_codel_leaves_the_dropping_state_when_the_sojourn_falls_below_target():
    r = Run()
    r.fill(3000)
    for _ in range(400):
        r.tick()
    s = r.q.scheduler
    assert s.stats()["dropping"] is True
    r.q.pull(100_000, r.t)                  # the standing queue drains at once
    r.fill(5)                               # fresh frames: their sojourn is below target
    dropped = r.q.drops["codel_drop"]
    for _ in range(3):
        r.tick(refill=False)
        r.fill(1)
    assert s.stats()["dropping"] is False
    assert r.q.drops["codel_drop"] == dropped


def test_codel_resumes_with_count_minus_lastcount_on_a_quick_re_entry():
    r = Run()
    r.fill(3000)
    for _ in range(600):
        r.tick()
    s = r.q.scheduler
    first_episode = len(r.events)                 # drops in it: 1 on entry + the control law's
    count_then = s.stats()["count"]
    assert count_then == first_episode and s.stats()["lastcount"] == 1
    r.q.pull(100_000, r.t)                        # sojourn below target: leave the state
    r.fill(1)
    r.tick()
    assert s.stats()["dropping"] is False
    # A new standing queue, well within 16 intervals of the last drop.
    r.events.clear()
    r.fill(3000)
    start = r.t
    for _ in range(600):
        r.tick()
    delta = count_then - 1                        # count - lastcount
    enter = r.events[0]
    assert enter == start + INTERVAL + 5 * MS     # the head's sojourn reaches 5 ms, then 100 ms
    assert r.events == rfc_schedule(enter, delta, r.t)
    assert s.stats()["lastcount"] == delta


def test_codel_re_entry_after_16_intervals_starts_over_at_count_1():
    r = Run()
    r.fill(3000)
    for _ in range(600):
        r.tick()
    r.q.pull(100_000, r.t)
    r.t += 17 * INTERVAL                          # long after the last drop
    r.events.clear()
    r.fill(3000)
    start = r.t
    for _ in range(600):
        r.tick()
    assert r.events == rfc_schedule(r.events[0], 1, r.t) and r.events[0] == start + INTERVAL + 5 * MS
    assert r.q.scheduler.stats()["lastcount"] == 1


def test_codel_with_ecn_marks_ect_frames_at_the_same_times_and_sends_them():
    r = Run(ecn=True, tos=2)
    r.fill(3000)
    for _ in range(1000):
        r.tick()
    assert r.events == rfc_schedule(105 * MS, 1, r.t)
    assert r.q.drops["codel_drop"] == 0 and r.q.scheduler.counters["ecn_mark"] == len(r.events)


def test_codel_never_drops_from_a_queue_of_at_most_one_mtu():
    q = Queue("q", CoDel(mtu=1514))
    q.push("in", [ipv4(700), ipv4(700), ipv4(700)], 0)
    t = 0
    for _ in range(300):                          # two frames stay queued, 1400 bytes: old but small
        t += MS
        q.pull(1, t)
        q.push("in", [ipv4(700)], t)
    assert q.drops["codel_drop"] == 0 and q.scheduler.stats()["ldelay_ns"] >= 2 * MS


def test_codel_tail_drops_at_its_limit():
    q = Queue("q", CoDel(limit=3))
    q.push("in", [ipv4(100) for _ in range(5)], 0)
    assert q.drops == {"codel_drop": 0, "queue_full": 2}
    assert q.scheduler.counters["drop_overlimit"] == 2              # tc -s qdisc's word for it


# -- RFC 8289 section 5's pseudocode, transcribed, against the implementation ------------------------

class RfcCodel:
    """codel_queue_t of RFC 8289 (sections 5.1-5.5) line by line: dodequeue(), dequeue() and
    control_law(), with time_t as integer ns (the C assignment truncates) and MAXPACKET the MTU."""

    def __init__(self, target: int, interval: int, maxpacket: int) -> None:
        self.TARGET, self.INTERVAL, self.MAXPACKET = target, interval, maxpacket
        self.q: deque[tuple[int, object, int]] = deque()     # (tstamp, packet, size)
        self.bytes_ = 0
        self.first_above_time_ = 0
        self.drop_next_ = 0
        self.count_ = 0
        self.lastcount_ = 0
        self.dropping_ = False
        self.dropped: list[object] = []

    def bytes(self) -> int:
        return self.bytes_

    def enqueue(self, p: object, size: int, now: int) -> None:
        self.q.append((now, p, size))
        self.bytes_ += size

    def control_law(self, t: int, count: int) -> int:
        return t + int(self.INTERVAL / math.sqrt(count))

    def dodequeue(self, now: int) -> tuple[object | None, bool]:
        if not self.q:
            self.first_above_time_ = 0
            return None, False
        tstamp, p, size = self.q.popleft()
        self.bytes_ -= size
        ok_to_drop = False
        sojourn_time = now - tstamp
        if sojourn_time < self.TARGET or self.bytes() <= self.MAXPACKET:
            self.first_above_time_ = 0
        else:
            if self.first_above_time_ == 0:
                self.first_above_time_ = now + self.INTERVAL
            elif now >= self.first_above_time_:
                ok_to_drop = True
        return p, ok_to_drop

    def dequeue(self, now: int) -> object | None:
        p, ok_to_drop = self.dodequeue(now)
        if p is None:
            self.dropping_ = False
            return None
        if self.dropping_:
            if not ok_to_drop:
                self.dropping_ = False
            while now >= self.drop_next_ and self.dropping_:
                self.dropped.append(p)
                self.count_ += 1
                p, ok_to_drop = self.dodequeue(now)
                if not ok_to_drop:
                    self.dropping_ = False
                else:
                    self.drop_next_ = self.control_law(self.drop_next_, self.count_)
        elif ok_to_drop:
            self.dropped.append(p)
            p, ok_to_drop = self.dodequeue(now)
            self.dropping_ = True
            delta = self.count_ - self.lastcount_
            self.count_ = 1
            if delta > 1 and now - self.drop_next_ < 16 * self.INTERVAL:
                self.count_ = delta
            self.drop_next_ = self.control_law(now, self.count_)
            self.lastcount_ = self.count_
        return p


# Phases of 1 ms ticks, each with its own arrival and dequeue rates: an overload long enough to
# hold a standing queue (the dropping state), an underload that drains it, re-entries.
phases = st.lists(st.tuples(st.integers(1, 400), st.integers(0, 4), st.integers(0, 4), st.integers(64, 1500)),
                  min_size=1, max_size=8)


@settings(max_examples=120, deadline=None)
@given(script=phases, mtu=st.sampled_from([0, 1514, 6000]))
def test_codel_makes_the_drop_decisions_of_rfc_8289s_pseudocode(script, mtu):
    """Any arrivals and dequeues: the same frames dequeued, the same ones dropped, in the same order,
    and the same state (count, lastcount, dropping, drop_next) after every tick."""
    impl = Queue("q", CoDel(limit=1 << 30, target=TARGET, interval=INTERVAL, mtu=mtu))
    ref = RfcCodel(TARGET, INTERVAL, mtu)
    dropped: list[object] = []
    impl.drop = lambda f, reason: dropped.append(f)          # type: ignore[method-assign]
    now = 0
    for ticks, arrivals, pulls, size in script:
        for _ in range(ticks):
            now += MS
            batch = [ipv4(size) for _ in range(arrivals)]
            for f in batch:
                ref.enqueue(f, size, now)
            impl.push("in", batch, now)
            for _ in range(pulls):
                want = ref.dequeue(now)
                got = impl.pull(1, now)
                assert (got[0] if got else None) is want
            assert dropped == ref.dropped
            s = impl.scheduler.flow
            assert (s.count, s.lastcount, s.dropping, s.drop_next) == \
                (ref.count_, ref.lastcount_, ref.dropping_, ref.drop_next_)
    target(len(ref.dropped))                # steer the search to scripts that drop, and often


def test_the_rfc_comparison_sees_drops_and_re_entries():
    """The comparison above is not vacuous: a script of its kind enters the dropping state, drops
    by the control law, leaves the state and enters it again."""
    ref = RfcCodel(TARGET, INTERVAL, 1514)
    now = 0
    entries = 0
    for ticks, arrivals, pulls in ((400, 3, 2), (200, 0, 4), (400, 3, 2)):
        for _ in range(ticks):
            now += MS
            for _ in range(arrivals):
                ref.enqueue(object(), 1000, now)
            for _ in range(pulls):
                was = ref.dropping_
                ref.dequeue(now)
                entries += not was and ref.dropping_
    assert len(ref.dropped) > 10 and entries >= 2
