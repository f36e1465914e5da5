"""Offline replay driver: push captured frames through the graph in virtual time.

Time comes from the capture's timestamps: each batch is pushed with
``now_ns`` = the timestamp of its last frame, and ``graph.tick`` runs each
time virtual time crosses a ``tick_ns`` boundary (FDB aging sweeps), so a
replay of a capture behaves as the live switch would have at that pace, in
however little wall time the replay takes.

Virtual time never goes back: a record whose timestamp is earlier than one
before it (out of order) enters at the latest time seen so far, as tcpreplay
sends a late packet at once without moving its capture clock back
(send_packets.c advances ``last_pkt_ts`` only forward).  Such records are
counted (`ReplayResult.out_of_order`); the frames carry the switch's time,
so egress pcaps are in order; `ReplayResult.duration_ns` is the capture's
span from its earliest to its latest timestamp.

Which port a frame enters by is decided by the source (`Record.port`):

* one capture per port (``port=file``): every frame of the file enters on that
  port; files are merged by timestamp;
* one capture for the whole switch: `SourceMacAssigner` gives each source MAC
  the next port round-robin in order of first appearance (so a host stays on
  one port, as in a real network), unless a fixed MAC -> port map says
  otherwise, or a default port takes every MAC the map does not name (``vswitch-bench
  replay --map-from``: a generated trace's uplink).  Frames too short to carry a source
  MAC enter on the first port (or the default one).

Batches are runs of consecutive frames entering on the same port, at most
``batch`` long.  Egress goes to one pcap per port (``out_dir``) or is only
counted.

The graph's queues and deadlines (an emulated NIC's rings, interrupt
moderation, TX shaping) run in the same virtual time: before a batch enters,
everything due up to its first frame's time runs (`Graph.run_until`), and
after it what it made ready; after the last record, deadlines up to
``flush_ns`` later (1 s) still run, so frames a NIC held are delivered.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vswitch.core.element import Batch
from vswitch.core.frame import Frame
from vswitch.io.pcap import Capture, CaptureError, NotEthernet, PcapWriter, read_capture
from vswitch.topology import Dataplane


@dataclass
class Record:
    ts_ns: int
    data: bytes
    port: int


class SourceMacAssigner:
    """Source MAC -> ingress port: fixed map first, then ``default`` if given (a generated trace's
    uplink: every MAC it does not name is on the wire), else round-robin by first appearance."""

    def __init__(self, ports: list[int], fixed: dict[bytes, int] | None = None, default: int | None = None) -> None:
        if not ports:
            raise ValueError("need at least one port to assign frames to")
        self.ports = ports
        self.fixed = dict(fixed or {})
        self.default = default
        self.learned: dict[bytes, int] = {}
        self._next = 0

    def __call__(self, data: bytes) -> int:
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


class Records:
    """Records in replay order, and the open captures they come from (for what reading found)."""

    def __init__(self, records: Iterator[Record], captures: list[Capture]) -> None:
        self._records = records
        self.captures = captures

    def __iter__(self) -> Iterator[Record]:
        return self._records


def records_by_source_mac(path: str | Path, assign: SourceMacAssigner) -> Records:
    """The records of one capture, each entering by its source MAC; the capture is opened now."""
    cap = read_capture(path)

    def gen() -> Iterator[Record]:
        for ts, data in cap:
            yield Record(ts, data, assign(data))
    return Records(gen(), [cap])


def records_per_port(files: dict[int, str | Path]) -> Records:
    """Merge one capture per port by timestamp (stable for equal timestamps); all are opened now."""
    caps: list[Capture] = []
    try:
        for path in files.values():
            caps.append(read_capture(path))
    except CaptureError:
        for c in caps:
            c.close()
        raise

    def stream(i: int, port: int, cap: Capture) -> Iterator[tuple[int, int, bytes, int]]:
        for ts, data in cap:
            yield ts, i, data, port

    def gen() -> Iterator[Record]:
        streams = [stream(i, port, cap) for i, (port, cap) in enumerate(zip(files, caps, strict=True))]
        for ts, _, data, port in heapq.merge(*streams):
            yield Record(ts, data, port)
    return Records(gen(), caps)


@dataclass
class ReplayResult:
    """What a replay did.  ``last_ts_ns`` is the switch's time at the end (the latest timestamp);
    ``min_ts_ns`` the earliest timestamp; ``out_of_order`` the records earlier than one before
    them; ``skipped`` packets the captures held but the switch did not get (non-Ethernet pcapng
    interfaces); ``notes`` what reading the captures changed or left out."""

    frames: int = 0
    bytes: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    min_ts_ns: int | None = None
    out_of_order: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        """The capture's span, earliest to latest timestamp (never negative)."""
        if self.min_ts_ns is None or self.last_ts_ns is None:
            return 0
        return self.last_ts_ns - self.min_ts_ns


class ReplayDriver:
    def __init__(self, dp: Dataplane, out_dir: str | Path | None = None, batch: int = 64,
                 tick_ns: int = 1_000_000_000, flush_ns: int = 1_000_000_000) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.dp = dp
        self.batch = batch
        self.tick_ns = tick_ns
        self.flush_ns = flush_ns
        self.writers: dict[int, PcapWriter] = {}
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        for number, port in dp.graph.ports.items():
            if out_dir is not None:
                w = self.writers[number] = PcapWriter(Path(out_dir) / f"{port.name}.pcap")
                dp.graph.set_transmit(number, self._writer(w))
            else:
                dp.graph.set_transmit(number, _discard)

    @staticmethod
    def _writer(w: PcapWriter):
        def send(batch: Batch, now_ns: int) -> None:
            for f in batch:
                w.write(f.data, f.ts_ns)
        return send

    def run(self, records: Iterable[Record]) -> ReplayResult:
        """Replay records; a CaptureError mid-file ends the replay with ``error`` set."""
        res = ReplayResult()
        graph = self.dp.graph
        limit = self.batch
        tick_ns = self.tick_ns
        batch: list[Frame] = []
        port = -1
        now = low = next_tick = 0
        frames = nbytes = late = 0
        it = iter(records)
        try:
            for rec in it:                       # the first record sets the clock
                now = low = rec.ts_ns
                res.first_ts_ns = now
                next_tick = now + tick_ns
                port = rec.port
                batch.append(Frame(rec.data, now))
                frames, nbytes = 1, len(rec.data)
                break
            for rec in it:
                ts = rec.ts_ns
                if ts < now:                     # out of order: time does not go back
                    late += 1
                    if ts < low:
                        low = ts
                    ts = now
                else:
                    now = ts
                if batch and (rec.port != port or len(batch) >= limit):
                    self._push(port, batch)
                    batch = []
                if ts >= next_tick:
                    if batch:
                        self._push(port, batch)
                        batch = []
                    graph.run_until(ts)
                    graph.tick(ts)
                    next_tick = ts + tick_ns
                port = rec.port
                batch.append(Frame(rec.data, ts))
                frames += 1
                nbytes += len(rec.data)
        except NotEthernet:
            self._close(res)
            raise
        except CaptureError as e:
            res.error = str(e)
        if batch:
            self._push(port, batch)
        if res.first_ts_ns is not None:
            self._flush(now)
        res.frames, res.bytes, res.out_of_order = frames, nbytes, late
        if res.first_ts_ns is not None:
            res.last_ts_ns, res.min_ts_ns = now, low
        captures = records.captures if isinstance(records, Records) else []
        for cap in captures:
            res.skipped += cap.skipped
            res.notes.extend(f"{cap.path}: {n}" if len(captures) > 1 else n for n in cap.notes())
        self._close(res)
        return res

    def _push(self, port: int, batch: list[Frame]) -> None:
        graph = self.dp.graph
        graph.run_until(batch[0].ts_ns)          # what fell due before this batch
        now = batch[-1].ts_ns
        graph.push(port, batch, now)
        graph.run_until(now)

    def _flush(self, now: int) -> None:
        """Deadlines up to ``flush_ns`` after the last record: frames still held are delivered."""
        graph = self.dp.graph
        end = now + self.flush_ns
        while True:
            t = graph.next_deadline_ns()
            if t is None or t > end:
                break
            graph.run_until(t)

    def _close(self, res: ReplayResult) -> None:
        for number, w in self.writers.items():
            w.close()
            res.outputs[self.dp.name_of(number)] = w.path


def _discard(batch: Batch, now_ns: int) -> None:
    pass
