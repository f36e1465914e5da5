"""fq_codel: flow queueing with CoDel on each flow, as RFC 8290 and Linux's sch_fq_codel.c.

Each arriving frame goes to one of ``flows`` queues by a key (default: the
5-tuple hash, spread over the flows as Linux's reciprocal_scale; any
classifier key may be named, e.g. ``port`` for one queue per guest), with its
enqueue time recorded.  A flow that was not on either list joins the end of
the *new* list with a deficit of ``quantum`` bytes (``new_flow_count``).

Dequeue (RFC 8290 section 4.2): take the first flow of the new list, or if
that is empty of the old list.  A flow whose deficit is used up gets another
quantum and moves to the end of the old list.  Otherwise CoDel (``codel.py``)
dequeues from it, dropping or ECN-marking on its own sojourn times; if the
flow turns out empty, a *new* flow moves to the end of the old list (when
the old list is not empty: so a flow cannot stay "new" by emptying and
refilling), an old one leaves the lists.  So a sparse flow (one that sends
less than a quantum per round) has its frames sent before a backlogged
flow's, and each backlogged flow gets a quantum per round.

When the queue holds more than ``limit`` frames, or more than
``memory_limit`` bytes, the flow with the largest backlog (in bytes; the
lowest index among equals) loses frames from its head: up to ``drop_batch``
of them, until half of its backlog is gone (tc: ``drop_overlimit``, and
``drop_overmemory`` when memory was the reason); its CoDel ``count`` grows by
as many, so its control law tightens, as Linux does.  If that took the
arriving frame itself (its flow had nothing else), the enqueue reports it
refused.  If the bytes are still over ``memory_limit`` after that batch, the
fattest flow then loses another batch, until the queue fits.

Departures from Linux: the memory limit is a bound (Linux drops one batch per
enqueue and may stay over it); ``memory_limit`` counts frame bytes (Linux counts each
skb's truesize, about 1.5-3x a frame's length); flows are hashed with CRC-32
(deterministic) instead of a random-seeded jhash; no ``ce_threshold``.

Counters: ``new_flow_count``, ``ecn_mark``, ``drop_overlimit``,
``drop_overmemory``.  Drop reasons: ``codel_drop`` (CoDel), ``queue_full``
(limit or memory).  ``stats()``: ``maxpacket``, ``memory_used``,
``new_flows_len``, ``old_flows_len``, and ``per_flow``: per active flow its
``backlog_packets``/``backlog_bytes``, ``deficit`` and CoDel state.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from vswitch.core.frame import Frame
from vswitch.core.policies.classify import KEYS, Classifier
from vswitch.core.policies.codel import INTERVAL, MTU, TARGET, CodelFlow, CodelScheduler
from vswitch.core.policies.params import Param

__all__ = ["FqCodel"]

LIMIT = 10240
FLOWS = 1024
QUANTUM = 1514              # MTU + 14
MEMORY_LIMIT = 32 << 20     # 32 MB
DROP_BATCH = 64


class FqCodel(CodelScheduler):
    """Flow queueing with per-flow CoDel; see the module docstring."""

    KIND = "fq_codel"
    COUNTERS = ("new_flow_count", "ecn_mark", "drop_overlimit", "drop_overmemory")
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("limit", "int", LIMIT, "frames the whole queue may hold", unit="packets", range=(1, 1 << 30)),
        Param("flows", "int", FLOWS, "number of flow queues", range=(1, 65536)),
        Param("quantum", "size", QUANTUM, "bytes a flow may send per round (MTU + 14)", range=(256, 1 << 30),
              linux="tc refuses less than 256"),
        Param("target", "time", TARGET, "acceptable standing sojourn time of a flow", range=(1, 10**12)),
        Param("interval", "time", INTERVAL, "how long a flow's sojourn may stay above target before CoDel "
              "drops", range=(1, 10**12)),
        Param("memory_limit", "size", MEMORY_LIMIT, "bytes the whole queue may hold", range=(1, 1 << 40),
              linux="Linux counts skb truesize; here frame bytes"),
        Param("ecn", "bool", True, "mark ECN-capable frames with CE instead of dropping them"),
        Param("drop_batch", "int", DROP_BATCH, "most frames dropped at once from the fattest flow when full",
              range=(1, 1 << 20)),
        Param("mtu", "size", MTU, "a queue holding this many bytes or fewer is never dropped from by CoDel",
              range=(0, 1 << 20)),
        Param("classify", "choice", "flow", "what puts a frame in a flow: " + ", ".join(KEYS), choices=KEYS),
    )

    def __init__(self, limit: int = LIMIT, flows: int = FLOWS, quantum: int = QUANTUM, target: int = TARGET,
                 interval: int = INTERVAL, memory_limit: int = MEMORY_LIMIT, ecn: bool = True,
                 drop_batch: int = DROP_BATCH, mtu: int = MTU, classify: str = "flow") -> None:
        if limit < 1:
            raise ValueError(f"limit {limit}: must be >= 1 packet")
        if not 1 <= flows <= 65536:
            raise ValueError(f"flows {flows}: must be 1-65536")
        if quantum < 1:
            raise ValueError(f"quantum {quantum}: must be >= 1 byte")
        if memory_limit < 1:
            raise ValueError(f"memory_limit {memory_limit}: must be >= 1 byte")
        if drop_batch < 1:
            raise ValueError(f"drop_batch {drop_batch}: must be >= 1")
        super().__init__(target, interval, mtu, ecn)
        self.limit = limit
        self.nflows = flows
        self.quantum = quantum
        self.memory_limit = memory_limit
        self.drop_batch = drop_batch
        self.classifier = Classifier(classify, flows)
        self._flows: list[CodelFlow | None] = [None] * flows      # made when first used
        self._new: deque[CodelFlow] = deque()
        self._old: deque[CodelFlow] = deque()

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> FqCodel:
        return cls(p["limit"], p["flows"], p["quantum"], p["target"], p["interval"], p["memory_limit"], p["ecn"],
                   p["drop_batch"], p["mtu"], p["classify"])

    def flow(self, index: int) -> CodelFlow:
        fl = self._flows[index]
        if fl is None:
            fl = CodelFlow(index)
            self._flows[index] = fl
        return fl

    # -- the data path --------------------------------------------------------------------
    def enqueue(self, frame: Frame, now_ns: int) -> bool:
        idx = self.classifier.classify(frame)
        fl = self._flows[idx]
        if fl is None:
            fl = self.flow(idx)
        n = len(frame.data)
        fl.frames.push_timed(frame, now_ns)
        fl.bytes += n
        self._backlog_packets += 1
        self._backlog_bytes += n
        self.memory += n
        if fl.chain == 0:
            fl.chain = 1
            fl.deficit = self.quantum
            self._new.append(fl)
            self.counters["new_flow_count"] += 1
        if self._backlog_packets <= self.limit and self.memory <= self.memory_limit:
            return True
        over_memory = self.memory > self.memory_limit
        dropped = self._drop_fattest()
        # One batch from the fattest flow can leave the bytes over memory_limit (it stops at half
        # that flow's backlog); Linux then holds more than its limit until the next enqueue.  The
        # model keeps the limit a bound: it drops batches until the queue fits.
        while self.memory > self.memory_limit:
            dropped += self._drop_fattest()
        c = self.counters
        c["drop_overlimit"] += dropped
        if over_memory:
            c["drop_overmemory"] += dropped
        return len(fl.frames) > 0          # an empty flow: the frame itself was dropped

    def _drop_fattest(self) -> int:
        """Drop from the head of the flow with the largest backlog: up to drop_batch frames, until
        half its bytes are gone.  Returns how many were dropped."""
        fat: CodelFlow | None = None
        for lst in (self._new, self._old):
            for fl in lst:
                if fat is None or fl.bytes > fat.bytes or (fl.bytes == fat.bytes and fl.index < fat.index):
                    fat = fl
        assert fat is not None
        threshold = fat.bytes >> 1
        gone = 0
        i = 0
        while len(fat.frames):
            f = fat.frames.pop()
            n = len(f.data)
            gone += n
            fat.bytes -= n
            self._backlog_packets -= 1
            self._backlog_bytes -= n
            self.memory -= n
            self.drop(f, "queue_full")
            i += 1
            if i >= self.drop_batch or gone >= threshold:
                break
        fat.count += i              # tell CoDel to signal harder (Linux)
        return i

    def dequeue(self, now_ns: int) -> Frame | None:
        new = self._new
        old = self._old
        while True:
            if new:
                head = new
            elif old:
                head = old
            else:
                return None
            fl = head[0]
            if fl.deficit <= 0:
                fl.deficit += self.quantum
                head.popleft()
                old.append(fl)
                fl.chain = 2
                continue
            f = self._codel_dequeue(fl, now_ns)
            if f is None:
                head.popleft()
                if head is new and old:
                    old.append(fl)       # force a pass through the old list (no starving it)
                    fl.chain = 2
                else:
                    fl.chain = 0
                continue
            fl.deficit -= len(f.data)
            return f

    # -- figures --------------------------------------------------------------------------
    def stats(self) -> dict[str, object]:
        flows: dict[str, object] = {}
        for lst in (self._new, self._old):
            for fl in lst:
                d = fl.state()
                d["backlog_packets"] = len(fl.frames)
                d["backlog_bytes"] = fl.bytes
                d["deficit"] = fl.deficit
                d["list"] = "new" if fl.chain == 1 else "old"
                flows[str(fl.index)] = d
        return {"maxpacket": self.maxpacket, "memory_used": self.memory, "new_flows_len": len(self._new),
                "old_flows_len": len(self._old), "per_flow": flows}

    def config(self) -> dict[str, object]:
        return {"limit": self.limit, "flows": self.nflows, "quantum": self.quantum, "target": self.target,
                "interval": self.interval, "memory_limit": self.memory_limit, "ecn": self.ecn,
                "drop_batch": self.drop_batch, "mtu": self.mtu, "classify": self.classifier.key}
