"""The three designs as graphs and plans for the discrete driver.

`build_mode(topology, mode)` builds one trace's topology as the design
``mode`` has it (``software``: the NIC with VT off and the hypervisor's switch
sorting everything; ``vmdq``: a NIC pool per guest; ``sriov``: a VF per
guest, built with the SR-IOV model since the topology has no SR-IOV mode yet);
`plan_for` says which resource does each stage and at what cost
(docs/costmodel.md has the stages and the costs).

Resources: ``wire.rx`` and ``wire.tx`` (the uplink), ``pcie.rx`` (the NIC's DMA
to the host), ``nic`` (the NIC's DMA engine: IOMMU translations), ``core0`` ..
``core<C-1>`` (hypervisor cores), ``<guest>.vcpu``.  Cores: the NIC's default
queue (every frame in software mode) is on core0; each guest's work (its vhost
thread, its VMDq queue's interrupt, its VF interrupts' host share) is on core
``i % C`` for the i-th guest counted from 1, so with C > 1 core0 keeps the
switch and the guests spread over the others first.
"""

from __future__ import annotations

import copy
from typing import Any

from bench.costmodel import CostTable
from vswitch.drivers.discrete import Cost, Plan, PreStage, QueueSpec
from vswitch.topology import Dataplane, NicConfig, Topology, build_dataplane, make_fdb

MODES = ("software", "vmdq", "sriov")
SRIOV_MAX_GUESTS = 63


def guests_of(topo: Topology, dp: Dataplane) -> list[str]:
    return [p.name for p in topo.ports if p.name != dp.uplink]


def _with_nic(topo: Topology, mode: str, uplink: str) -> Topology:
    t = copy.deepcopy(topo)
    if t.nic is None:
        t.nic = NicConfig(mode=mode, uplink=uplink)
    else:
        t.nic.mode = mode
    return t


def uplink_of(topo: Topology) -> str:
    if topo.nic is not None:
        return topo.nic.uplink
    names = [p.name for p in topo.ports]
    if "uplink" in names:
        return "uplink"
    raise ValueError("the topology names no uplink: give it a [nic] section or a port named 'uplink'")


def build_mode(topo: Topology, mode: str) -> tuple[Dataplane, Any]:
    """The dataplane of ``topo`` in ``mode``; the second value is the SR-IOV PF (or None)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: use one of {', '.join(MODES)}")
    uplink = uplink_of(topo)
    if mode != "sriov":
        return build_dataplane(_with_nic(topo, mode, uplink)), None
    return _build_sriov(topo, uplink)


def _build_sriov(topo: Topology, uplink: str) -> tuple[Dataplane, Any]:
    """Each guest on a VF (MAC and access VLAN from its port), the uplink on the NIC's wire; the
    PF's pool (the hypervisor's) takes what no VF does.  No software switch carries frames."""
    from nicmodel.nic import Nic
    from sriov import SriovPf
    from vswitch.core.graph import Graph
    from vswitch.elements.learning_switch import LearningSwitch
    from vswitch.topology import assign_numbers, qdisc_scheduler

    guests = [p for p in topo.ports if p.name != uplink]
    if len(guests) > SRIOV_MAX_GUESTS:
        raise ValueError(f"sriov: at most {SRIOV_MAX_GUESTS} guests (the 82599's VFs), the topology has "
                         f"{len(guests)}")
    cfg = topo.nic or NicConfig(uplink=uplink)
    g = Graph()
    nic = Nic("nic0", cfg.profile)
    nic.set_rings(rx=cfg.rx_ring, tx=cfg.tx_ring)
    nic.set_coalesce(rx_usecs=cfg.rx_usecs, rx_frames=cfg.rx_frames)
    g.add(nic)
    pf = SriovPf(nic, mac="02:00:00:00:00:fe")
    pf.attach(g)
    if guests:
        pf.set_numvfs(len(guests))
    switch = LearningSwitch(topo.bridge.name, make_fdb(topo.bridge))   # the host's; no port of it carries frames
    g.add(switch)
    dp = Dataplane(g, switch, {}, nic=None, uplink=uplink)
    numbers = assign_numbers(topo)
    g.add_port(numbers[uplink], uplink, nic, "wire")
    g.bind_egress(nic, "wire", numbers[uplink])
    dp.numbers[uplink] = numbers[uplink]
    for k, p in enumerate(guests):
        vf = pf.vf(k)
        vlan = p.vlan()
        if vlan.mode == "access" and vlan.tag:
            pf.set_vf_vlan(k, vlan.tag)
        vf.attach_guest(p.name, ram_bytes=16 * 1024 * 1024, cpus=p.vf_cpus, mac=p.mac or None)
        # The port's policies on its VF's queues, as vswitchd's sriov mode installs them.
        if p.rx_qdisc is not None:
            for q in vf.nic_queues:
                nic.set_rx_qdisc(q, qdisc_scheduler(p.rx_qdisc))
        if p.tx_qdisc is not None:
            nic.set_tx_qdisc(vf.pool, qdisc_scheduler(p.tx_qdisc))
        n = numbers[p.name]
        g.add_port(n, p.name, vf.dma, "guest")
        g.bind_egress(vf.dma, "guest", n)
        dp.numbers[p.name] = n
    return dp, pf


def plan_for(mode: str, topo: Topology, dp: Dataplane, costs: CostTable, cores: int = 1,
             pf: Any = None) -> Plan:
    """Which resource does each stage of ``mode`` and what it costs (module docstring)."""
    if cores < 1:
        raise ValueError(f"cores {cores}: must be >= 1")
    L, H, G, Q = costs.link, costs.host, costs.guest, costs.queues
    wire_bps, pcie_bps = L.wire_gbps * 1e9, L.pcie_gbps * 1e9
    uplink = dp.uplink or uplink_of(topo)
    guests = [p.name for p in topo.ports if p.name != uplink]
    resources = {"wire.rx": "wire", "wire.tx": "wire", "pcie.rx": "pcie", "nic": "nic"}
    resources.update({f"core{i}": "core" for i in range(cores)})
    resources.update({f"{g}.vcpu": "vcpu" for g in guests})

    def core_of(i: int) -> str:          # the i-th guest, counted from 1
        return f"core{i % cores}"

    U = dp.numbers[uplink]
    plan = Plan(resources, budget=Q.napi_budget)
    plan.pre[U] = [PreStage("wire.rx", bps=wire_bps, wire=True),
                   PreStage("pcie.rx", bps=pcie_bps, overhead_bytes=L.pcie_overhead_bytes)]
    plan.wire_out[U] = ("wire.tx", wire_bps)
    nicname = "nic0"
    # A host that emulates its NIC (vswitchd: `nic_emulation_ns`, 0 for a real NIC) pays the
    # model's work for every frame crossing it on the core that takes the frame.
    emu = H.nic_emulation_ns
    switch_cost = Cost("core0", H.switch_frame_ns + emu, H.switch_byte_ns, H.irq_ns)
    guest_rx = {g: Cost(f"{g}.vcpu", G.rx_frame_ns, G.rx_byte_ns, G.vm_exit_ns) for g in guests}
    for i, g in enumerate(guests, 1):
        n = dp.numbers[g]
        plan.pre[n] = [PreStage(f"{g}.vcpu", G.tx_frame_ns, G.tx_byte_ns)]
        core = core_of(i)
        if mode == "software":
            # vhost hands the frame to the guest (a copy), then the guest's stack takes it.
            plan.egress[n] = [QueueSpec(f"{g}.backlog", Q.backlog, "backlog_full",
                                        Cost(core, H.vhost_frame_ns, H.copy_byte_ns)),
                              QueueSpec(f"{g}.virtio_rx", Q.virtio_ring, "ring_full", guest_rx[g])]
            # vhost takes the guest's frame (a copy) and the switch classifies it, on vhost's core.
            plan.entry[n] = QueueSpec(f"{g}.virtio_tx", Q.virtio_ring, "ring_full",
                                      Cost(core, H.vhost_tx_frame_ns + H.switch_frame_ns,
                                           H.copy_byte_ns + H.switch_byte_ns))
        elif mode == "vmdq":
            b = dp.nic.bindings[g]
            for q in dp.nic.nic.state.pool_queues(b.pool):
                plan.stages[f"{nicname}.rxq{q}"] = Cost(core, H.vmdq_frame_ns + emu, H.copy_byte_ns, H.irq_ns)
            plan.egress[n] = [QueueSpec(f"{g}.virtio_rx", Q.virtio_ring, "ring_full", guest_rx[g])]
            plan.entry[n] = QueueSpec(f"{g}.virtio_tx", Q.virtio_ring, "ring_full",
                                      Cost(core, H.vhost_frame_ns, H.copy_byte_ns))
        else:
            vf = pf.vf(i - 1)
            for q in vf.nic_queues:
                # The guest's driver polls its VF's ring; the interrupt passes the hypervisor.
                plan.stages[f"{nicname}.rxq{q}"] = Cost(f"{g}.vcpu", G.rx_frame_ns, G.rx_byte_ns, G.vm_exit_ns,
                                                        also=((core, H.vf_irq_ns, emu), ("nic", 0.0, H.iommu_ns)))
    if emu:
        # ... and for every frame it sends to the wire.  vswitchd does that work in the same call
        # as the switch's, so nothing is lost between them: a queue without a limit that
        # matters (the trace's length), the core's other queues drop what it cannot take.
        plan.egress[U] = [QueueSpec(f"{nicname}.tx_emulation", 1 << 30, "ring_full", Cost("core0", emu))]
    if mode == "software":
        plan.stages[f"{nicname}.rxq0"] = switch_cost
    elif mode == "vmdq":
        for q in dp.nic.nic.state.pool_queues(0):
            plan.stages[f"{nicname}.rxq{q}"] = switch_cost
    else:
        for q in pf.nic.state.pool_queues(pf.pf_pool):
            plan.stages[f"{nicname}.rxq{q}"] = switch_cost
    rx_ring = (topo.nic.rx_ring if topo.nic else NicConfig().rx_ring)
    plan.assumed = {"mode": mode, "cores": cores, "guests": len(guests), "costs": costs.to_dict(),
                    "cost_source": costs.source,
                    "rings": {"nic_rx": rx_ring, "nic_tx": topo.nic.tx_ring if topo.nic else NicConfig().tx_ring,
                              "backlog": Q.backlog if mode == "software" else None,
                              "virtio": Q.virtio_ring if mode != "sriov" else None,
                              "napi_budget": Q.napi_budget},
                    "placement": {g: (f"{g}.vcpu" if mode == "sriov" else core_of(i))
                                  for i, g in enumerate(guests, 1)}}
    return plan
