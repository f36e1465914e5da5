"""Exceptions the live I/O layer raises to the daemon."""

from __future__ import annotations

import errno
import os

# errno values that mean "the interface behind this fd no longer exists".
# EBADFD: a TAP whose device was destroyed (its namespace was deleted).
GONE_ERRNOS = frozenset({errno.ENXIO, errno.ENODEV, errno.EBADFD})


class PortGone(OSError):
    """The interface behind a port vanished (deleted, moved away, namespace removed).

    The port object is unusable: close it, mark the port ``down`` and attach
    again when netlink reports the interface back.  ``errno``/``strerror``
    carry the kernel's reason; ``port`` names the interface.
    """

    def __init__(self, port: str, err: int, detail: str = "") -> None:
        super().__init__(err, f"{port}: {detail or os.strerror(err)}")
        self.port = port
        # Raised from a batch write: how many frames came before the one that failed,
        # and how many of those (and their bytes) were dropped.
        self.handled = 0
        self.failed = 0
        self.failed_bytes = 0
