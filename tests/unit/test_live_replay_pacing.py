"""Live replay's schedule and timed loop (bench/replay_pacing.py, bench/live_replay.Pacer), on a fake clock.

The schedule is checked against its closed forms (tcpreplay's cumulative next_tx_ns), and
the loop is driven by a fake clock whose sleeps overshoot, so that a pacer that slept
relative to the last send (and so drifted) would fail.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.live_replay import Pacer, Preloaded
from bench.replay_pacing import Limits, Progress, Schedule, Speed, plan


def records(n: int, size: int = 60, gap_ns: int = 1000, t0: int = 1_000_000) -> list[tuple[int, bytes]]:
    return [(t0 + i * gap_ns, i.to_bytes(4, "big") + bytes(size - 4)) for i in range(n)]


def dues(speed: Speed, recs: list[tuple[int, bytes]], limits: Limits | None = None) -> list[int]:
    return [d for d, _ in plan([lambda: recs], speed, limits or Limits())]


# -- the schedule -----------------------------------------------------------------------------

def test_pps_is_k_over_rate_for_every_frame_with_no_accumulated_error():
    # 3 pps: a period of 333,333,333.3 ns.  Adding the period frame by frame (integer ns) would be
    # 0.33 ns short per frame, 333 µs after a million frames; frame k here is exactly k/3 s.
    s = Schedule(Speed("pps", 3))
    got = [s.due(0, 60) for _ in range(1_000_001)]
    assert got[:4] == [0, 333_333_333, 666_666_666, 1_000_000_000]
    assert got[1_000_000] == 333_333_333_333_333
    s = Schedule(Speed("pps", 50_000))
    assert [s.due(0, 60) for _ in range(5)] == [0, 20_000, 40_000, 60_000, 80_000]


def test_mbps_counts_the_bytes_up_to_and_including_the_frame_and_the_first_goes_at_once():
    s = Schedule(Speed("mbps", 100))            # 80 ns per byte
    sizes = [60, 1514, 566, 60]
    got = [s.due(0, n) for n in sizes]
    assert got == [0, (60 + 1514) * 80, (60 + 1514 + 566) * 80, sum(sizes) * 80]
    # So the last frame is due when all bytes have taken their time: bytes / elapsed is the rate.
    assert sum(sizes) * 8 / (got[-1] / 1e9) == pytest.approx(100e6)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(14, 9000), min_size=2, max_size=200), st.floats(0.5, 10_000))
@example([6177, 6177], 1.5)         # CI found it: 12354 B * (8e3 / 1.5) truncates to 65,887,999 ns
def test_mbps_rate_over_any_run_is_the_asked_rate(sizes, mbps):
    s = Schedule(Speed("mbps", mbps))
    last = [s.due(0, n) for n in sizes][-1]
    assert abs(last - sum(sizes) * 8e3 / mbps) < 1          # the ideal time, truncated to whole ns


def test_multiplier_scales_capture_gaps_and_late_records_go_at_once():
    ts = [10_000, 11_000, 15_000, 12_000, 20_000]      # the 4th is stamped before the 3rd
    s = Schedule(Speed("multiplier", 2.0))
    s.start_segment()
    assert [s.due(t, 60) for t in ts] == [0, 500, 2500, 2500, 5000]
    s = Schedule(Speed("multiplier", 0.5))              # half speed: gaps doubled
    s.start_segment()
    assert [s.due(t, 60) for t in ts[:3]] == [0, 2000, 10000]


def test_each_loop_and_each_capture_starts_where_the_last_ideally_ended():
    recs = records(3, gap_ns=1000)                      # spans 2 µs
    got = [d for d, _ in plan([lambda: recs, lambda: recs], Speed(), Limits(loops=2))]
    assert got == [0, 1000, 2000, 2000, 3000, 4000, 4000, 5000, 6000, 6000, 7000, 8000]


def test_pps_and_mbps_continue_across_loops():
    recs = records(3)
    assert dues(Speed("pps", 1000), recs, Limits(loops=2)) == [i * 1_000_000 for i in range(6)]
    got = dues(Speed("mbps", 8), recs, Limits(loops=2))              # 1000 ns per byte
    assert got == [0] + [60 * k * 1000 for k in range(2, 7)]


def test_topspeed_and_mbps_zero_are_all_due_at_once():
    assert set(dues(Speed("topspeed", 0), records(10))) == {0}


def test_speed_values_are_checked():
    for mode, v in (("pps", 0), ("mbps", -1), ("multiplier", 0), ("warp", 1)):
        with pytest.raises(ValueError):
            Speed(mode, v)


# -- loops, limit, duration ---------------------------------------------------------------------

def test_loop_k_sends_each_frame_k_times_in_order():
    recs = records(5)
    got = [f for _, f in plan([lambda: recs], Speed("topspeed", 0), Limits(loops=3))]
    assert got == [f for _, f in recs] * 3


def test_limit_stops_after_exactly_that_many_frames_across_loops():
    recs = records(5)
    prog = Progress()
    got = list(plan([lambda: recs], Speed("pps", 10), Limits(loops=0, limit=12), prog))
    assert len(got) == 12 and prog.stopped_by == "limit" and prog.loops == 3
    assert [f for _, f in got] == ([f for _, f in recs] * 3)[:12]


def test_duration_stops_before_the_first_frame_due_at_or_after_it():
    prog = Progress()
    got = dues(Speed("pps", 1000), records(5), Limits(loops=0, duration_ns=7_000_000))
    assert got == [i * 1_000_000 for i in range(7)]
    list(plan([lambda: records(5)], Speed("pps", 1000), Limits(loops=0, duration_ns=7_000_000), prog))
    assert prog.stopped_by == "duration"


def test_forever_over_an_empty_capture_ends():
    prog = Progress()
    assert list(plan([list], Speed(), Limits(loops=0), prog)) == [] and prog.stopped_by == "empty"


# -- the timed loop on a fake clock ---------------------------------------------------------------

class FakeClock:
    """Each read costs ``tick`` ns; each sleep oversleeps by ``overshoot`` ns (a loaded machine)."""

    def __init__(self, tick: int = 50, overshoot: int = 0) -> None:
        self.t = 10**12
        self.tick = tick
        self.overshoot = overshoot
        self.sleeps = 0

    def clock(self) -> int:
        self.t += self.tick
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps += 1
        self.t += int(s * 1e9) + self.overshoot


class FakeSender:
    def __init__(self, fc: FakeClock, cost: int = 0, batch_cost: int = 0) -> None:
        self.fc, self.cost, self.batch_cost = fc, cost, batch_cost
        self.sent: list[tuple[int, bytes]] = []
        self.runs: list[tuple[int, int]] = []

    def send(self, frame: bytes) -> None:
        self.sent.append((self.fc.t, frame))
        self.fc.t += self.cost

    def send_run(self, pre: Preloaded, lo: int, n: int) -> None:
        self.runs.append((lo, n))
        for i in range(lo, lo + n):
            self.sent.append((self.fc.t, pre.records[i][1]))
        self.fc.t += self.batch_cost + n * self.cost


def test_late_wakeups_do_not_accumulate():
    # 1000 pps, every sleep wakes 300 µs late (more than the spin margin): a pacer sleeping
    # "one period after the last send" would be 0.3 s late after 1000 frames.
    fc = FakeClock(overshoot=300_000)
    snd = FakeSender(fc, cost=5_000)
    p = Pacer(snd, fc.clock, fc.sleep, spin_ns=200_000)
    recs = records(1000)
    p.run(plan([lambda: recs], Speed("pps", 1000), Limits()))
    late = [t - p.start - k * 1_000_000 for k, (t, _) in enumerate(snd.sent)]
    assert len(snd.sent) == 1000 and fc.sleeps > 900
    assert min(late) >= 0 and max(late) < 400_000
    assert abs(late[-1]) < 400_000
    assert p.end - p.start == pytest.approx(999 * 1_000_000, abs=400_000)


def test_frames_are_sent_no_earlier_than_due_and_in_order():
    fc = FakeClock(tick=200)
    snd = FakeSender(fc, cost=1_000)
    p = Pacer(snd, fc.clock, fc.sleep, spin_ns=20_000)
    recs = records(200, gap_ns=37_000)
    items = list(plan([lambda: recs], Speed("multiplier", 1.0), Limits(loops=2)))
    p.run(iter(items))
    assert [f for _, f in snd.sent] == [f for _, f in items]
    assert all(t >= p.start + d for (t, _), (d, _) in zip(snd.sent, items, strict=True))


def test_behind_schedule_the_due_frames_go_as_one_batch():
    # Sends that take longer than the gap: the pacer falls behind and hands all due frames
    # to one sendmmsg at a time, in order, never more than --batch and never wrapping.
    fc = FakeClock()
    snd = FakeSender(fc, cost=3_000)
    pre = Preloaded([records(10), records(7)])
    p = Pacer(snd, fc.clock, fc.sleep)
    p.run(plan(pre.factories(), Speed("pps", 1_000_000), Limits(loops=2)), pre=pre, batch=4)
    want = [d for _, d in pre.records] * 2
    assert [f for _, f in snd.sent] == want
    assert all(n <= 4 for _, n in snd.runs) and max(n for _, n in snd.runs) == 4
    assert all(lo + n <= pre.count for lo, n in snd.runs)


def test_the_clock_ends_a_run_at_its_duration_even_behind_schedule():
    fc = FakeClock()
    snd = FakeSender(fc, cost=100_000)               # 10 kpps at most
    p = Pacer(snd, fc.clock, fc.sleep)
    p.run(plan([lambda: records(1000)], Speed("topspeed", 0), Limits(loops=0, duration_ns=5_000_000)),
          duration_ns=5_000_000, stamp=False)
    assert p.stopped_by_clock
    assert all(t - p.start < 5_000_000 for t, _ in snd.sent)
    assert len(snd.sent) == 50


@pytest.mark.parametrize("batch", [1, 3, 64])
@pytest.mark.parametrize("limits", [Limits(), Limits(loops=3), Limits(loops=0, limit=25), Limits(loops=2, limit=7)])
def test_topspeed_from_memory_sends_what_plan_gives(batch, limits):
    fc = FakeClock()
    snd = FakeSender(fc)
    pre = Preloaded([records(6), records(4, size=100)])
    prog = Progress()
    Pacer(snd, fc.clock, fc.sleep).run_topspeed(pre, limits, batch, prog)
    want = [f for _, f in plan(pre.factories(), Speed("topspeed", 0), limits)]
    assert [f for _, f in snd.sent] == want
    assert prog.frames == len(want)
    if batch > 1:
        assert all(n <= batch for _, n in snd.runs)


# -- the sendmmsg vectors, decoded as the kernel reads them -----------------------------------------

def decode(vector: int, lo: int, n: int) -> list[bytes]:
    """The frames messages lo .. lo+n-1 of an mmsghdr array point at (one iovec each)."""
    import ctypes

    from bench.live_replay import _IoVec, _MMsgHdr
    msgs = (_MMsgHdr * (lo + n)).from_address(vector)
    out = []
    for m in msgs[lo:lo + n]:
        assert m.msg_hdr.msg_iovlen == 1 and not m.msg_hdr.msg_name and not m.msg_hdr.msg_control
        iov = _IoVec.from_address(m.msg_hdr.msg_iov)
        out.append(ctypes.string_at(iov.iov_base, iov.iov_len))
    return out


class VectorSender(FakeSender):
    def send_run(self, pre: Preloaded, lo: int, n: int) -> None:
        self.send_mmsg(pre.vector(), lo, n, pre.cum)

    def send_mmsg(self, vector: int, lo: int, n: int, cum) -> None:
        frames = decode(vector, lo, n)
        assert [len(f) for f in frames] == [cum[i + 1] - cum[i] for i in range(lo, lo + n)]
        self.runs.append((lo, n))
        self.sent += [(self.fc.t, f) for f in frames]
        self.fc.t += self.cost * n


@pytest.mark.parametrize("preload", [True, False])
def test_batches_point_at_the_right_bytes(preload):
    fc = FakeClock()
    snd = VectorSender(fc, cost=2_000)               # behind schedule: batches form
    caps = [records(40, size=61), [(0, bytes([i]) * (60 + i * 37)) for i in range(30)]]
    pre = Preloaded(caps)
    factories = pre.factories() if preload else [lambda c=c: iter(c) for c in caps]
    Pacer(snd, fc.clock, fc.sleep).run(plan(factories, Speed("pps", 1_000_000), Limits(loops=2)),
                                       pre=pre if preload else None, batch=16)
    assert [f for _, f in snd.sent] == [d for _, d in pre.records] * 2
    assert max(n for _, n in snd.runs) == 16


def test_staging_sends_a_frame_larger_than_its_buffer_alone(monkeypatch):
    from bench import live_replay
    monkeypatch.setattr(live_replay._Staged, "SIZE", 1000)
    fc = FakeClock()
    snd = VectorSender(fc, cost=2_000)
    recs = [(0, bytes([1]) * 600), (0, bytes([2]) * 600), (0, bytes([3]) * 5000), (0, bytes([4]) * 60)]
    Pacer(snd, fc.clock, fc.sleep).run(plan([lambda: recs], Speed("topspeed", 0), Limits()), batch=8,
                                       stamp=False)
    assert [f for _, f in snd.sent] == [d for _, d in recs]


def test_waiting_time_reads_ahead_so_a_stall_is_caught_up_at_send_speed():
    # Reading a record costs 8 µs, sending 2 µs, the schedule 20 µs a frame; the 1000th send stalls
    # 10 ms (the process was descheduled).  Read ahead while waiting, the 500 frames then due cost
    # 2 µs each to catch up (back on schedule ~560 frames later); read only when due, 10 µs each
    # (~1000 frames later).
    fc = FakeClock(tick=0)
    snd = VectorSender(fc, cost=2_000)
    orig = snd.send_mmsg

    def stalling(vector, lo, n, cum):
        orig(vector, lo, n, cum)
        if len(snd.sent) >= 1000 and not getattr(snd, "stalled", False):
            snd.stalled = True
            fc.t += 10_000_000
    snd.send_mmsg = stalling

    def slow_records():
        for i in range(3000):
            fc.t += 8_000
            yield 0, i.to_bytes(4, "big") + bytes(56)
    p = Pacer(snd, fc.clock, fc.sleep, spin_ns=0)
    p.run(plan([slow_records], Speed("pps", 50_000), Limits()), batch=64)
    late = [t - p.start - k * 20_000 for k, (t, _) in enumerate(snd.sent)]
    assert len(snd.sent) == 3000 and max(late[1000:1100]) > 9_000_000
    back = next(k for k in range(1001, 3000) if late[k] < 100_000)
    assert back < 1000 + 700, back
