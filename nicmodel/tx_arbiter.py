"""TX queues, pool arbitration and per-queue rate limiters.

Element `TxArbiter` (no graph ports: `Nic.tx` enqueues, `Nic.tx_service` runs the
TX engine up to ``now_ns``).

Queues.  Each pool owns the same TX queues as RX (profile layout).  A TX ring
has ``size`` descriptors (64..4096, default 512); `enqueue` accepts what fits
and returns the number accepted: a full TX ring back-pressures the sender (the
driver stops its queue), it never drops.

Service (nic-model.md A "TX path" 1).  A queue is served only if TCTL.EN
(``tx_enable``), the pool's VFTE bit and TXDCTL.ENABLE are all set; otherwise
its frames wait (QEMU: VFTE=0 stalls the ring, it does not drop).  The model
has no clock: the TX engine stands at the ``now_ns`` of the last `service`
call, and a configuration change (VFTE, TXDCTL, a rate) takes effect there, so
no frame ever starts before the call that came before it.

Arbitration works on the queues that hold frames, never on every pool: the
cost per frame depends on how many queues are busy, not on how many pools are
configured.  A queue with frames is in one of three places:

* the time heap, keyed by the time its head frame becomes eligible (it was
  handed over later, or its rate limiter holds it);
* its pool's FIFO of ready queues, the pool in the FIFO of ready pools (the
  active list of deficit round robin);
* ``blocked``: `Nic` refused its head frame (VEB loopback into a full queue
  without drop enable) until `wake` is called.

``rr``   round robin, one frame per ready pool per turn: the pool just served
         goes to the back of the ready FIFO.
``wrr``  82599-DCB-style credits (experiments.md D): each pool has a refill of
         ``tx_refill`` 64-byte units; a pool keeps the turn while its credit is
         > 0 and pays each frame's bytes; when no ready pool has credit left,
         every backlogged pool gets its refill, capped at 2 x refill, as many
         rounds as it takes for the next ready pool to turn positive (each round
         counts in ``refills``); a pool that was idle during a refill round loses
         its credit (it cannot save up while it has nothing).  Rounds are lazy: a
         global round counter, each pool's credit brought up to date when it is
         looked at, and the pools waiting for credit in a heap keyed by the round
         at which they turn positive.
Inside a pool its ready queues are served round robin.

Rate limit (A "TX path" 4, E.9; RTTBCNRC, RTTBCNRM): per *queue*,
``rate_bps`` (rate factor = link speed / rate).  The next frame of a queue
becomes eligible at::

    e(n+1) = max(e(n), start(n) - C / rate) + wire_bits(n) / rate

that is, counted from its previous eligible time: a queue that waited behind
other pools' frames catches up to its rate, never above it, because its
schedule may lag the actual start by at most the compensation window C
(`COMPENSATION_BYTES`, RTTBCNRM.MMW_SIZE), so after a stall or an idle spell
it sends at most C ahead of its rate.  Between one frame's start and a later
frame's start, the frames in between carry at most rate x time + C.  Frames
wait, never drop.

Wire.  A frame occupies the link for ``(len + 24) * 8 / link_speed`` (FCS 4 +
preamble 8 + IFG 12 bytes, as experiments.md B.1).  ``service(now_ns)``
returns (or hands to ``handle``) every frame whose transmission *starts* at or
before ``now_ns``; each leaves with ``ts_ns`` = the time its transmission started
(unless ``stamp_tx`` is False: the discrete driver keeps a frame's arrival time to
measure its latency).

Counters: ``served_packets``/``served_bytes`` (frames and bytes taken off TX rings),
``shaped_waits`` (times a queue's next frame had to wait for its rate
limiter), ``refills`` (credit refill rounds), ``backpressured`` (times a head
frame was refused and its queue blocked); per queue
``q<N>_tx_packets``/``q<N>_tx_bytes`` in the snapshot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from math import ceil
from operator import attrgetter
from typing import Any, ClassVar

from nicmodel.rings import RING_DEFAULT, check_ring_size
from nicmodel.state import NicState
from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import Frame

__all__ = ["TxQueue", "TxArbiter", "WIRE_OVERHEAD", "CREDIT_UNIT", "ARBITRATION_MODES", "COMPENSATION_BYTES"]

WIRE_OVERHEAD = 24
CREDIT_UNIT = 64
ARBITRATION_MODES = ("rr", "wrr")
# RTTBCNRM.MMW_SIZE, the rate scheduler's compensation for a queue that was late: ixgbe
# writes 0x4 on the 82599 ("0x014 if 9728-byte jumbo is supported and 0x004 otherwise"),
# read here as 4 x 512 bytes, one full-size frame (the datasheet's unit is unverified).
COMPENSATION_BYTES = 2048
_NS = 1_000_000_000
_DATA = attrgetter("data")

# handle(frame, pool, start_ns) -> False to refuse the head frame (its queue blocks)
Handle = Callable[[Frame, int, int], bool]
# (per-pool dict of headers or None, the list such frames go to, the mark): TxArbiter.service
Inline = tuple[list[dict[bytes, object] | None], list[Frame], object]


def _never(f: Frame) -> None:  # pragma: no cover
    raise AssertionError("no inline headers")


_NO_CREDIT = 1 << 62   # rr: a pool's turn never ends for want of credit
# how a run of a queue's frames ended
_WAITING, _ELIGIBLE, _DRAINED, _BLOCKED = 0, 1, 2, 3


class TxQueue:
    """One TX queue: ring of (frame, time handed over), its rate limiter and counters.

    The limiter keeps its schedule ``tat`` (the next eligible time) in float nanoseconds,
    ``ns_per_byte`` and ``lag_ns`` (the compensation window) at its rate; ``next_ns`` is that
    time rounded up to a nanosecond.  (Float: exact integers would need bit-ns products that
    cost several times as much per frame; the error is ~1e-4 ns after hours.)  ``last_ts``
    bounds the hand-over times in the ring (the latest ever): a run of the arbiter that
    starts past it need not look at them.
    """

    __slots__ = ("index", "ring", "size", "enabled", "rate_bps", "tat", "last_ts", "accepted", "accepted_bytes",
                 "pool", "ok", "ns_per_byte", "lag_ns", "discarded")

    def __init__(self, index: int) -> None:
        self.index = index
        self.ring: deque[tuple[Frame, int]] = deque()
        self.size = RING_DEFAULT
        self.enabled = False
        self.rate_bps = 0  # 0: no limit
        self.tat = 0.0
        self.last_ts = 0
        self.ns_per_byte = 0.0
        self.lag_ns = 0.0
        self.accepted = 0        # frames / bytes ever put on the ring
        self.accepted_bytes = 0
        self.discarded = 0       # frames handed over but thrown away unsent (a function reset)
        self.pool = -1      # owning pool in the current layout (set by the arbiter)
        self.ok = False     # may be served (TCTL.EN, VFTE, TXDCTL.ENABLE), as of the arbiter's rebuild

    # Sent = handed over - still in the ring (a TX ring never drops), so serving a frame
    # only pops it; the figures are exact at any moment.
    @property
    def tx_packets(self) -> int:
        return self.accepted - len(self.ring)

    @property
    def tx_bytes(self) -> int:
        return self.accepted_bytes - sum([len(f.data) for f, _ in self.ring])

    def set_size(self, n: int) -> None:
        self.size = check_ring_size(n, f"TX queue {self.index} ring")

    def flush(self) -> int:
        """Throw away the frames not yet sent (a function reset): they leave ``accepted`` (they
        were never transmitted) and count in ``discarded``.  The caller moves the NIC state's
        generation so the arbiter forgets the queue.  Returns how many."""
        n = len(self.ring)
        self.accepted -= n
        self.accepted_bytes -= sum([len(f.data) for f, _ in self.ring])
        self.discarded += n
        self.ring.clear()
        return n

    @property
    def next_ns(self) -> int:
        return ceil(self.tat)

    def set_rate(self, rate_bps: int) -> None:
        """A new rate factor; the queue's next eligible time is kept."""
        self.rate_bps = rate_bps
        self.tat = float(self.next_ns)
        self.ns_per_byte = 8e9 / rate_bps if rate_bps else 0.0
        self.lag_ns = COMPENSATION_BYTES * self.ns_per_byte

    def eligible_ns(self) -> int:
        ts = self.ring[0][1]
        if self.rate_bps:
            nx = ceil(self.tat)
            if nx > ts:
                return nx
        return ts

    def config(self) -> dict[str, Any]:
        return {"size": self.size, "enabled": self.enabled, "rate_bps": self.rate_bps,
                "depth": len(self.ring)}


class TxArbiter(Element):
    INPUTS: ClassVar[tuple[PortId, ...]] = ()
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ()
    COUNTERS = ("served_packets", "shaped_waits", "refills", "backpressured")   # + served_bytes in snapshot()

    # Serve a queue's next frames in an inner loop while it keeps the turn.  The schedule is the
    # same either way (tests/unit/nicmodel/test_tx_arbiter.py checks it); False is the plain loop.
    burst = True

    def __init__(self, name: str, state: NicState, num_queues: int, mode: str = "rr") -> None:
        super().__init__(name)
        self.state = state
        self.queues = [TxQueue(i) for i in range(num_queues)]
        self.mode = ""
        self.set_mode(mode)
        self.wire_free_ns = 0   # end of the last frame on the wire
        self.stamp_tx = True    # frames leave with ts_ns = their transmission start
        self.run_ns = 0         # the TX engine has run up to here
        n = len(state.pools)
        self.credit = [0] * n           # wrr credit in bytes, as of round _cround[p]
        self._cround = [0] * n
        self._round = 0                 # refill rounds so far
        self._busy = [0] * n            # queues of the pool that hold frames and may be served
        self._heap: list[tuple[int, int, TxQueue]] = []
        self._seq = 0
        self._ready: deque[int] = deque()
        self._rq: list[deque[TxQueue]] = [deque() for _ in range(n)]
        self._neg: list[tuple[int, int, int]] = []   # wrr: (round it turns positive, seq, pool)
        self.blocked: list[TxQueue] = []
        self._gen = -1
        self._wire: dict[int, int] = {}   # frame length -> ns on the wire at _wire_speed
        self._wire_speed = 0
        self._no_fast: list[dict[bytes, object] | None] = [None] * n

    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:  # pragma: no cover
        raise NotImplementedError("use Nic.tx(pool, frames, now_ns)")

    def set_mode(self, mode: str) -> None:
        if mode not in ARBITRATION_MODES:
            raise ValueError(f"TX arbitration {mode!r}: expected one of {ARBITRATION_MODES}")
        self.mode = mode
        self._gen = -1  # rebuild the ready structures for the new discipline

    # -- the busy set ---------------------------------------------------------
    def _rebuild(self) -> None:
        """Configuration changed: place every queue that holds frames and may be served."""
        st = self.state
        self._gen = st.generation
        self._heap = []
        self._ready.clear()
        self._neg = []
        for d in self._rq:
            d.clear()
        self.blocked = []
        was = self._busy
        self._busy = busy = [0] * len(was)
        np = st.num_pools
        on = st.tx_enable
        vfte = st.vfte
        for q in self.queues:
            p = st.pool_of_queue(q.index)
            q.pool = p if p < np else -1
            q.ok = on and q.pool >= 0 and bool((vfte >> p) & 1) and q.enabled
            if q.ok and q.ring:
                self._wait(q, q.eligible_ns())
                busy[p] += 1
        for p in range(len(busy)):
            if was[p] and not busy[p]:
                self._cur(p)
            elif busy[p] and not was[p]:
                self._go_busy(p)

    def _wait(self, q: TxQueue, eligible_ns: int) -> None:
        heappush(self._heap, (eligible_ns, self._seq, q))
        self._seq += 1

    def _cur(self, p: int) -> int:
        """Pool p's credit brought up to the current refill round (wrr)."""
        d = self._round - self._cround[p]
        c = self.credit[p]
        if d:
            r = self.state.pools[p].tx_refill * CREDIT_UNIT
            c = min(c + d * r, 2 * r)
            self.credit[p] = c
            self._cround[p] = self._round
        return c

    def _go_busy(self, p: int) -> None:
        """Pool p has frames again: a refill round while it was idle took its credit."""
        if self._cround[p] < self._round:
            self.credit[p] = 0
            self._cround[p] = self._round

    # -- queues ------------------------------------------------------------------
    def enqueue(self, qi: int, frames: Batch, now_ns: int) -> int:
        q = self.queues[qi]
        ring = q.ring
        n = min(len(frames), q.size - len(ring))
        if n <= 0:
            return 0
        was_empty = not ring
        batch = frames[:n]
        ring.extend([(f, now_ns) for f in batch])
        if now_ns > q.last_ts:
            q.last_ts = now_ns
        q.accepted += n
        q.accepted_bytes += sum(map(len, map(_DATA, batch)))
        if was_empty and q.ok and self._gen == self.state.generation:
            self._wait(q, q.eligible_ns())
            p = q.pool
            self._busy[p] += 1
            if self._busy[p] == 1:
                self._go_busy(p)
        return n

    def wake(self, now_ns: int) -> None:
        """Blocked queues try again (the receiver returned descriptors), from ``now_ns`` on."""
        blocked, self.blocked = self.blocked, []
        for q in blocked:
            e = q.eligible_ns()
            self._wait(q, e if e > now_ns else now_ns)

    def next_ns(self) -> int | None:
        """When a queue that waits becomes eligible (None: nothing waits on time)."""
        if self._gen != self.state.generation:
            self._rebuild()
        if self._ready or self._neg:
            return max(self.wire_free_ns, self.run_ns)
        return self._heap[0][0] if self._heap else None

    # -- service -------------------------------------------------------------------
    def service(self, now_ns: int, limit: int | None = None,
                handle: Handle | None = None, inline: Inline | None = None) -> list[tuple[Frame, int]]:
        """Run the TX engine up to ``now_ns``: every frame whose transmission starts by then.

        Without ``handle``: returns (frame, pool) in wire order.  With it: each frame is
        handed to ``handle(frame, pool, start_ns)`` instead (the list stays empty); a False
        return refuses it: the frame stays at the head of its queue, which is blocked until
        `wake`, and it costs no wire time, credit or rate.  ``handle`` must not call back
        into the arbiter.

        ``inline`` = (headers, out, mark): a frame of pool P without a descriptor tag
        (``vlan`` None) whose first 16 bytes map to ``mark`` in ``headers[P]`` (a dict, or None
        for none) is appended to ``out`` instead of calling ``handle``, as ``handle`` would have
        done with it (the NIC's cache of headers it sends plainly to the wire).
        """
        st = self.state
        if self._gen != st.generation:
            self._rebuild()
        out: list[tuple[Frame, int]] = []
        if handle is None:
            def handle(f: Frame, p: int, t: int) -> bool:
                out.append((f, p))
                return True
        if inline is None:
            fast: list[dict[bytes, object] | None] = self._no_fast
            wapp: Callable[[Frame], None] = _never   # fast has no dicts
            mark: object = None
        else:
            fast, wout, mark = inline
            wapp = wout.append
        heap = self._heap
        ready = self._ready
        rqs = self._rq
        neg = self._neg
        credit = self.credit
        cround = self._cround
        pools = st.pools
        rnd = self._round
        seq = self._seq
        wrr = self.mode == "wrr"
        if self._wire_speed != st.link_speed_bps:
            self._wire_speed = st.link_speed_bps
            self._wire = {}
        wire = self._wire
        lim = -1 if limit is None else limit
        stamp = self.stamp_tx
        burst = self.burst
        t = self.wire_free_ns if self.wire_free_ns > self.run_ns else self.run_ns
        n = shaped = 0
        tat = lag = npb = 0.0
        idle = False
        while True:
            while heap and heap[0][0] <= t:
                q = heappop(heap)[2]
                p = q.pool
                d = rqs[p]
                d.append(q)
                if len(d) == 1:   # the pool has a ready queue again
                    if wrr:
                        c = credit[p]
                        if cround[p] != rnd:   # brought up to this refill round (_cur)
                            rb = pools[p].tx_refill * CREDIT_UNIT
                            c += (rnd - cround[p]) * rb
                            if c > 2 * rb:
                                c = 2 * rb
                            credit[p] = c
                            cround[p] = rnd
                        if c <= 0:   # it waits for the refill round that turns it positive
                            heappush(neg, (rnd + (-c) // (pools[p].tx_refill * CREDIT_UNIT) + 1, seq, p))
                            seq += 1
                            continue
                    ready.append(p)
            if not ready:
                if wrr and neg:
                    # nobody ready has credit: refill rounds until the next pool turns positive
                    target = neg[0][0]
                    self.counters["refills"] += target - rnd
                    self._round = rnd = target
                    while neg and neg[0][0] <= target:
                        ready.append(heappop(neg)[2])
                    continue
                if not heap or heap[0][0] > now_ns:
                    idle = True   # nothing more starts by now_ns
                    break
                t = heap[0][0]  # the wire is idle until the next queue becomes eligible
                continue
            if t > now_ns or n == lim:
                break
            # A turn: q's head frame starts at t.  Its next frames are served in the same run
            # while the top of this loop would pick q again at once (its pool's only ready
            # queue, the pool keeps the turn -- wrr: credit left; rr: the only ready pool --
            # nothing else due by then, not past now_ns or the limit): ``stop`` is the last
            # start time for which that holds.  A next frame that its limiter (or its hand-over
            # time) holds back is waited for in the run too when no other pool could use the
            # wire meanwhile (``alone``).  Otherwise one frame, as the plain loop.
            p = ready[0]
            d = rqs[p]
            q = d.popleft()
            ring = q.ring
            r = q.rate_bps
            if r:
                tat = q.tat
                lag = q.lag_ns
                npb = q.ns_per_byte
            if wrr:
                cr = credit[p]
                if cround[p] != rnd:   # a refill round since (_cur)
                    rb = pools[p].tx_refill * CREDIT_UNIT
                    cr += (rnd - cround[p]) * rb
                    if cr > 2 * rb:
                        cr = 2 * rb
                    credit[p] = cr
                    cround[p] = rnd
            else:
                cr = _NO_CREDIT
            fd = fast[p]
            if not (burst and not d and (wrr or len(ready) == 1)):
                # one frame: another queue or pool has the next turn (the plain loop's step)
                f, ts = ring.popleft()
                if stamp:
                    f.ts_ns = t
                data = f.data
                if fd is not None and f.vlan is None and fd.get(data[:16]) is mark:
                    wapp(f)
                elif not handle(f, p, t):
                    ring.appendleft((f, ts))
                    self._block(q, d, wrr)
                    continue
                else:
                    data = f.data
                nb = len(data)
                if r:
                    fl = t - lag
                    q.tat = tat = (tat if tat > fl else fl) + (nb + WIRE_OVERHEAD) * npb
                try:
                    t += wire[nb]
                except KeyError:
                    t += self._wire_ns(nb)
                n += 1
                if wrr:
                    cr -= nb
                    credit[p] = cr
                if ring:
                    e = ring[0][1]
                    if r:
                        nx = ceil(tat)
                        if nx >= e:
                            e = nx
                            if e > t:
                                shaped += 1
                    if e <= t:
                        d.append(q)
                    else:
                        heappush(heap, (e, seq, q))
                        seq += 1
                else:
                    self._drained(q, p)
            else:
                stop = now_ns if not heap or heap[0][0] > now_ns else heap[0][0] - 1
                alone = len(ready) == 1 and not neg
                left = lim - n   # < 0: no limit
                hok = q.last_ts <= t   # every frame in the ring was handed over by t
                k = 0
                f, ts = ring.popleft()
                while True:
                    if stamp:
                        f.ts_ns = t
                    data = f.data
                    if fd is not None and f.vlan is None and fd.get(data[:16]) is mark:
                        wapp(f)
                    elif not handle(f, p, t):
                        ring.appendleft((f, ts))
                        how = _BLOCKED
                        break
                    else:
                        data = f.data
                    nb = len(data)
                    if r:
                        fl = t - lag
                        tat = (tat if tat > fl else fl) + (nb + WIRE_OVERHEAD) * npb
                    try:
                        t += wire[nb]
                    except KeyError:
                        t += self._wire_ns(nb)
                    k += 1
                    cr -= nb
                    if not ring:
                        how = _DRAINED
                        break
                    # next frame eligible? (its hand-over time, and tat <= t: ceil(tat) <= t)
                    if (hok or ring[0][1] <= t) and (not r or tat <= t):
                        if cr > 0 and t <= stop and k != left:
                            f, ts = ring.popleft()
                            continue
                        how = _ELIGIBLE
                        break
                    e = ring[0][1]
                    if r:
                        nx = ceil(tat)
                        if nx >= e:
                            e = nx
                            shaped += 1
                    if alone and cr > 0 and e <= stop and k != left:
                        t = e   # the wire waits for this queue's next frame: no other queue has one
                        f, ts = ring.popleft()
                        continue
                    how = _WAITING
                    break
                if k:
                    n += k
                    if r:
                        q.tat = tat
                    if wrr:
                        credit[p] = cr
                if how == _WAITING:
                    heappush(heap, (e, seq, q))
                    seq += 1
                elif how == _ELIGIBLE:
                    d.append(q)
                elif how == _DRAINED:
                    self._drained(q, p)
                else:
                    self._block(q, d, wrr)
                    continue
            if wrr:
                if cr <= 0 or not d:
                    ready.popleft()
                    if d:   # out of credit with queues ready: wait for the refill round
                        heappush(neg, (rnd + (-cr) // (pools[p].tx_refill * CREDIT_UNIT) + 1, seq, p))
                        seq += 1
            elif d:
                ready.rotate(-1)
            else:
                ready.popleft()
        self._seq = seq
        self.wire_free_ns = t
        run = now_ns if idle or t > now_ns else t   # else the limit stopped it at t
        if run > self.run_ns:
            self.run_ns = run
        counters = self.counters
        counters["served_packets"] += n
        counters["shaped_waits"] += shaped
        return out

    def _wire_ns(self, nbytes: int) -> int:
        """Time a frame of ``nbytes`` (without FCS) holds the link, rounded up to a ns; cached."""
        ns = -(-(nbytes + WIRE_OVERHEAD) * 8 * _NS // self._wire_speed)
        self._wire[nbytes] = ns
        return ns

    def _block(self, q: TxQueue, d: deque[TxQueue], wrr: bool) -> None:
        """The head frame was refused: the queue waits for `wake`; the pool's turn goes on."""
        self.blocked.append(q)
        self.counters["backpressured"] += 1
        if not d:
            self._ready.popleft()
        elif not wrr:
            self._ready.rotate(-1)

    def _drained(self, q: TxQueue, p: int) -> None:
        self._busy[p] -= 1
        if not self._busy[p]:
            self._cur(p)

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap["served_bytes"] = sum(q.tx_bytes for q in self.queues)
        return snap

    def describe(self) -> dict[str, Any]:
        """The TX rings live here, not as graph queues (docs/architecture.md says why)."""
        return {"tx_rings": len(self.queues), "arbitration": self.mode,
                "backlog_packets": sum(len(q.ring) for q in self.queues)}


    def queue_counters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for q in self.queues:
            out[f"q{q.index}_tx_packets"] = q.tx_packets
            out[f"q{q.index}_tx_bytes"] = q.tx_bytes
        return out
