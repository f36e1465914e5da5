"""``[policy.nic_rx]`` and ``[policy.nic_tx]``: a queue policy on each guest's NIC queues in an experiment.

Kinds ``discrete`` and ``replay`` take them for the designs with guest queues on the NIC
(vmdq and sriov): each table gives every guest port (or those ``ports``
names) the port setting of docs/config.md, ``rx_qdisc`` (each RX queue of its pool or
VF, between the ring and the poll) or ``tx_qdisc`` (in front of its TX queue), so the
dataplane the kind builds carries them as vswitchd would.  A table has ``qdisc`` (a kind
of docs/policies.md, or a name under ``[policy.nic_rx.qdiscs.NAME]``, a table of
``kind`` and its parameters, so a sweep axis can list qdiscs by name), the kind's
parameters, and ``ports`` (default: every guest).  Metrics: ``nic_rx_sent_packets``,
``nic_rx_dropped``, ``nic_rx_overlimits`` summed over the guests' RX queue policies, and
the same ``nic_tx_``.
"""

from __future__ import annotations

from typing import Any

from bench.experiments.spec import FieldError

__all__ = ["NIC_QUEUES", "parse", "check", "apply", "metrics", "METRIC_PREFIXES"]

METRIC_PREFIXES = ("nic_rx_", "nic_tx_")


# [policy.NAME] -> the port setting it gives each guest
NIC_QUEUES = {"nic_rx": "rx_qdisc", "nic_tx": "tx_qdisc"}


def parse(params: dict[str, Any]) -> dict[str, tuple[dict[str, Any], list[str] | None]]:
    """``[policy.nic_rx]`` / ``[policy.nic_tx]``: per port setting, the qdisc (a table with its
    kind) and the guests it is for (None: all); FieldError at the key it refuses."""
    from vswitch.port_config import check_qdisc
    out: dict[str, tuple[dict[str, Any], list[str] | None]] = {}
    for name, table in params["policy"].items():
        if name not in NIC_QUEUES:
            raise FieldError(("policy", name), "this kind puts policies on the NIC's queues: "
                             "[policy.nic_rx] (each guest's RX queues) or [policy.nic_tx] (its TX queue); "
                             "a bottleneck link's qdisc is kind \"queue\"'s [policy.link]")
        t = dict(table)
        named = t.pop("qdiscs", {})
        ports = t.pop("ports", None)
        qdisc = t.pop("qdisc", None)
        if not isinstance(named, dict) or not all(isinstance(v, dict) for v in named.values()):
            raise FieldError(("policy", name, "qdiscs"), f"a table of named qdiscs ([policy.{name}.qdiscs.NAME] "
                             "with kind and its parameters)")
        if not isinstance(qdisc, str):
            raise FieldError(("policy", name, "qdisc"), "a qdisc kind (docs/policies.md, e.g. \"fq_codel\") or a "
                             f"name under policy.{name}.qdiscs, got {qdisc!r}")
        if ports is not None and not (isinstance(ports, list) and all(isinstance(p, str) for p in ports)):
            raise FieldError(("policy", name, "ports"), f"a list of guest port names, got {ports!r}")
        if qdisc in named:
            spec = dict(named[qdisc])
            qdisc = spec.pop("kind", qdisc)
            t.update(spec)
        try:
            setting = check_qdisc({"kind": qdisc, **t})
        except ValueError as e:
            raise FieldError(("policy", name, "qdisc"), str(e)) from None
        assert isinstance(setting, dict)
        out[NIC_QUEUES[name]] = (setting, ports)
    return out


def check(params: dict[str, Any], mode: str | None) -> None:
    """The tables parse, and the design has guest queues on the NIC; FieldError at the key."""
    if parse(params) and mode not in ("vmdq", "sriov"):
        name = next(iter(params["policy"]))
        raise FieldError(("policy", name), f"the {mode or 'NIC-less'} design has no NIC queue of a guest's own "
                         "(the one queue feeds the switch): use vmdq or sriov")


def apply(topology: Any, params: dict[str, Any]) -> None:
    """Give the topology's guest ports (all but the uplink) the tables' settings."""
    from bench.modes import uplink_of
    uplink = uplink_of(topology)
    guests = [p for p in topology.ports if p.name != uplink]
    for key, (setting, ports) in parse(params).items():
        unknown = sorted(set(ports or ()) - {p.name for p in guests})
        if unknown:
            name = next(n for n, k in NIC_QUEUES.items() if k == key)
            raise ValueError(f"policy.{name}.ports: {unknown[0]!r} is not a guest of the topology "
                             f"(guests: {', '.join(p.name for p in guests)})")
        for p in guests:
            if ports is None or p.name in ports:
                setattr(p, key, setting)          # checked by parse, as the port's setting is


def metrics(policies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The policies' counters (`bench.compare.nic_policies`) summed per direction."""
    out: dict[str, Any] = {}
    for direction in ("rx", "tx"):
        pols = [q for q in policies.values() if q["direction"] == direction]
        if pols:
            out[f"nic_{direction}_sent_packets"] = sum(q["sent_packets"] for q in pols)
            out[f"nic_{direction}_dropped"] = sum(sum(q["drops"].values()) for q in pols)
            out[f"nic_{direction}_overlimits"] = sum(q["overlimits"] for q in pols)
    return out
