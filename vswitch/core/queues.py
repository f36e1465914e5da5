"""Queue: the one push-to-pull boundary of the dataplane.

Elements push into a queue; a driver decides when it is drained.  What the
queue holds and in what order frames leave is its `Scheduler`'s policy
(`Fifo` by default; DRR, fq_codel, shapers and NIC rings plug in the same
way, see ``scheduler.py``).

Element `Queue`
    input ``in``    frames to hold (the scheduler may refuse or drop some);
    output ``out``  what ``drain`` pulls.  A driver may instead ``pull``
                    frames itself (a port's egress queue it writes to a device).
Config: ``scheduler`` (or ``capacity`` packets for a tail-drop FIFO), ``gate``.
Counters, as ``tc -s qdisc`` words them: ``enqueued``, ``sent_packets``,
``sent_bytes``, ``requeues``, ``overlimits`` (a dequeue the scheduler held
back though it had frames: a shaper's throttle), ``max_depth``; the snapshot
adds ``backlog_packets``/``backlog_bytes`` and the scheduler's own counters and
``stats()`` (per-class figures).
Drop reasons: the scheduler's (``queue_full`` for a FIFO).

Readiness.  A queue in a graph tells the graph when it has something a
driver may drain now (``graph.ready``) or when it will have
(``graph.schedule``, for a shaper's next eligible time), so a driver never
polls an idle queue: it drains ``graph.take_ready()`` and sleeps until
``graph.next_deadline_ns()``.  A *gate* stands between a queue and that
signal where the hardware does (a NIC queue's interrupt moderation): the
queue then reports ``gate.enqueued(queue, now_ns)`` and ``gate.drained(queue,
n, budget, now_ns)``, and the gate calls ``queue.wake(now_ns)`` when the
driver should come.
"""

from __future__ import annotations

from collections import deque
from operator import attrgetter
from typing import Any, ClassVar, Protocol

from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import Frame
from vswitch.core.scheduler import Fifo, Scheduler

__all__ = ["Queue", "Gate"]

_DATA = attrgetter("data")


class Gate(Protocol):
    def enqueued(self, queue: Queue, now_ns: int) -> None: ...

    def drained(self, queue: Queue, n: int, budget: int, now_ns: int) -> None: ...


class Queue(Element):
    INPUTS: ClassVar[tuple[PortId, ...]] = ("in",)
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ("out",)
    COUNTERS = ("enqueued", "sent_packets", "sent_bytes", "requeues", "overlimits", "max_depth")

    def __init__(self, name: str, scheduler: Scheduler | None = None, *, capacity: int | None = None,
                 gate: Gate | None = None) -> None:
        if scheduler is not None and capacity is not None:
            raise ValueError(f"queue {name!r}: give a scheduler or a capacity, not both")
        if capacity is not None and capacity < 1:
            raise ValueError(f"queue {name!r}: capacity must be >= 1, got {capacity}")
        super().__init__(name)
        self.scheduler = scheduler if scheduler is not None else Fifo(limit=capacity or 1000)
        self.scheduler.bind(self)
        self.drops.update(dict.fromkeys(self.scheduler.DROP_REASONS, 0))
        self.gate = gate
        # Frames a driver pulled but could not send: they leave first (Linux's requeue slot).
        self._requeued: deque[Frame] = deque()
        self._requeued_bytes = 0

    # -- sizes ---------------------------------------------------------------
    @property
    def backlog_packets(self) -> int:
        return self.scheduler.backlog_packets + len(self._requeued)

    @property
    def backlog_bytes(self) -> int:
        return self.scheduler.backlog_bytes + self._requeued_bytes

    def __len__(self) -> int:
        return self.backlog_packets

    # -- data path -----------------------------------------------------------
    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:
        s = self.scheduler
        accepted = s.enqueue_batch(batch, now_ns)
        c = self.counters
        c["enqueued"] += accepted
        depth = s.backlog_packets + len(self._requeued)
        if depth > c["max_depth"]:
            c["max_depth"] = depth
        if accepted:
            if self.gate is not None:
                self.gate.enqueued(self, now_ns)
            else:
                self.wake(now_ns)

    def pull(self, n: int, now_ns: int) -> Batch:
        """Up to ``n`` frames the scheduler lets leave at ``now_ns``."""
        out: Batch = []
        rq = self._requeued
        while rq and len(out) < n:
            f = rq.popleft()
            self._requeued_bytes -= len(f.data)
            out.append(f)
        if len(out) < n:
            want = n - len(out)
            got = self.scheduler.dequeue_batch(want, now_ns)
            if out:
                out.extend(got)
            else:
                out = got            # (the scheduler's list is the queue's to hand on)
            if len(got) < want and self.scheduler.backlog_packets:
                self.counters["overlimits"] += 1     # it held frames back: a shaper's throttle
        c = self.counters
        c["sent_packets"] += len(out)
        c["sent_bytes"] += sum(map(len, map(_DATA, out)))      # C loops: per frame, no Python frame
        return out

    def drain(self, budget: int, now_ns: int) -> int:
        """Pull up to ``budget`` frames and emit them on ``out``; returns how many."""
        batch = self.pull(budget, now_ns)
        self.emit("out", batch, now_ns)
        if self.gate is not None:
            self.gate.drained(self, len(batch), budget, now_ns)
        elif batch:
            self.wake(now_ns)
        return len(batch)

    def requeue_front(self, batch: Batch) -> None:
        """Put back frames a driver pulled but could not send (device busy); they leave first."""
        self._requeued.extendleft(reversed(batch))
        nbytes = sum([len(f.data) for f in batch])
        self._requeued_bytes += nbytes
        c = self.counters
        c["requeues"] += len(batch)
        c["sent_packets"] -= len(batch)
        c["sent_bytes"] -= nbytes

    # -- readiness -------------------------------------------------------------
    def next_eligible_ns(self, now_ns: int) -> int | None:
        return now_ns if self._requeued else self.scheduler.next_eligible_ns(now_ns)

    def wake(self, now_ns: int) -> None:
        """Tell the graph when this queue can next be drained (now, later, or not at all)."""
        g = self.graph
        if g is None:
            return
        t = self.next_eligible_ns(now_ns)
        if t is None:
            return
        if t <= now_ns:
            g.ready(self)
        else:
            g.schedule(self, t)

    def on_deadline(self, now_ns: int) -> None:
        self.wake(now_ns)

    # -- counters ----------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"kind": "queue", "scheduler": self.scheduler.KIND, "backlog_packets": self.backlog_packets,
                "backlog_bytes": self.backlog_bytes,
                "idle": not self.counters["enqueued"] and not self.backlog_packets}

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap["backlog_packets"] = self.backlog_packets
        snap["backlog_bytes"] = self.backlog_bytes
        snap["scheduler"] = {"kind": self.scheduler.KIND, **self.scheduler.config(),
                             **self.scheduler.counters, **self.scheduler.stats()}
        return snap
