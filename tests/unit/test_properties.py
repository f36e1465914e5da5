"""Hypothesis properties of the learning switch and the FDB, checked against a small reference model.

The model below is written from the specification (OVS vlan_mode table, Linux bridge port flags,
the Linux bridge's egress MTU rule, the FDB's aging rule) and shares no code with the
implementation: it computes the expected egress bytes of every frame, the expected MAC table, and
the expected counters.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from helpers import BCAST, MCAST, NS, STP, Bridge, mac
from hypothesis import given, settings
from hypothesis import strategies as st

from vswitch.elements.fdb import Fdb
from vswitch.topology import PortConfig

AGE = 1 * NS                                  # ageing_time = 1 s in the property bridges
VIDS = (10, 20, 30)
SETTINGS = settings(max_examples=200, deadline=None)


# -- the reference model ------------------------------------------------------------------------

@dataclass(frozen=True)
class MPort:
    """A port as the spec describes it (not as the code computes it)."""

    number: int
    mode: str                      # default | access | trunk | native-tagged | native-untagged
    tag: int | None
    trunks: frozenset[int] | None  # None: every VLAN
    isolated: bool
    learning: bool
    flood: bool
    mcast_flood: bool
    bcast_flood: bool
    mtu: int = 1500

    def in_trunks(self, v: int) -> bool:
        return self.trunks is None or v in self.trunks

    def carries(self, v: int) -> bool:
        if self.mode == "access":
            return v == self.tag
        if self.mode in ("default", "trunk"):
            return self.in_trunks(v)
        return v == self.tag or (v != 0 and self.in_trunks(v))    # OVS: no VLAN 0 on native ports

    @property
    def untagged(self) -> int | None:
        """The VLAN of an untagged (or priority-tagged) frame received here."""
        if self.mode in ("default", "trunk"):
            return 0 if self.in_trunks(0) else None
        return self.tag

    def sends_tagged(self, v: int, pcp: int) -> bool:
        """VLAN 0 leaves a trunk as it came: with its priority tag if its TCI is not zero."""
        if self.mode == "access":
            return False
        if self.mode in ("default", "trunk"):
            return v != 0 or pcp != 0
        if self.mode == "native-tagged":
            return True
        return v != self.tag

    def config(self) -> PortConfig:
        kw: dict = dict(isolated=self.isolated, learning=self.learning, flood=self.flood,
                        mcast_flood=self.mcast_flood, bcast_flood=self.bcast_flood, mtu=self.mtu)
        if self.mode != "default":
            kw["vlan_mode"] = self.mode
        if self.tag is not None:
            kw["tag"] = self.tag
        if self.trunks is not None:
            kw["trunks"] = ",".join(str(v) for v in sorted(self.trunks))
        return PortConfig(name=f"p{self.number}", number=self.number, **kw)


class Model:
    def __init__(self, ports: list[MPort]) -> None:
        self.ports = {p.number: p for p in ports}
        self.fdb: dict[tuple[int, bytes], tuple[int, int]] = {}   # (vid, mac) -> (port, last seen)
        self.forwarded = 0
        self.flooded = 0
        self.dropped = 0
        self.kinds: dict[str, int] = defaultdict(int)          # floods by kind
        self.tx_dropped: dict[int, int] = defaultdict(int)     # copies refused by an egress MTU

    def valid_fdb(self, now: int) -> dict[tuple[int, bytes], int]:
        return {k: p for k, (p, seen) in self.fdb.items() if now - seen < AGE}

    def frame(self, in_port: int, d: bytes, now: int, out: dict[int, list[bytes]]) -> None:
        """One frame through the switch: fills ``out`` with the egress bytes per port."""
        P = self.ports[in_port]
        if len(d) > P.mtu + 18:                  # ingress: MTU + header + one tag
            self.dropped += 1
            return
        if d[12:14] == b"\x81\x00":
            tci = int.from_bytes(d[14:16], "big")
            vid, pcp, inner = tci & 0xFFF, tci >> 12, d[:12] + d[16:]
            if vid == 4095:                      # reserved by 802.1Q
                self.dropped += 1
                return
            if vid == 0:
                vid = P.untagged
            elif P.mode == "access":     # OVS: an access port drops every nonzero VID
                vid = None
        else:
            vid, pcp, inner = P.untagged, 0, d
        if vid is None or not P.carries(vid):
            self.dropped += 1
            return
        dst, src = d[0:6], d[6:12]
        if src[0] & 1 or src == bytes(6):
            self.dropped += 1
            return
        if dst[:5] == bytes.fromhex("0180c20000") and dst[5] < 0x10:
            self.dropped += 1
            return
        if P.learning:
            self.fdb[(vid, src)] = (in_port, now)
        # egress MTU (Linux's is_skb_forwardable): the frame without its outer tag, MTU + 18
        def fits(o: int) -> bool:
            if len(inner) > self.ports[o].mtu + 18:
                self.tx_dropped[o] += 1
                return False
            return True
        entry = self.fdb.get((vid, dst))
        if not dst[0] & 1 and entry is not None and now - entry[1] < AGE:
            o = entry[0]
            if o == in_port or (P.isolated and self.ports[o].isolated) or not fits(o):
                self.dropped += 1
                return
            targets = [o]
            self.forwarded += 1
        else:
            if dst == BCAST:
                flag = "bcast_flood"
            elif dst[0] & 1:
                flag = "mcast_flood"
            else:
                flag = "flood"
            targets = [q.number for q in self.ports.values()
                       if q.number != in_port and q.carries(vid) and getattr(q, flag)
                       and not (P.isolated and q.isolated)]
            targets = [o for o in targets if fits(o)] if targets else targets
            if not targets:
                self.dropped += 1
                return
            self.flooded += 1
            self.kinds[flag] += 1
        for o in targets:
            if self.ports[o].sends_tagged(vid, pcp):
                tci = (pcp << 12) | vid
                out[o].append(inner[:12] + b"\x81\x00" + tci.to_bytes(2, "big") + inner[12:])
            else:
                out[o].append(inner)


# -- strategies --------------------------------------------------------------------------------------

@st.composite
def mports(draw, n: int) -> list[MPort]:
    out = []
    for i in range(1, n + 1):
        mode = draw(st.sampled_from(["default", "access", "trunk", "native-tagged", "native-untagged"]))
        tag = draw(st.sampled_from(VIDS)) if mode in ("access", "native-tagged", "native-untagged") else None
        trunks = None
        if mode in ("trunk", "native-tagged", "native-untagged"):
            trunks = draw(st.none() | st.frozensets(st.sampled_from((0,) + VIDS), min_size=1, max_size=3))
        flags = draw(st.tuples(*[st.booleans()] * 5))
        out.append(MPort(i, mode, tag, trunks, flags[0], not flags[1] or flags[2],  # learning mostly on
                         flood=draw(st.booleans()) or flags[3], mcast_flood=flags[3] or flags[4],
                         bcast_flood=draw(st.booleans()) or flags[4],
                         mtu=draw(st.sampled_from([1500, 1500, 1500, 1504, 9000]))))
    return out


HOSTS = [mac(i) for i in range(1, 5)]        # host i lives on port 1 + i % n, and sometimes roams
DSTS = st.sampled_from(HOSTS * 4 + [BCAST, BCAST, BCAST, MCAST, STP])
# steps of time that often land exactly on the ageing boundary
DT = st.sampled_from([0, 0, 0, 1, AGE // 8, AGE // 8, AGE // 2, AGE - 1, AGE, AGE + 1])
# a host mostly uses one encapsulation: (TPID, VID); None is untagged
ENCAPS = [None, (0x8100, 10), (0x8100, 20), (0x8100, 30), (0x8100, 0), (0x88A8, 5), (0x8100, 40),
          (0x8100, 4095)]
# payload sizes: mostly small, some around the MTU + 18 boundaries of 1500 and 1504, some jumbo
SIZES = [46] * 12 + [1500, 1504, 1505, 1508, 1509, 8000]
HOME_ENCAP = [None, (0x8100, 10), None, (0x8100, 20)]


@st.composite
def frames(draw, src: bytes, home: tuple[int, int] | None) -> bytes:
    dst = draw(DSTS)
    src = draw(st.sampled_from([src] * 12 + [bytes(6), MCAST]))     # now and then an invalid source
    payload = bytes([draw(st.integers(0, 255))]) * draw(st.sampled_from(SIZES))
    enc = draw(st.sampled_from([home] * 6 + ENCAPS))
    if enc is None:
        return dst + src + b"\x08\x00" + payload
    tpid, vid = enc                          # 0x88a8 (802.1ad) is an untagged frame to this switch
    tci = (draw(st.integers(0, 15)) << 12) | vid
    return dst + src + tpid.to_bytes(2, "big") + tci.to_bytes(2, "big") + b"\x08\x00" + payload


@st.composite
def steps(draw, n: int):
    """(ingress port, time step, batch): a batch is one host's frames, sent from its home port
    or, one time in five, from another port (a move).  One batch in three holds a burst, the
    same frame several times among others: the switch's within-batch memo of the last plain
    forward (and its invalidation by learning) then decides most of the batch."""
    host = draw(st.integers(0, len(HOSTS) - 1))
    roam = draw(st.integers(0, 4)) == 0
    port = draw(st.integers(1, n)) if roam else 1 + host % n
    batch = draw(st.lists(frames(HOSTS[host], HOME_ENCAP[host]), min_size=1, max_size=4))
    if draw(st.integers(0, 2)) == 0:
        at = draw(st.integers(0, len(batch)))
        batch[at:at] = [draw(frames(HOSTS[host], HOME_ENCAP[host]))] * draw(st.integers(2, 6))
    return port, draw(DT), batch


@st.composite
def scenarios(draw):
    n = draw(st.integers(2, 6))
    ports = draw(mports(n))
    return ports, draw(st.lists(steps(n), min_size=3, max_size=30))


def no_damping_bridge(ports: list[MPort], **kw) -> Bridge:
    return Bridge(*[p.config() for p in ports], ageing_time=1, damp_moves=0, **kw)


# -- properties ----------------------------------------------------------------------------------------

@SETTINGS
@given(scenarios())
def test_switch_matches_the_reference_model(scenario):
    """Egress bytes per port, the MAC table and the counters all match the model, frame after frame:
    no frame leaves by its ingress port; a learned unicast goes to exactly its port; a flood reaches
    the VLAN's ports minus the ingress port, minus isolated-to-isolated, minus ports whose flood flag
    for that kind is off; entries age out exactly at the ageing time; the counters add up."""
    ports, steps = scenario
    br = no_damping_bridge(ports)
    model = Model(ports)
    now = 0
    rx = 0
    for in_port, dt, batch in steps:
        now += dt
        expected: dict[int, list[bytes]] = defaultdict(list)
        for d in batch:
            model.frame(in_port, d, now, expected)
        got = br.send(in_port, *batch, t=now)
        rx += len(batch)
        assert in_port not in got
        assert got == dict(expected)
        assert {(e.vlan, e.mac): e.port for e in br.fdb.entries(now)} == model.valid_fdb(now)
        c = br.counters
        assert c["forwarded"] == model.forwarded
        assert c["flooded"] == model.flooded
        assert (c["flood_broadcast"], c["flood_multicast"], c["flood_unknown"]) == (
            model.kinds["bcast_flood"], model.kinds["mcast_flood"], model.kinds["flood"])
        assert sum(br.drops.values()) == model.dropped
        assert model.forwarded + model.flooded + model.dropped == rx
        assert {n: p.tx_dropped for n, p in br.graph.ports.items() if p.tx_dropped} == dict(model.tx_dropped)
        br.check_accounting()


@SETTINGS
@given(scenarios())
def test_flood_kind_counters_add_up_to_flooded(scenario):
    """For any port configs and frames, flood_broadcast + flood_multicast + flood_unknown ==
    flooded: a flood that is then dropped (no_flood_ports, say) counts under its drop reason only."""
    ports, steps = scenario
    br = no_damping_bridge(ports)
    now = 0
    for in_port, dt, batch in steps:
        now += dt
        br.send(in_port, *batch, t=now)
        c = br.counters
        assert c["flood_broadcast"] + c["flood_multicast"] + c["flood_unknown"] == c["flooded"]


@SETTINGS
@given(scenarios(), st.integers(1, 6), st.lists(st.sampled_from([None, 1, 2]), min_size=6, max_size=6),
       st.lists(st.sampled_from(["stop", "evict"]), min_size=6, max_size=6))
def test_switch_fdb_never_exceeds_its_limits(scenario, size, limits, policies):
    ports, steps = scenario
    cfgs = []
    for p, lim, pol in zip(ports, limits, policies, strict=False):
        c = p.config()
        c.mac_limit, c.mac_limit_policy = lim, pol
        cfgs.append(c)
    br = Bridge(*cfgs, ageing_time=1, mac_table_size=size)
    now = 0
    for in_port, dt, batch in steps:
        now += dt
        got = br.send(in_port, *batch, t=now)
        assert in_port not in got
        entries = br.fdb.entries()
        assert len(entries) == len(br.fdb) <= size
        per_port: dict[int, int] = defaultdict(int)
        for e in entries:
            per_port[e.port] += 1
        for c in cfgs:
            n = br.port(c.name)
            assert per_port[n] == br.fdb.port_count(n)
            if c.mac_limit is not None:
                assert per_port[n] <= c.mac_limit
        br.check_accounting()


# -- FDB on its own -------------------------------------------------------------------------------------

@SETTINGS
@given(st.integers(0, 10**15), st.integers(1, 10**12), st.integers(0, 3 * 10**12))
def test_an_entry_ages_out_exactly_at_its_timeout(t0, ageing, dt):
    f = Fdb(ageing_ns=ageing)
    f.learn(1, mac(1), 7, t0)
    alive = dt < ageing
    assert ({(e.vlan, e.mac) for e in f.entries(t0 + dt)} == {(1, mac(1))}) == alive
    assert f.lookup(1, mac(1), t0 + dt) == (7 if alive else None)
    assert f.stats["expired"] == (0 if alive else 1)
    f.expire(t0 + dt + ageing)
    assert f.stats["expired"] == 1


LEARN = st.tuples(st.sampled_from([10, 20]), st.sampled_from([mac(i) for i in range(1, 9)]),
                  st.integers(1, 4), st.sampled_from([1, 2, AGE // 3, AGE - 1, AGE]) | st.integers(1, AGE))


@SETTINGS
@given(st.integers(1, 6), st.lists(st.sampled_from([None, 1, 2, 3]), min_size=4, max_size=4),
       st.lists(st.sampled_from(["stop", "evict"]), min_size=4, max_size=4), st.lists(LEARN, max_size=60))
def test_fdb_limits_and_fair_eviction(size, limits, policies, learns):
    """Never more than max_entries or a port's limit; an eviction takes the least recently seen entry
    of the port the spec designates (the learning port under its own 'evict' limit, else a port
    holding the most entries)."""
    f = Fdb(max_entries=size, ageing_ns=AGE, damp_moves=0)
    for port, (lim, pol) in enumerate(zip(limits, policies, strict=True), start=1):
        f.set_port_limit(port, lim, pol)
    now = 0
    for vid, m, port, dt in learns:
        now += dt                              # strictly increasing: no ties in "last seen"
        before = {(e.vlan, e.mac): (e.port, e.seen) for e in f.entries()}
        stats0 = dict(f.stats)
        f.learn(vid, m, port, now)
        after = {(e.vlan, e.mac): (e.port, e.seen) for e in f.entries()}
        d = {k: f.stats[k] - stats0[k] for k in f.stats}

        # bounds and bookkeeping
        assert len(after) == len(f) <= size
        counts: dict[int, int] = defaultdict(int)
        for p, _ in after.values():
            counts[p] += 1
        for p in range(1, 5):
            assert f.port_count(p) == counts[p]
            if limits[p - 1] is not None:
                assert counts[p] <= limits[p - 1]

        # the learned MAC is on its port now, unless learning was refused
        key = (vid, m)
        if d["learn_refused"]:
            assert after.get(key, (None,))[0] != port
            # only a 'stop' limit refuses, and only when the port's live (not aged-out) entries fill it
            live_own = sum(1 for p, s in before.values() if p == port and now - s < AGE)
            assert policies[port - 1] == "stop" and limits[port - 1] is not None
            assert live_own >= limits[port - 1], "refused although the port's entries had aged out"
        else:
            assert after[key] == (port, now)

        # evictions: each victim is the oldest entry of a legitimate port
        removed = {k: v for k, v in before.items() if k not in after or after[k][1] != v[1] and k != key}
        victims = {k: v for k, v in removed.items() if now - v[1] < AGE}
        assert len(victims) == d["evicted"]
        assert d["evicted"] <= 1
        for vport, vseen in victims.values():
            own = [s for (p, s) in before.values() if p == vport]
            assert vseen == min(own), "not the least recently seen of its port"
            live = defaultdict(int)
            for kk, (p, s) in before.items():
                if now - s < AGE and kk != key:
                    live[p] += 1
            port_evict = vport == port and limits[port - 1] is not None and policies[port - 1] == "evict"
            assert port_evict or live[vport] == max(live.values()), "not a port with the most entries"
