"""vswitch-bench replay-speed: a small run prints its table, with the peer in the same run."""

from __future__ import annotations

from bench.cli import main as bench_main


def test_replay_speed_reports_each_case_and_the_dpkt_peer(tmp_path, capsys) -> None:
    assert bench_main(["replay-speed", "--frames", "3000", "--runs", "1", "--builds", "pure", "--no-nspy",
                       "--dir", str(tmp_path), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    for case in ("software pure", "vmdq pure", "dpkt reader alone"):
        line = next(line for line in out.splitlines() if line.startswith(case))
        assert "cannot run" not in line and "MiB" in line
    import json
    runs = json.loads((tmp_path / "r.json").read_text())["runs"]
    assert runs["software pure"][0]["frames"] == runs["dpkt reader alone"][0]["frames"] > 3000
    assert runs["software pure"][0]["build"].startswith("interpreted")
    assert runs["software pure"][0]["tx_packets"] >= 3000
