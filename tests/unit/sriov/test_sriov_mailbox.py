"""The PF-VF mailbox: transcripts of ixgbevf talking to ixgbe's policy, the handshake bits, VFLR."""

from __future__ import annotations

import errno

import pytest
from sriov_helpers import BCAST, WIRE, eth, make_pf, refused, vmac, with_guests

from nicmodel.tables import hash12
from sriov.mailbox import (
    MSG_CTS,
    MSG_NACK,
    VF_PFSTS,
    VF_RSTD,
    VF_SET_MAC_ADDR,
    VF_SET_MULTICAST,
    VF_VFU,
    XCAST_ALLMULTI,
    XCAST_MULTI,
    XCAST_PROMISC,
    mac_to_words,
)
from sriov.vf_driver import IxgbeVf, MailboxTimeout, VfRequestRefused
from sriov.vf_regs import VFMAILBOX, VFMBMEM
from vswitch.core.frame import parse_mac


def texts(pf, k: int) -> list[str]:
    return [e.line().split(" ", 1)[1] for e in pf.vf(k).mailbox_log]


def test_bringup_without_an_admin_mac_the_vf_picks_its_own() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [1])
    assert texts(pf, 1) == [
        "VF->PF RESET",
        "PF->VF RESET|NACK no MAC assigned mc_filter_type 0  (no administrative MAC: the VF picks its own)",
        "VF->PF API_NEGOTIATE api 1.5",
        "PF->VF API_NEGOTIATE|NACK|CTS api 1.5  (VF 1 requested unsupported api version 6)",
        "VF->PF API_NEGOTIATE api 1.4",
        "PF->VF API_NEGOTIATE|ACK|CTS api 1.4",
        "VF->PF GET_QUEUES",
        "PF->VF GET_QUEUES|ACK|CTS tx_queues 4 rx_queues 4 trans_vlan 0 default_queue 0",
        f"VF->PF SET_MAC_ADDR {vmac(1)}",
        f"PF->VF SET_MAC_ADDR|ACK|CTS {vmac(1)}",
        "VF->PF SET_LPE max_frame 1518",
        "PF->VF SET_LPE|ACK|CTS max_frame 1518",
        "VF->PF UPDATE_XCAST_MODE multi",
        "PF->VF UPDATE_XCAST_MODE|ACK|CTS multi",
        "VF->PF SET_MULTICAST 0 hashes",
        "PF->VF SET_MULTICAST|ACK|CTS 0 hashes",
    ]
    vf = pf.vf(1)
    st = pf.nic.state
    assert st.rar.lookup[parse_mac(vmac(1))] == 1 << vf.pool
    assert st.vfre >> vf.pool & 1 and st.vfte >> vf.pool & 1      # enabled by its RESET
    assert vf.info.clear_to_send and vf.info.api == 5 and not vf.info.pf_set_mac
    pf.nic.rx([eth(vmac(1), WIRE)], 0)
    assert len(vf.receive()) == 1


def test_an_admin_mac_comes_back_in_the_reset_reply_and_an_untrusted_vf_cannot_change_it() -> None:
    pf = make_pf(numvfs=2)
    pf.set_vf_mac(0, "52:54:00:aa:bb:cc")
    with_guests(pf, [0])
    lines = texts(pf, 0)
    assert lines[1] == "PF->VF RESET|ACK mac 52:54:00:aa:bb:cc mc_filter_type 0"
    drv = pf.vf(0).guest.driver
    assert drv.mac == parse_mac("52:54:00:aa:bb:cc")          # the admin's, not the one asked for
    with pytest.raises(VfRequestRefused) as e:
        drv.set_mac(parse_mac("52:54:00:00:00:77"))
    assert e.value.reply[0] & MSG_NACK and e.value.reply[0] & MSG_CTS
    assert "override administratively set MAC address" in texts(pf, 0)[-1]
    assert parse_mac("52:54:00:00:00:77") not in pf.nic.state.rar.lookup
    pf.set_vf_trust(0, True)
    drv.service()                                            # the trust change made it reset
    drv.set_mac(parse_mac("52:54:00:00:00:77"))              # a trusted VF may
    assert pf.nic.state.rar.lookup[parse_mac("52:54:00:00:00:77")] == 1
    assert parse_mac("52:54:00:aa:bb:cc") not in pf.nic.state.rar.lookup


def test_xcast_is_capped_at_multi_unless_trusted() -> None:
    pf = make_pf(numvfs=3)
    with_guests(pf, [0, 1])
    st = pf.nic.state
    d0, d1 = pf.vf(0).guest.driver, pf.vf(1).guest.driver
    assert d0.update_xcast_mode(XCAST_ALLMULTI) == XCAST_MULTI
    assert "untrusted VF: allmulti capped at multi" in texts(pf, 0)[-1]
    assert not st.pools[0].mpe
    pf.set_vf_trust(1, True)
    d1.service()
    assert d1.update_xcast_mode(XCAST_ALLMULTI) == XCAST_ALLMULTI and st.pools[1].mpe
    pf.nic.rx([eth("01:00:5e:11:22:33", WIRE)], 0)           # a group nobody joined
    assert [len(pf.vf(k).receive()) for k in (0, 1)] == [0, 1]
    with pytest.raises(VfRequestRefused):                     # promiscuous: not on the 82599
        d1.update_xcast_mode(XCAST_PROMISC)
    assert "82599 has no per-pool unicast promiscuous mode" in texts(pf, 1)[-1]


def test_promiscuous_needs_x550_and_the_pf_in_promiscuous_mode() -> None:
    pf = make_pf("x550", numvfs=2)
    pf.set_vf_trust(0, True)
    with_guests(pf, [0])
    d = pf.vf(0).guest.driver
    with pytest.raises(VfRequestRefused):
        d.update_xcast_mode(XCAST_PROMISC)
    assert "requires PF in promisc" in texts(pf, 0)[-1]
    pf.set_promisc(True)
    assert d.update_xcast_mode(XCAST_PROMISC) == XCAST_PROMISC
    assert pf.nic.state.pools[0].upe
    pf.nic.rx([eth("02:00:00:12:34:56", WIRE)], 0)           # unicast to nobody: UPE takes it
    assert len(pf.vf(0).receive()) == 1


def test_more_than_30_groups_only_30_hashes_reach_the_pf() -> None:
    pf = make_pf(numvfs=2)
    groups = [f"01:00:5e:00:{i:02x}:{i:02x}" for i in range(1, 41)]
    hashes = [hash12(parse_mac(g)) for g in groups]
    assert len(set(hashes)) == 40                            # no collisions among these
    with_guests(pf, [0], multicast=groups)
    assert texts(pf, 0)[-2].startswith("VF->PF SET_MULTICAST 30 hashes [")
    assert pf.vf(0).info.mc_hashes == hashes[:30]
    assert set(pf.nic.state.mta.set_bits()) == set(hashes[:30])
    pf.nic.rx([eth(groups[4], WIRE), eth(groups[35], WIRE)], 0)
    got = pf.vf(0).receive()
    assert [f.data[:6] for f in got] == [parse_mac(groups[4])]   # the 36th group was punted


def test_the_pf_keeps_at_most_30_hashes_whatever_the_vf_claims() -> None:
    pf = make_pf(numvfs=1)
    with_guests(pf, [0])
    d = pf.vf(0).guest.driver
    words = [VF_SET_MULTICAST | (200 << 16)] + [0x0123_0456 + i for i in range(15)]
    d.request(words)
    assert len(pf.vf(0).info.mc_hashes) == 30
    assert "200 hashes asked, 30 kept" in texts(pf, 0)[-1]


def test_every_request_before_reset_is_nacked_without_cts() -> None:
    pf = make_pf(numvfs=2)
    raw = IxgbeVf(pf.vf(1).bar0())
    w1, w2 = mac_to_words(parse_mac(vmac(1)))
    reply = raw.request([VF_SET_MAC_ADDR, w1, w2], 3)
    assert reply[0] == VF_SET_MAC_ADDR | MSG_NACK                 # no CTS: reset first
    assert texts(pf, 1)[-2:] == ["PF->VF SET_MAC_ADDR|NACK  (not clear to send: no RESET yet)",
                                 "PF->VF NACK  (not clear to send)"]   # its ACK of the reply: NACKed too
    assert parse_mac(vmac(1)) not in pf.nic.state.rar.lookup
    raw.probe()
    raw.set_mac(parse_mac(vmac(1)))                               # after RESET it works
    assert parse_mac(vmac(1)) in pf.nic.state.rar.lookup


def test_read_to_clear_bits_are_lost_by_a_driver_that_does_not_keep_them() -> None:
    pf = make_pf(numvfs=1)
    bar = pf.vf(0).bar0()
    pf.ping(0)                                                    # a PF message: PFSTS set
    assert bar.read32(VFMAILBOX) & VF_PFSTS
    assert not bar.read32(VFMAILBOX) & VF_PFSTS                   # gone after one read
    pf.vf(0).hardware_reset()
    assert bar.read32(VFMAILBOX) & VF_RSTD and not bar.read32(VFMAILBOX) & VF_RSTD

    class Forgetful(IxgbeVf):                                     # reads VFMAILBOX but keeps nothing
        def _read_v2p(self) -> int:
            return self._read(VFMAILBOX)

    good = IxgbeVf(bar, retries=5)
    good.probe()                                                  # the ACK and the reply both arrive
    bad = Forgetful(bar, retries=5)
    with pytest.raises(MailboxTimeout):
        bad.probe()     # its poll for PFACK read PFSTS too and dropped it: the reply is never seen


def test_the_buffer_lock_keeps_the_pf_out_while_the_vf_holds_it() -> None:
    pf = make_pf(numvfs=1)
    with_guests(pf, [0])
    bar, mbx = pf.vf(0).bar0(), pf.vf(0).mailbox
    bar.write32(VFMAILBOX, VF_VFU)                                # the VF takes the buffer
    assert bar.read32(VFMAILBOX) & VF_VFU and pf.nic.regs.read("PFMAILBOX", 0) & 0x4
    n = len(pf.vf(0).mailbox_log)
    pf.ping(0)                                                    # the PF cannot get PFU
    assert len(pf.vf(0).mailbox_log) == n
    pf.nic.regs.write("PFMAILBOX", 0, 0x10)                       # RVFU: force the VF's lock off
    assert not bar.read32(VFMAILBOX) & VF_VFU
    pf.ping(0)
    assert texts(pf, 0)[-1] == "PF->VF PF_CONTROL_MSG|CTS"
    violations = mbx.vf_lock_violations
    bar.write32(VFMBMEM, 0x1234)                                  # without the lock
    assert mbx.vf_lock_violations == violations + 1


def test_a_deferred_pf_answers_when_its_task_runs() -> None:
    pf = make_pf(numvfs=1, auto_service=False)
    quick = IxgbeVf(pf.vf(0).bar0(), retries=3)
    with pytest.raises(MailboxTimeout):
        quick.probe()                                             # nobody runs the PF's task
    d = IxgbeVf(pf.vf(0).bar0(), wait=pf.service_mailbox)
    d.probe()
    assert d.api == 5 and pf.vf(0).info.clear_to_send


def test_vflr_clears_the_vfs_queues_and_state() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0], multicast=["01:00:5e:00:00:07"], vlans=[100])
    vf = pf.vf(0)
    nic, st = pf.nic, pf.nic.state
    nic.rx([eth(vmac(0), WIRE) for _ in range(5)], 0)             # waiting in its RX ring
    nic.set_pool_enabled(vf.pool, tx=False)
    vf.send([eth(WIRE, vmac(0)) for _ in range(3)], 0)            # waiting in its TX ring
    assert st.vlvf.vids_of(vf.pool) == [0, 100] and vf.info.mc_hashes
    resets = vf.resets
    vf.fn.pci.write(0xA8, vf.fn.pci.read(0xA8, 2) | 0x8000, 2)    # Initiate FLR
    assert vf.resets == resets + 1 and not vf.info.clear_to_send
    assert not vf.fn.pci.read(0xA8, 2) & 0x8000                   # the bit reads back 0
    assert not st.vfre >> vf.pool & 1 and not st.vfte >> vf.pool & 1
    assert all(not nic.rings.queues[q].enabled and not nic.rings.queues[q].ring for q in vf.nic_queues)
    assert all(not nic.txa.queues[q].ring for q in vf.nic_queues)
    assert parse_mac(vmac(0)) not in st.rar.lookup and st.vlvf.vids_of(vf.pool) == [0]
    assert vf.info.mc_hashes == [] and hash12(parse_mac("01:00:5e:00:00:07")) not in st.mta.set_bits()
    assert pf.nic.regs.read("VFLRE", 0) == 0                      # the PF took the event
    d = vf.guest.driver
    reply = d.request([VF_SET_MAC_ADDR, *mac_to_words(parse_mac(vmac(0)))], 3)
    assert reply[0] & MSG_NACK and not reply[0] & MSG_CTS         # RESET first, after a VFLR
    d.probe()
    d.open(mac=vmac(0))
    nic.rx([eth(vmac(0), WIRE)], 1)
    assert len(vf.receive(now_ns=1)) == 1


def test_port_vlan_nacks_the_vfs_own_vlan_requests() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0])
    d = pf.vf(0).guest.driver
    d.set_vfta(200)
    assert 200 in pf.nic.state.vlvf.vids_of(0)
    pf.set_vf_vlan(0, 10, 3)
    with pytest.raises(VfRequestRefused):
        d.set_vfta(300)
    assert "override administratively set VLAN configuration" in texts(pf, 0)[-1]
    d.probe()
    assert d.trans_vlan == 1                                      # GET_QUEUES says: port VLAN


def test_vf_vlan_requests_run_the_shared_vlvf_out() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0, 1])
    st = pf.nic.state
    assert st.vlvf.used() == 1                                    # VLAN 0, shared by the VFs
    for vid in range(1, 64):
        pf.vf(vid % 2).guest.driver.set_vfta(vid)
    assert st.vlvf.used() == 64
    with pytest.raises(VfRequestRefused):
        pf.vf(0).guest.driver.set_vfta(999)
    assert "VLVF table full: 64 entries on 82599" in texts(pf, 0)[-1]
    assert 999 not in st.vlvf.lookup


def test_macvlan_filters_come_from_a_shared_pool_and_turn_anti_spoof_off() -> None:
    pf = make_pf(numvfs=63)
    assert pf.show()["pf"]["macvlans_free"] == 128 - (15 + 1 + 63)
    with_guests(pf, [0, 1])
    d = pf.vf(0).guest.driver
    for i in range(1, 50):
        d.set_uc_addr(i, parse_mac(f"52:54:00:0a:00:{i:02x}"))
    with pytest.raises(VfRequestRefused):
        d.set_uc_addr(50, parse_mac("52:54:00:0a:00:ff"))
    assert "no space for it" in texts(pf, 0)[-1]
    assert not pf.nic.state.pools[0].spoof_mac                     # ixgbe turns it off for this VF
    assert pf.nic.state.pools[1].spoof_mac
    d.set_uc_addr(0, None)                                         # clear: the pool's entries come back
    assert pf.show()["pf"]["macvlans_free"] == 49
    pf.set_vf_mac(1, "52:54:00:00:00:31")
    with pytest.raises(VfRequestRefused):                         # untrusted + admin MAC: denied
        pf.vf(1).guest.driver.set_uc_addr(1, parse_mac("52:54:00:0b:00:01"))


@pytest.mark.parametrize("profile,api,pf_mtu,max_frame,ok", [
    ("82599", 0, 9000, 9018, False),    # a legacy VF on a jumbo PF: refused, RX off
    ("82599", 5, 9000, 9018, True),     # API 1.1+ with a jumbo PF: allowed
    ("82599", 5, 1500, 9018, False),    # a jumbo VF on a standard PF: the 82599 cannot mix them
    ("x550", 5, 1500, 9018, True),
    ("82599", 5, 1500, 9800, False),    # above IXGBE_MAX_JUMBO_FRAME_SIZE
])
def test_set_lpe_rules(profile: str, api: int, pf_mtu: int, max_frame: int, ok: bool) -> None:
    pf = make_pf(profile, numvfs=1)
    pf.set_mtu(pf_mtu)
    d = IxgbeVf(pf.vf(0).bar0())
    d.reset_hw()
    if api:
        d.negotiate_api()
    reply = d.request([0x05, max_frame], 2)
    assert bool(reply[0] & MSG_NACK) != ok
    if ok:
        assert pf.nic.state.pools[0].max_frame == max_frame and pf.nic.state.vfre & 1
    elif max_frame <= 9728:
        assert not pf.nic.state.vfre & 1


def test_rss_queries_need_query_rss() -> None:
    pf = make_pf(numvfs=40)                                        # 64 x 2: two queues per VF
    with_guests(pf, [3])
    d = pf.vf(3).guest.driver
    with pytest.raises(VfRequestRefused):
        d.get_reta()
    assert "query_rss is off" in texts(pf, 3)[-1]
    pf.set_vf_query_rss(3, True)
    assert d.get_reta() == [i % 4 for i in range(128)]       # ixgbe's table for >= 4 queues
    assert len(d.get_rss_key()) == 40
    refused(lambda: make_pf("x550", numvfs=1).set_vf_query_rss(0, True), errno.EOPNOTSUPP)


def test_a_broadcast_reaches_a_vf_only_after_its_reset() -> None:
    pf = make_pf(numvfs=2)
    pf.nic.rx([eth(BCAST, WIRE)], 0)
    assert pf.vf(0).receive() == []                               # VFRE off: no copy
    with_guests(pf, [0])
    pf.nic.rx([eth(BCAST, WIRE)], 1)
    assert len(pf.vf(0).receive(now_ns=1)) == 1 and pf.vf(0).stats()["broadcast"] == 1
