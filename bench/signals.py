"""How the root benchmarks treat SIGINT and SIGTERM around what they create.

A benchmark that makes namespaces, veths, worktrees or daemons must remove them however it ends:
``sigterm_as_interrupt`` makes SIGTERM unwind like Ctrl-C (so every ``finally`` runs), and
``signals_ignored`` shields a cleanup from a second Ctrl-C or SIGTERM. Off the main thread (where
Python refuses to install handlers) both do nothing.
"""
from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM are ignored inside the block (a second Ctrl-C must not cut a cleanup short)."""
    try:
        old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:                   # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside the block, so it unwinds like Ctrl-C."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:                   # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
