"""Classful: the part every class-based scheduler shares (prio, rr, wrr, drr, wfq).

A `Classifier` puts each arriving frame in one of ``classes`` classes; each
class holds its frames in its own FIFO, bounded by ``limit`` packets and/or
``limit_bytes`` bytes per class (Linux gives each class a pfifo child of
txqueuelen packets, 1000).  A frame that would overflow its class is
refused: drop reason ``queue_full``.  Which class sends next is the
subclass's policy: ``activate(c)`` is called when class ``c`` becomes
backlogged, ``take(c)`` hands out its head frame.

Per-class figures (``stats()["per_class"]``, as ``tc -s class show``):
``sent_packets``, ``sent_bytes`` (frames dequeued: a frame the driver
requeues is counted once, as Linux's class counters do), ``dropped``,
``backlog_packets``, ``backlog_bytes``, plus the policy's own (a DRR class's
``deficit``).
"""

from __future__ import annotations

from vswitch.core.frame import Frame
from vswitch.core.policies.base import Policy, Ring
from vswitch.core.policies.classify import Classifier
from vswitch.core.policies.params import Param

__all__ = ["Classful", "ClassQueue", "LIMIT_PARAMS"]

LIMIT = 1000        # Linux: a class's default pfifo holds txqueuelen packets

LIMIT_PARAMS = (
    Param("limit", "int", LIMIT, "packets each class may hold (none: bytes only)", unit="packets",
          range=(1, 1 << 30), linux="the default child pfifo's limit, txqueuelen"),
    Param("limit_bytes", "size", None, "bytes each class may hold (none: packets only)", range=(1, 1 << 40)),
)


class ClassQueue(Ring):
    """One class: its frames, and its figures as native fields (a list of ints would box them)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.sent_packets = 0
        self.sent_bytes = 0
        self.dropped = 0
        self.weight = 1
        self.quantum = 0           # drr
        self.deficit = 0           # drr
        self.finish = 0            # wfq: the finish tag of its last frame


class Classful(Policy):
    """Frames in per-class bounded FIFOs; a subclass says which class sends next."""

    DROP_REASONS = ("queue_full",)

    def __init__(self, classifier: Classifier, limit: int | None = LIMIT, limit_bytes: int | None = None) -> None:
        if limit is None and limit_bytes is None:
            raise ValueError("limit: a class needs a limit: packets (limit) or bytes (limit_bytes)")
        if limit is not None and limit < 1:
            raise ValueError(f"limit {limit}: must be >= 1 packet")
        if limit_bytes is not None and limit_bytes < 1:
            raise ValueError(f"limit_bytes {limit_bytes}: must be >= 1")
        super().__init__()
        n = classifier.classes
        self.classifier = classifier
        self.nclasses = n
        self.limit = limit
        self.limit_bytes = limit_bytes
        self._plimit = limit if limit is not None else 0          # 0: no packet limit
        self._blimit = limit_bytes if limit_bytes is not None else 0
        self._q: list[ClassQueue] = [ClassQueue() for _ in range(n)]

    # -- the data path ---------------------------------------------------------------
    def enqueue(self, frame: Frame, now_ns: int) -> bool:
        return self.admit(frame, self.classifier.classify(frame))

    def admit(self, frame: Frame, c: int) -> bool:
        """Put ``frame`` in class ``c`` if it fits (else drop it, ``queue_full``)."""
        q = self._q[c]
        n = len(frame.data)
        if (self._plimit and len(q) >= self._plimit) or (self._blimit and q.bytes + n > self._blimit):
            q.dropped += 1
            self.drop(frame, "queue_full")
            return False
        q.push(frame)
        q.bytes += n
        self._backlog_packets += 1
        self._backlog_bytes += n
        if len(q) == 1:
            self.activate(c)
        return True

    def activate(self, c: int) -> None:
        """Class ``c`` has just become backlogged."""

    def take(self, c: int) -> Frame:
        """Dequeue class ``c``'s head frame (it must have one) and count it."""
        q = self._q[c]
        f = q.pop()
        n = len(f.data)
        q.bytes -= n
        self._backlog_packets -= 1
        self._backlog_bytes -= n
        q.sent_packets += 1
        q.sent_bytes += n
        return f

    # -- figures ----------------------------------------------------------------------
    def class_backlog(self, c: int) -> tuple[int, int]:
        """(packets, bytes) class ``c`` holds now."""
        return len(self._q[c]), self._q[c].bytes

    def class_stats(self, c: int) -> dict[str, object]:
        """The policy's own figures for class ``c`` (a subclass adds to them)."""
        return {}

    def stats(self) -> dict[str, object]:
        classes: dict[str, object] = {}
        for c in range(self.nclasses):
            q = self._q[c]
            d: dict[str, object] = {"sent_packets": q.sent_packets, "sent_bytes": q.sent_bytes,
                                    "dropped": q.dropped, "backlog_packets": len(q), "backlog_bytes": q.bytes}
            d.update(self.class_stats(c))
            classes[str(c)] = d
        return {"per_class": classes}

    def config(self) -> dict[str, object]:
        d = self.classifier.config()
        d["classes"] = self.nclasses
        if self.limit is not None:
            d["limit"] = self.limit
        if self.limit_bytes is not None:
            d["limit_bytes"] = self.limit_bytes
        return d
