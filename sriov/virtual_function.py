"""A virtual function: a NIC pool with a PCI function, a mailbox and an IOMMU domain on top.

`VirtualFunction` (``pf.vf(n)``; ``n`` counts from 0 as ``ip link set PF vf N`` and sysfs
``virtfnN`` do, ``n + 1`` is the spec's VF number):

``pool``        the NIC pool its frames use (VF n = pool n, as ixgbe assigns them; the
                PF's own pool is the one after the last VF)
``nic_queues``  its queues in the NIC (queue i of the VF = queue i of the pool)
``fn``          its PCI function (`sriov.capability.VfFunction`): routing ID, config
                space, BAR decode gated by VF MSE
``regs``        its BAR0 registers (`sriov.vf_regs.VfRegisters`); ``bar0()`` reaches
                them through the bus, as the VF's driver does
``mailbox``     its PF-VF mailbox (`sriov.mailbox.Mailbox`) and ``mailbox_log``, the
                last messages decoded
``dma``         its DMA path (`sriov.dma.VfDma`, an element of the graph)
``domain``      the IOMMU domain its routing ID is attached to (None: every DMA faults)
``info``        the PF driver's state for it (`VfInfo`: what ``ip link`` sets and the
                mailbox negotiated)
``admin``       ``ip link set PF vf N ...`` for this VF (`VfAdmin`)

``send(frames, now_ns)`` / ``receive(budget, now_ns)`` drive it without a graph;
``stats()`` is what ``ip -s link show PF`` prints for it, ``show()`` everything.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sriov.capability import VfFunction
from sriov.dma import GuestRam, VfDma
from sriov.iommu import Domain
from sriov.mailbox import API_10, API_VERSIONS, XCAST_MODES, XCAST_NONE, Mailbox, MailboxEntry
from sriov.vf_regs import VfRegisters
from vswitch.core.element import Batch
from vswitch.core.frame import mac_str

if TYPE_CHECKING:
    from nicmodel.nic import Nic
    from sriov.physical_function import SriovPf
    from sriov.vf_driver import IxgbeVf

__all__ = ["VirtualFunction", "VfInfo", "VfAdmin", "VfBar", "Guest", "LINK_STATES"]

LINK_STATES = ("auto", "enable", "disable")
ZERO_MAC = bytes(6)


@dataclass
class VfInfo:
    """ixgbe's vf_data_storage: the admin settings and what the VF negotiated."""

    mac: bytes = ZERO_MAC           # vf_mac_addresses
    pf_set_mac: bool = False        # the admin set it (ip link set ... mac)
    pf_vlan: int = 0                # port VLAN (ip link set ... vlan V qos Q)
    pf_qos: int = 0
    vlan_proto: str = "802.1Q"
    spoofchk: bool = True           # ixgbe's default
    trusted: bool = False
    link_state: str = "auto"
    link_enable: bool = True
    rss_query: bool = False
    clear_to_send: bool = False     # set by a mailbox RESET; until then every request is NACKed
    api: int = API_10
    xcast_mode: int = XCAST_NONE
    mc_hashes: list[int] = field(default_factory=list)
    vlans: set[int] = field(default_factory=set)      # VLANs the VF joined itself (SET_VLAN)
    max_frame: int = 0                                # from SET_LPE (0: never sent)
    hw_spoof_off: bool = False      # anti-spoof turned off in hardware by a MACVLAN filter (ixgbe)


class VfBar:
    """One BAR of a VF as its driver reaches it: offsets into the BAR, through the bus."""

    def __init__(self, fn: VfFunction, bar: int = 0) -> None:
        self.fn = fn
        self.bar = bar

    def read32(self, off: int) -> int:
        return self.fn.mmio_read(self.fn.bar_address(self.bar) + off)

    def write32(self, off: int, value: int) -> None:
        self.fn.mmio_write(self.fn.bar_address(self.bar) + off, value)


class VirtualFunction:
    def __init__(self, pf: SriovPf, fn: VfFunction) -> None:
        self.pf = pf
        self.fn = fn
        self.index = fn.index
        self.pool = fn.index
        nic = pf.nic
        st = nic.state
        self.nic_queues = st.pool_queues(self.pool)
        self.num_queues = len(self.nic_queues)
        self.info = VfInfo()
        self.vme = [False] * 8                        # the VF's own VLAN strip request per queue
        self.mailbox = Mailbox(self.index)
        self.mailbox_log: deque[MailboxEntry] = deque(maxlen=pf.mailbox_log_size)
        self.regs = VfRegisters(self)
        fn.regs = self.regs
        self.dma = VfDma(f"{nic.name}.vf{self.index}", self, pf.iommu, pf.memory)
        self.dma.qindex = {q: i for i, q in enumerate(self.nic_queues)}
        self.dma.txrings = [nic.txa.queues[q] for q in self.nic_queues]
        self.domain: Domain | None = None
        self.guest: Guest | None = None
        self.admin = VfAdmin(pf, self.index)
        self.vflr_pending = False
        self.resets = 0                               # VF resets (FLR or VFCTRL.RST) so far
        self._base = self._raw_counters()

    @property
    def nic(self) -> Nic:
        return self.pf.nic

    @property
    def rid(self) -> int:
        return self.fn.rid

    @property
    def bdf(self) -> str:
        return self.fn.bdf

    def bar0(self) -> VfBar:
        return VfBar(self.fn, 0)

    # -- the IOMMU -----------------------------------------------------------
    def attach_domain(self, domain: Domain | None) -> None:
        """The VF's context entry: its DMA is translated in ``domain`` (None: it faults)."""
        self.pf.iommu.attach(self.rid, domain, who=f"vf {self.index}")
        self.domain = domain

    def attach_guest(self, name: str, ram_bytes: int = 64 * 1024 * 1024, *, cpus: int = 1,
                     **open_args: Any) -> Guest:
        """Give the VF to a new guest: host memory for its RAM, a domain mapping all of it at
        guest-physical 0, the VF attached, and the guest's ixgbevf probed and opened
        (``cpus``: the guest's vCPUs, hence its queues, at most 2; ``open_args`` go to
        `IxgbeVf.open`: mac, mtu, multicast, xcast ...)."""
        from sriov.vf_driver import IxgbeVf
        pf = self.pf
        ps = pf.iommu.page_size
        size = -(-ram_bytes // ps) * ps
        hpa = pf.memory.allocate(size, name)
        domain = pf.iommu.domain(name)
        domain.map(0, hpa, size)
        self.attach_domain(domain)
        ram = GuestRam(name, domain, pf.memory, size)
        driver = IxgbeVf(self.bar0(), ram, wait=pf.service_mailbox if not pf.auto_service else None, cpus=cpus)
        self.fn.pci.write(0x04, 0x0004, 2)            # the guest's driver enables bus mastering
        driver.probe()
        driver.open(**open_args)
        self.guest = Guest(name, self, domain, ram, driver)
        return self.guest

    def detach_guest(self) -> None:
        """The guest is gone: its domain is destroyed (the VF's DMA faults from now on), the VF
        reset as a hypervisor's FLR on release would."""
        g = self.guest
        if g is None:
            return
        self.guest = None
        self.domain = None
        self.pf.iommu.remove_domain(g.domain)
        self.fn.pci.write(0x04, 0, 2)
        self.hardware_reset()

    # -- hardware reset ---------------------------------------------------------
    def hardware_reset(self) -> None:
        """VFLR or VFCTRL.RST: what the device does (QEMU igb_vf_reset): the VF's queues off
        and emptied, its VFRE/VFTE bits cleared, its PSRTYPE back to 0, VFLRE set for the PF (and its mailbox
        interrupt), the DMA engine back to the rings' start, RSTD for the VF."""
        pf = self.pf
        nic = self.nic
        self.resets += 1
        for q in self.nic_queues:
            nic.rings.queues[q].set_enabled(False)
            nic.txa.queues[q].enabled = False
        nic.flush_pool(self.pool)
        nic.set_pool_enabled(self.pool, rx=False, tx=False)
        nic.set_psrtype(self.pool, 0)                 # VFPSRTYPE's reset value: one RSS queue
        self.dma.reset()
        self.vme = [False] * 8
        self.mailbox.reset_done()
        self.vflr_pending = True
        pf._mailbox_irq()

    # -- the direct data path ------------------------------------------------------
    def tx_room(self, queue: int = -1) -> int:
        """Free descriptors of TX queue ``queue`` (a NIC queue number of the VF's; else queue 0),
        the room `VfDma.tx` checks."""
        dma = self.dma
        q = dma.txrings[dma.qindex.get(queue, 0)]
        return q.size - len(q.ring)

    def send(self, frames: Batch, now_ns: int) -> int:
        """The guest's frames onto the VF's TX queues through the IOMMU, each flow on one of
        the queues its driver enabled (`VfDma.tx_split`); returns how many the NIC took (the
        rest dropped by the DMA path)."""
        dma, n = self.dma, 0
        for ok in dma.tx_guest(frames):
            n += self.nic.tx(self.pool, ok, now_ns, dma.qindex[ok[0].queue])
        return n

    def receive(self, budget: int = 64, now_ns: int = 0) -> Batch:
        """Poll every queue of the VF (NAPI, ``budget`` each) and DMA what came to the guest."""
        out: Batch = []
        for q in self.nic_queues:
            got = self.nic.poll(q, budget, now_ns)
            if got:
                out.extend(self.dma.rx(got))
        return out

    # -- counters -------------------------------------------------------------------
    def _raw_counters(self) -> dict[str, int]:
        nic = self.nic
        rx = [nic.rings.queues[q] for q in self.nic_queues]
        tx = [nic.txa.queues[q] for q in self.nic_queues]
        return {"rx_packets": sum(q.rx_packets for q in rx), "rx_bytes": sum(q.rx_bytes for q in rx),
                "multicast": sum(q.rx_multicast for q in rx), "broadcast": sum(q.rx_broadcast for q in rx),
                "ring_dropped": sum(q.rx_dropped for q in rx),
                "tx_packets": sum(q.tx_packets for q in tx), "tx_bytes": sum(q.tx_bytes for q in tx),
                "tx_spoofed": nic._tx_spoofed[self.pool], "tx_spoofed_bytes": nic._tx_spoofed_bytes[self.pool]}

    def stats(self) -> dict[str, int]:
        """ifla_vf_stats as ``ip -s link show PF`` prints them, counted since the VF was created.

        rx_packets/rx_bytes/multicast/broadcast: what the NIC wrote to the VF's queues
        (VFGPRC, VFGORC, VFMPRC); rx_dropped: its queues' overflow (QPRDC) and RX DMA
        faults; tx_packets/tx_bytes: sent from its queues (VFGPTC/VFGOTC); tx_dropped: its
        anti-spoof drops, TX DMA faults and frames that found its TX ring full.  Frames its
        queues served but anti-spoof dropped are not transmitted: they count in tx_dropped,
        not tx_packets.  (ixgbe itself fills only the first five; the model has the rest.)"""
        now, base = self._raw_counters(), self._base
        d = {k: now[k] - base[k] for k in now}
        dc, dd = self.dma.counters, self.dma.drops
        return {"rx_packets": d["rx_packets"], "rx_bytes": d["rx_bytes"], "multicast": d["multicast"],
                "broadcast": d["broadcast"],
                "rx_dropped": d["ring_dropped"] + dc["rx_dma_faults"],
                "tx_packets": d["tx_packets"] - d["tx_spoofed"], "tx_bytes": d["tx_bytes"] - d["tx_spoofed_bytes"],
                "tx_dropped": d["tx_spoofed"] + dc["tx_dma_faults"] + dd["tx_ring_full"]}

    def vf_info(self) -> dict[str, Any]:
        """ifla_vf_info, as ixgbe_ndo_get_vf_config fills it."""
        i = self.info
        rate = self.nic.txa.queues[self.nic_queues[0]].rate_bps // 1_000_000
        return {"vf": self.index, "mac": mac_str(i.mac), "vlan": i.pf_vlan, "qos": i.pf_qos,
                "vlan_proto": i.vlan_proto, "max_tx_rate": rate, "min_tx_rate": 0, "spoofchk": i.spoofchk,
                "link_state": i.link_state, "trust": i.trusted, "query_rss": i.rss_query}

    def show(self) -> dict[str, Any]:
        i = self.info
        st = self.nic.state
        return self.vf_info() | {
            "bdf": self.bdf, "rid": self.rid, "pool": self.pool, "queues": list(self.nic_queues),
            "rss_queues": st.rss_queues(self.pool),       # of them, the ones RX frames go to (PSRTYPE.RQPL)
            "tx_queues": len(self.dma.txsel),             # and the TX queues its driver enabled
            "rx_enabled": bool((st.vfre >> self.pool) & 1), "tx_enabled": bool((st.vfte >> self.pool) & 1),
            "api": API_VERSIONS.get(i.api, str(i.api)), "clear_to_send": i.clear_to_send,
            "xcast_mode": XCAST_MODES[i.xcast_mode], "mc_hashes": list(i.mc_hashes),
            "vlans": sorted(i.vlans), "macvlans": [mac_str(m) for m in self.pf.macvlans_of(self.index)],
            "pf_set_mac": i.pf_set_mac, "max_frame": i.max_frame, "resets": self.resets,
            "domain": self.domain.name if self.domain else None,
            "guest": self.guest.name if self.guest else None,
            "stats": self.stats(), "dma": self.dma.snapshot(),
            "mailbox": [e.line() for e in self.mailbox_log],
        }


class VfAdmin:
    """``ip link set PF vf N ...`` for one VF: each call is the PF driver's ndo, with its checks."""

    def __init__(self, pf: SriovPf, index: int) -> None:
        self.pf = pf
        self.index = index

    def set_mac(self, mac: str | bytes) -> None:
        self.pf.set_vf_mac(self.index, mac)

    def set_vlan(self, vlan: int, qos: int = 0, proto: str = "802.1Q") -> None:
        self.pf.set_vf_vlan(self.index, vlan, qos, proto)

    def set_rate(self, max_tx_rate: int, min_tx_rate: int = 0) -> None:
        self.pf.set_vf_rate(self.index, max_tx_rate, min_tx_rate)

    def set_spoofchk(self, on: bool) -> None:
        self.pf.set_vf_spoofchk(self.index, on)

    def set_trust(self, on: bool) -> None:
        self.pf.set_vf_trust(self.index, on)

    def set_link_state(self, state: str) -> None:
        self.pf.set_vf_link_state(self.index, state)

    def set_query_rss(self, on: bool) -> None:
        self.pf.set_vf_query_rss(self.index, on)


@dataclass
class Guest:
    """A guest that owns a VF: its RAM (an IOMMU domain mapping it) and its ixgbevf."""

    name: str
    vf: VirtualFunction
    domain: Domain
    ram: GuestRam
    driver: IxgbeVf
