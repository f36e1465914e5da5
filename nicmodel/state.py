"""The programmable state of the port: the one thing BAR0 writes and the Python API both change.

`NicState` holds the shared tables (`tables.py`), the VT control bits, the
per-pool L2 filter config and the mirror rules.  It knows nothing of rings,
time or frames.  Every mutation ends with ``changed()``, which bumps
``generation``; the sorter rebuilds its derived bitmaps and drops its plan
cache when the generation moves, so a register write and an API call can never
leave the datapath with stale state.

Names follow nic-model.md section A:

``PFVTCTL``  vt_en, rpl_en (replication), def_pool, dis_def_pool
``PFVFRE`` / ``PFVFTE``  vfre / vfte pool bitmaps (RX / TX enable)
``PFVMTXSW`` lle bitmap (local loopback of a pool's own frames)
``PFVMECM`` vmecm bitmap (pools whose TX security drops count in SSVPC)
``PFDTXGSWC.LBE`` veb_en;  ``VLNCTRL.VFE`` vlan_filter_en;  ``MCSTCTRL.MO`` mo
``VMOLR`` / ``PFVML2FLT`` per pool: AUPE ROMPE ROPE BAM MPE (UPE VPE: X540+), LPE, RLPML
``PFVMVIR`` per pool VLAN insertion; ``PFVFSPOOF`` per pool MAC/VLAN anti-spoof
``PSRTYPE`` per pool: RQPL (bits 31:29), how many of the pool's queues RSS spreads over
``PFMRCTL/PFMRVM/PFMRVLAN`` four mirror rules

Pool bits for pools the current layout does not have (a 64-bit register written
on an 8-pool 82576, or pool 40 left over after a switch to 32 x 4) are ignored
wherever pools are selected (the sorter masks with the layout), and
``set_layout`` clears them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nicmodel.profiles import Profile, VmdqLayout
from nicmodel.tables import HashTable, NicError, RarTable, VlvfTable

__all__ = ["PoolConfig", "MirrorRule", "NicState", "VMVIR_MODES", "MAX_POOLS", "STD_MAX_FRAME"]

MAX_POOLS = 64
STD_MAX_FRAME = 1518  # with FCS; used when LPE is off
VMVIR_MODES = ("use_desc", "always_default", "never")


@dataclass(slots=True)
class PoolConfig:
    """VMOLR/PFVML2FLT, PFVMVIR and anti-spoof bits of one pool (reset value: all off)."""

    aupe: bool = False   # accept untagged frames (when VLAN filtering is on)
    rompe: bool = False  # accept multicast on an MTA hash hit, only without an exact match
    rope: bool = False   # accept unicast on a UTA hash hit, only without an exact match
    bam: bool = False    # accept broadcast
    mpe: bool = False    # multicast promiscuous
    upe: bool = False    # unicast promiscuous (X540+ only)
    vpe: bool = False    # VLAN promiscuous (X540+ only)
    lpe: bool = False    # long packets: RLPML instead of 1518
    rlpml: int = STD_MAX_FRAME
    vmvir_mode: str = "use_desc"
    vmvir_vid: int = 0
    vmvir_qos: int = 0
    spoof_mac: bool = False
    spoof_vlan: bool = False
    tx_refill: int = 1   # DCB credit refill, 64-byte units (weighted TX arbitration)
    # PSRTYPE as written; RQPL (31:29) = log2 of the queues RSS spreads the pool's frames over
    # (reset 0: one queue).  The header-split bits are stored, not modelled.
    psrtype: int = 0

    @property
    def max_frame(self) -> int:
        return self.rlpml if self.lpe else STD_MAX_FRAME


@dataclass(slots=True)
class MirrorRule:
    """One of the four PFMRCTL rules: which traffic is copied to ``dst`` pool."""

    pool_mirror: bool = False      # VPME: frames going to any pool in ``pools``
    uplink_mirror: bool = False    # UPME: everything received from the wire
    downlink_mirror: bool = False  # DPME: everything sent to the wire
    vlan_mirror: bool = False      # VLME: frames whose VLVF index is in ``vlvf_bits``
    pools: int = 0
    vlvf_bits: int = 0
    dst: int = 0

    @property
    def active(self) -> bool:
        return self.pool_mirror or self.uplink_mirror or self.downlink_mirror or self.vlan_mirror


@dataclass
class NicState:
    profile: Profile
    layout: VmdqLayout
    rar: RarTable
    vlvf: VlvfTable
    mta: HashTable = field(default_factory=lambda: HashTable("MTA"))
    uta: HashTable = field(default_factory=lambda: HashTable("UTA"))
    vfta: HashTable = field(default_factory=lambda: HashTable("VFTA"))
    mo: int = 0
    vlan_filter_en: bool = False
    vt_en: bool = False
    rpl_en: bool = False
    def_pool: int = 0
    dis_def_pool: bool = False
    vfre: int = 0
    vfte: int = 0
    lle: int = 0
    vmecm: int = 0                    # PFVMECM: pools whose security drops SSVPC counts (reset 0)
    veb_en: bool = False
    link_up: bool = True
    link_speed_bps: int = 0          # reset() sets the profile's speed
    rx_enable: bool = True
    tx_enable: bool = True
    pools: list[PoolConfig] = field(default_factory=lambda: [PoolConfig() for _ in range(MAX_POOLS)])
    mirror: list[MirrorRule] = field(default_factory=lambda: [MirrorRule() for _ in range(4)])
    generation: int = 0

    @classmethod
    def reset(cls, profile: Profile) -> NicState:
        """Hardware reset values: VT off, every table empty, every pool bit clear."""
        return cls(profile=profile, layout=profile.layout(profile.default_mrqc),
                   rar=RarTable(profile.rar_entries, profile.name),
                   vlvf=VlvfTable(profile.vlvf_entries, profile.name),
                   link_speed_bps=profile.link_speed_bps)

    def changed(self) -> None:
        self.generation += 1

    def set_layout(self, layout: VmdqLayout) -> None:
        """MRQC: a new pools x queues layout.  Pool bits for pools it does not have are cleared
        (VFRE, VFTE, LLE, PFVMECM, RAR/MPSAR and VLVFB pool bits, mirror rules); a mirror rule whose
        destination pool is gone is switched off; an exact filter left with no pool is freed.
        SR-IOV switches the 82599 between 64x2 and 32x4 when NumVFs changes."""
        self.layout = layout
        mask = (1 << layout.pools) - 1
        self.vfre &= mask
        self.vfte &= mask
        self.lle &= mask
        self.vmecm &= mask
        self.rar.mask_pools(mask)
        self.vlvf.mask_pools(mask)
        for k, r in enumerate(self.mirror):
            if r.dst >= layout.pools:
                self.mirror[k] = MirrorRule()
            else:
                r.pools &= mask
        self.changed()

    @property
    def num_pools(self) -> int:
        return self.layout.pools

    def check_pool(self, pool: int) -> None:
        if not 0 <= pool < self.layout.pools:
            raise NicError(f"pool {pool} out of range: {self.profile.name} in MRQC mode "
                           f"{self.layout.mrqc:#x} has {self.layout.pools} pools")

    def pool_queues(self, pool: int) -> list[int]:
        lay = self.layout
        return [self.profile.queue_of(lay, pool, i) for i in range(lay.queues_per_pool)]

    def rss_queues(self, pool: int) -> int:
        """How many of ``pool``'s queues RSS spreads its frames over: 1 when the layout has no
        RSS, else 2**PSRTYPE.RQPL capped at the queues the pool has (the rest see nothing)."""
        lay = self.layout
        if not lay.rss:
            return 1
        return min(lay.queues_per_pool, 1 << (self.pools[pool].psrtype >> 29 & 7))

    def tx_index(self, pool: int, q: int) -> int:
        """The index inside ``pool`` of NIC queue ``q`` when it is one of the pool's, else 0."""
        lay = self.layout
        if not 0 <= q < self.profile.num_queues or self.pool_of_queue(q) != pool:
            return 0
        return q // lay.pools if self.profile.interleaved else q % lay.queues_per_pool

    def pool_of_queue(self, q: int) -> int:
        lay = self.layout
        if self.profile.interleaved:
            return q % lay.pools
        return q // lay.queues_per_pool
