"""``ip link set PF vf N ...``: each option's checks, and each setting enforced on traffic."""

from __future__ import annotations

import errno

import pytest
from sriov_helpers import GIG, WIRE, eth, make_pf, refused, vmac, with_guests

from sriov.render import parse_vf_words
from vswitch.core.frame import parse_mac


def wire_after(pf, now: int = GIG) -> list:
    return pf.nic.tx_service(now)


def test_mac_checks_and_clearing() -> None:
    pf = make_pf(numvfs=2)
    st = pf.nic.state
    refused(lambda: pf.set_vf_mac(0, "01:00:5e:00:00:01"), errno.EINVAL, "multicast")
    refused(lambda: pf.set_vf_mac(0, "ff:ff:ff:ff:ff:ff"), errno.EINVAL)
    refused(lambda: pf.set_vf_mac(0, "52:54:00:zz:00:01"), errno.EINVAL)
    refused(lambda: pf.set_vf_mac(2, "52:54:00:00:00:01"), errno.EINVAL, "the PF has 2 VFs")
    pf.set_vf_mac(0, "52:54:00:00:00:01")
    assert st.rar.lookup[parse_mac("52:54:00:00:00:01")] == 1 and pf.vf(0).info.pf_set_mac
    pf.set_vf_mac(0, "00:00:00:00:00:00")
    assert parse_mac("52:54:00:00:00:01") not in st.rar.lookup and not pf.vf(0).info.pf_set_mac
    assert pf.vf(0).vf_info()["mac"] == "00:00:00:00:00:00"


def test_a_full_rar_table_refuses_a_new_vf_mac() -> None:
    pf = make_pf(numvfs=2)
    pf.set_vf_mac(0, "52:54:00:00:00:01")
    nic = pf.nic
    n = 0
    while nic.state.rar.used() < nic.state.rar.size:
        nic.add_mac(pf.pf_pool, f"02:ee:00:00:{n >> 8:02x}:{n & 0xFF:02x}")
        n += 1
    before = nic.config()
    refused(lambda: pf.set_vf_mac(1, "52:54:00:00:00:02"), errno.ENOMEM, "RAR table full")
    assert nic.config() == before and pf.vf(1).info.mac == bytes(6) and not pf.vf(1).info.pf_set_mac
    pf.set_vf_mac(0, "52:54:00:00:00:03")                # a move frees its own entry first (ixgbe)
    assert nic.state.rar.lookup[parse_mac("52:54:00:00:00:03")] == 1
    assert parse_mac("52:54:00:00:00:01") not in nic.state.rar.lookup


def test_vlan_checks() -> None:
    pf = make_pf(numvfs=2)
    refused(lambda: pf.set_vf_vlan(0, 4096), errno.EINVAL)
    refused(lambda: pf.set_vf_vlan(0, 10, qos=8), errno.EINVAL)
    e = refused(lambda: pf.set_vf_vlan(0, 10, proto="802.1ad"), errno.EPROTONOSUPPORT)
    assert e.strerror == "Protocol not supported"
    pf.set_vf_vlan(0, 10, 3)
    st = pf.nic.state
    cfg = st.pools[0]
    assert 10 in st.vlvf.vids_of(0) and 0 not in st.vlvf.vids_of(0)
    assert (cfg.vmvir_mode, cfg.vmvir_vid, cfg.vmvir_qos, cfg.aupe) == ("always_default", 10, 3, False)
    pf.set_vf_vlan(0, 0)
    assert st.vlvf.vids_of(0) == [0] and cfg.aupe and cfg.vmvir_mode == "use_desc"
    pf.set_vf_vlan(0, 0, 3)                              # priority tagging only: VLAN 0 stays joined
    assert st.vlvf.vids_of(0) == [0] and not cfg.aupe
    assert (cfg.vmvir_mode, cfg.vmvir_vid, cfg.vmvir_qos) == ("always_default", 0, 3)


def test_a_full_vlvf_refuses_a_port_vlan_and_keeps_the_old_one() -> None:
    pf = make_pf(numvfs=3)
    pf.set_vf_vlan(0, 20)
    pf.set_vf_vlan(1, 20)                                # VLAN 20's entry is shared: leaving frees nothing
    pf.set_vf_vlan(2, 25)
    nic = pf.nic
    vid = 100
    while nic.state.vlvf.used() < nic.state.vlvf.size:
        nic.add_vlan(pf.pf_pool, vid)
        vid += 1
    before = nic.config()
    refused(lambda: pf.set_vf_vlan(1, 30), errno.ENOSPC, "VLVF table full")
    assert nic.config() == before and pf.vf(1).info.pf_vlan == 20
    pf.set_vf_vlan(2, 30)                                # VLAN 25 was VF 2's alone: its entry is reused
    assert nic.state.vlvf.vids_of(2) == [30] and 25 not in nic.state.vlvf.lookup


def test_port_vlan_is_inserted_on_tx_and_stripped_on_rx() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0, 1])
    pf.set_vf_vlan(0, 10, 5)
    vf = pf.vf(0)
    vf.send([eth(WIRE, vmac(0))], 0)                     # the guest sends untagged
    (out,) = wire_after(pf)
    assert out.data[12:16] == b"\x81\x00" + bytes([(5 << 5) | 0, 10])   # VID 10, PCP 5, DEI 0
    vf.send([eth(WIRE, vmac(0), vlan=10)], GIG)          # a guest's own tag: not allowed
    assert wire_after(pf, 2 * GIG) == []
    snap = pf.nic.snapshot()
    assert snap["drops"]["vlan_not_allowed"] == 1 and snap["port"]["ssvpc"] == 1
    assert vf.stats()["tx_dropped"] == 1
    pf.nic.rx([eth(vmac(0), WIRE, vlan=10), eth(vmac(0), WIRE), eth(vmac(0), WIRE, vlan=11)], 0)
    got = vf.receive()
    assert len(got) == 1                                 # untagged and VLAN 11 do not reach it
    assert got[0].data[12:14] == b"\x08\x00" and got[0].vlan is None   # stripped and hidden
    pf.set_vf_vlan(0, 0)
    pf.nic.rx([eth(vmac(0), WIRE)], 0)
    assert len(vf.receive()) == 1


def test_anti_spoof_drops_a_spoofing_vf_and_counts_it_while_the_others_keep_talking() -> None:
    pf = make_pf(numvfs=3)
    with_guests(pf, [0, 1, 2])
    pf.vf(0).send([eth(WIRE, "52:54:00:66:66:66") for _ in range(4)], 0)   # not its MAC
    pf.vf(1).send([eth(WIRE, vmac(1)) for _ in range(3)], 0)
    out = wire_after(pf)
    assert [f.data[6:12] for f in out] == [parse_mac(vmac(1))] * 3
    snap = pf.nic.snapshot()
    assert snap["port"]["ssvpc"] == 4 and snap["drops"]["spoofed_mac"] == 4
    assert pf.vf(0).stats()["tx_dropped"] == 4 and pf.vf(0).stats()["tx_packets"] == 0
    assert pf.vf(1).stats()["tx_packets"] == 3 and pf.vf(1).stats()["tx_dropped"] == 0
    pf.vf(2).guest.driver.set_vfta(100)
    pf.vf(2).send([eth(WIRE, vmac(2), vlan=100), eth(WIRE, vmac(2), vlan=200)], GIG)
    out = wire_after(pf, 2 * GIG)
    assert len(out) == 1 and pf.nic.snapshot()["drops"]["spoofed_vlan"] == 1   # VLAN 200 not joined
    pf.set_vf_spoofchk(0, False)
    pf.vf(0).send([eth(WIRE, "52:54:00:66:66:66")], 2 * GIG)
    assert len(wire_after(pf, 3 * GIG)) == 1             # spoofchk off: it passes


def test_a_disabled_vf_carries_nothing() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0])
    vf, st = pf.vf(0), pf.nic.state
    pf.set_vf_link_state(0, "disable")
    assert not st.vfre & 1 and not st.vfte & 1 and vf.vf_info()["link_state"] == "disable"
    pf.nic.rx([eth(vmac(0), WIRE)], 0)
    assert vf.receive() == []
    vf.send([eth(WIRE, vmac(0))], 0)
    assert wire_after(pf) == []                          # it waits in the ring (VFTE stalls)
    pf.set_vf_link_state(0, "enable")                    # ixgbe: "not supported", nothing changes
    assert vf.vf_info()["link_state"] == "disable" and not st.vfte & 1
    pf.set_vf_link_state(0, "auto")
    assert vf.guest.driver.service()                     # told to reset; it does (its ring is flushed)
    assert st.vfre & 1 and st.vfte & 1
    vf.send([eth(WIRE, vmac(0))], 2 * GIG)
    assert len(wire_after(pf, 3 * GIG)) == 1
    refused(lambda: pf.set_vf_link_state(0, "up"), errno.EINVAL)


def test_rate_checks_are_ixgbes() -> None:
    pf = make_pf(numvfs=2)
    refused(lambda: pf.set_vf_rate(0, 10), errno.EINVAL, "10 < max")
    refused(lambda: pf.set_vf_rate(0, 10_001), errno.EINVAL)
    refused(lambda: pf.set_vf_rate(0, 500, 100), errno.EINVAL, "min_tx_rate")
    pf.set_vf_rate(0, 500)
    assert pf.vf(0).vf_info()["max_tx_rate"] == 500
    assert {pf.nic.txa.queues[q].rate_bps for q in pf.vf(0).nic_queues} == {500_000_000}
    pf.nic.set_link_speed(1000)
    assert pf.vf(0).vf_info()["max_tx_rate"] == 0        # a link speed change clears it (E.9)
    refused(lambda: pf.set_vf_rate(0, 500), errno.EINVAL, "10 Gb/s")


@pytest.mark.parametrize("rate_mbps,size", [(1000, 1514), (333, 60)])
def test_a_vf_is_shaped_within_one_percent_of_its_rate_over_a_long_run(rate_mbps: int, size: int) -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0])
    pf.set_vf_rate(0, rate_mbps)
    vf = pf.vf(0)
    t, step, sent, first, last = 0, 1_000_000, [], None, 0
    while t < 100_000_000:                               # 100 ms of model time, the ring kept full
        sent.extend(pf.nic.tx_service(t))
        room = vf.tx_room()
        if room:
            vf.send([eth(WIRE, vmac(0), size=size) for _ in range(room)], t)
        t += step
    first, last = sent[0].ts_ns, sent[-1].ts_ns
    bits = sum((len(f.data) + 24) * 8 for f in sent[:-1])
    rate = bits / ((last - first) / 1e9)
    assert abs(rate - rate_mbps * 1e6) / (rate_mbps * 1e6) < 0.01, rate
    assert pf.nic.snapshot()["drops"].get("tx_ring_full", 0) == 0   # shaped, never dropped


def test_trust_and_query_rss() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [1])
    pf.set_vf_trust(1, True)
    assert pf.vf(1).vf_info()["trust"] and not pf.vf(1).info.clear_to_send
    assert pf.vf(1).mailbox_log[-1].text == "PF_CONTROL_MSG (not clear to send: the VF must reset)"
    pf.set_vf_query_rss(1, True)
    assert pf.vf(1).vf_info()["query_rss"]


def test_ip_link_words_and_their_errors() -> None:
    pf = make_pf(numvfs=2)
    pf.ip_link_set(1, ["mac", "52:54:00:00:00:21", "vlan", "10", "qos", "2", "spoofchk", "off",
                       "trust", "on", "state", "auto"])
    info = pf.vf(1).vf_info()
    assert (info["mac"], info["vlan"], info["qos"], info["spoofchk"], info["trust"]) == \
        ("52:54:00:00:00:21", 10, 2, False, True)
    pf.ip_link_set(1, ["max_tx_rate", "600"])
    assert pf.vf(1).vf_info()["max_tx_rate"] == 600
    for words, match in ((["vlan", "ten"], 'Invalid "vlan" value'),
                         (["spoofchk", "maybe"], 'must be "on" or "off", not "maybe"'),
                         (["state", "up"], 'Invalid "state" value'),
                         (["mac", "01:02"], "is invalid lladdr"),
                         (["qos", "3"], "after"),
                         (["colour", "red"], "unknown vf option"),
                         (["vlan"], "missing value")):
        refused(lambda w=words: parse_vf_words(w), errno.EINVAL, match)
    refused(lambda: pf.ip_link_set(1, ["vlan", "10", "proto", "802.1ad"]), errno.EPROTONOSUPPORT)


def test_ip_link_show_prints_what_iproute2_prints() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0])
    pf.set_vf_vlan(1, 10, 3)
    pf.set_vf_rate(1, 500)
    pf.nic.rx([eth(vmac(0), WIRE), eth("ff:ff:ff:ff:ff:ff", WIRE)], 0)
    pf.vf(0).receive()
    text = pf.ip_link_show(stats=True)
    assert text.splitlines() == [
        f"    vf 0     link/ether {vmac(0)} brd ff:ff:ff:ff:ff:ff, spoof checking on, link-state auto, "
        "trust off, query_rss off",
        "    RX: bytes  packets  mcast   bcast   dropped",
        "           120        2       0       1        0",
        "    TX: bytes  packets   dropped",
        "             0        0        0",
        "    vf 1     link/ether 00:00:00:00:00:00 brd ff:ff:ff:ff:ff:ff, vlan 10, qos 3, tx rate 500 (Mbps), "
        "max_tx_rate 500Mbps, spoof checking on, link-state auto, trust off, query_rss off",
        "    RX: bytes  packets  mcast   bcast   dropped",
        "             0        0       0       0        0",
        "    TX: bytes  packets   dropped",
        "             0        0        0",
    ]
