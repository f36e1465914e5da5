"""CoDel (``codel``): controlled delay, as RFC 8289's pseudocode and Linux's codel.h have it.

The scheduler records each frame's enqueue time; at dequeue the frame's
*sojourn time* is ``now_ns`` minus that time.  CoDel works on the sojourn of
the frames it dequeues:

- while the sojourn is below ``target`` (or the queue holds no more than
  ``mtu`` bytes), nothing happens;
- once it has stayed at or above ``target`` for ``interval``, CoDel enters its
  *dropping state*: it drops that frame (and sends the next), and schedules
  the next drop at ``interval / sqrt(count)`` later (the control law), drop
  after drop, with ``count`` growing, for as long as the sojourn stays above
  ``target``;
- a dequeued frame whose sojourn is below ``target`` ends the dropping state.
  Re-entering it within 16 intervals resumes with ``count`` set to the drops
  of the last episode beyond the one before it (``count - lastcount``), as
  the RFC says, so a persistent queue is not let off lightly.

With ``ecn``, a frame CoDel would drop is marked CE instead if it is
ECN-capable (IPv4 checksum updated), and sent (Linux's behaviour).

`CodelFlow` is one such queue with its state; `CodelScheduler` holds the
algorithm and is shared by `CoDel` (one queue, a packet limit with tail
drop) and fq_codel (one CodelFlow per flow).  The "queue holds no more than
mtu bytes" test uses the whole scheduler's backlog, as Linux's fq_codel does
(the RFC says ``maxpacket``, the largest frame seen; Linux uses the device's
MTU plus its header, 1514 by default: ``mtu`` here).

Counters: ``ecn_mark``, and codel's ``drop_overlimit`` (as tc shows it).  Drop
reasons: ``codel_drop`` (the control law), ``queue_full`` (codel: the packet
limit, counted in ``drop_overlimit`` too).  ``stats()``:
``count``, ``lastcount``, ``ldelay_ns`` (the last sojourn), ``dropping``,
``drop_next_ns``, ``maxpacket``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from vswitch.core.frame import Frame
from vswitch.core.policies.base import Policy, Ring
from vswitch.core.policies.headers import set_ce
from vswitch.core.policies.params import Param

__all__ = ["CoDel", "CodelFlow", "CodelScheduler", "control_law", "TARGET", "INTERVAL", "MTU"]

TARGET = 5_000_000          # 5 ms (RFC 8289)
INTERVAL = 100_000_000      # 100 ms
MTU = 1514                  # psched_mtu(dev) of a 1500-byte Ethernet device


def control_law(t: int, interval: int, count: int) -> int:
    """RFC 8289: the next drop, ``interval / sqrt(count)`` after ``t`` (ns, rounded down)."""
    return t + int(interval / math.sqrt(count))


class CodelFlow:
    """One CoDel queue: its frames, their enqueue times, and CoDel's state variables."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self.frames = Ring()                # its times: each frame's enqueue time, ns
        self.bytes = 0
        self.count = 0
        self.lastcount = 0
        self.dropping = False
        self.drop_next = 0
        self.first_above_time = 0
        self.ldelay = 0
        # fq_codel's: the flow's deficit and which list it is on (0 none, 1 new, 2 old).
        self.deficit = 0
        self.chain = 0

    def state(self) -> dict[str, object]:
        return {"count": self.count, "lastcount": self.lastcount, "ldelay_ns": self.ldelay,
                "dropping": self.dropping, "drop_next_ns": self.drop_next}


class CodelScheduler(Policy):
    """The CoDel algorithm over `CodelFlow`\\ s; a subclass owns the flows and admission."""

    COUNTERS: ClassVar[tuple[str, ...]] = ("ecn_mark",)
    DROP_REASONS: ClassVar[tuple[str, ...]] = ("codel_drop", "queue_full")

    def __init__(self, target: int = TARGET, interval: int = INTERVAL, mtu: int = MTU, ecn: bool = False) -> None:
        if target < 1 or interval < 1:
            raise ValueError(f"target {target}, interval {interval}: each must be >= 1 ns")
        super().__init__()
        self.target = target
        self.interval = interval
        self.mtu = mtu
        self.ecn = ecn
        self.maxpacket = 0
        self.memory = 0             # bytes held (fq_codel's memory_used)
        self._ok = False            # dodequeue's ok_to_drop

    def _dodequeue(self, fl: CodelFlow, now_ns: int) -> Frame | None:
        """RFC 8289 dodequeue: the flow's head frame (gone from the flow and the backlog), and
        in ``self._ok`` whether CoDel may drop it."""
        ring = fl.frames
        if not len(ring):
            fl.first_above_time = 0
            self._ok = False
            return None
        t = ring.first_time()
        f = ring.pop()
        n = len(f.data)
        fl.bytes -= n
        self._backlog_packets -= 1
        self._backlog_bytes -= n
        self.memory -= n
        if n > self.maxpacket:
            self.maxpacket = n
        fl.ldelay = now_ns - t
        if fl.ldelay < self.target or self._backlog_bytes <= self.mtu:
            fl.first_above_time = 0
            self._ok = False
        elif fl.first_above_time == 0:
            fl.first_above_time = now_ns + self.interval
            self._ok = False
        else:
            self._ok = now_ns >= fl.first_above_time
        return f

    def _codel_dequeue(self, fl: CodelFlow, now_ns: int) -> Frame | None:
        """RFC 8289 dequeue for one flow (with Linux's ECN marking in place of a drop)."""
        f = self._dodequeue(fl, now_ns)
        if f is None:
            fl.dropping = False
            return None
        if fl.dropping:
            if not self._ok:
                fl.dropping = False             # the sojourn fell below target
            while fl.dropping and now_ns >= fl.drop_next:
                fl.count += 1
                if self.ecn and set_ce(f):
                    self.counters["ecn_mark"] += 1
                    fl.drop_next = control_law(fl.drop_next, self.interval, fl.count)
                    return f
                self.drop(f, "codel_drop")
                nxt = self._dodequeue(fl, now_ns)
                if nxt is None:
                    fl.dropping = False
                    return None
                f = nxt
                if not self._ok:
                    fl.dropping = False
                else:
                    fl.drop_next = control_law(fl.drop_next, self.interval, fl.count)
        elif self._ok:
            # Enter the dropping state: drop (or mark) this frame, schedule the next drop.
            out: Frame | None = f
            if self.ecn and set_ce(f):
                self.counters["ecn_mark"] += 1
            else:
                self.drop(f, "codel_drop")
                out = self._dodequeue(fl, now_ns)
            fl.dropping = True
            delta = fl.count - fl.lastcount
            if delta > 1 and now_ns - fl.drop_next < 16 * self.interval:
                fl.count = delta
            else:
                fl.count = 1
            fl.lastcount = fl.count
            fl.drop_next = control_law(now_ns, self.interval, fl.count)
            return out
        return f


class CoDel(CodelScheduler):
    """One CoDel queue with a packet limit (tail drop beyond it), as Linux's sch_codel."""

    KIND = "codel"
    COUNTERS: ClassVar[tuple[str, ...]] = ("ecn_mark", "drop_overlimit")
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("limit", "int", 1000, "packets the queue may hold (tail drop beyond)", unit="packets",
              range=(1, 1 << 30)),
        Param("target", "time", TARGET, "acceptable standing sojourn time", range=(1, 10**12)),
        Param("interval", "time", INTERVAL, "how long the sojourn may stay above target before drops "
              "start (about a worst-case RTT)", range=(1, 10**12)),
        Param("mtu", "size", MTU, "a queue holding this many bytes or fewer is never dropped from",
              range=(0, 1 << 20), linux="psched_mtu(dev); RFC 8289 says maxpacket"),
        Param("ecn", "bool", False, "mark ECN-capable frames with CE instead of dropping them"),
    )

    def __init__(self, limit: int = 1000, target: int = TARGET, interval: int = INTERVAL, mtu: int = MTU,
                 ecn: bool = False) -> None:
        if limit < 1:
            raise ValueError(f"limit {limit}: must be >= 1 packet")
        super().__init__(target, interval, mtu, ecn)
        self.limit = limit
        self.flow = CodelFlow()

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> CoDel:
        return cls(p["limit"], p["target"], p["interval"], p["mtu"], p["ecn"])

    def enqueue(self, frame: Frame, now_ns: int) -> bool:
        if self._backlog_packets >= self.limit:
            self.counters["drop_overlimit"] += 1
            self.drop(frame, "queue_full")
            return False
        fl = self.flow
        n = len(frame.data)
        fl.frames.push_timed(frame, now_ns)
        fl.bytes += n
        self._backlog_packets += 1
        self._backlog_bytes += n
        self.memory += n
        return True

    def dequeue(self, now_ns: int) -> Frame | None:
        return self._codel_dequeue(self.flow, now_ns)

    def stats(self) -> dict[str, object]:
        d = self.flow.state()
        d["maxpacket"] = self.maxpacket
        return d

    def config(self) -> dict[str, object]:
        return {"limit": self.limit, "target": self.target, "interval": self.interval, "mtu": self.mtu,
                "ecn": self.ecn}
