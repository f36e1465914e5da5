"""A queue policy between an RX ring and the host's NAPI poll (`Nic.set_rx_qdisc`).

`RxPolicy` takes the place of a ring as the scheduler of that RX queue's core
`Queue` (``<nic>.rxq<N>``) while a policy is installed, so every driver that
drains the queue (live, replay, discrete) gets the policy's order without
knowing it is there.  DMA is unchanged: the sorter writes frames into the ring,
with the ring's size, drop enable and packet buffer.  Each poll first takes
everything the ring holds into the policy (the descriptors go back to the NIC:
the driver has received those frames) and then hands the host up to its budget
of the frames the policy lets go, in the policy's order.  The policy is the
queue's buffer from then on: its limit bounds it, its AQM drops from it, a
shaper holds frames in it (the queue is polled again at the shaper's next
eligible time).  A frame waits in the ring at most one poll interval; a
standing queue builds in the policy, where it can be scheduled (fq_codel's
sparse flows first, DRR's shares), as the host side of a ring would be with
the driver's backlog under a qdisc (an ``ifb`` on the receive path).

The policy's own core `Queue` (``<nic>.rxq<N>.qdisc``, not in the graph) keeps
``tc -s qdisc``'s figures and the policy's drops by reason (`Nic.rx_qdisc_show`).
"""

from __future__ import annotations

from typing import Any

from nicmodel.rings import RxQueue
from vswitch.core.frame import Frame
from vswitch.core.queues import Queue
from vswitch.core.scheduler import Scheduler

__all__ = ["RxPolicy"]


class RxPolicy(Scheduler):
    """The scheduler of an RX queue with a policy: its ring, then the policy's `Queue`."""

    KIND = "rx_ring"

    def __init__(self, ring: RxQueue, qdisc: Queue) -> None:
        super().__init__()
        self.ring = ring
        self.qdisc = qdisc
        self.index = ring.index          # the NIC's gate reads the queue's number here

    @property  # type: ignore[misc]
    def backlog_packets(self) -> int:  # type: ignore[override]
        return len(self.ring.ring) + self.qdisc.backlog_packets

    @property  # type: ignore[misc]
    def backlog_bytes(self) -> int:  # type: ignore[override]
        return self.ring.backlog_bytes + self.qdisc.backlog_bytes

    def enqueue(self, frame: Frame, now_ns: int) -> bool:
        return self.ring.enqueue(frame, now_ns)         # a frame pushed through the graph: into the ring

    def _take_ring(self, now_ns: int) -> None:
        ring = self.ring
        if ring.ring:
            self.qdisc.push("in", ring.take(len(ring.ring)), now_ns)

    def dequeue(self, now_ns: int) -> Frame | None:
        got = self.dequeue_batch(1, now_ns)
        return got[0] if got else None

    def dequeue_batch(self, n: int, now_ns: int) -> list[Frame]:
        self._take_ring(now_ns)
        return self.qdisc.pull(n, now_ns)

    def next_eligible_ns(self, now_ns: int) -> int | None:
        return now_ns if self.ring.ring else self.qdisc.next_eligible_ns(now_ns)

    def take_all(self) -> list[Frame]:
        """Everything the policy holds, shaped or not (the policy is being removed)."""
        q = self.qdisc
        return q.pull(q.backlog_packets, 1 << 62) if q.backlog_packets else []

    def config(self) -> dict[str, Any]:
        return self.ring.config()
