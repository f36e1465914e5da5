"""A guest's multicast list reaching its VF: ixgbevf_set_rx_mode through the mailbox, the NIC's MTA.

The guest's kernel hands its VF driver the netdev's multicast list and flags; the driver
asks the PF for an xcast mode and sends the list's hashes (at most 30).  These transcripts
are what the PF decoded; the frames show what the NIC's filters then let through.
"""

from __future__ import annotations

from sriov_helpers import WIRE, eth, make_pf, with_guests

from nicmodel.tables import hash12
from sriov.host import SriovHost
from sriov.mailbox import XCAST_ALLMULTI, XCAST_MULTI
from vswitch.core.frame import parse_mac
from vswitch.io.rx_filter import parse_dev_mcast

ALL_NODES = "33:33:00:00:00:01"
SOLICITED = "33:33:ff:00:00:02"          # ff02::1:ff00:2, fd62::2's solicited-node group


def texts(pf, k: int) -> list[str]:
    return [e.line().split(" ", 1)[1] for e in pf.vf(k).mailbox_log]


def received(pf, k: int, *groups: str) -> list[str]:
    """Which of ``groups`` a frame from the wire to each reaches VF k with."""
    for v in pf.vfs:
        v.receive()                                           # nothing left from before
    pf.nic.rx([eth(g, WIRE) for g in groups], 0)
    return [f.data[:6].hex(":") for f in pf.vf(k).receive()]


def test_the_guests_groups_go_to_the_pf_and_reach_it_the_others_do_not() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0, 1])
    assert received(pf, 1, SOLICITED) == []                   # before: the VF joined no group
    d = pf.vf(1).guest.driver
    n = len(pf.vf(1).mailbox_log)
    d.set_rx_mode([ALL_NODES, SOLICITED])
    h = [hash12(parse_mac(ALL_NODES)), hash12(parse_mac(SOLICITED))]
    assert texts(pf, 1)[n:] == [
        "VF->PF UPDATE_XCAST_MODE multi",
        "PF->VF UPDATE_XCAST_MODE|ACK|CTS multi",
        f"VF->PF SET_MULTICAST 2 hashes [{h[0]:#05x}, {h[1]:#05x}]",
        "PF->VF SET_MULTICAST|ACK|CTS 2 hashes",
    ]
    assert pf.vf(1).info.mc_hashes == h and set(h) <= set(pf.nic.state.mta.set_bits())
    mc = pf.vf(1).stats()["multicast"]
    assert received(pf, 1, SOLICITED, ALL_NODES, "33:33:ff:00:00:09") == [SOLICITED, ALL_NODES]
    assert pf.vf(1).stats()["multicast"] - mc == 2
    assert received(pf, 0, SOLICITED) == []                   # VF 0 joined nothing: ROMPE off


def test_beyond_30_groups_the_driver_asks_allmulti_an_untrusted_vf_gets_multi_and_30_hashes() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0, 1])
    pf.set_vf_trust(1, True)
    pf.vf(1).guest.driver.service()                           # the trust change resets VF 1
    groups = [f"01:00:5e:00:{i:02x}:{i:02x}" for i in range(1, 41)]
    for k in (0, 1):
        d = pf.vf(k).guest.driver
        n = len(pf.vf(k).mailbox_log)
        assert d.set_rx_mode(groups) == (XCAST_MULTI if k == 0 else XCAST_ALLMULTI)
        t = texts(pf, k)[n:]
        assert t[0] == "VF->PF UPDATE_XCAST_MODE allmulti"
        assert t[1] == ("PF->VF UPDATE_XCAST_MODE|ACK|CTS multi  (untrusted VF: allmulti capped at multi)"
                        if k == 0 else "PF->VF UPDATE_XCAST_MODE|ACK|CTS allmulti")
        assert t[2].startswith("VF->PF SET_MULTICAST 30 hashes [")
    # The 36th group: punted by the untrusted VF's driver, taken by the trusted VF's ALLMULTI.
    assert received(pf, 0, groups[4], groups[35]) == [groups[4]]
    assert received(pf, 1, groups[4], groups[35]) == [groups[4], groups[35]]


def test_the_netdevs_flags_ask_allmulti_and_promisc_a_refusal_leaves_the_mode_and_the_list_still_goes() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0, 1])
    pf.set_vf_trust(1, True)
    pf.vf(1).guest.driver.service()
    assert pf.vf(0).guest.driver.set_rx_mode([ALL_NODES], allmulti=True) == XCAST_MULTI   # untrusted: capped
    d = pf.vf(1).guest.driver
    assert d.set_rx_mode([ALL_NODES], allmulti=True) == XCAST_ALLMULTI
    n = len(pf.vf(1).mailbox_log)
    assert d.set_rx_mode([ALL_NODES], promisc=True) == XCAST_ALLMULTI   # the 82599: no per-pool UPE
    assert texts(pf, 1)[n:] == [
        "VF->PF UPDATE_XCAST_MODE promisc",
        "PF->VF UPDATE_XCAST_MODE|NACK|CTS promisc  (82599 has no per-pool unicast promiscuous mode)",
        "VF->PF SET_MULTICAST 1 hash [0x010]",
        "PF->VF SET_MULTICAST|ACK|CTS 1 hash",
    ]
    assert pf.vf(1).info.xcast_mode == XCAST_ALLMULTI and "xcast promisc refused" in d.transcript[-2]


def test_a_vf_reset_reprograms_the_guests_groups() -> None:
    pf = make_pf(numvfs=1)
    with_guests(pf, [0])
    d = pf.vf(0).guest.driver
    d.set_rx_mode([ALL_NODES, SOLICITED])
    n = len(pf.vf(0).mailbox_log)
    pf.set_vf_trust(0, True)                                  # ixgbe pings the VF to reset
    assert d.service()                                        # the watchdog resets and reopens
    t = texts(pf, 0)[n:]
    reset = t.index("VF->PF RESET")                           # the PF dropped its hashes here
    assert t[reset:].count("VF->PF SET_MULTICAST 2 hashes [0x010, 0x020]") == 1, t
    assert pf.vf(0).info.mc_hashes == [hash12(parse_mac(ALL_NODES)), hash12(parse_mac(SOLICITED))]
    assert received(pf, 0, SOLICITED) == [SOLICITED]


def test_the_host_programs_a_guests_list_only_when_it_changed() -> None:
    host = SriovHost("nic0", numvfs=2)
    host.bind("vm1", 1, {"mac": "52:54:00:00:00:01"})
    vf = host.pf.vf(1)
    g = [parse_mac(ALL_NODES), parse_mac(SOLICITED)]
    assert host.guest_rx_mode("vm1", g)
    n = len(vf.mailbox_log)
    assert not host.guest_rx_mode("vm1", list(reversed(g)))  # the same groups: no mailbox traffic
    assert len(vf.mailbox_log) == n
    assert host.guest_rx_mode("vm1", g[:1])                   # a group left: the list sent again
    assert vf.info.mc_hashes == [hash12(g[0])]
    assert not host.guest_rx_mode("nope", g)                  # not a VF's port


def test_dev_mcast_lines() -> None:
    text = ("2    tap0            1     0     333300000001\n"
            "2    tap0            1     0     01005e000001\n"
            "3    eth1            1     0     3333ff000002\n"
            "garbage\n"
            "4    bad             1     0     zz3300000001\n")
    got = parse_dev_mcast(text)
    assert got == {"tap0": [parse_mac(ALL_NODES), parse_mac("01:00:5e:00:00:01")], "eth1": [parse_mac(SOLICITED)]}
