"""Round robin (``rr``) and weighted round robin (``wrr``), counted in packets.

`RoundRobin`: the backlogged classes take turns, one frame each turn (a
class joins the end of the round when it becomes backlogged).

`Wrr`: the same round, but class ``i`` sends up to ``weights[i]`` frames in a
row at its turn: backlogged classes share *packets* in the ratio of their
weights (3:1 gives 3:1 of frames, so of bytes only when the frames are the
same size; DRR is the byte-fair one).  This is the classic per-packet WRR,
not the NIC's credit-based byte WRR (nicmodel's TX arbiter has that).

Both are work-conserving.  Drop reason ``queue_full`` (a class at its limit).
"""

from __future__ import annotations

from typing import Any, ClassVar

from vswitch.core.frame import Frame
from vswitch.core.policies.base import IntRing
from vswitch.core.policies.classful import LIMIT, LIMIT_PARAMS, Classful
from vswitch.core.policies.classify import Classifier, classifier_from, classifier_params
from vswitch.core.policies.params import Param

__all__ = ["RoundRobin", "Wrr", "WEIGHTS_PARAM"]

WEIGHTS_PARAM = Param("weights", "ints", [1, 1], "one weight per class; the number of weights is the "
                      "number of classes", range=(1, 1 << 20))


class RoundRobin(Classful):
    """One frame per backlogged class per turn."""

    KIND = "rr"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("classes", "int", 2, "number of classes", range=(1, 4096)),
        *classifier_params("port"),
        *LIMIT_PARAMS,
    )

    def __init__(self, classifier: Classifier, limit: int | None = LIMIT, limit_bytes: int | None = None) -> None:
        super().__init__(classifier, limit, limit_bytes)
        self._active = IntRing()

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> RoundRobin:
        return cls(classifier_from(p, p["classes"]), p["limit"], p["limit_bytes"])

    def activate(self, c: int) -> None:
        self._active.push(c)

    def dequeue(self, now_ns: int) -> Frame | None:
        active = self._active
        if not len(active):
            return None
        c = active.pop()
        f = self.take(c)
        if len(self._q[c]):
            active.push(c)
        return f


class Wrr(Classful):
    """Up to ``weights[c]`` frames per turn for class ``c``."""

    KIND = "wrr"
    PARAMS: ClassVar[tuple[Param, ...]] = (WEIGHTS_PARAM, *classifier_params("port"), *LIMIT_PARAMS)

    def __init__(self, classifier: Classifier, weights: list[int], limit: int | None = LIMIT,
                 limit_bytes: int | None = None) -> None:
        if len(weights) != classifier.classes:
            raise ValueError(f"weights: {len(weights)} weights for {classifier.classes} classes")
        if any(w < 1 for w in weights):
            raise ValueError(f"weights {weights}: each must be >= 1")
        super().__init__(classifier, limit, limit_bytes)
        self.weights = list(weights)
        self._active = IntRing()
        self._left = 0              # frames the class at the head of the round may still send

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Wrr:
        return cls(classifier_from(p, len(p["weights"])), p["weights"], p["limit"], p["limit_bytes"])

    def activate(self, c: int) -> None:
        if not len(self._active):
            self._left = self.weights[c]
        self._active.push(c)

    def dequeue(self, now_ns: int) -> Frame | None:
        active = self._active
        if not len(active):
            return None
        c = active.first()
        f = self.take(c)
        self._left -= 1
        if self._left <= 0 or not len(self._q[c]):
            active.pop()
            if len(self._q[c]):
                active.push(c)
            if len(active):
                self._left = self.weights[active.first()]
        return f

    def config(self) -> dict[str, object]:
        d = super().config()
        d["weights"] = list(self.weights)
        return d
