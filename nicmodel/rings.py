"""RX descriptor rings and the shared RX packet buffer.

Element `RxRings` (no graph ports: the sorter calls ``deliver``, as the NIC's
DMA engine writes descriptors).  One `RxQueue` per hardware queue: the
`Scheduler` of that queue's core `Queue` in the graph (``nic0.rxq<N>``), so
a driver drains an RX ring as it drains any queue (NAPI: when the queue's
interrupt has fired, `Nic` being the queues' gate).

Config per queue (``ethtool -G`` / SRRCTL / RXDCTL):

``size``      descriptors, 64..4096, default 512; a ring of size R holds R frames
              (the real ring keeps one slot empty; the model does not).
``enabled``   RXDCTL.ENABLE; a copy for a disabled queue is lost (``queue_disabled``).
``drop_en``   SRRCTL.DROP_EN / PFQDE.  On a full ring:
              * drop_en=1: only that copy is lost; ``qprdc`` and the queue's
                ``rx_dropped`` count it (nic-model.md A, E.8).
              * drop_en=0: the frame stays in the shared packet buffer and
                head-of-line blocks *every* frame behind it, whatever its pool,
                until descriptors are returned (``poll``); frames arriving
                while the buffer is full are lost and counted in ``mpc``.
``vlan_strip`` RXDCTL.VME (per queue on the 82599), applied per copy by the sorter.

Counters: port ``gprc``/``gorc`` (frames accepted into the packet buffer,
once per frame, bytes without FCS), ``mpc``, ``qprdc`` (all queues), and for
every queue ``q<N>_rx_packets``, ``q<N>_rx_bytes``, ``q<N>_rx_dropped``
(every queue has its own, unlike Snabb's 16, snabbco/snabb#924; the QPRC/QPRDC
registers sum them over the 16 statistics sets RQSMR maps the queues to).
Drop reasons: ``ring_full``, ``queue_disabled``, ``packet_buffer_full``.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from nicmodel.tables import NicError
from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import BROADCAST, Frame
from vswitch.core.scheduler import Scheduler

__all__ = ["RxQueue", "RxRings", "RING_MIN", "RING_MAX", "RING_DEFAULT", "check_ring_size"]

RING_MIN, RING_MAX, RING_DEFAULT = 64, 4096, 512

def check_ring_size(n: int, what: str = "ring") -> int:
    if not RING_MIN <= n <= RING_MAX:
        raise NicError(f"{what} size {n} out of range {RING_MIN}..{RING_MAX} (as ethtool -G)")
    return n


def _is_mc(d: bytes) -> bool:
    return (d[0] & 1) == 1 and d[0:6] != BROADCAST


class RxQueue(Scheduler):
    """One RX queue: its ring (a deque of frames) and its counters; the scheduler of the
    queue's core `Queue` (a ring is a FIFO of ``size`` descriptors).

    ``rx_packets``/``rx_bytes``/``rx_multicast``/``rx_broadcast`` (what was written to the ring)
    are kept as "taken by the driver" plus "still in the ring", so the DMA hot
    path only appends; the consumer side (``take``) does the counting.  The
    figures are exact at any moment.  The DMA path (`RxRings.deliver`, the
    sorter's fast path) appends to ``ring`` itself; ``enqueue`` is for frames
    pushed into the queue through the graph.

    ``len_bound``: no frame this queue ever held is longer (data bytes) than this.  The
    sorter raises it to the pool's max frame whenever it makes a delivery plan for the
    pool (every frame it writes passed a plan's length check), ``enqueue`` to the frame's
    length; it is never lowered, so it holds for the frames still in the ring after the
    max frame shrank.  A VF's DMA skips reading the lengths of a batch when the bound fits
    every buffer of the ring (`sriov.dma.VfDma`).
    """

    __slots__ = ("index", "ring", "size", "limit", "enabled", "drop_en", "vlan_strip", "len_bound",
                 "taken_packets", "taken_bytes", "taken_multicast", "taken_broadcast", "rx_dropped", "flushed")
    KIND = "rx_ring"
    DROP_REASONS = ("ring_full",)

    def __init__(self, index: int, size: int = RING_DEFAULT) -> None:
        super().__init__()
        self.index = index
        self.ring: deque[Frame] = deque()
        self.size = size
        self.enabled = False
        # limit = size when enabled, 0 when disabled: one comparison on the hot path.
        self.limit = 0
        self.drop_en = True
        self.vlan_strip = False
        self.len_bound = 0
        self.taken_packets = 0
        self.taken_bytes = 0
        self.taken_multicast = 0
        self.taken_broadcast = 0
        self.rx_dropped = 0
        self.flushed = 0         # frames received into the ring and discarded by a reset

    @property
    def rx_packets(self) -> int:
        return self.taken_packets + len(self.ring)

    @property
    def rx_bytes(self) -> int:
        return self.taken_bytes + sum([len(f.data) for f in self.ring])

    @property
    def rx_multicast(self) -> int:
        return self.taken_multicast + sum([_is_mc(f.data) for f in self.ring])

    @property
    def rx_broadcast(self) -> int:
        return self.taken_broadcast + sum([f.data[0:6] == BROADCAST for f in self.ring])

    # -- the Scheduler protocol ------------------------------------------------
    @property  # type: ignore[misc]  # read-only over the base's read-write property
    def backlog_packets(self) -> int:  # type: ignore[override]
        return len(self.ring)

    @property  # type: ignore[misc]
    def backlog_bytes(self) -> int:  # type: ignore[override]
        return sum([len(f.data) for f in self.ring])

    def enqueue(self, frame: Frame, now_ns: int) -> bool:
        if len(self.ring) < self.limit:
            if len(frame.data) > self.len_bound:
                self.len_bound = len(frame.data)
            self.ring.append(frame)
            return True
        self.rx_dropped += 1
        self.drop(frame, "ring_full")
        return False

    def dequeue(self, now_ns: int) -> Frame | None:
        got = self.take(1)
        return got[0] if got else None

    def dequeue_batch(self, n: int, now_ns: int) -> list[Frame]:
        return self.take(n)

    def take(self, budget: int) -> list[Frame]:
        ring = self.ring
        n = min(budget, len(ring))
        if n == len(ring):           # the whole ring (a poll that empties it): one copy
            out = list(ring)
            ring.clear()
        else:
            out = [ring.popleft() for _ in range(n)]
        self.taken_packets += n
        self.taken_bytes += sum([len(f.data) for f in out])
        group = [f.data for f in out if f.data[0] & 1]      # multicast and broadcast: rare
        if group:
            bc = sum([d[0:6] == BROADCAST for d in group])
            self.taken_broadcast += bc
            self.taken_multicast += len(group) - bc
        return out

    def flush(self) -> int:
        """Discard what waits in the ring (a function reset): the frames were received, so they
        stay in ``rx_packets``; ``flushed`` counts them.  Returns how many."""
        n = len(self.take(len(self.ring)))
        self.flushed += n
        return n

    def set_enabled(self, on: bool) -> None:
        self.enabled = on
        self.limit = self.size if on else 0

    def set_size(self, n: int) -> None:
        self.size = check_ring_size(n, f"RX queue {self.index} ring")
        self.limit = self.size if self.enabled else 0

    def config(self) -> dict[str, Any]:
        return {"size": self.size, "enabled": self.enabled, "drop_en": self.drop_en,
                "vlan_strip": self.vlan_strip, "depth": len(self.ring)}


class RxRings(Element):
    INPUTS: ClassVar[tuple[PortId, ...]] = ()
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ()
    COUNTERS = ("gprc", "gorc", "mpc", "qprdc", "pb_max_bytes")
    DROP_REASONS = ("ring_full", "queue_disabled", "packet_buffer_full")
    MISSED_REASONS = ("packet_buffer_full",)     # MPC: the port's rx_missed_errors

    def __init__(self, name: str, num_queues: int, packet_buffer_bytes: int) -> None:
        super().__init__(name)
        self.queues = [RxQueue(i) for i in range(num_queues)]
        self.packet_buffer_bytes = packet_buffer_bytes
        # Frames parked in the packet buffer behind a full no-drop queue:
        # [frame bytes, remaining copies].  FIFO: the head blocks the rest.
        self._pb: deque[list[Any]] = deque()
        self._pb_used = 0
        self.touched: set[RxQueue] = set()

    @property
    def blocked(self) -> bool:
        return bool(self._pb)

    @property
    def packet_buffer_used(self) -> int:
        return self._pb_used

    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:  # pragma: no cover - no inputs
        raise NotImplementedError("RxRings is fed by the sorter's deliver()")

    # -- data path ---------------------------------------------------------
    def deliver(self, f: Frame, copies: Any, nbytes: int, now_ns: int) -> None:
        """Write the copies of one received frame to their rings (the DMA step)."""
        if self._pb:
            # Head-of-line blocked: this frame waits behind the blocked one, even if
            # its own queues have room (A, "drop_en=0 ... blocks every pool").
            self._park(f, list(copies), nbytes)
            return
        c = self.counters
        c["gprc"] += 1
        c["gorc"] += nbytes
        for i, (q, cp) in enumerate(copies):
            ring = q.ring
            if len(ring) < q.limit:
                ring.append(cp)
                self.touched.add(q)
            elif not q.enabled:
                self.drop(cp, "queue_disabled")
            elif q.drop_en:
                q.rx_dropped += 1
                c["qprdc"] += 1
                self.drop(cp, "ring_full")
            else:
                self._pb.append([nbytes, list(copies[i:])])
                self._pb_used += nbytes
                if self._pb_used > c["pb_max_bytes"]:
                    c["pb_max_bytes"] = self._pb_used
                return

    def _park(self, f: Frame, copies: list[tuple[RxQueue, Frame]], nbytes: int) -> None:
        c = self.counters
        if self._pb_used + nbytes > self.packet_buffer_bytes:
            c["mpc"] += 1
            self.drop(f, "packet_buffer_full")
            return
        c["gprc"] += 1
        c["gorc"] += nbytes
        self._pb.append([nbytes, copies])
        self._pb_used += nbytes
        if self._pb_used > c["pb_max_bytes"]:
            c["pb_max_bytes"] = self._pb_used

    def service(self) -> None:
        """Move parked frames to their rings, in order, until the head blocks again."""
        pb = self._pb
        c = self.counters
        while pb:
            entry = pb[0]
            copies = entry[1]
            while copies:
                q, cp = copies[0]
                if len(q.ring) < q.limit:
                    q.ring.append(cp)
                    self.touched.add(q)
                elif not q.enabled:
                    self.drop(cp, "queue_disabled")
                elif q.drop_en:
                    q.rx_dropped += 1
                    c["qprdc"] += 1
                    self.drop(cp, "ring_full")
                else:
                    return
                copies.pop(0)
            pb.popleft()
            self._pb_used -= entry[0]

    def take(self, qi: int, budget: int) -> list[Frame]:
        """Return up to ``budget`` frames from queue ``qi`` and give their descriptors back."""
        out = self.queues[qi].take(budget)
        if out and self._pb:
            self.service()
        return out

    # -- counters ----------------------------------------------------------
    def queue_counters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for q in self.queues:
            n = q.index
            out[f"q{n}_rx_packets"] = q.rx_packets
            out[f"q{n}_rx_bytes"] = q.rx_bytes
            out[f"q{n}_rx_dropped"] = q.rx_dropped
        return out

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap["packet_buffer_used"] = self._pb_used
        snap["packet_buffer_frames"] = len(self._pb)
        return snap
