"""The streamed replay (chunked pcap reads, `FrameStream` batches) gives what the record-by-record
replay before it gave: the same counters, the same result, byte-identical per-port pcaps.

The reference here is the previous code path, kept verbatim in spirit: a record reader that
reads each record header and its bytes from the file (two reads per record, as the reader
before the chunked one), one `Record` per frame with its port from `SourceMacAssigner`, and the
driver loop that built each batch frame by frame and pushed it through `Graph.push`, writing
each egress frame on its own.
"""

from __future__ import annotations

import heapq
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.cli import main as bench_main
from bench.gen_sidecar import load_port_map
from tests.unit.test_replay import CAPTURES, SHARED
from vswitch.core.frame import Frame
from vswitch.drivers.replay import (
    Record,
    ReplayDriver,
    ReplayResult,
    SourceMacAssigner,
    records_by_source_mac,
    records_per_port,
    stream_batches,
)
from vswitch.io import pcap
from vswitch.io.pcap import CaptureError, NotEthernet, PcapWriter, read_capture
from vswitch.topology import Dataplane, build_dataplane, load_topology

# -- the reference: the previous code path -------------------------------------------------------


def slow_pcap_records(path: Path) -> Iterator[tuple[int, bytes]]:
    """A plain pcap's records, two file reads per record (the reader before the chunked one)."""
    with open(path, "rb") as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        little = magic in (0xA1B2C3D4, 0xA1B23C4D)
        nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
        bo = "<" if little else ">"
        field = struct.unpack(bo + "I", head[20:24])[0]
        fcs = 2 * ((field & 0xF0000000) >> 28) if field & 0x04000000 else 0
        scale = 1 if nano else 1000
        offset, n = 24, 0
        while True:
            raw = f.read(16)
            if not raw:
                return
            n += 1
            if len(raw) < 16:
                raise CaptureError(f"{path}: record {n} at offset {offset}: truncated record header "
                                   f"({len(raw)} of 16 bytes)")
            sec, frac, caplen, wire_len = struct.unpack(bo + "IIII", raw)
            if caplen > pcap.MAX_RECORD:
                raise CaptureError(f"{path}: record {n} at offset {offset}: captured length {caplen} "
                                   f"exceeds {pcap.MAX_RECORD} bytes; the file is corrupt")
            data = f.read(caplen)
            if len(data) < caplen:
                raise CaptureError(f"{path}: record {n} at offset {offset}: truncated: header says "
                                   f"{caplen} captured bytes, file has {len(data)}")
            offset += 16 + caplen
            if fcs and wire_len - fcs < caplen:
                data = data[:max(wire_len - fcs, 0)]
            yield sec * 1_000_000_000 + frac * scale, data


class _SlowWriter:
    """A pcap writer packing each record header on its own (as PcapWriter.write did)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.w = PcapWriter(path)

    def send(self, batch: list[Frame], now_ns: int) -> None:
        for f in batch:
            self.w.write(f.data, f.ts_ns)


def reference_replay(dp: Dataplane, records: Iterator[Record], out_dir: Path | None, batch: int = 64,
                     tick_ns: int = 1_000_000_000, flush_ns: int = 1_000_000_000) -> ReplayResult:
    """The replay loop before the stream: a Frame per record, batches cut as records come."""
    graph = dp.graph
    writers = {}
    for number, port in graph.ports.items():
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            w = writers[number] = _SlowWriter(out_dir / f"{port.name}.pcap")
            graph.set_transmit(number, w.send)
        else:
            graph.set_transmit(number, lambda b, t: None)

    def push(port: int, frames: list[Frame]) -> None:
        graph.run_until(frames[0].ts_ns)
        now = frames[-1].ts_ns
        graph.push(port, frames, now)
        graph.run_until(now)

    res = ReplayResult()
    frames_: list[Frame] = []
    port = -1
    now = low = next_tick = 0
    count = nbytes = late = 0
    it = iter(records)
    try:
        for rec in it:
            now = low = rec.ts_ns
            res.first_ts_ns = now
            next_tick = now + tick_ns
            port = rec.port
            frames_.append(Frame(rec.data, now))
            count, nbytes = 1, len(rec.data)
            break
        for rec in it:
            ts = rec.ts_ns
            if ts < now:
                late += 1
                low = min(low, ts)
                ts = now
            else:
                now = ts
            if frames_ and (rec.port != port or len(frames_) >= batch):
                push(port, frames_)
                frames_ = []
            if ts >= next_tick:
                if frames_:
                    push(port, frames_)
                    frames_ = []
                graph.run_until(ts)
                graph.tick(ts)
                next_tick = ts + tick_ns
            port = rec.port
            frames_.append(Frame(rec.data, ts))
            count += 1
            nbytes += len(rec.data)
    except CaptureError as e:
        res.error = str(e)
    if frames_:
        push(port, frames_)
    if res.first_ts_ns is not None:
        end = now + flush_ns
        while (t := graph.next_deadline_ns()) is not None and t <= end:
            graph.run_until(t)
    res.frames, res.bytes, res.out_of_order = count, nbytes, late
    if res.first_ts_ns is not None:
        res.last_ts_ns, res.min_ts_ns = now, low
    for number, w in writers.items():
        w.w.close()
        res.outputs[dp.name_of(number)] = w.path
    return res


def slow_records(path: Path, assign: SourceMacAssigner) -> Iterator[Record]:
    for ts, data in slow_pcap_records(path):
        yield Record(ts, data, assign(data))


# -- helpers ---------------------------------------------------------------------------------------


def gen(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    assert bench_main(["gen", str(out), "-q", *args]) == 0
    return out


def assigner_for(trace: Path):
    pm = load_port_map(trace.with_suffix(".json"))

    def make(dp: Dataplane) -> SourceMacAssigner:
        return SourceMacAssigner(list(dp.switch.ports), {m: dp.numbers[p] for m, p in pm.macs.items()},
                                 dp.numbers[pm.default_port])
    return make


def outcome(dp: Dataplane, res: ReplayResult, out_dir: Path) -> dict:
    files = {name: Path(p).read_bytes() for name, p in sorted(res.outputs.items())}
    outputs = {name: str(Path(p).relative_to(out_dir)) for name, p in res.outputs.items()}
    return {"frames": res.frames, "bytes": res.bytes, "first": res.first_ts_ns, "last": res.last_ts_ns,
            "min": res.min_ts_ns, "late": res.out_of_order, "error": res.error, "outputs": outputs,
            "snapshot": dp.graph.snapshot(), "pcaps": files}


def both(tmp_path: Path, trace: Path, pcap_file: Path | None = None, batch: int = 64,
         tick_ns: int = 1_000_000_000, topo_file: Path | None = None) -> tuple[dict, dict]:
    topo = load_topology(topo_file or trace.with_suffix(".toml"))
    make = assigner_for(trace)
    src = pcap_file or trace
    dp_new = build_dataplane(topo)
    new = ReplayDriver(dp_new, tmp_path / "new", batch=batch, tick_ns=tick_ns).run(
        records_by_source_mac(src, make(dp_new)))
    dp_old = build_dataplane(topo)
    old = reference_replay(dp_old, slow_records(src, make(dp_old)), tmp_path / "old", batch, tick_ns)
    return outcome(dp_new, new, tmp_path / "new"), outcome(dp_old, old, tmp_path / "old")


# -- the tests -------------------------------------------------------------------------------------

TRACES = {
    "mixed-vlans": ("--guests", "6", "--vlans", "10,20", "--wire-hosts", "3", "--tcp", "0.3", "--size", "imix",
                    "--frames", "3000", "--arp-pps", "20000", "--bcast-pps", "20000"),
    "inbound-64": ("--guests", "8", "--east-west", "0", "--inbound", "1", "--frames", "4000", "--pps", "1000000"),
    "vmdq-inbound": ("--guests", "8", "--vlans", "10,20", "--east-west", "0", "--inbound", "1", "--nic", "vmdq",
                     "--frames", "4000", "--pps", "1000000", "--arp-pps", "50000"),
    "vmdq-mixed": ("--guests", "4", "--vlans", "10,20", "--nic", "vmdq", "--frames", "3000", "--arp-pps", "10000"),
    "software-nic": ("--guests", "4", "--nic", "software", "--frames", "3000", "--bcast-pps", "5000"),
    "tagged-guests": ("--guests", "4", "--vlans", "10,20", "--tagged-guests", "--frames", "2000"),
}


@pytest.mark.parametrize("name", sorted(TRACES))
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_streamed_replay_matches_the_previous_code_path(tmp_path, name, batch) -> None:
    trace = gen(tmp_path, "t.pcap", *TRACES[name])
    # 2 ms ticks: a trace of a few ms crosses several tick boundaries (FDB sweeps mid-replay).
    new, old = both(tmp_path, trace, batch=batch, tick_ns=2_000_000)
    assert new["frames"] >= 2000
    assert new == old


def test_pcapng_trace_replays_as_before(tmp_path) -> None:
    trace = gen(tmp_path, "t.pcapng", "--pcapng", *TRACES["mixed-vlans"])
    plain = gen(tmp_path, "t.pcap", *TRACES["mixed-vlans"])
    topo = load_topology(trace.with_suffix(".toml"))
    make = assigner_for(trace)
    dp_new = build_dataplane(topo)
    new = ReplayDriver(dp_new, tmp_path / "new", tick_ns=2_000_000).run(records_by_source_mac(trace, make(dp_new)))
    dp_old = build_dataplane(topo)
    # the same frames and times as the plain pcap of the same seed, read the old way
    old = reference_replay(dp_old, slow_records(plain, make(dp_old)), tmp_path / "old", tick_ns=2_000_000)
    assert outcome(dp_new, new, tmp_path / "new") == outcome(dp_old, old, tmp_path / "old")


def _rewrite(src: Path, dst: Path, edit) -> Path:
    recs = list(slow_pcap_records(src))
    with PcapWriter(dst) as w:
        for ts, data in edit(recs):
            w.write(data, ts)
    return dst


def test_ticks_expiring_fdb_entries_replay_as_before(tmp_path) -> None:
    """A 1 s ageing time with 0.3 s ticks over 6 s of traffic from guests that fall silent for
    seconds: entries expire mid-trace at the ticks, so frames flood again; where the ticks fall
    shows in the counters."""
    trace = gen(tmp_path, "t.pcap", "--guests", "6", "--vlans", "10,20", "--frames", "3000", "--pps", "500",
                "--pattern", "onoff", "--on", "0.3s", "--off", "1.2s", "--flows", "6")
    toml = trace.with_suffix(".toml").read_text()
    short = tmp_path / "short.toml"
    short.write_text(toml.replace('[bridge]\n', '[bridge]\nageing_time = 1\n'))
    assert "ageing_time = 1" in short.read_text()
    new, old = both(tmp_path, trace, batch=16, tick_ns=300_000_000, topo_file=short)
    assert new["snapshot"]["elements"]["br0"]["fdb"]["expired"] > 0
    assert new == old


def test_out_of_order_records_replay_as_before(tmp_path) -> None:
    trace = gen(tmp_path, "t.pcap", *TRACES["mixed-vlans"])
    rng = random.Random(7)

    def jitter(recs):
        # Every 10th record 0-3 ms early: late records, some of them across a tick boundary.
        return [(ts - rng.randrange(3_000_000) if i % 10 == 0 else ts, d) for i, (ts, d) in enumerate(recs)]
    shaken = _rewrite(trace, tmp_path / "shaken.pcap", jitter)
    new, old = both(tmp_path, trace, shaken, batch=16, tick_ns=1_000_000)
    assert new["late"] > 100
    assert new == old


@pytest.mark.parametrize("cut", [1, 9, 16, 17, 40])
def test_a_truncated_trace_replays_and_fails_as_before(tmp_path, cut, monkeypatch) -> None:
    trace = gen(tmp_path, "t.pcap", *TRACES["inbound-64"])
    data = trace.read_bytes()
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(data[:len(data) // 2 + cut])
    monkeypatch.setattr(pcap, "READ_SIZE", 4096)        # the damage far from the first read
    new, old = both(tmp_path, trace, bad, batch=64)
    assert new["error"] and "truncated" in new["error"]
    assert new == old


def test_per_port_captures_replay_as_before(tmp_path) -> None:
    trace = gen(tmp_path, "t.pcap", *TRACES["mixed-vlans"])
    topo = load_topology(trace.with_suffix(".toml"))
    recs = list(slow_pcap_records(trace))
    names = [p.name for p in topo.ports]
    # The trace split by ports round-robin over its records, one file per port.
    files = {}
    for k, name in enumerate(names):
        files[name] = _rewrite(trace, tmp_path / f"{name}.in.pcap",
                               lambda _r, k=k: recs[k::len(names)])
    dp_new = build_dataplane(topo)
    new = ReplayDriver(dp_new, tmp_path / "new", batch=8, tick_ns=2_000_000).run(
        records_per_port({dp_new.numbers[n]: f for n, f in files.items()}))
    dp_old = build_dataplane(topo)
    def stream(i: int, port: int, f: Path):
        for ts, d in slow_pcap_records(f):
            yield ts, i, d, port
    streams = [stream(i, dp_old.numbers[n], f) for i, (n, f) in enumerate(files.items())]
    merged = (Record(ts, d, port) for ts, _, d, port in heapq.merge(*streams))
    old = reference_replay(dp_old, merged, tmp_path / "old", 8, 2_000_000)
    assert outcome(dp_new, new, tmp_path / "new") == outcome(dp_old, old, tmp_path / "old")


def test_a_record_list_replays_through_the_stream_as_before(tmp_path) -> None:
    trace = gen(tmp_path, "t.pcap", *TRACES["vmdq-mixed"])
    topo = load_topology(trace.with_suffix(".toml"))
    make = assigner_for(trace)
    dp_new = build_dataplane(topo)
    a = make(dp_new)
    recs = [Record(ts, d, a(d)) for ts, d in slow_pcap_records(trace)]
    new = ReplayDriver(dp_new, tmp_path / "new", batch=5).run(recs)
    dp_old = build_dataplane(topo)
    old = reference_replay(dp_old, iter(recs), tmp_path / "old", 5)
    assert outcome(dp_new, new, tmp_path / "new") == outcome(dp_old, old, tmp_path / "old")


def test_stream_batches_are_runs_of_one_port_in_time_that_never_goes_back(tmp_path) -> None:
    """The stream the discrete driver shares, on its own: every frame once, in order, stamped."""
    trace = gen(tmp_path, "t.pcap", *TRACES["mixed-vlans"])
    a = SourceMacAssigner([1, 2, 3, 4, 5, 6, 7])
    want = [(ts, d, a(d)) for ts, d in slow_pcap_records(trace)]
    stream = stream_batches(records_by_source_mac(trace, SourceMacAssigner([1, 2, 3, 4, 5, 6, 7])), batch=5)
    got: list[tuple[int, bytes, int]] = []
    prev_port, prev_len = None, 0
    for port, frames, nbytes, tick in stream:
        assert 1 <= len(frames) <= 5 and not tick
        assert nbytes == sum(len(f.data) for f in frames)
        assert all(f.in_port == port for f in frames)
        if len(got) and prev_port == port:
            assert prev_len == 5                # a run is cut only when full or the port changes
        prev_port, prev_len = port, len(frames)
        got.extend((f.ts_ns, f.data, f.in_port) for f in frames)
    assert [(d, p) for _, d, p in got] == [(d, p) for _, d, p in want]
    clock = 0
    for (ts, _, _), (want_ts, _, _) in zip(got, want, strict=True):
        clock = max(clock, want_ts)
        assert ts == clock
    assert stream.frames == len(want) and stream.error is None


@pytest.mark.skipif(not CAPTURES, reason=f"shared captures not found at {SHARED}")
@pytest.mark.parametrize("read_size", [1, 17, 100, 4096])
def test_chunked_reads_give_every_shared_capture_as_before(read_size, monkeypatch) -> None:
    """Records split across reads anywhere: the same records, and the same error at the same place."""
    monkeypatch.setattr(pcap, "READ_SIZE", read_size)
    checked = 0
    for path in CAPTURES:
        with open(path, "rb") as f:
            if f.read(4) == b"\x0a\x0d\x0d\x0a":
                continue
        try:
            cap = read_capture(path)
        except (NotEthernet, CaptureError):
            continue
        ours, err = [], None
        try:
            for rec in cap:
                ours.append(rec)
        except CaptureError as e:
            err = str(e)
        theirs, their_err = [], None
        try:
            for rec in slow_pcap_records(Path(path)):
                theirs.append(rec)
        except CaptureError as e:
            their_err = str(e)
        assert ours == theirs, path
        assert err == their_err, path
        checked += 1
    assert checked > 20
