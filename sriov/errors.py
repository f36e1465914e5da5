"""SriovError: a refusal with the errno the Linux kernel (or the PF driver) returns for it.

Every refused request -- a sysfs write, an ``ip link set PF vf N ...`` option, an
IOMMU mapping -- raises `SriovError`, a `nicmodel.tables.NicError` (a ``ValueError``)
whose ``errno`` is what the kernel returns and whose message says what is wrong in
the kernel's or the driver's own words where it has them.  ``strerror`` is the
C library's text for the errno, as a shell or ``ip`` prints it ("RTNETLINK answers:
Numerical result out of range").  A refused request changes nothing.

The strings are written out here (the sans-IO layer may not import ``os`` for
``os.strerror``); they are glibc's.
"""

from __future__ import annotations

import errno as _errno

from nicmodel.tables import NicError

__all__ = ["SriovError", "strerror"]

_STRERROR = {
    _errno.EPERM: "Operation not permitted",
    _errno.ENOENT: "No such file or directory",
    _errno.EIO: "Input/output error",
    _errno.ENOMEM: "Cannot allocate memory",
    _errno.EACCES: "Permission denied",
    _errno.EBUSY: "Device or resource busy",
    _errno.EINVAL: "Invalid argument",
    _errno.ENOSPC: "No space left on device",
    _errno.ERANGE: "Numerical result out of range",
    _errno.EOPNOTSUPP: "Operation not supported",
    _errno.EPROTONOSUPPORT: "Protocol not supported",
    _errno.ETIMEDOUT: "Connection timed out",
    _errno.EFAULT: "Bad address",
}


def strerror(err: int) -> str:
    return _STRERROR.get(err, f"Unknown error {err}")


class SriovError(NicError):
    """A refused SR-IOV request: ``errno`` as the kernel returns it, ``message`` the details."""

    def __init__(self, message: str, errno: int = _errno.EINVAL) -> None:
        super().__init__(message, errno)

    @property
    def strerror(self) -> str:
        return strerror(self.errno)

    def __str__(self) -> str:
        return f"{self.message} ({self.strerror})"
