"""Queue: the one push-to-pull boundary of the dataplane.

Elements push into a queue; a driver decides when to ``pull`` (the live
driver from an asyncio task when the device is writable, replay after each
batch, a simulation when its server is free).

Input ``in``; no outputs (the driver pulls).  Config: ``capacity`` frames
(tail drop).  Counters: ``enqueued``, ``dequeued``, ``max_depth``; drop
reason ``queue_full``.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from vswitch.core.element import Batch, Element, PortId


class Queue(Element):
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ()
    COUNTERS = ("enqueued", "dequeued", "max_depth")
    DROP_REASONS = ("queue_full",)

    def __init__(self, name: str, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ValueError(f"queue {name!r}: capacity must be >= 1, got {capacity}")
        super().__init__(name)
        self.capacity = capacity
        self._q: deque = deque()

    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:
        room = self.capacity - len(self._q)
        if room >= len(batch):
            self._q.extend(batch)
            n = len(batch)
        else:
            n = max(room, 0)
            self._q.extend(batch[:n])
            self.drop_many(batch[n:], "queue_full")
        c = self.counters
        c["enqueued"] += n
        if len(self._q) > c["max_depth"]:
            c["max_depth"] = len(self._q)

    def pull(self, n: int) -> Batch:
        q = self._q
        k = min(n, len(q))
        out = [q.popleft() for _ in range(k)]
        self.counters["dequeued"] += k
        return out

    def requeue_front(self, batch: Batch) -> None:
        """Put back frames a driver pulled but could not send (device busy)."""
        self._q.extendleft(reversed(batch))
        self.counters["dequeued"] -= len(batch)

    def __len__(self) -> int:
        return len(self._q)

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap["depth"] = len(self._q)
        return snap
