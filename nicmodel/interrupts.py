"""Interrupt moderation and NAPI-style polling, one MSI-X vector per RX queue.

Element `Interrupts` (no graph ports).  Config per queue, as ``ethtool -C``:

``rx_usecs``   delay timer: an interrupt fires ``rx_usecs`` after the first
               frame not yet signalled (0: no time-based delay).
``rx_frames``  frame count: an interrupt fires once that many frames wait
               (0: no count threshold).
With both 0 every frame interrupts at once.  With only ``rx_frames`` set the
interrupt waits for the count (as a driver with the timer disabled would);
with both set, whichever comes first.

NAPI: raising an interrupt masks the vector (the driver schedules a poll).
``poll(q, budget=64)`` takes at most ``budget`` frames; a poll that returns
fewer than ``budget`` completes NAPI and re-arms the vector, a full one keeps
it masked so the driver polls again (this is how NAPI caps the interrupt rate
at high load).  Time is data: ``note_rx``/``expire``/``note_poll`` take ``now_ns``;
``next_deadline_ns()`` tells a discrete driver when the next timer expires.

Counters: ``interrupts`` (raised), ``polls`` (run), ``poll_frames``,
``budget_exhausted`` (polls that used the whole budget), and per queue
``q<N>_interrupts`` / ``q<N>_polls`` in the snapshot.  No drop reasons.
"""

from __future__ import annotations

from typing import Any, ClassVar

from vswitch.core.element import Batch, Element, PortId

__all__ = ["Vector", "Interrupts", "NAPI_BUDGET"]

NAPI_BUDGET = 64


class Vector:
    """One queue's vector.  Its ``rx_usecs`` and ``rx_frames`` are set through
    `Interrupts.set_coalesce`, which keeps the list of vectors with a timer."""

    __slots__ = ("queue", "rx_usecs", "rx_frames", "masked", "pending", "first_ns",
                 "interrupts", "polls")

    def __init__(self, queue: int) -> None:
        self.queue = queue
        self.rx_usecs = 0
        self.rx_frames = 0
        self.masked = False
        self.pending = 0
        self.first_ns = 0
        self.interrupts = 0
        self.polls = 0

    def deadline_ns(self) -> int | None:
        if self.masked or not self.pending or not self.rx_usecs:
            return None
        return self.first_ns + self.rx_usecs * 1000


class Interrupts(Element):
    INPUTS: ClassVar[tuple[PortId, ...]] = ()
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ()
    COUNTERS = ("interrupts", "polls", "poll_frames", "budget_exhausted")

    def __init__(self, name: str, num_queues: int) -> None:
        super().__init__(name)
        self.vectors = [Vector(i) for i in range(num_queues)]
        # The vectors with a delay timer (rx_usecs, set by set_coalesce): only they can have a
        # deadline, so the graph's question after every batch looks at them only (none by default).
        self._timed: list[Vector] = []

    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:  # pragma: no cover
        raise NotImplementedError("Interrupts has no inputs")

    def set_coalesce(self, queue: int, rx_usecs: int | None = None, rx_frames: int | None = None) -> None:
        v = self.vectors[queue]
        if rx_usecs is not None:
            if rx_usecs < 0:
                raise ValueError(f"rx-usecs must be >= 0, got {rx_usecs}")
            v.rx_usecs = rx_usecs
            self._timed = [w for w in self.vectors if w.rx_usecs]
        if rx_frames is not None:
            if rx_frames < 0:
                raise ValueError(f"rx-frames must be >= 0, got {rx_frames}")
            v.rx_frames = rx_frames

    def _fire(self, v: Vector) -> None:
        v.masked = True
        v.pending = 0
        v.interrupts += 1
        self.counters["interrupts"] += 1

    def note_rx(self, queue: int, depth: int, now_ns: int) -> bool:
        """Frames were written to ``queue`` (``depth`` now wait); True if that raised an interrupt."""
        v = self.vectors[queue]
        if v.masked or not depth:
            return False  # NAPI is polling this queue: no interrupt
        if not v.pending:
            v.first_ns = now_ns
        v.pending = depth
        if ((v.rx_frames and v.pending >= v.rx_frames)
                or (not v.rx_frames and not v.rx_usecs)
                or (v.rx_usecs and now_ns - v.first_ns >= v.rx_usecs * 1000)):
            self._fire(v)
            return True
        return False

    def expire(self, now_ns: int) -> list[int]:
        """Fire every vector whose delay timer has expired; returns their queues."""
        fired = []
        for v in self._timed:
            dl = v.deadline_ns()
            if dl is not None and dl <= now_ns:
                self._fire(v)
                fired.append(v.queue)
        return fired

    def next_deadline_ns(self) -> int | None:
        if not self._timed:
            return None
        dls = [d for v in self._timed if (d := v.deadline_ns()) is not None]
        return min(dls) if dls else None

    def note_poll(self, queue: int, got: int, budget: int) -> None:
        v = self.vectors[queue]
        v.polls += 1
        c = self.counters
        c["polls"] += 1
        c["poll_frames"] += got
        if got >= budget:
            c["budget_exhausted"] += 1
            v.masked = True  # stays scheduled: the driver must poll again
        else:
            v.masked = False  # napi_complete_done: re-arm the vector
            v.pending = 0

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        for v in self.vectors:
            snap[f"q{v.queue}_interrupts"] = v.interrupts
            snap[f"q{v.queue}_polls"] = v.polls
        return snap
