"""The TX engine's fast paths against the plain loop they shortcut (issue 10 item 1).

`TxArbiter.service` serves a queue's run of frames in an inner loop (its next frames while it
keeps the turn, and the wait for its own limiter while no other queue could use the wire), keeps
the limiter's schedule and the pool's credit in locals for the run, and sends a header the NIC
already sent plainly to the wire without calling the NIC (``inline``).  None of that may change
what the NIC does: `plain_service` below is the arbiter's loop as it was before those shortcuts
(one frame per turn, every frame through `Nic._tx_frame`), and the property drives two NICs,
one with each, through the same mix of disciplines, limits, weights, limits on frames per call,
anti-spoof, VMVIR, VEB loopback with back-pressure, descriptor tags, runts, configuration
changes and polls: the same frames must leave in the same order at the same times, with the
same counters, drops, credits and limiter schedules.
"""

from __future__ import annotations

from heapq import heappop, heappush
from math import ceil
from types import MethodType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nic_frames import eth, mac

from nicmodel.nic import Nic
from nicmodel.tx_arbiter import CREDIT_UNIT, WIRE_OVERHEAD, Handle, Inline, TxArbiter
from vswitch.core.frame import Frame

GIG = 1_000_000_000


def plain_service(self: TxArbiter, now_ns: int, limit: int | None = None,
                  handle: Handle | None = None, inline: Inline | None = None) -> list[tuple[Frame, int]]:
    """The reference: one frame per turn, the time heap and ready FIFO only, ``inline`` ignored
    (every frame goes to ``handle``)."""
    st_ = self.state
    if self._gen != st_.generation:
        self._rebuild()
    out: list[tuple[Frame, int]] = []
    if handle is None:
        def handle(f: Frame, p: int, t: int) -> bool:
            out.append((f, p))
            return True

    def wait(q: Any, e: int) -> None:
        heappush(self._heap, (e, self._seq, q))
        self._seq += 1

    def wait_credit(p: int, cr: int) -> None:
        r = st_.pools[p].tx_refill * CREDIT_UNIT
        heappush(self._neg, (self._round + (-cr) // r + 1, self._seq, p))
        self._seq += 1

    def pool_ready(p: int) -> None:
        if wrr:
            c = self._cur(p)
            if c <= 0:
                wait_credit(p, c)
                return
        self._ready.append(p)

    heap = self._heap
    ready = self._ready
    wrr = self.mode == "wrr"
    lim = -1 if limit is None else limit
    t = max(self.wire_free_ns, self.run_ns)
    n = shaped = cr = 0
    idle = False
    while True:
        while heap and heap[0][0] <= t:
            q = heappop(heap)[2]
            d = self._rq[q.pool]
            d.append(q)
            if len(d) == 1:
                pool_ready(q.pool)
        if not ready:
            if wrr and self._neg:
                target = self._neg[0][0]
                self.counters["refills"] += target - self._round
                self._round = target
                while self._neg and self._neg[0][0] <= target:
                    ready.append(heappop(self._neg)[2])
                continue
            if not heap or heap[0][0] > now_ns:
                idle = True
                break
            t = heap[0][0]
            continue
        if t > now_ns or n == lim:
            break
        p = ready[0]
        d = self._rq[p]
        q = d.popleft()
        f = q.ring[0][0]
        if self.stamp_tx:
            f.ts_ns = t
        if not handle(f, p, t):
            self._block(q, d, wrr)
            continue
        q.ring.popleft()
        nb = len(f.data)
        if q.rate_bps:
            fl = t - q.lag_ns
            q.tat = max(q.tat, fl) + (nb + WIRE_OVERHEAD) * q.ns_per_byte
        next_ns = ceil(q.tat)
        n += 1
        t += -(-(nb + WIRE_OVERHEAD) * 8 * GIG // st_.link_speed_bps)
        if wrr:
            cr = self._cur(p) - nb
            self.credit[p] = cr
        if q.ring:
            e = q.ring[0][1]
            if q.rate_bps and next_ns > e:
                e = next_ns
            if e <= t:
                d.append(q)
            else:
                shaped += bool(q.rate_bps) and e == next_ns
                wait(q, e)
        else:
            self._drained(q, p)
        if wrr:
            if cr <= 0 or not d:
                ready.popleft()
                if d:
                    wait_credit(p, cr)
        elif d:
            ready.rotate(-1)
        else:
            ready.popleft()
    self.wire_free_ns = t
    run = now_ns if idle or t > now_ns else t
    self.run_ns = max(self.run_ns, run)
    self.counters["served_packets"] += n
    self.counters["shaped_waits"] += shaped
    return out


def numbered(dst: str, src: str, size: int, seq: int) -> Frame:
    f = eth(dst, src=src, size=size)
    f.data = f.data[:18] + seq.to_bytes(4, "big") + f.data[22:]   # after the 16 bytes the cache keys on
    return f


KINDS = ("out", "out", "out", "local", "bcast", "own", "spoofed", "desc_tag", "runt")
CHANGES = ("none", "none", "none", "vfte_off", "vfte_on", "rate", "weight", "txdctl")

event = st.tuples(
    st.integers(1, 4),                        # pool
    st.integers(0, 1),                        # TX queue of the pool
    st.integers(1, 40),                       # frames
    st.sampled_from([60, 700, 1514]),         # size
    st.sampled_from(KINDS),                   # what they are
    st.integers(0, 300_000),                  # ns before they are handed over
    st.integers(0, 3),                        # polls of the back-pressured queue after the service
    st.sampled_from(CHANGES),                 # a configuration change before the hand-over
    st.sampled_from([0, 100, 1000, 6000, 9800, 10000]),    # its rate (Mb/s per queue), for "rate"
)


def scenario(reference: bool, mode: str, veb: bool, stamp: bool, rates: list[int], weights: list[int],
             limit: int | None, events: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    nic = Nic(tx_arbitration=mode)
    if reference:
        nic.txa.service = MethodType(plain_service, nic.txa)   # type: ignore[method-assign]
        nic.tx_inline = False
    nic.txa.stamp_tx = stamp
    nic.set_loopback(veb)
    for p in (1, 2, 3):
        nic.program_pool(p, mac=mac(p))
        nic.set_tx_weight(p, weights[p - 1])
        for q in nic.state.pool_queues(p):
            nic.set_tx_rate(q, rates[p - 1] * 1_000_000)
    nic.set_spoofcheck(2, mac=True)
    nic.set_vmvir(3, "always_default", vid=7, qos=3)      # every frame of pool 3 is edited
    nic.program_pool(4, mac=mac(4), drop_en=False)
    q4 = nic.state.pool_queues(4)[0]
    nic.set_rings(rx=64, queue=q4)                        # VEB into it back-pressures
    log: list[tuple[bytes, int]] = []
    t = seq = 0
    for pool, index, count, size, kind, dt, polls, change, rate in events:
        t += dt
        qi = nic.state.pool_queues(pool)[index]
        if change == "vfte_off":
            nic.set_pool_enabled(pool, tx=False)
        elif change == "vfte_on":
            nic.set_pool_enabled(pool, tx=True)
        elif change == "rate":
            nic.set_tx_rate(qi, rate * 1_000_000)
        elif change == "weight":
            nic.set_tx_weight(pool, 1 + size % 200)
        elif change == "txdctl":
            nic.set_queue_enabled(qi, tx=not nic.txa.queues[qi].enabled)
        frames = []
        for _ in range(count):
            seq += 1
            dst = {"local": mac(4), "bcast": "ff:ff:ff:ff:ff:ff", "own": mac(pool)}.get(kind, mac(99))
            src = mac(98) if kind == "spoofed" else mac(pool)
            f = numbered(dst, src, size, seq)
            if kind == "desc_tag":
                f.vlan, f.pcp = 5, 1
            elif kind == "runt":
                f.data = f.data[:13]
            frames.append(f)
        nic.tx(pool, frames, t, index)
        log += [(f.data, f.ts_ns) for f in nic.tx_service(t, limit)]
        for _ in range(polls):
            log += [(f.data, -1) for f in nic.poll(q4, 16, t)]
    for p in (1, 2, 3, 4):
        nic.set_pool_enabled(p, tx=True)
    for q in range(nic.profile.num_queues):
        nic.set_queue_enabled(q, tx=True)
    log += [(f.data, f.ts_ns) for f in nic.tx_service(t + 10 * GIG)]
    txa = nic.txa
    inner = ([(q.tat, q.next_ns, len(q.ring)) for q in txa.queues], [txa._cur(p) for p in range(len(txa.credit))],
             txa._round, txa.wire_free_ns, txa.run_ns, len(txa.blocked))
    return log, nic.snapshot(), inner


@settings(max_examples=120, deadline=None)
@given(mode=st.sampled_from(["rr", "wrr"]), veb=st.booleans(), stamp=st.booleans(),
       rates=st.lists(st.sampled_from([0, 100, 1000, 6000, 9800, 10000]), min_size=3, max_size=3),
       weights=st.lists(st.integers(1, 200), min_size=3, max_size=3),
       limit=st.sampled_from([None, None, 1, 5]),
       events=st.lists(event, min_size=1, max_size=25))
def test_fast_paths_give_the_plain_loops_result(mode: str, veb: bool, stamp: bool, rates: list[int],
                                                weights: list[int], limit: int | None,
                                                events: list[tuple[Any, ...]]) -> None:
    fast = scenario(False, mode, veb, stamp, rates, weights, limit, events)
    plain = scenario(True, mode, veb, stamp, rates, weights, limit, events)
    assert fast[0] == plain[0]       # frames, order, start times, and what the polls got
    assert fast[1] == plain[1]       # counters and drops
    assert fast[2] == plain[2]       # limiter schedules, credits, the engine's clock


def test_inline_path_is_taken() -> None:
    """The shortcut is real: after the first frame of a header, the NIC's handler is not called."""
    nic = Nic(tx_arbitration="wrr")
    nic.set_loopback(True)
    nic.program_pool(1, mac=mac(1))
    nic.set_spoofcheck(1, mac=True)
    calls = 0
    handler = nic._tx_frame

    def counted(f: Frame, p: int, t: int) -> bool:
        nonlocal calls
        calls += 1
        return handler(f, p, t)

    nic._tx_frame = counted   # type: ignore[method-assign]
    nic.tx(1, [eth(mac(99), src=mac(1)) for _ in range(10)], 0)
    assert len(nic.tx_service(GIG)) == 10
    assert calls == 1


def boundary_run(reference: bool, mode: str, rate_mbps: int, size: int) -> tuple[Any, ...]:
    nic = Nic(tx_arbitration=mode)
    if reference:
        nic.txa.service = MethodType(plain_service, nic.txa)   # type: ignore[method-assign]
        nic.tx_inline = False
    for p in (1, 2):
        nic.program_pool(p, mac=mac(p))
    for q in nic.state.pool_queues(1):
        nic.set_tx_rate(q, rate_mbps * 1_000_000)
    for p, index in ((1, 0), (2, 0), (1, 1)):
        nic.tx(p, [eth(mac(99), src=mac(p), size=size) for _ in range(5)], 0, index)
    out = [(f.data, f.ts_ns) for f in nic.tx_service(GIG // 1000)]
    return out, nic.snapshot(), [q.tat for q in nic.txa.queues]


@pytest.mark.parametrize("mode", ["rr", "wrr"])
@pytest.mark.parametrize("rate_mbps", [10000, 9800])
@pytest.mark.parametrize("size", [60, 700])
def test_single_frame_turns_at_the_limiters_boundary(mode: str, rate_mbps: int, size: int) -> None:
    """A queue limited to (about) the link speed whose next eligible time lands exactly on the end
    of its frame on the wire (or 1 ns after): eligible, and not a shaped wait, as in the plain loop
    (random times in the property above rarely hit these nanoseconds)."""
    assert boundary_run(False, mode, rate_mbps, size) == boundary_run(True, mode, rate_mbps, size)
