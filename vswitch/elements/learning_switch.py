"""LearningSwitch: the bridge element (ingress checks, VLANs, learning, forwarding).

Ports: one input and one output per switch port, both named by the port's
number (an ``int``, like an OpenFlow port number).  ``add_port`` /
``remove_port`` change them at run time.

Per frame, in order (docs/switching.md gives the user's view of each step):

1. **Ingress checks.**  Shorter than 14 bytes, or an 802.1Q tag cut short:
   ``runt``.  Longer than the port's ``max_frame`` (MTU + 18) and not a GSO
   super-frame (``frame.vnet`` set by an offloading port): ``oversize``.
2. **VLAN classification** by the port's ``PortVlan`` (see vlan.py).  The tag
   is popped into ``frame.vlan``/``frame.pcp``; VID 4095 (reserved by 802.1Q):
   ``vlan_reserved``; a VLAN the port does not carry: ``vlan_not_allowed``.
3. **Destination filter.** IEEE 802.1D reserved group addresses
   01:80:c2:00:00:00-0f (STP, pause, LACP, LLDP, ...) are link-local and never
   forwarded by a bridge: ``reserved_multicast``.  Before learning, as in OVS.
4. **Source check.**  Source MAC multicast or all-zero: ``invalid_src_mac``
   (as the Linux bridge).
5. **Learning** of (VLAN, source MAC) on the ingress port if its ``learning``
   flag is on (FDB semantics in fdb.py).
6. **Forwarding.**  Broadcast goes to every port of the VLAN with
   ``bcast_flood``; multicast to those with ``mcast_flood``; unknown unicast
   to those with ``flood``; never back to the ingress port unless it has
   ``hairpin``; an ``isolated`` port never sends to another isolated port.
   A learned unicast goes to exactly its port; if that is the ingress port:
   ``same_port``; both isolated: ``isolated``.  A flood with no eligible port:
   ``no_flood_ports``.
7. **Egress MTU** (the Linux bridge's ``is_skb_forwardable``): a frame longer
   than a port's ``max_frame``, measured without its popped tag, and not a
   GSO super-frame (``vnet`` with a gso_type) is not sent there; that port
   counts a ``tx_dropped``.  A known unicast so refused, or a flood refused
   by all its ports: ``egress_mtu``.  A flood compares its length with the
   smallest ``max_frame`` of all ports; unicasts are checked at egress, per
   output port and only where the check can fail (`_fit`): for a batch from
   a port whose ``max_frame`` is above that port's, or holding a
   header-carrying frame over its own.
8. **Egress VLAN**: the tag is pushed back for ports that carry the VLAN
   tagged (copies share the same tagged bytes), with the frame's PCP/DEI; a
   priority-tagged frame of VLAN 0 keeps its tag on a port that carries
   VLAN 0 as a trunk (``PortVlan.priority_tagged``) when its PCP/DEI are
   not zero.

Counters: ``forwarded`` (known unicast), ``flooded`` (frames flooded, once
per frame), ``flood_broadcast``, ``flood_multicast``, ``flood_unknown`` (the
three add up to ``flooded``), ``flood_copies`` (frames emitted by floods).
Every ingress frame is counted once in ``forwarded``, ``flooded`` or a drop
reason.  FDB statistics under ``fdb`` in the snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from vswitch.core.element import Batch, Element, PortId
from vswitch.core.frame import Frame
from vswitch.core.gso import shift_offsets
from vswitch.elements.fdb import Fdb
from vswitch.elements.vlan import PortVlan

ETH_HLEN: Final = 14
VLAN_HLEN: Final = 4
_TPID: Final = b"\x81\x00"
_RESERVED_PREFIX: Final = b"\x01\x80\xc2\x00\x00"
_ZERO_MAC: Final = bytes(6)
_NO_LIMIT: Final = 1 << 30          # a gate above every port's max_frame


@dataclass(frozen=True)
class SwitchPort:
    """A switch port's configuration (Linux bridge flag names)."""

    number: int
    name: str
    vlan: PortVlan = field(default_factory=PortVlan)
    learning: bool = True
    flood: bool = True          # unknown unicast
    mcast_flood: bool = True
    bcast_flood: bool = True
    isolated: bool = False
    hairpin: bool = False
    mtu: int = 1500
    mac_limit: int | None = None
    mac_limit_policy: str = "stop"

    def __post_init__(self) -> None:
        if not 68 <= self.mtu <= 65535:
            raise ValueError(f"port {self.name}: bad mtu {self.mtu} (68-65535)")
        if self.mac_limit_policy not in ("stop", "evict"):
            raise ValueError(f"port {self.name}: bad mac_limit_policy {self.mac_limit_policy!r}: "
                             "use stop or evict")

    @property
    def max_frame(self) -> int:
        return self.mtu + ETH_HLEN + VLAN_HLEN

    def describe(self) -> dict[str, Any]:
        return {"number": self.number, "name": self.name, **self.vlan.describe(),
                "learning": self.learning, "flood": self.flood, "mcast_flood": self.mcast_flood,
                "bcast_flood": self.bcast_flood, "isolated": self.isolated, "hairpin": self.hairpin,
                "mtu": self.mtu, "mac_limit": self.mac_limit, "mac_limit_policy": self.mac_limit_policy}


class LearningSwitch(Element):
    COUNTERS = ("forwarded", "flooded", "flood_broadcast", "flood_multicast", "flood_unknown",
                "flood_copies")
    DROP_REASONS = ("runt", "oversize", "invalid_src_mac", "vlan_reserved", "vlan_not_allowed",
                    "reserved_multicast", "same_port", "isolated", "no_flood_ports", "egress_mtu")

    def __init__(self, name: str = "switch", fdb: Fdb | None = None) -> None:
        super().__init__(name)
        # `is None`, not `or`: an empty Fdb has len() 0 and is falsy, so `fdb or Fdb()`
        # threw away every configured Fdb (ageing time, table size, damping).
        self.fdb = fdb if fdb is not None else Fdb()
        self.ports: dict[int, SwitchPort] = {}
        # (in_port, vid) -> (bcast ports, mcast ports, unknown-unicast ports)
        self._flood_cache: dict[tuple[int, int], tuple[tuple[int, ...], ...]] = {}
        self._outs: dict[int, list[Frame]] = {}
        self._app: dict[int, Any] | None = None
        self._mtu_floor = 0                           # the smallest max_frame of any port
        self._ctx: dict[int, tuple[Any, ...]] = {}

    # -- ports -------------------------------------------------------------
    def inputs(self) -> Sequence[PortId]:
        return tuple(self.ports)

    def outputs(self) -> Sequence[PortId]:
        return tuple(self.ports)

    def add_port(self, port: SwitchPort) -> None:
        if port.number in self.ports:
            raise ValueError(f"switch port number {port.number} is already {self.ports[port.number].name!r}")
        self.ports[port.number] = port
        self.fdb.set_port_limit(port.number, port.mac_limit, port.mac_limit_policy)
        self._flood_cache.clear()
        self._app = None

    def update_port(self, number: int, **changes: Any) -> SwitchPort:
        """Change a port's config; its learned entries are flushed if its VLANs change or
        learning is turned off."""
        old = self.ports[number]
        new = replace(old, **changes)
        self.ports[number] = new
        if new.vlan != old.vlan or (old.learning and not new.learning):
            self.fdb.flush(port=number)
        # Static entries for VLANs the port no longer carries would leak frames between VLANs.
        for vid in list(self.fdb.vlans):
            if vid not in new.vlan.carries:
                self.fdb.flush(port=number, vlan=vid, static=True)
        self.fdb.set_port_limit(number, new.mac_limit, new.mac_limit_policy)
        self._flood_cache.clear()
        self._app = None
        return new

    def remove_port(self, number: int) -> None:
        self.ports.pop(number)
        self.fdb.flush(port=number, static=True)
        self.fdb.set_port_limit(number, None)
        self._out.pop(number, None)
        self._flood_cache.clear()
        self._app = None

    def _flood_sets(self, in_port: int, vid: int) -> tuple[tuple[int, ...], ...]:
        src = self.ports[in_port]
        members = [p for p in self.ports.values()
                   if vid in p.vlan.carries
                   and (p.number != in_port or p.hairpin)
                   and not (src.isolated and p.isolated and p.number != in_port)]
        sets = (tuple(p.number for p in members if p.bcast_flood),
                tuple(p.number for p in members if p.mcast_flood),
                tuple(p.number for p in members if p.flood))
        self._flood_cache[(in_port, vid)] = sets
        return sets

    # -- data path ---------------------------------------------------------
    def _rebuild(self) -> dict[int, Any]:
        """Per-port state the data path reads once per batch, rebuilt on any config change.

        Output lists are reused across batches (emptied by _egress), with their bound
        append methods, so the hot loop appends through one dict lookup; each port's
        constants come as one tuple, so a batch of one frame stays cheap."""
        self._outs = {n: [] for n in self.ports}
        self._app = {n: lst.append for n, lst in self._outs.items()}
        floor = min([p.max_frame for p in self.ports.values()], default=0)
        self._mtu_floor = floor
        ctx = {}
        for n, p in self.ports.items():
            untagged = -1 if p.vlan.untagged_vid is None else p.vlan.untagged_vid   # -1: none taken
            ok = untagged in p.vlan.carries
            # The FDB keeps its per-VLAN dicts for good, so holding one here is safe.  The
            # last item: a frame this port accepts may not fit some port's MTU, so egress
            # checks its unicasts (_fit); with every MTU equal, no frame pays for a check
            # that cannot fail.
            ctx[n] = (p, p.learning, p.hairpin, p.isolated, untagged, ok,
                      self.fdb.table(untagged) if ok else {}, p.max_frame, p.max_frame > floor)
        self._ctx = ctx
        return self._app

    def _tx_dropped(self, out: int) -> None:
        g = self.graph
        pc = g.ports.get(out) if g is not None else None
        if pc is not None:
            pc.tx_dropped += 1

    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:
        in_port: int = inp  # type: ignore[assignment]
        app = self._app if self._app is not None else self._rebuild()
        c = self._ctx.get(in_port)
        if c is None:                        # raced with remove_port: nothing to do
            return
        port, learning, hairpin, src_isolated, untagged_vid, untagged_ok, utbl, max_frame, gated = c
        gate = max_frame if gated else 0     # egress checks unicasts against MTUs below this
        fdb = self.fdb
        table = fdb.table
        ageing = fdb.ageing_ns
        learn = fdb.learn
        ports = self.ports
        drop = self.drop
        copies0 = self.counters["flood_copies"]
        mixed = False        # False while every frame is in the port's untagged VLAN
        # Within a batch, a frame whose first 14 bytes equal those of the last plain frame
        # forwarded to a known port (no tag, source already learned on this port) gets
        # the same decision, as OVS's exact-match cache does: the FDB cannot change under
        # it mid-batch except by learning, which forgets the memo.  A bulk flow's batch is
        # mostly such frames.  Traffic where consecutive frames differ would pay a slice
        # and a compare per frame for nothing: after a few misses the memo stays off for
        # the rest of the batch.
        memo_key = None
        memo_app = None
        memo_budget = 4                 # misses before the memo gives up for this batch

        for f in batch:
            d = f.data
            n = len(d)
            if n > max_frame or n < ETH_HLEN:
                if n < ETH_HLEN:
                    drop(f, "runt")
                    continue
                v = f.vnet
                if v is None:
                    drop(f, "oversize")
                    continue
                if not v[1]:
                    # Over this port's own MTU with a header but no GSO type (checksum
                    # offload only): it may not fit an egress port, whatever its MTU.
                    gate = _NO_LIMIT
            if memo_key is not None and d[:14] == memo_key:
                f.vlan = untagged_vid
                memo_app(f)  # type: ignore[misc]
                continue
            # -- VLAN classification: the tag is popped into annotations.
            if d[12] == 0x81 and d[13] == 0:
                vid = self._pop_tag(f, port)
                if vid is None:
                    continue
                if vid != untagged_vid or (not vid and f.pcp):
                    mixed = True            # (a priority tag in VLAN 0: egress looks per frame)
                d = f.data
                tbl = table(vid)
                plain = False
            elif untagged_ok:
                vid = untagged_vid
                tbl = utbl
                plain = True
            else:
                drop(f, "vlan_not_allowed")
                continue
            f.vlan = vid
            # -- destination filter before learning: a link-local frame teaches nothing.
            if d[0] & 1 and d[0:5] == _RESERVED_PREFIX and d[5] < 0x10:
                drop(f, "reserved_multicast")
                continue
            # -- learning.  Multicast and zero source MACs are never in the FDB, so
            # they are caught on the miss path only.
            src = d[6:12]
            e = tbl.get(src)
            if e is not None and e.port == in_port and now_ns - e.seen < ageing:
                # (a port with learning off has no dynamic entries: update_port flushes them)
                if not e.static:
                    e.seen = now_ns
            elif d[6] & 1 or src == _ZERO_MAC:
                drop(f, "invalid_src_mac")
                continue
            else:
                plain = False
                memo_key = None              # learning can move or evict entries
                if learning:
                    learn(vid, src, in_port, now_ns)
            # -- known unicast (multicast destinations are never in the FDB).
            e = tbl.get(d[0:6])
            if e is not None and now_ns - e.seen < ageing:
                out = e.port
                if out == in_port and not hairpin:
                    drop(f, "same_port")
                    continue
                if src_isolated and out != in_port and ports[out].isolated:
                    drop(f, "isolated")
                    continue
                a = app[out]
                a(f)
                if plain:
                    if memo_key is not None:     # the memo was tried on this frame and missed
                        memo_budget -= 1
                    if memo_budget > 0:
                        memo_key, memo_app = d[:14], a
                    else:
                        memo_key = None
                continue
            self._flood(f, d, in_port, vid, now_ns)

        self._egress(None if mixed or not untagged_ok else untagged_vid, now_ns, copies0, gate)

    def _pop_tag(self, f: Frame, port: SwitchPort) -> int | None:
        """Classify an 802.1Q-tagged frame and pop its tag; None if dropped."""
        d = f.data
        if len(d) < ETH_HLEN + VLAN_HLEN:
            self.drop(f, "runt")
            return None
        tci = (d[14] << 8) | d[15]
        vid: int | None = tci & 0xFFF
        if vid == 0:                          # priority tag: classify as untagged
            vid = port.vlan.untagged_vid
        elif vid == 4095:                     # reserved by 802.1Q: never a VLAN
            self.drop(f, "vlan_reserved")
            return None
        elif port.vlan.mode == "access":
            # OVS: an access port drops any frame with a nonzero VID, its own VLAN included.
            vid = None
        if vid is None or vid not in port.vlan.carries:
            self.drop(f, "vlan_not_allowed")
            return None
        f.pcp = tci >> 12
        f.data = d[:12] + d[16:]
        if f.vnet is not None:              # checksum/GSO offsets count from the frame start
            f.vnet = shift_offsets(f.vnet, -VLAN_HLEN)
        return vid

    def _flood(self, f: Frame, d: bytes, in_port: int, vid: int, now_ns: int) -> None:
        """Broadcast, multicast, unknown (or expired) unicast."""
        sets = self._flood_cache.get((in_port, vid)) or self._flood_sets(in_port, vid)
        c = self.counters
        if d[0] & 1:                          # (reserved group addresses were dropped in push)
            if d[0:6] == b"\xff\xff\xff\xff\xff\xff":
                targets = sets[0]
                kind = "flood_broadcast"
            else:
                targets = sets[1]
                kind = "flood_multicast"
        else:
            targets = sets[2]
            kind = "flood_unknown"
        if not targets:
            self.drop(f, "no_flood_ports")
            return
        if len(d) > self._mtu_floor:          # it may not fit every port's MTU
            v = f.vnet
            if v is None or not v[1]:         # (v[1]: gso_type; GSO frames always pass)
                targets = self._fitting(d, targets)
                if not targets:
                    self.drop(f, "egress_mtu")
                    return
        # Only a frame that is flooded counts by kind, so the kinds add up to `flooded`.
        c[kind] += 1
        c["flooded"] += 1
        c["flood_copies"] += len(targets)
        app = self._app
        assert app is not None
        # Each port gets a Frame of its own (the bytes are shared): what one port's path
        # annotates or edits (a NIC stamps its TX start time, strips a tag) no other port sees.
        app[targets[0]](f)
        for out in targets[1:]:
            app[out](f.copy())

    def _fitting(self, d: bytes, targets: tuple[int, ...]) -> tuple[int, ...]:
        """The flood targets whose MTU takes ``d``; each other one counts a tx_dropped."""
        ports = self.ports
        n = len(d)
        ok = []
        for t in targets:
            if n > ports[t].max_frame:
                self._tx_dropped(t)
            else:
                ok.append(t)
        return tuple(ok)

    def _fit(self, frames: list[Frame], limit: int, out: int) -> list[Frame]:
        """The frames within ``limit`` (or GSO); each other one, a known unicast (flood copies
        were fitted in _flood), is dropped as egress_mtu and counts a tx_dropped on ``out``."""
        ok = []
        for f in frames:
            v = f.vnet
            if len(f.data) > limit and (v is None or not v[1]):     # v[1]: gso_type
                self._tx_dropped(out)
                self.drop(f, "egress_mtu")
            else:
                ok.append(f)
        return ok

    def _egress(self, bvid: int | None, now_ns: int, copies0: int, gate: int = 0) -> None:
        """Emit each port's frames, pushing the tag back on where the port wants it tagged;
        with ``gate``, frames to ports whose max_frame is below it are checked first."""
        tagged_copy: dict[int, Frame] | None = None      # tagged bytes per frame, shared (by id of its data)
        ports = self.ports
        outs = self._out
        emitted = 0
        for out, lst in self._outs.items():
            if not lst:
                continue
            frames = lst[:]
            lst.clear()
            if gate:
                limit = ports[out].max_frame
                if gate > limit:
                    frames = self._fit(frames, limit, out)
                    if not frames:
                        continue
            emitted += len(frames)
            vl = ports[out].vlan
            tagged = vl.tagged
            if bvid is not None:
                if bvid in tagged:              # one VLAN in the batch, carried tagged: all of them
                    if tagged_copy is None:
                        tagged_copy = {}
                    frames = [self._tagged(f, tagged_copy) for f in frames]
            elif vl.priority_tagged:            # VLAN 0 keeps a priority tag (nonzero PCP/DEI)
                if tagged_copy is None:
                    tagged_copy = {}
                frames = [self._tagged(f, tagged_copy) if f.vlan in tagged or (not f.vlan and f.pcp)
                          else f for f in frames]
            elif tagged:
                if tagged_copy is None:
                    tagged_copy = {}
                frames = [self._tagged(f, tagged_copy) if f.vlan in tagged else f for f in frames]
            send = outs.get(out)
            if send is None:
                self.unconnected[out] = self.unconnected.get(out, 0) + len(frames)
            else:
                send(frames, now_ns)
        # Known unicast = everything emitted that floods did not add.
        self.counters["forwarded"] += emitted - (self.counters["flood_copies"] - copies0)

    @staticmethod
    def _tagged(f: Frame, cache: dict[int, Frame]) -> Frame:
        """``f`` with its tag pushed back on: the tagged bytes are made once per frame and
        shared by every port that carries it tagged (flood copies share ``f.data``), each
        port getting a Frame of its own."""
        t = cache.get(id(f.data))
        if t is None or t.vlan != f.vlan or t.pcp != f.pcp:
            d = f.data
            tci = (f.pcp << 12) | f.vlan  # type: ignore[operator]
            t = cache[id(f.data)] = f.copy(d[:12] + _TPID + bytes((tci >> 8, tci & 0xFF)) + d[12:])
            if t.vnet is not None:
                t.vnet = shift_offsets(t.vnet, VLAN_HLEN)
            return t
        g = f.copy(t.data)
        g.vnet = t.vnet
        return g

    # -- housekeeping ------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        self.fdb.expire(now_ns)

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap["fdb"] = self.fdb.snapshot()
        return snap
