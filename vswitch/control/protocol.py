"""The control protocol: one JSON object per line over a Unix stream socket.

Request:  ``{"cmd": "fdb/show", "args": {"vlan": 10}}``
Reply:    ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "one line for the user"}``

Command names follow OVS's ``module/verb`` style (``fdb/show``,
``fdb/stats-show``); vswitchctl maps its subcommands onto them.
"""

from __future__ import annotations

import json
import os
from typing import Any

DEFAULT_SOCKET = "/run/vswitch/vswitchd.sock"
MAX_LINE = 1 << 20
MAX_SOCKET_PATH = 107          # bytes: sun_path holds 108, its terminating NUL included


class ControlError(Exception):
    """An error to show the user as one line."""


def check_socket_path(path: str) -> str:
    """A path a Unix socket can be bound or connected to, else ControlError saying why."""
    n = len(os.fsencode(path))
    if n == 0:
        raise ControlError("the control socket path is empty")
    if n > MAX_SOCKET_PATH:
        raise ControlError(f"socket path {path} is {n} bytes: a Unix socket path is at most "
                           f"{MAX_SOCKET_PATH} bytes")
    return path


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise ControlError(f"malformed control message: {e}") from None
    except RecursionError:
        raise ControlError("malformed control message: nested too deeply") from None
    if not isinstance(obj, dict):
        raise ControlError("malformed control message: not a JSON object")
    return obj
