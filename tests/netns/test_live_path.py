"""Smoke test of `bench.live_path`: it forwards through the real data path and leaves no TAP behind."""

from __future__ import annotations

import json
import os
import socket

import pytest

from bench import live_path

pytestmark = pytest.mark.netns


def test_live_path_runs_and_cleans_up(capsys):
    if os.geteuid() != 0:
        pytest.skip("live-path opens TAP devices: needs root")
    assert live_path.main(["--batch", "8", "--frames", "800", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "vswitchd data path" in out and "bare relay (floor)" in out
    prefix = f"vslp{os.getpid() & 0xFFFF:04x}"
    assert not [name for _, name in socket.if_nameindex() if name.startswith(prefix)]


def test_live_path_idle_reports_median_wakeup(capsys):
    if os.geteuid() != 0:
        pytest.skip("live-path opens TAP devices: needs root")
    assert live_path.main(["--batch", "1", "--frames", "20", "--rounds", "1", "--idle-ms", "1"]) == 0
    out = capsys.readouterr().out
    assert "median wake-up after 1 ms idle" in out
    ns = [float(line.split(":")[1].split()[0]) for line in out.splitlines() if "data path" in line or "floor)" in line]
    assert len(ns) == 2 and all(v > 0 for v in ns)
    assert live_path.main(["--idle-ms", "-1"]) == 2


def test_live_path_json_holds_the_printed_figures(tmp_path, capsys):
    """compare-commits reads the JSON, and the text of trees without --json: both say the same."""
    if os.geteuid() != 0:
        pytest.skip("live-path opens TAP devices: needs root")
    from bench import compare_commits
    out = tmp_path / "lp.json"
    assert live_path.main(["--batch", "8", "--frames", "800", "--rounds", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    b = compare_commits.BENCHES["live-path"]
    assert b.parse(text, data) == data["vswitchd_ns_per_frame"] > 0
    assert b.parse(text, None) == pytest.approx(data["vswitchd_ns_per_frame"], abs=0.5)
    assert data["relay_ns_per_frame"] > 0 and data["dataplane"].split()[0] in ("compiled", "interpreted")
