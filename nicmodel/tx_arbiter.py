"""TX queues, pool arbitration and per-queue rate limiters.

Element `TxArbiter` (no graph ports: `Nic.tx` enqueues, `Nic.tx_service`
pulls what the wire may carry by ``now_ns``).

Queues.  Each pool owns the same TX queues as RX (profile layout).  A TX ring
has ``size`` descriptors (64..4096, default 512); `enqueue` accepts what fits
and returns the number accepted: a full TX ring back-pressures the sender (the
driver stops its queue), it never drops.

Service (nic-model.md A "TX path" 1).  A queue is served only if TCTL.EN
(``tx_enable``), the pool's VFTE bit and TXDCTL.ENABLE are all set; otherwise
its frames wait (QEMU: VFTE=0 stalls the ring, it does not drop).

Arbitration between pools with a ready head frame:

``rr``   round robin, one frame per pool per turn.
``wrr``  82599-DCB-style credits (experiments.md D): each pool has a refill of
         ``tx_refill`` 64-byte units; a pool sends while its credit is > 0 and
         pays the frame's bytes; when no ready pool has credit left, every
         backlogged pool gets its refill, capped at 2 x refill.  Idle pools
         lose their credit (so a pool cannot save up while it has nothing).
Inside a pool its queues are served round robin.

Rate limit (A "TX path" 4, E.9): per *queue*, ``rate_bps`` (RTTBCNRC rate
factor = link speed / rate).  After a frame starts at t, the queue may start
its next frame at ``t + wire_bits / rate``; frames wait, never drop.

Wire.  A frame occupies the link for ``(len + 24) * 8 / link_speed`` (FCS 4 +
preamble 8 + IFG 12 bytes, as experiments.md B.1).  ``service(now_ns)``
returns every frame whose transmission *starts* at or before ``now_ns``.

Counters: ``served_packets``/``served_bytes`` (frames taken off TX rings), ``shaped_waits``
(times the next frame had to wait for a rate limiter), ``refills``;
per queue ``q<N>_tx_packets``/``q<N>_tx_bytes`` in the snapshot.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from nicmodel.rings import RING_DEFAULT, check_ring_size
from nicmodel.state import NicState
from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import Frame

__all__ = ["TxQueue", "TxArbiter", "WIRE_OVERHEAD", "CREDIT_UNIT", "ARBITRATION_MODES"]

WIRE_OVERHEAD = 24
CREDIT_UNIT = 64
ARBITRATION_MODES = ("rr", "wrr")


class TxQueue:
    __slots__ = ("index", "ring", "size", "enabled", "rate_bps", "next_ns", "tx_packets", "tx_bytes")

    def __init__(self, index: int) -> None:
        self.index = index
        self.ring: deque[tuple[Frame, int]] = deque()
        self.size = RING_DEFAULT
        self.enabled = False
        self.rate_bps = 0  # 0: no limit
        self.next_ns = 0
        self.tx_packets = 0
        self.tx_bytes = 0

    def set_size(self, n: int) -> None:
        self.size = check_ring_size(n, f"TX queue {self.index} ring")

    def set_rate(self, rate_bps: int) -> None:
        self.rate_bps = rate_bps

    def ready_ns(self) -> int:
        return max(self.ring[0][1], self.next_ns)

    def config(self) -> dict[str, Any]:
        return {"size": self.size, "enabled": self.enabled, "rate_bps": self.rate_bps,
                "depth": len(self.ring)}


class TxArbiter(Element):
    INPUTS: ClassVar[tuple[PortId, ...]] = ()
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ()
    COUNTERS = ("served_packets", "served_bytes", "shaped_waits", "refills")

    def __init__(self, name: str, state: NicState, num_queues: int, mode: str = "rr") -> None:
        super().__init__(name)
        self.state = state
        self.queues = [TxQueue(i) for i in range(num_queues)]
        self.mode = ""
        self.set_mode(mode)
        self.wire_free_ns = 0
        self.credit = [0] * len(state.pools)
        self._pool_cursor = 0
        self._queue_cursor = [0] * len(state.pools)

    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:  # pragma: no cover
        raise NotImplementedError("use Nic.tx(pool, frames, now_ns)")

    def set_mode(self, mode: str) -> None:
        if mode not in ARBITRATION_MODES:
            raise ValueError(f"TX arbitration {mode!r}: expected one of {ARBITRATION_MODES}")
        self.mode = mode

    def enqueue(self, qi: int, frames: Batch, now_ns: int) -> int:
        q = self.queues[qi]
        n = max(0, min(len(frames), q.size - len(q.ring)))
        q.ring.extend((f, now_ns) for f in frames[:n])
        return n

    # -- arbitration -------------------------------------------------------
    def _servable(self) -> list[list[TxQueue]]:
        """Per pool, its queues that may be served and hold frames."""
        st = self.state
        out: list[list[TxQueue]] = [[] for _ in range(st.num_pools)]
        if not st.tx_enable:
            return out
        for p in range(st.num_pools):
            if (st.vfte >> p) & 1:
                out[p] = [self.queues[qi] for qi in st.pool_queues(p)
                          if self.queues[qi].enabled and self.queues[qi].ring]
        return out

    def _pick(self, servable: list[list[TxQueue]], t: int) -> TxQueue | None:
        n = len(servable)
        ready = [[q for q in qs if q.ready_ns() <= t] for qs in servable]
        if self.mode == "wrr":
            pool = self._pick_wrr(servable, ready)
        else:
            pool = next(((self._pool_cursor + k) % n for k in range(n)
                         if ready[(self._pool_cursor + k) % n]), None)
            if pool is not None:
                self._pool_cursor = (pool + 1) % n
        if pool is None:
            return None
        qs = ready[pool]
        cur = self._queue_cursor[pool]
        qs_sorted = sorted(qs, key=lambda q: (q.index - cur) % 4096)
        q = qs_sorted[0]
        self._queue_cursor[pool] = q.index + 1
        return q

    def _pick_wrr(self, servable: list[list[TxQueue]], ready: list[list[TxQueue]]) -> int | None:
        n = len(ready)
        if not any(ready):
            return None
        credit = self.state.pools
        while True:
            for k in range(n):
                p = (self._pool_cursor + k) % n
                if ready[p] and self.credit[p] > 0:
                    self._pool_cursor = p
                    return p
            # nobody ready has credit: refill every backlogged pool, forget idle ones
            self.counters["refills"] += 1
            for p in range(n):
                if servable[p]:
                    r = credit[p].tx_refill * CREDIT_UNIT
                    self.credit[p] = min(self.credit[p] + r, 2 * r)
                else:
                    self.credit[p] = 0

    def service(self, now_ns: int, limit: int | None = None) -> list[tuple[Frame, int]]:
        """Frames (with their pool) whose transmission starts by ``now_ns``, in wire order."""
        st = self.state
        speed = st.profile.link_speed_bps
        out: list[tuple[Frame, int]] = []
        t = self.wire_free_ns
        c = self.counters
        t = max(t, 0)
        while limit is None or len(out) < limit:
            servable = self._servable()
            heads = [q for qs in servable for q in qs]
            if not heads:
                break
            earliest = min(q.ready_ns() for q in heads)
            if earliest > t:
                if any(q.next_ns > t and q.ring[0][1] <= t for q in heads):
                    c["shaped_waits"] += 1
                t = earliest
            if t > now_ns:
                break
            q = self._pick(servable, t)
            if q is None:  # pragma: no cover - earliest <= t guarantees a ready queue
                break
            f, _ = q.ring.popleft()
            n = len(f.data)
            bits = (n + WIRE_OVERHEAD) * 8
            if q.rate_bps:
                q.next_ns = t + -(-bits * 1_000_000_000 // q.rate_bps)
            pool = st.pool_of_queue(q.index)
            if self.mode == "wrr":
                self.credit[pool] -= n
                if self.credit[pool] <= 0:
                    self._pool_cursor = (pool + 1) % st.num_pools
            q.tx_packets += 1
            q.tx_bytes += n
            c["served_packets"] += 1
            c["served_bytes"] += n
            t += -(-bits * 1_000_000_000 // speed) if speed else 0
            # the wire is busy until t; a later idle gap is not remembered
            self.wire_free_ns = t
            out.append((f, pool))
        return out

    def queue_counters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for q in self.queues:
            out[f"q{q.index}_tx_packets"] = q.tx_packets
            out[f"q{q.index}_tx_bytes"] = q.tx_bytes
        return out
