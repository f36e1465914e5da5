"""Element: a dataplane stage with declared ports and declared counters.

An element receives batches on an input (``push(inp, batch, now_ns)``) and
hands batches to outputs with ``emit(out, batch, now_ns)``.  It never drops a
frame silently: ``drop(frame, reason)`` counts it under a declared reason.
The graph wires outputs to inputs; a batch emitted on an unconnected output
is counted (``unconnected``), never lost without trace.

Subclasses declare, as class attributes:

``INPUTS`` / ``OUTPUTS``  port names (tuples); an element with a variable set
                          of ports (a switch) overrides ``inputs()``/``outputs()``.
``COUNTERS``              names of its own counters (all start at 0).
``DROP_REASONS``          the only reasons ``drop()`` accepts.
``MISSED_REASONS``        those of them that mean "no buffer space" (a NIC's packet
                          buffer): the ingress port counts them as ``rx_missed_errors``,
                          not ``rx_dropped``, as the kernel does.

Time is data: ``now_ns`` comes from the driver; an element never reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from mypy_extensions import mypyc_attr

from vswitch.core.frame import Frame

if TYPE_CHECKING:
    from vswitch.core.graph import Graph

Batch = list[Frame]
PortId = Hashable


# Compiled with mypyc (vswitch/compiled.py); elements written in plain Python, such as
# the NIC model's, subclass it.
@mypyc_attr(allow_interpreted_subclasses=True)
class Element:
    INPUTS: ClassVar[tuple[PortId, ...]] = ("in",)
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ("out",)
    COUNTERS: ClassVar[tuple[str, ...]] = ()
    DROP_REASONS: ClassVar[tuple[str, ...]] = ()
    MISSED_REASONS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str) -> None:
        self.name = name
        self.counters: dict[str, int] = dict.fromkeys(self.COUNTERS, 0)
        self.drops: dict[str, int] = dict.fromkeys(self.DROP_REASONS, 0)
        self.unconnected: dict[PortId, int] = {}
        # output -> callable(batch, now_ns); set by Graph.connect/attach_egress.
        self._out: dict[PortId, Callable[[Batch, int], None]] = {}
        self.graph: Graph | None = None

    # -- ports -------------------------------------------------------------
    def inputs(self) -> Sequence[PortId]:
        return self.INPUTS

    def outputs(self) -> Sequence[PortId]:
        return self.OUTPUTS

    # -- data path ---------------------------------------------------------
    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:
        raise NotImplementedError(f"{type(self).__name__}.push")

    def emit(self, out: PortId, batch: Batch, now_ns: int) -> None:
        """Send a batch on an output; counted by the link, or as unconnected."""
        if not batch:
            return
        send = self._out.get(out)
        if send is None:
            self.unconnected[out] = self.unconnected.get(out, 0) + len(batch)
            return
        send(batch, now_ns)

    def drop(self, frame: Frame, reason: str) -> None:
        """Drop one frame under a declared reason."""
        try:
            self.drops[reason] += 1
        except KeyError:
            raise ValueError(
                f"{type(self).__name__} {self.name!r}: drop reason {reason!r} is not declared "
                f"in DROP_REASONS {self.DROP_REASONS}") from None
        if self.graph is not None:
            self.graph.note_drop(frame, reason in self.MISSED_REASONS)

    def drop_many(self, frames: Sequence[Frame], reason: str) -> None:
        for f in frames:
            self.drop(f, reason)

    # -- time-driven work --------------------------------------------------
    def tick(self, now_ns: int) -> None:
        """Periodic housekeeping (aging); drivers call it about once a second."""

    def on_deadline(self, now_ns: int) -> None:
        """A time this element asked for (``graph.schedule(self, t)``) has come.

        Wake-ups may be early or spurious (a later request replaced by an
        earlier one): an element works out what is due from ``now_ns`` and
        asks again for the next time it needs."""

    # -- composition -------------------------------------------------------
    def parts(self) -> Sequence[Element]:
        """Elements this one is built of (a NIC's sorter, queues, arbiter).  ``graph.add``
        adds them too, so their counters, links and deadlines are the graph's."""
        return ()

    def added(self, graph: Graph) -> None:
        """Called once ``graph.add`` has added this element and its parts: a composite
        connects its parts here."""

    def flows(self) -> Sequence[tuple[str, str, str]]:
        """A composite's paths between its parts that are direct calls, not graph links
        (the NIC's sorter writing to its rings), for pictures of the graph
        (`Graph.describe`): ``(from, to, what)``, each end a part's name, or
        ``"in:<port>"`` / ``"out:<port>"`` for one of this element's own ports."""
        return ()

    def describe(self) -> dict[str, Any]:
        """What a picture of the graph shows of this element besides its name, class and
        ports (a queue's backlog); ``"idle": True`` lets a picture collapse it."""
        return {}

    # -- counters ----------------------------------------------------------
    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = dict(self.counters)
        snap["drops"] = dict(self.drops)
        if self.unconnected:
            snap["unconnected"] = {str(k): v for k, v in self.unconnected.items()}
        return snap
