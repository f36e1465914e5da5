"""Deficit round robin (``drr``), as Linux's sch_drr (Shreedhar and Varghese, 1995).

The backlogged classes form a round.  A class that becomes backlogged joins
the end with a deficit of one quantum.  The class at the head sends its
head frame if the frame fits in its deficit (the deficit shrinks by the
frame's length); otherwise its deficit grows by its quantum and it goes to
the end of the round.  A class that empties leaves the round.  Class ``i``'s
quantum is ``quantum * weights[i]`` bytes, so backlogged classes share *bytes*
in the ratio of their weights, whatever their frame sizes; the service of
two backlogged classes of equal quantum Q never differs by more than Q plus
one maximum-size frame.

Work-conserving.  Drop reason ``queue_full`` (a class at its limit).  Per
class: ``deficit``, ``quantum``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from vswitch.core.frame import Frame
from vswitch.core.policies.base import IntRing
from vswitch.core.policies.classful import LIMIT, LIMIT_PARAMS, Classful
from vswitch.core.policies.classify import Classifier, classifier_from, classifier_params
from vswitch.core.policies.params import Param
from vswitch.core.policies.rr import WEIGHTS_PARAM

__all__ = ["Drr", "QUANTUM"]

QUANTUM = 1514          # Linux: psched_mtu(dev), the MTU plus the Ethernet header


class Drr(Classful):
    """Byte-fair round robin; see the module docstring."""

    KIND = "drr"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("quantum", "size", QUANTUM, "bytes a class may send per turn, times its weight",
              range=(1, 1 << 30), linux="psched_mtu(dev): MTU + 14"),
        WEIGHTS_PARAM,
        *classifier_params("port"),
        *LIMIT_PARAMS,
    )

    def __init__(self, classifier: Classifier, quantum: int = QUANTUM, weights: list[int] | None = None,
                 limit: int | None = LIMIT, limit_bytes: int | None = None) -> None:
        w = weights if weights is not None else [1] * classifier.classes
        if len(w) != classifier.classes:
            raise ValueError(f"weights: {len(w)} weights for {classifier.classes} classes")
        if quantum < 1 or any(x < 1 for x in w):
            raise ValueError(f"quantum {quantum}, weights {w}: each must be >= 1")
        super().__init__(classifier, limit, limit_bytes)
        self.quantum = quantum
        self.weights = list(w)
        for q, x in zip(self._q, w, strict=True):
            q.weight = x
            q.quantum = quantum * x
        self._active = IntRing()

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Drr:
        return cls(classifier_from(p, len(p["weights"])), p["quantum"], p["weights"], p["limit"],
                   p["limit_bytes"])

    def activate(self, c: int) -> None:
        self._active.push(c)
        q = self._q[c]
        q.deficit = q.quantum

    def dequeue(self, now_ns: int) -> Frame | None:
        active = self._active
        while len(active):
            c = active.first()
            q = self._q[c]
            n = len(q.first().data)
            if n <= q.deficit:
                q.deficit -= n
                f = self.take(c)
                if not len(q):
                    active.pop()
                return f
            q.deficit += q.quantum
            active.rotate()
        return None

    def class_stats(self, c: int) -> dict[str, object]:
        q = self._q[c]
        return {"quantum": q.quantum, "deficit": q.deficit}

    def config(self) -> dict[str, object]:
        d = super().config()
        d["quantum"] = self.quantum
        d["weights"] = list(self.weights)
        return d
