"""Admin validation as the PF driver does it (issue 10 item 8): DCB credit refills and VF TX
rates refused out of range with the driver's errno, and nothing changed."""

from __future__ import annotations

import errno

import pytest
from nic_frames import mac

from nicmodel.nic import Nic
from nicmodel.tables import NicError


def refused(nic: Nic, call, err: int, match: str) -> None:
    """The call raises the driver's error and changes nothing."""
    before = nic.config()
    with pytest.raises(NicError, match=match) as e:
        call()
    assert e.value.errno == err
    assert nic.config() == before


@pytest.mark.parametrize("refill", [0, -1, 201, 511, 16383])
def test_tx_weight_out_of_dcb_range_refused(refill: int) -> None:
    """ixgbe DCB: refill credits 1..200 (64-byte units, IXGBE_DCB_MAX_CREDIT_REFILL)."""
    nic = Nic(tx_arbitration="wrr")
    refused(nic, lambda: nic.set_tx_weight(1, refill), errno.EINVAL, "1..200")


@pytest.mark.parametrize("refill", [1, 100, 200])
def test_tx_weight_in_range_accepted(refill: int) -> None:
    nic = Nic(tx_arbitration="wrr")
    nic.set_tx_weight(1, refill)
    assert nic.config()["pools"]["1"]["tx_refill"] == refill


IXGBE_RATE_CASES = [
    ("max 5 Mb/s", dict(max_tx_rate_mbps=5), "10 < max"),
    ("max 10 Mb/s", dict(max_tx_rate_mbps=10), "10 < max"),
    ("max above the link speed", dict(max_tx_rate_mbps=10_001), "10 < max"),
    ("negative", dict(max_tx_rate_mbps=-1), "10 < max"),
    ("a min rate", dict(max_tx_rate_mbps=100, min_tx_rate_mbps=50), "min_tx_rate"),
]


@pytest.mark.parametrize("profile", ["82599", "x550"])
@pytest.mark.parametrize("kwargs,match", [c[1:] for c in IXGBE_RATE_CASES], ids=[c[0] for c in IXGBE_RATE_CASES])
def test_pool_tx_rate_refused_as_ixgbe_ndo_set_vf_bw(profile: str, kwargs: dict, match: str) -> None:
    nic = Nic(profile=profile)
    refused(nic, lambda: nic.set_pool_tx_rate(1, **kwargs), errno.EINVAL, match)


def test_pool_tx_rate_needs_link_up() -> None:
    """ixgbe_ndo_set_vf_bw and igb_ndo_set_vf_bw: "verify link is up"."""
    for profile in ("82599", "82576"):
        nic = Nic(profile=profile)
        nic.set_link(False)
        refused(nic, lambda nic=nic: nic.set_pool_tx_rate(1, 500), errno.EINVAL, "link")


@pytest.mark.parametrize("mbps", [0, 11, 500, 10_000])
def test_pool_tx_rate_in_range_accepted(mbps: int) -> None:
    nic = Nic()
    nic.set_pool_tx_rate(1, mbps)
    assert {nic.txa.queues[q].rate_bps for q in nic.state.pool_queues(1)} == {mbps * 1_000_000}


def test_pool_tx_rate_igb_rules() -> None:
    """igb_ndo_set_vf_bw: 82576 only (EOPNOTSUPP elsewhere), 0 <= max <= link speed, min 0."""
    nic = Nic(profile="82576")
    nic.set_pool_tx_rate(1, 5)
    assert nic.txa.queues[nic.state.pool_queues(1)[0]].rate_bps == 5_000_000
    refused(nic, lambda: nic.set_pool_tx_rate(1, 1001), errno.EINVAL, "link speed")
    refused(nic, lambda: nic.set_pool_tx_rate(1, 100, min_tx_rate_mbps=1), errno.EINVAL, "min_tx_rate")
    i350 = Nic(profile="i350")
    refused(i350, lambda: i350.set_pool_tx_rate(1, 100), errno.EOPNOTSUPP, "i350")


def test_errors_carry_errno() -> None:
    """NicError carries the errno a driver would return; table overflow is ENOSPC."""
    nic = Nic(profile="82576")
    with pytest.raises(NicError) as e:
        for i in range(30):
            nic.add_mac(1, mac(i + 1))
    assert e.value.errno == errno.ENOSPC
    with pytest.raises(NicError) as e:
        Nic().set_pool_flags(1, upe=True)
    assert e.value.errno == errno.EOPNOTSUPP
    with pytest.raises(NicError) as e:
        Nic().set_vmvir(1, "always_default", vid=5000)
    assert e.value.errno == errno.EINVAL
