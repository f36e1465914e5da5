"""The control protocol and server dispatch: bad requests get one-line errors, never a crash."""

from __future__ import annotations

import asyncio
import json

import pytest

from vswitch.control.client import Client
from vswitch.control.protocol import ControlError, decode, encode
from vswitch.control.server import ControlServer, coerce


def handle(line: bytes) -> dict:
    # Dispatch errors are found before any handler touches the switch.
    return asyncio.run(ControlServer(None, "/nonexistent").handle(line))  # type: ignore[arg-type]


@pytest.mark.parametrize("line, words", [
    (b"not json\n", "malformed control message"),
    (b"[1, 2]\n", "not a JSON object"),
    (b'{"cmd": "frobnicate"}\n', "unknown command 'frobnicate'"),
    (b'{"cmd": 42}\n', "unknown command 42"),
    (b'{"cmd": "show", "args": [1]}\n', "args must be a JSON object"),
])
def test_bad_requests_get_one_line_errors(line, words):
    reply = handle(line)
    assert reply["ok"] is False and words in reply["error"] and "\n" not in reply["error"]


def test_encode_decode_round_trip():
    msg = {"cmd": "fdb/show", "args": {"vlan": 10}}
    raw = encode(msg)
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert decode(raw) == msg
    assert json.loads(raw) == msg


@pytest.mark.parametrize("key, value, want", [
    ("tag", "10", 10), ("tag", "none", None), ("isolated", "on", True), ("learning", "false", False),
    ("trunks", "10,20-30", "10,20-30"), ("mtu", 9000, 9000),
])
def test_coerce_converts_command_line_values(key, value, want):
    assert coerce(key, value) == want


@pytest.mark.parametrize("key, value, words", [
    ("tag", "ten", "tag=ten: expected an integer"),
    ("flood", "maybe", "flood=maybe: expected true/false"),
    ("colour", "red", "unknown port setting 'colour'"),
])
def test_coerce_rejects_bad_values_naming_the_key(key, value, words):
    with pytest.raises(ControlError, match=words):
        coerce(key, value)


def test_client_says_when_the_daemon_is_not_running(tmp_path):
    with pytest.raises(ControlError, match="vswitchd is not running"):
        Client(str(tmp_path / "missing.sock")).call("show")
