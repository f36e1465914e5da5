"""Nic: the emulated PCIe NIC as a composite element of the graph, and its Python API.

Element `Nic` (composite: ``graph.add(nic)`` adds its parts)
    input ``wire``       frames received from the link;
    output ``wire``      frames transmitted to the link;
    input ``pool<P>``    frames a guest (or the hypervisor, pool 0) hands to
                         pool P's TX queue: the one the first frame's ``queue``
                         names when it is one of P's (a VF's DMA engine stamps
                         the queue its guest chose), else queue 0 (a full ring
                         drops ``tx_ring_full``: a TAP reader cannot be pushed back);
    output ``pool<P>``   frames received into pool P's queues, as the driver
                         drains them;
    input ``host``       internal: each RX queue's ``out`` (what a drain pulled).
Parts, named ``<nic>.<part>``: ``sorter``, ``rx`` (the rings' DMA engine and
packet buffer), ``irq``, ``tx`` (the TX arbiter) and one core `Queue` per RX
queue, ``rxq<N>``, whose scheduler is that queue's ring.  In a graph nothing
returns lists of interrupts: an RX queue whose interrupt fires becomes ready
(``graph.ready``) and the driver drains it (a NAPI poll, budget as given);
the NIC itself is ready (``drain``: its TX engine) when a TX frame may start,
and asks the graph for a deadline when a moderation timer or a shaped TX
queue needs one.  The same model keeps its direct API for programs and tests
that drive it by hand: ``rx``, ``poll(queue, budget, now_ns)``, ``tx(pool,
frames, now_ns)``, ``tx_service(now_ns)``, ``expire(now_ns)`` and
``take_interrupts()`` (used only outside a graph).

Inside (each an Element with its own counters): `VmdqSorter` (pool selection),
`RxRings` (rings, drop enable, packet buffer), `Interrupts` (moderation,
NAPI), `TxArbiter` (TX rings, arbitration, rate limits).  The programmable
state lives in `NicState`; `registers.RegisterFile` (BAR0) and this class's
methods both change it and nothing else, so either way gives the same NIC.
`pci.ConfigSpace` is the PCI function on top (``nic.pci``); an SR-IOV VF
is a pool plus its own `ConfigSpace` (`sriov`, docs/sriov.md).

TX order per frame (nic-model.md A "TX path"): queue service (arbiter) ->
VMVIR VLAN insertion -> anti-spoof (MACAS, VLANAS; insertion first is the
reference's unverified assumption, E.3) -> rate limit (arbiter) -> VEB
loopback when PFDTXGSWC.LBE is set, the link is up and RX is enabled.

Own counters (port, datasheet names): ``gptc``/``gotc``/``bptc``/``mptc``
(frames to the wire), ``ssvpc`` (TX security drops -- anti-spoof and tags VMVIR
forbids -- of the pools whose PFVMECM bit is set), ``loopback_packets``; per
pool ``tx_spoofed`` (its security drops, whatever PFVMECM says) in the snapshot.
Drop reasons: ``link_down``, ``rx_disabled``, ``spoofed_mac``,
``spoofed_vlan``, ``vlan_not_allowed`` (VMVIR forbids a guest's own tag),
``own_pool_no_lle`` (a unicast to the sender's own MAC with LLE off: it
stays off the wire and has no local destination), ``runt`` (a guest's frame
shorter than an Ethernet header, or than its 802.1Q tag), ``qdisc_removed`` (frames a
pool's TX policy still held when it was removed and the ring had no room for; the
policy's own drops are its own, `set_tx_qdisc`; for an RX queue's policy, `set_rx_qdisc`,
the frames it held when removed).  VEB loopback into a
full queue without drop enable is back-pressure, not a drop: the frame
waits at the head of its TX queue.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import Any, ClassVar

from nicmodel.interrupts import NAPI_BUDGET, Interrupts
from nicmodel.profiles import Profile, get_profile
from nicmodel.rings import RxQueue, RxRings, check_ring_size
from nicmodel.rx_qdisc import RxPolicy
from nicmodel.sorter import PoolTarget, VmdqSorter, bits_of, select_pools
from nicmodel.state import VMVIR_MODES, MirrorRule, NicState
from nicmodel.tables import NicError, hash12
from nicmodel.tx_arbiter import TxArbiter
from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import BROADCAST, Frame, mac_str, parse_mac, push_tag
from vswitch.core.queues import Queue
from vswitch.core.scheduler import Scheduler

__all__ = ["Nic", "as_mac"]

_TPID = b"\x81\x00"
# VEB plan of (pool, DA, tag): local targets, whether it goes to the wire, a drop reason
# and the port counter a frame to the wire adds to (bptc / mptc)
VebPlan = tuple[tuple[PoolTarget, ...] | None, bool, str | None, str | None]
_DATA = attrgetter("data")
_WIRE = object()   # a header a pool sends plainly to the wire: the inline path
FAST_MAX = 4096    # headers cached per pool (emptied when full, and on every state change)
POOL_FLAGS = ("aupe", "rompe", "rope", "bam", "mpe", "upe", "vpe")
MAX_CREDIT_REFILL = 200  # ixgbe_dcb.h IXGBE_DCB_MAX_CREDIT_REFILL, 64-byte units


def as_mac(mac: str | bytes) -> bytes:
    if isinstance(mac, bytes | bytearray):
        if len(mac) != 6:
            raise NicError(f"MAC address must be 6 bytes, got {len(mac)}")
        return bytes(mac)
    return parse_mac(mac)


class Nic(Element):
    INPUTS: ClassVar[tuple[PortId, ...]] = ("wire",)
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ("wire",)
    COUNTERS = ("gptc", "gotc", "bptc", "mptc", "ssvpc", "loopback_packets")
    DROP_REASONS = ("link_down", "rx_disabled", "spoofed_mac", "spoofed_vlan", "vlan_not_allowed",
                    "own_pool_no_lle", "runt", "tx_ring_full", "qdisc_removed")

    def __init__(self, name: str = "nic0", profile: str | Profile = "82599", *,
                 mrqc: int | None = None, packet_buffer_bytes: int | None = None,
                 tx_arbitration: str = "rr", init: bool = True) -> None:
        super().__init__(name)
        self.profile = get_profile(profile)
        p = self.profile
        self.state = NicState.reset(p)
        self.rings = RxRings(f"{name}.rx", p.num_queues,
                             packet_buffer_bytes if packet_buffer_bytes is not None else p.packet_buffer_bytes)
        self.sorter = VmdqSorter(f"{name}.sorter", self.state, self.rings)
        self.irq = Interrupts(f"{name}.irq", p.num_queues)
        self.txa = TxArbiter(f"{name}.tx", self.state, p.num_queues, tx_arbitration)
        self._raised: list[int] = []
        self._tx_gen = -1
        self._wire: list[Frame] = []
        # The TX engine sends a header this pool already sent plainly to the wire without a
        # call (TxArbiter.service's inline); False: every frame through `_tx_frame` (tests).
        self.tx_inline = True
        self._tx_spoofed = [0] * len(self.state.pools)   # per pool: TX security drops
        self._tx_spoofed_bytes = [0] * len(self.state.pools)
        # The graph's view: one core queue per RX ring, ports for the wire and each pool.
        self.rxq = [RxQueueElement(f"{name}.rxq{i}", q, self) for i, q in enumerate(self.rings.queues)]
        npools = len(self.state.pools)
        self._pool_in = {f"pool{p}": p for p in range(npools)}
        self._pool_out = [f"pool{p}" for p in range(npools)]
        self._inputs: tuple[PortId, ...] = ("wire", "host", *self._pool_in)
        self._outputs: tuple[PortId, ...] = ("wire", *self._pool_out)
        self.on_pool_tx: Callable[[int, Batch], None] | None = None   # the host's look at guest TX
        self.tx_qdisc: dict[int, Queue] = {}     # pool -> the policy in front of its TX queue 0
        self.rx_qdisc: dict[int, Queue] = {}     # RX queue -> the policy between its ring and the poll
        # Imported here: registers/pci sit beside the datapath and need this class's API.
        from nicmodel.pci import ConfigSpace
        from nicmodel.registers import RegisterFile
        self.regs = RegisterFile(self)
        self.pci = ConfigSpace.for_profile(p)
        if init:
            self.init_vmdq(mrqc)
        elif mrqc is not None:
            self.set_layout(mrqc)

    # ======================================================================
    # configuration API (every method ends in state.changed())
    # ======================================================================
    def _changed(self) -> None:
        self.state.changed()

    def init_vmdq(self, mrqc: int | None = None, *, def_pool: int = 0, replication: bool = True,
                  vlan_filter: bool = True) -> None:
        """What a PF driver does to bring the port up in VMDq mode.

        VT on, the given MRQC layout, replication on, VLAN filtering on,
        ``def_pool`` as default pool, every pool RX/TX-enabled (the PF owns
        them all until they are given out), every queue enabled with a
        512-descriptor ring and drop enable on (ixgbe forces QDE, E.8).
        Pool filter flags stay off: a pool receives nothing until programmed.
        """
        st = self.state
        self.set_layout(mrqc if mrqc is not None else self.profile.default_mrqc)
        st.vt_en = True
        st.rpl_en = replication
        st.vlan_filter_en = vlan_filter
        st.check_pool(def_pool)
        st.def_pool = def_pool
        st.dis_def_pool = False
        every = (1 << st.num_pools) - 1
        st.vfre = st.vfte = every
        # SSVPC counts every pool's security drops: ixgbe reads SSVPC to report spoofed packets
        # and never writes PFVMECM (reset 0 on the X550); the model's bring-up sets it.
        st.vmecm = every
        for q in self.rings.queues:
            q.set_enabled(True)
            q.drop_en = True
        for tq in self.txa.queues:
            tq.enabled = True
        self._changed()

    def set_layout(self, mrqc: int) -> None:
        """MRQC: pools x queues per pool (82599: 0xB 64x2, 0xA 32x4, 0x8 64x2 without RSS).

        Pool bits for pools the new layout lacks are cleared (`NicState.set_layout`).  As the PF
        driver does next (ixgbe_setup_psrtype), every pool's PSRTYPE.RQPL is set to spread over
        all of its queues when the layout has RSS (log2 of 4, 2 or 1 queues); a VF's pool is
        then its driver's to set (VFPSRTYPE, `set_psrtype`)."""
        lay = self.profile.layout(mrqc)
        rqpl = (lay.queues_per_pool if lay.rss else 1).bit_length() - 1
        for cfg in self.state.pools:
            cfg.psrtype = (cfg.psrtype & ~(7 << 29)) | (rqpl << 29)
        self.state.set_layout(lay)                  # ends with the state's change

    def set_psrtype(self, pool: int, value: int) -> None:
        """PSRTYPE[pool] (a VF's VFPSRTYPE): RQPL in bits 31:29 sets how many of the pool's
        queues RSS spreads over (`NicState.rss_queues`)."""
        self.state.check_pool(pool)
        self.state.pools[pool].psrtype = value & 0xFFFFFFFF
        self._changed()

    def set_vt(self, enabled: bool) -> None:
        """PFVTCTL.VT_ENA; off: a single promiscuous queue (vswitchd's software mode)."""
        self.state.vt_en = enabled
        self._changed()

    def set_replication(self, on: bool) -> None:
        self.state.rpl_en = on
        self._changed()

    def set_vlan_filter(self, on: bool) -> None:
        self.state.vlan_filter_en = on
        self._changed()

    def set_default_pool(self, pool: int, *, disabled: bool = False) -> None:
        self.state.check_pool(pool)
        self.state.def_pool = pool
        self.state.dis_def_pool = disabled
        self._changed()

    def set_multicast_offset(self, mo: int) -> None:
        if mo not in (0, 1, 2, 3):
            raise NicError(f"MCSTCTRL.MO must be 0..3, got {mo}")
        self.state.mo = mo
        self._changed()

    def set_pool_enabled(self, pool: int, *, rx: bool | None = None, tx: bool | None = None) -> None:
        """PFVFRE / PFVFTE bit of a pool."""
        st = self.state
        st.check_pool(pool)
        if rx is not None:
            st.vfre = st.vfre | (1 << pool) if rx else st.vfre & ~(1 << pool)
        if tx is not None:
            st.vfte = st.vfte | (1 << pool) if tx else st.vfte & ~(1 << pool)
        self._changed()

    def set_pool_flags(self, pool: int, **flags: bool) -> None:
        """VMOLR/PFVML2FLT bits: aupe, rompe, rope, bam, mpe, upe, vpe."""
        st = self.state
        st.check_pool(pool)
        cfg = st.pools[pool]
        for k, v in flags.items():
            if k not in POOL_FLAGS:
                raise NicError(f"unknown pool flag {k!r} (known: {', '.join(POOL_FLAGS)})")
            if k in ("upe", "vpe") and v and not self.profile.per_pool_upe:
                raise NicError(f"{self.profile.name} has no per-pool {k.upper()} (X540 and later only; "
                               "ixgbe returns EOPNOTSUPP), nic-model.md E.4", errno.EOPNOTSUPP)
            setattr(cfg, k, bool(v))
        self._changed()

    def set_max_frame(self, pool: int, max_frame: int | None) -> None:
        """Per-pool max frame length with FCS (LPE + RLPML); None: standard 1518."""
        st = self.state
        st.check_pool(pool)
        cfg = st.pools[pool]
        if max_frame is None:
            cfg.lpe, cfg.rlpml = False, 1518
        else:
            if not 64 <= max_frame <= 0x3FFF:
                raise NicError(f"max frame {max_frame} out of range 64..16383 (RLPML is 14 bits)")
            cfg.lpe, cfg.rlpml = True, max_frame
        self._changed()

    # -- filters -----------------------------------------------------------
    def add_mac(self, pool: int, mac: str | bytes) -> int:
        """Exact filter for ``pool`` (RAR + MPSAR bit); returns the RAR index. TableFull when out."""
        self.state.check_pool(pool)
        i = self.state.rar.add(as_mac(mac), pool)
        self._changed()
        return i

    def remove_mac(self, pool: int, mac: str | bytes) -> None:
        self.state.rar.remove(as_mac(mac), pool)
        self._changed()

    def set_pool_mac(self, pool: int, mac: str | bytes | None) -> None:
        """Replace every exact filter of ``pool`` by ``mac`` (MAC reconfiguration)."""
        st = self.state
        st.check_pool(pool)
        new = as_mac(mac) if mac is not None else None
        for old in st.rar.macs_of(pool):
            if old != new:
                st.rar.remove(old, pool)
        if new is not None:
            st.rar.add(new, pool)
        self._changed()

    def add_vlan(self, pool: int, vid: int) -> int:
        """Join VLAN ``vid`` (VLVF entry + VLVFB bit, and the VFTA bit); returns the VLVF index."""
        st = self.state
        st.check_pool(pool)
        i = st.vlvf.add(vid, pool)
        st.vfta.set(vid)
        self._changed()
        return i

    def remove_vlan(self, pool: int, vid: int) -> None:
        st = self.state
        st.vlvf.remove(vid, pool)
        if vid not in st.vlvf.lookup:
            st.vfta.set(vid, False)
        self._changed()

    def set_pool_vlans(self, pool: int, vids: Iterable[int]) -> None:
        want = list(dict.fromkeys(vids))
        for v in self.state.vlvf.vids_of(pool):
            if v not in want:
                self.remove_vlan(pool, v)
        for v in want:
            self.add_vlan(pool, v)
        self._changed()

    def add_multicast(self, group: str | bytes) -> int:
        """Set the MTA bit of a multicast group (shared by every pool, E.2); returns the hash."""
        h = hash12(as_mac(group), self.state.mo)
        self.state.mta.set(h)
        self._changed()
        return h

    def add_multicast_hash(self, h: int) -> None:
        """A VF's SET_MULTICAST sends hashes, not addresses (E.2)."""
        self.state.mta.set(h)
        self._changed()

    def add_unicast_hash(self, mac: str | bytes) -> int:
        h = hash12(as_mac(mac), self.state.mo)
        self.state.uta.set(h)
        self._changed()
        return h

    def set_vfta(self, vid: int, on: bool = True) -> None:
        self.state.vfta.set(vid, on)
        self._changed()

    def set_mirror(self, rule: int, *, dst: int, pools: Iterable[int] = (), vlans: Iterable[int] = (),
                   uplink: bool = False, downlink: bool = False) -> None:
        """Mirror rule 0..3: copy frames for ``pools`` / on ``vlans`` / from or to the wire to ``dst``."""
        st = self.state
        if not 0 <= rule < 4:
            raise NicError(f"mirror rule {rule} out of range 0..3 (four PFMRCTL rules)")
        st.check_pool(dst)
        pools, vlans = list(pools), list(vlans)
        bits = 0
        for v in vlans:
            idx = st.vlvf.index.get(v)
            if idx is None:
                raise NicError(f"VLAN mirroring needs VLAN {v} in the VLVF table (rules name VLVF entries)")
            bits |= 1 << idx
        pm = sum(1 << p for p in pools)
        st.mirror[rule] = MirrorRule(bool(pools), uplink, downlink, bool(vlans), pm, bits, dst)
        self._changed()

    def clear_mirror(self, rule: int) -> None:
        self.state.mirror[rule] = MirrorRule()
        self._changed()

    # -- TX side config ----------------------------------------------------
    def set_loopback(self, veb: bool, lle_pools: Iterable[int] = ()) -> None:
        """PFDTXGSWC.LBE (VEB) and PFVMTXSW.LLE (a pool may receive its own frames)."""
        self.state.veb_en = veb
        self.state.lle = sum(1 << p for p in lle_pools)
        self._changed()

    def set_spoofcheck(self, pool: int, mac: bool = True, vlan: bool = False) -> None:
        if vlan and not mac:
            raise NicError("VLAN anti-spoof requires MAC anti-spoof (VLANAS needs MACAS)")
        self.state.check_pool(pool)
        self.state.pools[pool].spoof_mac = mac
        self.state.pools[pool].spoof_vlan = vlan
        self._changed()

    def set_vmvir(self, pool: int, mode: str, vid: int = 0, qos: int = 0) -> None:
        """PFVMVIR: 'use_desc' | 'always_default' (insert vid/qos) | 'never'."""
        if mode not in VMVIR_MODES:
            raise NicError(f"VMVIR mode {mode!r}: expected one of {VMVIR_MODES}")
        if not 0 <= vid <= 4095 or not 0 <= qos <= 7:
            raise NicError(f"VMVIR vid {vid} / qos {qos} out of range (0..4095 / 0..7)")
        self.state.check_pool(pool)
        cfg = self.state.pools[pool]
        cfg.vmvir_mode, cfg.vmvir_vid, cfg.vmvir_qos = mode, vid, qos
        self._changed()

    def set_tx_weight(self, pool: int, refill: int) -> None:
        """Credit refill of a pool for weighted arbitration, in 64-byte units (1..200).

        200 units (12,800 bytes) is ixgbe's IXGBE_DCB_MAX_CREDIT_REFILL; the register
        (RTTDT1C) has 14 bits, the driver never writes more.
        """
        if not 1 <= refill <= MAX_CREDIT_REFILL:
            raise NicError(f"credit refill {refill} out of range 1..{MAX_CREDIT_REFILL} (64-byte units; "
                           "ixgbe's IXGBE_DCB_MAX_CREDIT_REFILL is 200 = 12,800 bytes)")
        self.state.check_pool(pool)
        self.state.pools[pool].tx_refill = refill
        self._changed()

    def set_tx_arbitration(self, mode: str) -> None:
        """'rr' (round robin between pools) or 'wrr' (DCB-style credits, `set_tx_weight`)."""
        self.txa.set_mode(mode)
        self._changed()

    def set_tx_rate(self, queue: int, rate_bps: int) -> None:
        """Per-queue rate limit (RTTBCNRC); 0 removes it.  Shapes, never drops."""
        self._check_queue(queue)
        speed = self.state.link_speed_bps
        if rate_bps < 0 or rate_bps > speed:
            raise NicError(f"rate {rate_bps} b/s out of range 0..{speed} (the link speed)")
        self.txa.queues[queue].set_rate(rate_bps)
        self._changed()

    def set_pool_tx_rate(self, pool: int, max_tx_rate_mbps: int, min_tx_rate_mbps: int = 0) -> None:
        """As ``ip link set PF vf N max_tx_rate M``: the same factor on each of the pool's queues (E.9).

        Checked as the PF driver's ndo_set_vf_rate does (nic-model.md B "Tx rate limit"):
        ixgbe (82599, X550): link up, linked at 10 Gb/s, min 0, max 0 (no limit) or
        10 < max <= link speed; igb: the 82576 only (EOPNOTSUPP on the i350), min 0, link up,
        0 <= max <= link speed.  Anything else: NicError with EINVAL, nothing changed.
        """
        st = self.state
        st.check_pool(pool)
        prof = self.profile
        speed = st.link_speed_bps // 1_000_000
        drv = prof.driver
        if not prof.vf_rate_limit:
            raise NicError(f"{prof.name}: {drv} sets VF TX rates on the 82576 only (EOPNOTSUPP)",
                           errno.EOPNOTSUPP)
        if min_tx_rate_mbps:
            raise NicError(f"min_tx_rate {min_tx_rate_mbps} Mb/s: not supported by {drv}, must be 0")
        if not st.link_up:
            raise NicError(f"pool {pool}: the link is down; {drv} sets TX rates only with the link up")
        if drv == "ixgbe":
            if speed != 10_000:
                raise NicError(f"pool {pool}: ixgbe sets TX rates only on a 10 Gb/s link (linked at {speed} Mb/s)")
            if max_tx_rate_mbps and not 10 < max_tx_rate_mbps <= speed:
                raise NicError(f"max_tx_rate {max_tx_rate_mbps} Mb/s: ixgbe requires 10 < max <= {speed} "
                               "(the link speed), or 0 for no limit")
        elif not 0 <= max_tx_rate_mbps <= speed:
            raise NicError(f"max_tx_rate {max_tx_rate_mbps} Mb/s out of range 0..{speed} (the link speed)")
        for q in st.pool_queues(pool):
            self.txa.queues[q].set_rate(max_tx_rate_mbps * 1_000_000)
        self._changed()

    def set_link(self, up: bool) -> None:
        """Link state (up/down; the speed is `set_link_speed`)."""
        self.state.link_up = up
        self._changed()

    def set_link_speed(self, mbps: int) -> None:
        """The speed the link runs at, one of the profile's (82599: 100/1000/10000 Mb/s).

        A change clears every per-queue TX rate limit, as ixgbe_check_vf_rate_limit does
        ("Link speed has been changed. VF Transmit rate is disabled", E.9); the wire is
        paced at the new speed.
        """
        prof = self.profile
        if mbps not in prof.link_speeds_mbps:
            raise NicError(f"link speed {mbps} Mb/s: {prof.name} runs at "
                           f"{', '.join(str(v) for v in prof.link_speeds_mbps)} Mb/s")
        st = self.state
        if mbps * 1_000_000 != st.link_speed_bps:
            st.link_speed_bps = mbps * 1_000_000
            for q in self.txa.queues:
                q.set_rate(0)
        self._changed()

    def set_vm_error_count(self, pool: int, on: bool = True) -> None:
        """PFVMECM bit of a pool: whether its TX security drops count in SSVPC."""
        st = self.state
        st.check_pool(pool)
        st.vmecm = st.vmecm | (1 << pool) if on else st.vmecm & ~(1 << pool)
        self._changed()

    def set_rx_enable(self, on: bool) -> None:
        self.state.rx_enable = on
        self._changed()

    # -- queues ------------------------------------------------------------
    def _check_queue(self, q: int) -> None:
        if not 0 <= q < self.profile.num_queues:
            raise NicError(f"queue {q} out of range: {self.profile.name} has {self.profile.num_queues}")

    def set_rings(self, rx: int | None = None, tx: int | None = None, queue: int | None = None) -> None:
        """Ring sizes as ``ethtool -G rx N tx N`` (64..4096), for one queue or all."""
        qs = range(self.profile.num_queues) if queue is None else [queue]
        for n in (rx, tx):
            if n is not None:
                check_ring_size(n)
        for q in qs:
            self._check_queue(q)
            if rx is not None:
                self.rings.queues[q].set_size(rx)
            if tx is not None:
                self.txa.queues[q].set_size(tx)
        if rx is not None:
            self.rings.service()
        self._changed()

    def set_drop_enable(self, queue: int | None, on: bool) -> None:
        """SRRCTL.DROP_EN / PFQDE for one queue, or every queue (None)."""
        qs = range(self.profile.num_queues) if queue is None else [queue]
        for q in qs:
            self._check_queue(q)
            self.rings.queues[q].drop_en = on
        self.rings.service()  # a blocked head may now be dropped instead
        self._changed()

    def set_queue_enabled(self, queue: int, rx: bool | None = None, tx: bool | None = None) -> None:
        self._check_queue(queue)
        if rx is not None:
            self.rings.queues[queue].set_enabled(rx)
            self.rings.service()
        if tx is not None:
            self.txa.queues[queue].enabled = tx
        self._changed()

    def set_vlan_strip(self, queue: int, on: bool) -> None:
        """RXDCTL.VME of one queue (per queue on the 82599)."""
        self._check_queue(queue)
        self.rings.queues[queue].vlan_strip = on
        self._changed()

    def set_coalesce(self, rx_usecs: int | None = None, rx_frames: int | None = None,
                     queue: int | None = None) -> None:
        """Interrupt moderation as ``ethtool -C rx-usecs N rx-frames N``."""
        qs = range(self.profile.num_queues) if queue is None else [queue]
        for q in qs:
            self.irq.set_coalesce(q, rx_usecs, rx_frames)

    # -- one call for a guest port -----------------------------------------
    def program_pool(self, pool: int, mac: str | bytes | None = None, vlan: int | None = None, *,
                     aupe: bool | None = None, bam: bool = True, rompe: bool = False,
                     rope: bool = False, mpe: bool = False, strip_vlan: bool | None = None,
                     max_frame: int | None = None, drop_en: bool = True,
                     multicast: Iterable[str | bytes] = ()) -> None:
        """Bind a guest to ``pool``: its MAC in RAR, its VLAN in VLVF, its filter flags.

        With ``vlan`` set the pool is a port-VLAN pool: untagged frames are not
        accepted (AUPE off, as ``ip link set vf N vlan V`` does) and the tag is
        stripped on its queues; without it, the pool takes untagged frames.
        """
        st = self.state
        st.check_pool(pool)
        self.set_pool_mac(pool, mac)
        self.set_pool_vlans(pool, [] if vlan is None else [vlan])
        self.set_pool_flags(pool, aupe=(vlan is None) if aupe is None else aupe, bam=bam,
                            rompe=rompe, rope=rope, mpe=mpe)
        self.set_max_frame(pool, max_frame)
        strip = (vlan is not None) if strip_vlan is None else strip_vlan
        for q in st.pool_queues(pool):
            self.rings.queues[q].vlan_strip = strip
            self.rings.queues[q].drop_en = drop_en
            self.rings.queues[q].set_enabled(True)
            self.txa.queues[q].enabled = True
        for g in multicast:
            self.add_multicast(g)
        self.set_pool_enabled(pool, rx=True, tx=True)

    def flush_pool(self, pool: int) -> tuple[int, int]:
        """Discard the frames waiting in a pool's RX and TX rings, as a function reset (an SR-IOV
        VF's FLR or VFCTRL.RST) does; returns (RX, TX) frames discarded.  RX frames stay counted
        as received (``flushed`` per queue); TX frames were never sent (``discarded``)."""
        st = self.state
        st.check_pool(pool)
        rx = tx = 0
        for q in st.pool_queues(pool):
            rx += self.rings.queues[q].flush()
            tx += self.txa.queues[q].flush()
            qd = self.rx_qdisc.get(q)
            if qd is not None:           # what its policy held goes too (received, not delivered)
                rest = self.rxq[q].scheduler.take_all()  # type: ignore[attr-defined]
                self.drop_many(rest, "qdisc_removed")
                rx += len(rest)
        self._changed()
        return rx, tx

    def clear_pool(self, pool: int) -> None:
        """Unbind a pool: its filters, VLANs and flags go; its queues stay enabled."""
        self.set_pool_mac(pool, None)
        self.set_pool_vlans(pool, [])
        self.set_pool_flags(pool, aupe=False, bam=False, rompe=False, rope=False, mpe=False)
        self.set_max_frame(pool, None)

    # -- BAR0 through the PCI function ---------------------------------------
    def mmio_write(self, addr: int, value: int) -> bool:
        """A 32-bit memory write on the bus: reaches the registers only inside BAR0 with MEM on."""
        off = self._bar0_offset(addr)
        if off is None:
            return False
        self.regs.write32(off, value)
        return True

    def mmio_read(self, addr: int) -> int:
        """A 32-bit memory read; all-ones when BAR0 does not decode it (as a master abort)."""
        off = self._bar0_offset(addr)
        return 0xFFFFFFFF if off is None else self.regs.read32(off)

    def _bar0_offset(self, addr: int) -> int | None:
        if not self.pci.memory_enabled:
            return None
        base = self.pci.bar_address(0)
        off = addr - base
        return off if base and 0 <= off < self.pci.bar_sizes[0] else None

    # ======================================================================
    # data path
    # ======================================================================
    # -- in a graph ---------------------------------------------------------
    def inputs(self) -> Sequence[PortId]:
        return self._inputs

    def outputs(self) -> Sequence[PortId]:
        return self._outputs

    def parts(self) -> Sequence[Element]:
        return (self.sorter, self.rings, self.irq, self.txa, *self.rxq)

    def added(self, graph: Any) -> None:
        for q in self.rxq:
            graph.connect(q, "out", self, "host")

    def flows(self) -> Sequence[tuple[str, str, str]]:
        """Inside the NIC frames move by calls, not graph links (only each RX queue's ``out``
        is a link, to ``host``): these are the paths, for pictures of the graph."""
        s, r, i, t = self.sorter.name, self.rings.name, self.irq.name, self.txa.name
        st = self.state
        pools = range(len(st.pools))
        return [("in:wire", s, "pool selection" if st.vt_en else "VT off: queue 0"), (s, r, "DMA"),
                *((r, q.name, "ring") for q in self.rxq),
                *((i, q.name, "interrupt") for q in self.rxq),
                *(("in:host", f"out:pool{p}", "its pool") for p in pools),
                *((f"in:pool{p}", t, "TX ring") for p in pools),
                (t, "out:wire", "VMVIR, anti-spoof, wire"),
                *([(t, r, "VEB loopback")] if st.veb_en else [])]

    def describe(self) -> dict[str, Any]:
        st = self.state
        return {"profile": self.profile.name, "vt": st.vt_en, "pools": st.layout.pools,
                "queues": self.profile.num_queues}

    def queue_in_use(self, q: int) -> bool:
        """Whether RX queue ``q`` can receive a frame as the NIC is programmed now: with VT off
        queue 0 only; with VT on, a queue the sorter uses (the first of its pool unless RSS
        spreads over them: PSRTYPE.RQPL) of an RX-enabled pool that something selects (a filter, a VLAN,
        a filter flag, the default pool, a mirror rule's destination)."""
        st = self.state
        if not st.vt_en:
            return q == 0
        p = st.pool_of_queue(q)
        if not (st.vfre >> p) & 1 or st.pool_queues(p).index(q) >= st.rss_queues(p):
            return False
        cfg = st.pools[p]
        return (any(getattr(cfg, k) for k in POOL_FLAGS) or bool(st.rar.macs_of(p)) or bool(st.vlvf.vids_of(p))
                or (p == st.def_pool and not st.dis_def_pool) or any(m.active and m.dst == p for m in st.mirror))

    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:
        if inp == "wire":
            self.rx(batch, now_ns)
        elif inp == "host":
            # A drain of one RX queue: its frames belong to the pool the sorter gave them.
            self.emit(self._pool_out[batch[0].pool], batch, now_ns)
        elif batch:                    # (an empty batch names no queue, and carries nothing)
            pool = self._pool_in[inp]  # type: ignore[index]
            if self.on_pool_tx is not None:
                self.on_pool_tx(pool, batch)
            n = self.tx(pool, batch, now_ns, self.state.tx_index(pool, batch[0].queue))
            if n < len(batch):
                self.drop_many(batch[n:], "tx_ring_full")
            self._tx_kick(now_ns)

    def drain(self, budget: int, now_ns: int) -> int:
        """The TX engine, run by the driver when the graph says the NIC is ready: up to
        ``budget`` frames start by ``now_ns``; returns how many were served."""
        before = self.txa.counters["served_packets"]
        self.tx_service(now_ns, budget)
        self._tx_kick(now_ns)
        return self.txa.counters["served_packets"] - before

    def on_deadline(self, now_ns: int) -> None:
        self.expire(now_ns)
        self._tx_kick(now_ns)

    def _tx_kick(self, now_ns: int) -> None:
        """Tell the graph when the TX engine has a frame to start: now (ready) or later."""
        g = self.graph
        if g is None:
            return
        t = self._tx_next()
        if t is not None:
            if t <= now_ns:
                g.ready(self)
            else:
                g.schedule(self, t)

    def _arm(self) -> None:
        """Ask the graph to wake the NIC for its next interrupt-moderation timer."""
        g = self.graph
        if g is not None:
            t = self.irq.next_deadline_ns()
            if t is not None:
                g.schedule(self, t)

    # The gate of the RX queues (vswitch.core.queues.Gate): interrupts stand between a
    # ring and the driver.
    def enqueued(self, queue: Queue, now_ns: int) -> None:
        """Frames pushed into an RX queue through the graph (not by DMA)."""
        self.rings.touched.add(self.rings.queues[queue.scheduler.index])  # type: ignore[attr-defined]
        self._after(now_ns)

    def drained(self, queue: Queue, n: int, budget: int, now_ns: int) -> None:
        """After a NAPI poll of ``queue``: descriptors back to the packet buffer and to VEB
        loopback held for them; the vector re-arms unless the poll used its whole budget."""
        qi = queue.scheduler.index  # type: ignore[attr-defined]
        if n and self.rings._pb:
            self.rings.service()
        if n and self.txa.blocked:
            self.txa.wake(now_ns)  # descriptors back: VEB loopback held for them may go on
            self._tx_kick(now_ns)
        self.irq.note_poll(qi, n, budget)
        self._after(now_ns)
        if n >= budget:
            if queue.backlog_packets:
                queue.wake(now_ns)  # NAPI keeps polling while the budget runs out
            else:                   # it polls again, finds the ring empty and completes: re-armed
                self.irq.note_poll(qi, 0, budget)
        elif self.rx_qdisc and qi in self.rx_qdisc and queue.backlog_packets:
            queue.wake(now_ns)      # a shaping policy holds frames: polled again when one may leave

    # -- signals ---------------------------------------------------------------
    def _signal(self, now_ns: int) -> list[int]:
        """Interrupts raised by frames written to rings since the last call."""
        touched = self.rings.touched
        if not touched:
            return []
        note = self.irq.note_rx
        raised = [q.index for q in touched if note(q.index, len(q.ring), now_ns)]
        touched.clear()
        return raised

    def _raise(self, raised: list[int], now_ns: int) -> None:
        if not raised:
            return
        if self.graph is None:
            self._raised.extend(raised)
        else:
            for q in raised:
                self.rxq[q].wake(now_ns)

    def _after(self, now_ns: int) -> None:
        """Frames reached rings: raise what moderation allows now, arm the timer for the rest."""
        self._raise(self._signal(now_ns), now_ns)
        self._arm()

    # -- the direct API ----------------------------------------------------------
    def rx(self, frames: Batch, now_ns: int) -> list[int]:
        """Frames from the wire.  Outside a graph: returns the queues whose interrupt is
        pending (this call's and any not yet taken); in a graph those queues become ready."""
        st = self.state
        if not (st.link_up and st.rx_enable):
            self.drop_many(frames, "link_down" if not st.link_up else "rx_disabled")
            return self.take_interrupts()
        self.sorter.sort(frames, now_ns)
        self._after(now_ns)
        return self.take_interrupts()

    def poll(self, queue: int, budget: int = NAPI_BUDGET, now_ns: int = 0) -> list[Frame]:
        """NAPI poll: up to ``budget`` frames of ``queue``; fewer than budget re-arms its interrupt."""
        q = self.rxq[queue]
        frames = q.pull(budget, now_ns)
        self.drained(q, len(frames), budget, now_ns)
        return frames

    def expire(self, now_ns: int) -> list[int]:
        """Fire expired moderation timers.  Outside a graph: returns the queues whose
        interrupt is pending; in a graph they become ready."""
        self._raise(self.irq.expire(now_ns) + self._signal(now_ns), now_ns)
        self._arm()
        return self.take_interrupts()

    def take_interrupts(self) -> list[int]:
        """Interrupts raised and not yet taken (outside a graph; in one, always empty)."""
        out, self._raised = self._raised, []
        return out

    def next_timer_ns(self) -> int | None:
        return self.irq.next_deadline_ns()

    def next_tx_ns(self) -> int | None:
        """When the TX side next has a frame to start (a paced or shaped frame waits until
        then; call `tx_service` at that time).  None: no frame waits on time."""
        return self._tx_next()

    def _tx_next(self) -> int | None:
        t = self.txa.next_ns()
        if self.tx_qdisc:
            nxt = self._tx_qdisc_next(self.txa.run_ns)
            if nxt is not None and (t is None or nxt[0] < t):
                t = nxt[0]
        return t

    def tx(self, pool: int, frames: Batch, now_ns: int, index: int = 0) -> int:
        """A guest hands frames to its pool's TX queue ``index``; returns how many fit."""
        st = self.state
        st.check_pool(pool)
        if not 0 <= index < st.layout.queues_per_pool:
            raise NicError(f"pool {pool} has queues 0..{st.layout.queues_per_pool - 1}, not {index}")
        qd = self.tx_qdisc.get(pool)
        if qd is not None:
            qd.push("in", frames, now_ns)          # it takes, or drops by its own rules, every frame
            self._tx_feed(pool, qd, now_ns)
            return len(frames)
        return self.txa.enqueue(self.profile.queue_of(st.layout, pool, index), frames, now_ns)

    # -- TX queue policies ----------------------------------------------------------------
    def set_tx_qdisc(self, pool: int, scheduler: Scheduler | None) -> None:
        """Put a queue policy (a `Scheduler`: `vswitch.core.policies.build_scheduler`) in front
        of pool ``pool``'s TX queue 0, or remove it (None: the frames it holds go to the ring as
        far as it has room, the rest are dropped, ``qdisc_removed``).

        As a root qdisc above a single-queue device's ring in Linux: ``tx(pool, ...)`` hands the
        frames to the policy (whatever the queue index asked for), which classifies, orders,
        shapes and drops them by its own rules (its counters: ``tx_qdisc_show``); its frames move
        to the TX ring while the ring has free descriptors: at each ``tx``, ``tx_service`` and
        ``drain``, and at each time a shaping policy's head frame becomes eligible (`next_tx_ns`
        and the graph's deadline include it).  The ring's own FIFO follows, and the arbiter
        between pools as before.  Without BQL, a policy orders only what the ring cannot hold:
        a smaller TX ring (``set_rings(tx=...)``) gives it more to decide."""
        st = self.state
        st.check_pool(pool)
        old = self.tx_qdisc.pop(pool, None)
        if old is not None:
            qi = self.profile.queue_of(st.layout, pool, 0)
            tq = self.txa.queues[qi]
            # Everything it holds, shaped or not (tc qdisc del frees it; here it goes on).
            rest = old.pull(old.backlog_packets, 1 << 62)
            n = self.txa.enqueue(qi, rest, self.txa.run_ns) if tq.size > len(tq.ring) else 0
            self.drop_many(rest[n:], "qdisc_removed")
        if scheduler is not None:
            q = Queue(f"{self.name}.pool{pool}.qdisc", scheduler)
            self.tx_qdisc[pool] = q

    def set_rx_qdisc(self, queue: int, scheduler: Scheduler | None) -> None:
        """Put a queue policy (a `Scheduler`) between RX queue ``queue``'s ring and the host's
        NAPI poll, or remove it (None: the frames it holds are dropped, ``qdisc_removed``, as
        ``tc qdisc del`` frees a qdisc's backlog).  A replaced policy goes the same way.

        DMA still fills the ring (size, drop enable, packet buffer as before); each poll takes
        what the ring holds into the policy and returns what the policy lets go, up to the
        budget (`nicmodel.rx_qdisc`).  Its counters: ``rx_qdisc_show`` and the snapshot."""
        self._check_queue(queue)
        el = self.rxq[queue]
        ring = self.rings.queues[queue]
        if self.rx_qdisc.pop(queue, None) is not None:
            old = el.scheduler
            el.scheduler = ring
            self.drop_many(old.take_all(), "qdisc_removed")  # type: ignore[attr-defined]
        if scheduler is not None:
            q = Queue(f"{el.name}.qdisc", scheduler)
            policy = RxPolicy(ring, q)
            policy.queue = el
            el.scheduler = policy
            self.rx_qdisc[queue] = q

    def rx_qdisc_show(self) -> dict[str, Any]:
        """Each RX queue's policy: its kind, parameters and `tc -s qdisc`-style figures."""
        return {str(q): qd.snapshot() for q, qd in sorted(self.rx_qdisc.items())}

    def tx_qdisc_show(self) -> dict[str, Any]:
        """Each pool's TX policy: its kind, parameters and `tc -s qdisc`-style figures."""
        return {str(p): q.snapshot() for p, q in sorted(self.tx_qdisc.items())}

    def _tx_feed(self, pool: int, qd: Queue, now_ns: int) -> int:
        """Move what the pool's policy lets go at ``now_ns`` to its TX ring, as far as it has
        room; returns how many frames moved."""
        qi = self.profile.queue_of(self.state.layout, pool, 0)
        tq = self.txa.queues[qi]
        room = tq.size - len(tq.ring)
        if room > 0 and qd.backlog_packets:
            got = qd.pull(room, now_ns)
            if got:
                return self.txa.enqueue(qi, got, now_ns)
        return 0

    def _tx_qdisc_next(self, after_ns: int) -> tuple[int, int] | None:
        """(time, pool) of the first policy that has a frame for a ring with room, from ``after_ns``."""
        best: tuple[int, int] | None = None
        st = self.state
        for p, qd in self.tx_qdisc.items():
            if not qd.backlog_packets:
                continue
            tq = self.txa.queues[self.profile.queue_of(st.layout, p, 0)]
            if len(tq.ring) >= tq.size:
                continue
            t = qd.next_eligible_ns(after_ns)
            if t is not None:
                t = max(t, after_ns)
                if best is None or t < best[0]:
                    best = (t, p)
        return best

    # -- TX: what the switch does with each frame the arbiter starts -----------------
    def _tx_prepare(self) -> None:
        """Per-generation TX tables: each pool's VMVIR and anti-spoof setting, VEB on or off,
        the downlink mirror's targets; the caches start empty."""
        st = self.state
        if self.sorter._gen != st.generation:
            self.sorter.refresh()
        self._tx_gen = st.generation
        pools = st.pools
        self._vmvir = [VMVIR_MODES.index(c.vmvir_mode) for c in pools]
        self._plain = [m == 0 for m in self._vmvir]     # use_desc: the frame is sent as handed over
        self._spoof = [(2 if c.spoof_vlan else 1) if c.spoof_mac else 0 for c in pools]
        self._rar = st.rar.lookup     # replaced (never edited) by every change, which moves the generation
        self._vlvf = st.vlvf.lookup
        self._link_up = st.link_up
        self._veb_on = st.veb_en and st.link_up and st.rx_enable
        self._veb_plans: list[dict[bytes, VebPlan]] = [{} for _ in pools]
        self._fast: list[dict[bytes, object]] = [{} for _ in pools]
        # what the TX engine looks up inline: the cache of a pool that sends frames as handed over
        self._inline: list[dict[bytes, object] | None] = [
            fast if plain else None for fast, plain in zip(self._fast, self._plain, strict=True)]
        dl = 0
        for r in st.mirror:
            if r.downlink_mirror:
                dl |= 1 << r.dst
        dl &= self.sorter._derived.vfre
        self._dl_targets = self.sorter.targets_for(dl, dl) if dl else None

    def _veb_plan(self, pool: int, d: bytes, tagged: bool) -> VebPlan:
        """VEB (A "TX path" 5) for a frame of ``pool`` to DA/tag:
        (local targets, to the wire, drop reason, wire counter).

        Local copies: the RX selection with the source pool removed unless LLE, the default
        pool for broadcast/multicast only.  Broadcast and multicast also go to the wire.  A
        unicast stays off the wire when it matches the exact filter (MAC and VLAN) of a
        VFRE-enabled pool, the source pool included: to its own MAC with LLE off it goes
        nowhere (``own_pool_no_lle``).
        """
        st = self.state
        der = self.sorter._derived
        da = d[0:6]
        vid = ((d[14] << 8) | d[15]) & 0xFFF if tagged else 0
        P, mirrored = select_pools(st, der, da, tagged, vid, False, pool)
        vfta_miss = tagged and st.vlan_filter_en and not (st.vfta.bits >> vid) & 1
        if vfta_miss:
            P = mirrored = 0
        targets = self.sorter.targets_for(P, mirrored) if P else None
        if da[0] & 1:
            return targets, True, None, "bptc" if da == BROADCAST else "mptc"
        exact = st.rar.lookup.get(da, 0) & der.vfre
        own = not vfta_miss and bool((exact >> pool) & 1)
        if own and st.vlan_filter_en:
            admit = (st.vlvf.lookup.get(vid, 0) | der.vpe) if tagged else der.aupe
            own = bool((admit >> pool) & 1)
        if exact & P or own:
            return targets, False, None if P & ~mirrored else "own_pool_no_lle", None
        return targets, True, None, None

    def _vlan_edit(self, f: Frame, pool: int, mode: int) -> Frame | None:
        """VMVIR (A "TX path" 2): the frame as it leaves the pool, or None if VMVIR drops it."""
        d = f.data
        tagged = d[12:14] == _TPID
        if not mode:  # use_desc: the descriptor asks for insertion
            return f.copy(push_tag(d, f.vlan, f.pcp)) if f.vlan is not None and not tagged else f
        if tagged:    # always_default / never: the guest's own tag is not allowed
            self._security_drop(f, pool, "vlan_not_allowed")
            return None
        if mode == 1:  # always_default: PFVMVIR's TCI, PCP = qos, DEI 0 (push_tag takes PCP<<1 | DEI)
            cfg = self.state.pools[pool]
            return f.copy(push_tag(d, cfg.vmvir_vid, cfg.vmvir_qos << 1))
        return f

    def _security_drop(self, f: Frame, pool: int, reason: str) -> bool:
        """A TX security drop (anti-spoof, or a tag VMVIR forbids): SSVPC counts it when the
        pool's PFVMECM bit is set (X550 8.2.2.17.92 / 8.2.2.22.21); the pool always does."""
        self._tx_spoofed[pool] += 1
        self._tx_spoofed_bytes[pool] += len(f.data)
        if (self.state.vmecm >> pool) & 1:
            self.counters["ssvpc"] += 1
        self.drop(f, reason)
        return True

    @staticmethod
    def _held(copies: list[tuple[RxQueue, Frame]]) -> bool:
        """A copy for a full queue without drop enable: the frame must wait (back-pressure)."""
        return any(len(q.ring) >= q.limit and q.enabled and not q.drop_en for q, _ in copies)

    def _tx_frame(self, f: Frame, pool: int, start_ns: int) -> bool:
        """One frame the arbiter starts: VMVIR insertion, anti-spoof (E.3: insertion first),
        then VEB loopback, the downlink mirror and the wire.  False: it must wait.

        A frame whose header (DA, SA, type or tag) this pool already sent plainly to the wire
        this generation (anti-spoof passed, no local copy, no mirror) never gets here: the
        arbiter sends it inline (`tx_service`); this fills that cache.

        VEB loopback into a queue that is full and has drop enable off does not lose the
        frame: it stays at the head of its TX queue (that queue blocks, the others go on)
        until the receiver returns descriptors; it also waits while the RX packet buffer
        holds frames from the wire (LAN RX has priority over loopback, 7.8.3.7).  A copy
        for a full queue with drop enable is lost and counted in qprdc, as on RX.
        """
        key = f.data[:16]
        if len(key) < 16 and (len(key) < 14 or key[12:14] == _TPID):
            self.drop(f, "runt")  # no complete header (or tag) to switch on
            return True
        mode = self._vmvir[pool]
        g = f
        if mode or f.vlan is not None:
            edited = self._vlan_edit(f, pool, mode)
            if edited is None:
                return True
            g = edited
        d = g.data
        tagged = d[12:14] == _TPID
        sp = self._spoof[pool]
        if sp:
            if not (self._rar.get(d[6:12], 0) >> pool) & 1:
                return self._security_drop(g, pool, "spoofed_mac")
            if sp == 2 and tagged and not (self._vlvf.get(((d[14] << 8) | d[15]) & 0xFFF, 0) >> pool) & 1:
                return self._security_drop(g, pool, "spoofed_vlan")
        if self._veb_on:
            plans = self._veb_plans[pool]
            pkey = d[0:6] + d[14:16] if tagged else d[0:6]
            plan = plans.get(pkey)
            if plan is None:
                plan = plans[pkey] = self._veb_plan(pool, d, tagged)
        else:
            plan = (None, True, None, None if not d[0] & 1 else "bptc" if d[0:6] == BROADCAST else "mptc")
        targets, to_wire, reason, mc = plan
        dl = self._dl_targets
        if targets is None and to_wire and mc is None and dl is None and self._link_up:
            if g is f:  # sent as handed over: the next frame with this header takes the inline path
                fast = self._fast[pool]
                if len(fast) >= FAST_MAX:
                    fast.clear()
                fast[key] = _WIRE
            self._wire.append(g)
            return True
        flen = len(d) + (0 if tagged else 4)
        copies = self.sorter._copies(g, d, tagged, flen, targets) if targets is not None else []
        mirror = self.sorter._copies(g, d, tagged, flen, dl) if to_wire and dl is not None else []
        if (copies or mirror) and (self.rings._pb or self._held(copies + mirror)):
            return False
        if copies:
            self.counters["loopback_packets"] += 1
            self.sorter.counters["copies"] += len(copies)
            self.rings.deliver(g, copies, len(d), start_ns)
        if reason is not None:
            self.drop(g, reason)
            return True
        if to_wire:
            if not self._link_up:
                self.drop(g, "link_down")
                return True
            self._wire.append(g)
            if mc:
                self.counters[mc] += 1
            if mirror:
                self.sorter.counters["copies"] += len(mirror)
                self.rings.deliver(g, mirror, len(d), start_ns)
        return True

    def tx_service(self, now_ns: int, limit: int | None = None) -> list[Frame]:
        """Run the TX side up to ``now_ns``: frames for the wire (also emitted on ``wire``),
        each with ``ts_ns`` = the time its transmission started."""
        if self._tx_gen != self.state.generation:
            self._tx_prepare()
        wire: list[Frame] = []
        self._wire = wire
        inline = (self._inline, wire, _WIRE) if self.tx_inline else None
        if self.tx_qdisc:
            # The policies' frames reach their rings at the time each may leave (a shaper's),
            # the engine run up to that time first so the ring has the room it had then.
            while (nxt := self._tx_qdisc_next(self.txa.run_ns)) is not None and nxt[0] <= now_ns:
                left = None if limit is None else limit - len(wire)
                if left is not None and left <= 0:
                    break
                self.txa.service(nxt[0], left, self._tx_frame, inline)
                if self.txa.run_ns < nxt[0] or not self._tx_feed(nxt[1], self.tx_qdisc[nxt[1]], nxt[0]):
                    break            # the budget stopped the engine, or nothing moved
            limit = None if limit is None else limit - len(wire)
        if limit is None or limit > 0:
            self.txa.service(now_ns, limit, self._tx_frame, inline)
        if self.tx_qdisc:
            for p, qd in self.tx_qdisc.items():
                self._tx_feed(p, qd, now_ns)
        if wire:
            c = self.counters
            c["gptc"] += len(wire)
            c["gotc"] += sum(map(len, map(_DATA, wire)))
        self._after(now_ns)
        self.emit("wire", wire, now_ns)
        return wire

    # ======================================================================
    # counters and state
    # ======================================================================
    def _pools_counters(self) -> dict[str, dict[str, int]]:
        st = self.state
        out = {}
        for p in range(st.num_pools):
            qs = st.pool_queues(p)
            rx = [self.rings.queues[q] for q in qs]
            tx = [self.txa.queues[q] for q in qs]
            out[str(p)] = {
                "gprc": sum(q.rx_packets for q in rx), "gorc": sum(q.rx_bytes for q in rx),
                "mprc": sum(q.rx_multicast for q in rx),
                "gptc": sum(q.tx_packets for q in tx), "gotc": sum(q.tx_bytes for q in tx),
                "rx_dropped": sum(q.rx_dropped for q in rx),
                "tx_spoofed": self._tx_spoofed[p],
            }
        return out

    def snapshot(self) -> dict[str, Any]:
        """Every counter, nested: port, pools, queues, interrupts, drops by reason.

        In a graph, whose snapshot has each part already, this is the NIC's own element
        counters and drops plus the datasheet views (port, pools, queues, interrupts) and
        ``all_drops`` (every part's drops by reason); alone, it also nests its parts'."""
        s, r, i = self.sorter.counters, self.rings.counters, self.irq.counters
        port = {
            "gprc": r["gprc"], "gorc": r["gorc"], "bprc": s["bprc"], "mprc": s["mprc"],
            "gptc": self.counters["gptc"], "gotc": self.counters["gotc"],
            "bptc": self.counters["bptc"], "mptc": self.counters["mptc"],
            "roc": s["roc"], "ruc": s["ruc"], "mpc": r["mpc"], "qprdc": r["qprdc"],
            "ssvpc": self.counters["ssvpc"],
        }
        queues = self.rings.queue_counters()
        queues.update(self.txa.queue_counters())
        drops: dict[str, int] = {}
        for el in (self.sorter, self.rings, self, *self.tx_qdisc.values(), *self.rx_qdisc.values()):
            for k, v in el.drops.items():
                drops[k] = drops.get(k, 0) + v
        views = {
            "profile": self.profile.name,
            "port": port,
            "pools": self._pools_counters(),
            "queues": dict(sorted(queues.items(), key=lambda kv: (int(kv[0][1:].split("_")[0]), kv[0]))),
            "interrupts": {"interrupts": i["interrupts"], "polls": i["polls"],
                           "poll_frames": i["poll_frames"], "budget_exhausted": i["budget_exhausted"]},
        }
        if self.tx_qdisc:
            views["tx_qdisc"] = self.tx_qdisc_show()
        if self.rx_qdisc:
            views["rx_qdisc"] = self.rx_qdisc_show()
        if self.graph is not None:
            return Element.snapshot(self) | views | {"all_drops": drops}
        return views | {
            "drops": drops,
            "elements": {el.name: el.snapshot() for el in (self.sorter, self.rings, self.irq, self.txa)}
                        | {self.name: Element.snapshot(self)},
        }

    def config(self) -> dict[str, Any]:
        """Programmed state only (no counters): equal for register- and API-programmed NICs."""
        st = self.state
        pools = {}
        for p in range(st.num_pools):
            cfg = st.pools[p]
            pools[str(p)] = {
                "macs": [mac_str(m) for m in st.rar.macs_of(p)],
                "vlans": st.vlvf.vids_of(p),
                "flags": [k for k in POOL_FLAGS if getattr(cfg, k)],
                "max_frame": cfg.max_frame,
                "rx_enabled": bool((st.vfre >> p) & 1), "tx_enabled": bool((st.vfte >> p) & 1),
                "queues": st.pool_queues(p),
                "vmvir": {"mode": cfg.vmvir_mode, "vid": cfg.vmvir_vid, "qos": cfg.vmvir_qos},
                "spoofchk": {"mac": cfg.spoof_mac, "vlan": cfg.spoof_vlan},
                "tx_refill": cfg.tx_refill,
                "lle": bool((st.lle >> p) & 1),
                "error_count": bool((st.vmecm >> p) & 1),
            }
        rings = {}
        for q in range(self.profile.num_queues):
            rq, tq = self.rings.queues[q], self.txa.queues[q]
            rings[str(q)] = {"pool": st.pool_of_queue(q), "rx": rq.config(), "tx": tq.config()}
        return {
            "profile": self.profile.name,
            "mode": {"vt_enabled": st.vt_en, "replication": st.rpl_en, "mrqc": st.layout.mrqc,
                     "pools": st.layout.pools, "queues_per_pool": st.layout.queues_per_pool,
                     "rss": st.layout.rss, "default_pool": st.def_pool,
                     "default_pool_disabled": st.dis_def_pool, "vlan_filter": st.vlan_filter_en,
                     "multicast_offset": st.mo, "veb": st.veb_en, "link_up": st.link_up,
                     "link_speed_mbps": st.link_speed_bps // 1_000_000,
                     "rx_enable": st.rx_enable, "tx_enable": st.tx_enable,
                     "tx_arbitration": self.txa.mode},
            "filters": {
                "rar": [{"index": i, "mac": mac_str(st.rar.mac[i]), "valid": st.rar.valid[i],
                         "pools": bits_of(st.rar.pools[i])}
                        for i in range(st.rar.size) if st.rar.valid[i] or st.rar.pools[i]],
                "rar_size": st.rar.size,
                "vlvf": [{"index": i, "vid": st.vlvf.vid[i], "pools": bits_of(st.vlvf.pools[i])}
                         for i in range(st.vlvf.size) if st.vlvf.valid[i]],
                "vlvf_size": st.vlvf.size,
                "mta": st.mta.set_bits(), "uta": st.uta.set_bits(), "vfta": st.vfta.set_bits(),
            },
            "mirror": [{"rule": k, "pool": r.pool_mirror, "uplink": r.uplink_mirror,
                        "downlink": r.downlink_mirror, "vlan": r.vlan_mirror,
                        "pools": bits_of(r.pools), "vlvf": bits_of(r.vlvf_bits), "dst": r.dst}
                       for k, r in enumerate(st.mirror) if r.active],
            "pools": pools,
            "rings": rings,
            "coalesce": {str(v.queue): {"rx_usecs": v.rx_usecs, "rx_frames": v.rx_frames}
                         for v in self.irq.vectors},
        }

    def show(self) -> dict[str, Any]:
        """Everything ``vswitchctl nic show`` renders: config (pools, filters, rings) and counters."""
        return self.config() | {"counters": self.snapshot(),
                                "packet_buffer": {"size": self.rings.packet_buffer_bytes,
                                                  "used": self.rings.packet_buffer_used,
                                                  "blocked": self.rings.blocked}}



class RxQueueElement(Queue):
    """An RX ring as a queue of the graph: its scheduler is the ring (`RxQueue`), its gate
    the NIC (interrupts).  Its snapshot counts what DMA wrote, which bypasses ``push``."""

    def __init__(self, name: str, ring: RxQueue, nic: Nic) -> None:
        super().__init__(name, ring, gate=nic)
        self.ring = ring
        self.nic = nic

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        r = self.ring
        d.update({"queue": r.index, "pool": self.nic.state.pool_of_queue(r.index), "ring_size": r.size,
                  "idle": not r.rx_packets and not self.backlog_packets and not self.nic.queue_in_use(r.index)})
        return d

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        r = self.ring
        snap["enqueued"] = r.rx_packets
        snap["max_depth"] = max(snap["max_depth"], len(r.ring))
        snap["rx_dropped"] = r.rx_dropped
        snap.pop("scheduler", None)
        snap.update(r.config())
        return snap
