"""Segmenter: frames with offload work left (virtio-net GSO, partial checksums) made plain.

Element `Segmenter`
    input ``in``: frames as a vnet_hdr device read them (``Frame.vnet`` may carry
    a GSO type: a super-frame up to 64 KiB, or a checksum left to finish);
    output ``out``: plain frames of at most ``mtu`` bytes of payload, checksums
    complete; a frame with no such work passes unchanged (the same object).
Config: ``mtu``.  Counters: ``segmented`` (super-frames cut), ``segments``
(frames they became).  Drop reasons: the `GsoError` words for a header
that cannot be made plain: ``gso_unsupported``, ``malformed``, ``oversize``,
``runt``.

Where it sits: in front of what models a wire, such as the emulated NIC's
link side (a NIC receives MTU-sized frames; the kernel hands an AF_PACKET
reader GRO super-frames).
"""

from __future__ import annotations

from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import Frame
from vswitch.core.gso import GsoError, needs_fixup, to_plain


class Segmenter(Element):
    COUNTERS = ("segmented", "segments")
    DROP_REASONS = ("gso_unsupported", "malformed", "oversize", "runt")

    def __init__(self, name: str, mtu: int = 1500) -> None:
        super().__init__(name)
        self.mtu = mtu

    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:
        for f in batch:
            if f.vnet is not None and needs_fixup(f.vnet):
                break
        else:                        # (no frame carries a header: what a replay or the wire gives)
            self.emit("out", batch, now_ns)
            return
        out: Batch = []
        c = self.counters
        for f in batch:
            if not needs_fixup(f.vnet):
                out.append(f)
                continue
            try:
                pieces = to_plain(f.vnet, f.data, self.mtu)     # one piece: a checksum finished
            except GsoError as e:
                self.drop(f, e.reason if e.reason in self.drops else "malformed")
                continue
            if len(pieces) > 1:
                c["segmented"] += 1
                c["segments"] += len(pieces)
            out.extend(Frame(p, f.ts_ns, f.in_port) for p in pieces)
        self.emit("out", out, now_ns)
