"""Kind ``queue``: flows through one bottleneck link with a queue policy, in the discrete-time driver.

The policy experiments' point runner (issue 13).  It writes no simulator of
its own: the bottleneck is a switch port with an egress qdisc
(`Dataplane.set_qdisc`, the scheduler `build_scheduler` makes, as a live
port's), and the discrete driver (vswitch/drivers/discrete.py) drains it on
one resource, ``link``, at the link's rate.

Topology: a bridge with a port per source (in the order ``[traffic.sources]``
lists them: port 1, 2, ...) and the bottleneck port ``out`` after them; the
sink's MAC is learned from one frame it sends at time 0.

``[traffic]``: ``duration`` (the run; default 1 s) and ``[traffic.sources.NAME]``
tables, each a simple source (`SOURCE_PARAMS`): ``rate`` (tc units or bit/s),
``size`` (caplen bytes), ``start``/``stop``, ``pattern`` (``constant``,
``poisson``, or ``aimd``: a responsive sender that adds one frame per RTT to
its rate for each RTT of deliveries and multiplies it by ``beta`` (default a
half) when one of its frames is lost (a gap in its sequence numbers) or arrives
marked CE, once per window as TCP with ECN does (a signal about a frame sent
before the last cut is the same congestion event), with ``rate`` its starting
rate), ``flows`` (5-tuples it
spreads its frames over), ``pcp`` (a VLAN tag with that priority), ``dscp``,
``ecn`` (ECT(0): default for aimd).

``[policy.link]``: ``bandwidth`` (the link's rate, required), ``overhead``
(bytes counted per frame on the link, as tc's overhead), ``warmup`` (frames that
leave before it are not measured), ``qdisc`` (a kind of docs/policies.md,
default ``pfifo``, or a name under ``[policy.link.qdiscs.NAME]``, a table of
``kind`` and its parameters, so a sweep axis can list qdiscs by name) and the
qdisc's parameters.  Source i enters by port i, so
``classify = "port"`` with ``map = {1 = 0, 2 = 1}`` puts each source in a class.

Metrics: per source ``flow_<name>_offered_mbps``, ``flow_<name>_mbps``,
``flow_<name>_share`` (of what the link carried while every source was active),
``flow_<name>_frames``, ``flow_<name>_lost`` (offered - delivered),
``flow_<name>_ce``; ``throughput_mbps``, ``link_util`` (busy time over the
measured span), ``delivered``, ``dropped``, ``drops_<reason>``, ``qdisc_<counter>``
(the tc counters: sent_packets, sent_bytes, overlimits, requeues, backlog and
the scheduler's own: ecn_mark, new_flow_count, ...); for ``tbf``,
``envelope_max_bytes``: the most any window [s, t] of its output carried beyond
rate x (t - s), which the b + rT law keeps at or below ``burst_bytes``.
Histograms: ``sojourn`` (arrival to the start of transmission) and ``latency``
(to its last bit), and per source ``flow_<name>_sojourn`` / ``flow_<name>_latency``.
"""

from __future__ import annotations

import heapq
import math
import random
import struct
from collections.abc import Iterator
from typing import Any

from bench.experiments import hdr
from bench.experiments.kinds import Kind
from bench.experiments.spec import FieldError, spec_from_params
from vswitch.core.policies.params import Param, ParamError, check_params

NS = 1_000_000_000
SINK_MAC = bytes.fromhex("020000000fff")
PATTERNS = ("constant", "poisson", "aimd")

SOURCE_PARAMS = (
    Param("rate", "rate", 10**6, "offered rate (aimd: its starting rate)", range=(1, 10**13)),
    Param("size", "int", 1500, "caplen of each frame", unit="bytes", range=(60, 9000)),
    Param("start", "time", 0, "when it starts", range=(0, 10**13)),
    Param("stop", "time", None, "when it stops (none: the run's end)", range=(0, 10**13)),
    Param("pattern", "choice", "constant", "constant, poisson or aimd", choices=PATTERNS),
    Param("flows", "int", 1, "5-tuples its frames are spread over (round robin)", range=(1, 4096)),
    Param("pcp", "int", None, "a VLAN tag (VLAN 1) with this 802.1p priority (none: untagged)", range=(0, 7)),
    Param("dscp", "int", 0, "the IP DSCP", range=(0, 63)),
    Param("ecn", "bool", None, "send ECT(0) (none: only aimd does)"),
    Param("rtt", "time", 20_000_000, "aimd: the round trip outside the bottleneck", range=(1, 10**12)),
    Param("beta", "float", 0.5, "aimd: what a congestion event multiplies the rate by (0.5: Reno and "
          "RFC 3168's ECN; Linux's default CUBIC backs off to 0.7, RFC 9438)", range=(0.05, 0.95)),
)
LINK_PARAMS = (
    Param("bandwidth", "rate", None, "the bottleneck link's rate", range=(8, 10**13)),
    Param("overhead", "int", 0, "bytes counted per frame on the link", unit="bytes", range=(0, 1000)),
    Param("warmup", "time", 0, "frames leaving before this are not measured", range=(0, 10**13)),
)


def _link_table(params: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, Any]]:
    pol = params["policy"]
    extra = sorted(set(pol) - {"link"})
    if extra:
        raise FieldError(("policy", extra[0]), "kind \"queue\" has one queue, [policy.link] (the bottleneck)")
    if "link" not in pol:
        raise FieldError(("policy",), "kind \"queue\" needs [policy.link] with the link's rate and its qdisc")
    t = dict(pol["link"])
    named = t.pop("qdiscs", {})
    qdisc = t.pop("qdisc", "pfifo")
    own = {k: t.pop(k) for k in [p.name for p in LINK_PARAMS] if k in t}
    if not isinstance(named, dict) or not all(isinstance(v, dict) for v in named.values()):
        raise FieldError(("policy", "link", "qdiscs"), "a table of named qdiscs ([policy.link.qdiscs.NAME] "
                         "with kind and its parameters)")
    if not isinstance(qdisc, str):
        raise FieldError(("policy", "link", "qdisc"), f"a qdisc kind or a name under policy.link.qdiscs, got "
                         f"{qdisc!r}")
    if qdisc in named:
        spec = dict(named[qdisc])
        qdisc = spec.pop("kind", qdisc)
        t.update(spec)
    try:
        link = check_params(LINK_PARAMS, own, "link")
    except ParamError as e:
        raise FieldError(("policy", "link"), str(e)) from None
    if link["bandwidth"] is None:
        raise FieldError(("policy", "link", "bandwidth"), "missing: the bottleneck link's rate (e.g. "
                         "\"100mbit\")")
    return link, qdisc, t


def _sources(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    _, traffic, _ = spec_from_params(params)
    if not traffic.sources:
        raise FieldError(("traffic", "sources"), "kind \"queue\" needs [traffic.sources.NAME] tables (a rate "
                         "and a frame size each)")
    out = {}
    for name, src in traffic.sources.items():
        try:
            out[name] = check_params(SOURCE_PARAMS, src, f"source {name}")
        except ParamError as e:
            raise FieldError(("traffic", "sources", name), str(e)) from None
    return out


def _duration(params: dict[str, Any]) -> int:
    from bench.gen import parse_time
    d = params["traffic"].get("duration") or "1s"
    try:
        return int(parse_time(d, "duration"))
    except ValueError as e:
        raise FieldError(("traffic", "duration"), str(e)) from None


def check(params: dict[str, Any]) -> None:
    from vswitch.core.policies.factory import build_scheduler
    _, traffic, _ = spec_from_params(params)
    if traffic.trace is not None:
        raise FieldError(("traffic", "trace"), "kind \"queue\" runs simple sources ([traffic.sources]); "
                         "replay a trace with kind \"discrete\" or \"replay\"")
    _duration(params)
    _sources(params)
    _, qdisc, qparams = _link_table(params)
    try:
        build_scheduler(qdisc, **qparams)
    except ParamError as e:
        raise FieldError(("policy", "link", "qdisc"), str(e)) from None


# -- frames ------------------------------------------------------------------------------------

def _frame(i: int, flow: int, seq: int, size: int, pcp: int | None, dscp: int, ect: bool) -> bytes:
    src_mac = bytes((2, 0, 0, 0, 0x10, i))
    eth = SINK_MAC + src_mac + (b"\x81\x00" + struct.pack("!H", (pcp << 13) | 1) if pcp is not None else b"")
    l2 = len(eth) + 2
    ip_len = size - l2
    tos = (dscp << 2) | (2 if ect else 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, tos, ip_len, seq & 0xFFFF, 0, 64, 17, 0,
                     bytes((10, 1, i, 1 + flow % 250)), bytes((10, 2, 0, 1)))
    udp = struct.pack("!HHHH", 10000 + flow, 9, ip_len - 20, 0)
    payload = struct.pack("!IH", seq, flow) + bytes(max(0, ip_len - 20 - 8 - 6))
    return eth + b"\x08\x00" + ip + udp + payload


class _Source:
    """One source's schedule and, for aimd, its rate and its reaction to loss and CE marks.

    The reaction is once per window, as TCP's (RFC 5681's fast recovery, RFC 3168 for CE): the
    loss or mark of a frame sent before the last cut is news of the congestion event already
    answered; only a frame sent after it (``seq >= recover``) cuts again.  (A cut at most once
    per ``rtt`` instead cut again and again while the frames queued before the cut came out, the
    standing queue's 120 ms at the bottleneck being six RTTs, and emptied the queue.)"""

    def __init__(self, index: int, name: str, p: dict[str, Any], end_ns: int, rng: random.Random) -> None:
        self.index, self.name, self.p = index, name, p
        self.rate = float(p["rate"])
        self.stop = min(end_ns, p["stop"] if p["stop"] is not None else end_ns)
        self.rng = rng
        self.seq = 0
        self.expect = 0               # the next sequence number the sink should see
        self.recover = 0              # frames sent before the last cut do not cut again
        self.ect = p["ecn"] if p["ecn"] is not None else p["pattern"] == "aimd"
        self.aimd = p["pattern"] == "aimd"
        self.offered_bytes = 0
        self.offered = 0
        self.delivered = 0

    def gap(self) -> float:
        g = self.p["size"] * 8 * NS / self.rate
        return self.rng.expovariate(1.0) * g if self.p["pattern"] == "poisson" else g

    def feedback(self, seq: int, ce: bool, t: float) -> None:
        if not self.aimd:
            return
        lost = seq != self.expect
        self.expect = seq + 1
        rtt = self.p["rtt"]
        size_bits = self.p["size"] * 8
        if lost or ce:
            # once per window: a signal about a frame sent before the last cut is the same
            # congestion event (the queue it met is already draining)
            if (seq - 1 if lost else seq) >= self.recover:
                self.rate = max(size_bits * NS / rtt, self.rate * self.p["beta"])
                self.recover = self.seq
        else:
            # one frame per RTT more each RTT: d(rate) = size^2 / (rate * rtt^2) per delivered frame
            self.rate += size_bits * size_bits * NS * NS / (self.rate * rtt * rtt)


def _records(sources: list[_Source], start_port: int) -> Iterator[Any]:
    from vswitch.drivers.replay import Record
    # from the sink (source MAC SINK_MAC), so the switch learns where it is: the sources' frames
    # then go to ``out`` alone instead of being flooded to every port
    yield Record(0, bytes((2, 0, 0, 0, 0x0f, 0xfe)) + SINK_MAC + b"\x08\x06" + bytes(46), start_port)
    heap = [(float(s.p["start"]) + 1000.0, s.index) for s in sources if s.p["start"] < s.stop]
    heapq.heapify(heap)
    by = {s.index: s for s in sources}
    while heap:
        t, i = heapq.heappop(heap)
        s = by[i]
        p = s.p
        data = _frame(i, s.seq % p["flows"], s.seq, p["size"], p["pcp"], p["dscp"], s.ect)
        s.seq += 1
        s.offered += 1
        s.offered_bytes += len(data)
        yield Record(int(t), data, i)
        nxt = t + s.gap()
        if nxt < s.stop:
            heapq.heappush(heap, (nxt, i))


def _envelope(departures: list[tuple[float, int]], rate_bps: float) -> float:
    """max over windows [d_i, d_j] of bytes(i..j) - rate * (d_j - d_i), in bytes."""
    best = -math.inf
    low = math.inf              # min over i <= j of (bytes before i) - r * d_i
    cum = 0.0
    r = rate_bps / 8 / NS
    for d, n in departures:
        low = min(low, cum - r * d)
        cum += n
        best = max(best, cum - r * d - low)
    return best if departures else 0.0


def run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    from vswitch.drivers.discrete import Cost, DiscreteDriver, Plan
    from vswitch.topology import build_dataplane, parse_topology

    _, _, measure = spec_from_params(params)
    link, qdisc, qparams = _link_table(params)
    srcs = _sources(params)
    end = _duration(params)
    names = list(srcs)
    ports = [{"name": f"s{i}", "type": "replay"} for i in range(1, len(names) + 1)] + \
            [{"name": "out", "type": "replay"}]
    dp = build_dataplane(parse_topology({"bridge": {"name": "br0"}, "port": ports}, "queue experiment"))
    dp.set_qdisc("out", {"kind": qdisc, **qparams})
    out_no = dp.numbers["out"]
    rate = float(link["bandwidth"])
    byte_ns = 8 * NS / rate
    over_ns = link["overhead"] * byte_ns
    plan = Plan({"link": "wire"}, budget=64)
    plan.stages["out.qdisc"] = Cost("link", frame_ns=over_ns, byte_ns=byte_ns)
    sources = [_Source(dp.numbers[f"s{k}"], n, srcs[n], end, random.Random(f"{seed}:{n}"))
               for k, n in enumerate(names, 1)]
    by_port = {s.index: s for s in sources}
    mx, dg = measure.latency_max_ns, measure.digits
    hs = {n: (hdr.new(mx, dg), hdr.new(mx, dg)) for n in names}
    soj_all, lat_all = hdr.new(mx, dg), hdr.new(mx, dg)
    warm = link["warmup"]
    both_from = max([warm, *(s.p["start"] for s in sources)])
    both_to = min(s.stop for s in sources)
    got = dict.fromkeys(names, 0)
    got_bytes = dict.fromkeys(names, 0)
    window_bytes = dict.fromkeys(names, 0)
    ce = dict.fromkeys(names, 0)
    departures: list[tuple[float, int]] = []
    first_t: list[float] = []
    last_t = [0.0]
    busy = [0.0]

    def on_deliver(port: str, batch: Any, t: float) -> None:
        if port != "out":
            return
        for f in batch:
            s = by_port.get(f.in_port)
            if s is None:
                continue
            n = len(f.data)
            service = over_ns + n * byte_ns
            dep = t - service
            off = 18 if f.data[12:14] == b"\x81\x00" else 14
            marked = (f.data[off + 1] & 3) == 3
            seq = struct.unpack_from("!I", f.data, off + 28)[0]
            s.feedback(seq, marked, t)
            s.delivered += 1
            if dep < warm:
                continue
            if not first_t:
                first_t.append(dep)
            last_t[0] = t
            busy[0] += service
            departures.append((dep, n))
            name = s.name
            got[name] += 1
            got_bytes[name] += n
            ce[name] += marked
            if both_from <= dep < both_to:
                window_bytes[name] += n
            soj, lat = max(1, int(dep - f.ts_ns)), max(1, int(t - f.ts_ns))
            hs[name][0].record_value(min(soj, mx))
            hs[name][1].record_value(min(lat, mx))

    drv = DiscreteDriver(dp, plan, time_mode="recorded", flush_ns=NS)
    drv.on_deliver = on_deliver
    res = drv.run(_records(sources, out_no))
    for a, b in hs.values():        # all flows': the sum of theirs (exact), not each value recorded twice
        soj_all.add(a)
        lat_all.add(b)
    snap = res.snapshot["elements"]["out.qdisc"]
    span = (last_t[0] - first_t[0]) if first_t else 0.0
    total_window = sum(window_bytes.values())
    m: dict[str, Any] = {}
    for s in sources:
        n = s.name
        active = max(1.0, s.stop - s.p["start"])
        m[f"flow_{n}_offered_mbps"] = s.offered_bytes * 8 * NS / active / 1e6
        m[f"flow_{n}_mbps"] = got_bytes[n] * 8 * NS / span / 1e6 if span else 0.0
        m[f"flow_{n}_share"] = window_bytes[n] / total_window if total_window else 0.0
        m[f"flow_{n}_frames"] = got[n]
        m[f"flow_{n}_lost"] = s.offered - s.delivered      # the whole run, warmup included
        m[f"flow_{n}_ce"] = ce[n]
    delivered_all = sum(s.delivered for s in sources)
    m.update({"throughput_mbps": sum(got_bytes.values()) * 8 * NS / span / 1e6 if span else 0.0,
              "link_util": busy[0] / span if span else 0.0, "delivered": delivered_all,
              "dropped": sum(snap.get("drops", {}).values()),
              # the switch floods only the sink's own first frame: the sources' go to ``out`` alone
              "flooded": res.snapshot["elements"][dp.switch.name]["flooded"]})
    m.update({f"drops_{r}": v for r, v in sorted(snap.get("drops", {}).items()) if v})
    for k, v in snap["counters"].items() if isinstance(snap.get("counters"), dict) else []:
        m[f"qdisc_{k}"] = v
    for k in ("enqueued", "sent_packets", "sent_bytes", "requeues", "overlimits", "max_depth",
              "backlog_packets", "backlog_bytes"):
        if k in snap:
            m[f"qdisc_{k}"] = snap[k]
    for k, v in snap.get("scheduler", {}).items():
        if isinstance(v, int | float) and not isinstance(v, bool) and k not in ("kind",):
            m[f"qdisc_{k}"] = v
    if qdisc == "tbf":
        from vswitch.core.policies.factory import build_scheduler
        tb = build_scheduler(qdisc, **qparams).config()
        m["burst_bytes"] = tb.get("burst", 0)
        tb_rate = tb.get("rate", rate)
        m["envelope_max_bytes"] = _envelope(departures, float(tb_rate) if isinstance(tb_rate, int | float) else rate)
    hists = {"sojourn": hdr.encode(soj_all), "latency": hdr.encode(lat_all)}
    for n, (a, b) in hs.items():
        hists[f"flow_{n}_sojourn"] = hdr.encode(a)
        hists[f"flow_{n}_latency"] = hdr.encode(b)
    return {"metrics": m, "histograms": hists if measure.latency else {}}


KIND = Kind(
    name="queue", run=run, check=check,
    metrics=("throughput_mbps", "link_util", "delivered", "dropped", "envelope_max_bytes", "burst_bytes"),
    metric_prefixes=("flow_", "drops_", "qdisc_"), histograms=("sojourn", "latency"),
    doc="simple sources through one bottleneck link with a qdisc (a port qdisc in the graph) in the "
        "discrete driver")
