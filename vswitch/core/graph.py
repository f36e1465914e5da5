"""Graph: wires elements, counts every link, and owns the switch's ports.

A *port* is where frames enter and leave the graph: ``push(port, batch,
now_ns)`` counts ``rx_packets``/``rx_bytes`` on the port and hands the batch
to the element input the port is bound to.  An element output bound to a
port with ``attach_egress`` counts ``tx_packets``/``tx_bytes`` and calls the
driver's egress callback (write to a TAP, a pcap writer, a sink).  Every
element-to-element link counts frames and bytes too.

``snapshot()`` returns every counter as one nested dict; the CLI, JSON and
Prometheus renderers all read that one structure.

Time and readiness.  Queues are the only push-to-pull boundary; the graph
keeps the set of queues (anything with ``drain(budget, now_ns)``) that a
driver may drain now (``ready``/``take_ready``) and a heap of the times
elements asked to be woken at (``schedule``, ``next_deadline_ns``,
``fire``).  A driver's whole job is then: push what it read, ``run_until``
its clock (deadlines in time order, ready queues drained between them; a live
driver ``run_due``: what fell due, at the time it runs), and sleep until
``next_deadline_ns()``.  Live, replay and discrete drivers differ
only in where that clock comes from and who drains which queue when.

The graph never reads a clock.  A driver that wants per-stage timing passes
``timer`` (a zero-argument ns clock); the graph then wraps each element's
``push`` (and each drain of a ready queue) and accumulates ``busy_ns`` per
element (nested calls included in the caller's figure too, as a profiler's
inclusive time) and ``self_ns`` (its own work only, without the elements it
pushed to: what tells an emulated NIC's cost apart from the switch's).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from vswitch.core.counters import PortCounters
from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import Frame

Egress = Callable[[Batch, int], None]
CountingEgress = Callable[[Batch, int], int]      # returns the bytes of the batch it was given


E = TypeVar("E", bound=Element)


class Drainable(Protocol):
    name: str

    def drain(self, budget: int, now_ns: int) -> int: ...


MAX_ROUNDS = 1000     # drains per run_until instant: a loop in the graph cannot spin forever


class GraphError(ValueError):
    """Bad wiring: unknown element, port or output."""


class Link:
    """Counts what crosses one element output; ``send`` forwards to the next input.

    ``send`` is a closure rather than ``__call__``: an element calls it once per
    output per batch, and a plain function call is the cheapest Python offers.
    """

    __slots__ = ("src", "out", "dst", "inp", "packets", "bytes", "send")

    def __init__(self, src: Element, out: PortId, dst: Element, inp: PortId,
                 push: Callable[[PortId, Batch, int], None]) -> None:
        self.src, self.out, self.dst, self.inp = src, out, dst, inp
        self.packets = 0
        self.bytes = 0
        link = self

        def send(batch: Batch, now_ns: int) -> None:
            link.packets += len(batch)
            link.bytes += sum([len(f.data) for f in batch])
            push(inp, batch, now_ns)
        self.send = send


class Transmit:
    """A graph port's transmit side: the driver's ``send`` for it, shared by every element
    output bound to the port (a guest port fed by the switch and by a NIC pool).  The
    driver sets it once it has a device (`Graph.set_transmit`); until then the port's frames
    count as ``tx_dropped``."""

    __slots__ = ("send", "counts_bytes")

    def __init__(self, send: Egress | CountingEgress, counts_bytes: bool) -> None:
        self.send = send
        self.counts_bytes = counts_bytes


def _untransmitted(port: PortCounters) -> CountingEgress:
    def send(batch: Batch, now_ns: int) -> int:
        port.tx_packets -= len(batch)
        port.tx_dropped += len(batch)
        return 0
    return send


Tap = Callable[[int, Batch, int], None]          # (port number, batch, now_ns)


def _run_taps(taps: list[tuple[int, Tap]], number: int, batch: Batch, now_ns: int) -> None:
    for sel, fn in taps:
        if sel < 0 or sel == number:
            fn(number, batch, now_ns)


def egress_sender(port: PortCounters, tx: Transmit, number: int = -1,
                  taps: list[tuple[int, Tap]] | None = None) -> Egress:
    """An element output bound to a graph port: counts tx, shows the batch to the port's
    transmit taps (mirrors), then calls the port's transmit.

    With ``counts_bytes`` the driver's ``send`` returns the batch's byte count (its
    write loop measures every frame anyway), which saves a pass over the batch."""
    tx_taps = taps if taps is not None else []

    def egress(batch: Batch, now_ns: int) -> None:
        if tx_taps:
            _run_taps(tx_taps, number, batch, now_ns)
        port.tx_packets += len(batch)
        if tx.counts_bytes:
            # Not `port.tx_bytes += send(...)`: that reads tx_bytes before send runs, and
            # send moves the bytes of frames the device refused out of it.
            nbytes: int = tx.send(batch, now_ns)  # type: ignore[assignment]
            port.tx_bytes += nbytes
        else:
            port.tx_bytes += sum([len(f.data) for f in batch])
            tx.send(batch, now_ns)
    egress.port = port  # type: ignore[attr-defined]
    return egress


class Graph:
    def __init__(self, timer: Callable[[], int] | None = None) -> None:
        self.elements: dict[str, Element] = {}
        self.links: list[Link] = []
        self.ports: dict[int, PortCounters] = {}
        self._entry: dict[int, tuple[Element, PortId]] = {}
        self._tx: dict[int, Transmit] = {}
        # Taps (a mirror's view of a port): (port number, or -1 for every port, callback).
        self._rx_taps: list[tuple[int, Tap]] = []
        self._tx_taps: list[tuple[int, Tap]] = []
        self._ingress: dict[int, Callable[[Batch, int, int], None]] = {}   # push's cached closures
        self._timer = timer
        self._pushers: dict[str, Callable[[PortId, Batch, int], None]] = {}   # push, timed if asked
        self.busy_ns: dict[str, int] = {}
        self.self_ns: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self._child_ns = [0]       # time of nested timed calls, for self_ns
        self._ready: dict[Drainable, None] = {}        # an ordered set
        self._heap: list[tuple[int, int, Element]] = []
        self._due: dict[str, int] = {}                 # element name -> its earliest live request
        self._seq = 0

    # -- building ----------------------------------------------------------
    def add(self, element: E) -> E:
        if element.name in self.elements:
            raise GraphError(f"element name {element.name!r} is already in the graph")
        self.elements[element.name] = element
        element.graph = self
        self.busy_ns[element.name] = 0
        self.self_ns[element.name] = 0
        self.calls[element.name] = 0
        self._pushers[element.name] = self._pusher(element)
        for part in element.parts():
            self.add(part)
        element.added(self)
        return element

    def remove(self, element: Element) -> None:
        """Take an element (and its parts) out: links to and from it go, outputs that fed it
        become unconnected, its deadlines and readiness are forgotten."""
        for part in element.parts():
            self.remove(part)
        if self.elements.get(element.name) is not element:
            raise GraphError(f"element {element.name!r} is not in this graph")
        gone = [l for l in self.links if l.src is element or l.dst is element]
        for l in gone:
            if l.dst is element and l.src._out.get(l.out) is l.send:
                del l.src._out[l.out]
        self.links = [l for l in self.links if l not in gone]
        element._out.clear()
        for d in (self.elements, self._pushers, self.busy_ns, self.self_ns, self.calls, self._due):
            d.pop(element.name, None)
        self._ready.pop(element, None)  # type: ignore[call-overload]
        element.graph = None

    def _check(self, element: Element, port: PortId, kind: str) -> None:
        if self.elements.get(element.name) is not element:
            raise GraphError(f"element {element.name!r} is not in this graph")
        ports = element.inputs() if kind == "input" else element.outputs()
        if port not in ports:
            raise GraphError(f"{element.name!r} has no {kind} {port!r} (has {list(ports)})")

    def _pusher(self, element: Element) -> Callable[[PortId, Batch, int], None]:
        if self._timer is None:
            return element.push
        timer, busy, own, calls, name, push, child = (self._timer, self.busy_ns, self.self_ns, self.calls,
                                                      element.name, element.push, self._child_ns)

        def timed(inp: PortId, batch: Batch, now_ns: int) -> None:
            saved = child[0]
            child[0] = 0
            t0 = timer()
            push(inp, batch, now_ns)
            dt = timer() - t0
            busy[name] += dt
            own[name] += dt - child[0]
            calls[name] += 1
            child[0] = saved + dt
        return timed

    def _drain(self, q: Drainable, budget: int, now_ns: int) -> int:
        """``q.drain``, timed as a push is when the graph has a timer."""
        timer = self._timer
        if timer is None:
            return q.drain(budget, now_ns)
        name, child = q.name, self._child_ns
        saved = child[0]
        child[0] = 0
        t0 = timer()
        n = q.drain(budget, now_ns)
        dt = timer() - t0
        if name in self.busy_ns:
            self.busy_ns[name] += dt
            self.self_ns[name] += dt - child[0]
            self.calls[name] += 1
        child[0] = saved + dt
        return n

    def connect(self, src: Element, out: PortId, dst: Element, inp: PortId) -> Link:
        """Wire ``src``'s output ``out`` to ``dst``'s input ``inp``."""
        self._check(src, out, "output")
        self._check(dst, inp, "input")
        link = Link(src, out, dst, inp, self._pushers[dst.name])
        self.links.append(link)
        src._out[out] = link.send
        return link

    def add_port(self, number: int, name: str, element: Element, inp: PortId) -> PortCounters:
        """Declare graph port ``number``; frames pushed to it enter ``element`` at ``inp``."""
        if number in self.ports:
            raise GraphError(f"port number {number} is already in use by {self.ports[number].name!r}")
        if any(p.name == name for p in self.ports.values()):
            raise GraphError(f"port name {name!r} is already in use")
        self._check(element, inp, "input")
        counters = PortCounters(name)
        self.ports[number] = counters
        self._entry[number] = (element, inp)
        self._tx[number] = Transmit(_untransmitted(counters), True)
        return counters

    def entry(self, number: int) -> tuple[Element, PortId]:
        """The element input frames received on port ``number`` enter."""
        return self._entry[number]

    def set_entry(self, number: int, element: Element, inp: PortId) -> None:
        """Frames received on port ``number`` enter ``element`` at ``inp`` from now on (an ingress
        policer put in front of the switch).  A driver holding the port's `ingress` closure
        fetches it again."""
        if number not in self.ports:
            raise GraphError(f"no port number {number}")
        self._check(element, inp, "input")
        self._entry[number] = (element, inp)
        self._ingress.pop(number, None)

    def egress_feeds(self, number: int) -> list[tuple[Element, PortId]]:
        """The element outputs bound to port ``number``'s transmit (`bind_egress`)."""
        counters = self.ports[number]
        return [(el, out) for el in self.elements.values() for out, send in el._out.items()
                if getattr(send, "port", None) is counters]

    def bind_egress(self, element: Element, out: PortId, port: int) -> None:
        """Frames ``element`` emits on ``out`` leave by graph port ``port`` (counted as its tx).
        Several outputs may feed one port; the driver gives the port one `set_transmit`."""
        self._check(element, out, "output")
        if port not in self.ports:
            raise GraphError(f"no port number {port}")
        element._out[out] = egress_sender(self.ports[port], self._tx[port], port, self._tx_taps)

    def attach_sink(self, element: Element, out: PortId, send: Egress) -> None:
        """Frames ``element`` emits on ``out`` go to the driver's ``send`` and leave the graph
        by no port (a mirror's pcap file); the element counts what it sent."""
        self._check(element, out, "output")
        element._out[out] = send

    def tap(self, port: int, direction: str, fn: Tap) -> None:
        """Show ``fn`` every batch received on (``rx``) or sent to (``tx``) graph port ``port``
        (-1: every port), before the graph acts on it.  Frames are shared: a tap copies
        what it keeps.  Costs one test per batch while no tap exists."""
        if direction not in ("rx", "tx"):
            raise GraphError(f"tap direction {direction!r}: rx or tx")
        (self._rx_taps if direction == "rx" else self._tx_taps).append((port, fn))

    def untap(self, fn: Tap) -> None:
        """Remove every tap of ``fn``."""
        for taps in (self._rx_taps, self._tx_taps):
            taps[:] = [t for t in taps if t[1] != fn]       # ==: a bound method is made anew at each access

    def set_transmit(self, port: int, send: Egress | CountingEgress, counts_bytes: bool = False) -> None:
        """The driver's send for graph port ``port`` (a device write, a pcap writer, a sink).

        ``counts_bytes``: ``send`` returns the byte count of each batch (see `egress_sender`)."""
        if port not in self.ports:
            raise GraphError(f"no port number {port}")
        tx = self._tx[port]
        tx.send, tx.counts_bytes = send, counts_bytes

    def attach_egress(self, element: Element, out: PortId, port: int, send: Egress | CountingEgress,
                      counts_bytes: bool = False) -> None:
        """`bind_egress` and `set_transmit` in one call."""
        self.bind_egress(element, out, port)
        self.set_transmit(port, send, counts_bytes)

    def port_number(self, name: str) -> int:
        for number, p in self.ports.items():
            if p.name == name:
                return number
        raise GraphError(f"no port named {name!r}")

    def detach_port(self, number: int) -> None:
        """Forget a port; element outputs bound to it become unconnected."""
        counters = self.ports.pop(number, None)
        self._entry.pop(number, None)
        self._ingress.pop(number, None)
        self._tx.pop(number, None)
        if counters is None:
            return
        for el in self.elements.values():
            for out, send in list(el._out.items()):
                if getattr(send, "port", None) is counters:
                    del el._out[out]

    # -- data path ---------------------------------------------------------
    def push(self, port: int, batch: Batch, now_ns: int) -> None:
        """Frames received on ``port`` enter the graph."""
        for f in batch:
            f.in_port = port
        push = self._ingress.get(port)
        if push is None:
            push = self._ingress[port] = self.ingress(port)
        push(batch, now_ns, -1)

    def ingress(self, port: int) -> Callable[[Batch, int, int], None]:
        """``push`` for one port as a closure ``push(batch, now_ns, nbytes)``, for drivers
        that push every wake-up: the frames must already carry ``in_port`` (the driver
        stamps them as it builds them), and ``nbytes`` is their total length (-1: count
        it here).  Valid while the port exists."""
        p = self.ports[port]
        element, inp = self._entry[port]
        pusher = self._pushers[element.name]
        rx_taps = self._rx_taps

        def push(batch: Batch, now_ns: int, nbytes: int = -1) -> None:
            if rx_taps:
                _run_taps(rx_taps, port, batch, now_ns)
            p.rx_packets += len(batch)
            p.rx_bytes += nbytes if nbytes >= 0 else sum([len(f.data) for f in batch])
            pusher(inp, batch, now_ns)
        return push

    def note_drop(self, frame: Frame, missed: bool = False) -> None:
        """Called by Element.drop: a dropped frame counts as rx_dropped on its ingress port
        (``missed``: as rx_missed_errors, a NIC out of buffer space)."""
        p = self.ports.get(frame.in_port)
        if p is not None:
            if missed:
                p.rx_missed_errors += 1
            else:
                p.rx_dropped += 1

    def tick(self, now_ns: int) -> None:
        for el in self.elements.values():
            el.tick(now_ns)

    # -- readiness and deadlines ----------------------------------------------
    def ready(self, queue: Drainable) -> None:
        """``queue`` has frames a driver may drain now."""
        self._ready[queue] = None

    def take_ready(self) -> list[Drainable]:
        """The queues that became ready since the last call, in the order they did."""
        out = list(self._ready)
        self._ready.clear()
        return out

    def has_ready(self) -> bool:
        return bool(self._ready)

    def schedule(self, element: Element, t_ns: int) -> None:
        """Wake ``element`` (``on_deadline``) at ``t_ns``.  An element has one live request:
        an earlier time replaces a later one; the element asks again when woken."""
        due = self._due.get(element.name)
        if due is not None and due <= t_ns:
            return
        self._due[element.name] = t_ns
        self._seq += 1
        heapq.heappush(self._heap, (t_ns, self._seq, element))

    def next_deadline_ns(self) -> int | None:
        """The earliest time any element asked for, or None."""
        heap = self._heap
        while heap:
            t, _, el = heap[0]
            if self._due.get(el.name) == t:
                return t
            heapq.heappop(heap)          # replaced by an earlier request that already fired
        return None

    def fire(self, now_ns: int) -> int:
        """Wake every element whose time has come; returns how many were woken."""
        heap, due = self._heap, self._due
        n = 0
        while heap and heap[0][0] <= now_ns:
            t, _, el = heapq.heappop(heap)
            if due.get(el.name) != t:
                continue
            del due[el.name]
            el.on_deadline(now_ns)
            n += 1
        return n

    def drain_ready(self, now_ns: int, budget: int = 64) -> int:
        """Drain ready queues (``budget`` frames each per round) until none is ready."""
        total = 0
        for _ in range(MAX_ROUNDS):
            if not self._ready:
                break
            for q in self.take_ready():
                total += self._drain(q, budget, now_ns)
        return total

    def run_until(self, now_ns: int, budget: int = 64) -> int:
        """Everything due up to ``now_ns``, in time order: each deadline fires at its own
        time and what it made ready is drained then; finally what is ready now.  Returns
        the frames drained."""
        total = 0
        if self._ready:       # left from before (a round limit): drained before anything later
            first = self.next_deadline_ns()
            total = self.drain_ready(now_ns if first is None else min(first, now_ns), budget)
        while True:
            t = self.next_deadline_ns()
            if t is None or t > now_ns:
                break
            self.fire(t)
            total += self.drain_ready(t, budget)
        return total

    def run_due(self, now_ns: int, budget: int = 64) -> int:
        """What is ready, then every deadline up to ``now_ns``, all at ``now_ns``: a live
        driver's timer comes late, and by then whatever fell due has happened (a paced
        engine starts every frame whose time has come in one drain, not one per deadline).
        `run_until` fires each at its own time, for drivers whose time is virtual.  Returns
        the frames drained."""
        total = self.drain_ready(now_ns, budget) if self._ready else 0
        for _ in range(MAX_ROUNDS):
            t = self.next_deadline_ns()
            if t is None or t > now_ns:
                break
            self.fire(now_ns)
            total += self.drain_ready(now_ns, budget)
        return total

    # -- the graph as data ----------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The graph as plain data, for pictures and tools (``vswitchctl graph``).

        ``elements``: name, class, kind (``element``, ``queue``, ``composite``), parent
        (the composite it is a part of), parts, inputs and outputs, plus what the element
        adds (`Element.describe`: a queue's backlog).  ``links``: element-to-element, with
        their packet and byte counts.  ``ports``: graph ports with the element input they
        enter and the element outputs bound to their transmit, and their counters.
        ``sinks``: outputs bound to a driver's sink (a mirror's pcap file).  ``taps``: who
        watches which port.  ``flows``: paths inside composites that are direct calls, not
        links (`Element.flows`).  ``ready`` and ``next_deadline_ns``: what a driver would
        drain now and when it must come back.  Port names of elements are strings here."""
        number_of = {id(c): n for n, c in self.ports.items()}
        link_of = {id(l.send): l for l in self.links}
        parent = {p.name: el.name for el in self.elements.values() for p in el.parts()}
        elements = []
        egress: dict[int, list[dict[str, str]]] = {n: [] for n in self.ports}
        sinks = []
        flows = []
        for name, el in self.elements.items():
            parts = [p.name for p in el.parts()]
            info: dict[str, Any] = {"name": name, "class": type(el).__name__,
                                    "kind": "composite" if parts else "element", "parent": parent.get(name),
                                    "inputs": [str(i) for i in el.inputs()],
                                    "outputs": [str(o) for o in el.outputs()]}
            if parts:
                info["parts"] = parts
            info.update(el.describe())
            elements.append(info)
            for out, send in el._out.items():
                if id(send) in link_of:
                    continue
                n = number_of.get(id(getattr(send, "port", None)))
                if n is not None:
                    egress[n].append({"element": name, "output": str(out)})
                else:
                    sinks.append({"element": name, "output": str(out)})
            for src, dst, what in el.flows():
                flows.append({"src": self._flow_end(el, src), "dst": self._flow_end(el, dst), "what": what})
        ports = []
        for n, c in self.ports.items():
            entry_el, inp = self._entry[n]
            ports.append({"number": n, "name": c.name, "entry": {"element": entry_el.name, "input": str(inp)},
                          "egress": egress[n], "counters": c.as_dict()})
        taps = []
        for direction, tap_list in (("rx", self._rx_taps), ("tx", self._tx_taps)):
            for sel, fn in tap_list:
                owner = getattr(fn, "__self__", None)
                taps.append({"port": None if sel < 0 else sel, "direction": direction,
                             "element": owner.name if isinstance(owner, Element) else None})
        return {
            "elements": elements,
            "links": [{"src": l.src.name, "output": str(l.out), "dst": l.dst.name, "input": str(l.inp),
                       "packets": l.packets, "bytes": l.bytes}
                      for l in self.links if l.src._out.get(l.out) is l.send],
            "ports": ports, "sinks": sinks, "taps": taps, "flows": flows,
            "ready": [q.name for q in self._ready], "next_deadline_ns": self.next_deadline_ns(),
        }

    @staticmethod
    def _flow_end(el: Element, end: str) -> dict[str, str]:
        side, sep, port = end.partition(":")
        if sep and side in ("in", "out"):
            return {"element": el.name, "input" if side == "in" else "output": port}
        return {"element": end}

    # -- counters ----------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {
            "ports": {p.name: p.as_dict() for p in self.ports.values()},
            "elements": {name: el.snapshot() for name, el in self.elements.items()},
            "links": {f"{l.src.name}[{l.out}] -> {l.dst.name}[{l.inp}]":
                      {"packets": l.packets, "bytes": l.bytes} for l in self.links},
        }
        if self._timer is not None:
            snap["perf"] = {name: {"busy_ns": self.busy_ns[name], "self_ns": self.self_ns[name],
                                   "calls": self.calls[name]}
                            for name in self.elements}
        return snap
