"""Where the points run: this process, a local process pool, or an existing Dask cluster.

Every executor runs the same task, `bench.experiments.kinds.run_point(kind,
params, seed)`, and hands each finished point to ``done(point, result)`` (or
``failed(point, error)``) in the order they finish; the caller stores and
orders them, so the outputs do not depend on the executor.

* ``local`` with ``jobs`` 1: in this process, one point after the other.
* ``local``: a `concurrent.futures.ProcessPoolExecutor` of ``jobs`` processes
  (spawned: a fresh interpreter each, as a Dask worker is).
* ``dask``: `distributed.Client(scheduler)` on a running cluster (``dask
  scheduler`` and ``dask worker`` processes); each point is a task.  A worker
  that dies takes its running tasks with it, and the scheduler runs them again
  on another worker (up to ``distributed.scheduler.allowed-failures`` times,
  3 by default, before the point fails with KilledWorker).  The workers must
  import the same vswitch (installed, or run from the same tree) and read any
  trace or topology file at the path the experiment gives.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any

from bench.experiments.kinds import run_point
from bench.experiments.spec import Point

Done = Callable[[Point, dict[str, Any]], None]
Failed = Callable[[Point, str], None]


class ExecutorError(Exception):
    """The executor itself cannot run (no scheduler there): one line."""


def _why(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if type(e).__name__ not in text else text


def run_inline(kind: str, points: Sequence[Point], done: Done, failed: Failed) -> None:
    for p in points:
        try:
            res = run_point(kind, p.params, p.seed)
        except Exception as e:  # noqa: BLE001 - a failed point is reported, the sweep goes on
            failed(p, _why(e))
        else:
            done(p, res)


def run_local(kind: str, points: Sequence[Point], jobs: int, done: Done, failed: Failed) -> None:
    if jobs <= 1 or len(points) <= 1:
        run_inline(kind, points, done, failed)
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(points)), mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(run_point, kind, p.params, p.seed): p for p in points}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                p = pending.pop(fut)
                err = fut.exception()
                if err is not None:
                    failed(p, _why(err))
                else:
                    done(p, fut.result())


def run_dask(kind: str, points: Sequence[Point], scheduler: str, done: Done, failed: Failed,
             timeout_s: float = 10.0) -> None:
    from distributed import Client, as_completed
    try:
        client = Client(scheduler, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise ExecutorError(f"--scheduler {scheduler}: cannot reach the Dask scheduler: {_why(e)}") from None
    try:
        run = uuid.uuid4().hex[:8]           # this sweep's task keys (a rerun never reuses another's)
        futures = {client.submit(run_point, kind, p.params, p.seed, key=f"vsw-point-{p.key}-{run}",
                                 pure=False): p for p in points}
        for fut in as_completed(list(futures), loop=client.loop):
            p = futures[fut]
            if fut.status == "finished":
                done(p, fut.result())
            else:
                failed(p, _why(fut.exception()))
            fut.release()
    finally:
        client.close()
