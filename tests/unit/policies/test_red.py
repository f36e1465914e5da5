"""RED: the marking probability curve against the average backlog, ECN marks instead of drops, the
average's decay while idle, the hard limit."""

from __future__ import annotations

import pytest
from policy_frames import checksum, ipv4

from vswitch.core.policies import Red
from vswitch.core.policies.red import eval_ewma
from vswitch.core.queues import Queue

MIN, MAX, MAXP = 20_000, 60_000, 0.1


def held_at(backlog_frames: int, n: int, ecn: bool = False, seed: int = 1) -> tuple[Queue, int]:
    """Keep the backlog at ``backlog_frames`` 1000-byte frames while ``n`` more arrive (one out for
    each one taken), so the average sits at that backlog; returns the queue and how many were marked
    or dropped."""
    q = Queue("q", Red(limit=10**6, max=MAX, min=MIN, probability=MAXP, ewma_log=1, ecn=ecn, seed=seed))
    tos = 2 if ecn else 0                                             # ECT(0)
    while len(q) < backlog_frames:                                    # (RED may drop while it fills)
        q.push("in", [ipv4(1000, tos=tos)], 0)
    for _ in range(100):                                              # let the average settle
        q.push("in", [ipv4(1000, tos=tos)], 0)
        q.pull(len(q) - backlog_frames, 0)
    s = q.scheduler
    base = s.counters["prob_mark"] + s.counters["forced_mark"] + sum(q.drops.values())
    for _ in range(n):
        f = ipv4(1000, tos=tos)
        q.push("in", [f], 0)
        q.pull(len(q) - backlog_frames, 0)
    marked = s.counters["prob_mark"] + s.counters["forced_mark"] + sum(q.drops.values()) - base
    return q, marked


@pytest.mark.parametrize("frac", [0.25, 0.5, 0.75])
def test_red_marks_with_the_probability_its_curve_gives(frac):
    """Between min and max: p_b = max_p * (avg - min) / (max - min), spread as RED spreads it
    (uniform gaps of 1..1/p_b frames), so the fraction marked is 2 p_b / (1 + p_b)."""
    backlog = round((MIN + frac * (MAX - MIN)) / 1000)
    n = 20_000
    q, marked = held_at(backlog, n)
    p_b = MAXP * (backlog * 1000 - MIN) / (MAX - MIN)
    expected = 2 * p_b / (1 + p_b)
    assert abs(marked / n - expected) <= 0.12 * expected, (marked / n, expected)
    assert q.drops["forced_drop"] == 0


def test_red_takes_everything_below_min_and_marks_everything_above_max():
    assert held_at(15, 2000)[1] == 0
    q = Queue("q", Red(limit=10**6, max=MAX, min=MIN, probability=MAXP, ewma_log=1))
    for _ in range(2000):                          # nothing leaves: the backlog climbs to max, then stays
        q.push("in", [ipv4(1000)], 0)
    assert MAX <= q.backlog_bytes <= MAX + 2000
    assert q.drops["forced_drop"] >= 2000 - MAX // 1000 - 10 and q.drops["queue_full"] == 0


def test_red_with_ecn_marks_ect_frames_ce_and_takes_them():
    q, marked = held_at(40, 5000, ecn=True)
    s = q.scheduler
    assert marked > 0 and s.counters["prob_mark"] >= marked and sum(q.drops.values()) == 0
    out = q.pull(1000, 0)
    ce = [f for f in out if f.data[15] & 3 == 3]
    assert ce and all(checksum(f.data[14:34]) == 0 for f in ce)


def test_red_drops_not_ect_frames_even_with_ecn_and_harddrop_drops_above_max():
    q = Queue("q", Red(limit=10**6, max=MAX, min=MIN, ewma_log=1, ecn=True, harddrop=True))
    q.push("in", [ipv4(1000) for _ in range(61)], 0)               # fills past max
    q.push("in", [ipv4(1000, tos=2) for _ in range(50)], 0)         # ECT, but harddrop above max
    assert q.drops["forced_drop"] > 0 and q.scheduler.counters["forced_mark"] == 0


def test_red_average_decays_while_idle_as_if_small_frames_found_it_empty():
    s = Red(limit=10**6, max=MAX, min=MIN, ewma_log=3, avpkt=1000, bandwidth=8_000_000)   # 1 ms per avpkt
    q = Queue("q", s)
    q.push("in", [ipv4(1000) for _ in range(40)], 0)
    avg = s.avg
    assert q.pull(100, 0) and not q.pull(1, 0)                   # empty: idle from t = 0
    q.push("in", [ipv4(1000)], 10_000_000)                        # 10 ms idle: 10 avpkt times
    assert s.avg == pytest.approx(avg * (1 - 1 / 8) ** 10 * (1 - 1 / 8))


def test_red_thresholds_default_as_tc_computes_them():
    """tc red: max = 3 * min, or limit / 4 when neither is given; min = max / 3."""
    assert Red(limit=400_000).config()["max"] == 100_000 and Red(limit=400_000).config()["min"] == 33_333
    assert Red(limit=400_000, min=20_000).config()["max"] == 60_000
    assert Red(limit=400_000, max=90_000).config()["min"] == 30_000


def test_red_hard_limit_in_bytes():
    q = Queue("q", Red(limit=5000, max=5000, min=4000, ewma_log=10))   # the average lags: only the limit bites
    q.push("in", [ipv4(1000) for _ in range(8)], 0)
    assert q.drops["queue_full"] == 3 and q.backlog_bytes == 5000


@pytest.mark.parametrize("qmin, burst", [(30_000, 55), (20_000, 30)])
def test_ewma_weight_from_burst_lets_that_burst_in_unmarked(qmin, burst):
    """tc's rule for the weight: ``burst`` back-to-back avpkt frames into an empty queue leave the
    average below min; the next heavier weight (one less ewma_log) would not."""
    wlog = eval_ewma(qmin, burst, 1000)

    def average_after_burst(ewma_log: int) -> float:
        s = Red(limit=10**7, max=10 * qmin, min=qmin, ewma_log=ewma_log)
        Queue("q", s).push("in", [ipv4(1000) for _ in range(burst)], 0)
        return s.avg

    assert average_after_burst(wlog) < qmin <= average_after_burst(wlog - 1)
    assert Red(limit=10**7, max=3 * qmin, min=qmin, burst=burst).ewma_log == wlog
    with pytest.raises(ValueError, match="burst"):
        eval_ewma(30_000, 20, 1000)                # fewer than min/avpkt frames: tc refuses it too
