"""Discrete-time driver: the graph decides where frames go, the cost model decides when.

The third driver of DESIGN.md.  It builds nothing of its own: it takes the
`Dataplane` that `build_dataplane` (or the SR-IOV build in bench) made from a
topology, the same graph and elements as the live and replay drivers, and a
`Plan` that says which named *resource* does each piece of work and what it
costs.  Time is a simulation clock (float nanoseconds; the graph sees it
rounded to whole ns).

Resources.  Each is one server with one timeline (``free_at``): the wire and
the PCIe link (their line rates), the NIC, each hypervisor core, each guest
vCPU.  Work is booked on a resource's timeline in the order it is asked for,
so a resource is never in two places at once and never idle while it has
work (work-conserving); ``busy_ns`` over the run is its utilisation.

Stages, and where the queues are.  Frames wait only in finite graph queues
(core `Queue`s): the NIC's RX rings (already in the graph), and the queues
this driver inserts from the plan: in front of a port's entry (a guest's
virtio TX ring) and between what feeds a port and the port (the hypervisor's
per-guest backlog, the guest's virtio RX ring).  A full queue drops with the
reason a real system counts (``ring_full``, ``backlog_full``), through the
element's own ``drop``, so drops are in ``graph.snapshot()`` by element and
reason, and on the ingress port's ``rx_dropped``.

Servers.  A queue the graph reports ready (``take_ready``) is put on its
stage's resource's poll list; an idle resource polls the first queue on its
list (NAPI: round robin between queues, at most ``budget`` frames a poll):
the poll costs ``poll_ns`` (the interrupt, a VM exit), each frame
``frame_ns + byte_ns * len`` (a copy is a per-byte cost), and each frame is
emitted on the queue's ``out`` when its own service ends, so everything the
graph does with it (switch, NIC pool, the next queue) happens at that
time.  After the poll the queue's gate hears ``drained`` (the NIC re-arms the
vector), so interrupt moderation works as it does live.  A stage may charge
other resources too (``also``: the host's share of a VF's interrupt).
Drainables that are not queues (the NIC's TX engine) run when ready at no host
cost: they pace themselves with graph deadlines (wire pacing).

Before the graph.  Frames from the trace pass the port's ``pre`` stages
(the wire at line rate, L1 bytes = caplen + FCS, preamble and gap; the PCIe
link with its per-frame descriptor and TLP bytes; a guest's vCPU sending)
and enter the graph when the last one ends.  A sender blocked behind its
own link holds back the trace after it, as tcpreplay's one sending thread
does: the next record starts no earlier than that link is free.

Time from the trace: as recorded (``multiplier`` scales the gaps), or paced
(``pps``, ``mbps`` counting caplen as tcpreplay does), or ``topspeed`` (every
frame due at once: the links pace them).

What comes out (`DiscreteResult`): per port the frames and bytes delivered,
their first and last delivery times and a latency histogram (HDR, 3
significant digits, from a frame's first bit on its ingress link to the end
of its last stage); exact mean latencies; per resource busy time, frames and
polls; the graph's snapshot (every drop with its reason).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from vswitch.core.element import Batch
from vswitch.core.frame import Frame
from vswitch.core.queues import Queue
from vswitch.core.scheduler import Scheduler
from vswitch.drivers.replay import Record, Records
from vswitch.io.pcap import CaptureError
from vswitch.topology import Dataplane

NS = 1_000_000_000
L1_OVERHEAD = 24          # FCS 4 + preamble and SFD 8 + inter-frame gap 12, over the caplen
MIN_CAPLEN = 60           # a 64-byte frame without its FCS
HIST_MAX_NS = 3600 * NS   # latencies above an hour are clamped (a histogram needs a range)

TIME_MODES = ("recorded", "pps", "mbps", "topspeed")


def l1_bytes(caplen: int) -> int:
    """A frame's bytes on the wire: padded to 60, plus FCS, preamble, SFD and gap."""
    return (caplen if caplen > MIN_CAPLEN else MIN_CAPLEN) + L1_OVERHEAD


# -- the plan ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cost:
    """What draining a queue costs: ``resource`` does it; per poll, per frame, per byte (ns).
    ``also``: other resources charged per poll and per frame, (resource, poll_ns, frame_ns)."""

    resource: str
    frame_ns: float = 0.0
    byte_ns: float = 0.0
    poll_ns: float = 0.0
    also: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True)
class PreStage:
    """A server before the graph with an unbounded input (a link, a sender): per frame and per
    byte ns, and for a link its rate (``bps``) over L1 bytes (``wire``) or over the caplen plus
    ``overhead_bytes`` (PCIe: descriptor fetch, write-back and TLP headers)."""

    resource: str
    frame_ns: float = 0.0
    byte_ns: float = 0.0
    bps: float = 0.0
    wire: bool = False
    overhead_bytes: int = 0

    def service_ns(self, caplen: int) -> float:
        t = self.frame_ns + self.byte_ns * caplen
        if self.bps > 0:
            nbytes = l1_bytes(caplen) if self.wire else caplen + self.overhead_bytes
            t += nbytes * 8e9 / self.bps
        return t


@dataclass(frozen=True)
class QueueSpec:
    """A finite queue the driver inserts, its drop reason and the cost of draining it."""

    name: str
    capacity: int
    reason: str
    cost: Cost


@dataclass
class Plan:
    """Which resource does what, at what cost, and the queues the driver adds.

    ``resources``: name -> kind (``wire``, ``pcie``, ``nic``, ``core``, ``vcpu``); every
    resource a stage names must be here.  ``pre``: per graph port, the servers its frames
    pass before they enter.  ``entry``: a queue in front of a port's entry.  ``egress``: per
    port, queues in order between what feeds the port and the port.  ``stages``: the cost of
    draining queues already in the graph (the NIC's RX rings), by element name.
    ``wire_out``: ports that are a wire, with its rate (their egress is counted as that
    resource's busy time).  ``assumed``: what the plan assumed, for the report."""

    resources: dict[str, str]
    pre: dict[int, list[PreStage]] = field(default_factory=dict)
    entry: dict[int, QueueSpec] = field(default_factory=dict)
    egress: dict[int, list[QueueSpec]] = field(default_factory=dict)
    stages: dict[str, Cost] = field(default_factory=dict)
    wire_out: dict[int, tuple[str, float]] = field(default_factory=dict)
    budget: int = 64
    assumed: dict[str, Any] = field(default_factory=dict)


# -- queues the driver adds ------------------------------------------------------------------

class NamedFifo(Scheduler):
    """A tail-drop FIFO of ``limit`` frames whose drop reason is the one the real queue counts.

    Its own small FIFO rather than a subclass of the core `Fifo`: that class is compiled
    (vswitch/compiled.py) and takes no interpreted subclass."""

    KIND = "fifo"

    def __init__(self, limit: int, reason: str) -> None:
        if limit < 1:
            raise ValueError(f"a stage queue holds at least 1 frame, got {limit}")
        super().__init__()
        self.limit = limit
        self.reason = reason
        self._q: deque[Frame] = deque()

    def enqueue(self, frame: Frame, now_ns: int) -> bool:
        if len(self._q) >= self.limit:
            self.drop(frame, self.reason)
            return False
        self._q.append(frame)
        self.backlog_packets += 1
        self.backlog_bytes += len(frame.data)
        return True

    def dequeue(self, now_ns: int) -> Frame | None:
        if not self._q:
            return None
        f = self._q.popleft()
        self.backlog_packets -= 1
        self.backlog_bytes -= len(f.data)
        return f

    def config(self) -> dict[str, object]:
        return {"limit": self.limit}


class StageQueue(Queue):
    """A finite queue between two stages (a guest's virtio ring, the hypervisor's backlog):
    input ``in``, output ``out``; drop reason as configured (``ring_full``, ``backlog_full``)."""

    def __init__(self, name: str, capacity: int, reason: str) -> None:
        super().__init__(name, NamedFifo(capacity, reason))
        self.drops = {reason: 0}


# -- servers -------------------------------------------------------------------------------

class Resource:
    """One server: its timeline (``free_at``), its busy time, and the queues waiting for it."""

    __slots__ = ("name", "kind", "free_at", "busy_ns", "frames", "polls", "work", "current", "cost",
                 "in_poll", "pending")

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.free_at = 0.0
        self.busy_ns = 0.0
        self.frames = 0
        self.polls = 0
        self.work: dict[Queue, Cost] = {}      # an ordered set: the poll list
        self.current: Queue | None = None
        self.cost: Cost | None = None
        self.in_poll = 0
        self.pending: Frame | None = None

    def book(self, t: float, service: float) -> float:
        """Book ``service`` ns at or after ``t``; returns when it ends."""
        start = t if t > self.free_at else self.free_at
        self.free_at = end = start + service
        self.busy_ns += service
        return end


class Delivered:
    """What left by one port: counts, first/last delivery time, latencies."""

    __slots__ = ("frames", "bytes", "l1_bytes", "first_t", "last_t", "lat_sum", "lat_max", "hist")

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self.l1_bytes = 0
        self.first_t: float | None = None
        self.last_t = 0.0
        self.lat_sum = 0.0
        self.lat_max = 0.0
        self.hist = HdrHistogram(1, HIST_MAX_NS, 3)

    def percentile_ns(self, p: float) -> int:
        return int(self.hist.get_value_at_percentile(p)) if self.frames else 0

    def view(self) -> dict[str, Any]:
        n = self.frames
        return {"frames": n, "bytes": self.bytes, "l1_bytes": self.l1_bytes,
                "first_ns": self.first_t, "last_ns": self.last_t if n else None,
                "latency_ns": {"mean": self.lat_sum / n if n else 0.0, "p50": self.percentile_ns(50),
                               "p99": self.percentile_ns(99), "p999": self.percentile_ns(99.9),
                               "max": self.lat_max}}


@dataclass
class DiscreteResult:
    frames_in: int = 0
    bytes_in: int = 0
    first_ns: float | None = None       # the first frame's first bit on its ingress link
    last_in_ns: float = 0.0             # the last frame's entry into the graph
    end_ns: float = 0.0                 # the last event
    delivered: dict[str, Delivered] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    snapshot: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    events: int = 0

    @property
    def span_ns(self) -> float:
        return max(0.0, self.end_ns - (self.first_ns or 0.0))

    def utilisation(self) -> dict[str, float]:
        span = self.span_ns
        return {n: (r.busy_ns / span if span > 0 else 0.0) for n, r in self.resources.items()}

    def drops(self) -> dict[str, dict[str, int]]:
        """Every nonzero drop in the graph: element -> reason -> count."""
        out: dict[str, dict[str, int]] = {}
        for name, el in self.snapshot.get("elements", {}).items():
            d = {r: n for r, n in el.get("drops", {}).items() if n}
            if d:
                out[name] = d
        return out


# -- the driver ------------------------------------------------------------------------------

_ARRIVE, _INJECT, _DONE, _DEADLINE = 0, 1, 2, 3


class DiscreteDriver:
    """Run records through ``dp``'s graph on ``plan``'s resources in simulated time."""

    def __init__(self, dp: Dataplane, plan: Plan, *, time_mode: str = "recorded", multiplier: float = 1.0,
                 pps: float = 0.0, mbps: float = 0.0, tick_ns: int = NS, flush_ns: int = NS,
                 progress: Any = None) -> None:
        if time_mode not in TIME_MODES:
            raise ValueError(f"time mode {time_mode!r}: use one of {', '.join(TIME_MODES)}")
        if time_mode == "recorded" and not multiplier > 0:
            raise ValueError(f"multiplier {multiplier}: must be above 0")
        if time_mode == "pps" and not pps > 0:
            raise ValueError(f"pps {pps}: must be above 0")
        if time_mode == "mbps" and not mbps > 0:
            raise ValueError(f"mbps {mbps}: must be above 0")
        if plan.budget < 1:
            raise ValueError(f"budget {plan.budget}: must be >= 1")
        self.dp = dp
        self.plan = plan
        self.time_mode, self.multiplier, self.pps, self.mbps = time_mode, multiplier, pps, mbps
        self.tick_ns = tick_ns
        self.flush_ns = flush_ns
        self.progress = progress          # called as progress(frames_in) every 4096 records
        self.on_deliver: Any = None       # called as on_deliver(port name, batch, t) (tests, captures)
        self.res = {n: Resource(n, k) for n, k in plan.resources.items()}
        self.result = DiscreteResult(resources=self.res)
        self.costs: dict[str, Cost] = {}
        self._heap: list[tuple[float, int, int, Any, Any]] = []
        self._seq = 0
        self._deadline: float | None = None
        self._end_limit: float | None = None
        self.now = 0.0
        self._wire_out: dict[int, tuple[Resource, float]] = {}
        self._rewire()
        for el in dp.graph.elements.values():
            if hasattr(el, "stamp_tx"):      # a NIC's TX engine: keep arrival times for latency
                el.stamp_tx = False
        for name, cost in plan.stages.items():
            self._check_cost(name, cost)
            self.costs[name] = cost

    # -- building ----------------------------------------------------------------------------
    def _check_cost(self, where: str, cost: Cost) -> None:
        for r in (cost.resource, *(a[0] for a in cost.also)):
            if r not in self.res:
                raise ValueError(f"plan: {where}: resource {r!r} is not declared")

    def _rewire(self) -> None:
        g, plan = self.dp.graph, self.plan
        for number in (*plan.entry, *plan.egress, *plan.pre, *plan.wire_out):
            if number not in g.ports:
                raise ValueError(f"plan: no graph port {number}")
        for number, specs in plan.egress.items():
            feeds = g.egress_feeds(number)
            if not specs:
                continue
            qs = [self._add_queue(s) for s in specs]
            for el, out in feeds:
                g.connect(el, out, qs[0], "in")
            for a, b in zip(qs, qs[1:], strict=False):
                g.connect(a, "out", b, "in")
            g.bind_egress(qs[-1], "out", number)
        for number, spec in plan.entry.items():
            q = self._add_queue(spec)
            el, inp = g.entry(number)
            g.connect(q, "out", el, inp)
            g.set_entry(number, q, "in")
        for number, stages in plan.pre.items():
            for st in stages:
                if st.resource not in self.res:
                    raise ValueError(f"plan: port {number}: resource {st.resource!r} is not declared")
        for number, (rname, bps) in plan.wire_out.items():
            if rname not in self.res:
                raise ValueError(f"plan: port {number}: resource {rname!r} is not declared")
            self._wire_out[number] = (self.res[rname], bps)
        for number, port in g.ports.items():
            d = self.result.delivered[port.name] = Delivered()
            g.set_transmit(number, self._sink(number, port.name, d))

    def _add_queue(self, spec: QueueSpec) -> StageQueue:
        self._check_cost(spec.name, spec.cost)
        q = self.dp.graph.add(StageQueue(spec.name, spec.capacity, spec.reason))
        self.costs[spec.name] = spec.cost
        return q

    def _sink(self, number: int, name: str, d: Delivered):
        wire = self._wire_out.get(number)
        # A wire's frames leave the NIC at their transmission's start: delivered at its end.
        wire_ns_per_byte = 8e9 / wire[1] if wire is not None else 0.0

        def send(batch: Batch, now_ns: int) -> None:
            t = self.now
            if d.first_t is None:
                d.first_t = t + l1_bytes(len(batch[0].data)) * wire_ns_per_byte
            hist = d.hist
            for f in batch:
                end = t + l1_bytes(len(f.data)) * wire_ns_per_byte if wire is not None else t
                d.last_t = end
                lat = end - f.ts_ns
                d.lat_sum += lat
                if lat > d.lat_max:
                    d.lat_max = lat
                v = int(lat)
                hist.record_value(v if 1 <= v <= HIST_MAX_NS else (1 if v < 1 else HIST_MAX_NS))
                n = len(f.data)
                d.bytes += n
                d.l1_bytes += l1_bytes(n)
            d.frames += len(batch)
            if self.on_deliver is not None:
                self.on_deliver(name, batch, t)
            if wire is not None:
                res, bps = wire
                res.busy_ns += sum([l1_bytes(len(f.data)) for f in batch]) * 8e9 / bps
                res.frames += len(batch)
        return send

    # -- events ------------------------------------------------------------------------------
    def _at(self, t: float, kind: int, a: Any = None, b: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, a, b))

    def _times(self, records: Iterable[Record]) -> Iterator[tuple[float, Record]]:
        """Each record with its due time (ns from the trace's start) in the chosen time mode."""
        mode = self.time_mode
        t0: int | None = None
        sent_bytes = 0
        for k, rec in enumerate(records):
            if mode == "recorded":
                if t0 is None:
                    t0 = rec.ts_ns
                t = max(0, rec.ts_ns - t0) / self.multiplier
            elif mode == "pps":
                t = k * NS / self.pps
            elif mode == "mbps":
                t = sent_bytes * 8e3 / self.mbps
                sent_bytes += len(rec.data)
            else:
                t = 0.0
            yield t, rec

    def run(self, records: Iterable[Record]) -> DiscreteResult:
        """Run every record, then everything they left queued (deadlines up to ``flush_ns``
        after the last entry); a CaptureError mid-file ends the input with ``error`` set."""
        res = self.result
        graph = self.dp.graph
        it = self._times(records)
        last_due = -1.0
        next_tick = float(self.tick_ns)
        try:
            self._next_arrival(it, 0.0)
            while self._heap:
                t, _, kind, a, b = heapq.heappop(self._heap)
                if t > self.now:
                    self.now = t
                t = self.now
                res.events += 1
                if t >= next_tick:
                    graph.tick(int(t))
                    next_tick = t + self.tick_ns
                if kind == _DONE:
                    self._done(a, t)
                elif kind == _INJECT:
                    graph.push(a, [b], int(t))
                    res.last_in_ns = t
                elif kind == _ARRIVE:
                    due, rec = a
                    if due > last_due:
                        last_due = due
                    self._arrive(rec, t)
                    self._next_arrival(it, t)
                else:
                    self._deadline = None
                    if self._end_limit is None or t <= self._end_limit:
                        graph.fire(int(t))
                self._settle(t)
        except CaptureError as e:
            res.error = str(e)
            self._end_limit = self.now + self.flush_ns
            while self._heap:          # what was already inside runs to the end
                t, _, kind, a, b = heapq.heappop(self._heap)
                self.now = max(self.now, t)
                if kind == _DONE:
                    self._done(a, self.now)
                elif kind == _INJECT:
                    graph.push(a, [b], int(self.now))
                elif kind == _DEADLINE and self.now <= self._end_limit:
                    self._deadline = None
                    graph.fire(int(self.now))
                self._settle(self.now)
        # Work booked on a timeline (a link, an interrupt's host share) may end after the last event.
        res.end_ns = max(self.now, *(r.free_at for r in self.res.values()))
        res.snapshot = graph.snapshot()
        return res

    def _next_arrival(self, it: Iterator[tuple[float, Record]], t: float) -> None:
        for due, rec in it:
            pre = self.plan.pre.get(rec.port)
            start = due
            if pre:
                free = self.res[pre[0].resource].free_at
                if free > start:
                    start = free
            self._at(start if start > t else t, _ARRIVE, (due, rec))
            return
        self._end_limit = (self.result.last_in_ns if self.result.frames_in else self.now) + self.flush_ns

    def _arrive(self, rec: Record, t: float) -> None:
        res = self.result
        if res.first_ns is None:
            res.first_ns = t
        res.frames_in += 1
        n = len(rec.data)
        res.bytes_in += n
        f = Frame(rec.data, int(t))
        end = t
        for st in self.plan.pre.get(rec.port, ()):
            r = self.res[st.resource]
            end = r.book(end, st.service_ns(n))
            r.frames += 1
        self._at(end, _INJECT, rec.port, f)
        if self.progress is not None and not res.frames_in & 4095:
            self.progress(res.frames_in)
        if end > res.last_in_ns:
            res.last_in_ns = end
        if self._end_limit is not None and end + self.flush_ns > self._end_limit:
            self._end_limit = end + self.flush_ns

    def _settle(self, t: float) -> None:
        """Ready queues onto their resources' poll lists (idle resources start); engines run;
        one deadline event for the graph's next deadline."""
        graph = self.dp.graph
        budget = self.plan.budget
        for _ in range(1000):
            if not graph.has_ready():
                break
            for q in graph.take_ready():
                cost = self.costs.get(q.name)
                if cost is None or not isinstance(q, Queue):
                    q.drain(budget, int(t))      # an engine: it paces itself with deadlines
                    continue
                r = self.res[cost.resource]
                if q is not r.current:
                    r.work[q] = cost
                if r.current is None:
                    self._start(r, t)
        d = graph.next_deadline_ns()
        if (d is not None and (self._deadline is None or d < self._deadline)
                and (self._end_limit is None or d <= self._end_limit)):
            self._deadline = d
            self._at(max(float(d), t), _DEADLINE)

    def _start(self, r: Resource, t: float) -> None:
        """Begin a poll of the first queue on ``r``'s list that has a frame."""
        while r.work:
            q = next(iter(r.work))
            cost = r.work.pop(q)
            batch = q.pull(1, int(t))
            if not batch:
                if q.gate is not None and q.backlog_packets:
                    # It holds frames none of which may leave yet (a shaping policy on a NIC RX
                    # queue): the poll ends empty, the gate re-arms and wakes it when one may.
                    q.gate.drained(q, 0, self.plan.budget, int(t))
                continue
            r.current, r.cost, r.in_poll = q, cost, 0
            r.polls += 1
            for name, poll_ns, _ in cost.also:
                if poll_ns:       # the host's part of the interrupt comes first (an exit, an injection)
                    end = self.res[name].book(t, poll_ns)
                    if end > t:
                        t = end
            if cost.poll_ns:
                t = r.book(t, cost.poll_ns)
            self._serve(r, batch[0], t)
            return

    def _serve(self, r: Resource, f: Frame, t: float) -> None:
        cost = r.cost
        assert cost is not None
        end = r.book(t, cost.frame_ns + cost.byte_ns * len(f.data))
        for name, _, frame_ns in cost.also:
            if frame_ns:
                self.res[name].book(t, frame_ns)
        r.pending = f
        self._at(end, _DONE, r)

    def _done(self, r: Resource, t: float) -> None:
        q, f = r.current, r.pending
        assert q is not None and f is not None
        r.pending = None
        r.frames += 1
        r.in_poll += 1
        q.emit("out", [f], int(t))
        budget = self.plan.budget
        if r.in_poll < budget:
            batch = q.pull(1, int(t))
            if batch:
                self._serve(r, batch[0], t)
                return
        n = r.in_poll
        r.current, r.cost = None, None
        if q.gate is not None:
            q.gate.drained(q, n, budget, int(t))
        elif q.backlog_packets:
            q.wake(int(t))
        self._settle(t)
        if r.current is None:
            self._start(r, t)


def records_of(records: Iterable[Record]) -> Iterable[Record]:
    """Records as the replay readers give them (`Records` keeps its captures for their notes)."""
    return records if isinstance(records, Records) else iter(records)
