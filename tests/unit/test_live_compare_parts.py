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


def _perf(nic_frames: int) -> dict:
    return {"total": perf_dict(PortPerf(frames=100_000, batches=2000, rx_ns=30_000_000, dp_ns=45_000_000,
                                        tx_ns=25_000_000)),
            "nic": {"mode": "software", "nic_model_ns_per_frame": 150.0, "frames": nic_frames}, "elements": {}}


def test_emulation_is_the_nic_models_ns_per_frame_that_crossed_it() -> None:
    """vswitchd's NIC model spent 150 ns x 100,000 frames read; 50,000 of them crossed the NIC:
    300 ns each.  Without ``emulation`` (a host with a real NIC) it is not charged."""
    table, basis = from_perf(_perf(50_000), emulation=True)
    assert table.host.nic_emulation_ns == pytest.approx(300.0) and basis["nic_frames"] == 50_000
    assert table.host.switch_frame_ns == pytest.approx(300 + 450 - 150)    # read + graph - NIC model
    assert from_perf(_perf(50_000))[0].host.nic_emulation_ns == 0.0
    assert from_perf(_perf(0), emulation=True)[0].host.nic_emulation_ns == 0.0


@pytest.mark.parametrize("inbound", [1.0, 0.0])
def test_the_model_charges_emulation_on_each_nic_frame_of_the_core(tmp_path: Path, inbound: float) -> None:
    """Frames from the wire to the guests, or from the guests to the wire, through a saturated
    core: each costs the core its switch and vhost work plus ``nic_emulation_ns``, either way."""
    t = tmp_path / "ns.pcap"
    assert gen_main([str(t), "--guests", "2", "--east-west", "0", "--inbound", str(inbound), "--flows", "2",
                     "--frames", "3000", "--pps", "5000000", "-q"]) == 0
    topo, pm = load_topology(tmp_path / "ns.toml"), load_port_map(tmp_path / "ns.json")
    per_frame = {}
    for emu in (0.0, 400.0):
        table, _ = from_perf(_perf(100_000), emulation=True)
        table.host.nic_emulation_ns = emu
        table.host.irq_ns = 0
        for k in ("rx_frame_ns", "tx_frame_ns", "vm_exit_ns"):
            setattr(table.guest, k, 0.0)
        r = run_point(topo, t, table, "software", port_map=pm)
        out = sum(p["frames"] for p in r["ports"].values())
        assert r["bottleneck"]["resource"] == "core0" and out > 500
        per_frame[emu] = r["resources"]["core0"]["busy_ns"] / out
    # inbound: switch 600 + vhost 250 (+ 400); outbound: the guest's entry, switch 600 (+ 400 at the NIC)
    base = 850 if inbound else 600
    assert per_frame[0.0] == pytest.approx(base, rel=0.02)
    assert per_frame[400.0] == pytest.approx(base + 400, rel=0.02)


def test_the_models_nic_ring_drops_are_entry_drops() -> None:
    """Frames the model's NIC RX ring had no room for are what vswitchd never read (entry), as
    its socket's drops are; the emulation's TX queue's would be egress."""
    from bench.costmodel import CostTable
    from bench.live_compare import Run, side_by_side
    run = Run(offered={"frames": 10, "pps": 1.0}, delivered={"frames": 4, "pps": 1.0, "ports": {}},
              drops={"entry": 6, "switch_total": 0, "egress": 0},
              perf={"frames": 4, "rx_ns": 4.0, "switch_ns": 4.0, "tx_ns": 4.0, "nic_ns": 2.0, "nic_frames": 4},
              cpu_ns=0, counters={}, kernel={})
    model = {"ports": {}, "drops": {"nic0.rx": {"ring_full": 5}, "nic0.tx_emulation": {"ring_full": 1},
                                    "br0": {"no_route": 2}},
             "drops_total": 8, "resources": {}, "delivered": {"frames": 4, "pps": 1.0}}
    c = side_by_side(run, model, CostTable())
    assert c["drops"]["entry"]["predicted"] == 5 and c["drops"]["egress"]["predicted"] == 1
    assert c["drops"]["switch"]["predicted"] == 2
    assert c["stages"]["NIC model, per NIC frame (nic_emulation_ns)"]["measured"] == 0.5


def _run(loop_cpu_ns: float, control_cpu_ns: float):
    from bench.live_compare import Run
    return Run(offered={"frames": 1000, "pps": 1.0}, delivered={"frames": 1000, "pps": 1.0, "ports": {}},
               drops={"entry": 0, "switch_total": 0, "egress": 0},
               perf={"frames": 1000, "batches": 100, "rx_ns": 3e6, "switch_ns": 2e6, "tx_ns": 1e6, "nic_ns": 1e6,
                     "nic_frames": 1000, "loop_cpu_ns": loop_cpu_ns, "control_cpu_ns": control_cpu_ns},
               cpu_ns=0, counters={}, kernel={})


def test_the_loops_own_work_is_its_cpu_time_less_control_less_the_stages() -> None:
    """1000 frames timed at 6 us each (read 3, graph 1 + NIC 1, write 1); the loop thread ran
    8.5 ms, 0.5 of them answering control requests: 2 us a frame outside the stages, which
    calibration charges with the switch's work.  Where the stages' wall time exceeds the CPU
    time (the daemon descheduled) nothing can be told apart: 0."""
    from bench.live_compare import calibrate, stage_costs
    st = stage_costs(_run(8.5e6, 0.5e6))
    assert st["perf_show_total_ns"] == pytest.approx(6000) and st["loop_ns"] == pytest.approx(2000)
    assert st["frames_per_batch"] == 10
    table, basis = calibrate(_run(8.5e6, 0.5e6))
    assert basis["loop_ns_per_frame"] == pytest.approx(2000)
    assert table.host.switch_frame_ns == pytest.approx(3000 + 1000 + 2000)     # read + graph + loop
    assert table.host.nic_emulation_ns == pytest.approx(1000)
    assert stage_costs(_run(5e6, 0.5e6))["loop_ns"] == 0.0
    assert calibrate(_run(5e6, 0.5e6))[0].host.switch_frame_ns == pytest.approx(4000)
    hw = calibrate(_run(8.5e6, 0.5e6), emulation=False)[0].host     # VMDq, SR-IOV: a hardware NIC
    assert hw.nic_emulation_ns == 0.0 and hw.switch_frame_ns == pytest.approx(4000)
