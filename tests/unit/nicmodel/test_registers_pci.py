"""BAR0 register file == Python API (issue 4 item 1), and the PCI config space (nic-model.md C)."""

from __future__ import annotations

import pytest
from nic_frames import BCAST, drain, eth, mac

from nicmodel.nic import Nic
from nicmodel.pci import CAP_EXP, CAP_MSIX, CAP_PM, EXT_ARI, EXT_SRIOV
from nicmodel.tables import hash12


def program_by_api(nic: Nic) -> None:
    nic.add_mac(1, mac(1))
    nic.add_mac(2, mac(2))
    nic.add_mac(2, "01:00:5e:00:00:fb")
    nic.add_vlan(2, 10)
    nic.set_pool_flags(1, aupe=True, bam=True, rompe=True)
    nic.set_pool_flags(2, bam=True)
    nic.set_max_frame(2, 9018)
    nic.add_multicast("01:00:5e:00:00:01")
    nic.set_default_pool(3)
    nic.set_drop_enable(5, False)
    nic.set_vlan_strip(4, True)
    nic.set_rings(rx=1024, queue=2)
    nic.set_queue_enabled(7, rx=False, tx=False)
    nic.set_tx_rate(2, 1_000_000_000)
    nic.set_tx_weight(1, 3)
    nic.set_vmvir(2, "always_default", vid=10, qos=3)
    nic.set_spoofcheck(1, mac=True, vlan=True)
    nic.set_loopback(True, lle_pools=[2])
    nic.set_mirror(1, dst=9, pools=[1, 2])
    nic.set_pool_enabled(6, rx=False)


def program_by_registers(nic: Nic) -> None:
    r = nic.regs
    for i, (m, pools) in enumerate(((mac(1), 1 << 1), (mac(2), 1 << 2), ("01:00:5e:00:00:fb", 1 << 2))):
        b = bytes.fromhex(m.replace(":", ""))
        r.write("RAL", i, int.from_bytes(b[:4], "little"))
        r.write("RAH", i, int.from_bytes(b[4:], "little") | 1 << 31)
        r.write("MPSAR_LO", i, pools)
    r.write("VLVF", 0, 10 | 1 << 31)
    r.write("VLVFB", 0, 1 << 2)
    r.write("VFTA", 10 >> 5, 1 << (10 & 31))
    r.write("VMOLR", 1, (1 << 24) | (1 << 27) | (1 << 25) | 1518)
    r.write("VMOLR", 2, (1 << 27) | (1 << 16) | 9018)
    h = hash12(bytes.fromhex("01005e000001"))
    r.write("MTA", h >> 5, 1 << (h & 31))
    r.write("PFVTCTL", 0, 1 | (3 << 7) | (1 << 30))
    r.write("PFQDE", 0, (1 << 16) | (5 << 8) | 0)
    r.write("RXDCTL", 4, (1 << 25) | (1 << 30))
    r.write("RDLEN", 2, 1024 * 16)
    r.write("RXDCTL", 7, 0)
    r.write("TXDCTL", 7, 0)
    r.write("RTTDQSEL", 0, 2)
    r.write("RTTBCNRC", 0, (1 << 31) | (10 << 14))     # factor 10: 10G / 10 = 1G
    r.write("RTTDQSEL", 0, 2)                           # queue 2 belongs to pool 1 (64x2)
    r.write("RTTDT1C", 0, 3)
    r.write("PFVMVIR", 2, (1 << 30) | (3 << 13) | 10)
    r.write("PFVFSPOOF", 0, (1 << 1) | (1 << 9))
    r.write("PFDTXGSWC", 0, 1)
    r.write("PFVMTXSW", 0, 1 << 2)
    r.write("PFMRCTL", 1, 1 | (9 << 8))
    r.write("PFMRVM", 2, (1 << 1) | (1 << 2))
    r.write("PFVFRE", 0, r.read("PFVFRE", 0) & ~(1 << 6))


def test_registers_and_api_give_the_same_state() -> None:
    a, b = Nic(), Nic()
    program_by_api(a)
    program_by_registers(b)
    assert a.config() == b.config()
    # ... and the same register image
    for name in ("RAL", "RAH", "MPSAR_LO", "VLVF", "VLVFB", "VMOLR", "PFVTCTL", "SRRCTL", "RXDCTL",
                 "RDLEN", "PFVMVIR", "PFVFSPOOF", "PFMRCTL", "PFMRVM", "PFVFRE", "MTA", "VFTA"):
        reg = a.regs.regs[name]
        assert [a.regs.read(name, i) for i in range(reg.count)] == \
               [b.regs.read(name, i) for i in range(reg.count)], name


def test_registers_and_api_same_behaviour() -> None:
    a, b = Nic(), Nic()
    program_by_api(a)
    program_by_registers(b)
    frames = [eth(mac(1)), eth(mac(2), vlan=10), eth(BCAST), eth("01:00:5e:00:00:01"),
              eth("01:00:5e:00:00:fb"), eth(mac(77)), eth(mac(2), vlan=10, size=5000)]
    out = []
    for nic in (a, b):
        nic.rx([f.copy() for f in frames], 0)
        out.append({p: [(f.queue, f.data, f.vlan) for f in fs] for p, fs in drain(nic).items()})
    assert out[0] == out[1]
    assert set(out[0]) == {1, 2, 3, 9}


def test_register_readback_after_api() -> None:
    nic = Nic()
    nic.program_pool(4, mac="02:aa:bb:cc:dd:ee", vlan=42)
    i = nic.state.rar.find(bytes.fromhex("02aabbccddee"))
    assert i is not None
    assert nic.regs.read("RAL", i) == 0xCCBBAA02
    assert nic.regs.read("RAH", i) == 0x8000EEDD
    assert nic.regs.read("MPSAR_LO", i) == 1 << 4
    assert nic.regs.read("VFTA", 1) == 1 << 10             # VID 42 = register 1, bit 10
    assert nic.regs.read("PFVTCTL") == 1 | (1 << 30)
    assert nic.regs.offset("SRRCTL", 65) == 0x0D014 + 0x40


def test_statistics_registers_clear_on_read() -> None:
    nic = Nic()
    nic.program_pool(1, mac=mac(1))
    nic.rx([eth(mac(1)) for _ in range(3)], 0)
    assert nic.regs.read("GPRC") == 3
    assert nic.regs.read("GPRC") == 0
    assert nic.snapshot()["port"]["gprc"] == 3


def test_mmio_needs_memory_enable_and_bar() -> None:
    nic = Nic()
    off = nic.regs.offset("PFVTCTL")
    assert nic.mmio_read(0xF000_0000 + off) == 0xFFFFFFFF   # MEM off, BAR unassigned
    nic.pci.write(0x10, 0xF000_0000)
    nic.pci.write(0x04, 0x0006, 2)
    assert nic.mmio_read(0xF000_0000 + off) == nic.regs.read("PFVTCTL")
    assert nic.mmio_write(0xF000_0000 + off, 1 | (5 << 7) | (1 << 30))
    assert nic.state.def_pool == 5


@pytest.mark.parametrize("profile,device", [("82599", 0x10FB), ("82576", 0x10C9), ("i350", 0x1521)])
def test_type0_header(profile: str, device: int) -> None:
    """nic-model.md C: vendor 0x8086, device ID, class 0x020000, header type 0, capabilities."""
    c = Nic(profile=profile).pci
    assert c.read(0x00, 2) == 0x8086 and c.read(0x02, 2) == device
    assert c.read(0x08, 4) >> 8 == 0x020000
    assert c.read(0x0E, 1) & 0x7F == 0
    assert [i for _, i in c.capabilities()] == [CAP_PM, 0x05, CAP_MSIX, CAP_EXP]
    assert [i for _, i, _ in c.ext_capabilities()] == [0x0001, 0x0003, EXT_ARI]


def test_read_only_and_w1c_bits() -> None:
    c = Nic().pci
    c.write(0x00, 0x12345678)                 # vendor/device: read-only
    assert c.read(0x00, 2) == 0x8086
    c.write(0x08, 0)                          # class: read-only
    assert c.read(0x08, 4) >> 8 == 0x020000
    c.data[0x07] |= 0x80                      # hardware sets "detected parity error"
    c.write(0x06, 0x0010, 2)                  # writing 0 to it and 1 to the RO cap bit
    assert c.read(0x06, 2) == 0x8010
    c.write(0x06, 0x8000, 2)                  # write 1 clears
    assert c.read(0x06, 2) == 0x0010
    c.write(0x04, 0xFFFF, 2)
    assert c.read(0x04, 2) == 0x0407


def test_bar_sizing_all_ones() -> None:
    c = Nic().pci
    c.write(0x10, 0xFFFFFFFF)
    assert c.read(0x10) == (~(512 * 1024 - 1) & 0xFFFFFFF0) | 0x4
    c.write(0x10, 0xFEB0_0000)
    c.write(0x14, 0x1)
    assert c.bar_address(0) == 0x1_FEB0_0000


def test_msix_table_size_and_enable() -> None:
    c = Nic().pci
    off = c.find_capability(CAP_MSIX)
    assert off is not None
    assert c.read(off + 2, 2) & 0x7FF == 63                 # 64 vectors on the 82599
    c.write(off + 2, 0xFFFF, 2)
    assert c.read(off + 2, 2) == 0xC000 | 63


def test_extended_list_extends_for_sriov() -> None:
    """The SR-IOV issue links its capability at 0x160 after ARI."""
    c = Nic().pci
    c.add_ext_capability(0x160, EXT_SRIOV, 1)
    assert c.ext_capabilities()[-1] == (0x160, EXT_SRIOV, 1)
    assert c.find_ext_capability(EXT_ARI) == 0x150
