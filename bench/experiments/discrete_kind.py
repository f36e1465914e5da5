"""Kind ``discrete``: a trace through one design (software, VMDq, SR-IOV) in the discrete-time driver.

The point runner of the bottleneck comparison (issue 12): the same run as one
mode of ``vswitch-bench compare`` (`bench.compare.run_point`), with the
design, the costs and the rings taken from the point's parameters.

Parameters
----------
``[topology]``: ``guests`` (the generator's g1..gN behind an uplink) or
``file``; ``[topology.nic]``: ``mode`` (``software``, ``vmdq`` or ``sriov``:
required), ``rx_ring``, ``tx_ring``, ``rx_usecs``, ``rx_frames`` (the NIC's
rings and interrupt moderation); ``cores`` (hypervisor cores); ``[topology.costs]``:
a cost table's tables (``[topology.costs.host]``, ``.guest``, ``.link``,
``.queues``: the virtio ring and the backlog), as docs/costmodel.md has them,
every key checked; ``zero_host = true`` makes every host and guest cost zero
(line-rate runs).  ``[traffic]``: the generator's parameters (or a trace with
its manifest), in recorded time.

``[policy.nic_rx]`` and ``[policy.nic_tx]`` (vmdq and sriov designs): a queue
policy on each guest's NIC RX queues (its pool's or its VF's, between the ring
and the poll) or in front of its NIC TX queue, as the ports' ``rx_qdisc`` and
``tx_qdisc`` settings put them (`bench.experiments.nic_queues`).

Metrics
-------
``offered_frames``, ``offered_pps``; ``delivered_frames``, ``delivered_pps``,
``delivered_mpps``, ``gbps_l2`` (caplen + FCS), ``gbps_l1`` (on the wire);
``host_cpu_cores`` (the hypervisor cores' utilisations summed) and
``host_cpu_pct`` (of the ``cores`` given), ``host_cpu_per_gbps`` (cores per delivered
L2 Gb/s), ``guest_cpu_cores``;
``host_polls_per_s`` and ``guest_polls_per_s`` (interrupts taken, NAPI polls);
``util_<resource>`` for the wire, PCIe, NIC and each hypervisor core,
``vcpu_util_max``; ``dropped`` and ``drops_<reason>`` (summed over elements and
the NIC queue policies); with a NIC queue policy, ``nic_rx_sent_packets``,
``nic_rx_dropped``, ``nic_rx_overlimits`` (summed over the guests' RX queue
policies) and the same ``nic_tx_``;
``bottleneck`` (the resource named), ``bottleneck_util``,
``bottleneck_saturated``.  Histograms: ``latency`` (every guest-bound frame,
from its first bit on the ingress link to the end of its last stage) and, with
``measure.per_port``, ``latency_<guest>`` per guest; ``ports``: each port's
frames and latency percentiles.
"""

from __future__ import annotations

from typing import Any

from bench.experiments import hdr, nic_queues
from bench.experiments.kinds import Kind
from bench.experiments.point_trace import drop_metrics, point_trace, with_nic
from bench.experiments.spec import FieldError, gen_spec, spec_from_params

DESIGNS = ("software", "vmdq", "sriov")


def costs_of(params: dict[str, Any]) -> Any:
    """The point's cost table (`bench.costmodel.CostTable`); FieldError at the key it refuses."""
    from bench.costmodel import parse_costs
    from vswitch.schema import ConfigError
    doc = dict(params["topology"].get("costs") or {})
    zero = doc.pop("zero_host", False)
    if not isinstance(zero, bool):
        raise FieldError(("topology", "costs", "zero_host"), f"expected true or false, got {zero!r}")
    try:
        table = parse_costs(doc, "topology.costs")
    except ConfigError as e:
        msg = str(e).removeprefix("topology.costs: ")
        raise FieldError(("topology", "costs"), msg) from None
    return table.zero_host() if zero else table


def check(params: dict[str, Any]) -> None:
    topo, traffic, _ = spec_from_params(params)
    if topo.nic is None or topo.nic.mode not in DESIGNS:
        raise FieldError(("topology", "nic", "mode"), f"kind \"discrete\" runs one design: set "
                         f"topology.nic.mode to one of {', '.join(DESIGNS)}")
    nic_queues.check(params, topo.nic.mode)
    if traffic.sources:
        raise FieldError(("traffic", "sources"), "simple sources are kind \"queue\"'s; give the generator's "
                         "parameters or a trace")
    if traffic.trace is not None and traffic.manifest is None:
        raise FieldError(("traffic", "trace"), "a trace needs its manifest (traffic.manifest): it says which "
                         "port each frame enters by and names the topology")
    costs_of(params)


def _topology(params: dict[str, Any], spec: Any) -> Any:
    from bench.gen_sidecar import load_port_map, topology_doc
    from vswitch.topology import load_topology, parse_topology
    topo, traffic, _ = spec_from_params(params)
    nic = topo.nic
    assert nic is not None
    base_mode = "vmdq" if nic.mode == "sriov" else nic.mode     # the topology has no SR-IOV mode: modes.py builds it
    if topo.file is not None:
        t = load_topology(topo.file)
    elif traffic.trace is not None:
        pm = load_port_map(traffic.manifest or "")
        if pm.topology is None:
            raise ValueError(f"{traffic.manifest}: the manifest names no topology; give topology.file")
        t = load_topology(pm.topology)
    else:
        t = parse_topology(topology_doc(spec, base_mode), "generated topology")
    t = with_nic(t, nic, base_mode)
    nic_queues.apply(t, params)
    return t


def run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    from bench.compare import run_point

    topo_spec, traffic, measure = spec_from_params(params)
    nic = topo_spec.nic
    assert nic is not None
    costs = costs_of(params)
    spec = gen_spec(topo_spec, traffic, seed) if traffic.trace is None else None
    hists: dict[str, Any] = {}
    with point_trace(spec, traffic) as (trace, port_map):
        topology = _topology(params, spec)
        r = run_point(topology, trace, costs, nic.mode, cores=topo_spec.cores, port_map=port_map,
                      histograms=hists)
    if r["error"]:
        raise ValueError(f"{trace}: {r['error']}")
    from bench.modes import uplink_of
    return result_of(r, hists, topo_spec.cores, measure, uplink_of(topology))


def result_of(r: dict[str, Any], hists: dict[str, Any], cores: int, measure: Any, uplink: str) -> dict[str, Any]:
    """A `run_point` result as the runner's metrics, histograms and port rows."""
    span_s = r["delivered"]["span_ns"] / 1e9
    res = r["resources"]
    host = [n for n, v in res.items() if v["kind"] == "core"]
    vcpus = [n for n, v in res.items() if v["kind"] == "vcpu"]
    b = r["bottleneck"]
    metrics: dict[str, Any] = {
        "offered_frames": r["offered"]["frames"], "offered_pps": r["offered"]["pps"],
        "delivered_frames": r["delivered"]["frames"], "delivered_pps": r["delivered"]["pps"],
        "delivered_mpps": r["delivered"]["pps"] / 1e6,
        "gbps_l2": r["delivered"]["gbps_l2"], "gbps_l1": r["delivered"]["gbps_l1"],
        "host_cpu_cores": r["host_cpu_cores"], "host_cpu_pct": 100 * r["host_cpu_cores"] / cores,
        "guest_cpu_cores": r["guest_cpu_cores"],
        "host_cpu_per_gbps": r["host_cpu_cores"] / r["delivered"]["gbps_l2"] if r["delivered"]["gbps_l2"] else 0.0,
        "host_polls_per_s": sum(res[n]["polls"] for n in host) / span_s if span_s else 0.0,
        "guest_polls_per_s": sum(res[n]["polls"] for n in vcpus) / span_s if span_s else 0.0,
        "vcpu_util_max": max((res[n]["utilisation"] for n in vcpus), default=0.0),
        "dropped": r["drops_total"],
        "bottleneck": b["resource"] or "", "bottleneck_util": b["utilisation"],
        "bottleneck_saturated": bool(b["saturated"]),
    }
    metrics.update({f"util_{n.replace('.', '_')}": v["utilisation"] for n, v in res.items() if v["kind"] != "vcpu"})
    metrics.update(drop_metrics(r["drops"].values()))
    metrics.update(nic_queues.metrics(r.get("policies", {})))
    out: dict[str, Any] = {"metrics": metrics}
    guests = [p for p in r["ports"] if p != uplink]
    if measure.latency:
        total = hdr.new(measure.latency_max_ns, measure.digits)
        encoded: dict[str, str] = {}
        for g in guests:
            h = hdr.new(measure.latency_max_ns, measure.digits)
            if hists.get(g) is not None and r["ports"][g]["frames"]:
                h.add(hists[g])
                total.add(h)
            if measure.per_port:
                encoded[f"latency_{g}"] = hdr.encode(h)
        encoded["latency"] = hdr.encode(total)
        out["histograms"] = encoded
    if measure.per_port:
        ports: dict[str, dict[str, Any]] = {}
        for name, pv in r["ports"].items():
            row: dict[str, Any] = {"frames": pv["frames"], "bytes": pv["bytes"]}
            row.update({f"latency_{k}_ns": v for k, v in pv["latency_ns"].items()})
            ports[name] = row
        out["ports"] = ports
    return out


KIND = Kind(
    name="discrete", run=run, check=check,
    metrics=("offered_frames", "offered_pps", "delivered_frames", "delivered_pps", "delivered_mpps", "gbps_l2",
             "gbps_l1", "host_cpu_cores", "host_cpu_pct", "guest_cpu_cores", "host_cpu_per_gbps", "host_polls_per_s",
             "guest_polls_per_s", "vcpu_util_max", "dropped", "bottleneck", "bottleneck_util",
             "bottleneck_saturated"),
    metric_prefixes=("drops_", "util_", "latency_g", *nic_queues.METRIC_PREFIXES), histograms=("latency",),
    doc="a trace through one design (software, vmdq, sriov) in the discrete-time driver with a cost table "
        "(and queue policies on the NIC's guest queues)")
