"""One table-driven case per pitfall of nic-model.md section E (E.1-E.10).

Every case id starts with the pitfall it checks ("E.1 ...").  E.11 (SR-IOV
config space) belongs to the SR-IOV issue; nicmodel has no VFs yet.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nic_frames import BCAST, drain, eth, mac, pools_hit

from nicmodel.nic import Nic
from nicmodel.tables import NicError, TableFull, hash12

GROUP = "01:00:5e:00:01:23"


def base(profile: str = "82599") -> Nic:
    """Pools 1 and 2 untagged (AUPE), pool 3 on VLAN 10, pool 4 on VLAN 20; default pool 0."""
    nic = Nic(profile=profile)
    nic.program_pool(1, mac=mac(1))
    nic.program_pool(2, mac=mac(2))
    nic.program_pool(3, mac=mac(3), vlan=10)
    nic.program_pool(4, mac=mac(4), vlan=20)
    return nic


Setup = Callable[[Nic], None]


def _rompe(*pools: int) -> Setup:
    def f(nic: Nic) -> None:
        for p in pools:
            nic.set_pool_flags(p, rompe=True)
        nic.add_multicast(GROUP)
    return f


def _exact_group_on_1_and_rompe_2(nic: Nic) -> None:
    nic.add_mac(1, GROUP)
    _rompe(2)(nic)


def _vlan99_in_vfta(nic: Nic) -> None:
    nic.set_vfta(99)


def _promisc(upe: bool, vpe: bool) -> Setup:
    def f(nic: Nic) -> None:
        nic.set_vfta(99)
        nic.set_pool_flags(5, aupe=True, upe=upe, vpe=vpe)
    return f


def _nothing(nic: Nic) -> None:
    return None


# (id, profile, setup, frame, expected pools)
E1_CASES = [
    ("E.1 exact MAC, VLAN it did not join: VLAN step empties P, default pool", "82599",
     _nothing, eth(mac(3), vlan=20), {0}),
    ("E.1 exact MAC and its VLAN", "82599", _nothing, eth(mac(3), vlan=10), {3}),
    ("E.1 MAC decides first: the VLAN's other pool does not get it", "82599",
     _nothing, eth(mac(1), vlan=20), {0}),
    ("E.1 untagged frame to a non-AUPE (port VLAN) pool goes to the default pool", "82599",
     _nothing, eth(mac(3)), {0}),
    ("E.1 untagged frame to an AUPE pool", "82599", _nothing, eth(mac(1)), {1}),
    ("E.1 exact RAR match shadows the MTA hash (ROMPE pool left out)", "82599",
     _exact_group_on_1_and_rompe_2, eth(GROUP), {1}),
    ("E.1 without an exact match the ROMPE pool gets it", "82599", _rompe(2), eth(GROUP), {2}),
    ("E.1 VID without VLVF entry: no VPE pool on 82599, default pool", "82599",
     _vlan99_in_vfta, eth(mac(1), vlan=99), {0}),
    ("E.1 VID without VLVF entry reaches only VPE pools (x550)", "x550",
     _promisc(upe=True, vpe=True), eth(mac(1), vlan=99), {5}),
]


@pytest.mark.parametrize("profile,setup,frame,expected",
                         [c[1:] for c in E1_CASES], ids=[c[0] for c in E1_CASES])
def test_e1_mac_before_vlan(profile: str, setup: Setup, frame, expected: set[int]) -> None:
    """nic-model.md E.1: MAC before VLAN; exact matches shadow hash matches."""
    nic = base(profile)
    setup(nic)
    assert pools_hit(nic, frame) == expected


@pytest.mark.parametrize("mo,expected", [(0, 0x230), (1, 0x460), (2, 0x8C0), (3, 0x301)],
                         ids=[f"E.2 hash with MO={m}" for m in range(4)])
def test_e2_hash_is_12_bits_of_octets_4_5(mo: int, expected: int) -> None:
    """nic-model.md E.2: ((da5<<8)|da4) >> {4,3,2,0}[MO] & 0xFFF, not a CRC."""
    da = bytes.fromhex("01005e000123")  # da4=0x01, da5=0x23 -> 0x2301
    assert hash12(da, mo) == expected


E2_CASES = [
    ("E.2 one MTA for all pools: a ROMPE pool gets a group another pool joined",
     "01:00:5e:00:01:23", {1, 2}),
    ("E.2 a hash collision reaches every ROMPE pool (octet 4 low nibble ignored at MO=0)",
     "01:00:5e:00:0f:23", {1, 2}),
    ("E.2 a group with another hash reaches nobody: default pool", "01:00:5e:00:01:24", {0}),
]


@pytest.mark.parametrize("group,expected", [c[1:] for c in E2_CASES], ids=[c[0] for c in E2_CASES])
def test_e2_shared_coarse_multicast_hash(group: str, expected: set[int]) -> None:
    """nic-model.md E.2: the multicast hash is shared and coarse."""
    nic = base()
    nic.set_pool_flags(1, rompe=True)
    nic.set_pool_flags(2, rompe=True)
    nic.add_multicast(GROUP)  # only "pool 1's guest" joined
    assert pools_hit(nic, eth(group)) == expected


def test_e2_vf_sends_hashes_not_addresses() -> None:
    """nic-model.md E.2: a hash programmed directly behaves as the group it came from."""
    nic = base()
    nic.set_pool_flags(2, rompe=True)
    nic.add_multicast_hash(hash12(bytes.fromhex("01005e000123")))
    assert pools_hit(nic, eth(GROUP)) == {2}


@pytest.mark.parametrize("strip1,strip2", [(True, False), (False, True), (True, True)],
                         ids=["E.3 strip on pool 1 only", "E.3 strip on pool 2 only", "E.3 both strip"])
def test_e3_vlan_strip_per_copy(strip1: bool, strip2: bool) -> None:
    """nic-model.md E.3: classification first, then each copy uses its own queue's strip."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1), vlan=10, strip_vlan=strip1)
    nic.program_pool(2, mac=mac(2), vlan=10, strip_vlan=strip2)
    f = eth(BCAST, vlan=10, pcp=5)
    original = f.data
    nic.rx([f], 0)
    got = drain(nic)
    assert set(got) == {1, 2}
    for pool, strip in ((1, strip1), (2, strip2)):
        (cp,) = got[pool]
        if strip:
            assert cp.data == original[:12] + original[16:] and cp.vlan == 10 and cp.pcp == 5
        else:
            assert cp.data == original and cp.vlan is None
    assert f.data == original or len(got[1]) == 1  # the wire bytes are shared, never edited


E3_TX_CASES = [
    ("E.3 untagged frames bypass VLANAS", None, "use_desc", 0, True),
    ("E.3 tagged with a VLAN of the pool passes VLANAS", 10, "use_desc", 0, True),
    ("E.3 tagged with a foreign VLAN fails VLANAS", 30, "use_desc", 0, False),
    ("E.3 VMVIR inserts before VLANAS (assumed order): inserted foreign VLAN is caught",
     None, "always_default", 30, False),
    ("E.3 VMVIR inserts the pool's own VLAN: passes", None, "always_default", 10, True),
]


@pytest.mark.parametrize("vlan,mode,vid,passes", [c[1:] for c in E3_TX_CASES],
                         ids=[c[0] for c in E3_TX_CASES])
def test_e3_tx_vlan_antispoof(vlan: int | None, mode: str, vid: int, passes: bool) -> None:
    """nic-model.md E.3 (TX side): untagged frames bypass VLANAS; insertion runs first."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1), vlan=10)
    nic.add_vlan(2, 30)
    nic.set_spoofcheck(1, mac=True, vlan=True)
    nic.set_vmvir(1, mode, vid=vid)
    nic.tx(1, [eth(mac(9), src=mac(1), vlan=vlan)], 0)
    wire = nic.tx_service(10**9)
    assert len(wire) == (1 if passes else 0)
    assert nic.snapshot()["port"]["ssvpc"] == (0 if passes else 1)


E4_CASES = [
    ("E.4 UPE without VPE: unknown VID is still filtered", True, False, {0}),
    ("E.4 UPE with VPE: sees all VLANs", True, True, {5}),
]


@pytest.mark.parametrize("upe,vpe,expected", [c[1:] for c in E4_CASES], ids=[c[0] for c in E4_CASES])
def test_e4_promiscuous_pools_still_vlan_filtered(upe: bool, vpe: bool, expected: set[int]) -> None:
    """nic-model.md E.4: promiscuous pools are still VLAN-filtered (x550 has per-pool UPE)."""
    nic = base("x550")
    _promisc(upe, vpe)(nic)
    assert pools_hit(nic, eth(mac(77), vlan=99)) == expected


def test_e4_no_per_pool_upe_on_82599() -> None:
    """nic-model.md E.4: the 82599 has no per-pool UPE (EOPNOTSUPP)."""
    with pytest.raises(NicError, match="UPE"):
        Nic("nic", "82599").set_pool_flags(1, upe=True)


E5_CASES = [
    ("E.5 RX: unknown unicast goes to the default pool", mac(77), False, 3, {3}),
    ("E.5 RX: unwanted multicast also goes to the default pool (datasheet, not QEMU)",
     "01:00:5e:7f:00:01", False, 3, {3}),
    ("E.5 RX: DIS_DEF_POOL drops an empty pool list", mac(77), True, 3, set()),
]


@pytest.mark.parametrize("dst,disabled,def_pool,expected", [c[1:] for c in E5_CASES],
                         ids=[c[0] for c in E5_CASES])
def test_e5_default_pool_rx(dst: str, disabled: bool, def_pool: int, expected: set[int]) -> None:
    """nic-model.md E.5: on RX the default pool takes any empty pool list."""
    nic = base()
    nic.set_default_pool(def_pool, disabled=disabled)
    assert pools_hit(nic, eth(dst)) == expected
    assert nic.snapshot()["drops"]["no_pool"] == (1 if not expected else 0)


E5_TX_CASES = [
    ("E.5 TX (VEB): unknown unicast does not go to the default pool, only the wire", mac(77), set(), 1),
    ("E.5 TX (VEB): unwanted multicast goes to the default pool and the wire",
     "01:00:5e:7f:00:01", {0}, 1),
]


@pytest.mark.parametrize("dst,local,wire", [c[1:] for c in E5_TX_CASES], ids=[c[0] for c in E5_TX_CASES])
def test_e5_default_pool_tx(dst: str, local: set[int], wire: int) -> None:
    """nic-model.md E.5: on TX the default pool serves broadcast/multicast only."""
    nic = base()
    nic.set_loopback(True)
    nic.tx(1, [eth(dst, src=mac(1))], 0)
    assert len(nic.tx_service(10**9)) == wire
    assert set(drain(nic)) == local


@pytest.mark.parametrize("lle,expected", [(False, {2}), (True, {1, 2})],
                         ids=["E.6 source pool left out of its own broadcast",
                              "E.6 unless its LLE bit is set"])
def test_e6_source_pool_excluded(lle: bool, expected: set[int]) -> None:
    """nic-model.md E.6: the source pool is excluded from its own broadcasts unless LLE."""
    nic = base()
    nic.set_loopback(True, lle_pools=[1] if lle else [])
    nic.tx(1, [eth(BCAST, src=mac(1))], 0)
    assert len(nic.tx_service(10**9)) == 1  # broadcast always reaches the wire too
    assert set(drain(nic)) == expected


E7_CASES = [
    ("E.7 link up: local unicast is looped back and never reaches the wire", True, True, mac(2), {2}, 0),
    ("E.7 link up: local broadcast reaches the other pool and the wire", True, True, BCAST, {2}, 1),
    ("E.7 link down: no VM-to-VM traffic", False, True, mac(2), set(), 0),
    ("E.7 RX disabled: no VM-to-VM traffic, the frame goes to the wire", True, False, mac(2), set(), 1),
]


@pytest.mark.parametrize("link,rxen,dst,local,wire", [c[1:] for c in E7_CASES], ids=[c[0] for c in E7_CASES])
def test_e7_veb_depends_on_link_and_rxen(link: bool, rxen: bool, dst: str, local: set[int],
                                         wire: int) -> None:
    """nic-model.md E.7: VEB needs PF link and RXEN."""
    nic = base()
    nic.set_loopback(True)
    nic.set_link(link)
    nic.set_rx_enable(rxen)
    nic.tx(1, [eth(dst, src=mac(1))], 0)
    assert len(nic.tx_service(10**9)) == wire
    nic.set_link(True)
    nic.set_rx_enable(True)
    assert set(drain(nic)) == local


@pytest.mark.parametrize("drop_en", [True, False],
                         ids=["E.8 drop enable: only the full queue's copy is lost (qprdc)",
                              "E.8 no drop enable: one stuck pool head-of-line blocks everyone"])
def test_e8_drop_enable(drop_en: bool) -> None:
    """nic-model.md E.8: without per-queue drop one stuck pool blocks every pool."""
    nic = Nic(packet_buffer_bytes=10 * 64)
    nic.program_pool(1, mac=mac(1), drop_en=drop_en)
    nic.program_pool(2, mac=mac(2))
    nic.set_rings(rx=64)
    nic.rx([eth(mac(1)) for _ in range(64)], 0)      # pool 1's ring is now full
    nic.rx([eth(mac(1))] + [eth(mac(2)) for _ in range(20)], 1)
    snap = nic.snapshot()
    q2 = nic.state.pool_queues(2)[0]
    if drop_en:
        assert snap["port"]["qprdc"] == 1 and snap["port"]["mpc"] == 0
        assert snap["queues"][f"q{q2}_rx_packets"] == 20
    else:
        # the stuck frame and 9 behind it fill the 10-frame buffer; the other 11 are missed
        assert snap["port"]["qprdc"] == 0 and snap["port"]["mpc"] == 11
        assert snap["queues"][f"q{q2}_rx_packets"] == 0
        q1 = nic.state.pool_queues(1)[0]
        nic.poll(q1, 1)                                  # one descriptor back: the buffer drains
        assert nic.snapshot()["queues"][f"q{q2}_rx_packets"] == 9
        assert not nic.rings.blocked


def test_e9_rate_limit_per_queue_shapes_never_drops() -> None:
    """nic-model.md E.9: per-queue rate limits shape (frames wait) and never drop."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1))
    nic.set_pool_tx_rate(1, 100)                        # 100 Mb/s on each of the pool's queues
    assert {nic.txa.queues[q].rate_bps for q in nic.state.pool_queues(1)} == {100_000_000}
    frames = [eth(mac(9), src=mac(1), size=1000) for _ in range(50)]
    assert nic.tx(1, frames, 0) == 50
    per_frame_ns = (1000 + 24) * 8 * 1_000_000_000 // 100_000_000   # 81920 ns at 100 Mb/s
    sent = nic.tx_service(10 * per_frame_ns - 1)
    assert len(sent) == 10                               # starts at 0, T, ..., 9T
    sent += nic.tx_service(10**12)
    assert len(sent) == 50 and sum(nic.snapshot()["drops"].values()) == 0


TABLE_CASES = [
    ("E.10 82599 RAR: 128 entries", "82599", "rar", 128, "RAR table full: 128 entries on 82599"),
    ("E.10 82576 RAR: 24 entries", "82576", "rar", 24, "RAR table full: 24 entries on 82576"),
    ("E.10 82599 VLVF: 64 entries", "82599", "vlvf", 64, "VLVF table full: 64 entries on 82599"),
    ("E.10 82576 VLVF: 32 entries", "82576", "vlvf", 32, "VLVF table full: 32 entries on 82576"),
]


@pytest.mark.parametrize("profile,table,size,message", [c[1:] for c in TABLE_CASES],
                         ids=[c[0] for c in TABLE_CASES])
def test_e10_tables_run_out(profile: str, table: str, size: int, message: str) -> None:
    """nic-model.md E.10: shared tables are finite; a full table is an error, not growth."""
    nic = Nic(profile=profile)
    pools = nic.state.num_pools
    for i in range(size):
        if table == "rar":
            nic.add_mac(i % pools, mac(i + 1))
        else:
            nic.add_vlan(i % pools, i + 1)
    with pytest.raises(TableFull, match=message):
        if table == "rar":
            nic.add_mac(0, mac(size + 1))
        else:
            nic.add_vlan(0, size + 1)
    # sharing an existing entry still works when the table is full
    if table == "rar":
        nic.add_mac(1, mac(1))
        assert nic.config()["filters"]["rar"][0]["pools"] == [0, 1]
    else:
        nic.add_vlan(0, 2)
    assert len(nic.config()["filters"][table]) == size
