"""Offline replay: captures in, counters and per-port pcaps out, clear errors on bad files."""

from __future__ import annotations

import glob
import json
import struct
from pathlib import Path

import dpkt
import pytest

from bench.cli import main as bench_main
from bench.traces import ether
from vswitch.drivers.replay import ReplayDriver, SourceMacAssigner, records_by_source_mac, records_per_port
from vswitch.io.pcap import CaptureError, NotEthernet, PcapWriter, read_capture
from vswitch.topology import PortConfig, Topology, build_dataplane, parse_topology


def _shared_captures() -> Path:
    """The shared tcpdump-tests folder beside the checkout (a git worktree sits a level deeper)."""
    here = Path(__file__).resolve()
    for parent in here.parents[2:]:
        if (parent / "shared" / "pcaps" / "tcpdump-tests").is_dir():
            return parent / "shared" / "pcaps" / "tcpdump-tests"
    return here.parents[3] / "shared" / "pcaps" / "tcpdump-tests"


SHARED = _shared_captures()
CAPTURES = sorted(glob.glob(str(SHARED / "*.pcap*")))
A, B, C = (bytes([2, 0, 0, 0, 0, i]) for i in (1, 2, 3))
BCAST = b"\xff" * 6


def linktype_of(path: str) -> int:
    """Read the link type straight from the file header (independently of vswitch.io.pcap).

    pcap: libpcap's LT_LINKTYPE(x) = x & 0x03FFFFFF; the upper bits carry its FCS-length
    extension (tcpdump reads 0x30000001 as Ethernet).  pcapng: the first interface's type.
    """
    with open(path, "rb") as f:
        head = f.read(24)
        if head[:4] == b"\x0a\x0d\x0d\x0a":
            f.seek(0)
            return dpkt.pcapng.Reader(f).datalink()
    magic = struct.unpack("<I", head[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    return struct.unpack(endian + "I", head[20:24])[0] & 0x03FFFFFF


def write_pcap(path: Path, frames: list[tuple[int, bytes]]) -> Path:
    with PcapWriter(path) as w:
        for ts, data in frames:
            w.write(data, ts)
    return path


def four_ports():
    return build_dataplane(Topology(ports=[PortConfig(f"p{i}", type="replay") for i in range(1, 5)]))


@pytest.mark.skipif(not CAPTURES, reason=f"shared captures not found at {SHARED}")
@pytest.mark.parametrize("path", CAPTURES, ids=[Path(p).name for p in CAPTURES])
def test_every_shared_capture_replays_and_counters_add_up(path: str) -> None:
    dp = four_ports()
    driver = ReplayDriver(dp)
    assign = SourceMacAssigner(list(dp.switch.ports))
    if linktype_of(path) != 1:
        with pytest.raises(NotEthernet) as exc:
            driver.run(records_by_source_mac(path, assign))
        msg = str(exc.value)
        assert "\n" not in msg and "not Ethernet" in msg and f"link type {linktype_of(path)}" in msg
        return
    res = driver.run(records_by_source_mac(path, assign))
    snap = dp.graph.snapshot()
    sw = snap["elements"]["br0"]
    rx = sum(p["rx_packets"] for p in snap["ports"].values())
    assert rx == res.frames
    # Every ingress frame is forwarded, flooded or dropped with a named reason.
    assert sw["forwarded"] + sw["flooded"] + sum(sw["drops"].values()) == rx
    # Port rx_dropped is the same drops seen from the ports.
    assert sum(p["rx_dropped"] for p in snap["ports"].values()) == sum(sw["drops"].values())
    # Frames leaving = known unicast + flood copies.
    tx = sum(p["tx_packets"] for p in snap["ports"].values())
    assert tx == sw["forwarded"] + sw["flood_copies"]


@pytest.mark.skipif(not CAPTURES, reason="shared captures not found")
def test_cli_replays_all_shared_captures_without_traceback(capsys, tmp_path) -> None:
    status = bench_main(["replay", "-q", "--json", str(tmp_path / "all.json"), *CAPTURES])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert "refused" not in out.out          # refusals are errors: stderr, one line each
    refused = [line for line in out.err.splitlines() if line.startswith("refused:")]
    non_eth = [p for p in CAPTURES if linktype_of(p) != 1]
    assert len(refused) == len(non_eth) > 0
    assert status == 1          # refusals make the run fail, as any unreadable input
    data = json.loads((tmp_path / "all.json").read_text())
    assert set(data) == set(CAPTURES)
    assert all(data[p].get("refused") for p in non_eth)


def test_truncated_record_reports_record_and_offset_and_keeps_earlier_frames(tmp_path) -> None:
    frames = [(i * 1000, ether(BCAST, A, 0x0800, bytes(46))) for i in range(3)]
    path = write_pcap(tmp_path / "t.pcap", frames)
    data = path.read_bytes()
    path.write_bytes(data[:-10])                  # cut the last record's data short
    got = []
    with pytest.raises(CaptureError) as exc:
        for rec in read_capture(path):
            got.append(rec)
    assert len(got) == 2
    offset3 = 24 + 2 * (16 + 60)
    assert f"record 3 at offset {offset3}" in str(exc.value) and "truncated" in str(exc.value)

    dp = four_ports()
    res = ReplayDriver(dp).run(records_by_source_mac(path, SourceMacAssigner(list(dp.switch.ports))))
    assert res.frames == 2 and "record 3" in (res.error or "")


def test_truncated_record_header_and_corrupt_length(tmp_path) -> None:
    frames = [(0, ether(BCAST, A, 0x0800, bytes(46)))]
    path = write_pcap(tmp_path / "h.pcap", frames)
    path.write_bytes(path.read_bytes() + b"\x00" * 7)   # half a record header
    with pytest.raises(CaptureError, match=r"record 2 at offset 100: truncated record header \(7 of 16"):
        list(read_capture(path))
    # A record claiming a 1 GB capture length.
    hdr = dpkt.pcap.LEPktHdr(tv_sec=0, tv_usec=0, caplen=1 << 30, len=1 << 30)
    bad = write_pcap(tmp_path / "c.pcap", frames)
    bad.write_bytes(bad.read_bytes() + bytes(hdr) + b"x" * 100)
    with pytest.raises(CaptureError, match=r"record 2 at offset 100: captured length 1073741824"):
        list(read_capture(bad))


def test_cli_errors_are_one_clear_line(tmp_path, capsys) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture at all")
    assert bench_main(["replay", str(junk)]) == 1
    err = capsys.readouterr()
    assert "not a pcap or pcapng file (magic 0x" in err.out + err.err
    assert bench_main(["replay", str(tmp_path / "missing.pcap")]) == 1
    assert "cannot open" in capsys.readouterr().err
    assert bench_main(["replay", "--port", "p1"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err
    assert bench_main(["replay", "--map", "zz:zz=p1", str(junk)]) == 2
    assert "invalid MAC" in capsys.readouterr().err


def test_egress_pcaps_hold_what_each_port_sent(tmp_path) -> None:
    frames = [
        (1_000, ether(BCAST, A, 0x0806, bytes(28))),     # A on p1, broadcast: to p2, p3, p4
        (2_000, ether(A, B, 0x0806, bytes(28))),         # B on p2 -> A: known unicast to p1 only
        (3_000, ether(B, A, 0x0800, bytes(46))),         # A -> B: to p2 only
        (4_000, ether(C, A, 0x0800, bytes(46))),         # unknown C: flood to p2, p3, p4
    ]
    cap = write_pcap(tmp_path / "in.pcap", frames)
    dp = four_ports()
    res = ReplayDriver(dp, out_dir=tmp_path / "out").run(
        records_by_source_mac(cap, SourceMacAssigner(list(dp.switch.ports))))
    assert res.error is None and res.frames == 4
    got = {}
    for name, path in res.outputs.items():
        with open(path, "rb") as f:
            got[name] = [(round(float(ts) * 1e9), bytes(buf)) for ts, buf in dpkt.pcap.Reader(f)]
    assert got["p1"] == [(2_000, frames[1][1])]
    assert got["p2"] == [(1_000, frames[0][1]), (3_000, frames[2][1]), (4_000, frames[3][1])]
    assert got["p3"] == got["p4"] == [(1_000, frames[0][1]), (4_000, frames[3][1])]


def test_per_port_files_merge_by_time_and_aging_uses_capture_time(tmp_path) -> None:
    # A talks at t=0 on p1; B sends to A at t=10 s (known), then at t=400 s (A aged out: flood).
    s = 1_000_000_000
    fa = write_pcap(tmp_path / "a.pcap", [(0, ether(BCAST, A, 0x0806, bytes(28)))])
    fb = write_pcap(tmp_path / "b.pcap", [(10 * s, ether(A, B, 0x0800, bytes(46))),
                                          (400 * s, ether(A, B, 0x0800, bytes(46)))])
    topo = parse_topology({"bridge": {"ageing_time": 300},
                           "port": [{"name": "pa", "type": "replay"}, {"name": "pb", "type": "replay"},
                                    {"name": "pc", "type": "replay"}]})
    dp = build_dataplane(topo)
    res = ReplayDriver(dp).run(records_per_port({dp.numbers["pb"]: fb, dp.numbers["pa"]: fa}))
    assert res.frames == 3 and res.duration_ns == 400 * s
    sw = dp.switch.snapshot()
    assert sw["forwarded"] == 1            # the t=10 s frame
    assert sw["flood_unknown"] == 1        # the t=400 s frame, after A aged out
    assert sw["fdb"]["expired"] == 2        # A (seen at 0 s) and B (seen at 10 s), both > 300 s old
    ports = dp.graph.snapshot()["ports"]
    assert ports["pa"]["tx_packets"] == 2 and ports["pc"]["tx_packets"] == 2


def test_demo_prints_the_mac_table(capsys) -> None:
    assert bench_main(["demo", "--offline"]) == 0
    out = capsys.readouterr().out
    for mac in ("02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"):
        assert mac in out
    assert "MAC table" in out and "rx_packets" in out
