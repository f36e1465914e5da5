"""The TX switch rules of issue 10: VMVIR's priority bits (item 4), VEB loopback into a full
queue without drop enable (item 5), a pool's own unicast with LLE off (item 7)."""

from __future__ import annotations

import pytest
from nic_frames import BCAST, drain, eth, mac

from nicmodel.nic import Nic
from vswitch.core.frame import Frame

GIG = 1_000_000_000


# -- item 4: VMVIR qos is the PCP of the inserted tag, DEI 0 ---------------------------

@pytest.mark.parametrize("qos", range(8))
def test_vmvir_qos_lands_in_pcp_with_dei_clear(qos: int) -> None:
    """``ip link set vf N vlan 100 qos Q``: the tag on the wire has PCP = Q and DEI = 0."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1), vlan=100)
    nic.set_vmvir(1, "always_default", vid=100, qos=qos)
    nic.tx(1, [eth(mac(9), src=mac(1))], 0)
    (f,) = nic.tx_service(GIG)
    d = f.data
    assert d[12:14] == b"\x81\x00"
    tci = (d[14] << 8) | d[15]
    assert tci >> 13 == qos          # PCP
    assert (tci >> 12) & 1 == 0      # DEI
    assert tci & 0xFFF == 100
    assert nic.regs.read("PFVMVIR", 1) & 0xFFFF == tci   # the register holds the tag as inserted


# -- item 5: VEB loopback into a full queue without drop enable holds, never loses -------

def veb_nic(drop_en: bool) -> Nic:
    nic = Nic(packet_buffer_bytes=10 * 64)
    nic.set_loopback(True)
    nic.program_pool(1, mac=mac(1))
    nic.program_pool(2, mac=mac(2), drop_en=drop_en)
    nic.program_pool(3, mac=mac(3))
    nic.set_rings(rx=64)
    return nic


def test_veb_into_full_no_drop_queue_backpressures_the_sender() -> None:
    """Without drop enable a looped-back frame waits at the head of the sender's TX queue until
    the destination has a descriptor (nic-model.md A "TX path" 5): no mpc, no loss, and the
    wire and LAN RX go on."""
    nic = veb_nic(drop_en=False)
    q2 = nic.state.pool_queues(2)[0]
    q3 = nic.state.pool_queues(3)[0]
    assert nic.tx(1, [eth(mac(2), src=mac(1)) for _ in range(100)], 0) == 100
    assert nic.tx_service(GIG) == []
    snap = nic.snapshot()
    assert snap["queues"][f"q{q2}_rx_packets"] == 64
    assert snap["port"]["mpc"] == 0 and sum(snap["drops"].values()) == 0
    assert not nic.rings.blocked                         # nothing parked in the RX packet buffer
    # another pool's traffic to the wire and from the wire is not held behind it
    nic.tx(3, [eth(mac(9), src=mac(3))], GIG)
    assert len(nic.tx_service(2 * GIG)) == 1
    nic.rx([eth(mac(3)) for _ in range(5)], 2 * GIG)
    assert nic.snapshot()["queues"][f"q{q3}_rx_packets"] == 5
    # the guest of pool 2 takes its frames: the held frames follow, none lost
    got = 0
    t = 3 * GIG
    while got < 100:
        n = len(nic.poll(q2, 64, t))
        assert n, "held frames never arrived"
        got += n
        t += GIG
        nic.tx_service(t)
    snap = nic.snapshot()
    assert got == 100 and snap["port"]["mpc"] == 0 and sum(snap["drops"].values()) == 0
    assert snap["pools"]["1"]["gptc"] == 100


def test_veb_into_full_drop_enabled_queue_loses_that_copy() -> None:
    """With drop enable the copy is lost and counted in qprdc, the sender is not held."""
    nic = veb_nic(drop_en=True)
    nic.tx(1, [eth(mac(2), src=mac(1)) for _ in range(100)], 0)
    nic.tx_service(GIG)
    snap = nic.snapshot()
    assert snap["port"]["qprdc"] == 36 and snap["port"]["mpc"] == 0
    assert snap["pools"]["1"]["gptc"] == 100


def test_veb_broadcast_waits_whole_while_one_no_drop_copy_cannot_land() -> None:
    """A broadcast with a blocked local copy is not sent anywhere yet (the wire copy waits too)."""
    nic = veb_nic(drop_en=False)
    q2 = nic.state.pool_queues(2)[0]
    nic.rx([eth(mac(2)) for _ in range(64)], 0)           # pool 2's ring is full
    nic.tx(1, [eth(BCAST, src=mac(1))], 0)
    assert nic.tx_service(GIG) == []
    nic.poll(q2, 1, GIG)
    assert len(nic.tx_service(2 * GIG)) == 1
    got = drain(nic)
    assert [f.data[:6] for f in got[3]] == [b"\xff" * 6]


# -- item 7: a pool's own unicast ------------------------------------------------------------

@pytest.mark.parametrize("lle", [False, True], ids=["LLE off: not on the wire, not looped back",
                                                    "LLE on: looped back to the pool itself"])
def test_unicast_to_own_pool_never_reaches_the_wire(lle: bool) -> None:
    """nic-model.md A "TX path" 5: a unicast that exactly matches a VFRE-enabled pool's filter
    does not go to the wire; the source pool gets a copy only with LLE."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1))
    nic.program_pool(2, mac=mac(2))
    nic.set_loopback(True, lle_pools=[1] if lle else [])
    nic.tx(1, [eth(mac(1), src=mac(1))], 0)
    assert nic.tx_service(GIG) == []
    got = drain(nic)
    snap = nic.snapshot()
    if lle:
        assert list(got) == [1]
        assert snap["drops"].get("own_pool_no_lle", 0) == 0
    else:
        assert got == {}
        assert snap["drops"]["own_pool_no_lle"] == 1
    assert snap["port"]["gptc"] == 0


def test_unicast_to_a_pool_on_a_vlan_it_did_not_join_goes_to_the_wire() -> None:
    """The exact filter is MAC and VLAN: pool 2 is on VLAN 10, a frame tagged 20 to its MAC is not local."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1))
    nic.program_pool(2, mac=mac(2), vlan=10)
    nic.add_vlan(3, 20)
    nic.set_loopback(True)
    nic.tx(1, [eth(mac(2), src=mac(1), vlan=20)], 0)
    assert len(nic.tx_service(GIG)) == 1
    assert drain(nic) == {}


@pytest.mark.parametrize("data", [bytes.fromhex("02000000000902000000000108"),            # 13 bytes
                                  bytes.fromhex("020000000009020000000001810000")],      # tag cut short
                         ids=["shorter than a header", "tag cut short"])
def test_tx_runt_is_counted_and_dropped(data: bytes) -> None:
    """A guest's frame too short to switch on is dropped (``runt``), with VEB and VLAN anti-spoof on."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1), vlan=10)
    nic.set_spoofcheck(1, mac=True, vlan=True)
    nic.set_loopback(True)
    nic.tx(1, [Frame(data)], 0)
    assert nic.tx_service(GIG) == []
    assert nic.snapshot()["drops"]["runt"] == 1
