"""Smoke test of `bench.live_path`: it forwards through the real data path and leaves no TAP behind."""

from __future__ import annotations

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
