"""JSON-ready views of a running dataplane: what `show` commands return.

The daemon sends these dicts over the control socket; the replay and demo
commands build them in-process; `vswitch.render` draws them as tables.
"""

from __future__ import annotations

from typing import Any

from vswitch.core.frame import mac_str
from vswitch.elements.fdb import NS, Fdb
from vswitch.elements.learning_switch import LearningSwitch


def _port_name(switch: LearningSwitch, number: int) -> str:
    p = switch.ports.get(number)
    return p.name if p is not None else f"#{number}"


def fdb_view(switch: LearningSwitch, now_ns: int, vlan: int | None = None) -> list[dict[str, Any]]:
    """FDB rows as OVS's fdb/show: port, VLAN, MAC, age in seconds (or 'static')."""
    rows = []
    for e in switch.fdb.entries(now_ns):
        if vlan is not None and e.vlan != vlan:
            continue
        rows.append({"port": _port_name(switch, e.port), "port_no": e.port, "vlan": e.vlan,
                     "mac": mac_str(e.mac),
                     "age": "static" if e.static else max(0, (now_ns - e.seen) // NS)})
    rows.sort(key=lambda r: (r["port_no"], r["vlan"], r["mac"]))
    return rows


def fdb_stats_view(fdb: Fdb) -> dict[str, Any]:
    return fdb.snapshot()


def moves_view(switch: LearningSwitch) -> list[dict[str, Any]]:
    return [{"mac": mac_str(m.mac), "vlan": m.vlan, "from": _port_name(switch, m.from_port),
             "to": _port_name(switch, m.to_port), "time_ns": m.time_ns, "damped": m.damped}
            for m in switch.fdb.moves]
