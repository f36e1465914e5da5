"""What vswitchd's SR-IOV mode will show: pf.show() as JSON, the mailbox log, per-VF counters
through the VF's own statistics registers."""

from __future__ import annotations

import json

from sriov_helpers import WIRE, eth, make_pf, vmac, with_guests

from sriov.vf_regs import VFGORC_LSB, VFGPRC, VFGPTC, VFMPRC


def test_show_is_json_and_says_what_each_vf_is() -> None:
    pf = make_pf(numvfs=3)
    with_guests(pf, [1])
    pf.set_vf_vlan(2, 7)
    doc = json.loads(json.dumps(pf.show()))
    assert doc["pf"]["num_vfs"] == 3 and doc["pf"]["pool"] == 3 and doc["pf"]["totalvfs"] == 63
    assert doc["sysfs"]["sriov_numvfs"] == "3" and doc["sysfs"]["virtfn2"] == "../0000:03:10.4"
    assert doc["capability"]["first_vf_offset"] == 128 and doc["capability"]["control"]["vf_enable"]
    vf1, vf2 = doc["vfs"][1], doc["vfs"][2]
    assert (vf1["bdf"], vf1["pool"], vf1["queues"], vf1["mac"], vf1["guest"], vf1["domain"]) == \
        ("0000:03:10.2", 1, [4, 5, 6, 7], vmac(1), "vm1", "vm1")
    assert vf1["api"] == "1.4" and vf1["clear_to_send"] and vf1["rx_enabled"] and vf1["xcast_mode"] == "multi"
    assert vf1["mailbox"][0] == "#1 VF->PF RESET"
    assert vf2["vlan"] == 7 and not vf2["rx_enabled"] and vf2["guest"] is None
    assert doc["iommu"]["domains"]["vm1"]["requesters"] == ["0000:03:10.2"]
    assert pf.mailbox_log(1) == vf1["mailbox"]


def test_the_mailbox_log_keeps_the_last_messages_only() -> None:
    pf = make_pf(numvfs=1, mailbox_log=8)
    with_guests(pf, [0])
    d = pf.vf(0).guest.driver
    for vid in range(1, 11):
        d.set_vfta(vid)
    log = pf.mailbox_log(0)
    assert len(log) == 8
    assert log[-2].endswith("VF->PF SET_VLAN add vlan 10") and log[-1].endswith("PF->VF SET_VLAN|ACK|CTS add vlan 10")
    seqs = [int(line.split()[0][1:]) for line in log]
    assert seqs == sorted(seqs) and seqs[-1] - seqs[0] == 7


def test_the_vf_reads_its_own_counters_in_its_registers() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0])
    vf = pf.vf(0)
    pf.nic.rx([eth(vmac(0), WIRE), eth(vmac(0), WIRE), eth("01:00:5e:00:00:01", WIRE)], 0)
    vf.receive()
    vf.send([eth(WIRE, vmac(0))], 0)
    pf.nic.tx_service(10**9)
    bar = vf.bar0()
    s = vf.stats()
    assert (bar.read32(VFGPRC), bar.read32(VFGORC_LSB), bar.read32(VFMPRC), bar.read32(VFGPTC)) == \
        (s["rx_packets"], s["rx_bytes"], s["multicast"], s["tx_packets"]) == (2, 120, 0, 1)
    pf.nic.set_rings(rx=64, queue=vf.nic_queues[0])
    pf.nic.rx([eth(vmac(0), WIRE) for _ in range(70)], 1)   # its ring overflows: QPRDC
    assert vf.stats()["rx_dropped"] == 6


def test_a_guest_leaves_and_another_takes_its_vf() -> None:
    pf = make_pf(numvfs=2)
    with_guests(pf, [0])
    vf = pf.vf(0)
    vf.detach_guest()
    assert vf.guest is None and "vm0" not in pf.iommu.domains and vf.rid not in pf.iommu.context
    assert not pf.nic.state.vfre & 1 and not vf.info.clear_to_send
    vf.attach_guest("vm0b", ram_bytes=16 * 1024 * 1024, mac=vmac(0))
    pf.nic.rx([eth(vmac(0), WIRE)], 0)
    assert len(vf.receive()) == 1 and pf.iommu.context[vf.rid].name == "vm0b"


def test_sriov_turns_virtualization_on_and_gives_it_back() -> None:
    from nicmodel.nic import Nic
    from sriov import SriovPf
    pf = SriovPf(Nic("nic0", init=False))                # VT off: vswitchd's software mode
    st = pf.nic.state
    assert not st.vt_en
    pf.set_numvfs(2)
    assert st.vt_en and st.rpl_en and st.vlan_filter_en
    pf.set_numvfs(0)
    assert not st.vt_en and not st.rpl_en and not st.vlan_filter_en
