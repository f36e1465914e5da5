"""A blocking client for the control socket (vswitchctl, tests, the demo)."""

from __future__ import annotations

import contextlib
import errno
import socket
from typing import Any

from vswitch.control.protocol import DEFAULT_SOCKET, MAX_LINE, ControlError, check_socket_path, decode, encode


class Client:
    def __init__(self, path: str = DEFAULT_SOCKET, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def call(self, cmd: str, **args: Any) -> Any:
        """Send one request; return its result or raise ControlError with a one-line reason."""
        check_socket_path(self.path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            try:
                s.connect(self.path)
            except FileNotFoundError:
                raise ControlError(f"vswitchd is not running (no control socket at {self.path})") from None
            except ConnectionRefusedError:
                raise ControlError(f"vswitchd is not running (nobody listens on {self.path})") from None
            except PermissionError:
                raise ControlError(f"permission denied on {self.path}: run as root "
                                   "(or as a member of the socket's group)") from None
            except OSError as e:
                if e.errno == errno.EACCES:
                    raise ControlError(f"permission denied on {self.path}") from None
                raise ControlError(f"cannot connect to {self.path}: {e.strerror or e}") from None
            # If it closed before reading, its answer (too many connections) may still be waiting.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                s.sendall(encode({"cmd": cmd, "args": args}))
            buf = b""
            while not buf.endswith(b"\n"):
                try:
                    chunk = s.recv(65536)
                except TimeoutError:
                    raise ControlError(f"vswitchd did not answer within {self.timeout:.0f} s") from None
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    raise ControlError("vswitchd closed the connection without answering")
                buf += chunk
                if len(buf) > 64 * MAX_LINE:
                    raise ControlError("reply too large")
        finally:
            s.close()
        reply = decode(buf)
        if not reply.get("ok"):
            raise ControlError(str(reply.get("error", "unknown error")))
        return reply.get("result")
