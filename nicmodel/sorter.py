"""VMDq sorter: receive pool selection and replication (nic-model.md A "RX pool selection").

Element `VmdqSorter`
    input ``in``: frames from the wire (bytes as received, FCS not included,
    802.1Q tag still in ``data``).  No graph outputs: the sorter hands each
    frame and its per-pool copies to the RX rings (`rings.RxRings.deliver`),
    as the NIC's DMA engine does; frames reach software by ``Nic.poll``.

Order of operations for one frame (``select`` follows section A line by line):

0. runt (< 14 bytes) -> drop ``runt`` (RUC).  Stage-1 global VLAN filter:
   VLAN filtering on and the VID's VFTA bit clear -> drop ``vfta_miss``
   (no hardware counter; QEMU counts nothing either).
1. ``P = MPSAR`` of the exact RAR match (unicast or multicast DA); ``P &= VFRE``.
2. broadcast: ``P |= BAM pools``.
3. unicast, ``P == 0`` and UTA[hash] set: ``P |= ROPE pools``.
4. multicast (not broadcast), ``P == 0`` and MTA[hash] set: ``P |= ROMPE pools``.
5. multicast: ``P |= MPE pools``; unicast: ``P |= UPE pools`` (X540+ only).
6. VLAN step (VLNCTRL.VFE): tagged -> ``P &= VLVFB[vid] | VPE pools``;
   untagged -> ``P &= AUPE pools``.
7. ``P == 0`` and not DIS_DEF_POOL -> ``P = {def_pool}``.
8. ``P &= VFRE; P |= mirror targets(P); P &= VFRE``.
9. ``P == 0`` -> drop ``no_pool``.
10. per pool: frame longer than the pool's max frame -> that copy is skipped
    (``oversize_copies``); oversize for every pool -> drop ``oversize`` (ROC).
11. per copy: queue = pool base + RSS index; VLAN strip by *that queue's*
    setting (E.3); enqueue by that queue's drop policy (rings.py).

Choices where the reference is silent or unverified (tested, and listed in
docs/nicmodel.md):

* "broadcast" is not "multicast" for steps 4-5: the replication table gives
  broadcast to BAM pools and exact-match owners only.
* Steps 3-4 test ``P == 0`` *after* the VFRE mask, as the pseudocode does: an
  exact match whose pools are all RX-disabled does not shadow the hash.
* Replication off (PFVTCTL.RPL_EN = 0): broadcast and multicast go to
  ``def_pool`` only (dropped with DIS_DEF_POOL); unicast runs steps 1-7 and
  goes to the lowest-numbered pool left.  Mirroring still applies.
* Max frame length counts the FCS (+4) and not a VLAN tag, as ixgbe's
  ``max_frame = mtu + ETH_HLEN + ETH_FCS_LEN`` with VLAN-aware RX.
* RSS inside a pool: Toeplitz and RETA are not modelled; the index is
  (IPv4 src ^ dst ^ ports) mod queues-per-pool for IPv4, else 0.

Selection depends only on (DA, tag), so results are kept in a plan cache
keyed by the DA (plus the TCI for tagged frames), emptied whenever
`NicState.generation` moves and when it reaches ``CACHE_MAX`` entries.

Counters: ``frames`` (offered), ``copies`` (per-pool copies made),
``mirrored_copies``, ``oversize_copies``, ``ruc``, ``roc``, ``bprc``,
``mprc`` (port-level broadcast / multicast received), ``cache_misses``.
Drop reasons: ``runt``, ``vfta_miss``, ``no_pool``, ``oversize``.
"""

from __future__ import annotations

from typing import ClassVar

from nicmodel.rings import RxQueue, RxRings
from nicmodel.state import NicState
from nicmodel.tables import hash12
from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import BROADCAST, Frame

__all__ = ["VmdqSorter", "PoolTarget", "select_pools", "bits_of"]

CACHE_MAX = 65536
_TPID = b"\x81\x00"
_IPV4 = b"\x08\x00"
# IP protocols whose ports `rss_index` hashes (TCP, UDP), by protocol number: a tuple index
# is cheaper per frame than ``in (6, 17)``, which compares with 6 before it finds 17
_PORTS = tuple(p in (6, 17) for p in range(256))


def bits_of(bitmap: int) -> list[int]:
    """Set bit positions of ``bitmap``, lowest first."""
    out = []
    while bitmap:
        low = bitmap & -bitmap
        out.append(low.bit_length() - 1)
        bitmap ^= low
    return out


class Derived:
    """Per-flag pool bitmaps (BAM, ROPE, ...) computed once per state generation."""

    __slots__ = ("bam", "rope", "rompe", "mpe", "upe", "aupe", "vpe", "all_pools", "vfre")

    def __init__(self, st: NicState) -> None:
        n = st.num_pools
        pools = st.pools[:n]

        def bm(flag: str) -> int:
            return sum(1 << i for i, p in enumerate(pools) if getattr(p, flag))
        self.bam, self.rope, self.rompe, self.mpe = bm("bam"), bm("rope"), bm("rompe"), bm("mpe")
        self.aupe = bm("aupe")
        # UPE/VPE exist on X540 and later only (E.4); elsewhere they read as 0.
        self.upe = bm("upe") if st.profile.per_pool_upe else 0
        self.vpe = bm("vpe") if st.profile.per_pool_upe else 0
        self.all_pools = (1 << n) - 1
        # VFRE bits of pools the layout lacks are ignored (hardware ignores them; no IndexError)
        self.vfre = st.vfre & self.all_pools


def mirror_targets(st: NicState, P: int, tagged: bool, vid: int, from_wire: bool) -> int:
    """Pools that get a mirror copy of a frame going to pools ``P`` (PFMRCTL rules)."""
    add = 0
    for r in st.mirror:
        if not r.active:
            continue
        if (r.pool_mirror and P & r.pools) or (r.uplink_mirror and from_wire):
            add |= 1 << r.dst
        elif r.vlan_mirror and tagged:
            idx = st.vlvf.index.get(vid)
            if idx is not None and (r.vlvf_bits >> idx) & 1:
                add |= 1 << r.dst
    return add


def select_pools(st: NicState, d: Derived, da: bytes, tagged: bool, vid: int,
                 from_wire: bool = True, src_pool: int = -1) -> tuple[int, int]:
    """Pool bitmap for a frame, in the hardware order of nic-model.md section A.

    Returns ``(P, mirrored)`` where ``mirrored`` are the pools added by step 8
    only.  ``src_pool >= 0`` selects for VEB loopback of a frame sent by that
    pool (A "TX path" 5): the default pool serves broadcast/multicast only and
    the source pool is removed unless its LLE bit is set.
    """
    vfre = d.vfre
    is_bc = da == BROADCAST
    is_mc = (da[0] & 1) == 1 and not is_bc
    is_uc = not (da[0] & 1)
    if not st.rpl_en:
        return _select_no_replication(st, d, da, tagged, vid, from_wire, src_pool, is_uc)
    P = st.rar.lookup.get(da, 0)                                   # 1. exact RAR / MPSAR
    P &= vfre
    if is_bc:                                                      # 2. broadcast
        P |= d.bam
    if is_uc and P == 0 and st.uta.bits >> hash12(da, st.mo) & 1:  # 3. UTA hash, no exact match
        P |= d.rope
    if is_mc and P == 0 and st.mta.bits >> hash12(da, st.mo) & 1:  # 4. MTA hash, no exact match
        P |= d.rompe
    if is_mc:                                                      # 5. promiscuous
        P |= d.mpe
    if is_uc:
        P |= d.upe
    if st.vlan_filter_en:                                          # 6. VLAN after MAC
        if tagged:
            P &= st.vlvf.lookup.get(vid, 0) | d.vpe
        else:
            P &= d.aupe
    if src_pool >= 0 and not (st.lle >> src_pool) & 1:
        P &= ~(1 << src_pool)
    if P == 0 and not st.dis_def_pool and (src_pool < 0 or not is_uc):  # 7. default pool
        P = 1 << st.def_pool
        if src_pool == st.def_pool and not (st.lle >> src_pool) & 1:
            P = 0
    P &= vfre                                                      # 8. mirroring
    m = mirror_targets(st, P, tagged, vid, from_wire) & vfre & ~P
    return P | m, m


def _select_no_replication(st: NicState, d: Derived, da: bytes, tagged: bool, vid: int,
                           from_wire: bool, src_pool: int, is_uc: bool) -> tuple[int, int]:
    """PFVTCTL.RPL_EN = 0: exactly one pool (model's choice, see module docstring)."""
    if not is_uc:
        P = 0 if st.dis_def_pool else 1 << st.def_pool
    else:
        saved = st.rpl_en
        st.rpl_en = True
        try:
            P, _ = select_pools(st, d, da, tagged, vid, False, src_pool)
        finally:
            st.rpl_en = saved
        P &= -P  # lowest set bit
    if src_pool >= 0 and 1 << src_pool == P and not (st.lle >> src_pool) & 1:
        P = 0
    P &= d.vfre
    m = mirror_targets(st, P, tagged, vid, from_wire) & d.vfre & ~P
    return P | m, m


class PoolTarget:
    """One pool a (DA, tag) selects: the queues RSS spreads its frames over (one without RSS,
    else as PSRTYPE.RQPL says) and its max frame length."""

    __slots__ = ("pool", "max_len", "queues", "q0", "nq", "mirror")

    def __init__(self, pool: int, max_len: int, queues: list[RxQueue], mirror: bool) -> None:
        self.pool = pool
        self.max_len = max_len
        self.queues = tuple(queues)
        self.q0 = queues[0]
        self.nq = len(queues)
        self.mirror = mirror
        for q in queues:        # every frame this target writes is at most max_len long
            if max_len > q.len_bound:
                q.len_bound = max_len


def rss_index(data: bytes, n: int) -> int:
    """Queue index inside a pool: a cheap stand-in for Toeplitz + RETA.

    IPv4: low octets of source and destination address, xor the low octets of
    the TCP/UDP ports when the header has no options; anything else: index 0.
    Deterministic, and a flow always lands on the same queue.
    """
    off = 16 if data[12:14] == _TPID else 12
    if data[off:off + 2] != b"\x08\x00" or len(data) < off + 26:
        return 0
    h = data[off + 17] ^ data[off + 21]
    if data[off + 2] == 0x45 and _PORTS[data[off + 11]]:
        h ^= data[off + 23] ^ data[off + 25]
    return h % n


def rss_table(queues: tuple[RxQueue, ...]) -> tuple[RxQueue, ...]:
    """The queue `rss_index`'s hash picks, for every value the hash takes (an xor of octets:
    0..255): ``table[h]`` is ``queues[h % len(queues)]``, so the fast path does neither the
    modulo nor the ``len``."""
    return tuple(queues[h % len(queues)] for h in range(256))


class FastTarget:
    """Cached plan of a unicast (DA, tag) key that selects exactly one pool (RSS picks the queue).

    ``rss``: None without RSS (every frame to ``q``), else the pool's `rss_table`; rebuilt with
    the plan whenever the NIC's state changes (the sorter's ``refresh``)."""

    __slots__ = ("q", "rss", "pool", "lim", "tagged")

    def __init__(self, t: PoolTarget, tagged: bool) -> None:
        self.q = t.q0
        self.rss = rss_table(t.queues) if t.nq > 1 else None
        self.pool = t.pool
        # data length limit: max frame counts the FCS (+4) but not a VLAN tag (-4)
        self.lim = t.max_len if tagged else t.max_len - 4
        self.tagged = tagged


class VmdqSorter(Element):
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ()
    COUNTERS = ("frames", "copies", "mirrored_copies", "oversize_copies", "ruc", "roc",
                "bprc", "mprc", "cache_misses")
    DROP_REASONS = ("runt", "vfta_miss", "no_pool", "oversize")

    def __init__(self, name: str, state: NicState, rings: RxRings) -> None:
        super().__init__(name)
        self.state = state
        self.rings = rings
        self._gen = -1
        self._derived = Derived(state)
        # (DA[+TCI]) -> tuple[PoolTarget, ...] | drop reason
        self._plans: dict[bytes, tuple[PoolTarget, ...] | str] = {}
        self._fast: dict[bytes, FastTarget] = {}

    # -- configuration tracking --------------------------------------------
    def refresh(self) -> None:
        """Rebuild derived bitmaps and forget cached plans (state changed)."""
        self._derived = Derived(self.state)
        self._plans = {}
        self._fast = {}
        self._gen = self.state.generation

    def targets(self, da: bytes, tagged: bool, vid: int) -> tuple[PoolTarget, ...] | str:
        """Uncached pool selection turned into per-pool targets (or a drop reason)."""
        st = self.state
        if not st.vt_en:
            # VT off: one promiscuous queue (queue 0), the software switch classifies.
            return (PoolTarget(0, st.pools[0].max_frame, [self.rings.queues[0]], False),)
        if tagged and st.vlan_filter_en and not (st.vfta.bits >> vid) & 1:
            return "vfta_miss"
        P, mirrored = select_pools(st, self._derived, da, tagged, vid)
        if P == 0:
            return "no_pool"
        return self.targets_for(P, mirrored)

    def targets_for(self, P: int, mirrored: int = 0) -> tuple[PoolTarget, ...]:
        st = self.state
        rx = self.rings.queues
        return tuple(PoolTarget(p, st.pools[p].max_frame, [rx[q] for q in st.pool_queues(p)[:st.rss_queues(p)]],
                                bool((mirrored >> p) & 1)) for p in bits_of(P))

    def _copies(self, f: Frame, d: bytes, tagged: bool, flen: int,
                plan: tuple[PoolTarget, ...]) -> list[tuple[RxQueue, Frame]]:
        """One copy per target pool: queue by RSS, strip by that queue's own setting (E.3)."""
        c = self.counters
        copies = []
        for t in plan:
            if flen > t.max_len:
                c["oversize_copies"] += 1
                continue
            q = t.q0 if t.nq == 1 else t.queues[rss_index(d, t.nq)]
            cp = Frame(d, f.ts_ns, f.in_port, f.vlan, f.pcp, f.vnet)
            cp.pool = t.pool
            cp.queue = q.index
            if tagged and q.vlan_strip:
                cp.vlan = ((d[14] << 8) | d[15]) & 0xFFF
                cp.pcp = d[14] >> 4
                cp.data = d[:12] + d[16:]
            copies.append((q, cp))
            c["mirrored_copies"] += t.mirror
        return copies

    # -- data path ---------------------------------------------------------
    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:
        self.sort(batch, now_ns)

    def sort(self, batch: Batch, now_ns: int) -> None:
        """Classify a batch and hand every copy to the rings (the hot path).

        Fast path, written out inline because it is what every unicast frame to
        a guest takes (bench/nic_sorter.py): the key's cached plan is a single
        `FastTarget` (one pool, no mirror copy), the frame fits,
        nothing is parked in the packet buffer and the ring has room.  Anything
        else -- runts, multicast, replication, RSS, full rings -- takes
        ``_sort_one``, which implements every rule.
        """
        if self._gen != self.state.generation:
            self.refresh()
        fast_get = self._fast.get
        rings = self.rings
        pb = rings._pb
        touched_add = rings.touched.add
        slow = self._sort_one
        ports = _PORTS
        n_slow = nbytes = 0
        for f in batch:
            d = f.data
            et = d[12:14]
            # a tag cut short (under 16 bytes) would make an untagged frame's key: the slow
            # path counts it as a runt
            t = fast_get(d[0:6]) if et != _TPID else (fast_get(d[0:6] + d[14:16]) if len(d) >= 16 else None)
            n = len(d)
            if t is None or pb or not 14 <= n <= t.lim:
                n_slow += 1
                slow(f, now_ns)
                continue
            rss = t.rss
            if rss is None:
                q = t.q
            # rss_index, inlined (a call per frame costs as much again) with the offsets written
            # out and the pool's table for the modulo; tagged frames' ``et`` is the TPID
            elif et == _IPV4:
                if n < 38:
                    q = rss[0]
                elif d[14] == 0x45 and ports[d[23]]:
                    q = rss[d[29] ^ d[33] ^ d[35] ^ d[37]]
                else:
                    q = rss[d[29] ^ d[33]]
            elif et == _TPID and d[16:18] == _IPV4 and n >= 42:
                if d[18] == 0x45 and ports[d[27]]:
                    q = rss[d[33] ^ d[37] ^ d[39] ^ d[41]]
                else:
                    q = rss[d[33] ^ d[37]]
            else:
                q = rss[0]
            ring = q.ring
            if len(ring) >= q.limit:
                n_slow += 1
                slow(f, now_ns)
                continue
            f.pool = t.pool
            f.queue = q.index
            nbytes += n
            if q.vlan_strip and t.tagged:
                f.vlan = ((d[14] << 8) | d[15]) & 0xFFF
                f.pcp = d[14] >> 4
                f.data = d[:12] + d[16:]
            ring.append(f)
            touched_add(q)
        n_fast = len(batch) - n_slow
        c = self.counters
        c["frames"] += len(batch)
        c["copies"] += n_fast
        rc = rings.counters
        rc["gprc"] += n_fast
        rc["gorc"] += nbytes

    def _sort_one(self, f: Frame, now_ns: int) -> None:
        """The general path for one frame: every rule of the module docstring."""
        c = self.counters
        d = f.data
        n = len(d)
        if n < 14 or (n < 16 and d[12:14] == _TPID):     # no whole header, or its tag cut short
            c["ruc"] += 1
            self.drop(f, "runt")
            return
        if d[12:14] == _TPID:
            tagged = True
            key = d[0:6] + d[14:16]
        else:
            tagged = False
            key = d[0:6]
        plans = self._plans
        plan = plans.get(key)
        if plan is None:
            c["cache_misses"] += 1
            vid = ((d[14] << 8) | d[15]) & 0xFFF if tagged else 0
            plan = self.targets(d[0:6], tagged, vid)
            if len(plans) >= CACHE_MAX:
                plans.clear()
                self._fast.clear()
            plans[key] = plan
            if not isinstance(plan, str) and len(plan) == 1 and not d[0] & 1 and not plan[0].mirror:
                self._fast[key] = FastTarget(plan[0], tagged)
        if plan.__class__ is str:
            self.drop(f, plan)  # type: ignore[arg-type]
            return
        if d[0] & 1:
            c["bprc" if d[0:6] == BROADCAST else "mprc"] += 1
        # FCS counts towards the max frame length, a VLAN tag does not.
        flen = n if tagged else n + 4
        copies = self._copies(f, d, tagged, flen, plan)  # type: ignore[arg-type]
        if not copies:
            c["roc"] += 1
            self.drop(f, "oversize")
            return
        c["copies"] += len(copies)
        if len(copies) == 1:
            # a single copy: the frame itself carries the annotations
            q, cp = copies[0]
            f.pool, f.queue, f.vlan, f.pcp, f.data = cp.pool, cp.queue, cp.vlan, cp.pcp, cp.data
            copies = [(q, f)]
        self.rings.deliver(f, copies, n, now_ns)
