"""What the policies share: `Policy` (batch loops) and `Ring` (a frame FIFO).

Both exist for the compiled build (mypyc, vswitch/compiled.py) and cost
nothing interpreted:

- `Policy` is a `Scheduler` whose ``enqueue_batch``/``dequeue_batch`` call
  ``self.enqueue``/``self.dequeue`` directly, which compiled is a native call
  per frame (the base class's loop binds the method once, which is the fast
  way interpreted but a Python-level call per frame compiled).
- `Ring` is a FIFO in a list with a head index: compiled, its operations are
  list primitives, where every ``deque`` method is a looked-up Python call.
  Popped slots keep their frame until the ring compacts (once the head has
  passed half the list, or the ring empties), so a ring may hold up to about
  twice its backlog in references.  ``times`` keeps a number per frame (an
  AQM's enqueue time), popped with it.
"""

from __future__ import annotations

from vswitch.core.frame import Frame
from vswitch.core.scheduler import Scheduler

__all__ = ["Policy", "Ring", "IntRing"]

_COMPACT = 64          # compact once the head has passed this many slots and half the list


class Policy(Scheduler):
    """A Scheduler with batch loops that call the native per-frame methods."""

    def enqueue_batch(self, batch: list[Frame], now_ns: int) -> int:
        n = 0
        for f in batch:
            if self.enqueue(f, now_ns):
                n += 1
        return n

    def dequeue_batch(self, n: int, now_ns: int) -> list[Frame]:
        out: list[Frame] = []
        while len(out) < n:
            f = self.dequeue(now_ns)
            if f is None:
                break
            out.append(f)
        return out


class Ring:
    """A FIFO of frames (and, with ``timed``, of one number per frame), in lists with a head index."""

    def __init__(self) -> None:
        self.items: list[Frame] = []
        self.times: list[int] = []
        self.head = 0

    def __len__(self) -> int:
        return len(self.items) - self.head

    def push(self, f: Frame) -> None:
        self.items.append(f)

    def push_timed(self, f: Frame, t: int) -> None:
        self.items.append(f)
        self.times.append(t)

    def first(self) -> Frame:
        """The head frame (the ring must not be empty)."""
        return self.items[self.head]

    def first_time(self) -> int:
        return self.times[self.head]

    def pop(self) -> Frame:
        """Remove and return the head frame (the ring must not be empty)."""
        items = self.items
        i = self.head
        f = items[i]
        i += 1
        if i == len(items):
            items.clear()
            if self.times:
                self.times.clear()
            i = 0
        elif i >= _COMPACT and 2 * i >= len(items):
            del items[:i]
            if self.times:
                del self.times[:i]
            i = 0
        self.head = i
        return f

    def frames(self) -> list[Frame]:
        return self.items[self.head:]


class IntRing:
    """A FIFO of ints (class numbers: a round robin's order), as `Ring` keeps frames."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self.head = 0

    def __len__(self) -> int:
        return len(self.items) - self.head

    def push(self, x: int) -> None:
        self.items.append(x)

    def first(self) -> int:
        return self.items[self.head]

    def pop(self) -> int:
        items = self.items
        i = self.head
        x = items[i]
        i += 1
        if i == len(items):
            items.clear()
            i = 0
        elif i >= _COMPACT and 2 * i >= len(items):
            del items[:i]
            i = 0
        self.head = i
        return x

    def rotate(self) -> None:
        """The first goes to the end."""
        self.push(self.pop())
