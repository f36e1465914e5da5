"""Live driver: the dataplane graph over TAP devices and AF_PACKET sockets, on asyncio.

`LiveSwitch` is what the daemon and its control server hold: the graph (built
from the topology by `vswitch.topology.build_dataplane`, the emulated NIC
included), the ports, the mirrors, and the run-time changes to them.  The
work is in three pieces, each named for what it does:

* `live_io.IoLoop`: file descriptors to graph ports, the clock, draining what
  the graph says is ready and one timer for its next deadline; the device
  writes behind each port's transmit.
* `live_devices.Devices`: opening and closing devices, an attach port's
  interface set up and followed through netlink, port states.
* `live_views`: what ``show``, ``counters``, ``perf-show`` and ``nic show``
  return, all from the graph's one snapshot.
* SR-IOV mode: each guest's receive filter (a tap guest's multicast list in its
  namespace, `vswitch.io.rx_filter`; a QEMU guest's over QMP, `vswitch.io.qmp`)
  handed to its VF's driver, which programs it through the mailbox.

Offloads.  TAP ports are opened with ``IFF_VNET_HDR`` and checksum/TSO
offloads; attach ports with ``PACKET_VNET_HDR``.  A frame keeps its
virtio-net header (``Frame.vnet``) across the switch, so a 64 KB TCP GSO
super-frame crosses unsegmented between ports (every port type takes the
header: where the device behind an attach port cannot do TSO, the kernel
segments in software).  Mirrors (`vswitch.elements.mirror`), to a pcap file or
to a port, get plain frames: segmented, checksums completed, never over the
MTU; so does the emulated NIC's wire side (`vswitch.elements.segment`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vswitch.core.element import Batch
from vswitch.core.frame import parse_mac
from vswitch.core.graph import Graph
from vswitch.drivers import live_views
from vswitch.drivers.live_devices import Devices
from vswitch.drivers.live_io import BATCH, IoLoop
from vswitch.drivers.live_port import LiveError, LivePort, PortPerf
from vswitch.elements.mirror import Mirror
from vswitch.io import netlink, qmp, rx_filter
from vswitch.io.mirror_dir import DEFAULT_MIRROR_DIR, MirrorDir, MirrorPathError
from vswitch.io.pcap import PcapWriter
from vswitch.port_config import change_port
from vswitch.topology import ConfigError, Dataplane, PortConfig, Topology, build_dataplane

__all__ = ["LiveSwitch", "LivePort", "LiveError", "PortPerf", "MirrorPort", "BATCH"]

log = logging.getLogger("vswitchd")
RX_FILTER_POLL_S = 0.5        # how often SR-IOV mode reads its tap guests' multicast lists


@dataclass
class MirrorPort:
    """A mirror as configured: its element, its selection by name, its output."""

    element: Mirror
    select_src: frozenset[str]
    select_dst: frozenset[str]
    select_all: bool
    output_port: str | None = None
    output_pcap: str | None = None
    writer: PcapWriter | None = None
    pcap_file: tuple[int, int] | None = None      # the writer's (st_dev, st_ino)

    @property
    def name(self) -> str:
        return self.element.name

    def describe(self) -> dict[str, Any]:
        c = self.element.counters
        return {"name": self.name, "select_src_port": sorted(self.select_src),
                "select_dst_port": sorted(self.select_dst), "select_all": self.select_all,
                "output_port": self.output_port, "output_pcap": self.output_pcap,
                "tx_packets": c["tx_packets"], "tx_bytes": c["tx_bytes"],
                "tx_dropped": self.element.drops["malformed"]}


class LiveSwitch:
    def __init__(self, topo: Topology, clock: Callable[[], int] = time.monotonic_ns,
                 timer: Callable[[], int] = time.perf_counter_ns, batch: int = BATCH,
                 busy_poll_us: int = 0, mirror_dir: str = DEFAULT_MIRROR_DIR) -> None:
        self.topo = topo
        self.mirror_dir = MirrorDir(mirror_dir)      # where pcap mirrors write (and only there)
        self.clock = clock
        self.timer = timer
        # The graph with its NIC; ports are added one by one as their devices open.
        self.dp: Dataplane = build_dataplane(Topology(bridge=topo.bridge, nic=topo.nic), Graph(timer=timer))
        self.ports: dict[str, LivePort] = {}
        self.mirrors: dict[str, MirrorPort] = {}
        self.io = IoLoop(self.dp.graph, self.ports, clock, timer, self._gone, batch, busy_poll_us)
        self.devices = Devices(self.ports, self.io, clock)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started_ns = clock()
        self.loop_lag_max_ns = 0
        # The loop thread's CPU time spent answering control requests (perf-show's
        # `loop.control_cpu_ns`): what a client polling the daemon costs it, kept apart from
        # the frames' work when the loop's CPU time is set against the frames.
        self.control_cpu_ns = 0
        self.control_started_ns = 0     # the thread's CPU time when the request under way began
        self.ticks = 0
        self._tick_task: asyncio.Task[None] | None = None
        self._rx_filter_task: asyncio.Task[None] | None = None
        self._qmp_tasks: dict[str, asyncio.Task[None]] = {}    # attach ports on VFs following QEMU's filter
        self._changed: Callable[[], None] | None = None   # persistence hook

    # -- lifecycle -----------------------------------------------------------
    async def start(self, on_change: Callable[[], None] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.io.start(self.loop)
        self.devices.start(self.loop)
        for cfg in self.topo.ports:
            await self.add_port(cfg, persist=False)
        for s in self.topo.fdb:
            self.dp.switch.fdb.add_static(s.vlan, parse_mac(s.mac), self.ports[s.port].number)
        self._changed = on_change
        self._tick_task = asyncio.create_task(self._ticker())
        if self.dp.nic is not None and self.dp.nic.mode == "sriov":
            self._rx_filter_task = asyncio.create_task(self._follow_rx_filters())

    async def close(self) -> None:
        if self._tick_task:
            self._tick_task.cancel()
        if self._rx_filter_task:
            self._rx_filter_task.cancel()
        for t in self._qmp_tasks.values():
            t.cancel()
        self.io.close()
        for lp in list(self.ports.values()):
            self.devices.close_dev(lp, remove=not lp.cfg.persistent)
        for m in self.mirrors.values():
            if m.writer:
                m.writer.close()
        self.devices.close()

    async def _ticker(self) -> None:
        """Aging sweeps once a second; also measures how late the loop wakes us (loop lag)."""
        while True:
            t0 = self.clock()
            await asyncio.sleep(1.0)
            now = self.clock()
            self.loop_lag_max_ns = max(self.loop_lag_max_ns, now - t0 - 1_000_000_000)
            self.dp.graph.tick(now)
            self.ticks += 1

    async def _follow_rx_filters(self) -> None:
        """SR-IOV mode: each tap guest's multicast list and flags (its kernel's, read in its
        namespace: `vswitch.io.rx_filter`) go to its VF's driver, which programs them through
        the mailbox, as a guest kernel calls its ixgbevf's ndo_set_rx_mode.  Read every
        RX_FILTER_POLL_S (the kernel would call the driver at once)."""
        while True:
            by_ns: dict[str | None, list[str]] = {}
            for lp in self.ports.values():
                if lp.cfg.type == "tap" and lp.state == "up" and self.dp.on_vf(lp.cfg.name):
                    by_ns.setdefault(lp.cfg.netns, []).append(lp.cfg.name)
            for ns, names in by_ns.items():
                try:
                    filters = await asyncio.to_thread(rx_filter.read_filters, ns, names)
                except OSError as e:             # the namespace went away: the port follows it down
                    log.debug("rx_filter_failed", extra={"kv": {"netns": ns, "error": str(e)}})
                    continue
                for name, f in filters.items():
                    self._guest_rx_mode(name, f)
            await asyncio.sleep(RX_FILTER_POLL_S)

    def _guest_rx_mode(self, name: str, f: rx_filter.RxFilter) -> None:
        host = self.dp.nic
        if name in self.ports and host.guest_rx_mode(name, f.groups, allmulti=f.allmulti, promisc=f.promisc):
            log.info("vf_rx_mode", extra={"kv": {"port": name, "groups": len(f.groups), "allmulti": f.allmulti,
                                                 "promisc": f.promisc}})

    async def _follow_qmp(self, name: str, path: str) -> None:
        """SR-IOV mode, an attach port with ``qmp``: the QEMU guest's receive filter (its
        virtio-net driver's, from QEMU's QMP: `vswitch.io.qmp`) goes to its VF's driver."""
        host = self.dp.nic
        await qmp.follow_rx_filter(path, lambda: host.guest_mac(name), lambda f: self._guest_rx_mode(name, f), name)

    def _persist(self) -> None:
        if self._changed is not None:
            self._changed()

    def _gone(self, lp: LivePort, err: Exception) -> None:
        self.devices.gone(lp, err)

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
        if self.dp.taken(number):
            raise LiveError(f"port {cfg.name!r}: number {number} is taken")
        try:
            self.dp.add_port(cfg, number)          # changes nothing if it fails (no free pool)
        except ValueError as e:
            raise LiveError(str(e)) from None
        cfg.number = number
        lp = LivePort(cfg, number, since_ns=self.clock(), role=self.dp.role(cfg.name))
        lp.address = self._guest_mac(cfg.name)
        lp.push = self.dp.graph.ingress(number)
        self.dp.graph.set_transmit(number, self.io.transmit(lp), counts_bytes=True)
        self.ports[cfg.name] = lp
        if cfg not in self.topo.ports:
            self.topo.ports.append(cfg)
        await self.devices.open(lp)
        if cfg.qmp is not None and self.dp.on_vf(cfg.name):
            self._qmp_tasks[cfg.name] = asyncio.create_task(self._follow_qmp(cfg.name, cfg.qmp))
        log.info("port_added", extra={"kv": {"port": cfg.name, "number": number, "type": cfg.type,
                                             "state": lp.state}})
        if persist:
            self._persist()
        return lp

    async def del_port(self, name: str) -> None:
        lp = self._port(name)
        if lp.role == "uplink":
            raise LiveError(f"port {name!r} is the NIC's uplink: change [nic] in the config to remove it")
        for m in list(self.mirrors.values()):
            if m.output_port == name:
                self.del_mirror(m.name)
        self.devices.close_dev(lp, remove=True)
        task = self._qmp_tasks.pop(name, None)
        if task is not None:
            task.cancel()
        self.dp.remove_port(name)
        del self.ports[name]
        self.topo.ports = [p for p in self.topo.ports if p.name != name]
        self.topo.fdb = [s for s in self.topo.fdb if s.port != name]
        self._reselect_mirrors()
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
        err = self.dp.nic_qdisc_error(new)   # rx_qdisc/tx_qdisc: only a guest's NIC queues have them
        if err is not None:
            raise LiveError(f"port {name!r}: {err}")
        old = lp.cfg
        touched = new.touched_by(old)        # what the changed settings apply to (port_config.py)
        if new.netns is not None and new.netns != old.netns:
            self._check_netns(name, new.netns)
        on_vf = self.dp.on_vf(name)
        if on_vf:                    # the PF may refuse (its errno, nothing changed): before the device
            try:
                self.dp.update_port(old, new)
            except ValueError as e:
                raise LiveError(f"port {name!r}: {e}") from None
        if lp.state == "up" and new.type == "tap" and "device" in touched:
            try:
                await self.devices.retune_tap(lp, old, new)
            except LiveError:
                if on_vf:
                    self.dp.update_port(new, old)
                raise
        if not on_vf:
            self.dp.update_port(old, new, repool="pool" in touched)
        if "ingress" in touched:             # a policer or storm control now stands in front
            lp.push = self.dp.graph.ingress(lp.number)
        lp.cfg = new
        if on_vf and new.mac != old.mac:
            await self._readdress(lp)
        self.topo.ports = [new if p.name == name else p for p in self.topo.ports]
        if reopen == "up" and lp.state != "up":
            await self.devices.open(lp)
        log.info("port_changed", extra={"kv": {"port": name, **{k: v for k, v in changes.items()}}})
        self._persist()
        return lp

    def _guest_mac(self, name: str) -> str | None:
        """A tap guest on a VF carries its VF's admin MAC (as a VF's netdev takes its PF-given MAC)."""
        host = self.dp.nic
        if host is None or not self.dp.on_vf(name):
            return None
        mac: str | None = host.guest_mac(name)
        return mac

    async def _readdress(self, lp: LivePort) -> None:
        """The VF's admin MAC changed: the guest's tap takes the new one (its driver was reloaded)."""
        lp.address = self._guest_mac(lp.cfg.name)
        if lp.cfg.type != "tap" or lp.state != "up" or lp.address is None:
            return
        try:
            await netlink.aconfigure(lp.cfg.name, netns=lp.cfg.netns, mac=lp.address)
        except Exception as e:          # pyroute2's own types: the port keeps working, with its old MAC
            log.warning("port_mac_failed", extra={"kv": {"port": lp.cfg.name, "error": str(e)}})

    # -- SR-IOV ------------------------------------------------------------------
    def _sriov(self) -> Any:
        host = self.dp.nic
        if host is None or host.mode != "sriov":
            raise LiveError('no SR-IOV NIC: the config needs [nic] mode = "sriov" with numvfs = N')
        return host

    def vf_show(self) -> dict[str, Any]:
        return live_views.vf_show(self)

    def vf_mailbox(self, n: int) -> list[str]:
        host = self._sriov()
        try:
            lines: list[str] = host.mailbox(n)
        except ValueError as e:
            raise LiveError(str(e)) from None
        return lines

    async def vf_set(self, pf: str, n: int, words: list[str]) -> dict[str, Any]:
        """``ip link set PF vf N WORDS``: the words become the settings of the port on VF n, changed
        as set-port changes them (checked, applied by the PF driver, saved); a refusal changes
        nothing."""
        host = self._sriov()
        if pf not in (host.nic.name, self.dp.uplink):
            raise LiveError(f"unknown PF {pf!r} (the PF is {host.nic.name}, on uplink {self.dp.uplink})")
        try:
            port, changes = host.vf_words(n, words)
        except ValueError as e:
            raise LiveError(str(e)) from None
        lp = await self.set_port(port, changes)
        return {"vf": n, "name": port, "changed": changes, "vf_info": host.pf.vf(n).vf_info(),
                "state": lp.state, "error": lp.error}

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

    # -- mirrors -------------------------------------------------------------
    def add_mirror(self, name: str, select_src: list[str], select_dst: list[str], select_all: bool,
                   output_port: str | None, output_pcap: str | None, pcap_mode: str = "new") -> MirrorPort:
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
        if f"mirror.{name}" in self.dp.graph.elements:
            raise LiveError(f"mirror {name!r}: an element of that name is already in the graph")
        writer = key = None
        if output_pcap is not None:
            busy = [m.pcap_file for m in self.mirrors.values() if m.pcap_file is not None]
            try:
                writer, key = self.mirror_dir.open(output_pcap, pcap_mode, busy)
            except MirrorPathError as e:
                raise LiveError(str(e)) from None
        out = self.ports[output_port] if output_port else None
        el = Mirror(f"mirror.{name}", select_all=select_all, output=out.number if out else -1,
                    mtu=out.cfg.mtu if out else 65535)
        m = MirrorPort(el, frozenset(select_src), frozenset(select_dst), select_all, output_port,
                       writer.path if writer else None, writer, key)
        g = self.dp.graph
        g.add(el)
        if out is not None:
            g.bind_egress(el, "out", out.number)
        else:
            assert writer is not None
            g.attach_sink(el, "out", _pcap_sink(writer))
        g.tap(-1, "rx", el.tap_rx)
        g.tap(-1, "tx", el.tap_tx)
        self.mirrors[name] = m
        self._reselect_mirrors()
        log.info("mirror_added", extra={"kv": m.describe()})
        return m

    def del_mirror(self, name: str) -> None:
        m = self.mirrors.pop(name, None)
        if m is None:
            raise LiveError(f"unknown mirror {name!r} (mirrors: {', '.join(self.mirrors) or 'none'})")
        g = self.dp.graph
        g.untap(m.element.tap_rx)
        g.untap(m.element.tap_tx)
        g.remove(m.element)
        if m.writer:
            m.writer.close()
        log.info("mirror_deleted", extra={"kv": {"mirror": name}})

    def _reselect_mirrors(self) -> None:
        """Mirror elements select by port number; names map to the numbers of the ports now."""
        for m in self.mirrors.values():
            el = m.element
            el.select_src = frozenset(self.ports[p].number for p in m.select_src if p in self.ports)
            el.select_dst = frozenset(self.ports[p].number for p in m.select_dst if p in self.ports)

    # -- views -----------------------------------------------------------------
    def show(self) -> dict[str, Any]:
        return live_views.show(self)

    def counters(self, port: str | None = None) -> dict[str, Any]:
        return live_views.counters(self, port)

    def perf_show(self) -> dict[str, Any]:
        return live_views.perf_show(self)

    def nic_show(self) -> dict[str, Any]:
        return live_views.nic_show(self)


def _pcap_sink(writer: PcapWriter) -> Callable[[Batch, int], None]:
    def send(batch: Batch, now_ns: int) -> None:
        for f in batch:
            writer.write(f.data, f.ts_ns)
        writer.flush()        # a mirror file is read while it grows (tcpdump -r, Wireshark)
    return send
