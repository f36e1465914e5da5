"""The README demo: three guests doing ARP, ping and a broadcast, through a 3-port switch.

Offline: the trace is generated (bench.traces), one capture per guest, and
replayed through the switch in the trace's own time; then the MAC table,
the port counters and the switch counters are printed as tables.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.traces import demo_guests, three_guests, write_per_guest
from vswitch.drivers.replay import ReplayDriver, records_per_port
from vswitch.render import (
    fdb_table,
    make_console,
    port_counters_table,
    print_tables,
    switch_counters_table,
)
from vswitch.topology import PortConfig, Topology, build_dataplane
from vswitch.views import fdb_view


def run_demo(out: str | None = None, offline: bool = False) -> int:
    """The live demo when possible (root), else the offline one, saying why."""
    from bench.live_demo import live_possible, run_live_demo
    console = make_console()
    if offline:
        return run_offline_demo(out)
    why = live_possible()
    if why is None:
        return run_live_demo(console)
    console.print(f"(live demo not possible: {why}; running the offline demo instead)\n")
    return run_offline_demo(out)


def run_offline_demo(out: str | None = None) -> int:
    console = make_console()
    guests = demo_guests()
    trace = three_guests(guests)
    with tempfile.TemporaryDirectory(prefix="vswitch-demo-") as tmp:
        base = Path(out) if out else Path(tmp)
        files = write_per_guest(trace, base / "captures")
        topo = Topology(ports=[PortConfig(g.name, type="replay") for g in guests])
        dp = build_dataplane(topo)
        driver = ReplayDriver(dp, out_dir=base / "egress")
        res = driver.run(records_per_port({dp.numbers[name]: path for name, path in files.items()}))
        who = ", ".join(f"{g.name} {g.mac.hex(':')} {'.'.join(map(str, g.ip))}" for g in guests)
        console.print(f"vswitch offline demo: {len(guests)} guests ({who}) "
                      f"on a 3-port switch; {res.frames} frames replayed in virtual time "
                      f"({res.duration_ns / 1e9:.2f} s of traffic).")
        snap = dp.graph.snapshot()
        print_tables(fdb_table(fdb_view(dp.switch, res.last_ts_ns or 0)),
                     port_counters_table(snap["ports"]),
                     switch_counters_table(snap["elements"][dp.switch.name]),
                     console=console)
        if out:
            console.print(f"captures in {base / 'captures'}, per-port egress pcaps in {base / 'egress'}")
    return 0
