"""The point runners: a registry of experiment kinds, and `run_point`, the task every executor runs.

The interface
-------------
A kind is a `Kind`: a name, a ``run(params, seed) -> dict`` and optionally a
``check(params)`` that refuses parameters it cannot run (raising
`bench.experiments.spec.FieldError` with the key, so the error names the line
of the experiment file) before any point starts.

* ``params`` is plain data: ``{"topology": ..., "traffic": ..., "policy": ...,
  "measure": ...}``, each section with every default filled in (the typed
  sections come back with `bench.experiments.spec.spec_from_params`), and
  ``seed`` the point's seed: the same params and seed must give the same
  result, in any process on any machine.
* ``run`` returns ``{"metrics": {name: int | float | str | bool}, "histograms":
  {name: encoded HDR histogram}, "ports": {port: {name: scalar}}}`` (the last
  two may be absent).  Histograms are `hdrh.histogram.HdrHistogram` objects
  encoded with ``encode()`` (bench/experiments/hdr.py makes and merges them):
  the runner takes percentiles from them and merges them across seeds, never
  from a sample.
* ``metrics`` names the scalar metrics the kind reports (``drops_`` and the
  like may be prefixes of a family), so a plot's columns are checked before
  anything runs.

Kinds are registered by name in `KINDS` as ``"module:attribute"`` (imported
when used, so that loading the registry costs nothing); an experiment may also
name any importable ``package.module:ATTRIBUTE`` that is a `Kind`.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KINDS: dict[str, str] = {
    "replay": "bench.experiments.replay_kind:KIND",
    "discrete": "bench.experiments.discrete_kind:KIND",
    "queue": "bench.experiments.queue_kind:KIND",
}


@dataclass(frozen=True)
class Kind:
    name: str
    run: Callable[[dict[str, Any], int], dict[str, Any]]
    check: Callable[[dict[str, Any]], None] | None = None
    metrics: tuple[str, ...] = ()
    metric_prefixes: tuple[str, ...] = ()
    histograms: tuple[str, ...] = ()
    doc: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def get_kind(name: str) -> Kind:
    """The kind ``name`` (a registered name, or ``module:attribute``); KeyError saying what is known."""
    target = KINDS.get(name, name if ":" in name else None)
    if target is None:
        raise KeyError(f"{name!r}: no such kind (known: {', '.join(sorted(KINDS))}; or module:attribute)")
    mod, _, attr = target.partition(":")
    try:
        obj = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise KeyError(f"{name!r}: cannot load {target}: {e}") from None
    if not isinstance(obj, Kind):
        raise KeyError(f"{name!r}: {target} is not a bench.experiments.kinds.Kind")
    return obj


def check_kind(name: str) -> None:
    get_kind(name)


def check_params(name: str, params: dict[str, Any]) -> None:
    k = get_kind(name)
    if k.check is not None:
        k.check(params)


def is_metric(name: str, measure: Any, col: str) -> bool:
    k = get_kind(name)
    if col in k.metrics or col in ("wall_s",) or col.startswith(k.metric_prefixes):
        return True
    if measure.latency:
        from bench.experiments.hdr import percentile_column
        for h in k.histograms:
            if col in {percentile_column(h, q) for q in measure.percentiles} | {f"{h}_mean_ns", f"{h}_max_ns",
                                                                               f"{h}_count"}:
                return True
    return False


def run_point(kind: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Run one point: what the local pool and the Dask workers call.  Adds ``wall_s`` (the one value
    that differs between runs) and ``worker`` (host:pid) to the kind's result."""
    k = get_kind(kind)
    t0 = time.perf_counter()
    res = k.run(params, seed)
    wall = time.perf_counter() - t0
    if not isinstance(res, dict) or not isinstance(res.get("metrics"), dict):
        raise TypeError(f"kind {kind!r} returned {type(res).__name__}, not a dict with \"metrics\"")
    res.setdefault("histograms", {})
    res.setdefault("ports", {})
    res["wall_s"] = wall
    res["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return res
