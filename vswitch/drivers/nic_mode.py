"""The emulated NIC between vswitchd's uplink port and its guests (``[nic]`` config).

``mode = "software"``: the NIC runs with VT off (one queue, queue 0); every
frame from the wire is polled from that queue and pushed into the software
switch, which classifies everything (the design VMDq was made to relieve).
Frames the switch sends to the uplink go out through the NIC's TX path.

``mode = "vmdq"``: each guest port is bound to a pool (ports in config order
get pools 1, 2, ...).  The guest's MAC (the port's ``mac``, else the first
unicast source MAC it sends) is programmed into RAR and its access VLAN
into VLVF (VLAN stripped on its queues, inserted on its TX by VMVIR), so
frames from the wire reach the guest by the NIC's pool selection, not by
the software FDB: the hypervisor's per-frame work is one write.  Guests
transmit through their pool's TX queue; VEB loopback carries guest-to-guest
traffic inside the NIC.  Pool 0 is the default pool and belongs to the
hypervisor: unicast to an unprogrammed MAC lands there and takes the
software switch (as a real host's default queue does).

The wire carries MTU-sized frames: GSO super-frames read from the uplink
are segmented (checksums completed) before the NIC model sees them.

Time spent inside the NIC model (sorting, rings, arbitration) is measured
apart from the hypervisor's own work, so ``perf-show`` can say which is the
bottleneck.  This module does no I/O: the live driver calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nicmodel import Nic, NicError
from vswitch.core.frame import Frame, mac_str, parse_mac
from vswitch.elements.gso import GsoError, to_plain
from vswitch.topology import NIC_MODES, NicConfig

RESET_VMVIR = "use_desc"   # a pool's VMVIR mode after reset
# Live pools accept up to the RLPML maximum; the wire side is segmented to the MTU anyway.
LIVE_MAX_FRAME = 0x3FFF


@dataclass
class NicPerf:
    nic_ns: int = 0          # inside the NIC model (hardware, in a real host)
    host_ns: int = 0         # the hypervisor's work for frames the NIC delivered
    rx_frames: int = 0       # frames from the wire into the NIC
    tx_frames: int = 0       # frames guests handed to the NIC
    polls: int = 0
    segmented: int = 0       # GSO super-frames cut to MTU frames before the wire


@dataclass
class Binding:
    port: str
    pool: int
    vlan: int | None
    mac: bytes | None = None


@dataclass
class NicMode:
    """Glue between the live driver and a `nicmodel.Nic`."""

    cfg: NicConfig
    timer: Callable[[], int]
    nic: Nic = field(init=False)
    bindings: dict[str, Binding] = field(default_factory=dict)
    by_pool: dict[int, Binding] = field(default_factory=dict)
    perf: NicPerf = field(default_factory=NicPerf)

    def __post_init__(self) -> None:
        self.hypervisor = Binding("(hypervisor)", 0, None)   # pool 0 sends for the software switch
        if self.cfg.mode not in NIC_MODES:
            raise ValueError(f"[nic] mode {self.cfg.mode!r}: use software or vmdq")
        self.nic = Nic(f"nic.{self.cfg.uplink or 'uplink'}", self.cfg.profile)
        nic = self.nic
        nic.set_rings(rx=self.cfg.rx_ring, tx=self.cfg.tx_ring)
        nic.set_coalesce(rx_usecs=self.cfg.rx_usecs, rx_frames=self.cfg.rx_frames)
        if self.cfg.mode == "software":
            nic.set_vt(False)
        else:
            nic.set_default_pool(0)
            # Pool 0 is the hypervisor's: unknown unicast only (broadcast reaches guests by BAM).
            nic.program_pool(0, None, None, aupe=True, bam=False, max_frame=LIVE_MAX_FRAME)
            nic.set_loopback(True)

    @property
    def vmdq(self) -> bool:
        return self.cfg.mode == "vmdq"

    # -- guests ------------------------------------------------------------------
    def bind(self, port: str, vlan: int | None, mac: str | None) -> Binding:
        """Give a guest port the lowest free pool (vmdq mode)."""
        free = next((p for p in range(1, self.nic.state.num_pools) if p not in self.by_pool), None)
        if free is None:
            raise NicError(f"no free VMDq pool for port {port!r}: {self.nic.profile.name} has "
                           f"{self.nic.state.num_pools} pools (pool 0 is the hypervisor's)")
        b = Binding(port, free, vlan)
        self.bindings[port] = b
        self.by_pool[free] = b
        self.nic.program_pool(free, None, vlan, max_frame=LIVE_MAX_FRAME)
        if vlan is not None:
            self.nic.set_vmvir(free, "always_default", vlan)
        if mac:
            self.program_mac(b, parse_mac(mac))
        return b

    def unbind(self, port: str) -> None:
        b = self.bindings.pop(port, None)
        if b is not None:
            del self.by_pool[b.pool]
            self.nic.clear_pool(b.pool)
            self.nic.set_vmvir(b.pool, RESET_VMVIR)     # clear_pool keeps VLAN insertion

    def program_mac(self, b: Binding, mac: bytes) -> bool:
        """Program (or re-program) the guest's MAC into RAR; False if unchanged."""
        if b.mac == mac or mac[0] & 1 or mac == bytes(6):
            return False
        self.nic.set_pool_mac(b.pool, mac)
        b.mac = mac
        return True

    # -- data path -----------------------------------------------------------------
    def wire_rx(self, frames: list[Frame], now_ns: int, mtu: int) -> list[int]:
        """Frames read from the uplink into the NIC; returns queues that raised an interrupt."""
        plain: list[Frame] = []
        for f in frames:
            if f.vnet is None:
                plain.append(f)
                continue
            try:
                pieces = to_plain(f.vnet, f.data, mtu)
            except GsoError:
                continue
            if len(pieces) > 1:
                self.perf.segmented += 1
            plain.extend(Frame(p, f.ts_ns) for p in pieces)
        t0 = self.timer()
        raised = self.nic.rx(plain, now_ns) + self.nic.tick(now_ns)
        self.perf.nic_ns += self.timer() - t0
        self.perf.rx_frames += len(plain)
        return raised

    def poll(self, queues: list[int], now_ns: int) -> list[Frame]:
        """NAPI: drain the queues that raised an interrupt (budget 64 per poll)."""
        t0 = self.timer()
        out: list[Frame] = []
        pending = list(dict.fromkeys(queues))
        while pending:
            q = pending.pop()
            got = self.nic.poll(q, 64, now_ns)
            self.perf.polls += 1
            out.extend(got)
            more = self.nic.take_interrupts()
            if len(got) == 64:
                more.append(q)
            pending.extend(x for x in dict.fromkeys(more) if x not in pending)
        self.perf.nic_ns += self.timer() - t0
        return out

    def guest_tx(self, b: Binding, frames: list[Frame], now_ns: int) -> tuple[list[Frame], list[int]]:
        """A guest's frames through its pool's TX queue: (frames for the wire, queues raised by VEB)."""
        t0 = self.timer()
        self.nic.tx(b.pool, frames, now_ns)
        wire = self.nic.tx_service(now_ns)
        raised = self.nic.take_interrupts()
        self.perf.nic_ns += self.timer() - t0
        self.perf.tx_frames += len(frames)
        return wire, raised

    def show(self) -> dict[str, Any]:
        s = self.nic.show()
        s["mode"] = self.cfg.mode
        s["profile"] = self.nic.profile.name
        s["uplink"] = self.cfg.uplink
        s["bindings"] = [{"port": b.port, "pool": b.pool, "vlan": b.vlan,
                          "mac": mac_str(b.mac) if b.mac else None,
                          "queues": list(self.nic.state.pool_queues(b.pool))}
                         for b in sorted(self.bindings.values(), key=lambda b: b.pool)]
        return s

    def perf_view(self) -> dict[str, Any]:
        p = self.perf
        n = max(1, p.rx_frames + p.tx_frames)
        return {"mode": self.cfg.mode, "rx_frames": p.rx_frames, "tx_frames": p.tx_frames, "polls": p.polls,
                "segmented_superframes": p.segmented,
                "nic_model_ns_per_frame": p.nic_ns / n, "hypervisor_ns_per_frame": p.host_ns / n}
