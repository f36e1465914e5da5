"""The SR-IOV gaps of issue 10 item 9: per-pool security-drop counting (PFVMECM), the queue
statistics mapping (RQSMR), a settable link speed that clears rate limits (E.9), FLR."""

from __future__ import annotations

import errno

import pytest
from nic_frames import eth, mac

from nicmodel.nic import Nic
from nicmodel.profiles import PROFILES
from nicmodel.tables import NicError

GIG = 1_000_000_000
M32 = 0xFFFFFFFF


def bitmap(nic: Nic, name: str) -> int:
    return nic.regs.read(name, 0) | nic.regs.read(name, 1) << 32


def refused(nic: Nic, call, err: int, match: str) -> None:
    before = nic.config()
    with pytest.raises(NicError, match=match) as e:
        call()
    assert e.value.errno == err
    assert nic.config() == before


def test_pfvmecm_selects_the_pools_counted_in_ssvpc() -> None:
    """PFVMECM (reset 0) says which pools' security drops SSVPC counts; every pool counts its own."""
    assert Nic(init=False).regs.read("PFVMECM", 0) == 0
    nic = Nic()
    assert bitmap(nic, "PFVMECM") == (1 << 64) - 1       # the PF bring-up counts every pool
    for p in (1, 2):
        nic.program_pool(p, mac=mac(p))
        nic.set_spoofcheck(p, mac=True)
    nic.regs.write("PFVMECM", 0, M32 & ~(1 << 2))
    nic.tx(1, [eth(mac(9), src=mac(50))], 0)            # spoofed
    nic.tx(2, [eth(mac(9), src=mac(51)) for _ in range(3)], 0)
    assert nic.tx_service(GIG) == []
    snap = nic.snapshot()
    assert snap["port"]["ssvpc"] == 1
    assert snap["pools"]["1"]["tx_spoofed"] == 1 and snap["pools"]["2"]["tx_spoofed"] == 3
    assert nic.regs.read("SSVPC") == 1


def test_vmvir_violation_counts_in_ssvpc() -> None:
    """X550 SSVPC: a tag that contradicts PFVMVIR is a security drop like anti-spoof."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1), vlan=10)
    nic.set_vmvir(1, "always_default", vid=10)
    nic.tx(1, [eth(mac(9), src=mac(1), vlan=10)], 0)    # the guest tagged it itself
    assert nic.tx_service(GIG) == []
    snap = nic.snapshot()
    assert snap["drops"]["vlan_not_allowed"] == 1 and snap["port"]["ssvpc"] == 1
    assert snap["pools"]["1"]["tx_spoofed"] == 1


def test_rqsmr_maps_every_queue_to_a_statistics_set() -> None:
    """QPRC/QPRDC[n] count the queues RQSMR maps to set n (reset: every queue on set 0)."""
    nic = Nic()
    nic.program_pool(50, mac=mac(50))
    q = nic.state.pool_queues(50)[0]
    assert q == 100
    nic.set_rings(rx=64, queue=q)
    nic.rx([eth(mac(50)) for _ in range(70)], 0)
    assert nic.regs.read("QPRDC", 0) == 6 and nic.regs.read("QPRC", 0) == 64
    nic.regs.write("RQSMR", q // 4, 7 << (8 * (q % 4)))
    assert nic.regs.read("RQSMR", q // 4) == 7 << (8 * (q % 4))
    nic.poll(q, 64, 1)
    nic.rx([eth(mac(50)) for _ in range(70)], 2)
    assert nic.regs.read("QPRDC", 7) == 6 and nic.regs.read("QPRC", 7) == 64
    assert nic.regs.read("QPRDC", 0) == 0 and nic.regs.read("QPRC", 0) == 0
    assert nic.snapshot()["port"]["qprdc"] == 12


@pytest.mark.parametrize("profile,speeds,bad", [("82599", (100, 1000, 10_000), 2500),
                                                ("82576", (10, 100, 1000), 10_000)])
def test_link_speed_settable_and_clears_rate_limits(profile: str, speeds: tuple[int, ...], bad: int) -> None:
    """ixgbe_check_vf_rate_limit: a link speed change disables every VF's TX rate (E.9)."""
    nic = Nic(profile=profile)
    nic.program_pool(1, mac=mac(1))
    top = speeds[-1]
    nic.set_tx_rate(nic.state.pool_queues(1)[0], top * 1_000_000 // 10)
    nic.set_link_speed(top)                              # unchanged: limits stay
    assert nic.txa.queues[nic.state.pool_queues(1)[0]].rate_bps == top * 100_000
    refused(nic, lambda: nic.set_link_speed(bad), errno.EINVAL, "speed")
    nic.set_link_speed(speeds[1])
    assert all(q.rate_bps == 0 for q in nic.txa.queues)
    assert nic.config()["mode"]["link_speed_mbps"] == speeds[1]
    # the wire now runs at the new speed: 60-byte frames, (60 + 24) * 8 bits each
    per_frame = -(-(60 + 24) * 8 * GIG // (speeds[1] * 1_000_000))
    nic.tx(1, [eth(mac(9), src=mac(1)) for _ in range(20)], 0)
    assert len(nic.tx_service(10 * per_frame - 1)) == 10


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_pcie_device_capabilities_advertise_flr(profile: str) -> None:
    """Device Capabilities bit 28: Function Level Reset capable (what the config space claims)."""
    c = Nic(profile=profile).pci
    assert c.read(0xA4, 4) >> 28 & 1 == 1


def test_pool_tx_rate_needs_a_10g_link_on_ixgbe() -> None:
    """ixgbe_ndo_set_vf_bw: "verify we are linked at 10Gbps"."""
    nic = Nic()
    nic.set_link_speed(1000)
    refused(nic, lambda: nic.set_pool_tx_rate(1, 500), errno.EINVAL, "10 Gb/s")
