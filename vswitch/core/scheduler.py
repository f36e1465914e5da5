"""Scheduler: the policy inside a `Queue` (which frame leaves next, which is dropped).

A `Queue` is the graph's push-to-pull boundary; what it holds, and in what
order frames leave it, is its scheduler's business.  The protocol is small so
that a queue policy (DRR, fq_codel, a token-bucket shaper, a NIC ring) is one
class in one file, plugged into any queue without touching the drivers:

``enqueue(frame, now_ns) -> bool``
    take a frame; False if it was refused (the scheduler has already counted
    the drop with ``self.drop(frame, reason)``).  An AQM may drop another
    frame instead (head drop); every frame the scheduler lets go of without
    dequeueing it goes through ``drop``.
``enqueue_batch(batch, now_ns) -> int``
    the same for a batch, returning how many it took (override it where a
    batch can be taken faster).
``dequeue(now_ns) -> Frame | None`` (and ``dequeue_batch(n, now_ns)``)
    the next frame to send, or None when nothing may leave *now* (empty, or
    a shaper's head not yet eligible).  Time comes in on both sides, so a
    policy such as CoDel can see a frame's sojourn time (``now_ns - frame.ts_ns``
    is the time since the frame entered the dataplane; a scheduler that needs
    its own enqueue time keeps it).
``next_eligible_ns(now_ns) -> int | None``
    when a dequeue could next return a frame: ``now_ns`` (or earlier) if one
    may leave now, a later time for a shaper that must wait, None when empty.
    The queue asks the graph to wake it then.
``backlog_packets`` / ``backlog_bytes``
    what it holds now.
``stats() -> dict``
    figures that are not counters (per-class sent/dropped/backlog, a flow
    list's length, CoDel's state), computed when the queue's snapshot asks.

A scheduler declares ``COUNTERS`` and ``DROP_REASONS`` like an element; its
queue adopts them, so they appear in the queue's snapshot and in the drop
counters of ``graph.snapshot()``.  It must bound its buffer (packets, bytes
or both): every scheduler buffer is finite.

`Fifo` is the default: a packet and/or byte limit with tail drop (``drop =
"tail"``, pfifo/bfifo) or head drop (``"head"``, pfifo_head_drop).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, ClassVar

from mypy_extensions import mypyc_attr

from vswitch.core.frame import Frame

if TYPE_CHECKING:
    from vswitch.core.queues import Queue

__all__ = ["Scheduler", "Fifo", "DROP_MODES"]

DROP_MODES = ("tail", "head")


# Compiled with mypyc (vswitch/compiled.py), as the policies in vswitch/core/policies are;
# interpreted subclasses (the NIC model's rings, tests) are allowed.
@mypyc_attr(allow_interpreted_subclasses=True)
class Scheduler:
    """Base class of queue policies; see the module docstring for the protocol."""

    COUNTERS: ClassVar[tuple[str, ...]] = ()
    DROP_REASONS: ClassVar[tuple[str, ...]] = ()
    KIND: ClassVar[str] = "scheduler"       # the name `qdisc show` prints (tc's kind)

    def __init__(self) -> None:
        self.queue: Queue | None = None
        self.counters: dict[str, int] = dict.fromkeys(self.COUNTERS, 0)
        self._backlog_packets = 0
        self._backlog_bytes = 0

    # What it holds now: kept in these attributes, or computed by a subclass that overrides
    # the properties.  Properties rather than plain attributes because this class is
    # compiled: compiled code reads a plain attribute from its slot, past an interpreted
    # subclass's property (a NIC ring computes its backlog from the ring).
    @property
    def backlog_packets(self) -> int:
        return self._backlog_packets

    @backlog_packets.setter
    def backlog_packets(self, n: int) -> None:
        self._backlog_packets = n

    @property
    def backlog_bytes(self) -> int:
        return self._backlog_bytes

    @backlog_bytes.setter
    def backlog_bytes(self, n: int) -> None:
        self._backlog_bytes = n

    def bind(self, queue: Queue) -> None:
        """Called once by the queue that owns this scheduler."""
        if self.queue is not None and self.queue is not queue:
            raise ValueError(f"{type(self).__name__} already belongs to queue {self.queue.name!r}")
        self.queue = queue

    def drop(self, frame: Frame, reason: str) -> None:
        """Let go of a frame without sending it, under a declared reason (counted by the queue)."""
        assert self.queue is not None, "a scheduler drops through the queue it is bound to"
        self.queue.drop(frame, reason)

    def enqueue(self, frame: Frame, now_ns: int) -> bool:
        raise NotImplementedError(f"{type(self).__name__}.enqueue")

    def enqueue_batch(self, batch: list[Frame], now_ns: int) -> int:
        enqueue = self.enqueue
        n = 0
        for f in batch:
            if enqueue(f, now_ns):
                n += 1
        return n

    def dequeue(self, now_ns: int) -> Frame | None:
        raise NotImplementedError(f"{type(self).__name__}.dequeue")

    def dequeue_batch(self, n: int, now_ns: int) -> list[Frame]:
        """Up to ``n`` frames, as ``n`` dequeues would give them (override where faster), in a
        new list: the caller's to keep or hand on."""
        out: list[Frame] = []
        dequeue = self.dequeue
        while len(out) < n:
            f = dequeue(now_ns)
            if f is None:
                break
            out.append(f)
        return out

    def next_eligible_ns(self, now_ns: int) -> int | None:
        return now_ns if self.backlog_packets else None

    def config(self) -> dict[str, object]:
        """The policy's parameters, as `qdisc show` prints them."""
        return {}

    def stats(self) -> dict[str, object]:
        """Figures beyond the counters (per class, per flow list), for the queue's snapshot."""
        return {}


class Fifo(Scheduler):
    """First in, first out, bounded by ``limit`` packets and/or ``limit_bytes`` bytes.

    ``drop="tail"`` refuses the arriving frame when full (pfifo/bfifo);
    ``drop="head"`` drops the oldest frames to make room (pfifo_head_drop).
    Drop reason: ``queue_full``.
    """

    DROP_REASONS = ("queue_full",)
    KIND = "fifo"

    def __init__(self, limit: int | None = 1000, limit_bytes: int | None = None, drop: str = "tail") -> None:
        if limit is None and limit_bytes is None:
            raise ValueError("a FIFO needs a limit: packets (limit) or bytes (limit_bytes)")
        if limit is not None and limit < 1:
            raise ValueError(f"FIFO limit must be >= 1 packet, got {limit}")
        if limit_bytes is not None and limit_bytes < 1:
            raise ValueError(f"FIFO limit_bytes must be >= 1, got {limit_bytes}")
        if drop not in DROP_MODES:
            raise ValueError(f"FIFO drop must be one of {DROP_MODES}, got {drop!r}")
        super().__init__()
        self.backlog_packets = 0
        self.backlog_bytes = 0
        self.limit = limit
        self.limit_bytes = limit_bytes
        self.head_drop = drop == "head"
        self._q: deque[Frame] = deque()

    def _fits(self, n: int) -> bool:
        return ((self.limit is None or self.backlog_packets < self.limit)
                and (self.limit_bytes is None or self.backlog_bytes + n <= self.limit_bytes))

    def enqueue(self, frame: Frame, now_ns: int) -> bool:
        n = len(frame.data)
        if not self._fits(n):
            if not self.head_drop or (self.limit_bytes is not None and n > self.limit_bytes):
                self.drop(frame, "queue_full")
                return False
            q = self._q
            while q and not self._fits(n):
                old = q.popleft()
                self.backlog_packets -= 1
                self.backlog_bytes -= len(old.data)
                self.drop(old, "queue_full")
        self._q.append(frame)
        self.backlog_packets += 1
        self.backlog_bytes += n
        return True

    def enqueue_batch(self, batch: list[Frame], now_ns: int) -> int:
        # The common case, a packet limit with room for the whole batch, in one extend.
        if (self.limit_bytes is None and self.limit is not None
                and self.backlog_packets + len(batch) <= self.limit):
            self._q.extend(batch)
            self.backlog_packets += len(batch)
            self.backlog_bytes += sum([len(f.data) for f in batch])
            return len(batch)
        return super().enqueue_batch(batch, now_ns)

    def dequeue(self, now_ns: int) -> Frame | None:
        q = self._q
        if not q:
            return None
        f = q.popleft()
        self.backlog_packets -= 1
        self.backlog_bytes -= len(f.data)
        return f

    def config(self) -> dict[str, object]:
        d: dict[str, object] = {"drop": "head" if self.head_drop else "tail"}
        if self.limit is not None:
            d["limit"] = self.limit
        if self.limit_bytes is not None:
            d["limit_bytes"] = self.limit_bytes
        return d
