"""Random early detection (``red``), as Linux's sch_red with tc's parameters (Floyd and Jacobson, 1993).

At each arrival the average backlog (bytes) moves towards the current one,
``avg += W * (backlog - avg)`` with ``W = 2**-ewma_log`` (tc derives
``ewma_log`` from ``burst``, as tc_red_eval_ewma does; give ``ewma_log`` to set
it directly).  After an idle period the average decays as if
``idle * bandwidth / avpkt`` small frames had arrived to an empty queue.

- ``avg < min``: the frame is taken.
- ``min <= avg < max``: marked with probability ``p_b = probability * (avg -
  min) / (max - min)``, spread the way RED spreads it (Linux's count and
  random threshold): the number of frames between marks is uniform on
  ``1 .. 1/p_b``, so the fraction marked is about ``2 p_b / (1 + p_b)``.
- ``avg >= max``: every frame is marked.

"Marked" means: with ``ecn`` on and an ECN-capable (ECT) frame, CE is set in
its IP header (checksum updated) and the frame is taken; otherwise it is
dropped (always dropped above max with ``harddrop``).  A frame that would
take the backlog beyond ``limit`` bytes is dropped whatever the average.

The random numbers come from ``random.Random(seed)``: a run is reproducible.

Counters, as ``tc -s qdisc show`` words them for red: ``prob_mark``,
``forced_mark`` (and the drops: ``prob_drop``, ``forced_drop``, ``queue_full``
= pdrop are the drop reasons).  Work-conserving.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from vswitch.core.frame import Frame
from vswitch.core.policies.base import Policy, Ring
from vswitch.core.policies.headers import set_ce
from vswitch.core.policies.params import REQUIRED, Param

__all__ = ["Red", "eval_ewma"]

_NS_BITS = 8 * 10**9


def eval_ewma(qmin: int, burst: int, avpkt: int) -> int:
    """tc's tc_red_eval_ewma: the smallest Wlog whose filter lets ``burst`` back-to-back frames of
    ``avpkt`` bytes arrive before the average reaches ``qmin``; ValueError if none."""
    a = burst + 1 - qmin / avpkt
    if a < 1.0:
        raise ValueError(f"burst {burst}: too small for min {qmin} and avpkt {avpkt} "
                         f"(try burst {1 + qmin // avpkt}, as tc says)")
    w = 0.5
    for wlog in range(1, 32):
        if a <= (1 - (1 - w) ** burst) / w:
            return wlog
        w /= 2
    raise ValueError(f"burst {burst}: no EWMA weight fits (tc refuses it too)")


class Red(Policy):
    """RED over a byte-limited FIFO; see the module docstring."""

    KIND = "red"
    COUNTERS = ("prob_mark", "forced_mark")
    DROP_REASONS = ("prob_drop", "forced_drop", "queue_full")
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("limit", "size", REQUIRED, "bytes the queue may hold (a hard limit)", range=(1, 1 << 40)),
        Param("max", "size", None, "average backlog at which every frame is marked (none: 3*min, or "
              "limit/4 without min, as tc)", range=(1, 1 << 40)),
        Param("min", "size", None, "average backlog at which marking starts (none: max/3, as tc)",
              range=(1, 1 << 40)),
        Param("probability", "float", 0.02, "marking probability as the average reaches max",
              range=(0.0, 1.0)),
        Param("avpkt", "size", 1000, "typical frame size", range=(1, 65535)),
        Param("burst", "int", None, "frames a burst may bring before the average reacts; sets ewma_log "
              "(none: (2*min + max) / (3*avpkt), as tc)", range=(1, 1 << 30)),
        Param("ewma_log", "int", None, "the average's weight W = 2**-ewma_log (none: from burst)",
              range=(1, 31)),
        Param("bandwidth", "rate", 10**7, "link rate, for the average's decay while idle",
              range=(8, 10**13), linux="tc says 'RED: set bandwidth to 10Mbit' when none is given"),
        Param("ecn", "bool", False, "mark ECN-capable frames with CE instead of dropping them"),
        Param("harddrop", "bool", False, "with ecn: still drop (never mark) above max"),
        Param("seed", "int", 0, "seed of the random numbers (a run is reproducible)", range=(0, 2**63 - 1)),
    )

    def __init__(self, limit: int, max: int | None = None, min: int | None = None, probability: float = 0.02,
                 avpkt: int = 1000, burst: int | None = None, ewma_log: int | None = None,
                 bandwidth: int = 10**7, ecn: bool = False, harddrop: bool = False, seed: int = 0) -> None:
        # tc's defaults (Sally Floyd's recommendations, q_red.c): max = 3*min, or limit/4.
        if max is None:
            max = 3 * min if min is not None else limit // 4
        qmin = min if min is not None else max // 3
        if qmin < 1:
            raise ValueError(f"min {qmin}: must be >= 1 byte")
        if qmin >= max:
            raise ValueError(f"min {qmin}, max {max}: min must be below max")
        if max > limit:
            raise ValueError(f"max {max}: must not exceed limit {limit}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability {probability}: must be 0-1")
        if burst is None:
            burst = (2 * qmin + max) // (3 * avpkt)
        if ewma_log is None:
            ewma_log = eval_ewma(qmin, burst, avpkt)
        super().__init__()
        self.limit = limit
        self.qmin = qmin
        self.qmax = max
        self.probability = probability
        self.avpkt = avpkt
        self.burst = burst
        self.ewma_log = ewma_log
        self.bandwidth = bandwidth
        self.ecn = ecn
        self.harddrop = harddrop
        self.seed = seed
        self.w = 1.0 / (1 << ewma_log)
        self.avg = 0.0
        self.qcount = -1
        self.qr = 0.0
        self._rng = random.Random(seed)
        self._idle_since = -1            # >= 0: the queue went idle then
        self._avpkt_ns = avpkt * _NS_BITS / bandwidth
        self._q = Ring()

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Red:
        return cls(p["limit"], p["max"], p["min"], p["probability"], p["avpkt"], p["burst"], p["ewma_log"],
                   p["bandwidth"], p["ecn"], p["harddrop"], p["seed"])

    def _average(self, now_ns: int) -> float:
        if self._idle_since >= 0:
            # As if idle * bandwidth / avpkt frames had found the queue empty (Linux approximates
            # this with its Stab table).
            m = (now_ns - self._idle_since) / self._avpkt_ns
            self.avg *= (1.0 - self.w) ** m
            self._idle_since = -1
        self.avg += self.w * (self._backlog_bytes - self.avg)
        return self.avg

    def _mark(self, frame: Frame, forced: bool) -> bool:
        """A marked frame: CE where allowed (True: take it), else dropped (False)."""
        if self.ecn and not (forced and self.harddrop) and set_ce(frame):
            self.counters["forced_mark" if forced else "prob_mark"] += 1
            return True
        self.drop(frame, "forced_drop" if forced else "prob_drop")
        return False

    def enqueue(self, frame: Frame, now_ns: int) -> bool:
        avg = self._average(now_ns)
        if avg < self.qmin:
            self.qcount = -1
        elif avg < self.qmax:
            self.qcount += 1
            if self.qcount:
                p_b = self.probability * (avg - self.qmin) / (self.qmax - self.qmin)
                if p_b * self.qcount >= self.qr:
                    self.qcount = 0
                    self.qr = self._rng.random()
                    if not self._mark(frame, False):
                        return False
            else:
                self.qr = self._rng.random()
        else:
            self.qcount = -1
            if not self._mark(frame, True):
                return False
        n = len(frame.data)
        if self._backlog_bytes + n > self.limit:
            self.drop(frame, "queue_full")
            return False
        self._q.push(frame)
        self._backlog_packets += 1
        self._backlog_bytes += n
        return True

    def dequeue(self, now_ns: int) -> Frame | None:
        q = self._q
        if not len(q):
            if self._idle_since < 0:
                self._idle_since = now_ns
            return None
        f = q.pop()
        self._backlog_packets -= 1
        self._backlog_bytes -= len(f.data)
        return f

    def stats(self) -> dict[str, object]:
        return {"avg_bytes": round(self.avg), "qcount": self.qcount}

    def config(self) -> dict[str, object]:
        return {"limit": self.limit, "min": self.qmin, "max": self.qmax, "probability": self.probability,
                "avpkt": self.avpkt, "burst": self.burst, "ewma_log": self.ewma_log, "bandwidth": self.bandwidth,
                "ecn": self.ecn, "harddrop": self.harddrop, "seed": self.seed}
