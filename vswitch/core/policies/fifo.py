"""The FIFOs by their tc names: ``pfifo``, ``bfifo``, ``pfifo_head_drop`` (and ``fifo``, the core one).

All are the core `Fifo` (``vswitch/core/scheduler.py``: a packet and/or
byte limit, tail or head drop), declared here with tc's parameter, ``limit``,
and tc's kind name, so ``qdisc show`` says ``pfifo`` where tc would.  Linux's
defaults: pfifo's limit is the device's txqueuelen (1000 packets), bfifo's
txqueuelen times the MTU plus the Ethernet header (1000 x 1514 bytes).
Work-conserving.  Drop reason ``queue_full``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from vswitch.core.policies.params import Param
from vswitch.core.scheduler import DROP_MODES, Fifo

__all__ = ["CoreFifo", "Pfifo", "Bfifo", "PfifoHeadDrop", "TXQUEUELEN", "PSCHED_MTU"]

TXQUEUELEN = 1000
PSCHED_MTU = 1514


class CoreFifo(Fifo):
    """The core Fifo with its parameters declared (kind ``fifo``)."""

    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("limit", "int", TXQUEUELEN, "packets the queue may hold (none: bytes only)", unit="packets",
              range=(1, 1 << 30)),
        Param("limit_bytes", "size", None, "bytes the queue may hold (none: packets only)", range=(1, 1 << 40)),
        Param("drop", "choice", "tail", "tail: refuse the arriving frame; head: drop the oldest",
              choices=DROP_MODES),
    )

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Fifo:
        return cls(limit=p["limit"], limit_bytes=p["limit_bytes"], drop=p["drop"])


class Pfifo(Fifo):
    """A FIFO of ``limit`` packets, tail drop (tc pfifo)."""

    KIND = "pfifo"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("limit", "int", TXQUEUELEN, "packets the queue may hold", unit="packets", range=(1, 1 << 30),
              linux="txqueuelen"),
    )

    def __init__(self, limit: int = TXQUEUELEN) -> None:
        super().__init__(limit=limit)

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Pfifo:
        return cls(p["limit"])

    def config(self) -> dict[str, object]:
        return {"limit": self.limit}


class PfifoHeadDrop(Fifo):
    """A FIFO of ``limit`` packets that drops its oldest frame to take a new one (tc pfifo_head_drop)."""

    KIND = "pfifo_head_drop"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("limit", "int", TXQUEUELEN, "packets the queue may hold", unit="packets", range=(1, 1 << 30),
              linux="txqueuelen"),
    )

    def __init__(self, limit: int = TXQUEUELEN) -> None:
        super().__init__(limit=limit, drop="head")

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> PfifoHeadDrop:
        return cls(p["limit"])

    def config(self) -> dict[str, object]:
        return {"limit": self.limit}


class Bfifo(Fifo):
    """A FIFO of ``limit`` bytes, tail drop (tc bfifo)."""

    KIND = "bfifo"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("limit", "size", TXQUEUELEN * PSCHED_MTU, "bytes the queue may hold", range=(1, 1 << 40),
              linux="txqueuelen * (MTU + 14)"),
    )

    def __init__(self, limit: int = TXQUEUELEN * PSCHED_MTU) -> None:
        super().__init__(limit=None, limit_bytes=limit)

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Bfifo:
        return cls(p["limit"])

    def config(self) -> dict[str, object]:
        return {"limit": self.limit_bytes}
