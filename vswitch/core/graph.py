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
its clock (deadlines in time order, ready queues drained between them), and
sleep until ``next_deadline_ns()``.  Live, replay and discrete drivers differ
only in where that clock comes from and who drains which queue when.

The graph never reads a clock.  A driver that wants per-stage timing passes
``timer`` (a zero-argument ns clock); the graph then wraps each element's
``push`` and accumulates ``busy_ns`` per element (nested calls included in
the caller's figure too, as a profiler's inclusive time).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Protocol

from vswitch.core.counters import PortCounters
from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import Frame

Egress = Callable[[Batch, int], None]
CountingEgress = Callable[[Batch, int], int]      # returns the bytes of the batch it was given


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


def egress_sender(port: PortCounters, send: Egress | CountingEgress, counts_bytes: bool = False) -> Egress:
    """An element output bound to a graph port: counts tx, then calls the driver.

    With ``counts_bytes`` the driver's ``send`` returns the batch's byte count (its
    write loop measures every frame anyway), which saves a pass over the batch."""
    if counts_bytes:
        def egress(batch: Batch, now_ns: int) -> None:
            port.tx_packets += len(batch)
            # Not `port.tx_bytes += send(...)`: that reads tx_bytes before send runs, and
            # send moves the bytes of frames the device refused out of it.
            nbytes: int = send(batch, now_ns)  # type: ignore[assignment]
            port.tx_bytes += nbytes
    else:
        def egress(batch: Batch, now_ns: int) -> None:
            port.tx_packets += len(batch)
            port.tx_bytes += sum([len(f.data) for f in batch])
            send(batch, now_ns)
    egress.port = port  # type: ignore[attr-defined]
    return egress


class Graph:
    def __init__(self, timer: Callable[[], int] | None = None) -> None:
        self.elements: dict[str, Element] = {}
        self.links: list[Link] = []
        self.ports: dict[int, PortCounters] = {}
        self._entry: dict[int, tuple[Element, PortId]] = {}
        self._ingress: dict[int, Callable[[Batch, int, int], None]] = {}   # push's cached closures
        self._timer = timer
        self._pushers: dict[str, Callable[[PortId, Batch, int], None]] = {}   # push, timed if asked
        self.busy_ns: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self._ready: dict[Drainable, None] = {}        # an ordered set
        self._heap: list[tuple[int, int, Element]] = []
        self._due: dict[str, int] = {}                 # element name -> its earliest live request
        self._seq = 0

    # -- building ----------------------------------------------------------
    def add(self, element: Element) -> Element:
        if element.name in self.elements:
            raise GraphError(f"element name {element.name!r} is already in the graph")
        self.elements[element.name] = element
        element.graph = self
        self.busy_ns[element.name] = 0
        self.calls[element.name] = 0
        self._pushers[element.name] = self._pusher(element)
        for part in element.parts():
            self.add(part)
        return element

    def _check(self, element: Element, port: PortId, kind: str) -> None:
        if self.elements.get(element.name) is not element:
            raise GraphError(f"element {element.name!r} is not in this graph")
        ports = element.inputs() if kind == "input" else element.outputs()
        if port not in ports:
            raise GraphError(f"{element.name!r} has no {kind} {port!r} (has {list(ports)})")

    def _pusher(self, element: Element) -> Callable[[PortId, Batch, int], None]:
        if self._timer is None:
            return element.push
        timer, busy, calls, name, push = (self._timer, self.busy_ns, self.calls,
                                          element.name, element.push)

        def timed(inp: PortId, batch: Batch, now_ns: int) -> None:
            t0 = timer()
            push(inp, batch, now_ns)
            busy[name] += timer() - t0
            calls[name] += 1
        return timed

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
        return counters

    def attach_egress(self, element: Element, out: PortId, port: int, send: Egress | CountingEgress,
                      counts_bytes: bool = False) -> None:
        """Bind ``element``'s output ``out`` to graph port ``port``'s transmit side.

        ``counts_bytes``: ``send`` returns the byte count of each batch (see `egress_sender`)."""
        self._check(element, out, "output")
        if port not in self.ports:
            raise GraphError(f"no port number {port}")
        element._out[out] = egress_sender(self.ports[port], send, counts_bytes)

    def detach_port(self, number: int) -> None:
        """Forget a port; element outputs bound to it become unconnected."""
        counters = self.ports.pop(number, None)
        self._entry.pop(number, None)
        self._ingress.pop(number, None)
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

        def push(batch: Batch, now_ns: int, nbytes: int = -1) -> None:
            p.rx_packets += len(batch)
            p.rx_bytes += nbytes if nbytes >= 0 else sum([len(f.data) for f in batch])
            pusher(inp, batch, now_ns)
        return push

    def note_drop(self, frame: Frame) -> None:
        """Called by Element.drop: a dropped frame counts as rx_dropped on its ingress port."""
        p = self.ports.get(frame.in_port)
        if p is not None:
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
                total += q.drain(budget, now_ns)
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

    # -- counters ----------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {
            "ports": {p.name: p.as_dict() for p in self.ports.values()},
            "elements": {name: el.snapshot() for name, el in self.elements.items()},
            "links": {f"{l.src.name}[{l.out}] -> {l.dst.name}[{l.inp}]":
                      {"packets": l.packets, "bytes": l.bytes} for l in self.links},
        }
        if self._timer is not None:
            snap["perf"] = {name: {"busy_ns": self.busy_ns[name], "calls": self.calls[name]}
                            for name in self.elements}
        return snap
