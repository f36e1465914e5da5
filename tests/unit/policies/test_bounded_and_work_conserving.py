"""Every kind: no buffer ever beyond its limit (packets and bytes), every frame accounted for, and the
work-conserving ones never idle while they hold frames.  Hypothesis drives a core Queue with random
pushes (sizes, ports, DSCP/ECN, flows) and pulls at advancing times, as a driver would."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_frames import ipv4, plain

from vswitch.core.policies import KINDS, build_scheduler
from vswitch.core.queues import Queue

# Small limits, so the script reaches them.  (bound on packets, bound on bytes) the whole
# scheduler may hold, from the kind's own limits.
SMALL = {
    "fifo": ({"limit": 6, "limit_bytes": 4000}, (6, 4000)),
    "pfifo": ({"limit": 5}, (5, None)),
    "bfifo": ({"limit": 3000}, (None, 3000)),
    "pfifo_head_drop": ({"limit": 5}, (5, None)),
    "pfifo_fast": ({"limit": 3}, (9, None)),
    "prio": ({"limit": 3, "limit_bytes": 2500, "classify": "dscp", "map": "46:0,10:1", "default_class": 2},
             (9, 7500)),
    "rr": ({"classes": 3, "limit": 3, "limit_bytes": 2500}, (9, 7500)),
    "wrr": ({"weights": "3,1", "limit": 4}, (8, None)),
    "drr": ({"weights": "1,2,1", "limit": 3, "limit_bytes": 2000, "quantum": 500}, (9, 6000)),
    "wfq": ({"weights": "2,1", "limit": 4, "limit_bytes": 3000}, (8, 6000)),
    "tbf": ({"rate": "2mbit", "burst": 3000, "limit": 5000}, (None, 5000)),
    "htb": ({"classes": [{"name": "r", "rate": "10mbit"}, {"name": "a", "parent": "r", "rate": "2mbit", "limit": 3},
                         {"name": "b", "parent": "r", "rate": "1mbit", "ceil": "10mbit", "limit": 4}],
             "map": "1:a,2:b", "direct_qlen": 2}, (9, None)),
    "red": ({"limit": 5000, "max": 3000, "min": 1000, "ecn": True, "burst": 3, "avpkt": 500}, (None, 5000)),
    "codel": ({"limit": 6, "target": "1us", "interval": "20us", "mtu": 0}, (6, None)),
    "fq_codel": ({"limit": 8, "memory_limit": 5000, "flows": 4, "drop_batch": 3, "target": "1us",
                  "interval": "20us", "mtu": 0}, (8, 5000)),
}

frame = st.builds(lambda size, port, tos, sport, ip: ipv4(size, tos=tos, sport=sport, in_port=port) if ip
                  else plain(size, in_port=port),
                  st.integers(64, 1500), st.integers(1, 3), st.sampled_from([0, 1, 2, 3, 46 << 2, 10 << 2 | 2]),
                  st.integers(1, 6), st.booleans())
script = st.lists(st.one_of(st.tuples(st.just("push"), st.lists(frame, min_size=1, max_size=12)),
                            st.tuples(st.just("pull"), st.integers(1, 10)),
                            st.tuples(st.just("wait"), st.integers(1, 2_000_000))), min_size=1, max_size=40)


def test_every_kind_has_a_bounded_case_here():
    assert set(SMALL) == set(KINDS)


@pytest.mark.parametrize("kind", list(KINDS))
@settings(max_examples=120, deadline=None)
@given(ops=script)
def test_no_buffer_exceeds_its_limit_and_every_frame_is_accounted_for(kind, ops):
    params, (max_pk, max_b) = SMALL[kind]
    q = Queue("q", build_scheduler(kind, **params))
    s = q.scheduler
    work_conserving = KINDS[kind].work_conserving
    now = 0
    arrived = 0
    for op, arg in ops:
        if op == "push":
            q.push("in", arg, now)
            arrived += len(arg)
        elif op == "wait":
            now += arg
        else:
            got = q.pull(arg, now)
            if work_conserving and len(got) < arg:
                assert s.backlog_packets == 0, f"{kind} idled with {s.backlog_packets} frames"
        assert max_pk is None or s.backlog_packets <= max_pk
        assert max_b is None or s.backlog_bytes <= max_b
        assert s.backlog_packets >= 0 and s.backlog_bytes >= 0
        assert arrived == q.counters["sent_packets"] + s.backlog_packets + sum(q.drops.values())
        if work_conserving:
            assert q.counters["overlimits"] == 0
    # What it says it holds, it gives back: at the times it says it may (a shaper's deadlines).
    held = s.backlog_packets
    out = 0
    for _ in range(1000):
        t = s.next_eligible_ns(now)
        if t is None:
            break
        assert t >= now
        now = t
        out += len(q.pull(64, now))
    assert s.backlog_packets == 0 and s.backlog_bytes == 0
    assert out + sum(q.drops.values()) >= held        # an AQM may drop some of them on the way out
    assert arrived == q.counters["sent_packets"] + sum(q.drops.values())


@pytest.mark.parametrize("kind", [k for k, v in KINDS.items() if v.work_conserving])
def test_a_work_conserving_scheduler_sends_whenever_it_holds_frames(kind):
    params, _ = SMALL[kind]
    q = Queue("q", build_scheduler(kind, **params))
    frames = [ipv4(200 + 10 * i, sport=i % 5, in_port=1 + i % 3, tos=(i % 3) << 2) for i in range(30)]
    t = 0
    for f in frames:
        q.push("in", [f], t)
        assert q.scheduler.next_eligible_ns(t) == t
        got = q.pull(1, t)
        assert len(got) == 1 or q.scheduler.backlog_packets == 0
        t += 1000
