"""Mirror: a port mirror (SPAN), as Open vSwitch's Mirror table describes one.

Element `Mirror`
    no inputs: it sees frames through the graph's taps (`Graph.tap`), every
    batch received on a selected source port (``rx``) or sent to a selected
    destination port (``tx``);
    output ``out``: the copies, always plain frames (GSO super-frames segmented
    to ``mtu``, partial checksums completed: a copy is for tcpdump or a
    monitoring port without offloads), bound to the output port's egress or to
    a driver's sink (a pcap file).
Config: ``select_src``, ``select_dst`` (port numbers), ``select_all``,
``output`` (the output port's number, never mirrored to itself), ``mtu``.
Counters: ``tx_packets``, ``tx_bytes`` (copies emitted); drop reason
``malformed`` (a frame whose offload header cannot be made plain; its copy is
not made, the frame itself is untouched).
"""

from __future__ import annotations

from typing import ClassVar

from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import Frame
from vswitch.core.gso import GsoError, to_plain


class Mirror(Element):
    INPUTS: ClassVar[tuple[PortId, ...]] = ()
    COUNTERS = ("tx_packets", "tx_bytes")
    DROP_REASONS = ("malformed",)

    def __init__(self, name: str, select_src: frozenset[int] = frozenset(),
                 select_dst: frozenset[int] = frozenset(), select_all: bool = False,
                 output: int = -1, mtu: int = 1500) -> None:
        super().__init__(name)
        self.select_src = select_src
        self.select_dst = select_dst
        self.select_all = select_all
        self.output = output
        self.mtu = mtu

    def tap_rx(self, port: int, batch: Batch, now_ns: int) -> None:
        if port != self.output and (self.select_all or port in self.select_src):
            self._copy(batch, now_ns)

    def tap_tx(self, port: int, batch: Batch, now_ns: int) -> None:
        if port != self.output and (self.select_all or port in self.select_dst):
            self._copy(batch, now_ns)

    def _copy(self, batch: Batch, now_ns: int) -> None:
        out: Batch = []
        for f in batch:
            try:
                pieces = to_plain(f.vnet, f.data, self.mtu)
            except GsoError:
                # Counted here, not on the frame's port: the frame itself goes on untouched.
                self.drops["malformed"] += 1
                continue
            out.extend(Frame(p, f.ts_ns, f.in_port) for p in pieces)
        c = self.counters
        c["tx_packets"] += len(out)
        c["tx_bytes"] += sum([len(f.data) for f in out])
        self.emit("out", out, now_ns)

    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:  # pragma: no cover - no inputs
        raise NotImplementedError("a Mirror sees frames through graph taps")
