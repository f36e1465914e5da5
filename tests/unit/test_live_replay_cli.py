"""``vswitch-bench replay --live``: bad arguments and bad captures are refused in one line, before
anything is sent (no root needed: each of these stops before a socket is opened)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main as bench_main
from bench.traces import ether
from tests.unit.test_replay import SHARED, write_pcap


@pytest.fixture
def cap(tmp_path: Path) -> Path:
    return write_pcap(tmp_path / "c.pcap", [(i * 1000, ether(b"\xff" * 6, b"\x02" * 6, 0x88B5, bytes(50)))
                                            for i in range(3)])


def one_line_error(capsys, argv: list[str], code: int) -> str:
    assert bench_main(argv) == code
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("extra, says", [
    (["--pps", "10", "--mbps", "5"], "--pps and --mbps: choose one speed mode"),
    (["--topspeed", "--multiplier", "2"], "--multiplier and --topspeed: choose one speed mode"),
    (["-p", "10", "-t"], "--pps and --topspeed: choose one speed mode"),
    (["--pps", "0"], "--pps 0: must be a number > 0"),
    (["--mbps", "-3"], "--mbps -3: must be a number > 0 (0 means --topspeed)"),
    (["--multiplier", "0"], "--multiplier 0: must be a number > 0"),
    (["--loop", "-1"], "--loop -1: must be >= 0"),
    (["--limit", "0"], "--limit 0: must be >= 1"),
    (["--duration", "0"], "--duration 0: must be a number of seconds > 0"),
    (["--out", "x"], "--out: offline replay only"),
    (["--map", "02:00:00:00:00:01=p1"], "--map: offline replay only"),
    (["--ports", "2"], "--ports: offline replay only"),
    (["--socket", "/tmp/x.sock"], "--socket: only with --port NAME"),
])
def test_bad_live_options_are_one_line_and_exit_2(capsys, cap, extra, says):
    line = one_line_error(capsys, ["replay", "--live", "--iface", "lo", str(cap), *extra], 2)
    assert line.startswith("vswitch-bench: ") and says in line, line


@pytest.mark.parametrize("argv, says", [
    (["--live"], "give either --iface IF or --port NAME"),
    (["--live", "--iface", "lo", "--port", "p1"], "give either --iface IF or --port NAME (not both)"),
    (["--live", "--port", "p1=x.pcap"], "--port takes a vswitchd port NAME, not NAME=FILE"),
    (["--live", "--port", "a", "--port", "b"], "give one port with --live"),
    (["--pps", "100"], "--pps: only with --live"),
    (["--iface", "lo", "--loop", "2"], "--iface, --loop: only with --live"),
])
def test_live_and_offline_options_do_not_mix(capsys, cap, argv, says):
    line = one_line_error(capsys, ["replay", str(cap), *argv], 2)
    assert says in line, line


def test_live_needs_a_capture(capsys):
    assert "nothing to replay" in one_line_error(capsys, ["replay", "--live", "--iface", "lo"], 2)


def test_a_missing_capture_is_one_line_exit_1(capsys, tmp_path):
    line = one_line_error(capsys, ["replay", "--live", "--iface", "lo", str(tmp_path / "nope.pcap")], 1)
    assert "nope.pcap: cannot open: No such file or directory" in line


def test_a_non_ethernet_capture_is_refused(capsys):
    path = SHARED / "HDLC.pcap"
    if not path.exists():
        pytest.skip(f"shared capture {path} not found")
    line = one_line_error(capsys, ["replay", "--live", "--iface", "lo", str(path)], 1)
    assert line.startswith("vswitch-bench: refused: ") and "is not Ethernet (1)" in line, line


def test_an_unreadable_second_capture_stops_the_run_before_the_first_is_sent(capsys, cap, tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all, but long enough for a header")
    line = one_line_error(capsys, ["replay", "--live", "--iface", "lo", str(cap), str(bad)], 1)
    assert "bad.pcap: not a pcap or pcapng file" in line, line
