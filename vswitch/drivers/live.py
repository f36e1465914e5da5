"""Live driver: the dataplane graph over TAP devices and AF_PACKET sockets, on asyncio.

Each port's fd is registered with ``loop.add_reader``; a readiness wake-up
drains up to ``batch`` frames (one ``read_batch``), wraps them in Frames
stamped with the monotonic clock, and pushes them through the graph in one
call.  Egress callbacks write straight to the destination device: the
kernel's TAP queue (txqueuelen) is the only TX queue, and a full one counts
``tx_dropped``, as the kernel's own bridge does.

Offloads.  TAP ports are opened with ``IFF_VNET_HDR`` and checksum/TSO
offloads; attach ports with ``PACKET_VNET_HDR``.  A frame keeps its
virtio-net header (``Frame.vnet``) across the switch, so a 64 KB TCP GSO
super-frame crosses unsegmented between ports (every port type takes the
header: where the device behind an attach port cannot do TSO, the kernel
segments in software).  Mirrors, to a pcap file or to a port, get
`gso.to_plain` frames: segmented, checksums completed, never over the MTU.

Port states: ``up``; ``pending`` (an attach port whose interface does not
exist yet: it attaches when netlink reports it); ``down`` (its interface
vanished: the port keeps its config and comes back with the interface; a
TAP port is re-created by ``vswitchctl set-port NAME state=up`` or a
restart).  A vanished interface never stops forwarding for the others.

An attach port sets its interface administratively up each time it attaches
(start, add-port, the interface appearing again), as Open vSwitch does: QEMU's
``script=no`` tap and a new veth start down.  From then on it follows the
interface's flags from netlink: ``up`` needs IFF_UP and IFF_RUNNING (carrier);
otherwise the port is ``down``, its reason ``interface down`` (not IFF_UP: an
admin set it down, and the daemon leaves it so until it attaches again) or
``no carrier`` (up, but nothing behind it: a tap whose fd no process holds, a
veth whose peer is down).  The socket stays open through both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from vswitch import compiled
from vswitch.core.element import Batch
from vswitch.core.frame import Frame, parse_mac
from vswitch.core.graph import Graph
from vswitch.drivers.nic_mode import Binding, NicMode
from vswitch.elements.gso import GsoError, to_plain
from vswitch.io import netlink
from vswitch.io.errors import PortGone
from vswitch.io.mirror_dir import DEFAULT_MIRROR_DIR, MirrorDir, MirrorPathError
from vswitch.io.packet_socket import PacketSocketPort
from vswitch.io.pcap import PcapWriter
from vswitch.io.tap import TapPort
from vswitch.port_config import change_port
from vswitch.topology import ConfigError, Dataplane, PortConfig, Topology, build_dataplane

log = logging.getLogger("vswitchd")

BATCH = 64
SPIN_SLICE_NS = 1_000_000      # a busy-polling spin hands the event loop back this often


@dataclass
class PortPerf:
    """Per-port live figures for perf-show."""

    wakeups: int = 0          # readiness callbacks
    idle_wakeups: int = 0     # callbacks that found nothing to read
    batches: int = 0
    frames: int = 0
    rx_ns: int = 0            # reading the fd and building frames
    dp_ns: int = 0            # graph.push (switching), excluding the egress writes it triggered
    tx_ns: int = 0            # egress writes caused by this port's frames
    tx_calls: int = 0
    gso_in: int = 0           # GSO super-frames received (a GSO type in their virtio-net header)
    max_frame: int = 0


@dataclass
class LivePort:
    cfg: PortConfig
    number: int
    state: str = "pending"
    dev: TapPort | PacketSocketPort | None = None
    error: str | None = None
    since_ns: int = 0
    attaches: int = 0
    perf: PortPerf = field(default_factory=PortPerf)
    push: Callable[[Batch, int, int], None] | None = None   # into the software switch (graph ingress)
    uplink: bool = False                 # the wire side of the emulated NIC
    binding: Binding | None = None       # its VMDq pool (guest ports in vmdq mode)
    # An attach port's interface as netlink last reported it (None: not there, or a tap port).
    admin_up: bool | None = None         # IFF_UP
    carrier: bool | None = None          # IFF_RUNNING
    opening: bool = False                # an _open is under way
    reappeared: bool = False             # ... and the interface appeared again meanwhile

    def describe(self) -> dict[str, Any]:
        d = self.cfg.view()
        d.update({"number": self.number, "state": self.state,
                  "error": self.error, "attaches": self.attaches,
                  "ifindex": getattr(self.dev, "ifindex", None),
                  "admin_state": _updown(self.admin_up), "link_state": _updown(self.carrier)})
        if self.uplink:
            d["nic"] = "uplink"
        elif self.binding is not None:
            d["nic"] = f"pool {self.binding.pool}"
        return d


@dataclass
class Mirror:
    """Copies of the frames received on (``select_src``) or sent to (``select_dst``) ports,
    written to a port or a pcap file.  Empty selections with ``all`` mirror everything."""

    name: str
    select_src: frozenset[str]
    select_dst: frozenset[str]
    select_all: bool
    output_port: str | None = None
    output_pcap: str | None = None
    writer: PcapWriter | None = None
    pcap_file: tuple[int, int] | None = None      # the writer's (st_dev, st_ino)
    tx_packets: int = 0
    tx_bytes: int = 0
    tx_dropped: int = 0

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "select_src_port": sorted(self.select_src),
                "select_dst_port": sorted(self.select_dst), "select_all": self.select_all,
                "output_port": self.output_port, "output_pcap": self.output_pcap,
                "tx_packets": self.tx_packets, "tx_bytes": self.tx_bytes, "tx_dropped": self.tx_dropped}


class LiveError(ValueError):
    """A request the live switch refuses; the message is for the user."""


class LiveSwitch:
    def __init__(self, topo: Topology, clock: Callable[[], int] = time.monotonic_ns,
                 timer: Callable[[], int] = time.perf_counter_ns, batch: int = BATCH,
                 busy_poll_us: int = 0, mirror_dir: str = DEFAULT_MIRROR_DIR) -> None:
        self.topo = topo
        self.mirror_dir = MirrorDir(mirror_dir)      # where pcap mirrors write (and only there)
        self.clock = clock
        self.timer = timer
        self.batch = batch
        self.busy_poll_ns = busy_poll_us * 1000
        self.busy_polls = 0            # frames caught while busy polling (perf-show)
        self._spinning = False
        self._spin_deadline = 0                        # busy polling goes on until then
        self._spin_handle: asyncio.Handle | None = None   # its next slice, scheduled
        self.dp: Dataplane = build_dataplane(Topology(bridge=topo.bridge), Graph(timer=timer))
        self.ports: dict[str, LivePort] = {}
        self.mirrors: dict[str, Mirror] = {}
        self.monitor: netlink.LinkMonitor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started_ns = clock()
        self.loop_lag_max_ns = 0
        self.ticks = 0
        self._tick_task: asyncio.Task[None] | None = None
        self._changed: Callable[[], None] | None = None   # persistence hook
        self.nicmode: NicMode | None = NicMode(topo.nic, timer) if topo.nic is not None else None
        self._current: PortPerf | None = None       # the port whose frames are being switched now
        self._nic_timer: asyncio.TimerHandle | None = None

    # -- lifecycle -----------------------------------------------------------
    async def start(self, on_change: Callable[[], None] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.monitor = netlink.LinkMonitor()
        self.monitor.start()
        self.loop.add_reader(self.monitor.fileno(), self._on_netlink)
        for cfg in self.topo.ports:
            await self.add_port(cfg, persist=False)
        for s in self.topo.fdb:
            self.dp.switch.fdb.add_static(s.vlan, parse_mac(s.mac), self.ports[s.port].number)
        self._changed = on_change
        self._tick_task = asyncio.create_task(self._ticker())

    async def close(self) -> None:
        if self._tick_task:
            self._tick_task.cancel()
        if self._spin_handle is not None:
            self._spin_handle.cancel()
        for lp in list(self.ports.values()):
            self._close_dev(lp, remove=not lp.cfg.persistent)
        for m in self.mirrors.values():
            if m.writer:
                m.writer.close()
        if self.monitor is not None and self.loop is not None:
            self.loop.remove_reader(self.monitor.fileno())
            self.monitor.close()

    async def _ticker(self) -> None:
        """Aging sweeps once a second; also measures how late the loop wakes us (loop lag)."""
        while True:
            t0 = self.clock()
            await asyncio.sleep(1.0)
            now = self.clock()
            self.loop_lag_max_ns = max(self.loop_lag_max_ns, now - t0 - 1_000_000_000)
            self.dp.graph.tick(now)
            self.ticks += 1

    def _persist(self) -> None:
        if self._changed is not None:
            self._changed()

    # -- ports ---------------------------------------------------------------
    async def add_port(self, cfg: PortConfig, persist: bool = True) -> LivePort:
        """Add a port (``cfg`` as `parse_port` checked it).  A run-time request (``persist``) naming a
        namespace that does not exist is refused; at start such a port waits, down, with the reason."""
        if cfg.name in self.ports:
            raise LiveError(f"port {cfg.name!r} already exists")
        if cfg.type not in ("tap", "attach"):
            raise LiveError(f"port {cfg.name!r}: type {cfg.type!r} cannot run live (use tap or attach)")
        if cfg.netns and cfg.type != "tap":
            raise LiveError(f"port {cfg.name!r}: netns applies to tap ports only (an attach port uses "
                            "an interface in the daemon's namespace)")
        if persist and cfg.netns:
            self._check_netns(cfg.name, cfg.netns)
        number = cfg.number if cfg.number is not None else self.dp.next_number()
        if number in self.dp.switch.ports:
            raise LiveError(f"port {cfg.name!r}: number {number} is taken")
        cfg.number = number
        self.dp.add_port(cfg, number)
        lp = LivePort(cfg, number, since_ns=self.clock())
        nm = self.nicmode
        if nm is not None and cfg.name == nm.cfg.uplink:
            lp.uplink = True
        elif nm is not None and nm.vmdq:
            vlan = lp.cfg.vlan()
            try:
                lp.binding = nm.bind(cfg.name, vlan.tag if vlan.mode == "access" else None, cfg.mac)
            except ValueError as e:
                self.dp.remove_port(cfg.name)
                raise LiveError(str(e)) from None
        self.ports[cfg.name] = lp
        if not lp.uplink and lp.binding is None:
            lp.push = self.dp.graph.ingress(number)
        send = self._uplink_egress(lp) if lp.uplink else self._egress(lp)
        self.dp.graph.attach_egress(self.dp.switch, number, number, send, counts_bytes=not lp.uplink)
        if cfg not in self.topo.ports:
            self.topo.ports.append(cfg)
        await self._open(lp)
        log.info("port_added", extra={"kv": {"port": cfg.name, "number": number, "type": cfg.type,
                                             "state": lp.state}})
        if persist:
            self._persist()
        return lp

    async def del_port(self, name: str) -> None:
        lp = self._port(name)
        if lp.uplink:
            raise LiveError(f"port {name!r} is the NIC's uplink: change [nic] in the config to remove it")
        self._close_dev(lp, remove=True)
        if self.nicmode is not None:
            self.nicmode.unbind(name)
        self.dp.remove_port(name)
        del self.ports[name]
        self.topo.ports = [p for p in self.topo.ports if p.name != name]
        self.topo.fdb = [s for s in self.topo.fdb if s.port != name]
        for m in list(self.mirrors.values()):
            if m.output_port == name:
                self.del_mirror(m.name)
        log.info("port_deleted", extra={"kv": {"port": name}})
        self._persist()

    async def set_port(self, name: str, changes: dict[str, Any]) -> LivePort:
        """Change port settings at run time (VLANs, flags, MTU, limits, netns, state=up).  Everything is
        checked before anything changes, and the device (the one step the kernel may refuse) goes
        first: a refused change leaves the port, the switch and the config as they were."""
        lp = self._port(name)
        changes = dict(changes)
        reopen = changes.pop("state", None)
        if reopen not in (None, "up"):
            raise LiveError(f"state={reopen!r}: only state=up (re-open a down port) can be set")
        try:                       # the declaration refuses settings that cannot change at run time
            new = change_port(lp.cfg, changes, f"port {name!r}")
        except ConfigError as e:
            raise LiveError(str(e)) from None
        old = lp.cfg
        touched = new.touched_by(old)        # what the changed settings apply to (port_config.py)
        if new.netns is not None and new.netns != old.netns:
            self._check_netns(name, new.netns)
        if lp.state == "up" and new.type == "tap" and "device" in touched:
            await self._retune_tap(lp, old, new)
        self.dp.switch.update_port(lp.number, **new.switch_settings())
        lp.cfg = new
        self.topo.ports = [new if p.name == name else p for p in self.topo.ports]
        if lp.binding is not None and self.nicmode is not None and "pool" in touched:
            # The guest's pool follows its VLAN and MAC: program it again.
            mac = new.mac or (lp.binding.mac.hex(":") if lp.binding.mac else None)
            self.nicmode.unbind(name)
            v = new.vlan()
            lp.binding = self.nicmode.bind(name, v.tag if v.mode == "access" else None, mac)
        if reopen == "up" and lp.state != "up":
            await self._open(lp)
        log.info("port_changed", extra={"kv": {"port": name, **{k: v for k, v in changes.items()}}})
        self._persist()
        return lp

    async def _retune_tap(self, lp: LivePort, old: PortConfig, new: PortConfig) -> None:
        """Move an open TAP to ``new``'s namespace or MTU; if the kernel refuses, put it back as
        ``old`` had it and raise LiveError."""
        lp.cfg = new
        try:
            if new.netns != old.netns:
                self._close_dev(lp, remove=True)      # a TAP cannot move back: re-create it
                await self._open(lp)
                if lp.state != "up":
                    raise OSError(lp.error)
            else:
                await self._configure_tap(lp)
        except OSError as e:
            lp.cfg = old
            if lp.dev is None:
                await self._open(lp)
            else:
                with contextlib.suppress(OSError):
                    await self._configure_tap(lp)
            raise LiveError(f"port {old.name!r}: {e}") from None

    @staticmethod
    def _check_netns(port: str, netns: str) -> None:
        if not netlink.netns_exists(netns):
            raise LiveError(f"port {port!r}: netns {netns!r} does not exist (`ip netns add {netns}` makes it)")

    def _port(self, name: str) -> LivePort:
        lp = self.ports.get(name)
        if lp is None:
            known = ", ".join(sorted(self.ports)) or "none"
            raise LiveError(f"unknown port {name!r} (ports: {known})")
        return lp

    async def _open(self, lp: LivePort) -> None:
        if lp.opening:
            return
        lp.opening = True
        try:
            await self._open_dev(lp)
        finally:
            lp.opening = False
        if lp.reappeared:
            # The interface went and came back while it was being opened: open it again.
            lp.reappeared = False
            if lp.dev is None and self.ports.get(lp.cfg.name) is lp:
                await self._open(lp)

    async def _open_dev(self, lp: LivePort) -> None:
        cfg = lp.cfg
        if lp.dev is not None:               # state=up on an attach port whose interface is down
            self._close_dev(lp, remove=False)
        try:
            if cfg.type == "tap":
                lp.dev = TapPort(cfg.name, persist=cfg.persistent)
                await self._configure_tap(lp)
            else:
                lp.dev = PacketSocketPort(cfg.name, vnet_hdr=True)
        except PortGone as e:
            self._set_state(lp, "pending" if cfg.type == "attach" and lp.attaches == 0 else "down", str(e))
            lp.dev = None
            return
        except (OSError, LookupError, ValueError) as e:
            if lp.dev is not None:
                lp.dev.close() if isinstance(lp.dev, PacketSocketPort) else lp.dev.close(remove=True)
            lp.dev = None
            self._set_state(lp, "down", f"{type(e).__name__}: {e}")
            return
        assert self.loop is not None
        self.loop.add_reader(lp.dev.fileno(), self._readable, lp)
        lp.attaches += 1
        if isinstance(lp.dev, PacketSocketPort):
            await self._attach_up(lp, lp.dev)
        else:
            self._set_state(lp, "up", None)

    async def _attach_up(self, lp: LivePort, dev: PacketSocketPort) -> None:
        """Set an attach port's interface up (it attached just now), then take its state
        from netlink.  Once per attach: a later down by hand is the admin's to keep."""
        name = lp.cfg.name
        err = None
        try:
            await netlink.aset_up(name)
        except Exception as e:           # pyroute2 raises NetlinkError, LinkNotFound, or its own types
            err = f"cannot set {name} up: {e}"
            log.warning("port_set_up_failed", extra={"kv": {"port": name, "error": str(e)}})
        if lp.dev is not dev:             # closed meanwhile (del-port, the daemon stopping)
            return
        # The kernel queued its notice of IFF_UP before answering: take it in now.
        link = self._link_now(name, dev.ifindex)
        if link is None:                  # not heard of yet (events were lost): ask
            try:
                link = await netlink.alink_state(name)
            except Exception as e:
                log.warning("port_link_state_failed", extra={"kv": {"port": name, "error": str(e)}})
            if lp.dev is not dev:
                return
            link = self._link_now(name, dev.ifindex) or link
        if link is None or link.ifindex != dev.ifindex:
            self._gone(lp, OSError(f"{name}: interface removed"))
            lp.reappeared = link is not None
            return
        self._link_state(lp, link.up, link.running, err)

    def _link_now(self, name: str, ifindex: int) -> netlink.LinkState | None:
        """What the monitor knows of ``name`` once the queued netlink messages are read."""
        if self.monitor is None:
            return None
        self._on_netlink()
        link = self.monitor.link(name)
        return link if link is not None and link.ifindex == ifindex else None

    def _link_state(self, lp: LivePort, up: bool, running: bool, err: str | None = None) -> None:
        """An attached interface's flags give the port's state (see the module docstring)."""
        lp.admin_up, lp.carrier = up, running
        if not up:
            self._set_state(lp, "down", "interface down" + (f" ({err})" if err else ""))
        elif not running:
            self._set_state(lp, "down", "no carrier")
        else:
            self._set_state(lp, "up", None)

    async def _configure_tap(self, lp: LivePort) -> None:
        cfg = lp.cfg
        try:
            await netlink.aconfigure(cfg.name, netns=cfg.netns, mtu=cfg.mtu, up=True)
        except Exception as e:          # pyroute2 raises NetlinkError, OSError, or its own types
            where = f" in netns {cfg.netns!r}" if cfg.netns else ""
            raise OSError(f"cannot configure tap {cfg.name}{where}: {e}") from e

    def _close_dev(self, lp: LivePort, remove: bool) -> None:
        dev, lp.dev = lp.dev, None
        if dev is None:
            return
        lp.perf.gso_in += dev.rx_gso          # the device's own figures outlive it in perf-show
        lp.perf.max_frame = max(lp.perf.max_frame, dev.rx_max)
        if self.loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(dev.fileno())
        if isinstance(dev, TapPort):
            dev.close(remove=remove)
        else:
            dev.close()

    def _set_state(self, lp: LivePort, state: str, error: str | None) -> None:
        if lp.state != state or lp.error != error:
            lp.state, lp.error, lp.since_ns = state, error, self.clock()
            kv = {"port": lp.cfg.name, "state": state}
            if error:
                kv["reason"] = error
            log.info("port_state", extra={"kv": kv})

    def _gone(self, lp: LivePort, err: Exception) -> None:
        """The interface behind a port vanished: the port goes down, everyone else carries on."""
        self._close_dev(lp, remove=False)
        lp.admin_up = lp.carrier = None
        self._set_state(lp, "down", str(err))

    # -- netlink -------------------------------------------------------------
    def _on_netlink(self) -> None:
        assert self.monitor is not None and self.loop is not None
        try:
            events = self.monitor.read_events()
        except OSError as e:
            log.warning("netlink_error", extra={"kv": {"error": str(e)}})
            return
        for ev in events:
            lp = self.ports.get(ev.name)
            if lp is None or lp.cfg.type != "attach":
                continue
            if lp.opening:
                # _open reads the state itself once it has the socket; only note a comeback.
                if ev.kind == "appeared":
                    lp.reappeared = True
                continue
            dev = lp.dev
            mine = isinstance(dev, PacketSocketPort) and dev.ifindex == ev.ifindex
            if ev.kind == "gone":
                if mine:
                    self._gone(lp, OSError(f"{ev.name}: interface removed"))
            elif mine:                          # appeared (the first dump) or changed: follow it
                self._link_state(lp, ev.up, ev.running)
            elif ev.kind == "appeared":
                if dev is not None:             # a new interface under the old name
                    self._gone(lp, OSError(f"{ev.name}: interface replaced"))
                self.loop.create_task(self._open(lp))

    # -- data path -----------------------------------------------------------
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
            self._gone(lp, e)
            return
        except OSError as e:               # unexpected: keep the daemon alive, take the port down
            log.warning("port_read_error", extra={"kv": {"port": lp.cfg.name, "error": str(e)}})
            self._gone(lp, e)
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
        if self.mirrors:
            self._mirror_rx(lp, frames)
        t1 = timer()
        tx_before = perf.tx_ns
        self._current = perf
        if lp.push is not None:             # the software switch (no NIC model, or pool 0)
            lp.push(frames, now, nbytes)
        elif lp.uplink:
            self._wire_rx(lp, frames, now)
        elif lp.binding is not None:
            self._guest_tx(lp, lp.binding, frames, now)
        t2 = timer()
        perf.rx_ns += t1 - t0
        perf.dp_ns += (t2 - t1) - (perf.tx_ns - tx_before)
        perf.batches += 1
        perf.frames += len(frames)
        if self.busy_poll_ns:
            self._spin_deadline = t2 + self.busy_poll_ns
            if not self._spinning and self._spin_handle is None:
                self._busy_poll()

    def _busy_poll(self) -> None:
        """Opt-in (``--busy-poll-us``): after a batch, keep polling every port until none
        has had a frame for that long, before going back to sleep in the event loop, as
        OVS's PMD threads and the kernel's busy_poll do.  The reply to a frame just
        forwarded is then caught hot, without a process wake-up: lower latency for CPU
        time.  The spin hands the loop back every `SPIN_SLICE_NS` (it goes on from a
        ``call_soon``, so the loop does not sleep), so the control socket, the ageing
        timer and the NIC model's timers keep running under continuous traffic."""
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

    def _egress(self, lp: LivePort) -> Callable[[Batch, int], int]:
        """The port's transmit side: write each frame to the device.  Returns the batch's
        bytes (the graph counts them as tx); frames the device refused, or that never
        reached a vanished one, move from tx to ``tx_dropped``."""
        counters = self.dp.graph.ports[lp.number]
        timer = self.timer

        def send(batch: Batch, now_ns: int) -> int:
            t0 = timer()
            dev = lp.dev
            if self.mirrors:
                self._mirror_tx(lp, batch)
            if dev is None:
                nbytes = failed_bytes = sum(len(f.data) for f in batch)
                failed = len(batch)
            else:
                try:
                    nbytes, failed, failed_bytes = dev.write_frames(batch)
                except PortGone as e:
                    self._gone(lp, e)
                    rest = batch[e.handled:]         # the frame that failed and those after it
                    nbytes = sum(len(f.data) for f in batch)
                    failed = e.failed + len(rest)
                    failed_bytes = e.failed_bytes + sum(len(f.data) for f in rest)
            if failed:
                counters.tx_packets -= failed
                counters.tx_bytes -= failed_bytes
                counters.tx_dropped += failed
            cur = self._current
            if cur is not None:
                cur.tx_ns += timer() - t0
                cur.tx_calls += 1
            return nbytes
        return send

    # -- the emulated NIC (vswitch/drivers/nic_mode.py) -----------------------------
    def _wire_rx(self, uplink: LivePort, frames: list[Frame], now: int) -> None:
        """Frames from the wire: into the NIC, then deliver what its queues hold."""
        nm = self.nicmode
        assert nm is not None
        c = self.dp.graph.ports[uplink.number]
        c.rx_packets += len(frames)
        c.rx_bytes += sum(len(f.data) for f in frames)
        raised = nm.wire_rx(frames, now, uplink.cfg.mtu)
        self._nic_deliver(raised, now)

    def _nic_deliver(self, raised: list[int], now: int) -> None:
        """NAPI-poll the queues that raised an interrupt and hand their frames on: in software
        mode (and from the hypervisor's default pool 0) to the software switch; in vmdq mode
        straight to the guest bound to the frame's pool."""
        nm = self.nicmode
        assert nm is not None
        if raised:
            frames = nm.poll(raised, now)
            if frames:
                t0 = self.timer()
                uplink = self.ports.get(nm.cfg.uplink)
                if not nm.vmdq:
                    if uplink is not None:
                        self._switch_push(uplink.number, frames, now)
                else:
                    by_pool: dict[int, list[Frame]] = {}
                    for f in frames:
                        by_pool.setdefault(f.pool, []).append(f)
                    for pool, fl in by_pool.items():
                        b = nm.by_pool.get(pool)
                        lp = self.ports.get(b.port) if b is not None else None
                        if lp is not None:
                            self._write_guest(lp, fl)
                        elif uplink is not None:
                            # The default pool (0): the hypervisor's slow path, the software switch.
                            self._switch_push(uplink.number, fl, now)
                nm.perf.host_ns += self.timer() - t0
        self._arm_nic_timer(now)

    def _switch_push(self, number: int, frames: list[Frame], now: int) -> None:
        """Into the software switch as if received on port ``number`` (already counted in rx)."""
        for f in frames:
            f.in_port = number
        self.dp.switch.push(number, frames, now)

    def _write_guest(self, lp: LivePort, frames: list[Frame]) -> None:
        c = self.dp.graph.ports[lp.number]
        dev = lp.dev
        for f in frames:
            ok = False
            if dev is not None:
                try:
                    ok = dev.write(f.vnet, f.data)
                except PortGone as e:
                    self._gone(lp, e)
                    dev = None
            if ok:
                c.tx_packets += 1
                c.tx_bytes += len(f.data)
            else:
                c.tx_dropped += 1

    def _guest_tx(self, lp: LivePort, b: Binding, frames: list[Frame], now: int) -> None:
        """A guest's frames (vmdq mode): its pool's TX queue, then the wire or VEB loopback."""
        nm = self.nicmode
        assert nm is not None
        c = self.dp.graph.ports[lp.number]
        c.rx_packets += len(frames)
        c.rx_bytes += sum(len(f.data) for f in frames)
        src = frames[-1].data[6:12]
        if b.mac != src and nm.program_mac(b, src):
            log.info("pool_programmed", extra={"kv": {"port": lp.cfg.name, "pool": b.pool,
                                                      "mac": src.hex(":"), "vlan": b.vlan}})
        wire, raised = nm.guest_tx(b, frames, now)
        uplink = self.ports.get(nm.cfg.uplink)
        if wire and uplink is not None:
            self._write_guest(uplink, wire)
        self._nic_deliver(raised, now)

    def _uplink_egress(self, uplink: LivePort) -> Callable[[Batch, int], None]:
        """Frames the software switch sends to the uplink leave through the NIC's TX path."""
        counters = self.dp.graph.ports[uplink.number]

        def send(batch: Batch, now_ns: int) -> None:
            nm = self.nicmode
            assert nm is not None
            counters.tx_packets -= len(batch)          # counted again as the NIC hands them to the wire
            counters.tx_bytes -= sum(len(f.data) for f in batch)
            wire, raised = nm.guest_tx(nm.hypervisor, batch, now_ns)
            if wire:
                self._write_guest(uplink, wire)
            if raised:
                self._nic_deliver(raised, now_ns)
        return send

    def _arm_nic_timer(self, now: int) -> None:
        """Interrupt moderation: wake up when the NIC's next moderation timer expires."""
        nm = self.nicmode
        if nm is None or self.loop is None or self._nic_timer is not None:
            return
        due = nm.nic.next_timer_ns()
        if due is not None:
            self._nic_timer = self.loop.call_later(max(0, due - now) / 1e9, self._on_nic_timer)

    def _on_nic_timer(self) -> None:
        self._nic_timer = None
        nm = self.nicmode
        assert nm is not None
        now = self.clock()
        self._nic_deliver(nm.nic.tick(now), now)

    def nic_show(self) -> dict[str, Any]:
        if self.nicmode is None:
            raise LiveError("no emulated NIC: add a [nic] section (profile, mode, uplink) to the config")
        return self.nicmode.show()

    # -- mirrors -------------------------------------------------------------
    def add_mirror(self, name: str, select_src: list[str], select_dst: list[str], select_all: bool,
                   output_port: str | None, output_pcap: str | None, pcap_mode: str = "new") -> Mirror:
        """A mirror to a port, or to ``output_pcap``: a file name in the mirror directory, opened
        as `MirrorDir.open` says (``pcap_mode`` new, append or replace)."""
        if name in self.mirrors:
            raise LiveError(f"mirror {name!r} already exists")
        if (output_port is None) == (output_pcap is None):
            raise LiveError("a mirror needs exactly one output: --output-port PORT or --output-pcap FILE")
        for p in [*select_src, *select_dst, *([output_port] if output_port else [])]:
            self._port(p)
        if not (select_src or select_dst or select_all):
            raise LiveError("a mirror needs a selection: --select-src-port, --select-dst-port or --select-all")
        if output_port and (output_port in select_src or output_port in select_dst):
            raise LiveError(f"mirror output port {output_port!r} cannot also be selected")
        if pcap_mode != "new" and output_pcap is None:
            raise LiveError("--append and --replace apply to --output-pcap only")
        writer = key = None
        if output_pcap is not None:
            busy = [m.pcap_file for m in self.mirrors.values() if m.pcap_file is not None]
            try:
                writer, key = self.mirror_dir.open(output_pcap, pcap_mode, busy)
            except MirrorPathError as e:
                raise LiveError(str(e)) from None
        m = Mirror(name, frozenset(select_src), frozenset(select_dst), select_all, output_port,
                   writer.path if writer else None, writer, key)
        self.mirrors[name] = m
        log.info("mirror_added", extra={"kv": m.describe()})
        return m

    def del_mirror(self, name: str) -> None:
        m = self.mirrors.pop(name, None)
        if m is None:
            raise LiveError(f"unknown mirror {name!r} (mirrors: {', '.join(self.mirrors) or 'none'})")
        if m.writer:
            m.writer.close()
        log.info("mirror_deleted", extra={"kv": {"mirror": name}})

    def _mirror_rx(self, lp: LivePort, frames: list[Frame]) -> None:
        for m in self.mirrors.values():
            if (m.select_all or lp.cfg.name in m.select_src) and m.output_port != lp.cfg.name:
                self._mirror_out(m, frames)

    def _mirror_tx(self, lp: LivePort, frames: Batch) -> None:
        for m in self.mirrors.values():
            if (m.select_all or lp.cfg.name in m.select_dst) and m.output_port != lp.cfg.name:
                self._mirror_out(m, frames)

    def _mirror_out(self, m: Mirror, frames: Batch) -> None:
        """Mirror copies are always plain frames: segmented, checksums complete."""
        out = self.ports.get(m.output_port) if m.output_port else None
        for f in frames:
            try:
                pieces = to_plain(f.vnet, f.data, 65535 if m.writer else (out.cfg.mtu if out else 1500))
            except GsoError:
                m.tx_dropped += 1
                continue
            for p in pieces:
                if m.writer is not None:
                    m.writer.write(p, f.ts_ns)
                    ok = True
                elif out is not None and out.dev is not None:
                    try:
                        ok = out.dev.write(None, p)
                    except PortGone:
                        ok = False
                else:
                    ok = False
                if ok:
                    m.tx_packets += 1
                    m.tx_bytes += len(p)
                else:
                    m.tx_dropped += 1
        if m.writer is not None:
            m.writer.flush()        # a mirror file is read while it grows (tcpdump -r, Wireshark)

    # -- views -----------------------------------------------------------------
    def show(self) -> dict[str, Any]:
        b = self.topo.bridge
        return {"bridge": {"name": b.name, "ageing_time": b.ageing_time, "mac_table_size": b.mac_table_size,
                           "uptime_s": (self.clock() - self.started_ns) / 1e9,
                           "dataplane": compiled.status()},
                "ports": [lp.describe() for lp in sorted(self.ports.values(), key=lambda p: p.number)],
                "mirrors": [m.describe() for m in self.mirrors.values()]}

    def counters(self, port: str | None = None) -> dict[str, Any]:
        snap = self.dp.graph.snapshot()
        if port is not None:
            self._port(port)
            return {"ports": {port: snap["ports"][port]}}
        sw = snap["elements"][self.dp.switch.name]
        return {"ports": snap["ports"], "switch": sw, "mirrors": {m.name: m.describe() for m in
                                                                  self.mirrors.values()}}

    def perf_show(self) -> dict[str, Any]:
        """OVS pmd-perf-show, for the event loop: per-port stages in ns/frame, batches, wake-ups."""
        snap = self.dp.graph.snapshot()
        ports = {}
        tot = PortPerf()
        for name, lp in self.ports.items():
            p = lp.perf
            if lp.dev is not None:             # fold in what the open device has counted
                p = replace(p, gso_in=p.gso_in + lp.dev.rx_gso, max_frame=max(p.max_frame, lp.dev.rx_max))
            for k in tot.__dataclass_fields__:
                if k == "max_frame":
                    tot.max_frame = max(tot.max_frame, p.max_frame)
                else:
                    setattr(tot, k, getattr(tot, k) + getattr(p, k))
            ports[name] = _perf_dict(p)
        return {"total": _perf_dict(tot), "ports": ports,
                "nic": self.nicmode.perf_view() if self.nicmode is not None else None,
                "elements": snap.get("perf", {}),
                "loop": {"dataplane": compiled.status(), "ticks": self.ticks,
                         "max_lag_us": self.loop_lag_max_ns / 1e3,
                         "busy_poll_us": self.busy_poll_ns // 1000, "busy_poll_catches": self.busy_polls,
                         "uptime_s": (self.clock() - self.started_ns) / 1e9}}


def _updown(flag: bool | None) -> str | None:
    return None if flag is None else ("up" if flag else "down")


def _perf_dict(p: PortPerf) -> dict[str, Any]:
    f = p.frames or 1
    busy = p.wakeups - p.idle_wakeups
    return {"wakeups": p.wakeups, "busy_wakeups": busy, "idle_wakeups": p.idle_wakeups,
            "busy_pct": 100.0 * busy / p.wakeups if p.wakeups else 0.0,
            "frames": p.frames, "batches": p.batches,
            "frames_per_batch": p.frames / p.batches if p.batches else 0.0,
            "rx_ns_per_frame": p.rx_ns / f, "switch_ns_per_frame": p.dp_ns / f,
            "tx_ns_per_frame": p.tx_ns / f,
            "total_ns_per_frame": (p.rx_ns + p.dp_ns + p.tx_ns) / f,
            "gso_frames_in": p.gso_in, "max_frame_bytes": p.max_frame}
