"""Kind ``replay``: a trace through the topology in virtual time (the offline replay driver).

The trace is the one ``[traffic]`` names (``trace``, with ``manifest`` its
port map and topology, as ``vswitch-bench replay --map-from``), or one the
generator makes from the point's traffic parameters and seed (as ``vswitch-bench
gen``; into a temporary file, removed after).  The topology is
``topology.file`` (a vswitch topology TOML, docs/config.md), or the
generator's: an uplink and a port g<i> per guest, with the emulated NIC
between them when ``[topology.nic]`` names a mode; ``[topology.nic]``'s
settings (rings, coalescing) apply to a topology file's ``[nic]`` too.

Metrics (per point): ``frames``, ``bytes`` (what was replayed), ``span_s`` (the
capture's span), ``offered_pps``; ``delivered``, ``delivered_bytes`` (frames
and capture bytes every port transmitted, flood copies included),
``delivered_pps``, ``throughput_mbps`` (delivered capture bytes x 8 over the
span); the switch's ``forwarded`` and ``flooded``; ``dropped`` (every drop of
every element) and ``drops_<reason>`` per reason (``ring_full``,
``fdb_full``, ...; zero reasons omitted); the ports' ``rx_dropped`` and
``tx_dropped``.  With ``measure.latency``, histogram ``latency``: each
transmitted frame's time in the dataplane, from its entry (its capture
timestamp) to its port's transmit, in virtual time, so it is the queueing the
model does (a NIC ring waiting for its interrupt, rx-usecs); a frame the
NIC's TX engine sends is stamped with the start of its transmission, so on
that path it counts from there.  ``ports``: each port's rx/tx counters and
its own latency percentiles.

Designs: ``topology.nic.mode`` ``software``, ``vmdq`` or ``sriov`` (a VF per
guest, built as `bench.modes.build_mode` builds it for ``compare``).

Policies: ``[policy.nic_rx]`` and ``[policy.nic_tx]`` (vmdq or sriov: a queue
policy on each guest's NIC RX queues or its TX queue, on a VF's queues in
sriov, as the ports' ``rx_qdisc`` and ``tx_qdisc``;
`bench.experiments.nic_queues`), with their metrics
``nic_rx_sent_packets``, ``nic_rx_dropped``, ``nic_rx_overlimits`` (and
``nic_tx_``) and their drops in ``dropped`` and ``drops_<reason>``; any other
``[policy]`` table is refused, naming it, rather than ignored.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.experiments import hdr, nic_queues
from bench.experiments.kinds import Kind
from bench.experiments.point_trace import drop_metrics, point_trace, with_nic
from bench.experiments.spec import FieldError, gen_spec, spec_from_params


def check(params: dict[str, Any]) -> None:
    topo, traffic, _ = spec_from_params(params)
    nic_queues.check(params, topo.nic.mode if topo.nic is not None else None)
    for key, unset in (("cores", topo.cores == 1), ("costs", not topo.costs)):
        if not unset:
            raise FieldError(("topology", key), "kind \"replay\" charges no costs (zero processing time); "
                             "use kind \"discrete\"")
    if traffic.sources:
        raise FieldError(("traffic", "sources"), "kind \"replay\" replays a trace or the generator's traffic; "
                         "simple sources are kind \"queue\"'s")
    if traffic.trace is not None and traffic.manifest is None and topo.file is None:
        raise FieldError(("traffic", "trace"), "a trace needs its manifest (traffic.manifest) or a topology "
                         "(topology.file) to say which port each frame enters by")
    if topo.file is not None:
        from vswitch.topology import ConfigError, load_topology
        try:
            t = load_topology(topo.file)
        except ConfigError as e:
            raise FieldError(("topology", "file"), str(e)) from None
        if topo.nic is not None and t.nic is None:
            raise FieldError(("topology", "nic"), f"{topo.file} has no [nic] for these settings to change")
        if traffic.trace is None:
            names = {p.name for p in t.ports}
            need = {"uplink", *(f"g{i}" for i in range(1, topo.guests + 1))}
            missing = sorted(need - names)
            if missing:
                raise FieldError(("topology", "file"), f"generated traffic enters by ports uplink and g1..g"
                                 f"{topo.guests}: {topo.file} has no {', '.join(missing[:3])}")


def _base_mode(topo: Any) -> str:
    """The topology's NIC mode: SR-IOV's is built on a VMDq topology (`bench.modes.build_mode`)."""
    return "vmdq" if topo.nic.mode == "sriov" else str(topo.nic.mode)


def _topology(params: dict[str, Any], spec: Any) -> Any:
    from bench.gen_sidecar import topology_doc
    from vswitch.topology import load_topology, parse_topology
    topo, traffic, _ = spec_from_params(params)
    if topo.file is not None:
        t = load_topology(topo.file)
    elif traffic.trace is not None:
        from bench.gen_sidecar import load_port_map
        pm = load_port_map(traffic.manifest or "")
        if pm.topology is None:
            raise ValueError(f"{traffic.manifest}: the manifest names no topology; give topology.file")
        t = load_topology(pm.topology)
    else:
        t = parse_topology(topology_doc(spec, _base_mode(topo) if topo.nic else "none"), "generated topology")
    t = with_nic(t, topo.nic, _base_mode(topo)) if topo.nic is not None else t
    if params["policy"]:
        nic_queues.apply(t, params)
    return t


def run(params: dict[str, Any], seed: int) -> dict[str, Any]:
    from bench.modes import build_mode
    from vswitch.drivers.replay import ReplayDriver, SourceMacAssigner, records_by_source_mac
    from vswitch.topology import build_dataplane

    topo_spec, traffic, measure = spec_from_params(params)
    spec = gen_spec(topo_spec, traffic, seed) if traffic.trace is None else None
    with point_trace(spec, traffic) as (trace, pm):
        fixed: dict[bytes, str] = dict(pm.macs) if pm is not None else {}
        default: str | None = pm.default_port if pm is not None else None
        topology = _topology(params, spec)
        if topo_spec.nic is not None and topo_spec.nic.mode == "sriov":
            dp = build_mode(topology, "sriov")[0]        # a VF per guest, as compare's SR-IOV design
        else:
            dp = build_dataplane(topology)
        # (in sriov mode no guest is a switch port: a MAC the map lacks goes round the graph's ports)
        candidates = list(dp.switch.ports) or sorted(dp.graph.ports)
        assign = SourceMacAssigner(candidates, {m: dp.numbers[p] for m, p in fixed.items()
                                                           if p in dp.numbers},
                                   dp.numbers.get(default or ""))
        driver = ReplayDriver(dp, batch=traffic.batch)
        lat = {n: hdr.new(measure.latency_max_ns, measure.digits) for n in dp.graph.ports}
        sent = Counter[int]()
        sent_bytes = Counter[int]()
        record = measure.latency

        def transmit(number: int) -> Any:
            h = lat[number]
            rec = h.record_value

            def send(batch: Any, now_ns: int) -> None:
                sent[number] += len(batch)
                sent_bytes[number] += sum(len(f.data) for f in batch)
                if record:
                    for f in batch:
                        rec(max(1, now_ns - f.ts_ns))
            return send
        for number in dp.graph.ports:
            dp.graph.set_transmit(number, transmit(number))
        result = driver.run(records_by_source_mac(trace, assign))
        if result.error:
            raise ValueError(f"{trace}: {result.error}")
        snap = dp.graph.snapshot()
    span = result.duration_ns / 1e9
    from bench.compare import nic_policies
    policies = nic_policies(snap)
    drops = drop_metrics(el.get("drops", {}) for el in [*snap["elements"].values(), *policies.values()])
    sw = snap["elements"][dp.switch.name]
    delivered, dbytes = sum(sent.values()), sum(sent_bytes.values())
    ports_snap = snap["ports"]
    metrics: dict[str, Any] = {
        "frames": result.frames, "bytes": result.bytes, "span_s": span,
        "offered_pps": result.frames / span if span else 0.0,
        "delivered": delivered, "delivered_bytes": dbytes,
        "delivered_pps": delivered / span if span else 0.0,
        "throughput_mbps": dbytes * 8 / span / 1e6 if span else 0.0,
        "forwarded": sw["forwarded"], "flooded": sw["flooded"],
        "dropped": sum(drops.values()),
        "rx_dropped": sum(p.get("rx_dropped", 0) for p in ports_snap.values()),
        "tx_dropped": sum(p.get("tx_dropped", 0) for p in ports_snap.values()),
    }
    metrics.update(drops)
    metrics.update(nic_queues.metrics(policies))
    total = hdr.new(measure.latency_max_ns, measure.digits)
    ports: dict[str, dict[str, Any]] = {}
    for number, h in lat.items():
        name = dp.name_of(number)
        p = ports_snap.get(name, {})
        row = {k: p.get(k, 0) for k in ("rx_packets", "rx_bytes", "rx_dropped", "tx_packets", "tx_bytes",
                                         "tx_dropped")}
        if record:
            total.add(h)
            row.update(hdr.summary("latency", h, measure.percentiles))
        ports[name] = row
    out: dict[str, Any] = {"metrics": metrics, "ports": ports if measure.per_port else {}}
    if record:
        out["histograms"] = {"latency": hdr.encode(total)}
    return out


KIND = Kind(
    name="replay", run=run, check=check,
    metrics=("frames", "bytes", "span_s", "offered_pps", "delivered", "delivered_bytes", "delivered_pps",
             "throughput_mbps", "forwarded", "flooded", "dropped", "rx_dropped", "tx_dropped"),
    metric_prefixes=("drops_", *nic_queues.METRIC_PREFIXES), histograms=("latency",),
    doc="a trace (given, or generated from the point's traffic and seed) through the topology in virtual time")
