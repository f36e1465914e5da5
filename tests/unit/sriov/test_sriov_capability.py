"""The SR-IOV capability as config cycles see it, per profile, against nic-model.md B and C."""

from __future__ import annotations

import pytest
from sriov_helpers import make_pf

from nicmodel.pci import ConfigSpace
from nicmodel.profiles import PROFILES
from sriov.capability import ARI_HIERARCHY, VF_ENABLE, VF_MSE, SriovCapability
from sriov.vf_regs import VFLINKS

CAP = 0x160
# profile: (TotalVFs in the capability, sriov_totalvfs, VF device ID, offset with ARI, without, stride)
EXPECTED = {
    "82599": (64, 63, 0x10ED, 128, 384, 2),
    "x550": (64, 63, 0x1565, 128, 384, 2),
    "82576": (8, 7, 0x10CA, 128, 384, 2),
    "i350": (8, 7, 0x1520, 128, 384, 4),
}


def test_every_profile_is_covered() -> None:
    assert set(EXPECTED) == set(PROFILES)


@pytest.mark.parametrize("profile", sorted(EXPECTED))
def test_capability_fields_per_profile(profile: str) -> None:
    total, driver_total, vf_did, off_ari, _, stride = EXPECTED[profile]
    pf = make_pf(profile, numvfs=0)
    c = pf.nic.pci
    assert [(o, i) for o, i, _ in c.ext_capabilities()] == [(0x100, 0x1), (0x140, 0x3), (0x150, 0xE), (CAP, 0x10)]
    assert c.read(CAP, 4) & 0xFFFF == 0x0010 and (c.read(CAP, 4) >> 16) & 0xF == 1
    assert c.read(CAP + 0x0C, 2) == total and c.read(CAP + 0x0E, 2) == total      # InitialVFs, TotalVFs
    assert c.read(CAP + 0x1A, 2) == vf_did
    assert c.read(CAP + 0x14, 2) == off_ari and c.read(CAP + 0x16, 2) == stride   # Linux set ARI
    assert c.read(CAP + 0x08, 2) & ARI_HIERARCHY
    assert c.read(CAP + 0x1C, 4) == 0x553 and c.read(CAP + 0x20, 4) == 1          # 4 KiB pages
    fs = pf.sysfs
    assert fs.read("sriov_totalvfs") == f"{driver_total}\n"
    assert fs.read("sriov_offset") == f"{off_ari}\n" and fs.read("sriov_stride") == f"{stride}\n"
    assert fs.read("sriov_vf_device") == f"{vf_did:x}\n"


@pytest.mark.parametrize("profile", sorted(EXPECTED))
def test_offset_without_ari_and_routing_ids_carry_into_the_bus(profile: str) -> None:
    _, driver_total, _, off_ari, off_no_ari, stride = EXPECTED[profile]
    pf = make_pf(profile, numvfs=0, ari=False)
    assert pf.sysfs.read("sriov_offset") == f"{off_no_ari}\n"
    assert not pf.nic.pci.read(CAP + 0x08, 2) & ARI_HIERARCHY
    pf.set_numvfs(driver_total)
    for vf in pf.vfs:
        assert vf.rid == 0x0300 + off_no_ari + vf.index * stride
    assert pf.vf(0).bdf == "0000:04:10.0"                 # 0x0300 + 384: bus 4, devfn 0x80
    last = 0x0300 + off_no_ari + (driver_total - 1) * stride
    assert pf.vfs[-1].bdf == f"0000:{last >> 8:02x}:{(last >> 3) & 0x1F:02x}.{last & 7}"
    ari = make_pf(profile, numvfs=driver_total)
    assert [vf.rid for vf in ari.vfs] == [0x0300 + off_ari + k * stride for k in range(driver_total)]
    assert ari.sysfs.read("virtfn0") == "../0000:03:10.0"


def test_vf_bar_sizing_by_the_all_ones_write_follows_the_system_page_size() -> None:
    pf = make_pf(numvfs=0)
    c = pf.nic.pci
    lo, hi = c.read(CAP + 0x24), c.read(CAP + 0x28)
    c.write(CAP + 0x24, 0xFFFFFFFF)
    c.write(CAP + 0x28, 0xFFFFFFFF)
    assert c.read(CAP + 0x24) == 0xFFFFC00C and c.read(CAP + 0x28) == 0xFFFFFFFF   # 16 KiB, 64-bit, prefetch
    c.write(CAP + 0x24, lo)
    c.write(CAP + 0x28, hi)
    assert c.read(CAP + 0x2C) == 0                        # VF BAR2: not implemented
    c.write(CAP + 0x2C, 0xFFFFFFFF)
    assert c.read(CAP + 0x2C) == 0
    c.write(CAP + 0x20, 0x10)                             # System Page Size 64 KiB (bit 4)
    c.write(CAP + 0x24, 0xFFFFFFFF)
    assert c.read(CAP + 0x24) == 0xFFFF000C               # each VF's BAR now one 64 KiB page
    for bad in (0x3, 0x4, 0x0):                           # two bits, unsupported (16K), none: ignored
        c.write(CAP + 0x20, bad)
        assert c.read(CAP + 0x20) == 0x10


def test_each_vf_bar_is_the_base_plus_its_index_times_the_size() -> None:
    pf = make_pf(numvfs=5)
    base0, size0 = pf.iov.resources[0]
    assert size0 == 16 * 1024 and base0 % (size0 * 64) == 0           # assigned aligned to its total
    assert [vf.fn.bar_address(0) for vf in pf.vfs] == [base0 + k * size0 for k in range(5)]
    base3, _ = pf.iov.resources[3]
    assert pf.vf(2).fn.bar_address(3) == base3 + 2 * 16 * 1024
    assert base3 >= base0 + 64 * size0                                # no overlap with BAR0's range


def test_vf_enable_edge_creates_and_destroys_the_functions_and_numvfs_is_locked() -> None:
    c = ConfigSpace.for_profile(PROFILES["82599"])
    cap = SriovCapability(c, PROFILES["82599"])
    events: list[tuple[str, int]] = []
    cap.on_enable = lambda vfs: events.append(("on", len(vfs)))
    cap.on_disable = lambda vfs: events.append(("off", len(vfs)))
    c.write(CAP + 0x10, 3, 2)
    assert cap.vfs == [] and events == []                 # NumVFs alone creates nothing
    c.write(CAP + 0x08, VF_ENABLE | VF_MSE, 2)
    assert len(cap.vfs) == 3 and events == [("on", 3)]
    c.write(CAP + 0x10, 5, 2)                             # locked while VF Enable is set
    c.write(CAP + 0x08, VF_ENABLE | VF_MSE | ARI_HIERARCHY, 2)
    assert c.read(CAP + 0x10, 2) == 3 and not c.read(CAP + 0x08, 2) & ARI_HIERARCHY
    assert c.read(CAP + 0x14, 2) == 384                   # ARI still off: offset unchanged
    old = cap.vfs
    c.write(CAP + 0x08, 0, 2)
    assert cap.vfs == [] and events[-1] == ("off", 3) and not any(fn.alive for fn in old)
    c.write(CAP + 0x10, 65, 2)                            # above TotalVFs: ignored
    assert c.read(CAP + 0x10, 2) == 3
    c.write(CAP + 0x08, ARI_HIERARCHY, 2)
    assert c.read(CAP + 0x14, 2) == 128                   # ARI Capable Hierarchy: offset 128


def test_a_vf_config_space_reads_ffff_and_has_only_bus_master_writable() -> None:
    pf = make_pf(numvfs=2)
    pfc = pf.nic.pci
    vc = pf.vf(1).fn.pci
    assert vc.read(0x00, 2) == 0xFFFF and vc.read(0x02, 2) == 0xFFFF
    assert vc.read(0x08, 4) == pfc.read(0x08, 4)          # revision and class: the PF's (Ethernet)
    assert vc.read(0x2C, 2) == pfc.read(0x2C, 2) and vc.read(0x2E, 2) == pfc.read(0x2E, 2)
    vc.write(0x04, 0x0007, 2)
    assert vc.read(0x04, 2) == 0x0004                     # MEM and IO are RsvdP: VF MSE gates memory
    assert all(vc.read(0x10 + 4 * b) == 0 for b in range(6))
    assert vc.read(0x3D, 1) == 0                          # no INTx
    caps = dict((i, o) for o, i in vc.capabilities())
    assert vc.read(caps[0x11] + 2, 2) & 0x7FF == 2        # MSI-X: 3 vectors (ixgbevf)
    assert vc.read(caps[0x10] + 4) >> 28 & 1 == 1         # PCIe: FLR capable
    assert [i for _, i, _ in vc.ext_capabilities()] == [0xE]


def test_vf_memory_decodes_only_with_vf_mse() -> None:
    pf = make_pf(numvfs=2)
    bar = pf.vf(0).bar0()
    assert bar.read32(VFLINKS) >> 30 & 1 == 1
    c = pf.nic.pci
    c.write(CAP + 0x08, c.read(CAP + 0x08, 2) & ~VF_MSE, 2)
    assert bar.read32(VFLINKS) == 0xFFFFFFFF
    bar.write32(0x1028, 1 << 25)                          # dropped: no decode
    assert not pf.nic.rings.queues[pf.vf(0).nic_queues[0]].enabled
    c.write(CAP + 0x08, c.read(CAP + 0x08, 2) | VF_MSE, 2)
    assert bar.read32(VFLINKS) >> 30 & 1 == 1
    assert pf.vf(0).fn.mmio_read(pf.vf(0).fn.bar_address(0) + 16 * 1024) == 0xFFFFFFFF   # beyond the BAR
