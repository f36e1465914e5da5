"""The cached / inline fast path gives exactly what the reference selection gives,
also when the configuration changes between batches; and Nic works inside a Graph."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from nic_frames import BCAST, drain, eth, mac

from nicmodel.nic import Nic
from nicmodel.sorter import Derived, bits_of, select_pools
from vswitch.core.graph import Graph

DAS = [mac(1), mac(2), mac(3), mac(4), BCAST, "01:00:5e:00:00:01", "01:00:5e:00:00:02"]
VLANS = [None, 10, 20, 30]

pool_cfg = st.tuples(st.integers(1, 6), st.sampled_from(DAS[:4] + [DAS[5]]), st.sampled_from(VLANS),
                     st.booleans(), st.booleans(), st.booleans())


def expected(nic: Nic, da: str, vlan: int | None) -> set[int]:
    s = nic.state
    if vlan is not None and s.vlan_filter_en and not s.vfta.test(vlan):
        return set()
    P, _ = select_pools(s, Derived(s), bytes.fromhex(da.replace(":", "")), vlan is not None, vlan or 0)
    return set(bits_of(P))


@settings(max_examples=60, deadline=None)
@given(configs=st.lists(pool_cfg, min_size=1, max_size=6),
       frames=st.lists(st.tuples(st.sampled_from(DAS), st.sampled_from(VLANS)), min_size=1, max_size=20),
       reconfig=st.lists(pool_cfg, max_size=3))
def test_fast_path_matches_reference_selection(configs, frames, reconfig) -> None:
    nic = Nic()
    nic.set_pool_flags(2, rompe=True)
    nic.add_multicast("01:00:5e:00:00:01")

    def apply(cfgs) -> None:
        for pool, m, vlan, bam, mpe, aupe in cfgs:
            nic.program_pool(pool, mac=m, vlan=vlan, bam=bam, mpe=mpe, aupe=aupe)

    apply(configs)
    for _phase in range(2):
        for da, vlan in frames:
            nic.rx([eth(da, vlan=vlan)], 0)
            nic.rx([eth(da, vlan=vlan)], 0)   # the second one hits the plan cache
            got = drain(nic)
            exp = expected(nic, da, vlan)
            assert set(got) == exp
            assert all(len(v) == 2 for v in got.values())
        apply(reconfig)


def test_nic_in_a_graph_counts_port_and_drops() -> None:
    g = Graph()
    nic = g.add(Nic("nic"))
    assert isinstance(nic, Nic)
    port = g.add_port(0, "uplink", nic, "wire")
    sent = []
    g.attach_egress(nic, "wire", 0, lambda batch, now: sent.extend(batch))
    nic.program_pool(1, mac=mac(1))
    nic.set_default_pool(0, disabled=True)
    g.push(0, [eth(mac(1)), eth(mac(9))], 0)
    assert port.rx_packets == 2 and port.rx_dropped == 1
    nic.tx(1, [eth(mac(9), src=mac(1))], 0)
    nic.tx_service(10**9)
    assert len(sent) == 1 and port.tx_packets == 1
    assert g.snapshot()["elements"]["nic"]["port"]["gprc"] == 1
