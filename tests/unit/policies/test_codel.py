"""CoDel against RFC 8289's pseudocode: entering the dropping state once the sojourn time has stayed
above target for an interval, the control law's drop times (interval / sqrt(count) apart), leaving
it when the sojourn falls below target, and resuming with count - lastcount on a quick re-entry.

The expected drop times are computed here from the RFC's control law, with floats, not by the
code under test: next_drop = previous next_drop + INTERVAL / sqrt(count)."""

from __future__ import annotations

import math

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
