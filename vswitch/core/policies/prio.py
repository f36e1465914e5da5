"""Strict priority (``prio``) and Linux's default qdisc, ``pfifo_fast``.

`StrictPriority`: ``bands`` classes; a dequeue always takes from the lowest
numbered backlogged band (band 0 first), so a busy high band starves the
lower ones: that is the policy.  The classifier defaults to Linux's:
``priority`` (skb->priority: the VLAN PCP, else the IP TOS through
rt_tos2priority) mapped to a band by the priomap ``1 2 2 2 1 2 0 0 1 1 1 1 1
1 1 1``; any other key and map may be named.

`PfifoFast`: three bands by that same priomap, each a FIFO of ``limit``
packets (txqueuelen, 1000), as today's Linux keeps one ring of txqueuelen per
band.  Nothing else to set (tc has no options for it).

Work-conserving.  Drop reason ``queue_full`` (a band at its limit).
"""

from __future__ import annotations

from typing import Any, ClassVar

from vswitch.core.frame import Frame
from vswitch.core.policies.classful import LIMIT, LIMIT_PARAMS, Classful
from vswitch.core.policies.classify import PRIO2BAND, Classifier, classifier_from, classifier_params
from vswitch.core.policies.params import Param

__all__ = ["StrictPriority", "PfifoFast"]


class StrictPriority(Classful):
    """Band 0 first, always; see the module docstring."""

    KIND = "prio"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("bands", "int", 3, "number of bands (band 0 is served first)", range=(2, 16)),
        *classifier_params("priority"),
        *LIMIT_PARAMS,
    )

    def __init__(self, classifier: Classifier | None = None, limit: int | None = LIMIT,
                 limit_bytes: int | None = None) -> None:
        super().__init__(classifier if classifier is not None else linux_priomap(), limit, limit_bytes)
        self._mask = 0            # bit c set: band c is backlogged

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> StrictPriority:
        return cls(band_classifier(p), p["limit"], p["limit_bytes"])

    def activate(self, c: int) -> None:
        self._mask |= 1 << c

    def dequeue(self, now_ns: int) -> Frame | None:
        m = self._mask
        if not m:
            return None
        c = (m & -m).bit_length() - 1          # the lowest backlogged band
        f = self.take(c)
        if not len(self._q[c]):
            self._mask = m & ~(1 << c)
        return f

    def config(self) -> dict[str, object]:
        d = super().config()
        d["bands"] = d.pop("classes")
        return d


class PfifoFast(StrictPriority):
    """Linux's pfifo_fast: three bands by the default priomap, ``limit`` packets each."""

    KIND = "pfifo_fast"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("limit", "int", LIMIT, "packets each band may hold", unit="packets", range=(1, 1 << 30),
              linux="txqueuelen (ip link set DEV txqueuelen N), per band"),
    )

    def __init__(self, limit: int = LIMIT) -> None:
        super().__init__(linux_priomap(), limit, None)

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> PfifoFast:
        return cls(p["limit"])

    def config(self) -> dict[str, object]:
        return {"bands": 3, "priomap": list(PRIO2BAND), "limit": self.limit}


def linux_priomap(bands: int = 3) -> Classifier:
    """The classifier of Linux's prio and pfifo_fast: skb->priority through the default priomap."""
    return Classifier("priority", bands, dict(enumerate(PRIO2BAND)), default=0)


def band_classifier(p: dict[str, Any]) -> Classifier:
    """``prio``'s classifier from its parameters: the default priomap for ``classify=priority``
    without a map (it needs 3 bands or more, as tc's prio refuses a priomap naming a band it
    does not have)."""
    bands = p["bands"]
    if p["classify"] == "priority" and p["map"] is None:
        if bands < 3:
            raise ValueError(f"bands {bands}: the default priomap uses bands 0-2; give a map")
        return linux_priomap(bands)
    return classifier_from(p, bands)
