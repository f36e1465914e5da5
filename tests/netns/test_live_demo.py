"""The README's demo (`vswitch-bench demo` as root): live guests pinging through vswitchd."""

from __future__ import annotations

import io
import re
import subprocess

import pytest
from rich.console import Console

from bench.live_demo import run_live_demo

pytestmark = pytest.mark.netns


def test_live_demo_pings_through_vswitchd_and_cleans_up(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert run_live_demo(Console(file=out, width=200)) == 0
    text = out.getvalue() + capsys.readouterr().out      # vswitchctl prints its tables to stdout
    pings = re.findall(r"guest (\d) -> 10\.0\.0\.(\d): (ok|FAILED)", text)
    assert sorted((a, b) for a, b, _ in pings) == [(a, b) for a in "123" for b in "123" if a != b]
    assert all(status == "ok" for *_, status in pings), text
    prefix = re.search(r"on TAP ports (vsdemo[0-9a-f]{4})t1-3", text)
    assert prefix, text
    for cmd in ("show", "fdb show", "counters"):
        assert f"$ vswitchctl {cmd}\n" in text
    # Each guest's TAP holds its learned MAC in the table.
    assert len(set(re.findall(rf"{prefix[1]}t[123] .*? ([0-9a-f]{{2}}(?::[0-9a-f]{{2}}){{5}})", text))) == 3
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix[1] not in left
