"""Weighted fair queueing (``wfq``) as start-time fair queueing (Goyal, Vin and Cheng, 1996).

Which WFQ: *start-time* fair queueing (SFQ in the paper; not Linux's
stochastic ``sfq``).  Each arriving frame of class ``i`` and length ``L`` gets
a start tag ``S = max(v, F_i)`` and a finish tag ``F_i = S + L / w_i``, where
``F_i`` is the finish tag of the class's previous frame and ``v`` the virtual
time: the start tag of the frame in service, and, once the scheduler is
idle, the largest finish tag served.  The frame with the smallest start tag
leaves first (ties: the lower class).  Unlike packet-by-packet GPS
emulation (the textbook WFQ, ns.py's ``WFQServer``) it needs no simulation
of the fluid system, so it works with any link rate, known or not, and its
fairness bound does not depend on the number of classes: over any interval
in which classes ``i`` and ``j`` are both backlogged,
``|W_i/w_i - W_j/w_j| <= Lmax_i/w_i + Lmax_j/w_j`` (bytes ``W``).

Tags are integers (bytes scaled by 2**20, divided by the weight).

Work-conserving.  Drop reason ``queue_full``.  Per class: ``finish_tag``.
"""

from __future__ import annotations

import heapq
from typing import Any, ClassVar

from vswitch.core.frame import Frame
from vswitch.core.policies.classful import LIMIT, LIMIT_PARAMS, Classful
from vswitch.core.policies.classify import Classifier, classifier_from, classifier_params
from vswitch.core.policies.params import Param
from vswitch.core.policies.rr import WEIGHTS_PARAM

__all__ = ["Wfq"]

_SCALE = 1 << 20


class Wfq(Classful):
    """Start-time fair queueing; see the module docstring."""

    KIND = "wfq"
    PARAMS: ClassVar[tuple[Param, ...]] = (WEIGHTS_PARAM, *classifier_params("port"), *LIMIT_PARAMS)

    def __init__(self, classifier: Classifier, weights: list[int] | None = None, limit: int | None = LIMIT,
                 limit_bytes: int | None = None) -> None:
        w = weights if weights is not None else [1] * classifier.classes
        if len(w) != classifier.classes:
            raise ValueError(f"weights: {len(w)} weights for {classifier.classes} classes")
        if any(x < 1 for x in w):
            raise ValueError(f"weights {w}: each must be >= 1")
        super().__init__(classifier, limit, limit_bytes)
        self.weights = list(w)
        self.vtime = 0
        self._max_finish = 0
        for q, x in zip(self._q, w, strict=True):
            q.weight = x
        self._heap: list[tuple[int, int]] = []     # (start tag of a class's head frame, class)

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Wfq:
        return cls(classifier_from(p, len(p["weights"])), p["weights"], p["limit"], p["limit_bytes"])

    def enqueue(self, frame: Frame, now_ns: int) -> bool:
        if not self._backlog_packets:
            self.vtime = self._max_finish       # idle: virtual time jumps to the largest finish served
        c = self.classifier.classify(frame)
        if not self.admit(frame, c):
            return False
        q = self._q[c]
        s = q.finish
        if self.vtime > s:
            s = self.vtime
        q.finish = s + (len(frame.data) * _SCALE) // q.weight
        q.times.append(s)                      # the class ring keeps each frame's start tag
        if len(q) == 1:
            heapq.heappush(self._heap, (s, c))
        return True

    def dequeue(self, now_ns: int) -> Frame | None:
        heap = self._heap
        if not heap:
            return None
        s, c = heapq.heappop(heap)
        self.vtime = s
        f = self.take(c)
        q = self._q[c]
        fin = s + (len(f.data) * _SCALE) // q.weight
        if fin > self._max_finish:
            self._max_finish = fin
        if len(q):
            heapq.heappush(heap, (q.first_time(), c))
        return f

    def class_stats(self, c: int) -> dict[str, object]:
        return {"weight": self.weights[c], "finish_tag": self._q[c].finish}

    def config(self) -> dict[str, object]:
        d = super().config()
        d["weights"] = list(self.weights)
        return d
