"""Pool bits beyond the current layout (issue 10 item 6): ignored while they are there, and
re-masked by a layout change (SR-IOV switches the 82599 between 64x2 and 32x4), on every profile."""

from __future__ import annotations

import pytest
from nic_frames import BCAST, drain, eth, mac

from nicmodel.nic import Nic
from nicmodel.profiles import PROFILES

GIG = 1_000_000_000
M32 = 0xFFFFFFFF


def bitmap(nic: Nic, name: str) -> int:
    return nic.regs.read(name, 0) | nic.regs.read(name, 1) << 32


def exercise(nic: Nic) -> dict[int, list]:
    """RX unicast/broadcast/multicast/unknown, TX from the lowest and highest pool with VEB on,
    with VLAN filtering on and off (off, the AUPE step does not hide MPSAR bits)."""
    n = nic.state.num_pools
    got: dict[int, list] = {}
    for vlan_filter in (True, False):
        nic.set_vlan_filter(vlan_filter)
        nic.rx([eth(mac(1)), eth(mac(2)), eth(BCAST), eth("01:00:5e:00:00:01"), eth(mac(77))], 0)
        for p in (1, n - 1):
            nic.tx(p, [eth(mac(1), src=mac(2)), eth(BCAST, src=mac(2))], 0)
        nic.tx_service(GIG)
        for p, fs in drain(nic).items():
            got.setdefault(p, []).extend(fs)
    assert set(got) <= set(range(n))
    return got


LAYOUT_CHANGES = [(name, a.mrqc, b.mrqc, how) for name, prof in PROFILES.items()
                  for a in prof.layouts for b in prof.layouts for how in ("register", "api")]


@pytest.mark.parametrize("profile,frm,to,how", LAYOUT_CHANGES,
                         ids=[f"{p} {a:#x}->{b:#x} by {h}" for p, a, b, h in LAYOUT_CHANGES])
def test_stray_pool_bits_are_ignored_and_remasked_by_a_layout_change(profile: str, frm: int, to: int,
                                                                     how: str) -> None:
    nic = Nic(profile=profile, mrqc=frm)
    top = nic.state.num_pools - 1
    nic.program_pool(top, mac=mac(1))
    nic.program_pool(1, mac=mac(2))
    nic.set_loopback(True)
    nic.set_mirror(0, dst=top, pools=[1])
    r = nic.regs
    for name in ("PFVFRE", "PFVFTE", "PFVMTXSW"):
        r.write(name, 0, M32)
        r.write(name, 1, M32)               # bits for pools this device may not have
    i = nic.state.rar.find(bytes.fromhex(mac(1).replace(":", "")))
    assert i is not None
    r.write("MPSAR_LO", i, M32)
    r.write("MPSAR_HI", i, M32)
    r.write("PFMRVM", 0, M32)
    r.write("PFMRVM", 4, M32)
    exercise(nic)                            # nonexistent pools ignored: no IndexError
    if how == "register":
        r.write("MRQC", 0, to)
    else:
        nic.set_layout(to)
    n = nic.state.num_pools
    mask = (1 << n) - 1
    for name in ("PFVFRE", "PFVFTE", "PFVMTXSW"):
        assert bitmap(nic, name) == mask, name
    assert r.read("MPSAR_LO", i) | r.read("MPSAR_HI", i) << 32 == mask
    cfg = nic.config()
    assert all(max(e["pools"], default=0) < n for e in cfg["filters"]["rar"])
    for rule in cfg["mirror"]:
        assert rule["dst"] < n and max(rule["pools"], default=0) < n
    assert bool(cfg["mirror"]) == (top < n)  # a rule whose destination is gone is switched off
    got = exercise(nic)
    to_mac1 = {p for p, fs in got.items() if any(f.data[:6] == bytes.fromhex("020000000001") for f in fs)}
    assert to_mac1 <= set(range(n))
    if top < n:
        assert top in to_mac1
