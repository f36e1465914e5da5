"""One counter table for the live switch and the offline ones: vswitchctl counters draws, from
the daemon's snapshot, exactly the tables vswitch-bench replay prints for the same counters."""

from __future__ import annotations

import io
import json

from rich.console import Console

from bench.cli import main as bench_main
from bench.traces import demo_guests, three_guests, write_per_guest
from vswitch.cli import render_counters
from vswitch.render import print_tables


def text(*tables) -> str:
    out = io.StringIO()
    print_tables(*tables, console=Console(file=out, width=160, emoji=False, markup=False, highlight=False))
    return out.getvalue()


def test_live_and_offline_counter_tables_are_one_rendering(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    files = write_per_guest(three_guests(demo_guests()), tmp_path / "captures")
    argv = ["replay", "--json", str(tmp_path / "c.json")]
    for name, path in files.items():
        argv += ["--port", f"{name}={path}"]
    assert bench_main(argv) == 0
    offline = capsys.readouterr().out
    snap = json.loads((tmp_path / "c.json").read_text())["ports"]["counters"]
    live_reply = {"ports": snap["ports"], "switch": snap["elements"]["br0"]}   # what the daemon answers
    port_table, switch_table = render_counters(live_reply)
    for table in (port_table, switch_table):
        assert text(table) in offline, f"vswitchctl counters draws:\n{text(table)}\nreplay printed:\n{offline}"
    drawn = text(switch_table)
    assert "drop: reserved_multicast" in drawn and "fdb: learned" in drawn and "Switch counters" in drawn
