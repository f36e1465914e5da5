"""VFs in a graph: each VF's DMA path between the NIC's pool and its guest's port, VEB between VFs,
and the property that no VF ever receives a frame its filters exclude."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from sriov_helpers import BCAST, WIRE, Rig, eth, make_pf, vmac, with_guests

from nicmodel.tables import hash12
from vswitch.core.frame import parse_mac


def rig(n: int = 3, **kw) -> Rig:
    pf = make_pf(numvfs=4, **kw)
    with_guests(pf, list(range(n)))
    return Rig(pf, list(range(n)))


def test_frames_from_the_wire_reach_their_guest_through_its_dma_path() -> None:
    r = rig()
    r.from_wire([eth(vmac(1), WIRE), eth(vmac(2), WIRE), eth(vmac(2), WIRE)])
    assert [len(r.take(f"vm{k}")) for k in range(3)] == [0, 1, 2]
    snap = r.g.snapshot()
    assert snap["elements"]["nic0.vf2"]["rx_delivered"] == 2
    assert snap["ports"]["vm2"]["tx_packets"] == 2
    assert r.pf.iommu.counters["translations"] >= 3


def test_guest_to_guest_goes_through_veb_and_never_to_the_wire() -> None:
    r = rig()
    r.from_vf(0, [eth(vmac(1), vmac(0))])
    r.run(10_000)
    assert len(r.take("vm1")) == 1 and r.take("up") == []
    assert r.g.snapshot()["elements"]["nic0"]["loopback_packets"] == 1
    r.from_vf(0, [eth("02:00:00:77:77:77", vmac(0))], 20_000)          # unknown unicast: the wire
    r.run(30_000)
    assert len(r.take("up")) == 1 and all(not r.take(f"vm{k}") for k in (1, 2))


def test_a_broadcast_from_a_vf_reaches_the_others_and_the_wire_not_itself_unless_lle() -> None:
    r = rig()
    r.from_vf(0, [eth(BCAST, vmac(0))])
    r.run(10_000)
    assert [len(r.take(f"vm{k}")) for k in range(3)] == [0, 1, 1] and len(r.take("up")) == 1
    r.pf.nic.set_loopback(True, lle_pools=[0])                       # PFVMTXSW.LLE for VF 0
    r.from_vf(0, [eth(BCAST, vmac(0))], 20_000)
    r.run(30_000)
    assert [len(r.take(f"vm{k}")) for k in range(3)] == [1, 1, 1] and len(r.take("up")) == 1


def test_veb_needs_the_link_up_and_rx_enabled() -> None:
    r = rig()
    r.pf.nic.set_link(False)
    r.from_vf(0, [eth(vmac(1), vmac(0))])
    r.run(10_000)
    assert r.take("vm1") == [] and r.take("up") == []                 # no VM-to-VM with the link down
    assert r.pf.nic.snapshot()["drops"]["link_down"] == 1
    r.pf.nic.set_link(True)
    r.pf.nic.set_rx_enable(False)
    r.from_vf(0, [eth(vmac(1), vmac(0))], 20_000)
    r.run(30_000)
    assert r.take("vm1") == [] and len(r.take("up")) == 1             # no loopback: it takes the wire


def test_a_vf_to_its_own_mac_stays_off_the_wire() -> None:
    r = rig()
    r.from_vf(0, [eth(vmac(0), vmac(0))])
    r.run(10_000)
    assert r.take("up") == [] and r.take("vm0") == []
    assert r.pf.nic.snapshot()["drops"]["own_pool_no_lle"] == 1


def test_disabling_sriov_takes_the_dma_paths_out_of_the_graph() -> None:
    r = rig()
    events = []
    r.pf.listeners.append(lambda what, vfs: events.append((what, len(vfs))))
    r.pf.set_numvfs(0)
    assert events == [("destroyed", 4)]
    assert not any(n.startswith("nic0.vf") for n in r.g.elements)
    r.pf.set_numvfs(2)
    assert events[-1] == ("created", 2) and {"nic0.vf0", "nic0.vf1"} <= set(r.g.elements)


# -- the property: an oracle written from nic-model.md A, not from the sorter ----------------------------
GROUPS = ["01:00:5e:00:00:01", "01:00:5e:00:01:01", "01:00:5e:7f:00:02", "33:33:00:00:00:10"]


def admitted(pf, k: int, dst: bytes, vlan: int | None) -> bool:
    """May VF k receive a frame to ``dst`` with tag ``vlan`` (None: untagged)?"""
    vf = pf.vf(k)
    i = vf.info
    pool = pf.nic.state.pools[vf.pool]
    if vlan is None:
        if i.pf_vlan or not pool.aupe:
            return False
    elif vlan not in pf.nic.state.vlvf.vids_of(vf.pool):
        return False
    if dst == parse_mac(BCAST):
        return pool.bam
    if dst[0] & 1:
        exact = dst in pf.nic.state.rar.macs_of(vf.pool)
        hashed = pool.rompe and (pf.nic.state.mta.bits >> hash12(dst)) & 1
        return bool(exact or hashed or pool.mpe)
    return dst in pf.nic.state.rar.macs_of(vf.pool)


@settings(max_examples=30, deadline=None)
@given(port_vlan=st.lists(st.sampled_from([None, 10, 20]), min_size=3, max_size=3),
       joined=st.lists(st.sets(st.sampled_from([10, 20, 30])), min_size=3, max_size=3),
       groups=st.lists(st.sets(st.sampled_from(GROUPS)), min_size=3, max_size=3),
       allmulti=st.lists(st.booleans(), min_size=3, max_size=3),
       frames=st.lists(st.tuples(st.sampled_from([vmac(0), vmac(1), vmac(2), "02:00:00:00:77:77", BCAST, *GROUPS]),
                                 st.sampled_from([None, 0, 10, 20, 30])), min_size=1, max_size=30))
def test_no_vf_ever_receives_a_frame_its_filters_exclude(port_vlan, joined, groups, allmulti, frames) -> None:
    pf = make_pf(numvfs=3)
    for k in range(3):
        if allmulti[k]:
            pf.set_vf_trust(k, True)
    with_guests(pf, [0, 1, 2])
    for k in range(3):
        d = pf.vf(k).guest.driver
        d.update_mc_addr_list([parse_mac(g) for g in sorted(groups[k])])
        if allmulti[k]:
            d.update_xcast_mode(2)
        for vid in sorted(joined[k]):
            d.set_vfta(vid)
        if port_vlan[k]:
            pf.set_vf_vlan(k, port_vlan[k])
    r = Rig(pf, [0, 1, 2])
    for t, (dst, vlan) in enumerate(frames):
        r.from_wire([eth(dst, WIRE, vlan=vlan)], t)
        for k in range(3):
            for f in r.take(f"vm{k}"):
                assert admitted(pf, k, f.data[0:6], vlan), (k, dst, vlan)
                if port_vlan[k]:
                    assert f.data[12:14] != b"\x81\x00"     # a port VLAN is stripped
