"""The enable/disable sequence through sysfs, and every sysfs error (Linux iov.c, ixgbe)."""

from __future__ import annotations

import errno

from sriov_helpers import make_pf, refused

from sriov.capability import VF_ENABLE, VF_MSE

CAP = 0x160


def test_enable_then_disable_through_sriov_numvfs() -> None:
    pf = make_pf(numvfs=0)
    nic, st = pf.nic, pf.nic.state
    assert st.layout.mrqc == 0x8 and pf.sysfs.read("sriov_numvfs") == "0\n"
    pf.sysfs.write("sriov_numvfs", "4\n")
    assert pf.sysfs.read("sriov_numvfs") == "4\n"
    assert [n for n in pf.sysfs.listdir() if n.startswith("virtfn")] == [f"virtfn{k}" for k in range(4)]
    assert pf.sysfs.read("virtfn3") == "../0000:03:10.6"
    ctrl = nic.pci.read(CAP + 0x08, 2)
    assert ctrl & VF_ENABLE and ctrl & VF_MSE and nic.pci.read(CAP + 0x10, 2) == 4
    assert st.layout.mrqc == 0xA and st.num_pools == 32   # up to 31 VFs: 32 pools x 4 queues
    assert pf.pf_pool == 4 and st.def_pool == 4           # the PF's pool follows the last VF's
    assert pf.vf(2).pool == 2 and pf.vf(2).nic_queues == [8, 9, 10, 11]
    assert st.vfre & 0xF == 0 and st.vfte & 0xF == 0      # VF pools off until the VF's RESET
    assert st.vfre >> 4 & 1 and st.veb_en
    assert nic.regs.read("RAH", 0) >> 31 and nic.state.rar.macs_of(4)   # the PF's MAC in its pool
    pf.sysfs.write("sriov_numvfs", "0")
    assert pf.vfs == [] and pf.sysfs.read("sriov_numvfs") == "0\n"
    assert not nic.pci.read(CAP + 0x08, 2) & (VF_ENABLE | VF_MSE) and nic.pci.read(CAP + 0x10, 2) == 0
    assert [n for n in pf.sysfs.listdir() if n.startswith("virtfn")] == []
    assert st.layout.mrqc == 0x8 and st.def_pool == 0 and st.rar.macs_of(0)   # the NIC as it was
    pf.set_numvfs(40)
    assert st.layout.mrqc == 0xB and st.num_pools == 64 and pf.pf_pool == 40
    assert pf.vf(39).nic_queues == [78, 79]


def test_sriov_numvfs_errors_are_the_kernels() -> None:
    pf = make_pf(numvfs=0)
    before = pf.nic.config()
    e = refused(lambda: pf.sysfs.write("sriov_numvfs", "64"), errno.ERANGE, "sriov_totalvfs is 63")
    assert e.strerror == "Numerical result out of range"
    refused(lambda: pf.sysfs.write("sriov_numvfs", "four"), errno.EINVAL)
    refused(lambda: pf.sysfs.write("sriov_numvfs", "-1"), errno.EINVAL)
    refused(lambda: pf.sysfs.write("sriov_numvfs", "70000"), errno.EINVAL)   # kstrtou16
    assert pf.nic.config() == before and pf.vfs == []
    pf.sysfs.write("sriov_numvfs", "3")
    vfs = list(pf.vfs)
    pf.sysfs.write("sriov_numvfs", "3")                   # the current value: nothing happens
    assert pf.vfs == vfs and all(a is b for a, b in zip(pf.vfs, vfs, strict=True))
    cfg = pf.nic.config()
    refused(lambda: pf.sysfs.write("sriov_numvfs", "5"), errno.EBUSY,
            "3 VFs already enabled. Disable before enabling 5 VFs")
    assert pf.nic.config() == cfg and len(pf.vfs) == 3
    refused(lambda: pf.sysfs.write("sriov_totalvfs", "7"), errno.EACCES)
    refused(lambda: pf.sysfs.read("sriov_nonsense"), errno.ENOENT)
    refused(lambda: pf.sysfs.read("virtfn3"), errno.ENOENT)
    pf.sysfs.write("sriov_numvfs", "0")
    pf.sysfs.write("sriov_numvfs", "5")
    assert len(pf.vfs) == 5


def test_igb_profiles_stop_at_seven() -> None:
    pf = make_pf("82576", numvfs=0)
    refused(lambda: pf.set_numvfs(8), errno.ERANGE)
    pf.set_numvfs(7)
    st = pf.nic.state
    assert st.num_pools == 8 and pf.pf_pool == 7 and pf.vf(3).nic_queues == [3, 11]   # p and p + 8


def test_offloaded_macvlans_take_pools_from_the_vfs() -> None:
    pf = make_pf(numvfs=0, offloaded_macvlans=2)
    refused(lambda: pf.set_numvfs(62), errno.EPERM, "2 offloaded macvlans. Creating more than 61 VFs")
    assert pf.vfs == []
    pf.set_numvfs(61)
    assert len(pf.vfs) == 61


def test_a_vf_bus_beyond_the_bridge_range_is_refused_and_changes_nothing() -> None:
    pf = make_pf(numvfs=0, ari=False, bus_end=3)          # 384 carries into bus 4: not routed
    before = pf.nic.config()
    refused(lambda: pf.set_numvfs(1), errno.ENOMEM, r"can't enable 1 VFs \(bus 04 out of range")
    assert pf.nic.config() == before and pf.vfs == [] and pf.sysfs.read("sriov_numvfs") == "0\n"
    assert pf.nic.pci.read(CAP + 0x10, 2) == 0 and not pf.nic.pci.read(CAP + 0x08, 2) & VF_ENABLE
    ok = make_pf(numvfs=0, bus_end=3)                     # with ARI the VFs stay on bus 3
    ok.set_numvfs(63)
    assert ok.vfs[-1].bdf == "0000:03:1f.4"
