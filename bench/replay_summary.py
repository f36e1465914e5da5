"""tcpreplay's summary lines, with its arithmetic, and its flow count (pure: no I/O).

The lines and their arithmetic follow tcpreplay 4.5 (src/common/utils.c packet_stats,
src/tcpreplay.c flow_stats, src/common/sendpacket.c sendpacket_getstat): the elapsed
time is truncated to whole microseconds and every rate is integer arithmetic on it,
truncated, not rounded:

    Actual: {pkts} packets ({bytes} bytes) sent in {s}.{2 digits} seconds   (.{6 digits} under 1 s)
    Rated: {Bps}.{1} Bps, {Mbps}.{2} Mbps, {pps}.{2} pps                     (Mbps .{3} under 1 Mbps)
    Flows: {n} flows, {fps}.{2} fps, {n} unique flow packets, {n} unique non-flow packets
    Failed write attempts: {n}                                               (only when some failed)
    Statistics for network device: {IF}
    \tSuccessful packets:        {n}
    \tFailed packets:            {n}
    \tTruncated packets:         {n}
    \tRetried packets (ENOBUFS): {n}
    \tRetried packets (EAGAIN):  {n}

Mbps is Bps * 8 / 1e6 (from the truncated Bps).  "bytes" are captured bytes (caplen).
The Flows line is left out when no flow was seen, as tcpreplay does.

Flows are counted as tcpreplay's flow_decode (src/common/flows.c, 4.5) counts them: a
flow is the directional 5-tuple (source and destination address, source and
destination port, IP protocol) of an IPv4 or IPv6 packet; ICMP and ICMPv6 use type and
code as ports, other protocols port 0.  VLAN tags (0x8100, 0x88a8, 0x9100) are skipped
and not part of the key (tcpreplay's key has a VLAN field it never fills).  The first
packet of a 5-tuple makes a flow; later ones count as flow packets too.  Non-IP frames
are "non-flow packets".  Frames too short for their headers, 802.3 (length-field) frames
and frames with an EtherType of 1501-1535 are invalid: counted in neither.  Where this
departs from tcpreplay: MPLS frames are non-flow here (tcpreplay 4.5 looks through the
label stack); flow expiry (--flow-expiry) is not implemented.  Debian's tcpreplay 4.4.3
differs from 4.5 in two bugs fixed since: it reads an 802.3 frame whose LLC byte starts
with nibble 4 (STP's 0x42) as IPv4, and it takes an IPv6 packet's version from the first
byte of the Ethernet header (so it counts most IPv6 packets as non-flow).

Over loops and preloading tcpreplay counts differently, and so does this module
(`FlowCount.totals`): streaming, each packet attempted is classified as it goes, and the
flow table lives for the whole run, so a second loop adds flow packets but no flows;
with the capture preloaded (``--preload``, tcpreplay's -K) the flows are counted once,
while loading, over the whole capture, whatever --loop and --limit say.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

# Kinds of frame, one byte each in `FlowCount.kinds`.
NEW, EXISTING, NON_FLOW, INVALID = 1, 2, 3, 4

_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
_PORT_HDR = {6: 20, 17: 8, 1: 4, 58: 4}          # bytes the header needs: TCP, UDP, ICMP, ICMPv6
_U16 = struct.Struct("!H")


def flow_key(frame: bytes) -> bytes | int:
    """The frame's flow key (bytes), or NON_FLOW / INVALID, as tcpreplay's flow_decode."""
    n = len(frame)
    if n <= 18:                                   # get_l2len_protocol: datalen <= 14 + 4
        return INVALID
    etype = _U16.unpack_from(frame, 12)[0]
    l2 = 14
    while etype in _VLAN_TPIDS:
        if n < l2 + 4:
            return INVALID
        etype = _U16.unpack_from(frame, l2 + 2)[0]
        l2 += 4
    if etype < 1536:
        return INVALID                            # 802.3 length field, or 1501-1535
    if etype == 0x0800:
        if n < l2 + 20:
            return INVALID
        if frame[l2] >> 4 != 4:
            return NON_FLOW
        ip_len = (frame[l2] & 0x0F) * 4
        proto = frame[l2 + 9]
        addrs = frame[l2 + 12:l2 + 20]
    elif etype == 0x86DD:
        if n < l2 + 40:
            return INVALID
        if frame[l2] >> 4 != 6:
            return NON_FLOW
        ip_len = 40
        proto = frame[l2 + 6]
        if proto == 0:                            # one hop-by-hop header, as tcpreplay looks
            if n < l2 + 42:
                return INVALID
            proto = frame[l2 + 40]
            ip_len += (frame[l2 + 41] + 1) * 8
        addrs = frame[l2 + 8:l2 + 40]
    else:
        return NON_FLOW
    need = _PORT_HDR.get(proto)
    if need is None:
        ports = b"\0\0\0\0"
    else:
        at = l2 + ip_len
        if n < at + need:
            return INVALID
        if proto in (1, 58):
            ports = b"\0" + frame[at:at + 1] + b"\0" + frame[at + 1:at + 2]   # type, code
        else:
            ports = frame[at:at + 4]
    return addrs + ports + bytes((proto,))


@dataclass
class FlowCount:
    """The kind of each frame of the captures in one loop, in replay order (one flow table for the run)."""

    sizes: list[int] = field(default_factory=list)       # frames per capture
    kinds: bytearray = field(default_factory=bytearray)  # NEW / EXISTING / NON_FLOW / INVALID per frame

    @classmethod
    def of(cls, captures: Iterable[Iterable[bytes]]) -> FlowCount:
        out = cls()
        seen: set[bytes] = set()
        kinds = out.kinds
        for frames in captures:
            n = 0
            for frame in frames:
                k = flow_key(frame)
                if isinstance(k, int):
                    kinds.append(k)
                elif k in seen:
                    kinds.append(EXISTING)
                else:
                    seen.add(k)
                    kinds.append(NEW)
                n += 1
            out.sizes.append(n)
        return out

    def totals(self, attempted: int, preloaded: bool) -> tuple[int, int, int]:
        """(flows, flow packets, non-flow packets) as tcpreplay prints them after `attempted` frames."""
        kinds = bytes(self.kinds)

        def count(b: bytes) -> tuple[int, int, int]:
            return b.count(NEW), b.count(EXISTING), b.count(NON_FLOW)
        new, existing, non_flow = count(kinds)
        if preloaded:
            return new, new + existing, non_flow
        if not kinds:
            return 0, 0, 0
        loops, rest = divmod(attempted, len(kinds))
        p_new, p_existing, p_non_flow = count(kinds[:rest])
        return ((new if loops else p_new), loops * (new + existing) + p_new + p_existing,
                loops * non_flow + p_non_flow)


@dataclass
class SendStats:
    """What the sender counted (tcpreplay's sendpacket_t and tcpreplay_stats_t)."""

    sent: int = 0                  # Successful packets (and the Actual line's packets)
    bytes: int = 0                 # bytes of the successful packets
    failed: int = 0
    truncated: int = 0
    retry_enobufs: int = 0
    retry_eagain: int = 0
    errors: dict[str, int] = field(default_factory=dict)     # failures by errno name

    @property
    def attempted(self) -> int:
        return self.sent + self.failed + self.truncated


def elapsed_us(elapsed_ns: int) -> int:
    return elapsed_ns // 1000


def actual_line(pkts: int, nbytes: int, elapsed_ns: int) -> str:
    sec, nsec = divmod(elapsed_ns, 1_000_000_000)
    if elapsed_ns >= 1_000_000_000:
        frac = f"{nsec // 10_000_000:02d}"
    else:
        frac = f"{nsec // 1000:06d}"
    return f"Actual: {pkts} packets ({nbytes} bytes) sent in {sec}.{frac} seconds"


def rates(pkts: int, nbytes: int, elapsed_ns: int) -> tuple[int, int, int, int]:
    """tcpreplay's Bps x10, Mbps x1000 and pps x100 (integer, truncated) and the elapsed whole µs."""
    diff_us = elapsed_us(elapsed_ns)
    if not (diff_us and pkts and nbytes):
        return 0, 0, 0, diff_us
    if nbytes > 1_000_000_000 and diff_us > 1_000_000:
        bps_x10 = nbytes * 10 * 1000 // (diff_us // 1000)
        pps_x100 = pkts * 100 * 1000 // (diff_us // 1000)
    else:
        bps_x10 = nbytes * 10 * 1000 * 1000 // diff_us
        pps_x100 = pkts * 100 * 1000 * 1000 // diff_us
    mbps_x1000 = (bps_x10 // 10) * 8 // 1000
    return bps_x10, mbps_x1000, pps_x100, diff_us


def rated_line(pkts: int, nbytes: int, elapsed_ns: int) -> str:
    bps_x10, mb_x1000, pps_x100, _ = rates(pkts, nbytes, elapsed_ns)
    mb = mb_x1000 // 1000
    mbps = f"{mb}.{(mb_x1000 // 10) % 100:02d}" if mb >= 1 else f"{mb}.{mb_x1000 % 1000:03d}"
    return f"Rated: {bps_x10 // 10}.{bps_x10 % 10} Bps, {mbps} Mbps, {pps_x100 // 100}.{pps_x100 % 100:02d} pps"


def flows_line(flows: int, flow_pkts: int, non_flow: int, elapsed_ns: int) -> str | None:
    if not flows:
        return None
    diff_us = elapsed_us(elapsed_ns)
    fps_x100 = flows * 100 * 1000 * 1000 // diff_us if diff_us else 0
    return (f"Flows: {flows} flows, {fps_x100 // 100}.{fps_x100 % 100:02d} fps, {flow_pkts} unique flow packets, "
            f"{non_flow} unique non-flow packets")


def device_lines(ifname: str, st: SendStats) -> list[str]:
    return [f"Statistics for network device: {ifname}",
            f"\tSuccessful packets:        {st.sent}",
            f"\tFailed packets:            {st.failed}",
            f"\tTruncated packets:         {st.truncated}",
            f"\tRetried packets (ENOBUFS): {st.retry_enobufs}",
            f"\tRetried packets (EAGAIN):  {st.retry_eagain}"]


def summary_lines(ifname: str, st: SendStats, elapsed_ns: int,
                  flows: tuple[int, int, int] | None) -> list[str]:
    """tcpreplay's end-of-run report, in its order."""
    out = [actual_line(st.sent, st.bytes, elapsed_ns), rated_line(st.sent, st.bytes, elapsed_ns)]
    if st.failed:
        out.append(f"Failed write attempts: {st.failed}")
    if flows is not None:
        line = flows_line(*flows, elapsed_ns)
        if line:
            out.append(line)
    return out + device_lines(ifname, st)


def parse_summary(text: str) -> dict[str, float]:
    """The figures of tcpreplay's summary lines (from tcpreplay or from us): packets, bytes, seconds,
    Bps, Mbps, pps, flows, successful, failed, ... (for the benchmark and the tests)."""

    out: dict[str, float] = {}
    m = re.search(r"^Actual: (\d+) packets \((\d+) bytes\) sent in ([\d.]+) seconds", text, re.M)
    if m:
        out.update(packets=int(m[1]), bytes=int(m[2]), seconds=float(m[3]))
    m = re.search(r"^Rated: ([\d.]+) Bps, ([\d.]+) Mbps, ([\d.]+) pps", text, re.M)
    if m:
        out.update(Bps=float(m[1]), Mbps=float(m[2]), pps=float(m[3]))
    m = re.search(r"^Flows: (\d+) flows, ([\d.]+) fps, (\d+) unique flow packets, (\d+) unique non-flow", text,
                  re.M)
    if m:
        out.update(flows=int(m[1]), fps=float(m[2]), flow_packets=int(m[3]), non_flow_packets=int(m[4]))
    for key, label in (("successful", "Successful packets"), ("failed", "Failed packets"),
                       ("truncated", "Truncated packets"), ("retried_enobufs", r"Retried packets \(ENOBUFS\)"),
                       ("retried_eagain", r"Retried packets \(EAGAIN\)")):
        m = re.search(rf"^\t{label}: +(\d+)", text, re.M)
        if m:
            out[key] = int(m[1])
    return out

