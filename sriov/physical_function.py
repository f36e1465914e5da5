"""SriovPf: the PF driver (ixgbe's SR-IOV part) on the NIC model, and the API for vswitchd.

`SriovPf(nic)` is what ``ixgbe`` does with a PF that has SR-IOV, on a `nicmodel.nic.Nic`:

* at probe: the SR-IOV capability in the PF's config space (`sriov.capability`), Linux's
  ``sriov_init`` (`sriov.sysfs.PciIov`: VF BARs sized and assigned) and the driver's VF
  limit (``pci_sriov_set_totalvfs``: 63 on ixgbe, 7 on igb); the sysfs files (``sysfs``);
  the PF's mailbox registers added to BAR0 (PFMAILBOX, PFMBMEM, MBVFICR, VFLRE, VFLREC);
* ``sriov_configure(n)`` (what a write to ``sriov_numvfs`` reaches): n VFs, each a
  `sriov.virtual_function.VirtualFunction` -- VF k is pool k, the PF keeps the pool after
  the last VF (ixgbe's VMDQ_P(0) = num_vfs) and it is the default pool; the 82599/X550
  switch to 32 pools x 4 queues (MRQC 0xA) up to 31 VFs and to 64 x 2 (0xB) above, the
  82576/i350 keep 8 pools; VF pools are RX/TX disabled until their driver's RESET; VEB
  loopback is on (PFDTXGSWC.LBEN, as __ixgbe_enable_sriov); ``sriov_configure(0)`` tears
  them down and gives the NIC its layout and default pool back;
* the mailbox (``service_mailbox``, ixgbe_msg_task): VF resets, requests and acks, with
  ixgbe's policy (below), each VF's last messages decoded in ``vf.mailbox_log``;
* the ``ip link set PF vf N ...`` ndos: ``set_vf_mac``, ``set_vf_vlan``, ``set_vf_rate``,
  ``set_vf_spoofchk``, ``set_vf_trust``, ``set_vf_link_state``, ``set_vf_query_rss``, and
  ``ip_link_set(n, words)`` parsing iproute2's words; every setting is enforced by the
  NIC's pools (filters, VMVIR, anti-spoof, rate limiters, VFRE/VFTE);
* the IOMMU (`sriov.iommu.Iommu`, ``iommu``) every VF's DMA crosses (`sriov.dma.VfDma`).

Mailbox policy (ixgbe_rcv_msg_from_vf and its handlers):

* a message already ACKed/NACKed is ignored; RESET always runs (``_reset_msg``);
  anything else before a RESET (clear_to_send off) gets NACK without CTS;
* SET_MAC_ADDR: a multicast/zero MAC is NACKed; an untrusted VF whose MAC the admin set
  cannot change it (NACK); the RAR table full: NACK;
* SET_MULTICAST: at most 30 hashes kept (IXGBE_MAX_VF_MC_ENTRIES), set in the shared MTA
  (never cleared until a reset rebuilds it, as ixgbe), ROMPE on;
* SET_VLAN: NACKed while the admin set a port VLAN; a full VLVF: NACK;
* SET_LPE: 68..9728 bytes; on the 82599 a legacy (API 1.0) VF, or a PF/VF jumbo mix, is
  refused and its RX disabled (ixgbe_set_vf_lpe); the pool's max frame (RLPML) follows;
* SET_MACVLAN: an untrusted VF with an admin MAC is denied; the VF MAC filters come from
  a pool of RAR - (15 + 1 + num_vfs) entries shared by all VFs (ENOSPC when empty); a VF
  that sets one has its anti-spoof turned off in hardware (ixgbe does so "to avoid false
  positives"); index 0 or 1 first clears the VF's own;
* API_NEGOTIATE: 1.0, 1.1, 1.2, 1.3, 1.4 accepted; GET_QUEUES needs 1.1+; GET_RETA /
  GET_RSS_KEY need 1.2+ and ``query_rss``; UPDATE_XCAST_MODE needs 1.2+ (PROMISC 1.3+),
  an untrusted VF is capped at MULTI (ACKed with the mode it got), PROMISC needs per-pool
  UPE (X550: else EOPNOTSUPP) and the PF in promiscuous mode (else EPERM);
* the reply is the request with ACK or NACK, and CTS.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Sequence
from typing import Any

from nicmodel.nic import Nic, as_mac
from nicmodel.tables import NicError, TableFull, hash12
from sriov.capability import SriovCapability, VfFunction, iov_profile, rid_str
from sriov.errors import SriovError
from sriov.iommu import HostMemory, Iommu
from sriov.mailbox import (
    API_10,
    API_11,
    API_12,
    API_13,
    API_14,
    API_20,
    MAX_MC_HASHES,
    MBX_SIZE,
    MSG_ACK,
    MSG_CTS,
    MSG_NACK,
    MSGINFO_SHIFT,
    PF_ACK,
    PF_CONTROL_MSG,
    PF_PFU,
    PF_STS,
    VF_API_NEGOTIATE,
    VF_GET_LINK_STATE,
    VF_GET_QUEUES,
    VF_GET_RETA,
    VF_GET_RSS_KEY,
    VF_RESET,
    VF_SET_LPE,
    VF_SET_MAC_ADDR,
    VF_SET_MACVLAN,
    VF_SET_MULTICAST,
    VF_SET_VLAN,
    VF_UPDATE_XCAST_MODE,
    XCAST_ALLMULTI,
    XCAST_MULTI,
    XCAST_NONE,
    XCAST_PROMISC,
    MailboxEntry,
    decode,
    mac_to_words,
    words_to_mac,
)
from sriov.sysfs import PciIov, Sysfs
from sriov.virtual_function import LINK_STATES, ZERO_MAC, VirtualFunction
from vswitch.core.frame import mac_str

__all__ = ["SriovPf", "MAX_PF_MACVLANS", "RSS_KEY"]

MAX_PF_MACVLANS = {"ixgbe": 15, "igb": 3}   # IXGBE_MAX_PF_MACVLANS; igb's IGB_PF_MAC_FILTERS_RESERVED
VF_MAX_FRAME = 9728                          # IXGBE_MAX_JUMBO_FRAME_SIZE
ETH_MIN_MTU, ETH_FRAME_LEN = 68, 1514
# The model's RSS key as GET_RSS_KEY returns it (the well-known Toeplitz key; the model's RSS
# does not use it, see nicmodel.sorter.rss_index).
RSS_KEY = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")
_VALID_APIS = (API_10, API_11, API_12, API_13, API_14)
Handler = Callable[[int, list[int]], tuple[int, str]]


def _valid_unicast(mac: bytes) -> bool:
    """is_valid_ether_addr: not multicast (broadcast included), not all zeros."""
    return not mac[0] & 1 and mac != ZERO_MAC


class SriovPf:
    """The PF's SR-IOV driver on ``nic``; see the module docstring.

    ``rid``: the PF's routing ID (bus 3, device 0, function 0 by default); ``ari``: the
    hierarchy supports ARI (Linux then sets ARI Capable Hierarchy: First VF Offset 128);
    ``bus_end``: the last bus the PF's bridge routes (default: one bus beyond the PF's);
    ``mac``: the PF's own MAC (programmed in its pool); ``auto_service``: the PF's mailbox
    interrupt is serviced at once (else ``service_mailbox()`` runs it, as a deferred task);
    ``offloaded_macvlans``: pools the PF gave to macvlan offload (fewer VFs: ixgbe's rule).
    """

    def __init__(self, nic: Nic, *, rid: int = 0x0300, ari: bool = True, bus_end: int | None = None,
                 iommu: Iommu | None = None, memory: HostMemory | None = None, mac: str | bytes | None = None,
                 auto_service: bool = True, mailbox_log: int = 64, vf_mmio_base: int = 0x38_0000_0000,
                 offloaded_macvlans: int = 0) -> None:
        self.nic = nic
        self.profile = p = nic.profile
        self.iovp = iov_profile(p)
        self.driver = p.driver
        self.cap = SriovCapability(nic.pci, p, rid)
        self.cap.on_enable = self._vfs_created
        self.cap.on_disable = self._vfs_destroyed
        self.iov = PciIov(self.cap, ari=ari, bus_end=bus_end, mmio_base=vf_mmio_base)
        self.iov.init()
        self.iov.driver_max_vfs = self.iovp.driver_max_vfs      # pci_sriov_set_totalvfs
        self.sysfs = Sysfs(self.iov, self)
        self.iommu = iommu if iommu is not None else Iommu()
        self.memory = memory if memory is not None else HostMemory()
        self.vfs: list[VirtualFunction] = []
        self.mac = as_mac(mac) if mac is not None else None
        self.mtu = 1500
        self.up = True            # the PF netdev is up (link-state auto follows it)
        self.promisc = False      # FCTRL.UPE: the PF in promiscuous mode
        self.pf_mc_hashes: set[int] = set(nic.state.mta.set_bits())
        self.auto_service = auto_service
        self.mailbox_log_size = mailbox_log
        self.offloaded_macvlans = offloaded_macvlans
        self.time_ns = 0          # stamps mailbox log entries; a driver may keep it current
        self.graph: Any = None
        self.listeners: list[Callable[[str, list[VirtualFunction]], None]] = []
        self.macvlans: list[tuple[int, bytes] | None] = []
        self._saved = self._nic_saved()      # the NIC before SR-IOV: what disabling restores
        self._seq = 0
        self._servicing = False
        self._again = False
        self._add_registers()
        if self.mac is not None:
            nic.add_mac(nic.state.def_pool, self.mac)     # the PF's own address, in its pool

    # ======================================================================
    # PF BAR0: the mailbox registers
    # ======================================================================
    def _add_registers(self) -> None:
        regs = self.nic.regs

        def mbx(vf: int) -> Any:
            return self.vfs[vf].mailbox if vf < len(self.vfs) else None

        def pfmailbox_r(vf: int) -> int:
            m = mbx(vf)
            return m.pf_read() if m else 0

        def pfmailbox_w(vf: int, v: int) -> None:
            m = mbx(vf)
            if m:
                m.pf_write(v)

        def mem_r(j: int) -> int:
            m = mbx(j // MBX_SIZE)
            return m.pf_read_mem(j % MBX_SIZE) if m else 0

        def mem_w(j: int, v: int) -> None:
            m = mbx(j // MBX_SIZE)
            if m:
                m.pf_write_mem(j % MBX_SIZE, v)

        def mbvficr_r(i: int) -> int:
            v = 0
            for k in range(16):
                m = mbx(16 * i + k)
                if m:
                    v |= (m.vfreq << k) | (m.vfack << (16 + k))
            return v

        def mbvficr_w(i: int, v: int) -> None:           # write 1 to clear
            for k in range(16):
                m = mbx(16 * i + k)
                if m:
                    if v >> k & 1:
                        m.vfreq = False
                    if v >> (16 + k) & 1:
                        m.vfack = False

        def vflre_r(i: int) -> int:
            return sum(1 << k for k in range(32) if 32 * i + k < len(self.vfs) and self.vfs[32 * i + k].vflr_pending)

        def vflrec_w(i: int, v: int) -> None:
            for k in range(32):
                if v >> k & 1 and 32 * i + k < len(self.vfs):
                    self.vfs[32 * i + k].vflr_pending = False

        regs.add("PFMAILBOX", 64, lambda vf: 0x04B00 + 4 * vf, pfmailbox_r, pfmailbox_w, changes_state=False)
        regs.add("PFMBMEM", 64 * MBX_SIZE, lambda j: 0x13000 + 4 * j, mem_r, mem_w, changes_state=False)
        regs.add("MBVFICR", 4, lambda i: 0x00710 + 4 * i, mbvficr_r, mbvficr_w, changes_state=False)
        regs.add("VFLRE", 2, lambda i: 0x00600 if i == 0 else 0x001C0, vflre_r, changes_state=False)
        regs.add("VFLREC", 2, lambda i: 0x00700 + 4 * i, lambda i: 0, vflrec_w, changes_state=False)

    # ======================================================================
    # VFs: creation and teardown
    # ======================================================================
    @property
    def num_vfs(self) -> int:
        return len(self.vfs)

    @property
    def pf_pool(self) -> int:
        """The PF's own pool: the default pool, after the last VF's."""
        return self.nic.state.def_pool

    def vf(self, n: int) -> VirtualFunction:
        self._check_vf(n)
        return self.vfs[n]

    def _check_vf(self, n: int) -> None:
        if not 0 <= n < len(self.vfs):
            raise SriovError(f"vf {n}: the PF has {len(self.vfs)} VFs", errno.EINVAL)

    def set_numvfs(self, n: int) -> None:
        """``echo n > sriov_numvfs``, with every sysfs error."""
        self.sysfs.write_numvfs(str(n))

    def sriov_configure(self, n: int) -> int:
        """The driver's sriov_configure (ixgbe_pci_sriov_configure): enable n VFs, or 0: disable."""
        if n == 0:
            self._disable()
            return 0
        if self.vfs:
            if len(self.vfs) == n:
                return n
            self._disable()
        limit = 64 if self.driver == "ixgbe" else 8       # IXGBE_MAX_VFS_1TC; igb: 7 + the PF
        pools = 1 + self.offloaded_macvlans
        if n > limit - pools:
            raise SriovError(f"Currently configured with 1 TCs, and {pools - 1} offloaded macvlans. "
                             f"Creating more than {limit - pools} VFs is not allowed", errno.EPERM)
        saved = self._nic_saved()
        pf_cfg = self._capture(self.nic.state.def_pool)
        self._program_nic(n)
        try:
            self.iov.enable(n)
        except SriovError:
            self._restore_nic(saved, pf_cfg)
            raise
        self._saved = saved
        return n

    def _nic_saved(self) -> dict[str, Any]:
        st = self.nic.state
        return {"mrqc": st.layout.mrqc, "def_pool": st.def_pool, "veb": st.veb_en, "vfre": st.vfre, "vfte": st.vfte,
                "vmecm": st.vmecm, "lle": st.lle, "vt": st.vt_en, "rpl": st.rpl_en, "vfe": st.vlan_filter_en}

    def _layout_for(self, n: int) -> int:
        if self.profile.name in ("82599", "x550"):
            return 0xB if n + 1 > 32 else 0xA             # ixgbe_set_sriov_queues: 64x2 or 32x4
        return self.profile.layouts[0].mrqc               # 82576 / i350: their 8 pools

    def _capture(self, pool: int) -> tuple[list[bytes], dict[str, bool]]:
        """The PF pool's MACs and VMOLR flags, to move them when the PF's pool moves."""
        st = self.nic.state
        if pool >= st.num_pools:
            return [], {}
        cfg = st.pools[pool]
        return st.rar.macs_of(pool), {k: getattr(cfg, k) for k in ("aupe", "rompe", "rope", "bam", "mpe")}

    def _place(self, pool: int, saved: tuple[list[bytes], dict[str, bool]]) -> None:
        macs, flags = saved
        for m in macs:
            self.nic.add_mac(pool, m)
        if flags:
            self.nic.set_pool_flags(pool, **flags)

    def _program_nic(self, n: int) -> None:
        nic, st = self.nic, self.nic.state
        old_pf = st.def_pool
        pf_cfg = self._capture(old_pf)
        if old_pf < st.num_pools:
            nic.clear_pool(old_pf)
        nic.set_layout(self._layout_for(n))
        nic.set_default_pool(n)
        st.vt_en = st.rpl_en = st.vlan_filter_en = True     # PFVTCTL VT_ENA | REPLEN, VLNCTRL.VFE
        every = (1 << st.num_pools) - 1
        st.vfre = st.vfte = every & ~((1 << n) - 1)        # VF pools off until their RESET
        for p in range(n):
            nic.clear_pool(p)
            nic.set_vmvir(p, "use_desc")
            nic.set_max_frame(p, None)
            nic.set_psrtype(p, 0)                           # the VF driver's to set (VFPSRTYPE)
            for q in st.pool_queues(p):
                nic.rings.queues[q].set_enabled(False)
                nic.rings.queues[q].drop_en = True
                nic.rings.queues[q].vlan_strip = False
                nic.txa.queues[q].enabled = False
        nic.clear_pool(n)
        self._place(n, pf_cfg)
        if self.mac is not None:
            nic.add_mac(n, self.mac)
        if not any(getattr(st.pools[n], k) for k in ("aupe", "bam", "rompe", "mpe")):
            nic.set_pool_flags(n, aupe=True, bam=True, rompe=True)    # a PF netdev's VMOLR
        for q in st.pool_queues(n):
            nic.rings.queues[q].set_enabled(True)
            nic.txa.queues[q].enabled = True
        st.veb_en = True                                    # PFDTXGSWC.LBEN
        free = self.profile.rar_entries - (MAX_PF_MACVLANS[self.driver] + 1 + n)
        self.macvlans = [None] * max(free, 0)
        nic.state.changed()

    def _restore_nic(self, saved: dict[str, Any],
                     pf_cfg: tuple[list[bytes], dict[str, bool]] | None = None) -> None:
        """The NIC back to its layout and default pool; the PF pool's MACs and flags move back
        (``pf_cfg``: the ones it had before, when an enable is rolled back)."""
        nic, st = self.nic, self.nic.state
        pf_pool = st.def_pool
        if pf_cfg is None:
            pf_cfg = self._capture(pf_pool)
        for p in range(min(pf_pool + 1, st.num_pools)):
            nic.clear_pool(p)
            nic.set_vmvir(p, "use_desc")
        nic.set_layout(saved["mrqc"])
        target = saved["def_pool"]
        self._place(target, pf_cfg)
        nic.set_default_pool(target)
        every = (1 << st.num_pools) - 1
        st.vfre, st.vfte, st.veb_en = saved["vfre"] & every, saved["vfte"] & every, saved["veb"]
        st.vmecm, st.lle = saved["vmecm"] & every, saved["lle"] & every
        st.vt_en, st.rpl_en, st.vlan_filter_en = saved["vt"], saved["rpl"], saved["vfe"]
        for p in range(st.num_pools):
            for q in st.pool_queues(p):
                nic.rings.queues[q].set_enabled(True)
                nic.txa.queues[q].enabled = True
        self.macvlans = []
        nic.state.changed()

    def _disable(self) -> None:
        if not self.vfs:
            return
        self.iov.disable()
        self._restore_nic(self._saved)

    def _vfs_created(self, fns: list[VfFunction]) -> None:
        """VF Enable rose: a VirtualFunction for each new function (ixgbe_vf_configuration,
        ixgbe_configure_virtualization: spoof checking on for every VF)."""
        self.vfs = [VirtualFunction(self, fn) for fn in fns]
        for vf in self.vfs:
            vf.fn.on_flr = vf.hardware_reset
            vf.mailbox.on_pf_event = self._mailbox_irq
            self.nic.set_spoofcheck(vf.pool, mac=True, vlan=True)
            self.nic.set_vm_error_count(vf.pool, True)
            if self.graph is not None:
                self._wire(vf)
        for fn in self.listeners:
            fn("created", list(self.vfs))

    def _vfs_destroyed(self, fns: list[VfFunction]) -> None:
        gone, self.vfs = self.vfs, []
        nic = self.nic
        for vf in gone:
            self.iommu.attach(vf.rid, None)
            if vf.dma.graph is not None:
                vf.dma.graph.remove(vf.dma)
            nic.flush_pool(vf.pool)
            nic.clear_pool(vf.pool)
            nic.set_spoofcheck(vf.pool, mac=False, vlan=False)
            nic.set_vmvir(vf.pool, "use_desc")
            for q in vf.nic_queues:
                nic.txa.queues[q].set_rate(0)
        self._sync_mta()
        for fn in self.listeners:
            fn("destroyed", gone)

    # -- the graph ---------------------------------------------------------------
    def attach(self, graph: Any) -> None:
        """Put the VFs' DMA paths in ``graph`` (which holds the NIC): for each VF, the NIC's
        ``pool<P>`` output feeds ``vf.dma``'s ``pool`` input and ``vf.dma``'s ``pool`` output
        the NIC's ``pool<P>`` input; a guest port is then wired to ``vf.dma``'s ``guest``
        input and output.  VFs created later are wired as they come, and leave the graph
        when they go; ``listeners`` hear of both."""
        self.graph = graph
        for vf in self.vfs:
            self._wire(vf)

    def _wire(self, vf: VirtualFunction) -> None:
        g = self.graph
        g.add(vf.dma)
        g.connect(self.nic, f"pool{vf.pool}", vf.dma, "pool")
        g.connect(vf.dma, "pool", self.nic, f"pool{vf.pool}")

    # ======================================================================
    # the mailbox, PF side (ixgbe_mbx.c through the PF's BAR0)
    # ======================================================================
    def _mailbox_irq(self) -> None:
        """The PF's mailbox interrupt (EICR.MAILBOX: a VF's REQ or ACK, or a VFLR)."""
        if self.auto_service:
            self.service_mailbox()

    def _rd(self, name: str, i: int) -> int:
        return self.nic.regs.read(name, i)

    def _wr(self, name: str, i: int, v: int) -> None:
        self.nic.regs.write(name, i, v)

    def _obtain_lock(self, k: int) -> bool:
        self._wr("PFMAILBOX", k, PF_PFU)
        return bool(self._rd("PFMAILBOX", k) & PF_PFU)

    def _check_bit(self, k: int, bit: int) -> bool:
        i, b = k // 16, 1 << (bit + k % 16)
        if self._rd("MBVFICR", i) & b:
            self._wr("MBVFICR", i, b)
            return True
        return False

    def _check_for_msg(self, k: int) -> bool:
        return self._check_bit(k, 0)

    def _check_for_ack(self, k: int) -> bool:
        return self._check_bit(k, 16)

    def _check_for_rst(self, k: int) -> bool:
        i, b = k // 32, 1 << (k % 32)
        if self._rd("VFLRE", i) & b:
            self._wr("VFLREC", i, b)
            return True
        return False

    def _read_mbx(self, k: int) -> list[int] | None:
        if not self._obtain_lock(k):
            return None
        words = [self._rd("PFMBMEM", k * MBX_SIZE + i) for i in range(MBX_SIZE)]
        self._wr("PFMAILBOX", k, PF_ACK)                  # ack and release
        return words

    def _write_mbx(self, k: int, words: Sequence[int], note: str = "") -> bool:
        if not self._obtain_lock(k):
            return False
        self._check_for_msg(k)                            # the buffer is overwritten: flush
        self._check_for_ack(k)
        for i, w in enumerate(words):
            self._wr("PFMBMEM", k * MBX_SIZE + i, w)
        self._wr("PFMAILBOX", k, PF_STS)                  # tell the VF, release
        self._log(k, words, True, note)
        return True

    def _clear_mbx(self, k: int) -> None:
        if self._obtain_lock(k):
            for i in range(MBX_SIZE):
                self._wr("PFMBMEM", k * MBX_SIZE + i, 0)
            self._wr("PFMAILBOX", k, 0)

    def _log(self, k: int, words: Sequence[int], to_vf: bool, note: str = "") -> None:
        self._seq += 1
        n = len(words)
        while n > 1 and not words[n - 1]:
            n -= 1
        self.vfs[k].mailbox_log.append(MailboxEntry(self._seq, self.time_ns, to_vf, tuple(words[:n]),
                                                    decode(words, to_vf), note))

    def service_mailbox(self) -> int:
        """ixgbe_msg_task: for every VF, a reset (VFLRE), then a message, then an ack.
        Returns the events handled.  Re-entrant calls (a reply that wakes a VF that writes
        again) are folded into the running one."""
        if self._servicing:
            self._again = True
            return 0
        self._servicing = True
        n = 0
        try:
            while True:
                self._again = False
                for k in range(len(self.vfs)):
                    if self._check_for_rst(k):
                        self._reset_event(k)
                        self.vfs[k].info.clear_to_send = False    # igb_vf_reset: after a VFLR, RESET first
                        n += 1
                    if k < len(self.vfs) and self._check_for_msg(k):
                        self._rcv_msg(k)
                        n += 1
                    if k < len(self.vfs) and self._check_for_ack(k):
                        if not self.vfs[k].info.clear_to_send:
                            self._write_mbx(k, [MSG_NACK], "not clear to send")
                        n += 1
                if not self._again:
                    break
        finally:
            self._servicing = False
        return n

    def _rcv_msg(self, k: int) -> None:
        words = self._read_mbx(k)
        if words is None:
            return
        self._log(k, words, False)
        w0 = words[0]
        if w0 & (MSG_ACK | MSG_NACK):
            return                                        # a message already processed
        if w0 == VF_RESET:
            self._reset_msg(k)
            return
        info = self.vfs[k].info
        if not info.clear_to_send:
            self._write_mbx(k, [w0 | MSG_NACK], "not clear to send: no RESET yet")
            return
        handler = self._handlers().get(w0 & 0xFFFF)
        reply = list(words)
        if handler is None:
            err, note = errno.EIO, f"unhandled message {w0:#010x}"
        else:
            err, note = handler(k, reply)
        reply[0] = w0 | (MSG_NACK if err else MSG_ACK) | MSG_CTS
        self._write_mbx(k, reply, note)

    def _handlers(self) -> dict[int, Handler]:
        return {VF_SET_MAC_ADDR: self._msg_set_mac, VF_SET_MULTICAST: self._msg_set_multicast,
                VF_SET_VLAN: self._msg_set_vlan, VF_SET_LPE: self._msg_set_lpe,
                VF_SET_MACVLAN: self._msg_set_macvlan, VF_API_NEGOTIATE: self._msg_api_negotiate,
                VF_GET_QUEUES: self._msg_get_queues, VF_GET_RETA: self._msg_get_reta,
                VF_GET_RSS_KEY: self._msg_get_rss_key, VF_UPDATE_XCAST_MODE: self._msg_update_xcast,
                VF_GET_LINK_STATE: self._msg_get_link_state}

    # -- reset ---------------------------------------------------------------------
    def _reset_event(self, k: int) -> None:
        """ixgbe_vf_reset_event: the VF's filters back to what the admin set."""
        vf = self.vfs[k]
        i = vf.info
        nic, st, pool = self.nic, self.nic.state, vf.pool
        for vid in st.vlvf.vids_of(pool):
            nic.remove_vlan(pool, vid)
        i.vlans.clear()
        with contextlib.suppress(TableFull):              # ixgbe ignores a failure too
            nic.add_vlan(pool, i.pf_vlan)                 # the port VLAN, or VLAN 0
        nic.set_pool_flags(pool, bam=True, aupe=not i.pf_vlan)
        if not i.pf_vlan and not i.pf_qos:
            nic.set_vmvir(pool, "use_desc")
        else:
            nic.set_vmvir(pool, "always_default", i.pf_vlan, i.pf_qos)
            if i.spoofchk:
                nic.set_spoofcheck(pool, mac=True, vlan=True)
                i.hw_spoof_off = False
        i.mc_hashes = []
        self._sync_mta()
        if i.mac != ZERO_MAC:
            nic.remove_mac(pool, i.mac)
        self._set_macvlan(k, 0, ZERO_MAC)
        i.api = API_10
        self._apply_strip(vf)

    def _reset_msg(self, k: int) -> None:
        """ixgbe_vf_reset_msg: reset the VF's state, enable it, reply with its MAC."""
        vf = self.vfs[k]
        i = vf.info
        nic, pool = self.nic, vf.pool
        self._reset_event(k)
        self._clear_mbx(k)
        if i.mac != ZERO_MAC:
            try:
                self._set_mac_filter(k, i.mac)
            except SriovError:
                i.mac = ZERO_MAC
        for q in vf.nic_queues:
            nic.rings.queues[q].drop_en = True           # ixgbe forces QDE on VF queues (E.8)
        self._set_rx_tx(k)
        i.clear_to_send = True
        nic.set_vm_error_count(pool, True)
        ok = i.mac != ZERO_MAC and i.pf_set_mac
        w1, w2 = mac_to_words(i.mac) if ok else (0, 0)
        self._write_mbx(k, [VF_RESET | (MSG_ACK if ok else MSG_NACK), w1, w2, nic.state.mo],
                        "" if ok else "no administrative MAC: the VF picks its own")

    def _set_rx_tx(self, k: int) -> None:
        """ixgbe_set_vf_rx_tx: VFRE/VFTE from the link state; the 82599 keeps a VF's RX off
        while the PF runs jumbo frames (until the VF's SET_LPE on API 1.1+)."""
        vf = self.vfs[k]
        on = vf.info.link_enable
        rx = on
        if self.profile.name == "82599" and self.mtu + 14 > ETH_FRAME_LEN:
            rx = False
        self.nic.set_pool_enabled(vf.pool, rx=rx, tx=on)

    def _apply_strip(self, vf: VirtualFunction) -> None:
        """VLAN strip of the VF's queues: the VF's own VME, forced on under a port VLAN (the
        guest never sees its port VLAN: X550's QDE.HIDE_VLAN, ixgbevf's discard of a tag it
        did not join)."""
        forced = bool(vf.info.pf_vlan or vf.info.pf_qos)
        for n, q in enumerate(vf.nic_queues):
            self.nic.set_vlan_strip(q, forced or vf.vme[n])
        vf.dma.hide_vlan = forced

    def _sync_mta(self) -> None:
        """ixgbe_set_rx_mode + restore_vf_multicasts: the MTA is the PF's groups and every VF's
        hashes; ROMPE on exactly for the VFs with hashes."""
        st = self.nic.state
        bits = 0
        for h in self.pf_mc_hashes:
            bits |= 1 << h
        for vf in self.vfs:
            for h in vf.info.mc_hashes:
                bits |= 1 << (h & 0xFFF)
            st.pools[vf.pool].rompe = bool(vf.info.mc_hashes)
        st.mta.bits = bits
        st.changed()

    def add_pf_multicast(self, group: str | bytes) -> int:
        """The PF joins a multicast group (its own MTA bit, kept across VF resets)."""
        h = hash12(as_mac(group), self.nic.state.mo)
        self.pf_mc_hashes.add(h)
        self._sync_mta()
        return h

    # -- mailbox handlers: (errno or 0, why) ------------------------------------------------
    def _set_mac_filter(self, k: int, mac: bytes) -> None:
        """ixgbe_set_vf_mac: the VF's exact filter moves to ``mac``.  Atomic: if the RAR table
        has no room the old filter stays (ixgbe would have lost it) and ENOMEM is raised."""
        vf = self.vfs[k]
        nic, pool, old = self.nic, vf.pool, vf.info.mac
        if old != ZERO_MAC and old != mac:
            nic.remove_mac(pool, old)
        try:
            nic.add_mac(pool, mac)
        except TableFull as e:
            if old != ZERO_MAC and old != mac:
                nic.add_mac(pool, old)
            raise SriovError(f"vf {k}: MAC {mac_str(mac)} not set: {e.message}", errno.ENOMEM) from None
        vf.info.mac = mac

    def _msg_set_mac(self, k: int, w: list[int]) -> tuple[int, str]:
        mac = words_to_mac(w[1], w[2])
        i = self.vfs[k].info
        if not _valid_unicast(mac):
            return errno.EINVAL, f"VF {k} attempted to set invalid mac {mac_str(mac)}"
        if i.pf_set_mac and not i.trusted and mac != i.mac:
            return errno.EPERM, f"VF {k} attempted to override administratively set MAC address"
        try:
            self._set_mac_filter(k, mac)
        except SriovError as e:
            return e.errno, e.message
        return 0, ""

    def _msg_set_multicast(self, k: int, w: list[int]) -> tuple[int, str]:
        vf = self.vfs[k]
        asked = (w[0] >> MSGINFO_SHIFT) & 0xFF
        n = min(asked, MAX_MC_HASHES)
        hashes = [(w[1 + j // 2] >> (16 * (j % 2))) & 0xFFFF for j in range(n)]
        vf.info.mc_hashes = hashes
        st = self.nic.state
        for h in hashes:                                   # ORed in: ixgbe clears nothing here
            st.mta.set(h & 0xFFF)
        st.pools[vf.pool].rompe = True
        st.changed()
        return 0, f"{asked} hashes asked, {MAX_MC_HASHES} kept (IXGBE_MAX_VF_MC_ENTRIES)" if asked > n else ""

    def _msg_set_vlan(self, k: int, w: list[int]) -> tuple[int, str]:
        vf = self.vfs[k]
        add = (w[0] >> MSGINFO_SHIFT) & 0xFF
        vid = w[1] & 0xFFF
        if vf.info.pf_vlan:
            return errno.EPERM, f"VF {k} attempted to override administratively set VLAN configuration"
        if not vid and not add:
            return 0, ""
        try:
            if add:
                self.nic.add_vlan(vf.pool, vid)
                vf.info.vlans.add(vid)
            else:
                self.nic.remove_vlan(vf.pool, vid)
                vf.info.vlans.discard(vid)
        except TableFull as e:
            return errno.ENOSPC, e.message
        return 0, ""

    def _msg_set_lpe(self, k: int, w: list[int]) -> tuple[int, str]:
        vf = self.vfs[k]
        max_frame = w[1]
        if not ETH_MIN_MTU <= max_frame <= VF_MAX_FRAME:
            return errno.EINVAL, f"VF max_frame {max_frame} out of range"
        if self.profile.name == "82599":
            pf_max_frame = self.mtu + 14
            err = False
            if not (vf.info.api in (API_11, API_12, API_13, API_14) and pf_max_frame > ETH_FRAME_LEN):
                err = pf_max_frame > ETH_FRAME_LEN or max_frame > ETH_FRAME_LEN + 4
            self.nic.set_pool_enabled(vf.pool, rx=not err and vf.info.link_enable)
            if err:
                return errno.EINVAL, (f"VF max_frame {max_frame} out of range: the 82599 cannot mix jumbo and "
                                      f"non-jumbo PF/VFs (PF MTU {self.mtu}, VF API "
                                      f"{'1.0' if vf.info.api == API_10 else '1.1+'}); the VF's RX is off")
        self.nic.set_max_frame(vf.pool, max_frame)
        vf.info.max_frame = max_frame
        return 0, ""

    def macvlans_of(self, k: int) -> list[bytes]:
        return [e[1] for e in self.macvlans if e is not None and e[0] == k]

    def _set_macvlan(self, k: int, index: int, mac: bytes) -> int:
        """ixgbe_set_vf_macvlan: index <= 1 clears the VF's filters first; 0 only clears."""
        pool = self.vfs[k].pool
        if index <= 1:
            for j, e in enumerate(self.macvlans):
                if e is not None and e[0] == k:
                    self.macvlans[j] = None
                    if e[1] != self.vfs[k].info.mac:
                        self.nic.remove_mac(pool, e[1])
        if not index:
            return 0
        free = next((j for j, e in enumerate(self.macvlans) if e is None), None)
        if free is None:
            return -errno.ENOSPC
        try:
            self.nic.add_mac(pool, mac)
        except TableFull:
            return -errno.ENOMEM
        self.macvlans[free] = (k, mac)
        return 0

    def _msg_set_macvlan(self, k: int, w: list[int]) -> tuple[int, str]:
        vf = self.vfs[k]
        i = vf.info
        index = (w[0] >> MSGINFO_SHIFT) & 0xFF
        mac = words_to_mac(w[1], w[2])
        if i.pf_set_mac and not i.trusted and index > 0:
            return errno.EPERM, f"VF {k} requested MACVLAN filter but is administratively denied"
        if index:
            if not _valid_unicast(mac):
                return errno.EINVAL, f"VF {k} attempted to set invalid mac {mac_str(mac)}"
            if i.spoofchk:
                self.nic.set_spoofcheck(vf.pool, mac=False, vlan=False)   # ixgbe: avoid false positives
                i.hw_spoof_off = True
        err = self._set_macvlan(k, index, mac)
        if err == -errno.ENOSPC:
            return errno.ENOSPC, f"VF {k} has requested a MACVLAN filter but there is no space for it"
        if err:
            return -err, "RAR table full"
        return 0, ""

    def _msg_api_negotiate(self, k: int, w: list[int]) -> tuple[int, str]:
        if w[1] in _VALID_APIS:
            self.vfs[k].info.api = w[1]
            return 0, ""
        return errno.EINVAL, f"VF {k} requested unsupported api version {w[1]}"

    def _msg_get_queues(self, k: int, w: list[int]) -> tuple[int, str]:
        vf = self.vfs[k]
        if vf.info.api not in (API_20, API_11, API_12, API_13, API_14):
            return errno.EOPNOTSUPP, "GET_QUEUES needs API 1.1 or later"
        w[1] = w[2] = vf.num_queues
        w[3] = 1 if vf.info.pf_vlan or vf.info.pf_qos else 0
        w[4] = 0
        return 0, ""

    def _rss_allowed(self, k: int) -> tuple[int, str]:
        i = self.vfs[k].info
        if not i.rss_query:
            return errno.EPERM, "query_rss is off for this VF"
        if i.api not in (API_12, API_13, API_14):
            return errno.EOPNOTSUPP, "RSS queries need API 1.2 or later"
        return 0, ""

    def _msg_get_reta(self, k: int, w: list[int]) -> tuple[int, str]:
        err = self._rss_allowed(k)
        if err[0]:
            return err
        # ixgbe_get_vf_reta sends the PF's RETA, 2 low bits of each entry, and ixgbe_setup_reta
        # programs that table for at least 4 queues under SR-IOV (entry i = i mod 4): the
        # pool's PSRTYPE.RQPL masks it down to the queues the VF opened.  The model's RSS hash
        # picks queue (hash mod queues), the same as RETA[hash & 0x7F] under that mask.
        for j in range(8):                                 # 128 entries, 2 bits each, 16 per word
            w[1 + j] = sum(((16 * j + e) % 4) << (2 * e) for e in range(16))
        return 0, ""

    def _msg_get_rss_key(self, k: int, w: list[int]) -> tuple[int, str]:
        err = self._rss_allowed(k)
        if err[0]:
            return err
        for j in range(10):
            w[1 + j] = int.from_bytes(RSS_KEY[4 * j:4 * j + 4], "little")
        return 0, ""

    def _msg_update_xcast(self, k: int, w: list[int]) -> tuple[int, str]:
        vf = self.vfs[k]
        i = vf.info
        mode = w[1]
        if i.api == API_12 and mode == XCAST_PROMISC:
            return errno.EOPNOTSUPP, "promiscuous mode needs API 1.3"
        if i.api not in (API_12, API_13, API_14):
            return errno.EOPNOTSUPP, "UPDATE_XCAST_MODE needs API 1.2 or later"
        note = ""
        if mode > XCAST_MULTI and not i.trusted:
            note = f"untrusted VF: {['none', 'multi', 'allmulti', 'promisc'][min(mode, 3)]} capped at multi"
            mode = XCAST_MULTI
        if mode != i.xcast_mode:
            flags = {XCAST_NONE: {"rompe": False, "mpe": False, "upe": False, "vpe": False, "bam": True},
                     XCAST_MULTI: {"mpe": False, "upe": False, "vpe": False, "bam": True, "rompe": True},
                     XCAST_ALLMULTI: {"upe": False, "vpe": False, "bam": True, "rompe": True, "mpe": True},
                     XCAST_PROMISC: {"vpe": False, "bam": True, "rompe": True, "mpe": True, "upe": True}}.get(mode)
            if flags is None:
                return errno.EOPNOTSUPP, f"unknown xcast mode {mode}"
            if mode == XCAST_PROMISC:
                if not self.profile.per_pool_upe:
                    return errno.EOPNOTSUPP, f"{self.profile.name} has no per-pool unicast promiscuous mode"
                if not self.promisc:
                    return errno.EPERM, "Enabling VF promisc requires PF in promisc"
            self.nic.set_pool_flags(vf.pool, **flags)
            i.xcast_mode = mode
        w[1] = mode
        return 0, note

    def _msg_get_link_state(self, k: int, w: list[int]) -> tuple[int, str]:
        i = self.vfs[k].info
        if i.api not in (API_12, API_13, API_14):
            return errno.EOPNOTSUPP, "GET_LINK_STATE needs API 1.2 or later"
        w[1] = int(i.link_enable)
        return 0, ""

    def ping(self, k: int) -> None:
        """ixgbe_ping_vf: a control message, with CTS if the VF may go on."""
        cts = self.vfs[k].info.clear_to_send
        self._write_mbx(k, [PF_CONTROL_MSG | (MSG_CTS if cts else 0)],
                        "" if cts else "the VF must reset")

    # ======================================================================
    # ip link set PF vf N ... (the ndo_set_vf_* of ixgbe)
    # ======================================================================
    def set_vf_mac(self, n: int, mac: str | bytes) -> None:
        """``mac``: a unicast MAC becomes the VF's administrative MAC (its filter, and the one
        its RESET reply gives it); 00:00:00:00:00:00 removes it; a multicast one: EINVAL."""
        self._check_vf(n)
        try:
            m = as_mac(mac)
        except (ValueError, NicError) as e:
            raise SriovError(f"vf {n}: {e}", errno.EINVAL) from None
        vf = self.vfs[n]
        i = vf.info
        if _valid_unicast(m):
            self._set_mac_filter(n, m)
            i.pf_set_mac = True
        elif m == ZERO_MAC:
            if i.mac == ZERO_MAC:
                return
            self.nic.remove_mac(vf.pool, i.mac)
            i.pf_set_mac = False
            i.mac = ZERO_MAC
        else:
            raise SriovError(f"vf {n}: {mac_str(m)} is a multicast address", errno.EINVAL)

    def set_vf_vlan(self, n: int, vlan: int, qos: int = 0, proto: str | int = "802.1Q") -> None:
        """``vlan V [qos Q] [proto P]``: a port VLAN (VLVF joined, VMVIR inserts V/Q, untagged
        frames refused, the VF's own VLAN requests NACKed); V = Q = 0 removes it.  V > 4095 or
        Q > 7: EINVAL; 802.1ad: EPROTONOSUPPORT (ixgbe); no VLVF entry left: ENOSPC.
        Atomic: a refused change leaves the old port VLAN in place."""
        self._check_vf(n)
        if not 0 <= vlan <= 4095 or not 0 <= qos <= 7:
            raise SriovError(f"vf {n}: vlan {vlan} qos {qos}: vlan must be 0-4095 and qos 0-7", errno.EINVAL)
        if proto not in ("802.1Q", "802.1q", 0x8100):
            raise SriovError(f"vf {n}: vlan protocol {proto}: {self.driver} supports 802.1Q only",
                             errno.EPROTONOSUPPORT)
        vf = self.vfs[n]
        i = vf.info
        if not (vlan or qos):
            self._disable_port_vlan(n)
            return
        old = i.pf_vlan if (i.pf_vlan or i.pf_qos) else None
        nic, pool = self.nic, vf.pool
        if vlan != old:
            # Join the new VLAN before leaving the old one, so a refusal leaves it as it was; if the
            # VLVF is full and the old port VLAN's entry is this VF's alone, leaving it makes room
            # (ixgbe's disable-then-enable would take it too).
            try:
                nic.add_vlan(pool, vlan)
            except TableFull as e:
                idx = nic.state.vlvf.index.get(old) if old is not None else None
                if idx is None or nic.state.vlvf.pools[idx] != 1 << pool:
                    raise SriovError(f"vf {n}: vlan {vlan}: {e.message}", errno.ENOSPC) from None
                nic.remove_vlan(pool, old)                 # type: ignore[arg-type]
                nic.add_vlan(pool, vlan)
                old = None
            if old is not None:
                nic.remove_vlan(pool, old)
        self._enable_port_vlan(n, vlan, qos)

    def _enable_port_vlan(self, n: int, vlan: int, qos: int) -> None:
        """ixgbe_enable_port_vlan, the port VLAN already joined in VLVF."""
        vf = self.vfs[n]
        nic, pool = self.nic, vf.pool
        if vlan:
            nic.remove_vlan(pool, 0)                       # revoke tagless access via VLAN 0
        nic.set_vmvir(pool, "always_default", vlan, qos)
        nic.set_pool_flags(pool, aupe=False, bam=True)
        vf.info.pf_vlan, vf.info.pf_qos = vlan, qos
        self._apply_strip(vf)

    def _disable_port_vlan(self, n: int) -> None:
        vf = self.vfs[n]
        nic, pool, i = self.nic, vf.pool, vf.info
        nic.remove_vlan(pool, i.pf_vlan)
        with contextlib.suppress(TableFull):
            nic.add_vlan(pool, 0)                          # restore tagless access via VLAN 0
        nic.set_vmvir(pool, "use_desc")
        nic.set_pool_flags(pool, aupe=True, bam=True)
        i.pf_vlan = i.pf_qos = 0
        self._apply_strip(vf)

    def set_vf_rate(self, n: int, max_tx_rate: int, min_tx_rate: int = 0) -> None:
        """``max_tx_rate M min_tx_rate m`` (Mb/s) with the PF driver's checks (nicmodel's
        set_pool_tx_rate: ixgbe wants a 10 Gb/s link, min 0, 10 < max <= link or 0)."""
        self._check_vf(n)
        try:
            self.nic.set_pool_tx_rate(self.vfs[n].pool, max_tx_rate, min_tx_rate)
        except NicError as e:
            raise SriovError(f"vf {n}: {e.message}", e.errno) from None

    def set_vf_spoofchk(self, n: int, on: bool) -> None:
        """``spoofchk on|off``: MAC and VLAN anti-spoof of the VF's pool (ixgbe sets both)."""
        self._check_vf(n)
        vf = self.vfs[n]
        vf.info.spoofchk = on
        vf.info.hw_spoof_off = False
        self.nic.set_spoofcheck(vf.pool, mac=on, vlan=on)

    def set_vf_trust(self, n: int, on: bool) -> None:
        """``trust on|off``; a change makes the VF reset (CTS off, a ping), as ixgbe."""
        self._check_vf(n)
        i = self.vfs[n].info
        if i.trusted == on:
            return
        i.trusted = on
        i.clear_to_send = False
        self.ping(n)

    def set_vf_link_state(self, n: int, state: str) -> None:
        """``state auto|enable|disable``: disable clears the VF's VFRE/VFTE (it carries nothing),
        auto follows the PF; ``enable`` is accepted and ignored ("not supported", ixgbe).
        A change makes the VF reset (CTS off, a ping)."""
        self._check_vf(n)
        if state not in LINK_STATES:
            raise SriovError(f"vf {n}: link state {state!r}: auto, enable or disable", errno.EINVAL)
        if state == "enable":
            return
        vf = self.vfs[n]
        i = vf.info
        i.link_state = state
        i.link_enable = state == "auto" and self.up
        self._set_rx_tx(n)
        i.clear_to_send = False
        self.ping(n)

    def set_vf_query_rss(self, n: int, on: bool) -> None:
        """``query_rss on|off``: whether GET_RETA / GET_RSS_KEY are answered (82599 only)."""
        if self.profile.name != "82599":
            raise SriovError(f"query_rss: {self.profile.name} does not support it (ixgbe: 82599 and X540 only)",
                             errno.EOPNOTSUPP)
        self._check_vf(n)
        self.vfs[n].info.rss_query = on

    def set_mtu(self, mtu: int) -> None:
        """The PF's MTU; on the 82599 a jumbo PF keeps legacy VFs' RX off (ixgbe_set_vf_rx_tx)."""
        if not ETH_MIN_MTU <= mtu <= VF_MAX_FRAME - 18:
            raise SriovError(f"mtu {mtu}: must be {ETH_MIN_MTU}-{VF_MAX_FRAME - 18}", errno.EINVAL)
        self.mtu = mtu
        for k, vf in enumerate(self.vfs):
            if vf.info.clear_to_send:
                self._set_rx_tx(k)

    def ip_link_set(self, n: int, words: Sequence[str]) -> None:
        """``ip link set PF vf N WORDS...``: iproute2's words and messages, applied in the
        kernel's order (mac, vlan, rate, spoofchk, state, query_rss, trust); the first
        refusal stops there, as the kernel does."""
        from sriov.render import parse_vf_words
        opts = parse_vf_words(list(words))
        self._check_vf(n)
        if "mac" in opts:
            self.set_vf_mac(n, opts["mac"])
        if "vlan" in opts:
            self.set_vf_vlan(n, opts["vlan"], opts.get("qos", 0), opts.get("proto", "802.1Q"))
        if "max_tx_rate" in opts or "min_tx_rate" in opts:
            cur = self.vfs[n].vf_info()
            self.set_vf_rate(n, opts.get("max_tx_rate", cur["max_tx_rate"]), opts.get("min_tx_rate", 0))
        if "spoofchk" in opts:
            self.set_vf_spoofchk(n, opts["spoofchk"])
        if "state" in opts:
            self.set_vf_link_state(n, opts["state"])
        if "query_rss" in opts:
            self.set_vf_query_rss(n, opts["query_rss"])
        if "trust" in opts:
            self.set_vf_trust(n, opts["trust"])

    def set_promisc(self, on: bool) -> None:
        """FCTRL.UPE: the PF in promiscuous mode (what a VF's PROMISC xcast needs)."""
        self.promisc = on

    # ======================================================================
    # views
    # ======================================================================
    def show(self) -> dict[str, Any]:
        """Everything ``vswitchctl vf show --json`` can print."""
        return {
            "pf": {"bdf": rid_str(self.cap.pf_rid), "profile": self.profile.name, "driver": self.driver,
                   "mac": mac_str(self.mac) if self.mac else None, "mtu": self.mtu, "pool": self.pf_pool,
                   "num_vfs": self.num_vfs, "totalvfs": self.iov.totalvfs(),
                   "mrqc": self.nic.state.layout.mrqc, "veb": self.nic.state.veb_en,
                   "macvlans_free": sum(e is None for e in self.macvlans)},
            "capability": self.cap.show(),
            "sysfs": {name: self.sysfs.read(name).strip() for name in self.sysfs.listdir()},
            "vfs": [vf.show() for vf in self.vfs],
            "iommu": self.iommu.show(),
        }

    def mailbox_log(self, n: int) -> list[str]:
        """The last messages of VF n's mailbox, one decoded line each (``vswitchctl vf mailbox N``)."""
        return [e.line() for e in self.vf(n).mailbox_log]

    def ip_link_show(self, name: str = "eth0", stats: bool = False) -> str:
        """The VF lines of ``ip [-s] link show PF``."""
        from sriov.render import render_vfs
        return render_vfs(self, name, stats)
