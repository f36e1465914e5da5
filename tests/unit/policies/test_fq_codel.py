"""fq_codel (RFC 8290): new-flow priority, per-flow CoDel, the fat-flow drop at the limits, byte
fairness between backlogged flows, and tc's counters."""

from __future__ import annotations

import statistics

from policy_frames import MS, US, ipv4

from vswitch.core.policies import FqCodel, build_scheduler
from vswitch.core.queues import Queue


def flow(sport: int, n: int, size: int = 1000, tos: int = 0):
    return [ipv4(size, sport=sport, tos=tos) for _ in range(n)]


def test_a_sparse_flows_packet_leaves_before_the_backlogged_flows():
    q = Queue("q", FqCodel())
    q.push("in", flow(1, 100), 0)
    first = q.pull(2, 0)                    # the bulk flow's first quantum (1514 B: two frames)...
    assert len(first) == 2
    sparse = ipv4(200, sport=2)
    q.push("in", [sparse], 0)               # ...it is now on the old list; the sparse one is new
    assert q.pull(1, 0) == [sparse]
    st = q.snapshot()["scheduler"]
    assert st["new_flow_count"] == 2 and st["old_flows_len"] == 1
    fifo = Queue("f", build_scheduler("pfifo"))
    fifo.push("in", flow(1, 100) + [sparse], 0)
    assert fifo.pull(100, 0)[-1] is not sparse      # in a FIFO it waits behind all of them


def test_a_new_flow_that_empties_goes_to_the_old_list_before_it_leaves():
    q = Queue("q", FqCodel())
    q.push("in", flow(1, 10), 0)
    q.pull(2, 0)                                     # flow 1 -> old list
    q.push("in", flow(2, 1, size=100), 0)
    q.pull(1, 0)                                     # flow 2 sent its frame and is empty...
    s = q.scheduler.stats()
    assert s["new_flows_len"] == 1 and s["old_flows_len"] == 1
    q.pull(1, 0)                                     # ...found empty: moved behind flow 1, not dropped
    s = q.scheduler.stats()
    assert s["new_flows_len"] == 0 and s["old_flows_len"] == 2
    q.push("in", flow(2, 1, size=100), 0)            # back before it left: not a new flow again
    assert q.scheduler.counters["new_flow_count"] == 2


def test_backlogged_flows_share_bytes_by_quantum_whatever_their_frame_sizes():
    q = Queue("q", FqCodel(target=10**12))           # no CoDel drops: the DRR part alone
    q.push("in", flow(1, 2000, size=1500) + flow(2, 5000, size=100), 0)
    got = {1: 0, 2: 0}
    for f in q.pull(2500, 0):
        got[1 if len(f) == 1500 else 2] += len(f)
    assert abs(got[1] - got[2]) <= 1514 + 1500


def run_link(q: Queue, seconds: float, bulk_gap: int, sparse_gap: int, link_gap: int) -> dict[str, list[int]]:
    """A link dequeuing one frame per ``link_gap`` ns; a bulk flow arriving every ``bulk_gap``
    (faster: a standing queue) and a sparse one every ``sparse_gap``.  Returns each flow's
    sojourn times (ns), measured here from when each frame was pushed."""
    pushed: dict[int, int] = {}
    soj: dict[str, list[int]] = {"bulk": [], "sparse": []}
    nxt = {"bulk": 0, "sparse": sparse_gap // 2, "link": 0}
    end = int(seconds * 1e9)
    while True:
        t = min(nxt.values())
        if t > end:
            return soj
        if nxt["bulk"] == t:
            f = ipv4(1500, sport=1, tos=0)
            pushed[id(f)] = t
            q.push("in", [f], t)
            nxt["bulk"] += bulk_gap
        if nxt["sparse"] == t:
            f = ipv4(200, sport=2)
            pushed[id(f)] = t
            q.push("in", [f], t)
            nxt["sparse"] += sparse_gap
        if nxt["link"] == t:
            for f in q.pull(1, t):
                soj["sparse" if len(f) == 200 else "bulk"].append(t - pushed.pop(id(f)))
            nxt["link"] += link_gap


def test_under_overload_the_sparse_flow_sees_less_than_target_where_a_fifo_gives_it_the_standing_queue():
    """100 Mbit/s link (one 1500 B frame per 120 us), an unresponsive bulk flow at 1.5 times that,
    a sparse flow of one 200 B frame every 10 ms (experiments.md C.10, in miniature).  The bulk
    flow does not slow down when dropped, so CoDel's drops cannot hold it at target: its backlog
    ends at the limit, where the fat-flow drop keeps it (holding a *responsive* flow near 5 ms is
    the bufferbloat experiment's job, with TCP-like sources)."""
    q = Queue("q", FqCodel(limit=2000))
    fq = run_link(q, 3.0, 80 * US, 10 * MS, 120 * US)
    assert max(fq["sparse"]) < 5 * MS
    assert q.drops["codel_drop"] > 0 and q.scheduler.backlog_packets <= 2000
    fifo = run_link(Queue("f", build_scheduler("pfifo", limit=1000)), 3.0, 80 * US, 10 * MS, 120 * US)
    assert statistics.median(fifo["sparse"][len(fifo["sparse"]) // 2:]) >= 100 * MS   # ~1000 x 120 us


def test_codel_runs_per_flow_the_sparse_flow_is_never_dropped():
    s = FqCodel(ecn=False)
    q = Queue("q", s)
    run_link(q, 2.0, 80 * US, 10 * MS, 120 * US)
    bulk = s.flow(s.classifier.classify(ipv4(1500, sport=1)))
    sparse = s.flow(s.classifier.classify(ipv4(200, sport=2)))
    assert bulk is not sparse
    assert q.drops["codel_drop"] > 0 and q.drops["queue_full"] == 0
    assert bulk.count > 0 and bulk.dropping
    assert sparse.count == 0 and not sparse.dropping and sparse.ldelay < 5 * MS


def test_at_the_packet_limit_the_fattest_flow_loses_half_its_backlog_from_its_head():
    q = Queue("q", FqCodel(limit=20, drop_batch=64))
    fat = flow(1, 15, size=1000)
    q.push("in", fat + flow(2, 5, size=1000), 0)
    assert q.drops["queue_full"] == 0
    q.push("in", flow(3, 1, size=100), 0)            # 21 > 20
    # flow 1 (15000 B) loses frames from its head until half (7500 B) is gone: 8 frames.
    assert q.drops["queue_full"] == 8 and q.scheduler.counters["drop_overlimit"] == 8
    s = q.scheduler
    assert s.flow(s.classifier.classify(fat[0])).count == 8      # CoDel signals harder on it
    assert [f for f in q.pull(100, 0) if f in fat] == fat[8:]    # the oldest went


def test_drop_batch_caps_one_overlimit_drop_and_memory_limit_is_counted_apart():
    q = Queue("q", FqCodel(limit=1000, memory_limit=20_000, drop_batch=3))
    q.push("in", flow(1, 20, size=1000), 0)
    q.push("in", flow(2, 1, size=500), 0)            # 20500 bytes > 20000
    c = q.scheduler.counters
    assert q.drops["queue_full"] == 3 and c["drop_overmemory"] == 3 and c["drop_overlimit"] == 3
    assert q.scheduler.stats()["memory_used"] == 17_500


def test_an_arriving_frame_that_is_itself_the_fattest_flows_only_frame_is_refused():
    q = Queue("q", FqCodel(limit=1))
    q.push("in", flow(1, 1, size=100), 0)
    q.push("in", flow(2, 1, size=1500), 0)           # flow 2 is the fattest: its only frame goes
    assert q.counters["enqueued"] == 1 and q.drops["queue_full"] == 1
    assert len(q.pull(5, 0)[0]) == 100


def test_flows_by_another_key_one_queue_per_guest_port():
    q = Queue("q", FqCodel(flows=16, classify="port"))
    a = [ipv4(1000, sport=i, in_port=1) for i in range(50)]    # many 5-tuples, one guest
    b = [ipv4(1000, sport=7, in_port=2)]
    q.push("in", a + b, 0)
    st = q.scheduler.stats()
    assert st["new_flows_len"] == 2 and set(st["per_flow"]) == {"1", "2"}


def test_memory_limit_holds_when_one_fat_flow_batch_is_not_enough():
    # Found by the bounded-buffer property: flows of 2400, 2400 and a 1500 B arrival (6300 B over a
    # 5000 B memory_limit).  The fattest flow's batch stops at half its bytes (one 1200 B frame),
    # which leaves 5100 B; the next fattest then loses a batch too, so the queue fits its limit.
    q = Queue("q", FqCodel(memory_limit=5000, target=10**12))
    q.push("in", flow(1, 2, size=1200) + flow(2, 2, size=1200), 0)
    s = q.scheduler
    assert s.stats()["new_flows_len"] == 2 and s.backlog_bytes == 4800
    q.push("in", flow(3, 1, size=1500), 0)
    assert s.backlog_bytes == 3900 <= 5000
    assert s.counters["drop_overmemory"] == 2 and q.drops["queue_full"] == 2
