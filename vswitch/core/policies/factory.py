"""Policies from their names and parameters: `build_scheduler`, `build_policer`, `describe`.

``build_scheduler("fq_codel", target="5ms", ecn="off")`` checks every
parameter against the kind's declaration (`Param`: type, default, unit,
range; text in tc's units or Python values in the base units), refuses an
unknown kind or parameter, a missing required one, or a bad value with a
``ValueError`` naming the kind, the parameter and the value (as ``tc``
refuses a qdisc it cannot build), and returns the scheduler, ready to hand
to a `Queue`.  ``describe()`` returns every kind's declaration as data, for
docs, ``--help`` and JSON; docs/policies.md is checked against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vswitch.core.policies.codel import CoDel
from vswitch.core.policies.drr import Drr
from vswitch.core.policies.fifo import Bfifo, CoreFifo, Pfifo, PfifoHeadDrop
from vswitch.core.policies.fq_codel import FqCodel
from vswitch.core.policies.htb import Htb
from vswitch.core.policies.params import Param, ParamError, check_params
from vswitch.core.policies.policer import Policer
from vswitch.core.policies.prio import PfifoFast, StrictPriority
from vswitch.core.policies.red import Red
from vswitch.core.policies.rr import RoundRobin, Wrr
from vswitch.core.policies.tbf import TokenBucket
from vswitch.core.policies.wfq import Wfq
from vswitch.core.scheduler import Scheduler

__all__ = ["Kind", "KINDS", "build_scheduler", "build_policer", "describe", "POLICER"]

@dataclass(frozen=True)
class Kind:
    """One buildable policy: its name, what it is, its parameters and how it is made from them."""

    name: str
    summary: str
    params: tuple[Param, ...]
    build: Callable[[dict[str, Any]], Any]
    work_conserving: bool = True


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("fifo", "first in, first out, with a packet and/or byte limit, tail or head drop (core Fifo)",
         CoreFifo.PARAMS, CoreFifo.from_params),
    Kind(Pfifo.KIND, "FIFO limited in packets, tail drop (tc pfifo)", Pfifo.PARAMS, Pfifo.from_params),
    Kind(Bfifo.KIND, "FIFO limited in bytes, tail drop (tc bfifo)", Bfifo.PARAMS, Bfifo.from_params),
    Kind(PfifoHeadDrop.KIND, "FIFO limited in packets that drops the oldest when full (tc pfifo_head_drop)",
         PfifoHeadDrop.PARAMS, PfifoHeadDrop.from_params),
    Kind(PfifoFast.KIND, "Linux's default: three strict-priority bands by the priomap", PfifoFast.PARAMS,
         PfifoFast.from_params),
    Kind(StrictPriority.KIND, "strict priority over N bands (tc prio)", StrictPriority.PARAMS,
         StrictPriority.from_params),
    Kind(RoundRobin.KIND, "round robin, one frame per backlogged class per turn", RoundRobin.PARAMS,
         RoundRobin.from_params),
    Kind(Wrr.KIND, "weighted round robin in packets", Wrr.PARAMS, Wrr.from_params),
    Kind(Drr.KIND, "deficit round robin in bytes (tc drr)", Drr.PARAMS, Drr.from_params),
    Kind(Wfq.KIND, "weighted fair queueing as start-time fair queueing", Wfq.PARAMS, Wfq.from_params),
    Kind(TokenBucket.KIND, "token-bucket shaper (tc tbf)", TokenBucket.PARAMS, TokenBucket.from_params,
         work_conserving=False),
    Kind(Htb.KIND, "hierarchical token bucket: rate, ceil and borrowing over a class tree (tc htb)",
         Htb.PARAMS, Htb.from_params, work_conserving=False),
    Kind(Red.KIND, "random early detection with ECN marking (tc red)", Red.PARAMS, Red.from_params),
    Kind(CoDel.KIND, "controlled delay, RFC 8289 (tc codel)", CoDel.PARAMS, CoDel.from_params),
    Kind(FqCodel.KIND, "flow queueing with per-flow CoDel, RFC 8290 (tc fq_codel)", FqCodel.PARAMS,
         FqCodel.from_params),
)}

POLICER = Kind(Policer.KIND, "srTCM (RFC 2697) or trTCM (RFC 2698) marker: an element, not a queue",
               Policer.PARAMS, lambda p: p, work_conserving=False)


def _kind(kind: str) -> Kind:
    k = KINDS.get(kind)
    if k is None:
        raise ParamError(f"unknown qdisc kind {kind!r} (known: {', '.join(KINDS)})")
    return k


def build_scheduler(kind: str, **params: Any) -> Scheduler:
    """A scheduler of ``kind`` with ``params`` (text or base-unit values), every one checked."""
    k = _kind(kind)
    values = check_params(k.params, params, kind)
    try:
        s: Scheduler = k.build(values)
    except ParamError:
        raise
    except ValueError as e:
        raise ParamError(f"{kind}: {e}") from None
    return s


def build_policer(name: str, **params: Any) -> Policer:
    """A `Policer` element named ``name`` with ``params``, every one checked."""
    values = check_params(POLICER.params, params, "policer")
    try:
        return Policer.from_params(name, values)
    except ValueError as e:
        raise ParamError(f"policer: {e}") from None


def describe(kind: str | None = None) -> dict[str, Any]:
    """The declaration of one kind (or of every kind and the policer) as data."""
    kinds = [_kind(kind)] if kind is not None else [*KINDS.values(), POLICER]
    out = {k.name: {"summary": k.summary, "work_conserving": k.work_conserving,
                    "params": [p.describe() for p in k.params]} for k in kinds}
    return out[kind] if kind is not None else out
