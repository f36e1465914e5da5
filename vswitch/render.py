"""Tables for people: rich renderings of the views and counter snapshots."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from vswitch.core.counters import PORT_COUNTERS


def fdb_table(rows: list[dict[str, Any]], title: str = "MAC table") -> Table:
    t = Table(title=title)
    for col, just in (("port", "left"), ("VLAN", "right"), ("MAC", "left"), ("Age", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        t.add_row(r["port"], str(r["vlan"]), r["mac"], str(r["age"]))
    return t


def port_counters_table(ports: dict[str, dict[str, int]], title: str = "Port counters") -> Table:
    t = Table(title=title)
    t.add_column("port")
    for c in PORT_COUNTERS:
        t.add_column(c, justify="right")
    for name, counters in ports.items():
        t.add_row(name, *(str(counters.get(c, 0)) for c in PORT_COUNTERS))
    return t


def switch_counters_table(snap: dict[str, Any], title: str = "Switch counters") -> Table:
    """The learning switch's counters, every drop reason and the FDB statistics: the one table
    for the live switch (vswitchctl counters) and the offline ones (replay, demo)."""
    t = Table(title=title)
    t.add_column("counter")
    t.add_column("value", justify="right")
    for k, v in snap.items():
        if isinstance(v, int):
            t.add_row(k, str(v))
    for reason, n in snap.get("drops", {}).items():
        t.add_row(f"drop: {reason}", str(n))
    for k, v in snap.get("fdb", {}).items():
        t.add_row(f"fdb: {k}", str(v))
    return t


def make_console() -> Console:
    """A console; when output is not a terminal, wide enough that tables keep their headers."""
    # No emoji or markup: a MAC such as 02:ab:cd:... must print as written.
    c = Console(emoji=False, markup=False, highlight=False)
    return c if c.is_terminal else Console(width=160, emoji=False, markup=False, highlight=False)


def print_tables(*tables: Table, console: Console | None = None) -> None:
    console = console or make_console()
    for t in tables:
        console.print(t)
