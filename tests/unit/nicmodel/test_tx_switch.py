"""The TX switch rules of issue 10: VMVIR's priority bits (item 4), VEB loopback into a full
queue without drop enable (item 5), a pool's own unicast with LLE off (item 7)."""

from __future__ import annotations

import pytest
from nic_frames import eth, mac

from nicmodel.nic import Nic

GIG = 1_000_000_000


# -- item 4: VMVIR qos is the PCP of the inserted tag, DEI 0 ---------------------------

@pytest.mark.parametrize("qos", range(8))
def test_vmvir_qos_lands_in_pcp_with_dei_clear(qos: int) -> None:
    """``ip link set vf N vlan 100 qos Q``: the tag on the wire has PCP = Q and DEI = 0."""
    nic = Nic()
    nic.program_pool(1, mac=mac(1), vlan=100)
    nic.set_vmvir(1, "always_default", vid=100, qos=qos)
    nic.tx(1, [eth(mac(9), src=mac(1))], 0)
    (f,) = nic.tx_service(GIG)
    d = f.data
    assert d[12:14] == b"\x81\x00"
    tci = (d[14] << 8) | d[15]
    assert tci >> 13 == qos          # PCP
    assert (tci >> 12) & 1 == 0      # DEI
    assert tci & 0xFFF == 100
    assert nic.regs.read("PFVMVIR", 1) & 0xFFFF == tci   # the register holds the tag as inserted
