"""The trace generator behind ``vswitch-bench gen``: guests, flows, sizes, rates, arrivals.

A `GenSpec` says what to make; `generate` streams the frames to a capture
(`bench.trace_writer`) and returns a `GenResult` describing the guests, the
hosts on the wire and the flows it made, with what each carried, for the
sidecar (`bench.gen_sidecar`).

Who is where
------------
* Guest i (1-based) is port ``g<i>``: MAC 02:00:00:01:HH:LL and IPv4
  10.1.HH.LL, where HH:LL is i in two bytes; its VLAN is ``vlans[(i-1) %
  len(vlans)]`` (0 or no ``vlans``: untagged).
* Wire host j is behind the uplink port ``uplink``: MAC 02:00:00:02:HH:LL,
  IPv4 10.2.HH.LL.  It talks to guests on their VLANs (a router with one
  sub-interface per VLAN), so what it sends to a guest on VLAN v is tagged v.
* A frame enters by its source MAC: a guest's MAC -> that guest's port;
  anything else -> the uplink.  The sidecar lists every source MAC.
* What a guest sends is untagged (its port is an access port of its VLAN),
  or with ``tagged_guests`` tagged with its VLAN (the port is a trunk of that
  VLAN only, as for a guest doing its own 802.1Q).

Traffic
-------
Data frames are IPv4 UDP or TCP-looking (ACK|PSH, sequence numbers advancing
by the payload) with correct IPv4, UDP and TCP checksums; a UDP payload
starts with the flow id and the frame's sequence number in the flow (two
big-endian u32), the rest zeros.  Each frame picks its class (east-west:
guest to guest on the same VLAN; inbound: wire host to guest; outbound: guest
to wire host) by the mix, then one of that class's flows uniformly, then its
size.  Headers come from per-flow constants: per frame only the lengths, the
IP id, the sequence numbers and the checksums are computed (the sums of the
constant words are precomputed) and packed with one ``struct.pack``.

Sizes are frame sizes with the 4-byte FCS, as line-rate tables and IMIX
count them (a "64-byte frame" is 60 bytes in the capture); a VLAN tag is
inside the size.

Time
----
The offered rate is pps, or bits/s counted on ``count``: ``l1`` (default:
the frame, its FCS and the 20 bytes of preamble, SFD and inter-frame gap:
capture length + 24, so 10 Gb/s of 64-byte frames is 14,880,952.38 pps),
``l2`` (the frame with its FCS: capture length + 4) or ``caplen`` (the bytes
in the capture, as tcpreplay's --mbps counts).  Arrivals:

* ``constant``: frame i starts at floor(U_i / rate) ns, U_i the units (frames,
  or counted bits) before it, in exact integer arithmetic; with a duration D
  the trace holds the frames whose slot ends by D (floor(D x rate) frames of
  one size);
* ``onoff``: the same schedule run during ``on`` periods only, silent for
  ``off`` between them (the rate is the on-period rate; the mean is rate x
  on / (on + off));
* ``poisson``: exponential gaps with mean (the frame's units) / rate; the
  trace holds the arrivals before D.

ARP requests (broadcast, from a random host, for another host on its VLAN)
and UDP broadcasts (to 255.255.255.255, port 9) come on top at their own
constant rates.  With ``announce`` every guest, and every wire host on every
VLAN in use, first sends a gratuitous ARP (1 us apart, before the data), so
a switch has learned every MAC before the first data frame.
"""

from __future__ import annotations

import bisect
import math
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from bench.trace_writer import TraceWriter
from bench.traces import arp, ether, ipv4, udp
from vswitch.core.frame import BROADCAST

NS = 1_000_000_000
FCS = 4
PREAMBLE_IFG = 20                     # preamble 7 + SFD 1 + inter-frame gap 12
OVERHEAD = {"l1": FCS + PREAMBLE_IFG, "l2": FCS, "caplen": 0}   # bytes counted beyond the capture length
MIN_SIZE, MAX_SIZE = 64, 1518
IMIX = ((64, 7), (570, 4), (1518, 1))
PATTERNS = ("constant", "onoff", "poisson")
KINDS = ("east-west", "inbound", "outbound")
UPLINK = "uplink"
MAX_HOSTS = 4094
DATA_PORT = 9                          # discard: no dissector reads more into the payload
ANNOUNCE_GAP_NS = 1000
BATCH = 4096                           # records handed to the writer at once
_SPORT_BASE = 49152
MAX_FLOWS = 65536 - _SPORT_BASE


def line_rate_pps(size: int, bps: float | Fraction, count: str = "l1") -> Fraction:
    """Frames/s of ``size``-byte frames (with FCS) at ``bps`` counted on ``count``, exactly."""
    return Fraction(bps) / ((size - FCS + OVERHEAD[count]) * 8)


# -- the spec ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SizeDist:
    """Frame sizes (with FCS): weighted values, or a uniform integer range ``low``-``high``."""

    values: tuple[tuple[int, int], ...] = ((64, 1),)      # (size, weight)
    low: int = 0
    high: int = 0

    @property
    def uniform(self) -> bool:
        return self.high > 0

    def mean(self) -> Fraction:
        if self.uniform:
            return Fraction(self.low + self.high, 2)
        total = sum(w for _, w in self.values)
        return Fraction(sum(s * w for s, w in self.values), total)

    def describe(self) -> str:
        if self.uniform:
            return f"uniform {self.low}-{self.high}"
        if len(self.values) == 1:
            return str(self.values[0][0])
        if self.values == IMIX:
            return "imix (64:7,570:4,1518:1)"
        return ",".join(f"{s}:{w}" for s, w in self.values)

    def to_json(self) -> dict:
        if self.uniform:
            return {"uniform": [self.low, self.high]}
        return {"weights": {str(s): w for s, w in self.values}}


def parse_sizes(text: str) -> SizeDist:
    """``64``, ``imix``, ``64:7,570:4,1518:1`` (size:weight) or ``64-1518`` (uniform)."""
    t = text.strip().lower()

    def size(v: str) -> int:
        try:
            n = int(v)
        except ValueError:
            raise ValueError(f"--size {text!r}: {v!r} is not a frame size in bytes") from None
        if not MIN_SIZE <= n <= MAX_SIZE:
            raise ValueError(f"--size {text!r}: {n}: frame sizes are {MIN_SIZE}-{MAX_SIZE} bytes "
                             "(with the 4-byte FCS, as Ethernet counts them)")
        return n
    if t == "imix":
        return SizeDist(IMIX)
    if "-" in t and ":" not in t and "," not in t:
        lo, _, hi = t.partition("-")
        a, b = size(lo), size(hi)
        if a > b:
            raise ValueError(f"--size {text!r}: the range's low end is above its high end")
        return SizeDist(((a, 1),)) if a == b else SizeDist(low=a, high=b)
    out: list[tuple[int, int]] = []
    for part in t.split(","):
        s, sep, w = part.partition(":")
        weight = 1
        if sep:
            try:
                weight = int(w)
            except ValueError:
                raise ValueError(f"--size {text!r}: weight {w!r} is not a whole number") from None
            if weight < 1:
                raise ValueError(f"--size {text!r}: weight {weight}: weights are whole numbers >= 1")
        out.append((size(s), weight))
    sizes = [s for s, _ in out]
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"--size {text!r}: a size is listed twice")
    return SizeDist(tuple(out))


@dataclass(frozen=True)
class GenSpec:
    guests: int = 4
    vlans: tuple[int, ...] = ()
    tagged_guests: bool = False
    wire_hosts: int = 2
    flows: int = 16
    east_west: float = 0.5
    inbound: float = 0.5                # of the north-south frames
    tcp: float = 0.0                    # of the flows
    sizes: SizeDist = field(default_factory=SizeDist)
    pps: Fraction | None = None         # exactly one of pps and bps
    bps: Fraction | None = None
    count: str = "l1"
    duration_ns: int | None = None      # exactly one of duration_ns and frames
    frames: int | None = None
    pattern: str = "constant"
    on_ns: int = 1_000_000
    off_ns: int = 1_000_000
    arp_pps: Fraction = Fraction(0)
    bcast_pps: Fraction = Fraction(0)
    announce: bool = True
    seed: int = 1
    start_ns: int = 1_700_000_000 * NS

    def fractions(self) -> dict[str, float]:
        ns = 1.0 - self.east_west
        return {"east-west": self.east_west, "inbound": ns * self.inbound, "outbound": ns * (1.0 - self.inbound)}

    def check(self) -> None:
        """ValueError naming the option for anything this cannot generate."""
        if not 1 <= self.guests <= MAX_HOSTS:
            raise ValueError(f"--guests {self.guests}: 1-{MAX_HOSTS}")
        if not 0 <= self.wire_hosts <= MAX_HOSTS:
            raise ValueError(f"--wire-hosts {self.wire_hosts}: 0-{MAX_HOSTS}")
        for vid in self.vlans:
            if not 0 <= vid <= 4094:
                raise ValueError(f"--vlans: bad VLAN {vid}: a VLAN ID is 0-4094 (4095 is reserved by 802.1Q)")
        if not 1 <= self.flows <= MAX_FLOWS:
            raise ValueError(f"--flows {self.flows}: 1-{MAX_FLOWS} (each flow has a source port of its own, "
                             f"{_SPORT_BASE}-65535)")
        for name, v in (("--east-west", self.east_west), ("--inbound", self.inbound), ("--tcp", self.tcp)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} {v}: a fraction, 0-1")
        if (self.pps is None) == (self.bps is None):
            raise ValueError("give the offered rate once: --pps, --mbps or --gbps")
        rate = self.pps if self.pps is not None else self.bps
        if rate is None or rate <= 0:
            raise ValueError("the offered rate must be above 0")
        if self.count not in OVERHEAD:
            raise ValueError(f"--count {self.count!r}: use one of {', '.join(OVERHEAD)}")
        if (self.duration_ns is None) == (self.frames is None):
            raise ValueError("give the length once: --duration or --frames")
        if self.duration_ns is not None and self.duration_ns <= 0:
            raise ValueError("--duration must be above 0")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"--frames {self.frames}: need at least 1")
        if self.pattern not in PATTERNS:
            raise ValueError(f"--pattern {self.pattern!r}: use one of {', '.join(PATTERNS)}")
        if self.pattern == "onoff" and (self.on_ns <= 0 or self.off_ns < 0):
            raise ValueError("--on must be above 0 and --off at least 0")
        if self.arp_pps < 0 or self.bcast_pps < 0:
            raise ValueError("--arp-pps and --bcast-pps must be >= 0")
        if self.start_ns < 0 or self.start_ns >= (1 << 32) * NS:
            raise ValueError("--start: seconds since the epoch, 0 to 2^32 (a pcap stamps 32-bit seconds)")
        f = self.fractions()
        if f["inbound"] + f["outbound"] > 0 and self.wire_hosts == 0:
            raise ValueError("north-south traffic (--east-west below 1) needs --wire-hosts of at least 1")
        if f["east-west"] > 0 and not pairs_exist(self):
            raise ValueError("east-west traffic needs two guests on the same VLAN: "
                             "add --guests or use fewer --vlans (or --east-west 0)")


def guest_vlan(spec: GenSpec, i: int) -> int:
    return spec.vlans[(i - 1) % len(spec.vlans)] if spec.vlans else 0


def pairs_exist(spec: GenSpec) -> bool:
    seen: set[int] = set()
    for i in range(1, spec.guests + 1):
        v = guest_vlan(spec, i)
        if v in seen:
            return True
        seen.add(v)
    return False


# -- hosts and flows -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Host:
    name: str          # g<i> for guests, w<j> for wire hosts
    mac: bytes
    ip: bytes
    vlan: int          # a guest's VLAN (0: untagged); wire hosts: 0 (they use the guest's)
    port: str          # the port its frames enter by

    @property
    def guest(self) -> bool:
        return self.port != UPLINK


@dataclass
class Flow:
    id: int
    kind: str
    src: Host
    dst: Host
    vlan: int
    tagged: bool       # its frames carry an 802.1Q tag (VLAN ``vlan``)
    proto: str         # "udp" | "tcp"
    sport: int
    dport: int
    frames: int = 0
    bytes: int = 0     # capture bytes

    @property
    def egress(self) -> str:
        return self.dst.port


def _addr(kind: int, i: int) -> tuple[bytes, bytes]:
    hi, lo = i >> 8, i & 0xFF
    return bytes([2, 0, 0, kind, hi, lo]), bytes([10, kind, hi, lo])


def make_hosts(spec: GenSpec) -> tuple[list[Host], list[Host]]:
    guests = [Host(f"g{i}", *_addr(1, i), guest_vlan(spec, i), f"g{i}") for i in range(1, spec.guests + 1)]
    wire = [Host(f"w{j}", *_addr(2, j), 0, UPLINK) for j in range(1, spec.wire_hosts + 1)]
    return guests, wire


def tag_for(spec: GenSpec, sender: Host, vlan: int) -> bool:
    """Whether a frame ``sender`` sends on ``vlan`` carries a tag where the trace sees it (its ingress)."""
    return vlan != 0 and (not sender.guest or spec.tagged_guests)


def make_flows(spec: GenSpec, rng: random.Random, guests: list[Host], wire: list[Host]) -> dict[str, list[Flow]]:
    """The flows of each class: about ``spec.flows`` in all, in proportion to the mix (at least one
    for each class it uses), given to the guests round-robin (east-west from the guests that have a
    peer on their VLAN; outbound going on from where inbound stopped); a share ``tcp`` of each class
    is TCP, spread evenly."""
    frac = spec.fractions()
    used = [k for k in KINDS if frac[k] > 0]
    counts = {k: max(1, round(spec.flows * frac[k])) for k in used}
    by_vlan: dict[int, list[Host]] = {}
    for g in guests:
        by_vlan.setdefault(g.vlan, []).append(g)
    paired = [g for g in guests if len(by_vlan[g.vlan]) > 1]
    out: dict[str, list[Flow]] = {k: [] for k in KINDS}
    fid = 0
    for kind in used:
        for k in range(counts[kind]):
            fid += 1
            if kind == "east-west":
                src = paired[k % len(paired)]
                peers = [g for g in by_vlan[src.vlan] if g is not src]
                dst = peers[rng.randrange(len(peers))]
            else:                       # outbound flows start where the inbound ones stopped
                g = guests[(k + (counts.get("inbound", 0) if kind == "outbound" else 0)) % len(guests)]
                w = wire[rng.randrange(len(wire))]
                src, dst = (w, g) if kind == "inbound" else (g, w)
            vlan = src.vlan if src.guest else dst.vlan
            tcp = int((k + 1) * spec.tcp) > int(k * spec.tcp)
            out[kind].append(Flow(fid, kind, src, dst, vlan, tag_for(spec, src, vlan), "tcp" if tcp else "udp",
                                  _SPORT_BASE + (fid - 1) % MAX_FLOWS, DATA_PORT))
    return out


# -- frames --------------------------------------------------------------------------------------

def _words(b: bytes) -> int:
    return sum(struct.unpack(f"!{len(b) // 2}H", b))


# After the flow's head (Ethernet, IPv4 version/IHL/TOS): IPv4 length and id, DF/TTL/protocol (mid),
# checksum, addresses and ports (addrs); UDP: length and checksum, the flow id (tail), the frame's
# sequence number; TCP: sequence number, ack/flags/window (tail), checksum, urgent pointer 0.
_IP_UDP = struct.Struct("!I4sH12sI4sI")
_IP_TCP = struct.Struct("!I4sH12sI8sH2x")
_TCP_FLAGS = 0x5018                                  # data offset 5, ACK | PSH
_TCP_WINDOW = 65535
_TTL = 64


def l2_prefix(dst: bytes, src: bytes, vlan: int, tagged: bool, ethertype: int) -> bytes:
    tag = struct.pack("!HH", 0x8100, vlan) if tagged else b""
    return dst + src + tag + struct.pack("!H", ethertype)


class _FlowState:
    """A flow's constants for the per-frame path (header runs, checksum partial sums) and the first
    values of its IP id and (TCP) sequence number."""

    __slots__ = ("flow", "prefix", "l2len", "udp", "ip_c", "l4_c", "src", "dst", "sport", "dport",
                 "ident", "seq", "ack", "head", "mid", "addrs", "tail")

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.prefix = l2_prefix(flow.dst.mac, flow.src.mac, flow.vlan, flow.tagged, 0x0800)
        self.l2len = len(self.prefix)
        self.udp = flow.proto == "udp"
        proto = 17 if self.udp else 6
        self.src, self.dst = flow.src.ip, flow.dst.ip
        self.sport, self.dport = flow.sport, flow.dport
        addrs = _words(self.src) + _words(self.dst)
        # IPv4 words that never change in the flow: version/IHL/TOS, DF, TTL/protocol, addresses.
        self.ip_c = 0x4500 + 0x4000 + (_TTL << 8 | proto) + addrs
        self.ack = (flow.id * 2654435761) & 0xFFFFFFFF
        # L4: the pseudo-header's addresses and protocol, the ports, and (UDP) the flow id /
        # (TCP) the ack number, flags and window.
        if self.udp:
            self.l4_c = addrs + proto + flow.sport + flow.dport + (flow.id >> 16) + (flow.id & 0xFFFF)
        else:
            self.l4_c = (addrs + proto + flow.sport + flow.dport + (self.ack >> 16) + (self.ack & 0xFFFF)
                         + _TCP_FLAGS + _TCP_WINDOW)
        # The per-frame pack fills the gaps between these constant runs of bytes.
        self.head = self.prefix + b"\x45\x00"                             # version/IHL, TOS
        self.mid = struct.pack("!HBB", 0x4000, _TTL, proto)                # DF, TTL, protocol
        self.addrs = self.src + self.dst + struct.pack("!HH", flow.sport, flow.dport)
        self.tail = (struct.pack("!I", flow.id) if self.udp                # UDP: the flow id
                     else struct.pack("!IHH", self.ack, _TCP_FLAGS, _TCP_WINDOW))   # TCP: ack, flags, window
        self.ident = flow.id * 7919 & 0xFFFF
        self.seq = (flow.id * 40503 << 8) & 0xFFFFFFFF


# -- time ----------------------------------------------------------------------------------------

class _Background:
    """ARP requests or UDP broadcasts at a constant rate: frame n at (n + 1/2) / rate (not on t = 0)."""

    def __init__(self, rate: Fraction, make: Callable[[], bytes]) -> None:
        self.rate = Fraction(rate)
        self.make = make
        self.sent = 0
        self.bytes = 0

    def time(self) -> int | None:
        if self.rate <= 0:
            return None
        return int((2 * self.sent + 1) * NS * self.rate.denominator // (2 * self.rate.numerator))


# -- the run -------------------------------------------------------------------------------------

@dataclass
class GenResult:
    spec: GenSpec
    guests: list[Host]
    wire: list[Host]
    flows: list[Flow]
    data_start_ns: int
    span_ns: int                      # of the data part (for rates)
    frames: int = 0                   # everything written
    bytes: int = 0
    data_frames: int = 0
    data_bytes: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    arp: int = 0
    broadcast: int = 0
    announce: int = 0
    first_ts_ns: int = 0
    last_ts_ns: int = 0
    vlans_in_use: list[int] = field(default_factory=list)

    def rates(self) -> dict[str, float]:
        """Mean offered rates of the data frames over the data span."""
        s = self.span_ns / NS if self.span_ns else 0.0
        if not s:
            return {"pps": 0.0, "gbps_l1": 0.0, "gbps_l2": 0.0, "gbps_caplen": 0.0}
        n, b = self.data_frames, self.data_bytes
        return {"pps": n / s, "gbps_l1": (b + 24 * n) * 8 / s / 1e9, "gbps_l2": (b + 4 * n) * 8 / s / 1e9,
                "gbps_caplen": b * 8 / s / 1e9}


def generate(spec: GenSpec, path: str | Path, pcapng: bool = False) -> GenResult:
    """Write the trace to ``path`` (streamed: memory does not grow with its length)."""
    spec.check()
    rng = random.Random(spec.seed)
    guests, wire = make_hosts(spec)
    classes = make_flows(spec, rng, guests, wire)
    flows = [f for k in KINDS for f in classes[k]]
    vlans_in_use = sorted({g.vlan for g in guests})
    with TraceWriter(path, pcapng) as w:
        res = _run(spec, rng, guests, wire, classes, flows, vlans_in_use, w)
    return res


def _announcements(spec: GenSpec, guests: list[Host], wire: list[Host], vlans: list[int]) -> list[bytes]:
    out = []
    for h in guests:
        out.append(_arp_frame(spec, h, h.vlan, h.ip))
    for h in wire:
        for v in vlans:
            out.append(_arp_frame(spec, h, v, h.ip))
    return out


def _arp_frame(spec: GenSpec, sender: Host, vlan: int, target_ip: bytes) -> bytes:
    """An ARP request (who-has target_ip, tell sender), broadcast on ``vlan``; target = own IP: gratuitous."""
    return ether(BROADCAST, sender.mac, 0x0806, arp(1, sender.mac, sender.ip, bytes(6), target_ip),
                 vlan=vlan if tag_for(spec, sender, vlan) else None)


def _bcast_frame(spec: GenSpec, sender: Host, vlan: int, caplen: int) -> bytes:
    hdr = 18 if tag_for(spec, sender, vlan) else 14
    data = bytes(max(0, caplen - hdr - 28))
    dst_ip = b"\xff\xff\xff\xff"
    return ether(BROADCAST, sender.mac, 0x0800, ipv4(sender.ip, dst_ip, 17, udp(sender.ip, dst_ip, DATA_PORT,
                                                                               DATA_PORT, data)),
                 vlan=vlan if tag_for(spec, sender, vlan) else None)


def _sizer(spec: GenSpec, rng: random.Random) -> Callable[[], int]:
    """A picker of frame sizes (with FCS) from the size distribution (for the broadcast background)."""
    d = spec.sizes
    rnd = rng.random
    if d.uniform:
        lo, width = d.low, d.high - d.low + 1
        return lambda: lo + int(rnd() * width)
    cum: list[int] = []
    total = 0
    for _, wgt in d.values:
        total += wgt
        cum.append(total)
    sizes = [s for s, _ in d.values]
    return lambda: sizes[bisect.bisect_right(cum, rnd() * total)]


def _run(spec: GenSpec, rng: random.Random, guests: list[Host], wire: list[Host],
         classes: dict[str, list[Flow]], flows: list[Flow], vlans: list[int], w: TraceWriter) -> GenResult:
    stamps: list[int] = []          # the records not yet handed to the writer, in time order
    frames: list[bytes] = []

    def write(frame: bytes, ts: int) -> None:      # announcements and background (rare)
        stamps.append(ts)
        frames.append(frame)
    start = spec.start_ns
    ann = _announcements(spec, guests, wire, vlans) if spec.announce else []
    for k, frame in enumerate(ann):
        write(frame, start + k * ANNOUNCE_GAP_NS)
    data_start = start + len(ann) * ANNOUNCE_GAP_NS
    hosts = guests + wire
    size = _sizer(spec, rng)
    rnd = rng.random

    def arp_one() -> bytes:
        sender = hosts[int(rnd() * len(hosts))]
        vlan = sender.vlan if sender.guest else vlans[int(rnd() * len(vlans))]
        targets = [h for h in hosts if h is not sender and (not h.guest or h.vlan == vlan)]
        target = targets[int(rnd() * len(targets))].ip if targets else bytes([10, 3, 0, 1])
        return _arp_frame(spec, sender, vlan, target)

    def bcast_one() -> bytes:
        sender = hosts[int(rnd() * len(hosts))]
        vlan = sender.vlan if sender.guest else vlans[int(rnd() * len(vlans))]
        return _bcast_frame(spec, sender, vlan, size() - FCS)

    bgs = [_Background(spec.arp_pps, arp_one), _Background(spec.bcast_pps, bcast_one)]
    next_bg = _next_background(bgs)
    states = [_FlowState(f) for f in flows]
    index = {f.id: i for i, f in enumerate(flows)}
    consts = [(st.head, st.l2len, st.udp, st.ip_c, st.l4_c, st.mid, st.addrs, st.tail) for st in states]
    idents = [st.ident for st in states]
    seqs = [st.seq for st in states]
    counts = [0] * len(flows)
    nbytes = [0] * len(flows)
    frac = spec.fractions()
    ew, inb, outb = ([index[f.id] for f in classes[k]] for k in KINDS)
    n_ew, n_in, n_out = len(ew), len(inb), len(outb)
    cut_ew = frac["east-west"] if n_ew else -1.0      # (a fraction 0 picks nothing, whatever float sums leave)
    cut_in = cut_ew + frac["inbound"] if n_in else cut_ew
    if not n_out:
        cut_in = 2.0
    # Sizes (capture lengths): one (0), weighted (1: a table, 3: bisect), or a uniform range (2).
    d = spec.sizes
    smode = 2 if d.uniform else (0 if len(d.values) == 1 else 1)
    only = d.values[0][0] - FCS
    caps = [sz - FCS for sz, _ in d.values]
    cum: list[int] = []
    total = 0
    for _, wgt in d.values:
        total += wgt
        cum.append(total)
    lo, width = d.low - FCS, d.high - d.low + 1
    # Integer weights: one index into a table with each size ``weight`` times draws exactly as
    # bisecting the cumulative weights does, and costs less; bisect where the table would be large.
    table = [c for c, (_, wgt) in zip(caps, d.values, strict=True) for _ in range(wgt)] if total <= 1 << 16 else []
    if smode == 1 and not table:
        smode = 3
    # Time: ns = floor(units * K / P) for constant and onoff; exponential gaps for poisson.
    rate = Fraction(spec.pps if spec.pps is not None else spec.bps or 0)
    K, P = NS * rate.denominator, rate.numerator
    mean_ns_per_unit = K / P
    pmode = PATTERNS.index(spec.pattern)
    on, period = spec.on_ns, spec.on_ns + spec.off_ns
    over = OVERHEAD[spec.count]
    per_bits = spec.bps is not None
    lim = spec.duration_ns if spec.duration_ns is not None else -1
    left = spec.frames if spec.frames is not None else -1
    units = a1 = 0
    tp = 0.0
    log = math.log
    pack_udp, pack_tcp = _IP_UDP.pack, _IP_TCP.pack
    zeros: dict[int, bytes] = {}
    last = data_start
    end = 0
    while left:
        left -= 1
        r = rnd()
        if r < cut_ew:
            fi = ew[int(rnd() * n_ew)]
        elif r < cut_in:
            fi = inb[int(rnd() * n_in)]
        else:
            fi = outb[int(rnd() * n_out)]
        if smode == 0:
            caplen = only
        elif smode == 1:
            caplen = table[int(rnd() * total)]
        elif smode == 3:
            caplen = caps[bisect.bisect_right(cum, rnd() * total)]
        else:
            caplen = lo + int(rnd() * width)
        u = (caplen + over) << 3 if per_bits else 1
        if pmode == 2:                                  # poisson
            tp += -log(1.0 - rnd()) * u * mean_ns_per_unit
            t = end = int(tp)
            if t >= lim >= 0:
                break
        else:
            a0 = a1
            units += u
            a1 = units * K // P
            t = a0
            if pmode == 1:                              # onoff: active time -> trace time
                t = (a0 // on) * period + a0 % on
            end = t + a1 - a0
            if end > lim >= 0:
                break
        while next_bg <= t:
            next_bg = _emit_background(bgs, data_start, write, next_bg)
        head, l2len, is_udp, ip_c, l4_c, mid, addrs, tail = consts[fi]
        iplen = caplen - l2len
        l4len = iplen - 20
        ident = idents[fi]
        idents[fi] = (ident + 1) & 0xFFFF
        c = ip_c + iplen + ident
        c = (c >> 16) + (c & 0xFFFF)
        ipsum = ~((c >> 16) + (c & 0xFFFF)) & 0xFFFF
        if is_udp:
            seq = counts[fi]
            c = l4_c + 2 * l4len + (seq >> 16) + (seq & 0xFFFF)
            c = (c >> 16) + (c & 0xFFFF)
            c = ~((c >> 16) + (c & 0xFFFF)) & 0xFFFF
            body = pack_udp(iplen << 16 | ident, mid, ipsum, addrs, l4len << 16 | (c or 0xFFFF), tail, seq)
            pad = l4len - 16
        else:
            seq = seqs[fi]
            pad = l4len - 20
            seqs[fi] = (seq + pad) & 0xFFFFFFFF
            c = l4_c + l4len + (seq >> 16) + (seq & 0xFFFF)
            c = (c >> 16) + (c & 0xFFFF)
            c = ~((c >> 16) + (c & 0xFFFF)) & 0xFFFF
            body = pack_tcp(iplen << 16 | ident, mid, ipsum, addrs, seq, tail, c)
        z = zeros.get(pad)
        if z is None:
            z = zeros[pad] = bytes(pad)
        counts[fi] += 1
        nbytes[fi] += caplen
        last = data_start + t
        stamps.append(last)
        frames.append(head + body + z)
        if len(frames) >= BATCH:
            w.write_batch(stamps, frames)
            stamps.clear()
            frames.clear()
    span = lim if lim >= 0 else end
    while next_bg < span:                             # the background up to the end of the data
        last = max(last, data_start + next_bg)
        next_bg = _emit_background(bgs, data_start, write, next_bg)
    w.write_batch(stamps, frames)
    for i, f in enumerate(flows):
        f.frames, f.bytes = counts[i], nbytes[i]
    res = GenResult(spec, guests, wire, flows, data_start, span, vlans_in_use=vlans)
    res.frames, res.bytes = w.packets, w.bytes
    res.data_frames = sum(counts)
    res.data_bytes = sum(nbytes)
    res.by_kind = {k: sum(f.frames for f in classes[k]) for k in KINDS}
    res.announce = len(ann)
    res.arp, res.broadcast = bgs[0].sent, bgs[1].sent
    res.first_ts_ns = start if res.frames else 0
    res.last_ts_ns = max(last, data_start - ANNOUNCE_GAP_NS) if res.frames else 0
    return res


_NEVER = 1 << 62                       # (ns) later than any trace


def _next_background(bgs: list[_Background]) -> int:
    return min((t for t in (b.time() for b in bgs) if t is not None), default=_NEVER)


def _emit_background(bgs: list[_Background], data_start: int, write: Callable[[bytes, int], None],
                     t: int) -> int:
    """Write the background frame due at ``t`` (ARP first on a tie); return the next background time."""
    for b in bgs:
        if b.time() == t:
            frame = b.make()
            write(frame, data_start + t)
            b.sent += 1
            b.bytes += len(frame)
            break
    return _next_background(bgs)
