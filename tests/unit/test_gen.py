"""``vswitch-bench gen``: the trace parsed back (dpkt) and checked against what was asked.

Counts, sizes, rates from the timestamps (exact for constant arrivals, statistics for on/off and
Poisson with a fixed seed), seed determinism, checksums recomputed here (RFC 1071, not the
generator's code), VLAN tags, the east-west/north-south mix as the MACs say, tcpdump and tshark
reading both formats, and the topology sidecar replayed: each data frame leaves by the port of
its destination.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
from collections import Counter
from fractions import Fraction
from pathlib import Path

import dpkt
import pytest

from bench.cli import main as bench_main
from bench.gen import main as gen_main
from bench.gen_sidecar import load_port_map
from bench.tracegen import GenSpec, line_rate_pps
from vswitch.drivers.replay import ReplayDriver, SourceMacAssigner, records_by_source_mac
from vswitch.io.pcap import PcapWriter, read_capture
from vswitch.topology import build_dataplane, load_topology

GUEST, WIRE = 1, 2               # the fourth byte of a generated MAC: who it is


def gen(tmp_path: Path, *args: str, name: str = "t.pcap") -> tuple[Path, dict]:
    out = tmp_path / name
    assert gen_main([str(out), "-q", *args]) == 0
    return out, json.loads(out.with_suffix(".json").read_text())


def records(path: Path) -> list[tuple[int, bytes]]:
    """(ns timestamp, frame) of every record (vswitch's reader keeps nanoseconds; dpkt's gives floats)."""
    cap = read_capture(path)
    try:
        return list(cap)
    finally:
        cap.close()


def dpkt_frames(path: Path) -> list[bytes]:
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        reader = dpkt.pcapng.Reader(f) if head == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(f)
        return [bytes(buf) for _, buf in reader]


def ip_of(frame: bytes) -> dpkt.ip.IP | None:
    eth = dpkt.ethernet.Ethernet(frame)
    return eth.data if isinstance(eth.data, dpkt.ip.IP) else None


def is_data(frame: bytes) -> bool:
    """A data frame: unicast IPv4 (the background is broadcast ARP and broadcast UDP)."""
    return frame[0] & 1 == 0 and ip_of(frame) is not None


def data_records(path: Path) -> list[tuple[int, bytes]]:
    return [(t, f) for t, f in records(path) if is_data(f)]


def kind_of(frame: bytes) -> str:
    src, dst = frame[6:12], frame[0:6]
    if src[3] == GUEST and dst[3] == GUEST:
        return "east-west"
    return "inbound" if src[3] == WIRE else "outbound"


def vlan_of(frame: bytes) -> int | None:
    return struct.unpack("!H", frame[14:16])[0] & 0xFFF if frame[12:14] == b"\x81\x00" else None


def rfc1071(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = 0
    for (w,) in struct.iter_unpack("!H", data):
        s += w
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def checksums_ok(frame: bytes) -> bool:
    """IPv4 header and UDP/TCP checksums, recomputed: the one's-complement sum over each is 0xFFFF."""
    off = 18 if frame[12:14] == b"\x81\x00" else 14
    ip = frame[off:]
    ihl = (ip[0] & 0xF) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    if rfc1071(ip[:ihl]) != 0xFFFF:
        return False
    seg = ip[ihl:total]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, ip[9], len(seg))
    if ip[9] == 17 and seg[6:8] == b"\0\0":
        return False                       # we always fill the UDP checksum
    return rfc1071(pseudo + seg) == 0xFFFF


def start_of_data(manifest: dict) -> int:
    return manifest["data_start_ns"]


# -- line rate ---------------------------------------------------------------------------------------

def test_line_rate_arithmetic_is_exact_and_matches_the_published_table():
    # experiments.md B.1 (10 GbE, 20 B preamble + IFG; the table rounds to the nearest frame).
    table = {64: 14_880_952, 128: 8_445_946, 256: 4_528_986, 512: 2_349_624, 1024: 1_197_318, 1518: 812_744}
    for size, pps in table.items():
        exact = line_rate_pps(size, 10**10, "l1")
        assert round(exact) == pps, size
    assert line_rate_pps(64, 10**10) == Fraction(10**10, 84 * 8)
    assert line_rate_pps(64, 10**10, "l2") == Fraction(10**10, 64 * 8)          # 19,531,250
    assert line_rate_pps(64, 10**10, "caplen") == Fraction(10**10, 60 * 8)


def test_10g_64b_line_rate_timestamps_are_exact(tmp_path):
    out, m = gen(tmp_path, "--gbps", "10", "--size", "64", "--duration", "1ms", "--no-announce")
    recs = records(out)
    # floor(1 ms x 14,880,952.38 pps) frames: those whose 67.2 ns slot ends by 1 ms.
    assert len(recs) == 14_880 == m["frames"]["data"]
    t0 = start_of_data(m)
    for i, (t, f) in enumerate(recs):
        assert len(f) == 60
        assert t - t0 == i * 672 * 10**9 // 10**10        # frame i starts after i x 84 bytes x 8 bits at 10 Gb/s
    # The whole second: exactly the published 14,880,952 frames (arithmetic only: the run above is its first ms).
    spec = GenSpec(bps=Fraction(10**10), duration_ns=10**9, announce=False)
    assert math.floor(spec.duration_ns * line_rate_pps(64, spec.bps) / 10**9) == 14_880_952


@pytest.mark.parametrize("count, wire_bytes", [("l1", 84), ("l2", 64), ("caplen", 60)])
def test_gbps_counts_the_bytes_asked(tmp_path, count, wire_bytes):
    out, m = gen(tmp_path, "--gbps", "1", "--count", count, "--frames", "1000", "--no-announce")
    recs = records(out)
    gaps = {b[0] - a[0] for a, b in zip(recs, recs[1:], strict=False)}
    # 1 Gb/s: one ns per bit; floor() of the cumulative schedule gives every gap exactly.
    assert gaps == {wire_bytes * 8}
    assert m["span_ns"] == 1000 * wire_bytes * 8


def test_pps_and_frame_count(tmp_path):
    out, m = gen(tmp_path, "--pps", "100000", "--frames", "5000", "--no-announce")
    recs = records(out)
    assert len(recs) == 5000
    assert {b[0] - a[0] for a, b in zip(recs, recs[1:], strict=False)} == {10_000}
    assert m["offered"]["pps"] == pytest.approx(100_000)


# -- sizes -------------------------------------------------------------------------------------------

def test_imix_proportions_and_byte_rate(tmp_path):
    n = 24_000
    out, m = gen(tmp_path, "--size", "imix", "--gbps", "2", "--frames", str(n), "--no-announce")
    frames = dpkt_frames(out)
    assert len(frames) == n
    sizes = Counter(len(f) + 4 for f in frames)
    assert set(sizes) == {64, 570, 1518}
    for size, weight in ((64, 7), (570, 4), (1518, 1)):
        p = weight / 12
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(sizes[size] - n * p) < 4 * sigma, (size, sizes)
    # The rate in bits: cumulative, so the whole trace's L1 bits over its span are 2 Gb/s.
    recs = records(out)
    bits = sum((len(f) + 24) * 8 for _, f in recs)
    assert bits / (m["span_ns"] / 1e9) == pytest.approx(2e9, rel=1e-6)


def test_weighted_and_uniform_sizes(tmp_path):
    out, _ = gen(tmp_path, "--size", "128:1,1024:3", "--frames", "4000")
    sizes = Counter(len(f) + 4 for f in dpkt_frames(out) if is_data(f))
    assert set(sizes) == {128, 1024} and 0.70 < sizes[1024] / 4000 < 0.80
    # Weights too large for a lookup table take the bisect path: the same draw.
    out, _ = gen(tmp_path, "--size", "128:100000,1024:300000", "--frames", "4000", name="w.pcap")
    sizes = Counter(len(f) + 4 for f in dpkt_frames(out) if is_data(f))
    assert set(sizes) == {128, 1024} and 0.70 < sizes[1024] / 4000 < 0.80
    out, _ = gen(tmp_path, "--size", "100-200", "--frames", "4000", name="u.pcap")
    sizes = Counter(len(f) + 4 for f in dpkt_frames(out) if is_data(f))
    assert min(sizes) == 100 and max(sizes) == 200 and len(sizes) > 90


# -- arrivals ----------------------------------------------------------------------------------------

def test_on_off_bursts(tmp_path):
    out, m = gen(tmp_path, "--pps", "1000000", "--pattern", "onoff", "--on", "100us", "--off", "400us",
                 "--duration", "5ms")
    recs = data_records(out)
    t0 = start_of_data(m)
    phases = [(t - t0) % 500_000 for t, _ in recs]
    assert max(phases) < 100_000                       # nothing in the off periods
    per_burst = Counter((t - t0) // 500_000 for t, _ in recs)
    assert sorted(per_burst) == list(range(10)) and set(per_burst.values()) == {100}
    assert m["offered"]["pps"] == pytest.approx(200_000)     # the mean: 1 Mpps x 100 / 500


def test_poisson_arrivals_are_plausible(tmp_path):
    out, m = gen(tmp_path, "--pps", "100000", "--pattern", "poisson", "--duration", "200ms", "--seed", "7")
    ts = [t for t, _ in data_records(out)]
    n = len(ts)
    assert abs(n - 20_000) < 4 * math.sqrt(20_000)            # Poisson(20,000) arrivals
    gaps = [b - a for a, b in zip(ts, ts[1:], strict=False)]
    mean = sum(gaps) / len(gaps)
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    assert mean == pytest.approx(10_000, rel=0.03)
    assert sd / mean == pytest.approx(1.0, abs=0.05)           # exponential: coefficient of variation 1
    assert sum(g > mean for g in gaps) / len(gaps) == pytest.approx(math.exp(-1), abs=0.02)
    windows = Counter((t - start_of_data(m)) // 1_000_000 for t in ts)   # 1 ms windows: Poisson(100)
    counts = [windows.get(i, 0) for i in range(200)]
    mu = sum(counts) / len(counts)
    var = sum((c - mu) ** 2 for c in counts) / (len(counts) - 1)
    assert 0.7 < var / mu < 1.3
    constant, _ = gen(tmp_path, "--pps", "100000", "--duration", "200ms", name="c.pcap")
    cts = [t for t, _ in data_records(constant)]
    assert len({b - a for a, b in zip(cts, cts[1:], strict=False)}) == 1     # the constant run has no spread


# -- determinism ---------------------------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    args = ["--guests", "6", "--vlans", "10,20", "--size", "imix", "--tcp", "0.5", "--pattern", "poisson",
            "--frames", "3000", "--arp-pps", "1000", "--bcast-pps", "1000"]
    a, _ = gen(tmp_path, *args, "--seed", "5", name="a.pcap")
    b, _ = gen(tmp_path, *args, "--seed", "5", name="b.pcap")
    c, _ = gen(tmp_path, *args, "--seed", "6", name="c.pcap")
    assert a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".toml").read_text().replace("a.pcap", "b.pcap") == b.with_suffix(".toml").read_text()
    assert a.read_bytes() != c.read_bytes()
    fa, fc = dpkt_frames(a), dpkt_frames(c)
    assert sum(x != y for x, y in zip(fa, fc, strict=False)) > len(fa) // 2


# -- contents ------------------------------------------------------------------------------------------

def test_checksums_valid_for_udp_and_tcp_tagged_and_untagged(tmp_path):
    out, _ = gen(tmp_path, "--guests", "6", "--vlans", "0,10,20", "--tagged-guests", "--tcp", "0.5",
                 "--size", "64-1518", "--frames", "6000", "--bcast-pps", "100000")
    seen = Counter()
    for f in dpkt_frames(out):
        ip = ip_of(f)
        if ip is None:
            continue
        assert checksums_ok(f), f.hex()
        seen[(ip.p, vlan_of(f) is not None)] += 1
    assert all(seen[(p, t)] > 100 for p in (6, 17) for t in (False, True)), seen
    # The check itself catches a wrong checksum: flip one payload bit of a frame that passed.
    f = next(f for f in dpkt_frames(out) if is_data(f))
    bad = bytearray(f)
    bad[-1] ^= 1
    assert not checksums_ok(bytes(bad))


def test_tcp_sequence_numbers_advance_by_the_payload(tmp_path):
    out, m = gen(tmp_path, "--tcp", "1", "--size", "imix", "--frames", "3000")
    last: dict[tuple, tuple[int, int]] = {}
    n = 0
    for f in dpkt_frames(out):
        ip = ip_of(f)
        if ip is None or f[0] & 1:
            continue
        tcp = ip.data
        assert isinstance(tcp, dpkt.tcp.TCP) and tcp.flags == dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH
        key = (ip.src, ip.dst, tcp.sport, tcp.dport)
        if key in last:
            seq, length = last[key]
            assert tcp.seq == (seq + length) & 0xFFFFFFFF
            n += 1
        last[key] = (tcp.seq, len(tcp.data))
    assert n > 2900 and all(fl["proto"] == "tcp" for fl in m["flows"])


def test_vlan_tags_where_the_trace_sees_them(tmp_path):
    out, m = gen(tmp_path, "--guests", "4", "--vlans", "10,20", "--frames", "4000")
    vlan = {p["mac"]: p["vlan"] for p in m["ports"] if p["role"] == "guest"}
    kinds = Counter()
    for f in dpkt_frames(out):
        if not is_data(f):
            continue
        src, dst = f[6:12].hex(":"), f[0:6].hex(":")
        k = kind_of(f)
        kinds[k] += 1
        if k == "inbound":
            assert vlan_of(f) == vlan[dst]                   # from the wire: tagged with the guest's VLAN
        else:
            assert vlan_of(f) is None                       # a guest sends untagged into its access port
        if k == "east-west":
            assert vlan[src] == vlan[dst]                   # guests talk within their VLAN
    assert all(kinds[k] > 500 for k in ("east-west", "inbound", "outbound"))
    tagged, m2 = gen(tmp_path, "--guests", "4", "--vlans", "10,20", "--tagged-guests", "--frames", "2000",
                     name="tg.pcap")
    vlan = {p["mac"]: p["vlan"] for p in m2["ports"] if p["role"] == "guest"}
    for f in dpkt_frames(tagged):
        if is_data(f):
            guest = f[0:6] if kind_of(f) == "inbound" else f[6:12]
            assert vlan_of(f) == vlan[guest.hex(":")]


def test_east_west_north_south_mix(tmp_path):
    n = 20_000
    out, m = gen(tmp_path, "--east-west", "0.3", "--inbound", "0.75", "--frames", str(n), "--guests", "5")
    kinds = Counter(kind_of(f) for f in dpkt_frames(out) if is_data(f))
    for k, p in (("east-west", 0.3), ("inbound", 0.7 * 0.75), ("outbound", 0.7 * 0.25)):
        assert abs(kinds[k] - n * p) < 4 * math.sqrt(n * p * (1 - p)), kinds
        assert m["frames"][k] == kinds[k]
    only_ns, _ = gen(tmp_path, "--east-west", "0", "--inbound", "1", "--frames", "500", name="ns.pcap")
    assert {kind_of(f) for f in dpkt_frames(only_ns) if is_data(f)} == {"inbound"}


def test_manifest_flows_add_up_to_the_trace(tmp_path):
    out, m = gen(tmp_path, "--tcp", "0.5", "--vlans", "10,20", "--guests", "6", "--frames", "5000")
    per_flow = Counter()
    for f in dpkt_frames(out):
        ip = ip_of(f)
        if ip is not None and is_data(f):
            per_flow[(f[6:12].hex(":"), f[0:6].hex(":"), ip.data.sport)] += 1
    listed = {(fl["src_mac"], fl["dst_mac"], fl["sport"]): fl["frames"] for fl in m["flows"]}
    assert per_flow == +Counter(listed)
    assert sum(listed.values()) == m["frames"]["data"] == 5000
    assert m["frames"]["total"] == len(dpkt_frames(out))


def test_background_and_announcements(tmp_path):
    out, m = gen(tmp_path, "--guests", "4", "--vlans", "10,20", "--wire-hosts", "3", "--duration", "20ms",
                 "--arp-pps", "1000", "--bcast-pps", "500")
    recs = records(out)
    arps = [(t, dpkt.ethernet.Ethernet(f)) for t, f in recs if dpkt.ethernet.Ethernet(f).type in (0x0806, 0x8100)
            and isinstance(dpkt.ethernet.Ethernet(f).data, dpkt.arp.ARP)]
    gratuitous = [(t, e) for t, e in arps if e.data.spa == e.data.tpa]
    assert len(gratuitous) == 4 + 3 * 2 == m["frames"]["announce"]     # each guest; each wire host per VLAN
    first_data = min(t for t, f in recs if is_data(f))
    assert all(t < first_data for t, _ in gratuitous)
    assert len(arps) - len(gratuitous) == 20 == m["frames"]["arp"]          # 1000/s for 20 ms
    bcast = [f for _, f in recs if f[0:6] == b"\xff" * 6 and ip_of(f) is not None]
    assert len(bcast) == 10 == m["frames"]["broadcast"]
    assert all(checksums_ok(f) and f[0] == 0xFF for f in bcast)
    assert all(e.data.op == dpkt.arp.ARP_OP_REQUEST and e.dst == b"\xff" * 6 for _, e in arps)


def test_pcapng_holds_the_same_records_as_pcap(tmp_path):
    args = ["--size", "imix", "--frames", "2000", "--vlans", "10", "--arp-pps", "10000"]
    a, _ = gen(tmp_path, *args, name="a.pcap")
    b, mb = gen(tmp_path, "--pcapng", *args, name="b.pcapng")
    assert b.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a" and mb["pcapng"]
    c, mc = gen(tmp_path, "--pcapng", *args, name="c.pcap")      # the format is the option's, not the name's
    assert c.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a" and mc["pcapng"] and records(c) == records(a)
    assert records(a) == records(b)
    assert dpkt_frames(a) == dpkt_frames(b)


# -- other tools ---------------------------------------------------------------------------------------

TCPDUMP = shutil.which("tcpdump")
TSHARK = shutil.which("tshark")


@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_tcpdump_reads_it_and_finds_no_bad_checksum(tmp_path, fmt):
    out, m = gen(tmp_path, *(["--pcapng"] if fmt == "pcapng" else []), "--tcp", "0.5", "--vlans", "10,20",
                 "--guests", "4", "--size", "imix", "--frames", "2000", name=f"t.{fmt}")
    r = subprocess.run([TCPDUMP, "-nn", "-vv", "-r", str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln[:1].isdigit()]       # one per packet (-vv continues lines)
    assert len(lines) == m["frames"]["total"]
    assert r.stdout.count("(correct)") + r.stdout.count("[udp sum ok]") == 2000
    assert "incorrect" not in r.stdout and "bad udp cksum" not in r.stdout and "bad cksum" not in r.stdout
    # tcpdump does flag a broken checksum (so the check above can fail): corrupt one frame's UDP sum.
    raw = bytearray(out.read_bytes())
    if fmt == "pcap":
        frames = records(out)
        off = 24
        for _, f in frames:
            off += 16
            if is_data(f) and ip_of(f).p == 17:
                at = off + (18 if f[12:14] == b"\x81\x00" else 14) + 26
                raw[at] ^= 0xFF
                break
            off += len(f)
        bad = tmp_path / "bad.pcap"
        bad.write_bytes(bytes(raw))
        r = subprocess.run([TCPDUMP, "-nn", "-vv", "-r", str(bad)], capture_output=True, text=True, timeout=60)
        assert "bad udp cksum" in r.stdout


@pytest.mark.skipif(TSHARK is None, reason="tshark (Wireshark) is not installed")
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_wireshark_shows_no_checksum_error_and_no_warning(tmp_path, fmt):
    out, m = gen(tmp_path, *(["--pcapng"] if fmt == "pcapng" else []), "--tcp", "0.5", "--vlans", "0,10",
                 "--guests", "4", "--size", "imix", "--frames", "2000", "--arp-pps", "100000",
                 "--bcast-pps", "100000", name=f"t.{fmt}")
    check = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"]
    r = subprocess.run([TSHARK, "-n", "-r", str(out), *check, "-T", "fields", "-e", "frame.number",
                        "-e", "ip.checksum.status", "-e", "udp.checksum.status", "-e", "tcp.checksum.status",
                        "-e", "_ws.expert.severity"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert len(rows) == m["frames"]["total"]
    ip_rows = [row for row in rows if row[1]]
    # Status 1 is "Good" (2 would be "Bad"); no expert info of any severity (no malformed packet either).
    assert len(ip_rows) > 2000 and all(row[1] == "1" and (row[2] or row[3]) == "1" for row in ip_rows)
    assert not any(row[4] for row in rows)


# -- the sidecar and replay ------------------------------------------------------------------------------

def port_of(mac: bytes, guests: dict[bytes, str]) -> str:
    """Where a frame to ``mac`` must leave, by the documented rule: a guest's MAC -> its port, else the uplink."""
    return guests.get(mac, "uplink")


def data_id(frame: bytes) -> tuple:
    """A data frame's identity whatever the switch did to its tag: addresses, ports, IP id."""
    ip = ip_of(frame)
    assert ip is not None
    return (ip.src, ip.dst, ip.data.sport, ip.id)


def replay_and_check(out: Path, manifest: dict, tmp_path: Path, assigner) -> dict[str, Counter]:
    topo = load_topology(out.with_suffix(".toml"))
    dp = build_dataplane(topo)
    egress = tmp_path / "egress"
    res = ReplayDriver(dp, out_dir=egress).run(records_by_source_mac(out, assigner(dp)))
    assert res.frames == manifest["frames"]["total"]
    guests = {bytes.fromhex(p["mac"].replace(":", "")): p["name"] for p in manifest["ports"] if p["role"] == "guest"}
    want: dict[str, Counter] = {}
    for f in dpkt_frames(out):
        if is_data(f):
            want.setdefault(port_of(f[0:6], guests), Counter())[data_id(f)] += 1
    got: dict[str, Counter] = {}
    for port in [p.name for p in topo.ports]:
        for f in dpkt_frames(egress / f"{port}.pcap"):
            if is_data(f):
                got.setdefault(port, Counter())[data_id(f)] += 1
    return {"want": want, "got": got}  # type: ignore[dict-item]


def test_topology_loads_and_replay_sends_every_frame_to_its_port(tmp_path):
    out, m = gen(tmp_path, "--guests", "6", "--vlans", "10,20", "--wire-hosts", "3", "--tcp", "0.3",
                 "--size", "imix", "--frames", "3000", "--arp-pps", "20000", "--bcast-pps", "20000")
    topo = load_topology(out.with_suffix(".toml"))
    assert [p.name for p in topo.ports] == ["uplink", *(f"g{i}" for i in range(1, 7))]
    for p, listed in zip(topo.ports[1:], m["ports"][1:], strict=True):
        assert (p.mac, p.tag, p.vlan().mode) == (listed["mac"], listed["vlan"], "access")
    assert topo.ports[0].vlan().mode == "trunk" and topo.nic is None
    pm = load_port_map(out.with_suffix(".json"))

    def by_manifest(dp):
        return SourceMacAssigner(list(dp.switch.ports), {mac: dp.numbers[p] for mac, p in pm.macs.items()},
                                 dp.numbers[pm.default_port])
    r = replay_and_check(out, m, tmp_path / "a", by_manifest)
    assert r["got"] == r["want"]
    assert set(r["want"]) == {"uplink", *(f"g{i}" for i in range(1, 7))}
    # The map matters: round-robin by first appearance (replay without --map-from) puts guests on the
    # wrong ports and VLANs, and the same check fails.
    r = replay_and_check(out, m, tmp_path / "b", lambda dp: SourceMacAssigner(list(dp.switch.ports)))
    assert r["got"] != r["want"]


@pytest.mark.parametrize("mode", ["vmdq", "software"])
def test_nic_topology_replays_to_the_same_ports(tmp_path, mode):
    out, m = gen(tmp_path, "--guests", "4", "--vlans", "10,20", "--nic", mode, "--frames", "2000",
                 "--arp-pps", "10000")
    topo = load_topology(out.with_suffix(".toml"))
    assert topo.nic is not None and topo.nic.mode == mode and topo.nic.uplink == "uplink"
    pm = load_port_map(out.with_suffix(".json"))

    def by_manifest(dp):
        return SourceMacAssigner(list(dp.switch.ports), {mac: dp.numbers[p] for mac, p in pm.macs.items()},
                                 dp.numbers[pm.default_port])
    r = replay_and_check(out, m, tmp_path, by_manifest)
    assert r["got"] == r["want"]


def test_replay_map_from_on_the_command_line(tmp_path, capsys):
    out, m = gen(tmp_path, "--guests", "4", "--vlans", "10,20", "--frames", "1000")
    js = tmp_path / "counters.json"
    assert bench_main(["replay", "-q", "--map-from", str(out.with_suffix(".json")), "--json", str(js),
                       str(out)]) == 0
    snap = json.loads(js.read_text())[str(out)]["counters"]
    rx = {name: p["rx_packets"] for name, p in snap["ports"].items()}
    sent = Counter(fl["ingress"] for fl in m["flows"] for _ in range(fl["frames"]))
    ann = {"uplink": 2 * 2, **{f"g{i}": 1 for i in range(1, 5)}}        # gratuitous ARPs: wire hosts per VLAN
    assert rx == {p: sent[p] + ann[p] for p in ann}
    sw = snap["elements"]["br0"]
    assert sw["forwarded"] == 1000 and sw["flood_unknown"] == 0 and not any(sw["drops"].values())


def test_map_from_sends_a_source_mac_it_does_not_name_to_the_uplink(tmp_path):
    out, m = gen(tmp_path, "--guests", "3", "--frames", "200")
    strangers = [bytes([2, 0, 0, 0x99, 0, i]) for i in range(3)]     # in no map: hosts on the wire
    extra = records(out)
    last = extra[-1][0]
    extra += [(last + 1000 * (i + 1), b"\xff" * 6 + mac + b"\x88\xb5" + bytes(46)) for i, mac in enumerate(strangers)]
    mixed = tmp_path / "mixed.pcap"
    with PcapWriter(mixed) as w:
        for t, f in extra:
            w.write(f, t)
    js = tmp_path / "c.json"
    assert bench_main(["replay", "-q", "--map-from", str(out.with_suffix(".json")), "--json", str(js),
                       str(mixed)]) == 0
    ports = json.loads(js.read_text())[str(mixed)]["counters"]["ports"]
    sent = Counter(fl["ingress"] for fl in m["flows"] for _ in range(fl["frames"]))
    assert ports["uplink"]["rx_packets"] == sent["uplink"] + 2 + 3       # 2 announcements, 3 from strangers
    assert all(ports[f"g{i}"]["rx_packets"] == sent[f"g{i}"] + 1 for i in range(1, 4))


def test_replay_map_from_refuses_what_is_not_a_manifest(tmp_path, capsys):
    out, _ = gen(tmp_path, "--frames", "10")
    bad = tmp_path / "bad.json"
    bad.write_text("{\"hello\": 1}")
    assert bench_main(["replay", "--map-from", str(bad), str(out)]) == 2
    err = capsys.readouterr().err
    assert "not a manifest of vswitch-bench gen" in err and err.count("\n") == 1
    other = tmp_path / "other.toml"
    other.write_text('[[port]]\nname = "p1"\ntype = "replay"\n')
    assert bench_main(["replay", "--map-from", str(out.with_suffix(".json")), "--config", str(other), str(out)]) == 2
    err = capsys.readouterr().err
    assert "is not in" in err and "Traceback" not in err


# -- bad input, memory ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--size", "63"], "frame sizes are 64-1518"),
    (["--size", "imix,64"], "not a frame size"),
    (["--vlans", "10,5000"], "bad VLAN 5000"),
    (["--east-west", "1.5"], "--east-west 1.5: a fraction"),
    (["--vlans", "10,20", "--guests", "2"], "east-west traffic needs two guests on the same VLAN"),
    (["--wire-hosts", "0"], "needs --wire-hosts"),
    (["--pps", "0"], "must be above 0"),
    (["--duration", "ten"], "--duration 'ten'"),
    (["--nic", "vmdq", "--guests", "64"], "at most 63 guests"),
    (["--frames", "0"], "--frames 0"),
    (["--flows", "20000"], "--flows 20000: 1-16384"),
])
def test_bad_input_is_refused_and_writes_nothing(tmp_path, capsys, args, says):
    out = tmp_path / "t.pcap"
    assert gen_main([str(out), *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_memory_does_not_grow_with_the_trace(tmp_path):
    """Streamed: ten times the frames, not ten times the memory (peak RSS of a fresh process each)."""
    import sys
    code = ("import resource, sys; from fractions import Fraction; from bench.tracegen import GenSpec, generate, "
            "parse_sizes; generate(GenSpec(pps=Fraction(10**6), frames=int(sys.argv[1]), sizes=parse_sizes('imix'), "
            "tcp=0.5), sys.argv[2]); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    root = Path(__file__).resolve().parents[2]

    def peak_kib(frames: int) -> int:
        r = subprocess.run([sys.executable, "-c", code, str(frames), str(tmp_path / f"{frames}.pcap")], cwd=root,
                           capture_output=True, text=True, timeout=300, check=True)
        return int(r.stdout)
    small, large = peak_kib(20_000), peak_kib(200_000)
    size = (tmp_path / "200000.pcap").stat().st_size
    assert size > 60 * 2**20                         # 200,000 frames of IMIX: ~70 MiB written
    assert large - small < 16 * 1024, (small, large)     # what a list of them would hold is ~4x this bound
