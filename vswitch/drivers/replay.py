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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vswitch.core.element import Batch
from vswitch.core.frame import Frame
from vswitch.drivers.stream import FrameStream, PortChunk, SourceMacAssigner
from vswitch.io.pcap import Capture, CaptureError, NotEthernet, PcapWriter, read_capture
from vswitch.topology import Dataplane


@dataclass
class Record:
    ts_ns: int
    data: bytes
    port: int


class Records:
    """Records in replay order, and the open captures they come from (for what reading found).

    Iterate for `Record` objects, or (what the replay does) stream them in chunks: ``chunks``
    (`PortChunk` lists, with their ports or, for ``assign`` to place, without); one or the
    other, once."""

    def __init__(self, records: Iterator[Record] | None, captures: list[Capture],
                 chunks: Iterator[PortChunk] | None = None, assign: SourceMacAssigner | None = None) -> None:
        if records is None and chunks is None:
            raise ValueError("Records needs records or chunks")
        self._records = records
        self.captures = captures
        self.chunks = chunks
        self.assign = assign

    def __iter__(self) -> Iterator[Record]:
        if self._records is not None:
            return self._records
        return self._from_chunks()

    def _from_chunks(self) -> Iterator[Record]:
        assert self.chunks is not None
        for ts_list, data_list, ports in self.chunks:
            if ports is None:
                assert self.assign is not None
                ports = [self.assign(d) for d in data_list]
            for ts, data, port in zip(ts_list, data_list, ports, strict=True):
                yield Record(ts, data, port)


def records_by_source_mac(path: str | Path, assign: SourceMacAssigner) -> Records:
    """The records of one capture, each entering by its source MAC; the capture is opened now."""
    cap = read_capture(path)
    chunks = ((ts_list, data_list, None) for ts_list, data_list in cap.chunks())
    return Records(None, [cap], chunks, assign)


def record_chunks(records: Iterable[Record], size: int = 1024) -> Iterator[PortChunk]:
    """`Record` objects in chunks, with their ports."""
    ts_list: list[int] = []
    data_list: list[bytes] = []
    ports: list[int] = []
    for rec in records:
        ts_list.append(rec.ts_ns)
        data_list.append(rec.data)
        ports.append(rec.port)
        if len(ts_list) >= size:
            yield ts_list, data_list, ports
            ts_list, data_list, ports = [], [], []
    if ts_list:
        yield ts_list, data_list, ports


def stream_batches(records: Iterable[Record], batch: int = 64, tick_ns: int = 0) -> FrameStream:
    """Records (a `Records`, or any `Record` iterable) as the batches a driver pushes: runs of
    frames entering on the same port, at most ``batch`` long, in virtual time that never goes
    back, cut where time crosses a ``tick_ns`` boundary (0: never); see `FrameStream`."""
    if isinstance(records, Records) and records.chunks is not None:
        return FrameStream(records.chunks, records.assign, batch, tick_ns)
    return FrameStream(record_chunks(records), None, batch, tick_ns)


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

    def gen() -> Iterator[PortChunk]:
        streams = [stream(i, port, cap) for i, (port, cap) in enumerate(zip(files, caps, strict=True))]
        ts_list: list[int] = []
        data_list: list[bytes] = []
        ports: list[int] = []
        for ts, _, data, port in heapq.merge(*streams):
            ts_list.append(ts)
            data_list.append(data)
            ports.append(port)
            if len(ts_list) >= 1024:
                yield ts_list, data_list, ports
                ts_list, data_list, ports = [], [], []
        if ts_list:
            yield ts_list, data_list, ports
    return Records(None, caps, gen())


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
    def _writer(w: PcapWriter) -> Callable[[Batch, int], None]:
        def send(batch: Batch, now_ns: int) -> None:
            w.write_frames(batch)
        return send

    def run(self, records: Iterable[Record]) -> ReplayResult:
        """Replay records; a CaptureError mid-file ends the replay with ``error`` set."""
        res = ReplayResult()
        graph = self.dp.graph
        stream = stream_batches(records, self.batch, self.tick_ns)
        ingress: dict[int, Callable[[Batch, int, int], None]] = {}
        run_until = graph.run_until
        try:
            for port, batch, nbytes, tick in stream:
                first = batch[0].ts_ns
                if tick:
                    run_until(first)
                    graph.tick(first)
                push = ingress.get(port)
                if push is None:
                    push = ingress[port] = graph.ingress(port)
                run_until(first)                  # what fell due before this batch
                now = batch[-1].ts_ns
                push(batch, now, nbytes)
                run_until(now)
        except NotEthernet:
            self._close(res)
            raise
        if stream.error is not None:
            res.error = str(stream.error)
        if stream.first_ts_ns is not None:
            self._flush(stream.last_ts_ns or 0)
        res.frames, res.bytes, res.out_of_order = stream.frames, stream.nbytes, stream.out_of_order
        res.first_ts_ns = stream.first_ts_ns
        if stream.first_ts_ns is not None:
            res.last_ts_ns, res.min_ts_ns = stream.last_ts_ns, stream.min_ts_ns
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
