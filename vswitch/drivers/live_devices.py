"""The live driver's port lifecycle: opening and closing devices, and following netlink.

TAP ports are created through ``/dev/net/tun`` with ``IFF_VNET_HDR`` and
checksum/TSO offloads, moved into their namespace, given their MTU and set
up (pyroute2, in worker threads).  Attach ports open an AF_PACKET socket with
``PACKET_VNET_HDR`` on an existing interface.

An attach port sets its interface administratively up each time it attaches
(start, add-port, the interface appearing again), as Open vSwitch does: QEMU's
``script=no`` tap and a new veth start down.  From then on it follows the
interface's flags from netlink: ``up`` needs IFF_UP and IFF_RUNNING (carrier);
otherwise the port is ``down``, its reason ``interface down`` (not IFF_UP: an
admin set it down, and the daemon leaves it so until it attaches again) or
``no carrier`` (up, but nothing behind it: a tap whose fd no process holds, a
veth whose peer is down).  The socket stays open through both.  A vanished
interface takes only its own port down; the port comes back with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from vswitch.drivers.live_io import IoLoop
from vswitch.drivers.live_port import LiveError, LivePort
from vswitch.io import netlink
from vswitch.io.errors import PortGone
from vswitch.io.packet_socket import PacketSocketPort
from vswitch.io.tap import TapPort
from vswitch.topology import PortConfig

log = logging.getLogger("vswitchd")


class Devices:
    """Opens, closes and follows the devices of the ports in ``ports``."""

    def __init__(self, ports: dict[str, LivePort], io: IoLoop, clock: Callable[[], int]) -> None:
        self.ports = ports
        self.io = io
        self.clock = clock
        self.monitor: netlink.LinkMonitor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.monitor = netlink.LinkMonitor()
        self.monitor.start()
        loop.add_reader(self.monitor.fileno(), self.on_netlink)

    def close(self) -> None:
        if self.monitor is not None and self.loop is not None:
            self.loop.remove_reader(self.monitor.fileno())
            self.monitor.close()

    # -- opening -------------------------------------------------------------------
    async def open(self, lp: LivePort) -> None:
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
                await self.open(lp)

    async def _open_dev(self, lp: LivePort) -> None:
        cfg = lp.cfg
        if lp.dev is not None:               # state=up on an attach port whose interface is down
            self.close_dev(lp, remove=False)
        try:
            if cfg.type == "tap":
                lp.dev = TapPort(cfg.name, persist=cfg.persistent)
                await self.configure_tap(lp)
            else:
                lp.dev = PacketSocketPort(cfg.name, vnet_hdr=True)
        except PortGone as e:
            self.set_state(lp, "pending" if cfg.type == "attach" and lp.attaches == 0 else "down", str(e))
            lp.dev = None
            return
        except (OSError, LookupError, ValueError) as e:
            if lp.dev is not None:
                lp.dev.close() if isinstance(lp.dev, PacketSocketPort) else lp.dev.close(remove=True)
            lp.dev = None
            self.set_state(lp, "down", f"{type(e).__name__}: {e}")
            return
        self.io.register(lp)
        lp.attaches += 1
        if isinstance(lp.dev, PacketSocketPort):
            await self._attach_up(lp, lp.dev)
        else:
            self.set_state(lp, "up", None)

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
            self.gone(lp, OSError(f"{name}: interface removed"))
            lp.reappeared = link is not None
            return
        self._link_state(lp, link.up, link.running, err)

    def _link_now(self, name: str, ifindex: int) -> netlink.LinkState | None:
        """What the monitor knows of ``name`` once the queued netlink messages are read."""
        if self.monitor is None:
            return None
        self.on_netlink()
        link = self.monitor.link(name)
        return link if link is not None and link.ifindex == ifindex else None

    def _link_state(self, lp: LivePort, up: bool, running: bool, err: str | None = None) -> None:
        """An attached interface's flags give the port's state (see the module docstring)."""
        lp.admin_up, lp.carrier = up, running
        if not up:
            self.set_state(lp, "down", "interface down" + (f" ({err})" if err else ""))
        elif not running:
            self.set_state(lp, "down", "no carrier")
        else:
            self.set_state(lp, "up", None)

    async def configure_tap(self, lp: LivePort) -> None:
        cfg = lp.cfg
        try:
            await netlink.aconfigure(cfg.name, netns=cfg.netns, mtu=cfg.mtu, up=True, mac=lp.address)
        except Exception as e:          # pyroute2 raises NetlinkError, OSError, or its own types
            where = f" in netns {cfg.netns!r}" if cfg.netns else ""
            raise OSError(f"cannot configure tap {cfg.name}{where}: {e}") from e

    async def retune_tap(self, lp: LivePort, old: PortConfig, new: PortConfig) -> None:
        """Move an open TAP to ``new``'s namespace or MTU; if the kernel refuses, put it back as
        ``old`` had it and raise LiveError."""
        lp.cfg = new
        try:
            if new.netns != old.netns:
                self.close_dev(lp, remove=True)      # a TAP cannot move back: re-create it
                await self.open(lp)
                if lp.state != "up":
                    raise OSError(lp.error)
            else:
                await self.configure_tap(lp)
        except OSError as e:
            lp.cfg = old
            if lp.dev is None:
                await self.open(lp)
            else:
                with contextlib.suppress(OSError):
                    await self.configure_tap(lp)
            raise LiveError(f"port {old.name!r}: {e}") from None

    # -- closing ----------------------------------------------------------------------
    def close_dev(self, lp: LivePort, remove: bool) -> None:
        dev, lp.dev = lp.dev, None
        if dev is None:
            return
        lp.perf.gso_in += dev.rx_gso          # the device's own figures outlive it in perf-show
        lp.perf.max_frame = max(lp.perf.max_frame, dev.rx_max)
        if isinstance(dev, PacketSocketPort):
            lp.perf.kernel_dropped += dev.kernel_drops()
        self.io.unregister(dev.fileno())
        if isinstance(dev, TapPort):
            dev.close(remove=remove)
        else:
            dev.close()

    def set_state(self, lp: LivePort, state: str, error: str | None) -> None:
        if lp.state != state or lp.error != error:
            lp.state, lp.error, lp.since_ns = state, error, self.clock()
            kv = {"port": lp.cfg.name, "state": state}
            if error:
                kv["reason"] = error
            log.info("port_state", extra={"kv": kv})

    def gone(self, lp: LivePort, err: Exception) -> None:
        """The interface behind a port vanished: the port goes down, everyone else carries on."""
        self.close_dev(lp, remove=False)
        lp.admin_up = lp.carrier = None
        self.set_state(lp, "down", str(err))

    # -- netlink -------------------------------------------------------------------
    def on_netlink(self) -> None:
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
                # open() reads the state itself once it has the socket; only note a comeback.
                if ev.kind == "appeared":
                    lp.reappeared = True
                continue
            dev = lp.dev
            mine = isinstance(dev, PacketSocketPort) and dev.ifindex == ev.ifindex
            if ev.kind == "gone":
                if mine:
                    self.gone(lp, OSError(f"{ev.name}: interface removed"))
            elif mine:                          # appeared (the first dump) or changed: follow it
                self._link_state(lp, ev.up, ev.running)
            elif ev.kind == "appeared":
                if dev is not None:             # a new interface under the old name
                    self.gone(lp, OSError(f"{ev.name}: interface replaced"))
                self.loop.create_task(self.open(lp))
