"""``qdisc show``: each port's egress qdisc and ingress policing, as ``tc -s qdisc show`` gives them.

`qdisc_view` is the data (what ``vswitchctl qdisc show --json`` prints, one
entry per port): the qdisc's ``kind`` and parameters, ``tc``'s figures
(``sent_bytes``, ``sent_packets``, ``dropped``, ``overlimits``, ``requeues``,
``backlog_bytes``, ``backlog_packets``), the drops by reason, the kind's own
counters and figures (fq_codel's ``maxpacket``, ``drop_overlimit``,
``new_flow_count``, ``ecn_mark``, ``new_flows_len``, ``old_flows_len``; a
class-based qdisc's ``per_class``), and the port's ingress policer and storm
control with their counters.  A port with no qdisc is ``noqueue`` (the
switch writes to the device directly).  A guest port behind the NIC (vmdq or
sriov mode) also has ``nic_rx``: the policy of each RX queue of its pool or VF
(``rx_qdisc``; ``queue`` and the same figures), and ``nic_tx``: the policy in
front of its TX queue (``tx_qdisc`` or ``[nic] tx_qdisc``; ``pool`` and the
figures), each present only when there is one.  `tc_text` writes it as tc's lines.
"""

from __future__ import annotations

from typing import Any

from vswitch.core.policies import KINDS
from vswitch.core.policies.params import format_value
from vswitch.topology import Dataplane

__all__ = ["qdisc_view", "tc_text"]


def _qdisc(q: Any) -> dict[str, Any]:
    s = q.scheduler
    c = q.counters
    return {"kind": s.KIND, "config": s.config(), "sent_bytes": c["sent_bytes"], "sent_packets": c["sent_packets"],
            "dropped": sum(q.drops.values()), "overlimits": c["overlimits"], "requeues": c["requeues"],
            "backlog_bytes": q.backlog_bytes, "backlog_packets": q.backlog_packets, "drops": dict(q.drops),
            "counters": dict(s.counters), "stats": s.stats()}


def qdisc_view(dp: Dataplane, port: str | None = None) -> list[dict[str, Any]]:
    """Per port (or just ``port``): its qdisc and ingress policing (see the module docstring)."""
    names = [port] if port is not None else sorted(dp.numbers, key=dp.numbers.__getitem__)
    out = []
    for name in names:
        q = dp.qdiscs.get(name)
        d: dict[str, Any] = {"port": name, **(_qdisc(q) if q is not None else {"kind": "noqueue"})}
        ingress = []
        for el in dp.ingress.get(name, []):
            cfg = el.config() if hasattr(el, "config") else {}
            ingress.append({"element": type(el).__name__.lower(), "config": cfg, "counters": dict(el.counters),
                            "drops": dict(el.drops)})
        if ingress:
            d["ingress"] = ingress
        d.update(_nic_queues(dp, name))
        out.append(d)
    return out


def _nic_queues(dp: Dataplane, name: str) -> dict[str, Any]:
    host = dp.nic
    b = host.bindings.get(name) if host is not None else None
    if b is None:
        return {}
    nic = host.nic
    out: dict[str, Any] = {}
    rx = [{"queue": q, **_qdisc(nic.rx_qdisc[q])} for q in nic.state.pool_queues(b.pool) if q in nic.rx_qdisc]
    if rx:
        out["nic_rx"] = rx
    tx = nic.tx_qdisc.get(b.pool)
    if tx is not None:
        out["nic_tx"] = {"pool": b.pool, **_qdisc(tx)}
    return out


def _params(kind: str, cfg: dict[str, Any]) -> str:
    decl = {p.name: p for p in KINDS[kind].params} if kind in KINDS else {}
    words = []
    for k, v in cfg.items():
        if v is None or isinstance(v, (list, dict)) and k in ("classes", "per_class"):
            continue
        p = decl.get(k)
        words.append(f"{k} {format_value(p, v) if p is not None else v}")
    return " ".join(words)


def _figures(d: dict[str, Any]) -> list[str]:
    return [f" Sent {d['sent_bytes']} bytes {d['sent_packets']} pkt (dropped {d['dropped']}, overlimits "
            f"{d['overlimits']} requeues {d['requeues']})",
            f" backlog {d['backlog_bytes']}b {d['backlog_packets']}p requeues {d['requeues']}"]


def _qdisc_lines(d: dict[str, Any], handle: str, where: str) -> list[str]:
    lines = [f"qdisc {d['kind']} {handle} {where} {_params(d['kind'], d['config'])}".rstrip()]
    lines.extend(_figures(d))
    extra = {**d["counters"], **{k: v for k, v in d["stats"].items() if not isinstance(v, dict)}}
    if extra:
        lines.append("  " + " ".join(f"{k} {v}" for k, v in extra.items()))
    reasons = {k: v for k, v in d["drops"].items() if v}
    if reasons:
        lines.append("  drops: " + " ".join(f"{k} {v}" for k, v in reasons.items()))
    per = d["stats"].get("per_class") or {}
    for cls, c in per.items():
        lines.append(f"  class {d['kind']} {handle}{cls} " + " ".join(f"{k} {v}" for k, v in c.items()
                                                                     if not isinstance(v, dict)))
    return lines


def tc_text(rows: list[dict[str, Any]]) -> str:
    """``rows`` (`qdisc_view`) as ``tc -s qdisc show`` lines (and ``tc -s class show``'s per class)."""
    lines: list[str] = []
    for d in rows:
        if d["kind"] == "noqueue":
            lines.append(f"qdisc noqueue 0: dev {d['port']} root")
        else:
            lines.extend(_qdisc_lines(d, "1:", f"dev {d['port']} root"))
        # A guest's NIC queues: a handle per queue, as tc numbers an mq's children.
        for rq in d.get("nic_rx", []):
            lines.extend(_qdisc_lines(rq, f"{rq['queue'] + 0x100:x}:", f"dev {d['port']} nic rx queue {rq['queue']}"))
        tq = d.get("nic_tx")
        if tq is not None:
            lines.extend(_qdisc_lines(tq, f"{tq['pool'] + 0x200:x}:", f"dev {d['port']} nic tx pool {tq['pool']}"))
        for ing in d.get("ingress", []):
            cfg = " ".join(f"{k} {v}" for k, v in ing["config"].items() if v is not None)
            counts = " ".join(f"{k} {v}" for k, v in {**ing["counters"], **ing["drops"]}.items())
            lines.append(f"qdisc ingress ffff: dev {d['port']} {ing['element']} {cfg}")
            lines.append(f"  {counts}")
    return "\n".join(lines) + ("\n" if lines else "")
