"""Experiment files: parsing, errors at file:line: key, sweep expansion, runs, outputs, plots, resume."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench.experiments import hdr
from bench.experiments.cli import builtins, main, run_experiment
from bench.experiments.kinds import run_point
from bench.experiments.spec import ExperimentError, load_experiment

# Small enough to run a point in well under a second: 300 frames from the wire to two guests.
BASE = """\
[experiment]
name = "t"
kind = "replay"
seeds = 1

[topology]
guests = 2
wire_hosts = 1

[topology.nic]
mode = "vmdq"
rx_ring = 64
rx_usecs = 100

[traffic]
gbps = 10
frames = 300
east_west = 0.0
inbound = 1.0
flows = 2
"""

SWEEP = BASE + """
[sweep.axes]
"topology.nic.rx_ring" = [64, 256]
"topology.nic.rx_usecs" = [0, 100]
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ExperimentError) as e:
        load_experiment(write(tmp_path, text))
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# -- parsing ------------------------------------------------------------------------------------------

def test_a_file_parses_into_typed_sections(tmp_path):
    exp = load_experiment(write(tmp_path, SWEEP))
    assert exp.name == "t" and exp.kind == "replay" and exp.seeds == (1,)
    assert exp.topology.guests == 2 and exp.topology.nic is not None and exp.topology.nic.rx_ring == 64
    assert exp.traffic.gbps == "10" and exp.traffic.frames == 300 and exp.traffic.inbound == 1.0
    assert exp.measure.percentiles == (50.0, 90.0, 99.0, 99.9)
    assert exp.axes == ("topology.nic.rx_ring", "topology.nic.rx_usecs")


@pytest.mark.parametrize("bad, needle, key, words", [
    ('rx_ring = 64', 'rx_ring = 5000', "topology.nic.rx_ring", "descriptors 64-4096"),
    ('flows = 2', 'flows = "two"', "traffic.flows", "expected an integer"),
    ('flows = 2', 'flowz = 2', "traffic.flowz", "unknown key"),
    ('kind = "replay"', 'kind = "nope"', "experiment.kind", "no such kind"),
    ('guests = 2', 'guests = 0', "topology.guests", "at least 1"),
    ('inbound = 1.0', 'inbound = 1.5', "traffic.inbound", "a fraction"),
    ('gbps = 10', 'pps = 5\ngbps = 10', "traffic.gbps", "give one rate"),
    ('mode = "vmdq"', 'mode = "sriovx"', "topology.nic.mode", "use one of"),
])
def test_a_bad_value_is_named_with_its_file_line_and_key(tmp_path, bad, needle, key, words):
    text = SWEEP.replace(bad, needle, 1)
    msg = refused(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'exp.toml'}:{line_of(text, needle.splitlines()[-1])}: {key}: "), msg
    assert words in msg


def test_a_bad_value_from_a_sweep_axis_is_named_at_the_axis_with_its_point(tmp_path):
    text = SWEEP.replace('[64, 256]', '[64, 8192]')
    msg = refused(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'exp.toml'}:{line_of(text, '8192')}: topology.nic.rx_ring: 8192"), msg
    assert "(point 2: topology.nic.rx_ring = 8192, topology.nic.rx_usecs = 0)" in msg


def test_a_bad_value_from_a_listed_point_is_named_at_that_point(tmp_path):
    text = BASE + '[[sweep.point]]\n"traffic.flows" = 4\n\n[[sweep.point]]\n"traffic.flows" = 0\n'
    msg = refused(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'exp.toml'}:{len(text.splitlines())}: traffic.flows"), msg
    assert "point 1" in msg


@pytest.mark.parametrize("extra, line_needle, key, words", [
    ("[sweeps]\nx = 1\n", "[sweeps]", "sweeps", "unknown key"),
    ('[sweep.axes]\n"bridge.x" = [1]\n', '"bridge.x"', 'sweep.axes."bridge.x"', "dotted path under"),
    ('[sweep.axes]\n"traffic.flows" = []\n', '"traffic.flows"', 'sweep.axes."traffic.flows"', "non-empty"),
    ('[sweep.axes]\n"traffic.flowz" = [1, 2]\n', '"traffic.flowz"', "traffic.flowz", "unknown key"),
    ('[policy.g1]\nqdisc = "fq_codel"\n', "[policy.g1]", "policy.g1", "[policy.nic_rx] (each guest's RX queues)"),
    ('[[plot]]\ntype = "line"\nfile = "a.png"\nx = "frames"\ny = "goodput"\n', 'y = "goodput"',
     "plot[0].y", "not a sweep axis or a metric"),
    ('[[plot]]\ntype = "pie"\nfile = "a.png"\n', 'type = "pie"', "plot[0].type", "use one of"),
    ('[[plot]]\ntype = "cdf"\nfile = "../a.png"\n', 'file = "../a.png"', "plot[0].file", "output directory"),
    ('[[plot]]\ntype = "line"\nfile = "a.png"\n', '[[plot]]', "plot[0].x", "needs x, y"),
])
def test_bad_tables_and_sweeps_are_named_with_file_line_and_key(tmp_path, extra, line_needle, key, words):
    text = BASE + extra
    msg = refused(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'exp.toml'}:{line_of(text, line_needle)}: {key}: "), msg
    assert words in msg


def test_a_toml_syntax_error_gives_its_line(tmp_path):
    text = BASE + "oops = = 1\n"
    msg = refused(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'exp.toml'}:{len(text.splitlines())}: not valid TOML"), msg


def test_the_command_refuses_a_bad_file_with_one_line_and_exit_2(tmp_path):
    path = write(tmp_path, SWEEP.replace("rx_ring = 64", "rx_ring = 1"))
    r = subprocess.run([sys.executable, "-m", "bench.cli", "experiment", str(path), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"{path}:{line_of(SWEEP, 'rx_ring = 64')}: topology.nic.rx_ring: 1: descriptors" in r.stderr
    assert not (tmp_path / "o" / "points.jsonl").exists()


# -- sweeps -------------------------------------------------------------------------------------------

def test_axes_expand_to_their_product_in_order_with_every_seed(tmp_path):
    exp = load_experiment(write(tmp_path, SWEEP.replace("seeds = 1", "seeds = [3, 9]")))
    got = [(p.index, p.axes["topology.nic.rx_ring"], p.axes["topology.nic.rx_usecs"], p.seed) for p in exp.points]
    assert got == [(0, 64, 0, 3), (0, 64, 0, 9), (1, 64, 100, 3), (1, 64, 100, 9),
                   (2, 256, 0, 3), (2, 256, 0, 9), (3, 256, 100, 3), (3, 256, 100, 9)]
    assert exp.points[2].params["topology"]["nic"]["rx_usecs"] == 100
    assert exp.points[4].params["topology"]["nic"]["rx_ring"] == 256
    assert len({p.key for p in exp.points}) == 8


def test_a_point_list_sets_only_what_each_point_names(tmp_path):
    text = BASE + ('[[sweep.point]]\n"topology.guests" = 3\n\n[[sweep.point]]\n"traffic.flows" = 4\n'
                   '"topology.nic.rx_ring" = 128\n')
    exp = load_experiment(write(tmp_path, text))
    a, b = exp.points
    assert a.params["topology"]["guests"] == 3 and a.params["traffic"]["flows"] == 2
    assert b.params["topology"]["guests"] == 2 and b.params["traffic"]["flows"] == 4
    assert b.params["topology"]["nic"]["rx_ring"] == 128
    assert exp.axes == ("topology.guests", "traffic.flows", "topology.nic.rx_ring")


def test_point_keys_are_stable_and_follow_the_parameters_and_seed(tmp_path):
    k1 = [p.key for p in load_experiment(write(tmp_path, SWEEP)).points]
    k2 = [p.key for p in load_experiment(write(tmp_path, SWEEP, "again.toml")).points]
    assert k1 == k2                                    # the same points, wherever the file is named
    k3 = [p.key for p in load_experiment(write(tmp_path, SWEEP.replace("frames = 300", "frames = 301"))).points]
    assert not set(k1) & set(k3)
    k4 = [p.key for p in load_experiment(write(tmp_path, SWEEP.replace("seeds = 1", "seeds = [2]"))).points]
    assert not set(k1) & set(k4)


def test_a_point_given_twice_is_refused(tmp_path):
    msg = refused(tmp_path, SWEEP.replace("[64, 256]", "[64, 64]"))
    assert "the same point as point 0" in msg


# -- running and outputs ------------------------------------------------------------------------------

def test_a_point_is_reproducible_from_its_seed(tmp_path):
    exp = load_experiment(write(tmp_path, BASE.replace("seeds = 1", "seeds = [1, 2]")))
    a, b = (run_point("replay", p.params, p.seed) for p in exp.points)
    again = run_point("replay", exp.points[0].params, exp.points[0].seed)
    assert a["metrics"] == again["metrics"] and a["histograms"] == again["histograms"]
    assert a["metrics"]["frames"] == 300 + 3        # + the gratuitous ARPs of 2 guests and 1 wire host
    assert a["histograms"] != b["histograms"] or a["ports"] != b["ports"]


def test_larger_rings_drop_less_and_frames_wait_for_their_interrupt(tmp_path):
    text = BASE.replace("frames = 300", "frames = 2000") + '[sweep.axes]\n"topology.nic.rx_ring" = [64, 256, 1024]\n'
    exp = load_experiment(write(tmp_path, text))
    res = [run_point("replay", p.params, p.seed) for p in exp.points]
    drops = [r["metrics"]["rx_dropped"] for r in res]
    p99 = [hdr.decode(r["histograms"]["latency"]).get_value_at_percentile(99) for r in res]
    assert drops[0] > drops[1] > drops[2] == 0
    assert all(r["metrics"]["drops_ring_full"] == d for r, d in zip(res[:2], drops[:2], strict=True))
    # replay drains a ring at once when its interrupt fires: a frame waits at most rx_usecs
    # (100 us) and the span of its batch (64 frames at 67 ns)
    assert all(50_000 < q <= 100_000 * 1.001 + 64 * 68 for q in p99)
    for r in res:                                    # every frame is delivered or dropped
        m = r["metrics"]
        assert m["delivered"] + m["rx_dropped"] >= m["frames"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def as_text(v: object) -> str:
    return "" if v is None else str(v)


def test_outputs_read_back_with_the_same_rows_and_plots_are_drawn(tmp_path):
    plots = "".join(f'\n[[plot]]\ntype = "{t}"\nfile = "{t}.png"\n{extra}' for t, extra in [
        ("line", 'x = "topology.nic.rx_ring"\ny = ["rx_dropped", "delivered"]\n'),
        ("bar", 'x = "topology.nic.rx_ring"\ny = "latency_p99_ns"\n'),
        ("heatmap", 'x = "topology.nic.rx_ring"\ny = "topology.nic.rx_usecs"\nz = "rx_dropped"\n'),
        ("cdf", "logx = true\n")])
    exp = load_experiment(write(tmp_path, SWEEP.replace("seeds = 1", "seeds = 2") + plots))
    out = tmp_path / "out"
    got = run_experiment(exp, out, jobs=1)
    assert got["ran"] == 8 and not got["failed"] and got["resumed"] == 0
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert [(r["index"], r["seed"]) for r in rows] == [(i, s) for i in range(4) for s in (1, 2)]
    assert [{k: as_text(v) for k, v in r.items()} for r in rows] == read_csv(out / "results.csv")
    doc = json.loads((out / "results.json").read_text())
    assert [r["key"] for r in doc["runs"]] == [r["key"] for r in rows] == [p.key for p in exp.points]
    for row, run in zip(rows, doc["runs"], strict=True):
        assert {k: row[k] for k in run["metrics"]} == run["metrics"]
        assert row["latency_count"] == hdr.decode(run["histograms"]["latency"]).get_total_count()
    summary = pq.read_table(out / "summary.parquet").to_pylist()
    assert [{k: as_text(v) for k, v in r.items()} for r in summary] == read_csv(out / "summary.csv")
    assert len(summary) == 4 and all(s["seeds"] == 2 for s in summary)
    for s, doc_s in zip(summary, doc["summary"], strict=True):
        runs = [r for r in rows if r["index"] == s["index"]]
        # merged across seeds: every frame of both runs, percentiles of the merged histogram
        assert s["latency_count"] == sum(r["latency_count"] for r in runs)
        merged = hdr.decode(doc_s["histograms"]["latency"])
        assert s["latency_p99_ns"] == merged.get_value_at_percentile(99)
        assert s["latency_max_ns"] == max(r["latency_max_ns"] for r in runs)
        assert s["rx_dropped"] == sum(r["rx_dropped"] for r in runs) / 2
    for t in ("line", "bar", "heatmap", "cdf"):
        assert (out / f"{t}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_merging_histograms_keeps_the_tail_a_mean_of_percentiles_loses():
    a, b = hdr.new(), hdr.new()
    for _ in range(99):
        a.record_value(1000)
    a.record_value(1_000_000)                         # a's p99.5 is the 1 ms frame
    for _ in range(100):
        b.record_value(1000)
    m = hdr.merge([hdr.encode(a), hdr.encode(b)])
    assert m.get_total_count() == 200
    assert m.get_value_at_percentile(99.5) == 1000 * (m.get_value_at_percentile(99.5) // 1000)
    assert m.get_value_at_percentile(100) >= 1_000_000 and m.get_max_value() >= 1_000_000
    xs, ys = hdr.cdf(m)
    assert ys[-1] == 1.0 and xs[-1] >= 1_000_000 and ys[0] == pytest.approx(199 / 200)


def test_resume_runs_only_the_points_not_done(tmp_path):
    out = tmp_path / "out"
    first = load_experiment(write(tmp_path, SWEEP))
    run_experiment(first, out, jobs=1)
    stored = (out / "points.jsonl").read_text().splitlines()
    # a torn last line (a crash while writing) and a point lost: both run again, nothing else
    (out / "points.jsonl").write_text("\n".join(stored[:2]) + "\n" + stored[2][:40])
    more = load_experiment(write(tmp_path, SWEEP.replace("[64, 256]", "[64, 256, 1024]")))
    got = run_experiment(more, out, jobs=1, resume=True)
    assert got["resumed"] == 2 and got["ran"] == 4 and got["points"] == 6
    after = {json.loads(line)["key"]: line for line in (out / "points.jsonl").read_text().splitlines()}
    assert set(after) == {p.key for p in more.points}
    for line in stored[:2]:                          # kept as they were (same worker, same wall time)
        assert after[json.loads(line)["key"]] == line
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert [r["key"] for r in rows] == [p.key for p in more.points]
    # without --resume a run starts afresh
    assert run_experiment(first, out, jobs=1)["ran"] == 4


def test_the_local_pool_gives_the_rows_the_inline_run_gives(tmp_path):
    exp = load_experiment(write(tmp_path, SWEEP))
    run_experiment(exp, tmp_path / "a", jobs=1)
    run_experiment(exp, tmp_path / "b", jobs=2)
    a, b = (pq.read_table(tmp_path / d / "results.parquet").to_pylist() for d in "ab")
    strip = [{k: v for k, v in r.items() if k not in ("wall_s", "worker")} for r in a]
    assert strip == [{k: v for k, v in r.items() if k not in ("wall_s", "worker")} for r in b]
    assert len({r["worker"] for r in b}) >= 1 and {r["worker"] for r in a}.isdisjoint({r["worker"] for r in b})


def test_failed_points_are_reported_with_why_and_not_stored(tmp_path):
    trace = tmp_path / "t.pcap"
    trace.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x02\x00\x04\x00" + bytes(16))    # a pcap header, then nothing
    topo = tmp_path / "t.toml"
    topo.write_text('[[port]]\nname = "p1"\ntype = "replay"\n')
    text = (f'[experiment]\nname = "f"\n[topology]\nfile = "{topo}"\n[traffic]\ntrace = "{trace}"\n'
            '[[sweep.point]]\n"traffic.batch" = 1\n[[sweep.point]]\n"traffic.batch" = 2\n')
    exp = load_experiment(write(tmp_path, text))
    trace.write_bytes(b"not a capture at all")       # broken after the check: both points fail
    got = run_experiment(exp, tmp_path / "o", jobs=1)
    assert set(got["failed"]) == {p.key for p in exp.points} and got["ran"] == 0
    assert all(v.startswith(f"CaptureError: {trace}: truncated pcap file header") for v in got["failed"].values())
    assert not (tmp_path / "o" / "results.csv").exists() and (tmp_path / "o" / "points.jsonl").exists() is False


# -- the built-ins and the command ----------------------------------------------------------------------

def test_every_built_in_loads_and_names_its_plots():
    found = builtins()
    assert "rings" in found
    for path in found.values():
        exp = load_experiment(path)
        assert exp.points and exp.plots and exp.description


def test_list_and_a_built_in_by_name(tmp_path, capsys, monkeypatch):
    assert main(["--list"]) == 0
    assert "rings" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    assert main(["nosuch"]) == 2
    assert "nosuch: no such file, nor a built-in experiment (built-in: " in capsys.readouterr().err
