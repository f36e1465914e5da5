"""The cases Snabb's intel10g/VMDq tests cover: pool selection, multicast, mirror,
loopback, MAC reconfiguration under traffic (issue 4 item 8)."""

from __future__ import annotations

import pytest
from nic_frames import BCAST, drain, eth, mac

from nicmodel.nic import Nic


@pytest.mark.parametrize("profile,mrqc", [("82599", 0x8), ("82599", 0xA), ("82576", 0x3), ("i350", 0x3)])
def test_pool_selection_every_pool(profile: str, mrqc: int) -> None:
    """Each pool's MAC lands in that pool's first queue (82576: pool p owns p and p+8)."""
    nic = Nic(profile=profile, mrqc=mrqc)
    n = nic.state.num_pools
    for p in range(1, n):
        nic.program_pool(p, mac=mac(p))
    nic.rx([eth(mac(p)) for p in range(1, n) for _ in range(3)], 0)
    got = drain(nic)
    assert set(got) == set(range(1, n))
    for p in range(1, n):
        assert len(got[p]) == 3
        assert {f.queue for f in got[p]} <= set(nic.state.pool_queues(p))
    if profile == "82576":
        assert nic.state.pool_queues(3) == [3, 11]


def test_multicast_exact_and_hashed() -> None:
    """An exact multicast filter and the MTA path both deliver; MPE pools get everything."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1), rompe=True, multicast=["01:00:5e:00:00:fb"])
    nic.program_pool(2, mac=mac(2))
    nic.add_mac(2, "33:33:00:00:00:01")
    nic.program_pool(3, mac=mac(3), mpe=True)
    nic.rx([eth("01:00:5e:00:00:fb"), eth("33:33:00:00:00:01"), eth("01:00:5e:11:22:33")], 0)
    got = drain(nic)
    assert {p: sorted(f.data[:6].hex() for f in fs) for p, fs in got.items()} == {
        1: ["01005e0000fb"],
        2: ["333300000001"],
        3: ["01005e0000fb", "01005e112233", "333300000001"],
    }
    assert nic.snapshot()["port"]["mprc"] == 3
    assert nic.snapshot()["pools"]["3"]["mprc"] == 3


@pytest.mark.parametrize("kind", ["pool", "uplink", "vlan", "downlink"])
def test_mirror_rules(kind: str) -> None:
    """PFMRCTL rules: pool, uplink, VLAN and downlink mirroring copy to the mirror pool."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1))
    nic.program_pool(2, mac=mac(2), vlan=7)
    nic.program_pool(9, mac=mac(9))
    if kind == "pool":
        nic.set_mirror(0, dst=9, pools=[1])
    elif kind == "uplink":
        nic.set_mirror(0, dst=9, uplink=True)
    elif kind == "vlan":
        nic.set_mirror(0, dst=9, vlans=[7])
    else:
        nic.set_mirror(0, dst=9, downlink=True)
    nic.rx([eth(mac(1)), eth(mac(2), vlan=7), eth(mac(3))], 0)
    nic.tx(1, [eth(mac(50), src=mac(1))], 0)
    assert len(nic.tx_service(10**9)) == 1
    got = drain(nic)
    mirrored = sorted(f.data[:6].hex() for f in got.get(9, []))
    expect = {"pool": [mac(1)], "uplink": [mac(1), mac(2), mac(3)], "vlan": [mac(2)],
              "downlink": [mac(50)]}[kind]
    assert mirrored == sorted(m.replace(":", "") for m in expect)
    assert [f.data[:6].hex() for f in got[1]] == [mac(1).replace(":", "")]


def test_loopback_between_pools() -> None:
    """VEB: pool 1 to pool 2 stays inside the NIC; to an unknown MAC it goes to the wire."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1))
    nic.program_pool(2, mac=mac(2))
    nic.set_loopback(True)
    nic.tx(1, [eth(mac(2), src=mac(1)), eth(mac(66), src=mac(1))], 0)
    wire = nic.tx_service(10**9)
    assert [f.data[:6] for f in wire] == [bytes.fromhex(mac(66).replace(":", ""))]
    got = drain(nic)
    assert list(got) == [2] and got[2][0].data[6:12].hex(":") == mac(1)
    snap = nic.snapshot()
    assert snap["pools"]["1"]["gptc"] == 2 and snap["port"]["gptc"] == 1
    assert snap["elements"]["nic0"]["loopback_packets"] == 1


def test_loopback_off_everything_to_wire() -> None:
    nic = Nic()
    nic.program_pool(1, mac=mac(1))
    nic.program_pool(2, mac=mac(2))
    nic.tx(1, [eth(mac(2), src=mac(1))], 0)
    assert len(nic.tx_service(10**9)) == 1
    assert drain(nic) == {}


def test_mac_reconfiguration_under_traffic() -> None:
    """Change pool 1's MAC between batches: nothing already queued moves or is lost;
    later frames follow the new filter at once (the plan cache is invalidated)."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1))
    nic.program_pool(2, mac=mac(2))
    old, new = mac(1), mac(100)
    for i in range(10):
        if i == 5:
            nic.set_pool_mac(1, new)
        nic.rx([eth(old), eth(new), eth(mac(2))], i)
    got = drain(nic)
    to1 = [f.data[:6].hex(":") for f in got[1]]
    to0 = [f.data[:6].hex(":") for f in got[0]]
    assert to1 == [old] * 5 + [new] * 5
    assert to0 == [new] * 5 + [old] * 5
    assert len(got[2]) == 10
    assert sum(nic.snapshot()["drops"].values()) == 0


def test_broadcast_replication_on_and_off() -> None:
    """Replication on: every BAM pool; off (model's choice): the default pool only."""
    nic = Nic()
    for p in (1, 2, 3):
        nic.program_pool(p, mac=mac(p))
    nic.set_default_pool(5)
    nic.rx([eth(BCAST)], 0)
    assert set(drain(nic)) == {1, 2, 3}
    nic.set_replication(False)
    nic.rx([eth(BCAST), eth(mac(2))], 0)
    got = drain(nic)
    assert {p: len(v) for p, v in got.items()} == {5: 1, 2: 1}


def test_replication_off_unicast_to_lowest_pool() -> None:
    nic = Nic()
    nic.add_mac(3, mac(1))
    nic.add_mac(2, mac(1))
    nic.set_pool_flags(2, aupe=True)
    nic.set_pool_flags(3, aupe=True)
    nic.rx([eth(mac(1))], 0)
    assert set(drain(nic)) == {2, 3}
    nic.set_replication(False)
    nic.rx([eth(mac(1))], 0)
    assert set(drain(nic)) == {2}


def test_per_pool_max_frame_roc() -> None:
    """A copy longer than its pool's max frame is skipped; too long for all: ROC."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1), max_frame=9018)
    nic.program_pool(2, mac=mac(2))
    nic.rx([eth(BCAST, size=1514), eth(BCAST, size=1515), eth(BCAST, size=9014), eth(BCAST, size=9015)], 0)
    got = drain(nic)
    assert sorted(len(f) for f in got[1]) == [1514, 1515, 9014]
    assert [len(f) for f in got[2]] == [1514]
    snap = nic.snapshot()
    assert snap["port"]["roc"] == 1 and snap["drops"]["oversize"] == 1
    assert snap["elements"]["nic0.sorter"]["oversize_copies"] == 4  # every skipped copy, 2 of them from the ROC frame


def test_vt_off_single_promiscuous_queue() -> None:
    """Software mode: VT off, every frame to queue 0, the switch classifies."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1))
    nic.set_vt(False)
    nic.rx([eth(mac(1)), eth(mac(44)), eth(BCAST)], 0)
    assert len(nic.poll(0)) == 3
    assert drain(nic) == {}


def test_runt_and_vfta_miss() -> None:
    nic = Nic()
    nic.program_pool(1, mac=mac(1))
    nic.rx([eth(mac(1))], 0)  # puts mac(1) in the plan cache
    nic.rx([eth(mac(1)).copy(eth(mac(1)).data[:13]), eth(mac(1), vlan=300)], 0)
    snap = nic.snapshot()
    assert snap["drops"]["runt"] == 1 and snap["port"]["ruc"] == 1
    assert snap["drops"]["vfta_miss"] == 1


def test_veb_loopback_raises_the_interrupt_of_the_receiving_queue():
    """A frame looped back by VEB must raise its queue's interrupt, or NAPI never polls it
    (the vector would stay masked with frames waiting)."""
    from nicmodel import Nic
    from vswitch.core.frame import Frame
    nic = Nic("veb", "82599")
    nic.set_loopback(True)
    nic.program_pool(1, "02:00:00:00:00:01")
    nic.program_pool(2, "02:00:00:00:00:02")
    q2 = nic.state.pool_queues(2)[0]
    frame = Frame(b"\xff" * 6 + bytes.fromhex("020000000001") + b"\x08\x06" + bytes(46))
    nic.tx(1, [frame], 1000)
    nic.tx_service(1000)
    raised = nic.take_interrupts()
    assert q2 in raised
    got = nic.poll(q2, 64, 2000)
    assert len(got) == 1 and got[0].pool == 2
    # The poll re-armed the vector: the next looped-back frame interrupts again.
    nic.tx(1, [frame], 3000)
    nic.tx_service(3000)
    assert q2 in nic.take_interrupts()


@pytest.mark.parametrize("layout", ["vt_off", "vmdq", "vmdq_rss"])
@pytest.mark.parametrize("length", [14, 15])
def test_rx_tag_cut_short_is_a_runt(layout: str, length: int) -> None:
    """A frame from the wire whose VLAN tag (TPID 0x8100) is cut short, 14 or 15 bytes: counted
    (ruc) and dropped as a runt on every layout, as on TX; before, 15 bytes raised IndexError
    and 14 passed as an untagged frame of the same MAC (its key was the untagged one)."""
    from vswitch.core.frame import Frame
    nic = Nic()
    if layout == "vt_off":
        nic.set_vt(False)
    else:
        if layout == "vmdq_rss":
            nic.set_layout(0xB)
        nic.program_pool(1, mac=mac(1))
    whole = eth(mac(1), vlan=0).data
    # an untagged frame first: mac(1)'s plan is cached, the key a 14-byte tagged frame made
    nic.rx([eth(mac(1)), Frame(whole[:length]), eth(mac(1))], 0)
    snap = nic.snapshot()
    assert snap["drops"]["runt"] == 1 and snap["port"]["ruc"] == 1
    got = nic.poll(0) if layout == "vt_off" else [f for fs in drain(nic).values() for f in fs]
    assert len(got) == 2 and all(len(f.data) == 60 for f in got)   # the whole frames still arrive
