"""A capture streamed as batches of frames, for the drivers that replay one (compiled).

`FrameStream` turns chunks of records (`vswitch.io.pcap.Capture.chunks`: lists of
timestamps and frame bytes, thousands at a time) into the batches a driver pushes: runs of
consecutive frames entering on the same port, at most ``batch`` long, each frame a `Frame`
stamped with its time and ingress port.  Memory stays bounded by one chunk and one batch
whatever the capture's length.  The offline replay (`vswitch.drivers.replay`) and the
discrete-time driver share it; ``vswitch.drivers.replay.stream_batches`` builds one for a
replay's `Records`.

Time, as the offline replay keeps it: virtual time never goes back.  A record earlier than
one before it enters at the latest time seen so far (counted in ``out_of_order``; ``min_ts_ns``
keeps the earliest timestamp).  With ``tick_ns`` the stream also cuts a batch where virtual
time crosses a tick boundary (``tick_ns`` after the first record, then ``tick_ns`` after the
record that crossed the last one) and says so with the batch that starts there (its
``tick``): the driver runs the graph's housekeeping at that frame's time before pushing it.

Ports: a chunk may carry its records' ports (one capture per port, merged), or none, and
then `SourceMacAssigner` places each frame by its source MAC.

A read error (`CaptureError`) mid-file ends the stream after the frames before the damage;
it is kept in ``error`` (a non-Ethernet capture, `NotEthernet`, is raised at once).
"""

from __future__ import annotations

from collections.abc import Iterator

from vswitch.core.frame import Frame
from vswitch.io.pcap import CaptureError, NotEthernet

# (timestamps in ns, frame bytes, ingress ports or None: by source MAC)
PortChunk = tuple[list[int], list[bytes], list[int] | None]
_NO_TICK = 1 << 126


class SourceMacAssigner:
    """Source MAC -> ingress port: fixed map first, then ``default`` if given (a generated trace's
    uplink: every MAC it does not name is on the wire), else round-robin by first appearance."""

    def __init__(self, ports: list[int], fixed: dict[bytes, int] | None = None, default: int | None = None) -> None:
        if not ports:
            raise ValueError("need at least one port to assign frames to")
        self.ports = ports
        self.fixed: dict[bytes, int] = dict(fixed or {})
        self.default = default
        self.learned: dict[bytes, int] = {}
        self._next = 0

    def __call__(self, data: bytes) -> int:
        return self.port_of(data)

    def port_of(self, data: bytes) -> int:
        if len(data) < 12:
            return self.ports[0] if self.default is None else self.default
        src = data[6:12]
        port = self.fixed.get(src) or self.learned.get(src)
        if port is None:
            if self.default is not None:
                return self.default
            port = self.learned[src] = self.ports[self._next % len(self.ports)]
            self._next += 1
        return port


class FrameStream:
    """Iterate for ``(port, frames, nbytes, tick)``: a batch of frames entering on ``port``,
    their total length, and whether the graph's ``tick`` runs (at the first frame's time)
    before it.  Counts as it goes: ``frames``, ``nbytes``, ``out_of_order``, and the times
    ``first_ts_ns``, ``last_ts_ns`` (virtual time at the end) and ``min_ts_ns`` (None before
    the first record)."""

    def __init__(self, chunks: Iterator[PortChunk], assign: SourceMacAssigner | None = None,
                 batch: int = 64, tick_ns: int = 0) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self._chunks = chunks
        self.assign = assign
        self.batch = batch
        self.tick_ns = tick_ns
        self.frames = 0
        self.nbytes = 0
        self.out_of_order = 0
        self.first_ts_ns: int | None = None
        self.last_ts_ns: int | None = None
        self.min_ts_ns: int | None = None
        self.error: CaptureError | None = None
        self._assign = assign if assign is not None else SourceMacAssigner([-1])   # (not used)
        self._ts: list[int] = []
        self._data: list[bytes] = []
        self._ports: list[int] | None = None
        self._i = 0
        self._now = 0
        self._low = 0
        self._next_tick = _NO_TICK
        self._pending = -1           # the port of record _i when it was looked up, else -1
        self._done = False

    def __iter__(self) -> Iterator[tuple[int, list[Frame], int, bool]]:
        while True:
            b = self.next_batch()
            if b is None:
                return
            yield b

    def _load(self) -> bool:
        """The next chunk; False at the end (or a read error, kept in ``error``)."""
        if self._done:
            return False
        while True:
            try:
                ts, data, ports = next(self._chunks)
            except StopIteration:
                self._done = True
                return False
            except NotEthernet:
                self._done = True
                raise
            except CaptureError as e:
                self.error = e
                self._done = True
                return False
            if ts:
                break
        if ports is None and self.assign is None:
            raise ValueError("records without ports need a SourceMacAssigner")
        self._ts, self._data, self._ports, self._i = ts, data, ports, 0
        return True

    def next_batch(self) -> tuple[int, list[Frame], int, bool] | None:
        """The next batch (see the class), or None at the end."""
        ts_l, data_l, ports_l, i = self._ts, self._data, self._ports, self._i
        n = len(ts_l)
        if i >= n:
            if not self._load():
                return None
            ts_l, data_l, ports_l, i = self._ts, self._data, self._ports, 0
            n = len(ts_l)
        assign = self._assign
        limit = self.batch
        now = self._now
        low = self._low
        next_tick = self._next_tick
        late = 0
        nbytes = 0
        tick = False
        batch: list[Frame] = []
        # The batch's first frame: it starts the clock, or crosses a tick boundary.
        port = self._pending
        if port < 0:
            port = ports_l[i] if ports_l is not None else assign.port_of(data_l[i])
        self._pending = -1
        ts = ts_l[i]
        d = data_l[i]
        if self.first_ts_ns is None:
            now = low = ts
            self.first_ts_ns = ts
            next_tick = ts + self.tick_ns if self.tick_ns > 0 else _NO_TICK
        else:
            if ts < now:
                late += 1
                if ts < low:
                    low = ts
                ts = now
            else:
                now = ts
            if ts >= next_tick:
                tick = True
                next_tick = ts + self.tick_ns
        batch.append(Frame(d, ts, port))
        nbytes += len(d)
        i += 1
        while True:
            if i >= n:
                self._i = i
                if len(batch) >= limit or not self._load():
                    break
                ts_l, data_l, ports_l, i = self._ts, self._data, self._ports, 0
                n = len(ts_l)
            d = data_l[i]
            p = ports_l[i] if ports_l is not None else assign.port_of(d)
            if p != port or len(batch) >= limit:
                self._pending = p
                break
            ts = ts_l[i]
            if ts < now:                      # (so ts, moved to now, is before next_tick)
                late += 1
                if ts < low:
                    low = ts
                ts = now
            elif ts >= next_tick:
                self._pending = p
                break
            else:
                now = ts
            batch.append(Frame(d, ts, port))
            nbytes += len(d)
            i += 1
        self._i = i
        self._now = now
        self._low = low
        self._next_tick = next_tick
        self.frames += len(batch)
        self.nbytes += nbytes
        self.out_of_order += late
        self.last_ts_ns = now
        self.min_ts_ns = low
        return port, batch, nbytes, tick
