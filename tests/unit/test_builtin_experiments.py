"""The built-in experiments (issues 12 and 13, experiments.md C.1-C.10): each run through the runner
(`vswitch-bench experiment`) on a shortened copy of its file, and its behaviour checked by shape
(who beats whom, what grows, what stays flat), not by an exact number."""

from __future__ import annotations

import csv
import random
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from bench.experiments.cli import builtins
from bench.experiments.cli import main as experiment_main
from bench.experiments.spec import set_dotted
from bench.tracegen import line_rate_pps

ALL = ("linerate", "cpu-ceiling", "vmdq-scaling", "sriov-scaling", "latency-order", "coalescing",
       "ring-overflow", "isolation", "shaping", "bufferbloat")


def run_builtin(name: str, tmp_path: Path, **changes: Any) -> list[dict[str, str]]:
    """Run built-in ``name`` with ``changes`` (dotted path -> value; ``sweep.axes.X`` replaces an
    axis) through the runner; the summary rows."""
    doc = tomllib.loads(builtins()[name].read_text())
    for path, value in changes.items():
        if path.startswith("sweep.axes."):
            doc["sweep"]["axes"][path.removeprefix("sweep.axes.")] = value
        else:
            set_dotted(doc, path, value)
    f = tmp_path / f"{name}.toml"
    f.write_text(tomli_w.dumps(doc))
    out = tmp_path / "out"
    assert experiment_main([str(f), "--jobs", "1", "--out", str(out), "-q"]) == 0
    for plot in doc.get("plot", []):
        assert (out / plot["file"]).read_bytes()[:4] == b"\x89PNG"
    with open(out / "summary.csv") as fh:
        return list(csv.DictReader(fh))


def col(rows: list[dict[str, str]], key: str, **where: Any) -> list[float]:
    return [float(r[key]) for r in rows if all(r[k] == str(v) for k, v in where.items())]


def test_every_builtin_is_listed(capsys) -> None:
    assert experiment_main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ALL:
        assert name in out and name in builtins()


def test_linerate_carries_the_arithmetic_limit(tmp_path: Path) -> None:
    rows = run_builtin("linerate", tmp_path, **{"traffic.duration": "1ms", "sweep.axes.traffic.size": [64, 1518]})
    for r in rows:
        want = float(line_rate_pps(int(r["traffic.size"]), 10**10))
        assert abs(float(r["delivered_pps"]) - want) / want < 0.001, r
        assert float(r["gbps_l1"]) > float(r["gbps_l2"])      # L1 counts preamble, gap and FCS on top


def test_software_switch_has_a_cpu_ceiling_flat_until_line_rate(tmp_path: Path) -> None:
    rows = run_builtin("cpu-ceiling", tmp_path, **{"traffic.duration": "300us",
                                                   "sweep.axes.traffic.size": [64, 256, 1518],
                                                   "sweep.axes.topology.costs.host.switch_frame_ns": [532]})
    by = {int(r["traffic.size"]): r for r in rows}
    ceiling = 1e9 / (532 + 1000 / 64)           # the switch's work plus its poll's interrupt, per frame
    for size in (64, 256):
        r = by[size]
        assert abs(float(r["delivered_pps"]) - ceiling) / ceiling < 0.02, r
        assert r["bottleneck"] == "core0" and int(r["drops_ring_full"]) > 0
        assert int(r["offered_frames"]) - int(r["delivered_frames"]) == int(r["dropped"])
    assert float(by[64]["delivered_pps"]) == pytest.approx(float(by[256]["delivered_pps"]), rel=0.01)
    assert by[1518]["bottleneck"] == "wire.rx" and int(by[1518]["dropped"]) == 0


def test_vmdq_scales_where_the_software_switch_does_not(tmp_path: Path) -> None:
    rows = run_builtin("vmdq-scaling", tmp_path, **{"traffic.duration": "1ms",
                                                    "sweep.axes.topology.guests": [1, 4]})
    sw = col(rows, "gbps_l2", **{"topology.nic.mode": "software"})
    vq = col(rows, "gbps_l2", **{"topology.nic.mode": "vmdq"})
    assert max(sw) < 8.0 and abs(sw[1] - sw[0]) < 0.05 * sw[0]      # flat, below line rate
    assert vq[1] > 9.0 and vq[1] > sw[1] * 1.2
    sw_cpu = col(rows, "host_cpu_per_gbps", **{"topology.nic.mode": "software"})
    vq_cpu = col(rows, "host_cpu_per_gbps", **{"topology.nic.mode": "vmdq"})
    assert all(v < 0.75 * s for v, s in zip(vq_cpu, sw_cpu, strict=True)), (vq_cpu, sw_cpu)   # B.4


def test_sriov_holds_line_rate_with_host_cpu_growing_slowly_per_guest(tmp_path: Path) -> None:
    rows = run_builtin("sriov-scaling", tmp_path, **{"traffic.duration": "2ms",
                                                     "sweep.axes.topology.guests": [8, 24],
                                                     "sweep.axes.topology.nic.mode": ["sriov"]})
    gbps = col(rows, "gbps_l2")
    cpu = col(rows, "host_cpu_pct")
    assert min(gbps) > 8.5
    slope = (cpu[1] - cpu[0]) / 16
    assert 0.3 < slope < 3.0, cpu                 # about 1 % of a core per guest, roughly linear


def test_latency_orders_sriov_vmdq_software(tmp_path: Path) -> None:
    # 5 ms: 1,700 frames, so p99 is the 17th slowest, not one unlucky frame.
    rows = run_builtin("latency-order", tmp_path, **{"traffic.duration": "5ms"})
    for key in ("latency_p50_ns", "latency_p99_ns", "latency_mean_ns"):
        by_mode = {r["topology.nic.mode"]: float(r[key]) for r in rows}
        assert by_mode["sriov"] < by_mode["vmdq"] < by_mode["software"], (key, by_mode)


def test_coalescing_cuts_interrupts_and_cpu_and_adds_at_most_rx_usecs(tmp_path: Path) -> None:
    rows = run_builtin("coalescing", tmp_path, **{"traffic.duration": "2ms", "sweep.axes.traffic.pps": [50000]})
    rows.sort(key=lambda r: int(r["topology.nic.rx_usecs"]))
    irqs = [float(r["host_polls_per_s"]) for r in rows]
    cpu = [float(r["host_cpu_cores"]) for r in rows]
    lat = [float(r["latency_mean_ns"]) for r in rows]
    assert irqs[0] > irqs[1] > irqs[2] and cpu[0] > cpu[1] > cpu[2]
    for r, mean in zip(rows, lat, strict=True):
        assert mean - lat[0] <= int(r["topology.nic.rx_usecs"]) * 1000
    assert lat[2] > lat[1] > lat[0]


def test_napi_caps_the_poll_rate_at_line_rate(tmp_path: Path) -> None:
    rows = run_builtin("coalescing", tmp_path, **{"traffic.duration": "1ms",
                                                  "sweep.axes.topology.nic.rx_usecs": [0],
                                                  "sweep.axes.traffic.pps": [2000000, 14880952]})
    rows.sort(key=lambda r: float(r["traffic.pps"]))
    polls = [float(r["host_polls_per_s"]) for r in rows]
    per_poll = [float(r["delivered_pps"]) / p for r, p in zip(rows, polls, strict=True)]
    # 7x the load, fewer polls: each poll takes close to its budget of 64 frames
    assert polls[1] < polls[0] and per_poll[0] < 4 and 32 < per_poll[1] <= 64, (polls, per_poll)


def test_a_larger_ring_drops_less_and_waits_longer(tmp_path: Path) -> None:
    rows = run_builtin("ring-overflow", tmp_path, **{"traffic.duration": "1ms",
                                                     "sweep.axes.topology.nic.rx_ring": [128, 512, 2048]})
    rows.sort(key=lambda r: int(r["topology.nic.rx_ring"]))
    drops = [int(r.get("drops_ring_full") or 0) for r in rows]
    p99 = [float(r["latency_p99_ns"]) for r in rows]
    assert drops[0] > drops[1] > drops[2] == 0 and p99[0] < p99[1] < p99[2]
    # C.7's law for one burst of B frames: about max(0, B - R - mu * t_burst).
    burst = 14_880_952 * 100e-6
    mu = 1e9 / (532 + 1000 / 64)
    for r, d in zip(rows, drops, strict=True):
        want = max(0.0, burst - int(r["topology.nic.rx_ring"]) - mu * 100e-6)
        assert abs(d - want) <= 0.05 * burst, (r["topology.nic.rx_ring"], d, want)


def test_isolation_fifo_hurts_fair_queueing_shares_priority_starves(tmp_path: Path) -> None:
    rows = run_builtin("isolation", tmp_path, **{"traffic.duration": "60ms"})
    share = {r["policy.link.qdisc"]: float(r["flow_light_share"]) for r in rows}
    for r in rows:
        assert float(r["link_util"]) > 0.99           # every policy is work-conserving here
        assert float(r["flooded"]) == 1               # the sink was learned: no source frame flooded
    assert share["pfifo"] < 0.35                   # offered 60 of 100 Mb/s, got far less
    assert share["drr"] >= 0.49 and share["wfq"] >= 0.49
    assert share["prio"] < 0.02
    ratio = (1 - share["drr-3:1"]) / share["drr-3:1"]
    assert abs(ratio - 3) / 3 < 0.05


def test_tbf_output_stays_inside_b_plus_rt(tmp_path: Path) -> None:
    rows = run_builtin("shaping", tmp_path, **{"traffic.duration": "60ms"})
    for r in rows:
        b = float(r["burst_bytes"])
        assert float(r["envelope_max_bytes"]) <= b + 1e-6
        assert float(r["envelope_max_bytes"]) > 0.5 * b        # and the bucket is used: the bound is tight


def test_bufferbloat_pfifo_stands_full_fq_codel_keeps_sojourn_low(tmp_path: Path) -> None:
    rows = run_builtin("bufferbloat", tmp_path)       # as shipped: the buffer needs the time to fill
    by = {r["policy.link.qdisc"]: r for r in rows}
    full = 1000 * 1500 * 8 / 100e6 * 1e9
    pf = by["pfifo"]
    # a standing queue: nine frames in ten after the warm-up wait at least 85 % of the full
    # buffer's 120 ms, none much more, and the link never idles
    assert abs(float(pf["sojourn_p99_ns"]) - full) / full < 0.05
    assert float(pf["sojourn_p10_ns"]) > 0.85 * full
    assert float(pf["flow_sparse_sojourn_p10_ns"]) > 0.85 * full       # the sparse flow waits behind it
    assert float(pf["link_util"]) > 0.99
    fq = by["fq_codel"]
    for n in ("bulk1", "bulk2", "bulk3", "bulk4"):
        assert float(fq[f"flow_{n}_sojourn_p50_ns"]) <= 5e6            # at or under the 5 ms target
        assert float(fq[f"flow_{n}_sojourn_p99_ns"]) < 0.25 * full      # excursions of a few targets
        assert int(fq[f"flow_{n}_ce"]) > 0                              # held there by CE marks
    assert float(fq["flow_sparse_sojourn_p99_ns"]) < 5e6
    assert float(fq["dropped"]) == 0


def test_aimd_cuts_once_per_window() -> None:
    """A loss or CE mark of a frame sent before the last cut is the same congestion event: it
    does not cut again, however long the queue takes to deliver those frames (the cut once per
    rtt this replaced halved a sender six times over a 120 ms queue and emptied it)."""
    from bench.experiments.queue_kind import SOURCE_PARAMS, _Source
    from vswitch.core.policies.params import check_params

    p = check_params(SOURCE_PARAMS, {"rate": "40mbit", "pattern": "aimd", "beta": 0.7}, "s")
    s = _Source(1, "s", p, 10**10, random.Random(1))
    s.seq = 1000                          # 1000 frames sent, then frames 0..999 delivered over 120 ms
    s.feedback(0, ce=False, t=0.0)
    t, cuts = 0.0, []
    for seq in range(10, 1000, 10):       # every tenth frame lost or marked
        before = s.rate
        s.feedback(seq, ce=seq % 20 == 0, t=t)
        cuts += [seq] if s.rate < before else []
        t += 1.2e6
    assert cuts == [10]                   # the first gap (frame 9 lost) cuts, by beta
    s.seq = 1500                          # frames sent after that cut: their loss is news
    before = s.rate
    s.feedback(1200, ce=False, t=t)
    assert s.rate == pytest.approx(before * 0.7)
