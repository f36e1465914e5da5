"""``vswitch-bench sweep-speed`` (bench/sweep_speed.py): a sweep timed on the local pool and the nspy
workload through the runner and ns.py, once, small; the figures are measured, not checked here
(docs/performance.md has them); what is checked is that both sides ran the same workload."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ns", reason="ns.py is not installed (.venv/bin/pip install ns.py)")

from bench.cli import main as bench_main  # noqa: E402


@pytest.mark.once
def test_sweep_speed_smoke(tmp_path, capsys) -> None:
    out = tmp_path / "s.json"
    assert bench_main(["sweep-speed", "--policies", "sp,drr", "--seconds", "0.2", "--seeds", "1", "--jobs", "1,2",
                       "--repeat", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "points/s" in text and "ratio" in text
    r = json.loads(out.read_text())
    assert [s["jobs"] for s in r["sweep"]] == [1, 2]
    assert all(s["points"] == 2 and s["points_per_s"] > 0 for s in r["sweep"])
    by = {p["policy"]: p for p in r["pps"]}
    assert set(by) == {"sp", "drr"}
    for p in by.values():
        assert p["runner_packets_per_s"] > 0 and p["nspy_packets_per_s"] > 0
        # the same workload on both sides: each flow's share of the link agrees
        assert max(abs(x - y) for x, y in zip(p["runner_shares"], p["nspy_shares"], strict=True)) < 0.03, p
    assert [round(s, 1) for s in by["sp"]["runner_shares"]] == [0.6, 0.1, 0.3]    # the policy, not the offer


def test_sweep_speed_refuses_bad_jobs(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        bench_main(["sweep-speed", "--jobs", "0"])
    assert e.value.code == 2
    assert "--jobs" in capsys.readouterr().err
