"""Replay input and output edge cases (issue 8, section 3): what a user gets for bad paths, odd
captures and corrupt files: one clear line on stderr, nothing replayed when an input or an output
is unusable, honest counts and time.

Captures are built here byte by byte (pcap record headers with struct, pcapng blocks with dpkt's
block classes), never with the reader under test.
"""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pytest
from dpkt import pcapng as ng
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_replay import SHARED

from bench.cli import main as bench_main
from vswitch.drivers.replay import ReplayDriver, SourceMacAssigner, records_by_source_mac
from vswitch.io.pcap import CaptureError, NotEthernet, read_capture
from vswitch.topology import PortConfig, Topology, build_dataplane, parse_topology

S = 1_000_000_000
A, B, C = (bytes([2, 0, 0, 0, 0, i]) for i in (1, 2, 3))
BCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes, n: int = 0) -> bytes:
    """A 60-byte Ethernet frame; ``n`` goes into the payload so frames differ."""
    return dst + src + b"\x08\x00" + n.to_bytes(4, "big") + bytes(42)


def pcap_bytes(records: list[tuple[int, bytes]], linktype: int = 1, orig_extra: int = 0) -> bytes:
    """A little-endian microsecond pcap with the given 32-bit link-type field."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for ts_us, data in records:
        out.append(struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(data),
                               len(data) + orig_extra))
        out.append(data)
    return b"".join(out)


# -- pcapng blocks (dpkt's block classes write them) ---------------------------------------------

def shb() -> bytes:
    return bytes(ng.SectionHeaderBlockLE())


def idb(linktype: int = 1, tsresol: int | None = None) -> bytes:
    opts = []
    if tsresol is not None:
        opts = [ng.PcapngOptionLE(code=ng.PCAPNG_OPT_IF_TSRESOL, data=bytes([tsresol])),
                ng.PcapngOptionLE(code=ng.PCAPNG_OPT_ENDOFOPT)]
    return bytes(ng.InterfaceDescriptionBlockLE(linktype=linktype, snaplen=65535, opts=opts))


def epb(iface: int, ticks: int, data: bytes) -> bytes:
    return bytes(ng.EnhancedPacketBlockLE(iface_id=iface, ts_high=ticks >> 32, ts_low=ticks & 0xFFFFFFFF,
                                          pkt_data=data))


def four_ports():
    return build_dataplane(Topology(ports=[PortConfig(f"p{i}", type="replay") for i in range(1, 5)]))


def replay(path: Path, dp=None, out_dir: Path | None = None):
    dp = dp or four_ports()
    res = ReplayDriver(dp, out_dir=out_dir).run(
        records_by_source_mac(path, SourceMacAssigner(list(dp.switch.ports))))
    return dp, res


def pcap_frames(path: str | Path) -> list[tuple[int, bytes]]:
    """(ts ns, bytes) of a pcap the replay wrote, read with dpkt's own reader."""
    with open(path, "rb") as f:
        return [(round(float(ts) * 1e9), bytes(buf)) for ts, buf in dpkt.pcap.Reader(f)]


# -- outputs are checked before the replay --------------------------------------------------------

@pytest.mark.parametrize("which", ["json-under-a-file", "json-is-a-directory", "out-is-a-file",
                                   "out-under-a-file"])
def test_unwritable_outputs_are_refused_before_anything_is_replayed(tmp_path, capsys, which) -> None:
    cap = tmp_path / "in.pcap"
    cap.write_bytes(pcap_bytes([(0, frame(BCAST, A))]))
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me\n")
    args = {"json-under-a-file": ["--json", str(blocker / "x.json")],
            "json-is-a-directory": ["--json", str(tmp_path)],
            "out-is-a-file": ["--out", str(blocker)],
            "out-under-a-file": ["--out", str(blocker / "out")]}[which]
    status = bench_main(["replay", "-q", *args, str(cap)])
    got = capsys.readouterr()
    assert status != 0
    assert "replayed" not in got.out          # refused before the replay, not after it
    lines = got.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in got.err
    assert ("--json" if "json" in which else "--out") in lines[0] and "cannot write" in lines[0]
    assert blocker.read_text() == "keep me\n"  # nothing touched


def test_outputs_checked_for_every_capture_before_the_first_replays(tmp_path, capsys) -> None:
    # Two captures write to out/<stem>/; the second's directory cannot be made: nothing runs,
    # and the first's directory, made by the check, is taken back.
    one, two = tmp_path / "one.pcap", tmp_path / "two.pcap"
    for p in (one, two):
        p.write_bytes(pcap_bytes([(0, frame(BCAST, A))]))
    out = tmp_path / "out"
    out.mkdir()
    (out / "two").write_text("a file where a directory should go")
    assert bench_main(["replay", "-q", "--out", str(out), str(one), str(two)]) == 2
    got = capsys.readouterr()
    assert "replayed" not in got.out and "cannot write" in got.err
    assert sorted(p.name for p in out.iterdir()) == ["two"]


# -- a missing or unreadable capture is refused up front ------------------------------------------

def test_missing_capture_is_refused_before_anything_is_replayed(tmp_path, capsys) -> None:
    good = tmp_path / "good.pcap"
    good.write_bytes(pcap_bytes([(0, frame(BCAST, A))]))
    missing = tmp_path / "missing.pcap"
    json_out = tmp_path / "c.json"
    assert bench_main(["replay", "-q", "--json", str(json_out), str(good), str(missing)]) == 1
    got = capsys.readouterr()
    assert got.out == ""                       # no "replayed 0 frames", no summary for good.pcap
    assert got.err.strip().splitlines() == [f"vswitch-bench: {missing}: cannot open: No such file or directory"]
    assert not json_out.exists()


def test_directory_as_capture_is_refused_in_one_line(tmp_path, capsys) -> None:
    assert bench_main(["replay", str(tmp_path)]) == 1
    got = capsys.readouterr()
    assert got.out == "" and got.err.strip() == f"vswitch-bench: {tmp_path}: cannot open: Is a directory"


# -- counts read as English -----------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2])
def test_summary_says_1_frame_and_2_frames(tmp_path, capsys, n) -> None:
    cap = tmp_path / "in.pcap"
    cap.write_bytes(pcap_bytes([(i, frame(BCAST, A, i)) for i in range(n)]))
    assert bench_main(["replay", "-q", str(cap)]) == 0
    out = capsys.readouterr().out
    want = "replayed 1 frame (60 bytes)" if n == 1 else "replayed 2 frames (120 bytes)"
    assert want in out and "replayed 1 frames" not in out


# -- errors go to stderr, one line each, however long -----------------------------------------------

def test_refusals_and_errors_go_to_stderr_unwrapped(tmp_path, capsys) -> None:
    long_dir = tmp_path / ("d" * 120)
    long_dir.mkdir()
    sll = long_dir / "cooked.pcap"
    sll.write_bytes(pcap_bytes([(0, bytes(16))], linktype=113))
    cut = long_dir / "cut.pcap"
    cut.write_bytes(pcap_bytes([(0, frame(BCAST, A)), (1, frame(BCAST, A, 1))])[:-5])
    assert bench_main(["replay", "-q", str(sll), str(cut)]) == 1
    got = capsys.readouterr()
    assert not [line for line in got.out.splitlines() if line.startswith(("refused", "error"))]
    err = got.err.splitlines()
    assert len(err) == 2, err
    assert err[0].startswith(f"refused: {sll}: link type 113") and err[0].endswith("Ethernet captures only")
    assert err[1].startswith(f"error: {cut}: record 2 at offset") and err[1].endswith(
        "(the 1 frame before it was replayed)")
    # The summary line (stdout) is not wrapped either.
    summary = [line for line in got.out.splitlines() if "replayed" in line]
    assert len(summary) == 1 and summary[0].startswith(f"{cut}: replayed 1 frame")


# -- time: out-of-order records do not move the switch's clock back --------------------------------

def test_backward_timestamps_keep_virtual_time_monotonic_and_the_span_honest(tmp_path) -> None:
    # A at 1000 s; B at 0 s (out of order: replayed at 1000 s, as tcpreplay sends a late packet
    # at once); at 1200 s C sends to B: B was learned at (virtual) 1000 s, 200 s ago, within the
    # 300 s ageing time, so the frame is forwarded, not flooded as if B had been learned at 0 s.
    recs = [(1000 * S, frame(BCAST, A)), (0, frame(BCAST, B)), (1200 * S, frame(B, C))]
    cap = tmp_path / "back.pcap"
    cap.write_bytes(pcap_bytes([(ts // 1000, data) for ts, data in recs]))
    topo = parse_topology({"bridge": {"ageing_time": 300},
                           "port": [{"name": f"p{i}", "type": "replay"} for i in range(1, 5)]})
    dp, res = replay(cap, build_dataplane(topo), out_dir=tmp_path / "out")
    sw = dp.switch.snapshot()
    assert sw["forwarded"] == 1 and sw["fdb"]["expired"] == 0
    for path in res.outputs.values():            # egress carries the switch's (monotonic) time
        times = [ts for ts, _ in pcap_frames(path)]
        assert times == sorted(times)
    assert (1000 * S, recs[1][1]) in pcap_frames(res.outputs["p1"])
    assert res.duration_ns == 1200 * S           # min (0 s) to max (1200 s), never negative
    assert res.frames == 3 and res.out_of_order == 1


def test_cli_reports_out_of_order_records_and_a_non_negative_span(tmp_path, capsys) -> None:
    cap = tmp_path / "back.pcap"
    cap.write_bytes(pcap_bytes([(9_144_985_000 + 1000, frame(BCAST, A)), (1000, frame(BCAST, B))]))
    assert bench_main(["replay", "-q", str(cap)]) == 0
    out = capsys.readouterr().out
    assert "capture spans 9144.985 s" in out and "-9144" not in out
    assert "1 record out of order (time not moved back)" in out


# -- FCS-length bits in the pcap link-type field (libpcap's LT_FCS_LENGTH_PRESENT / LT_FCS_LENGTH) --

def test_fcs_length_present_strips_the_fcs_before_the_switch(tmp_path) -> None:
    # 0x24000001: Ethernet, FCS length present (bit 26), 2 x 16 bits = 4 bytes of FCS per frame.
    frames = [frame(BCAST, A), frame(A, B, 1)]
    fcs = b"\xde\xad\xbe\xef"
    cap = tmp_path / "fcs.pcap"
    cap.write_bytes(pcap_bytes([(i, f + fcs) for i, f in enumerate(frames)], linktype=0x24000001))
    reader = read_capture(cap)
    assert [data for _, data in reader] == frames and reader.fcs_len == 4
    dp, res = replay(cap, out_dir=tmp_path / "out")
    assert res.frames == 2 and res.bytes == 120 and res.error is None
    assert any("4-byte FCS stripped" in n for n in res.notes)
    assert [d for _, d in pcap_frames(res.outputs["p2"])] == [frames[0]]
    assert [d for _, d in pcap_frames(res.outputs["p1"])] == [frames[1]]


def test_fcs_of_a_snaplen_cut_frame_is_stripped_only_where_captured(tmp_path) -> None:
    # Original frame 64 bytes (60 + 4 FCS); 62 captured: 2 FCS bytes present; a 40-byte cut has none.
    data = frame(BCAST, A) + b"\xde\xad\xbe\xef"
    raw = bytearray(pcap_bytes([(0, data[:62]), (1, data[:40])], linktype=0x24000001))
    struct.pack_into("<I", raw, 24 + 12, 64)                      # record 1: orig len 64
    struct.pack_into("<I", raw, 24 + 16 + 62 + 12, 64)            # record 2: orig len 64
    cap = tmp_path / "cut.pcap"
    cap.write_bytes(bytes(raw))
    assert [d for _, d in read_capture(cap)] == [data[:60], data[:40]]


@pytest.mark.parametrize("field", [0x30000001, 0x40000001, 0x04000001])
def test_ethernet_with_fcs_bits_but_no_length_present_is_ethernet_unchanged(tmp_path, field) -> None:
    # libpcap reads LT_LINKTYPE = field & 0x03FFFFFF = 1 (Ethernet); without bit 26 the FCS length
    # is unknown, and 0x04000001 says 0 bytes: nothing is stripped.
    data = frame(BCAST, A) + b"\x01\x02\x03\x04"
    cap = tmp_path / "e.pcap"
    cap.write_bytes(pcap_bytes([(0, data)], linktype=field))
    reader = read_capture(cap)
    assert [d for _, d in reader] == [data] and reader.fcs_len == 0


def test_non_ethernet_with_fcs_bits_is_refused_naming_the_link_type(tmp_path) -> None:
    cap = tmp_path / "atm.pcap"
    cap.write_bytes(pcap_bytes([(0, bytes(8))], linktype=0x3000007B))
    with pytest.raises(NotEthernet, match=r"link type 123 \(.*\) is not Ethernet \(1\).*0x3000007b"):
        read_capture(cap)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared captures not found at {SHARED}")
@pytest.mark.parametrize("name", ["esp_truncated.pcap", "aarp-heapoverflow-1.pcap", "bootp_asan.pcap"])
def test_real_ethernet_captures_with_fcs_bits_replay_as_tcpdump_reads_them(name) -> None:
    # tcpdump -r says "link-type EN10MB (Ethernet)" for all three (fields 0x40000001, 0x30000001,
    # 0x04000001); the frames are the file's record bytes, unchanged.
    path = SHARED / name
    raw = path.read_bytes()
    caplen = struct.unpack_from("<I", raw, 24 + 8)[0]
    first = raw[24 + 16:24 + 16 + caplen]
    frames = [d for _, d in read_capture(path)]
    assert frames[0] == first
    dp, res = replay(path)
    assert res.frames == len(frames) > 0


# -- pcapng: the link type of each interface, and packets that name no interface -------------------

def test_pcapng_packets_of_a_non_ethernet_interface_are_skipped_and_counted(tmp_path, capsys) -> None:
    eth = [frame(BCAST, A), frame(A, B, 1)]
    cooked = bytes(16) + b"\x45" + bytes(19)       # a Linux cooked (SLL) header and an IPv4 header
    cap = tmp_path / "two-ifaces.pcapng"
    cap.write_bytes(shb() + idb(1) + idb(113)
                    + epb(0, 1, eth[0]) + epb(1, 2, cooked) + epb(0, 3, eth[1]) + epb(1, 4, cooked))
    reader = read_capture(cap)
    assert [d for _, d in reader] == eth
    assert reader.skipped == 2
    dp, res = replay(cap)
    assert res.frames == 2 and res.skipped == 2
    assert sum(p["rx_packets"] for p in dp.graph.snapshot()["ports"].values()) == 2
    assert bench_main(["replay", "-q", str(cap)]) == 0
    out = capsys.readouterr().out
    assert "replayed 2 frames" in out
    assert "skipped 2 packets of non-Ethernet interfaces (interface 1, link type 113" in out


def test_pcapng_with_no_ethernet_interface_is_refused(tmp_path) -> None:
    cap = tmp_path / "no-eth.pcapng"
    cap.write_bytes(shb() + idb(113) + idb(127) + epb(0, 1, bytes(20)))
    with pytest.raises(NotEthernet, match=r"link type 113 .* interface 0 and link type 127 .* "
                                          r"interface 1 are not Ethernet \(1\)"):
        read_capture(cap)


def test_pcapng_packet_naming_a_missing_interface_is_corrupt(tmp_path) -> None:
    blocks = [shb(), idb(1), epb(0, 1, frame(BCAST, A)), epb(3, 2, frame(BCAST, B))]
    cap = tmp_path / "ghost.pcapng"
    cap.write_bytes(b"".join(blocks))
    offset = sum(map(len, blocks[:3]))
    got = []
    with pytest.raises(CaptureError, match=rf"record 2 at offset {offset}: names interface 3, but "
                                           r"this section describes only 1 \(interface 0\)"):
        for rec in read_capture(cap):
            got.append(rec)
    assert len(got) == 1
    dp, res = replay(cap)
    assert res.frames == 1 and "names interface 3" in (res.error or "")


def test_pcapng_timestamps_use_each_interfaces_resolution_exactly(tmp_path) -> None:
    # Interface 0 in microseconds (the default), interface 1 in nanoseconds (if_tsresol 9); a
    # nanosecond timestamp of 2024 is beyond a float's precision.
    t_ns = 1_717_171_717_123_456_789
    cap = tmp_path / "res.pcapng"
    cap.write_bytes(shb() + idb(1) + idb(1, tsresol=9)
                    + epb(0, 1_717_171_717_123_456, frame(BCAST, A)) + epb(1, t_ns, frame(BCAST, B)))
    assert [ts for ts, _ in read_capture(cap)] == [1_717_171_717_123_456_000, t_ns]


def spb(data: bytes) -> bytes:
    """A Simple Packet Block (dpkt has no class for it): no interface id, no timestamp."""
    body = struct.pack("<I", len(data)) + data + bytes(-len(data) % 4)
    return struct.pack("<II", 3, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def test_pcapng_sections_simple_packets_and_time_offsets(tmp_path) -> None:
    # Section 1: an SLL interface 0 and an Ethernet interface 1.  Section 2 starts afresh: its
    # interface 0 is Ethernet with if_tsoffset 100 s; a Simple Packet Block there enters on
    # interface 0 at the time of the record before it (it has none of its own).
    offset = [ng.PcapngOptionLE(code=14, data=struct.pack("<q", 100)), ng.PcapngOptionLE(code=0)]
    idb_offset = bytes(ng.InterfaceDescriptionBlockLE(linktype=1, snaplen=65535, opts=offset))
    frames = [frame(BCAST, A, i) for i in range(3)]
    cap = tmp_path / "sections.pcapng"
    cap.write_bytes(shb() + idb(113) + idb(1) + epb(0, 5, bytes(20)) + epb(1, 7, frames[0])
                    + shb() + idb_offset + epb(0, 2_000_000, frames[1]) + spb(frames[2]))
    reader = read_capture(cap)
    assert list(reader) == [(7_000, frames[0]), (102 * S, frames[1]), (102 * S, frames[2])]
    assert reader.skipped_by_interface == {"interface 0, link type 113 LINUX_SLL (Linux cooked capture)": 1}
    # Interface 1 existed in section 1 only.
    bad = tmp_path / "stale.pcapng"
    bad.write_bytes(shb() + idb(1) + idb(1) + shb() + idb(1) + epb(1, 1, frames[0]))
    with pytest.raises(CaptureError, match="record 1 at offset .*: names interface 1, but this section "
                                           r"describes only 1 \(interface 0\)"):
        list(read_capture(bad))


# -- pcapng corruption: every message says what is wrong ------------------------------------------

GOOD_NG = shb() + idb(1) + epb(0, 1, frame(BCAST, A)) + epb(0, 2, frame(BCAST, B))
SECOND = len(shb() + idb(1) + epb(0, 1, frame(BCAST, A)))      # offset of the second packet block


def _with(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value):]


@pytest.mark.parametrize(("data", "reason"), [
    (GOOD_NG[:-10], rf"record 2 at offset {SECOND}: truncated: block length says 92 bytes, the file has 82"),
    (GOOD_NG + b"\x06\x00", rf"block at offset {len(GOOD_NG)} \(after record 2\): truncated block header"
                            r" \(2 of 8 bytes\)"),
    (_with(GOOD_NG, SECOND + 4, struct.pack("<I", 8)), rf"record 2 at offset {SECOND}: block length 8 is "
                                                       r"less than the 12-byte minimum"),
    (_with(GOOD_NG, SECOND + 4, struct.pack("<I", 90)), rf"record 2 at offset {SECOND}: block length 90 is "
                                                        r"not a multiple of 4"),
    (_with(GOOD_NG, len(GOOD_NG) - 4, struct.pack("<I", 96)),
     rf"record 2 at offset {SECOND}: trailing block length 96 differs from the leading 92"),
    (_with(GOOD_NG, SECOND + 20, struct.pack("<I", 200)),
     rf"record 2 at offset {SECOND}: captured length 200 exceeds the 60 bytes of packet data the block holds"),
    (_with(GOOD_NG, SECOND + 4, struct.pack("<I", 1 << 30)),
     rf"record 2 at offset {SECOND}: block length 1073741824 exceeds"),
])
def test_corrupt_pcapng_messages_name_the_record_and_what_is_wrong(tmp_path, data, reason) -> None:
    cap = tmp_path / "bad.pcapng"
    cap.write_bytes(data)
    got = []
    with pytest.raises(CaptureError, match=reason) as exc:
        for rec in read_capture(cap):
            got.append(rec)
    before = 2 if "after record 2" in reason else 1
    assert len(got) == before and "()" not in str(exc.value) and "\n" not in str(exc.value)


def test_pcapng_packet_before_any_interface_is_corrupt(tmp_path) -> None:
    cap = tmp_path / "noidb.pcapng"
    cap.write_bytes(shb() + epb(0, 1, frame(BCAST, A)))
    with pytest.raises(CaptureError, match=r"record 1 at offset 28: a packet block before any "
                                           r"Interface Description Block"):
        read_capture(cap)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(GOOD_NG)), flips=st.lists(st.tuples(st.integers(0, len(GOOD_NG) - 1),
                                                                   st.integers(0, 255)), max_size=4))
def test_any_damaged_pcapng_gives_records_or_one_clear_capture_error(tmp_path, cut, flips) -> None:
    data = bytearray(GOOD_NG[:cut])
    for at, value in flips:
        if at < len(data):
            data[at] = value
    cap = tmp_path / "fuzz.pcapng"
    cap.write_bytes(bytes(data))
    try:
        for _ts, frame_bytes in read_capture(cap):
            assert isinstance(frame_bytes, bytes)
    except CaptureError as e:
        msg = str(e)
        reason = msg.rsplit(": ", 1)[-1]
        assert msg.startswith(f"{cap}: ") and "\n" not in msg and "()" not in msg and reason.strip()


def _shared_plain_pcaps() -> list[str]:
    from tests.unit.test_replay import CAPTURES, linktype_of
    out = []
    for p in CAPTURES:
        with open(p, "rb") as f:
            head = f.read(24)
        if len(head) == 24 and head[:4] != b"\x0a\x0d\x0d\x0a" and linktype_of(p) == 1:
            field = struct.unpack("<I" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">I",
                                  head[20:24])[0]
            if not field & 0x04000000:               # no FCS to strip: dpkt and we read the same bytes
                out.append(p)
    return out


@pytest.mark.parametrize("path", _shared_plain_pcaps(), ids=lambda p: Path(p).name)
def test_pcap_records_are_dpkts_on_every_shared_capture(path) -> None:
    ours: list[tuple[int, bytes]] = []
    try:
        for rec in read_capture(path):
            ours.append(rec)
        damaged = False
    except CaptureError:
        damaged = True
    theirs = []
    with open(path, "rb") as f:
        try:
            for ts, buf in dpkt.pcap.Reader(f):
                theirs.append((ts, bytes(buf)))
        except Exception:                          # dpkt stops (or not) at damage in its own way
            pass
    if not damaged:
        assert len(ours) == len(theirs)
    assert len(theirs) >= len(ours)
    for (ts, data), (dts, dbuf) in zip(ours, theirs, strict=False):
        assert data == dbuf
        assert abs(ts - round(float(dts) * 1e9)) <= 1000      # dpkt's float seconds keep ~0.2 µs
