"""The host side of the emulated NIC: what the hypervisor's PF driver does with it.

`NicHost` owns a `Nic` and programs it for one of vswitchd's designs:

``mode = "software"``: VT off (one queue, queue 0).  Every frame from the wire
lands in pool 0's queue and goes to the hypervisor's software switch, which
classifies everything (the design VMDq was made to relieve).  The switch's
frames for the wire go out through pool 0's TX queue.

``mode = "vmdq"``: each guest port is bound to a pool (`bind`: the lowest
free one, 1, 2, ...).  Its MAC (configured, else the first unicast source
MAC it sends: `on_pool_tx`) is programmed into RAR and its access VLAN into
VLVF, with the tag stripped on its queues and inserted on its TX by VMVIR, so
frames from the wire reach the guest by the NIC's pool selection, not by the
software FDB.  Guests transmit through their pool's TX queue; VEB loopback
carries guest-to-guest traffic inside the NIC.  Pool 0 is the default pool
and belongs to the hypervisor: unicast to an unprogrammed MAC lands there and
takes the software switch, as a real host's default queue does.

The graph wiring (which graph port feeds which pool) is the topology's
(`vswitch.topology.build_dataplane`); this module only programs the model.
The SR-IOV PF driver (`sriov.physical_function.SriovPf`) programs the same `Nic`
the same way: a VF is a pool with a PCI function on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nicmodel.nic import Nic
from nicmodel.profiles import PROFILES
from nicmodel.tables import NicError
from vswitch.core.element import Batch
from vswitch.core.frame import mac_str, parse_mac
from vswitch.core.policies import build_scheduler

__all__ = ["NicHost", "Binding", "MODES", "LIVE_MAX_FRAME", "PROFILES", "build"]

MODES = ("software", "vmdq")
RESET_VMVIR = "use_desc"   # a pool's VMVIR mode after reset
# Live pools accept up to the RLPML maximum; the wire side is segmented to the MTU anyway.
LIVE_MAX_FRAME = 0x3FFF


@dataclass
class Binding:
    port: str
    pool: int
    vlan: int | None
    mac: bytes | None = None
    learned: bool = False          # the MAC came from the guest's traffic
    configured: bool = False       # the port's config names the MAC: the guest's traffic cannot move it


class NicHost:
    """A `Nic` programmed for vswitchd's software or VMDq design; guests bound to pools."""

    def __init__(self, name: str, *, profile: str = "82599", mode: str = "vmdq", rx_ring: int = 512,
                 tx_ring: int = 512, rx_usecs: int = 0, rx_frames: int = 0,
                 tx_qdisc: dict[str, Any] | None = None) -> None:
        if mode not in MODES:
            raise NicError(f"mode {mode!r}: use software or vmdq")
        self.mode = mode
        # {"kind": ..., params}: each guest's pool gets its own policy of this kind on its TX.
        self.tx_qdisc = dict(tx_qdisc) if tx_qdisc is not None else None
        self.nic = nic = Nic(name, profile)
        self.bindings: dict[str, Binding] = {}
        self.by_pool: dict[int, Binding] = {}
        self.programmed: list[Binding] = []      # MACs learned from traffic, for the log
        nic.set_rings(rx=rx_ring, tx=tx_ring)
        nic.set_coalesce(rx_usecs=rx_usecs, rx_frames=rx_frames)
        if mode == "software":
            nic.set_vt(False)
        else:
            nic.set_default_pool(0)
            # Pool 0 is the hypervisor's: unknown unicast only (broadcast reaches guests by BAM).
            nic.program_pool(0, None, None, aupe=True, bam=False, max_frame=LIVE_MAX_FRAME)
            nic.set_loopback(True)
            nic.on_pool_tx = self.on_pool_tx

    @property
    def vmdq(self) -> bool:
        return self.mode == "vmdq"

    def attach(self, graph: Any) -> None:
        """The NIC into ``graph`` (the topology wires its ports)."""
        graph.add(self.nic)

    @property
    def default_pool(self) -> int:
        """The hypervisor's pool (the topology wires the uplink's switch port to it)."""
        return 0

    # -- guests ------------------------------------------------------------------
    def bind(self, port: str, vlan: int | None, mac: str | None) -> Binding:
        """Give a guest port the lowest free pool (vmdq mode)."""
        nic = self.nic
        free = next((p for p in range(1, nic.state.num_pools) if p not in self.by_pool), None)
        if free is None:
            raise NicError(f"no free VMDq pool for port {port!r}: {nic.profile.name} has "
                           f"{nic.state.num_pools} pools (pool 0 is the hypervisor's)")
        b = Binding(port, free, vlan)
        nic.program_pool(free, None, vlan, max_frame=LIVE_MAX_FRAME)
        if self.tx_qdisc is not None:
            params = {k: v for k, v in self.tx_qdisc.items() if k != "kind"}
            nic.set_tx_qdisc(free, build_scheduler(self.tx_qdisc["kind"], **params))
        if vlan is not None:
            nic.set_vmvir(free, "always_default", vlan)
        if mac:
            self._program_mac(b, parse_mac(mac))
            b.configured = True
        self.bindings[port] = b
        self.by_pool[free] = b
        return b

    def unbind(self, port: str) -> Binding | None:
        b = self.bindings.pop(port, None)
        if b is not None:
            del self.by_pool[b.pool]
            self.nic.set_tx_qdisc(b.pool, None)
            self.nic.clear_pool(b.pool)
            self.nic.set_vmvir(b.pool, RESET_VMVIR)     # clear_pool keeps VLAN insertion
        return b

    def reprogram(self, port: str, vlan: int | None, mac: str | None) -> Binding:
        """A bound guest's VLAN or configured MAC changed: program its pool again (it keeps the
        pool; without a configured MAC, the one learned from its traffic stays)."""
        b = self.bindings[port]
        learned = b.mac if not b.configured else None
        nic = self.nic
        nic.clear_pool(b.pool)
        nic.set_vmvir(b.pool, RESET_VMVIR)
        nic.program_pool(b.pool, None, vlan, max_frame=LIVE_MAX_FRAME)
        if vlan is not None:
            nic.set_vmvir(b.pool, "always_default", vlan)
        b.vlan, b.mac, b.learned, b.configured = vlan, None, False, False
        if mac:
            self._program_mac(b, parse_mac(mac))
            b.configured = True
        elif learned is not None:
            self._program_mac(b, learned)
            b.learned = True
        return b

    def _program_mac(self, b: Binding, mac: bytes) -> bool:
        """Program (or re-program) the guest's MAC into RAR; False if unchanged or not unicast."""
        if b.mac == mac or mac[0] & 1 or mac == bytes(6):
            return False
        self.nic.set_pool_mac(b.pool, mac)
        b.mac = mac
        return True

    def on_pool_tx(self, pool: int, frames: Batch) -> None:
        """A guest's frames reach its pool: a guest without a configured MAC gets the source
        MAC it sends programmed (as a hypervisor that knows its VM's MAC would have).  A
        configured MAC stays: the guest cannot move its pool to another address."""
        b = self.by_pool.get(pool)
        if b is None or b.configured or not frames:
            return
        src = frames[-1].data[6:12]
        if b.mac != src and len(src) == 6 and self._program_mac(b, src):
            b.learned = True
            self.programmed.append(b)

    # -- views -------------------------------------------------------------------
    def show(self) -> dict[str, Any]:
        nic = self.nic
        s = nic.show()
        s["mode"] = self.mode
        s["profile"] = nic.profile.name
        s["bindings"] = [{"port": b.port, "pool": b.pool, "vlan": b.vlan,
                          "mac": mac_str(b.mac) if b.mac else None,
                          "queues": list(nic.state.pool_queues(b.pool))}
                         for b in sorted(self.bindings.values(), key=lambda b: b.pool)]
        return s


def build(name: str, **settings: Any) -> NicHost:
    """The plug-in entry the topology loads by name (``nicmodel.host:build``)."""
    return NicHost(name, **settings)
