"""``vswitch-bench compare TRACE --live`` against a real vswitchd in namespaces it makes itself.

A small generated trace at a low rate (nothing saturates): vswitchd in software mode
delivers every frame the model delivers, port by port, with no drops on either side, and
the run leaves no namespace, link or process of its own behind.  Speed is not asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns.harness import ROOT

pytestmark = pytest.mark.netns


def bench(*argv: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def ours() -> tuple[set[str], set[str]]:
    ns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    links = {line.split(":")[1].strip().split("@")[0]
             for line in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()}
    return {n for n in ns if n.startswith("vlc")}, {n for n in links if n.startswith("vlc")}


def test_compare_live_software_low_rate(lab, tmp_path: Path) -> None:
    trace = tmp_path / "t.pcap"
    r = bench("gen", str(trace), "--guests", "2", "--pps", "500", "--duration", "200ms", "--seed", "3")
    assert r.returncode == 0, r.stderr
    manifest = json.loads(trace.with_suffix(".json").read_text())
    before = ours()
    out = tmp_path / "res.json"
    r = bench("compare", str(trace), "--live", "--modes", "software", "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "software measured" in r.stdout and "delivered pps" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["live"] is True and [x["mode"] for x in doc["results"]] == ["software"]
    res = doc["results"][0]
    meas, cmp = res["measured"], res["compare"]
    assert meas["offered"]["frames"] == manifest["frames"]["total"]
    # Nothing saturates at 500 pps: both deliver the frames to every port, and nothing is dropped.
    # (Live runs differ from the model by a frame or two now and then: see the report/docs.)
    assert cmp["delivered_frames"]["predicted"] > 50
    assert abs(cmp["delivered_frames"]["diff_pct"]) <= 3
    for port, v in cmp["ports"].items():
        assert abs(v["measured"] - v["predicted"]) <= max(2, v["predicted"] // 30), port
    # the guests' own kernels received what vswitchd says it wrote to them
    for port, p in meas["delivered"]["ports"].items():
        assert p["kernel_rx_frames"] == p["frames"], port
    for stage in ("entry", "switch", "egress"):
        assert cmp["drops"][stage]["measured"] == cmp["drops"][stage]["predicted"] == 0
    # the model was calibrated from this daemon's perf-show
    # the model was calibrated from this daemon's perf-show, its NIC model's time included (software
    # mode: vswitchd's own prediction), measured per frame that crossed the NIC
    assert res["costs"]["source"] == "calibrated from vswitchd perf-show, the NIC's emulation included"
    emu = cmp["stages"]["NIC model, per NIC frame (nic_emulation_ns)"]
    assert emu["measured"] == pytest.approx(emu["predicted"]) and emu["measured"] > 0
    assert res["costs"]["host"]["nic_emulation_ns"] == pytest.approx(emu["measured"])
    st = cmp["stages"]["write (vhost_frame_ns)"]
    assert st["measured"] == pytest.approx(st["predicted"]) and st["measured"] > 0
    assert meas["stages"]["frames"] == meas["offered"]["frames"]
    assert ours() == before                       # its namespaces, links and daemon are gone


def test_compare_live_sigterm_cleans_up(lab, tmp_path: Path) -> None:
    import signal
    import time
    trace = tmp_path / "t.pcap"
    assert bench("gen", str(trace), "--guests", "2", "--pps", "200", "--duration", "20s").returncode == 0
    before = ours()
    p = subprocess.Popen([sys.executable, "-m", "bench.cli", "compare", str(trace), "--live", "--modes", "software"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(ours()[0]) <= len(before[0]):
        time.sleep(0.1)
    time.sleep(2)                                  # the daemon up, the replay under way
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert ours() == before


@pytest.mark.parametrize("argv, message", [
    (["--modes", "vmdq,bogus"], "is not a design"),
    (["--cores", "2"], "--cores: not with --live"),
    (["--zero-host"], "--zero-host: not with --live"),
    (["--reps", "0"], "--reps 0: must be 1-100"),
    (["--modes", "software,bogus"], "'bogus' is not a design"),
    (["--cpu", "4096"], "--cpu 4096: not a CPU this process may use"),
])
def test_compare_live_bad_arguments(tmp_path: Path, argv: list[str], message: str) -> None:
    trace = tmp_path / "t.pcap"
    assert bench("gen", str(trace), "--guests", "2", "--frames", "10").returncode == 0
    r = bench("compare", str(trace), "--live", *argv)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_compare_cpu_only_with_live(tmp_path: Path) -> None:
    trace = tmp_path / "t.pcap"
    assert bench("gen", str(trace), "--guests", "2", "--frames", "10").returncode == 0
    r = bench("compare", str(trace), "--cpu", "0")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["vswitch-bench compare: --cpu: only with --live"]
