"""The parts of ``compare --live`` that run without a daemon: the calibration of a guest's
frame, the sender that splits preloaded runs by port, the percent difference."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.compare import run_point
from bench.costmodel import from_perf
from bench.gen import main as gen_main
from bench.gen_sidecar import load_port_map
from bench.live_compare import LIVE_MODES, RoutingSender, pct
from bench.live_replay import Preloaded
from vswitch.drivers.live_port import PortPerf, perf_dict
from vswitch.topology import NIC_MODES, load_topology


def test_calibrated_guest_to_guest_ceiling_is_read_graph_write(tmp_path: Path) -> None:
    """A frame from one guest's TAP to another's costs vswitchd read + graph + write; the model
    calibrated from that perf-show charges the same (it charged the write twice before)."""
    perf = {"total": perf_dict(PortPerf(frames=100_000, batches=2000, rx_ns=30_000_000, dp_ns=45_000_000,
                                        tx_ns=25_000_000)),
            "nic": {"mode": "software", "nic_model_ns_per_frame": 150.0}, "elements": {}}
    table, _ = from_perf(perf)
    assert table.host.vhost_tx_frame_ns == 0
    table.host.irq_ns = 0
    for k in ("rx_frame_ns", "tx_frame_ns", "vm_exit_ns"):
        setattr(table.guest, k, 0.0)
    t = tmp_path / "ew.pcap"
    assert gen_main([str(t), "--guests", "2", "--east-west", "1", "--flows", "1", "--frames", "3000",
                     "--pps", "5000000", "-q"]) == 0
    r = run_point(load_topology(tmp_path / "ew.toml"), t, table, "software",
                  port_map=load_port_map(tmp_path / "ew.json"))
    # the core is saturated: what it spends per frame it forwarded is the ceiling's inverse
    g2 = r["ports"]["g2"]["frames"]
    assert r["bottleneck"]["resource"] == "core0" and g2 > 500
    assert r["resources"]["core0"]["busy_ns"] / g2 == pytest.approx(850, rel=0.01)


def test_live_modes_are_what_vswitchd_accepts() -> None:
    assert tuple(NIC_MODES) == LIVE_MODES and "software" in LIVE_MODES


class FakeSender:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.stats = None

    def send_mmsg(self, vector: int, lo: int, n: int, cum) -> None:
        self.calls.append((lo, n))


def test_routing_sender_splits_runs_where_the_port_changes() -> None:
    pre = Preloaded([[(i, bytes(60)) for i in range(7)]])
    a, b = FakeSender(), FakeSender()
    s = RoutingSender([a, b], [0, 0, 1, 1, 1, 0, 1], {})   # type: ignore[list-item]
    s.send_run(pre, 1, 6)
    assert a.calls == [(1, 1), (5, 1)] and b.calls == [(2, 3), (6, 1)]
    assert a.stats is b.stats is s.stats


def test_pct() -> None:
    assert pct(110, 100) == pytest.approx(10) and pct(0, 0) is None and pct(5, 0) is None
