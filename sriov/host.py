"""The host side of vswitchd's ``[nic] mode = "sriov"``: the PF driver enabling VFs, guests on them.

`SriovHost` is the plug-in vswitchd's topology loads by name for SR-IOV mode (as it loads
`nicmodel.host` for the software and VMDq modes; the switch's package never imports this
one).  It owns a `nicmodel.nic.Nic` and its PF driver (`sriov.physical_function.SriovPf`)
and does what a hypervisor does with an SR-IOV NIC:

* at start, ``echo numvfs > sriov_numvfs`` (`SriovPf.set_numvfs`, with sysfs's errors):
  VF k is pool k, the PF's pool the one after the last VF and the default pool.  The PF
  pool belongs to the hypervisor's software switch (the topology wires the uplink's switch
  port to it, as VMDq mode's pool 0): unicast to the PF's MAC or to no VF's MAC only -- no
  broadcast (BAM off, as VMDq mode's pool 0), so the switch sees no VF traffic at all;
* `bind`: a guest port on VF n -- the port's admin settings programmed as ``ip link set PF
  vf n ...`` would (mac, vlan/qos, max/min_tx_rate, spoofchk, state, trust: the kernel's
  order), then the guest given the VF (`VirtualFunction.attach_guest`: its RAM in an IOMMU
  domain, its ixgbevf probed and opened with the port's MTU).  The graph wiring (guest
  port -> TSO segmenter -> the VF's DMA path -> the NIC's pool, and back) is the
  topology's;
* `program`: settings changed at run time; each change goes through the PF's ndo with its
  checks and errno, and a refusal undoes the changes made before it, so a refused request
  changes nothing.  A trust or link-state change makes the VF reset (ixgbe pings it
  without CTS): the guest's driver watchdog (`IxgbeVf.service`) resets and reopens it at
  once.  A new admin MAC reloads the guest's driver (ixgbe: "reload the VF driver to make
  this change effective"), so the VF's filter, anti-spoof and the guest agree;
* the guest's MAC: with an admin MAC it is the VF's (the daemon gives a tap port's
  interface that address: `guest_mac`); without one, the first unicast source MAC the
  guest sends is set through the mailbox (SET_MAC_ADDR, as the guest's kernel setting its
  address through ixgbevf), once: frames from any other source are spoofing and MAC
  anti-spoof drops them;
* the guest's multicast: `guest_rx_mode` is what the guest's kernel hands its driver's
  ndo_set_rx_mode (the netdev's multicast list, IFF_ALLMULTI, IFF_PROMISC); the guest's
  ixgbevf programs it through the mailbox (UPDATE_XCAST_MODE, SET_MULTICAST), so the NIC's
  MTA carries the guest's groups.  The daemon reads a tap guest's list in its namespace
  (docs/sriov.md, "Guests on VFs");
* views: `show` (``nic show``), `vf_show` (``vf show``), `mailbox` (``vf mailbox N``).

Ports are named by the topology; ``settings`` are the port's ``mac`` and ``vf_*`` keys
(`VF_KEYS`: the ``ip link set PF vf N`` words).
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nicmodel.host import LIVE_MAX_FRAME, PROFILES
from nicmodel.nic import Nic
from nicmodel.profiles import get_profile
from nicmodel.tables import NicError
from sriov.capability import iov_profile
from sriov.errors import SriovError
from sriov.physical_function import SriovPf
from sriov.render import parse_vf_words
from sriov.vf_driver import VfRequestRefused
from vswitch.core.element import Batch
from vswitch.core.frame import mac_str

__all__ = ["SriovHost", "VfBinding", "VF_KEYS", "DEFAULTS", "PROFILES", "build", "max_vfs", "check_ports"]

# The port's setting for each ip link word; what a VF has before any admin setting.
VF_KEYS = {"mac": "mac", "vlan": "vf_vlan", "qos": "vf_qos", "spoofchk": "vf_spoofchk", "trust": "vf_trust",
           "max_tx_rate": "vf_max_tx_rate", "min_tx_rate": "vf_min_tx_rate", "state": "vf_state"}
DEFAULTS: dict[str, Any] = {"mac": None, "vf_vlan": 0, "vf_qos": 0, "vf_spoofchk": True, "vf_trust": False,
                            "vf_max_tx_rate": 0, "vf_min_tx_rate": 0, "vf_state": "auto", "vf_cpus": 1}
GUEST_RAM = 16 * 1024 * 1024     # host memory mapped for each guest's rings (the model keeps no frame bytes)
ZERO = "00:00:00:00:00:00"


@dataclass
class VfBinding:
    port: str
    vf: int
    pool: int
    settings: dict[str, Any]
    mtu: int = 1500
    learned: bool = False          # the guest's MAC was set from its first frame (no admin MAC)
    rx_mode: tuple[frozenset[bytes], bool, bool] | None = None   # the guest's groups, allmulti, promisc


def max_vfs(profile: str) -> int:
    """``sriov_totalvfs`` of a profile (the driver's limit: 63 on ixgbe, 7 on igb)."""
    return iov_profile(get_profile(profile)).driver_max_vfs


class SriovHost:
    """A `Nic` with its PF driver and ``numvfs`` VFs; guest ports bound to VFs."""

    mode = "sriov"
    vmdq = False

    def __init__(self, name: str, *, profile: str = "82599", numvfs: int = 1, rx_ring: int = 512,
                 tx_ring: int = 512, rx_usecs: int = 0, rx_frames: int = 0, **_: Any) -> None:
        self.nic = nic = Nic(name, profile)
        nic.set_rings(rx=rx_ring, tx=tx_ring)
        nic.set_coalesce(rx_usecs=rx_usecs, rx_frames=rx_frames)
        self.pf = pf = SriovPf(nic)
        pf.set_numvfs(numvfs)
        # The PF pool is the hypervisor's switch: no broadcast (it reaches the VFs by BAM).
        nic.set_pool_flags(pf.pf_pool, aupe=True, bam=False, rompe=False, mpe=False)
        nic.set_max_frame(pf.pf_pool, LIVE_MAX_FRAME)
        nic.on_pool_tx = self.on_pool_tx
        self.bindings: dict[str, VfBinding] = {}
        self.by_pool: dict[int, VfBinding] = {}
        self.programmed: list[VfBinding] = []

    @property
    def default_pool(self) -> int:
        return self.pf.pf_pool

    def attach(self, graph: Any) -> None:
        """The NIC into ``graph``, and each VF's DMA path between its pool and its guest port."""
        graph.add(self.nic)
        self.pf.attach(graph)

    # -- guests ------------------------------------------------------------------
    def bind(self, port: str, vf: int, settings: dict[str, Any], mtu: int = 1500) -> VfBinding:
        """Give VF ``vf`` to the guest of ``port`` with its admin settings; nothing changes if refused."""
        pf = self.pf
        if not 0 <= vf < pf.num_vfs:
            raise SriovError(f"vf {vf}: the PF has {pf.num_vfs} VFs (0-{pf.num_vfs - 1}; [nic] numvfs)")
        other = next((b for b in self.bindings.values() if b.vf == vf), None)
        if other is not None:
            raise SriovError(f"vf {vf}: already the VF of port {other.port!r}", errno.EBUSY)
        want = {**DEFAULTS, **settings}
        self._apply(vf, want, dict(DEFAULTS))
        v = pf.vf(vf)
        try:
            v.attach_guest(port, ram_bytes=GUEST_RAM, cpus=want["vf_cpus"], mtu=mtu)
        except (NicError, VfRequestRefused) as e:
            v.detach_guest()
            self._apply(vf, dict(DEFAULTS), want)
            raise SriovError(f"vf {vf}: the guest's driver failed: {e.message}", e.errno) from None
        b = VfBinding(port, vf, v.pool, want, mtu)
        self.bindings[port] = b
        self.by_pool[v.pool] = b
        return b

    def unbind(self, port: str) -> VfBinding | None:
        """The guest port is gone: the guest leaves its VF (domain destroyed, VF reset) and the
        VF's admin settings go back to a new VF's."""
        b = self.bindings.pop(port, None)
        if b is None:
            return None
        del self.by_pool[b.pool]
        self.pf.vf(b.vf).detach_guest()
        with contextlib.suppress(SriovError):     # going back to the defaults needs no table entry
            self._apply(b.vf, dict(DEFAULTS), b.settings)
        return b

    def program(self, port: str, settings: dict[str, Any], mtu: int | None = None) -> VfBinding:
        """A bound guest's admin settings changed at run time (``ip link set PF vf N ...``);
        a refusal leaves the VF as it was."""
        b = self.bindings[port]
        want = {**DEFAULTS, **settings}
        old, old_mtu = b.settings, b.mtu
        self._apply(b.vf, want, old)
        b.settings = want
        guest = self.pf.vf(b.vf).guest
        if guest is None:
            return b
        drv = guest.driver
        if mtu is not None and mtu != b.mtu:
            b.mtu = mtu
            drv._open_args["mtu"] = mtu
            drv.reset_requested = True            # the guest's new MTU: its driver sends SET_LPE again
        if want["mac"] != old["mac"]:
            drv.reset_requested = True            # the guest reloads its driver for the new MAC
        try:
            drv.service()                         # its watchdog: resets after trust/state/MAC changes
        except VfRequestRefused as e:             # the PF refused the guest (SET_LPE): all back
            b.settings, b.mtu = old, old_mtu
            drv._open_args["mtu"] = old_mtu
            self._apply(b.vf, old, want)
            drv.reset_requested = True
            drv.service()
            raise SriovError(f"vf {b.vf}: the guest's driver failed: {e.message}", e.errno) from None
        return b

    def _apply(self, n: int, want: dict[str, Any], old: dict[str, Any]) -> None:
        """The PF's ndos in the kernel's order for what differs; undo on a refusal."""
        pf = self.pf
        steps: list[tuple[str, Any]] = []

        def mac(s: dict[str, Any]) -> None:
            pf.set_vf_mac(n, s["mac"] or ZERO)

        def vlan(s: dict[str, Any]) -> None:
            pf.set_vf_vlan(n, s["vf_vlan"], s["vf_qos"])

        def rate(s: dict[str, Any]) -> None:
            pf.set_vf_rate(n, s["vf_max_tx_rate"], s["vf_min_tx_rate"])

        def spoof(s: dict[str, Any]) -> None:
            pf.set_vf_spoofchk(n, s["vf_spoofchk"])

        def state(s: dict[str, Any]) -> None:
            pf.set_vf_link_state(n, s["vf_state"])

        def trust(s: dict[str, Any]) -> None:
            pf.set_vf_trust(n, s["vf_trust"])

        plan = [(("mac",), mac), (("vf_vlan", "vf_qos"), vlan), (("vf_max_tx_rate", "vf_min_tx_rate"), rate),
                (("vf_spoofchk",), spoof), (("vf_state",), state), (("vf_trust",), trust)]
        try:
            for keys, fn in plan:
                if any(want[k] != old[k] for k in keys):
                    fn(want)
                    steps.append((keys[0], fn))
        except SriovError:
            for _, fn in reversed(steps):
                with contextlib.suppress(SriovError):
                    fn(old)
            raise

    def guest_mac(self, port: str) -> str | None:
        """The address the guest's interface should carry: its VF's admin MAC (None: its own)."""
        b = self.bindings.get(port)
        return b.settings["mac"] if b is not None else None

    def on_pool_tx(self, pool: int, frames: Batch) -> None:
        """A guest without an admin MAC: its first unicast source MAC becomes its VF's MAC
        (SET_MAC_ADDR through the mailbox), once."""
        b = self.by_pool.get(pool)
        if b is None or b.learned or b.settings["mac"] is not None or not frames:
            return
        src = frames[0].data[6:12]
        if len(src) != 6 or src[0] & 1 or src == bytes(6):
            return
        b.learned = True
        guest = self.pf.vf(b.vf).guest
        if guest is None:
            return
        try:
            guest.driver.set_mac(src)
            guest.driver._open_args["mac"] = src        # the guest's address outlives a VF reset
            self.programmed.append(b)
        except VfRequestRefused:
            pass

    def guest_rx_mode(self, port: str, groups: Sequence[bytes], *, allmulti: bool = False,
                      promisc: bool = False) -> bool:
        """The guest's netdev has multicast list ``groups`` (in its kernel's order) and these
        flags: its driver programs them through the mailbox (ixgbevf_set_rx_mode) if they
        changed.  True if the driver was called.  Also after a VF reset the driver's reopen
        programs the last list again."""
        b = self.bindings.get(port)
        if b is None:
            return False
        key = (frozenset(groups), allmulti, promisc)
        guest = self.pf.vf(b.vf).guest
        if key == b.rx_mode or guest is None or not guest.driver.up:
            return False
        try:
            guest.driver.set_rx_mode(list(groups), allmulti=allmulti, promisc=promisc)
        except SriovError:              # the PF refused the list (a VF not clear to send): next time
            return False
        b.rx_mode = key
        return True

    # -- ip link words -------------------------------------------------------------
    def vf_words(self, n: int, words: list[str]) -> tuple[str, dict[str, Any]]:
        """``ip link set PF vf n WORDS``: the port bound to VF n and the port settings the words
        change (iproute2's messages for bad words; EINVAL for a VF that is not there)."""
        opts = parse_vf_words(list(words))
        pf = self.pf
        if not 0 <= n < pf.num_vfs:
            raise SriovError(f"vf {n}: the PF has {pf.num_vfs} VFs (0-{pf.num_vfs - 1})")
        if opts.get("proto", "802.1Q") != "802.1Q":
            raise SriovError(f"vf {n}: vlan protocol {opts['proto']}: {pf.driver} supports 802.1Q only",
                             errno.EPROTONOSUPPORT)
        if "query_rss" in opts:
            raise SriovError(f"vf {n}: query_rss is not a vswitchd port setting (the VF's guest is emulated)")
        # The PF's own checks first, so a value the port's declaration also refuses gets the
        # driver's words (as `ip link` would print them).
        if "mac" in opts and opts["mac"][0] & 1:
            raise SriovError(f"vf {n}: {mac_str(opts['mac'])} is a multicast address")
        if not 0 <= opts.get("vlan", 0) <= 4095 or not 0 <= opts.get("qos", 0) <= 7:
            raise SriovError(f"vf {n}: vlan {opts.get('vlan', 0)} qos {opts.get('qos', 0)}: vlan must be 0-4095 "
                             "and qos 0-7")
        b = next((b for b in self.bindings.values() if b.vf == n), None)
        if b is None:
            raise SriovError(f"vf {n}: no guest port is on it (a port with vf = {n} holds its settings)")
        changes: dict[str, Any] = {}
        for word, value in opts.items():
            if word == "proto":
                continue
            if word == "mac":
                value = None if value == bytes(6) else mac_str(value)
            changes[VF_KEYS[word]] = value
        if "vlan" in opts and "qos" not in opts:
            changes["vf_qos"] = 0                    # `vlan V` alone is qos 0, as ip link
        return b.port, changes

    # -- views -------------------------------------------------------------------
    def show(self) -> dict[str, Any]:
        nic = self.nic
        s = nic.show()
        s["mode"] = self.mode
        s["profile"] = nic.profile.name
        s["pf_pool"] = self.pf.pf_pool
        s["bindings"] = [{"port": b.port, "vf": b.vf, "pool": b.pool, "vlan": b.settings["vf_vlan"] or None,
                          "mac": mac_str(self.pf.vf(b.vf).info.mac) if self.pf.vf(b.vf).info.mac != bytes(6)
                          else None, "queues": list(nic.state.pool_queues(b.pool))}
                         for b in sorted(self.bindings.values(), key=lambda b: b.vf)]
        return s

    def vf_show(self) -> dict[str, Any]:
        s = self.pf.show()
        ports = {b.vf: b.port for b in self.bindings.values()}
        for v in s["vfs"]:
            v["port"] = ports.get(v["vf"])
        s["ssvpc"] = self.nic.counters["ssvpc"]
        s["ip_link"] = self.pf.ip_link_show(self.nic.name, stats=True)
        return s

    def mailbox(self, n: int) -> list[str]:
        return self.pf.mailbox_log(n)


def build(name: str, **settings: Any) -> SriovHost:
    """The plug-in entry the topology loads by name (``sriov.host:build``)."""
    return SriovHost(name, **settings)


def check_ports(name: str, nic: dict[str, Any], ports: list[tuple[str, str, int, dict[str, Any], int]]) -> None:
    """Program a scratch PF with every VF port's settings, as the daemon will: SriovError
    (with the port's label) for the first the PF refuses.  ``ports``: (label, name, vf,
    settings, mtu)."""
    host = SriovHost(name, **nic)
    for label, port, vf, settings, mtu in ports:
        try:
            host.bind(port, vf, settings, mtu)
        except SriovError as e:
            raise SriovError(f"{label}: {e.message}", e.errno) from None
