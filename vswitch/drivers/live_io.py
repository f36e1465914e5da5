"""The live driver's I/O loop: file descriptors to graph ports, the clock, and the graph's queues.

Each open port's fd is registered with ``loop.add_reader``; a readiness
wake-up drains up to ``batch`` frames (one ``read_frames``), stamped with
the monotonic clock and the port's number, pushes them into the port's
graph ingress, then runs what the graph made ready (an emulated NIC's rings
whose interrupt fired, its TX engine) and what fell due (at the time it runs:
`IoLoop.service`) and arms one loop timer for the graph's next deadline
(interrupt moderation, shaping, wire pacing).
A port's transmit writes straight to its device: the kernel's TAP queue
(txqueuelen) is the only TX queue, and frames it refuses count as
``tx_dropped``, as the kernel's own bridge does.  This module keeps no
counters of the graph's: the graph counts every port and element.

Busy polling (``--busy-poll-us``) is here too: after a batch, every port is
polled until none has had a frame for that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
from collections.abc import Callable

from vswitch.core.element import Batch
from vswitch.core.graph import Graph
from vswitch.drivers.live_port import LivePort, PortPerf
from vswitch.io.errors import PortGone

log = logging.getLogger("vswitchd")

BATCH = 64
SPIN_SLICE_NS = 1_000_000      # a busy-polling spin hands the event loop back this often


class IoLoop:
    def __init__(self, graph: Graph, ports: dict[str, LivePort], clock: Callable[[], int],
                 timer: Callable[[], int], gone: Callable[[LivePort, Exception], None],
                 batch: int = BATCH, busy_poll_us: int = 0) -> None:
        self.graph = graph
        self.ports = ports
        self.clock = clock
        self.timer = timer
        self.gone = gone                      # the port lifecycle's answer to a vanished device
        self.batch = batch
        self.busy_poll_ns = busy_poll_us * 1000
        self.busy_polls = 0                   # frames caught while busy polling (perf-show)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._spinning = False
        self._spin_deadline = 0
        self._spin_handle: asyncio.Handle | None = None
        self._current: PortPerf | None = None      # the port whose frames are being handled now
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: int | None = None
        # Graph work run from the loop's timer (deadlines: interrupt moderation, shaping, NIC
        # pacing, VEB loopback), which no port's wake-up caused: perf-show's loop section.
        self.timer_wakeups = 0
        self.timer_ns = 0                     # all of it, the writes it caused included
        self.timer_tx_ns = 0                  # those writes

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def close(self) -> None:
        for h in (self._spin_handle, self._timer):
            if h is not None:
                h.cancel()

    # -- devices ----------------------------------------------------------------
    def register(self, lp: LivePort) -> None:
        assert self.loop is not None and lp.dev is not None
        self.loop.add_reader(lp.dev.fileno(), self._readable, lp)

    def unregister(self, fd: int) -> None:
        if self.loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(fd)

    # -- ingress ----------------------------------------------------------------
    def _readable(self, lp: LivePort) -> None:
        dev = lp.dev
        perf = lp.perf
        perf.wakeups += 1
        if dev is None:
            return
        timer = self.timer
        t0 = timer()
        now = self.clock()
        try:
            # Frames come stamped with the wake-up time and the port; a virtio-net header
            # travels only when it carries work (partial checksum, GSO type).
            frames, nbytes = dev.read_frames(self.batch, now, lp.number)
        except PortGone as e:
            self.gone(lp, e)
            return
        except OSError as e:               # unexpected: keep the daemon alive, take the port down
            log.warning("port_read_error", extra={"kv": {"port": lp.cfg.name, "error": str(e)}})
            self.gone(lp, e)
            return
        if not frames:
            perf.idle_wakeups += 1
            # A packet socket bound while its interface is down reports ENETDOWN as a poll
            # error, and uvloop then stops polling the fd; re-arm so frames that arrive once
            # the interface is up are seen.  Idle wake-ups are rare, so this costs nothing.
            if self.loop is not None:
                self.loop.remove_reader(dev.fileno())
                self.loop.add_reader(dev.fileno(), self._readable, lp)
            return
        t1 = timer()
        tx_before = perf.tx_ns
        self._current = perf
        assert lp.push is not None
        lp.push(frames, now, nbytes)
        self.service(now)
        t2 = timer()
        perf.rx_ns += t1 - t0
        perf.dp_ns += (t2 - t1) - (perf.tx_ns - tx_before)
        perf.batches += 1
        perf.frames += len(frames)
        if self.busy_poll_ns:
            self._spin_deadline = t2 + self.busy_poll_ns
            if not self._spinning and self._spin_handle is None:
                self._busy_poll()

    # -- the graph's queues and deadlines ----------------------------------------------
    def service(self, now: int) -> None:
        """Drain what the graph has ready, fire what is due, and wake up for the next deadline.

        A deadline already past fires at ``now``, not at its own time: a live timer fires late,
        and by ``now`` whatever fell due has happened.  So a paced TX engine (the emulated NIC's
        wire pacing, 67 ns a 64-byte frame) starts every frame whose time has come in one drain,
        and VEB loopback hands the receiving ring those frames as one batch, where firing each
        deadline at its own time ran the graph once per frame (`Graph.run_due`; the replay and
        discrete drivers keep `Graph.run_until`'s exact times).  What a round limit leaves
        ready is taken up again at once (a timer due now), not when the next frame comes."""
        g = self.graph
        g.run_due(now, self.batch)
        self._arm(now if g.has_ready() else g.next_deadline_ns(), now)

    def _arm(self, due: int | None, now: int) -> None:
        if due is None or self.loop is None:
            return
        if self._timer is not None:
            if self._timer_due is not None and self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        self._timer = self.loop.call_later(max(0, due - now) / 1e9, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_due = None
        self._current = None
        t0 = self.timer()
        self.service(self.clock())
        self.timer_ns += self.timer() - t0
        self.timer_wakeups += 1

    # -- egress -------------------------------------------------------------------
    def transmit(self, lp: LivePort) -> Callable[[Batch, int], int]:
        """The port's transmit: write each frame to the device.  Returns the batch's bytes
        (the graph counts them as tx); frames the device refused, or that never reached a
        vanished one, move from tx to ``tx_dropped``."""
        counters = self.graph.ports[lp.number]
        timer = self.timer

        def send(batch: Batch, now_ns: int) -> int:
            t0 = timer()
            dev = lp.dev
            if dev is None:
                nbytes = failed_bytes = sum([len(f.data) for f in batch])
                failed = len(batch)
            else:
                try:
                    nbytes, failed, failed_bytes = dev.write_frames(batch)
                except PortGone as e:
                    self.gone(lp, e)
                    rest = batch[e.handled:]         # the frame that failed and those after it
                    nbytes = sum([len(f.data) for f in batch])
                    failed = e.failed + len(rest)
                    failed_bytes = e.failed_bytes + sum([len(f.data) for f in rest])
            if failed:
                counters.tx_packets -= failed
                counters.tx_bytes -= failed_bytes
                counters.tx_dropped += failed
            cur = self._current
            if cur is not None:
                cur.tx_ns += timer() - t0
                cur.tx_calls += 1
            else:                            # from the loop's timer: no port's wake-up caused it
                self.timer_tx_ns += timer() - t0
            return nbytes
        return send

    # -- busy polling ---------------------------------------------------------------
    def _busy_poll(self) -> None:
        """Opt-in (``--busy-poll-us``): after a batch, keep polling every port until none
        has had a frame for that long, before going back to sleep in the event loop, as
        OVS's PMD threads and the kernel's busy_poll do.  The reply to a frame just
        forwarded is then caught hot, without a process wake-up: lower latency for CPU
        time.  The spin hands the loop back every `SPIN_SLICE_NS` (it goes on from a
        ``call_soon``, so the loop does not sleep), so the control socket, the ageing
        timer and the graph's timers keep running under continuous traffic."""
        self._spin_handle = None
        ports = [lp for lp in self.ports.values() if lp.dev is not None]
        if not ports or self.loop is None:
            return
        poller = select.poll()
        by_fd = {}
        for lp in ports:
            fd = lp.dev.fileno()  # type: ignore[union-attr]
            by_fd[fd] = lp
            poller.register(fd, select.POLLIN)
        self._spinning = True
        try:
            timer = self.timer
            start = timer()
            while True:
                t = timer()
                if t >= self._spin_deadline:
                    break
                if t - start >= SPIN_SLICE_NS:
                    self._spin_handle = self.loop.call_soon(self._busy_poll)
                    break
                for fd, _ in poller.poll(0):
                    port = by_fd.get(fd)
                    if port is not None and port.dev is not None:
                        self.busy_polls += 1
                        self._readable(port)       # moves the deadline on
        finally:
            self._spinning = False
