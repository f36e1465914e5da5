"""StormControl: at most N broadcast and N' multicast frames per second from one port.

Element `StormControl`
    input ``in``: frames received on a port; output ``out``: the same frames
    but those over their class's level, dropped.
Config: ``broadcast_pps``, ``multicast_pps`` (None: that class is not
limited).  As a hardware switch's ``storm-control broadcast level pps N``:
time is cut into one-second intervals (of the clock the frames come
stamped with) and in each interval the first N frames of a class pass, the
rest are dropped, so no interval ever carries more than N.  Broadcast is a
destination of ff:ff:ff:ff:ff:ff; multicast any other group address (the
I/G bit set).  Unicast frames pass untouched.
Counters: ``broadcast``, ``multicast`` (frames of each class seen).  Drop
reasons: ``storm_broadcast``, ``storm_multicast``.

Where it sits: between a port's graph entry and the switch, put there by the
dataplane only when the port sets a level (so an unset port pays nothing).
"""

from __future__ import annotations

from vswitch.core.element import Batch, Element, PortId

__all__ = ["StormControl"]

_SECOND = 1_000_000_000
_BROADCAST = b"\xff" * 6


class StormControl(Element):
    COUNTERS = ("broadcast", "multicast")
    DROP_REASONS = ("storm_broadcast", "storm_multicast")

    def __init__(self, name: str, broadcast_pps: int | None = None, multicast_pps: int | None = None) -> None:
        for what, v in (("broadcast_pps", broadcast_pps), ("multicast_pps", multicast_pps)):
            if v is not None and v < 0:
                raise ValueError(f"{what} {v}: must be >= 0 frames per second")
        super().__init__(name)
        self.broadcast_pps = broadcast_pps
        self.multicast_pps = multicast_pps
        self._second = -1          # the interval the counts below belong to
        self._bc = 0               # broadcast frames passed in it
        self._mc = 0

    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:
        if not any(f.data[0] & 1 for f in batch if f.data):    # the common case: all unicast
            self.emit("out", batch, now_ns)
            return
        sec = now_ns // _SECOND
        if sec != self._second:
            self._second = sec
            self._bc = self._mc = 0
        out: Batch = []
        c = self.counters
        for f in batch:
            d = f.data
            if not d or not d[0] & 1:
                out.append(f)
                continue
            if d[0:6] == _BROADCAST:
                c["broadcast"] += 1
                if self.broadcast_pps is not None and self._bc >= self.broadcast_pps:
                    self.drop(f, "storm_broadcast")
                    continue
                self._bc += 1
            else:
                c["multicast"] += 1
                if self.multicast_pps is not None and self._mc >= self.multicast_pps:
                    self.drop(f, "storm_multicast")
                    continue
                self._mc += 1
            out.append(f)
        self.emit("out", out, now_ns)

    def config(self) -> dict[str, object]:
        return {"broadcast_pps": self.broadcast_pps, "multicast_pps": self.multicast_pps}
