"""Smoke test of `vswitch-bench replay-bench`: both tools on a veth, short runs; it reports every
case and removes everything it made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from bench import replay_bench

pytestmark = [pytest.mark.netns, pytest.mark.once]   # the live sender against tcpreplay, no switch


def test_replay_bench_smoke(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the benchmark needs root (namespaces, a veth pair, raw sockets)")
    if shutil.which("tcpreplay") is None:
        pytest.skip("needs tcpreplay (apt-get install tcpreplay)")
    out = tmp_path / "rb.json"
    assert replay_bench.main(["--reps", "1", "--seconds", "0.5", "--only", "pps50k-K,top64", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    rows = {(r["case"], r["tool"]): r for r in res["table"]}
    assert set(rows) == {(c, t) for c in ("pps50k-K", "top64") for t in ("tcpreplay", "vswitch-bench")}
    for r in rows.values():
        assert r["tx_pps"] > 0 and r["rx_pps"] and r["delivered"] is not None
    # The receiver counted what each sender sent (a veth drops nothing at these rates).
    for run in res["runs"]:
        assert run["rx_packets"] == run["tx_packets"], run["summary"]
    assert {t["target"] for t in res["targets"]} >= {"64 B --topspeed >= 0.5x tcpreplay (sender)"}
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert res["prefix"] not in netns and not res["cleanup_problems"]
