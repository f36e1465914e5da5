"""``vswitch-bench experiment FILE|NAME``: run every point of an experiment's sweep, write its tables and plots.

FILE is an experiment TOML (docs/experiments.md); NAME one of the built-in
experiments shipped with the package (``--list`` names them).  Everything is
checked before any point runs: a bad file is one line on stderr naming the
file, the line and the key (exit 2).  Points run in this process (``--jobs
1``), on a local process pool (default: one process per core) or on a Dask
cluster (``--executor dask --scheduler tcp://HOST:8786``); a rich progress bar
shows them on a terminal.  ``--out DIR`` gets ``points.jsonl`` (each run as it
finishes), ``results.csv``/``.parquet`` (a row per run), ``summary.csv``/
``.parquet`` (a row per parameter set, seeds merged), ``results.json`` and
the plots.  ``--resume`` skips the runs ``points.jsonl`` already holds.

Exit status: 0 every point ran; 1 a point failed (the others are written;
``--resume`` runs the failed ones again) or the executor could not run; 2 a bad
experiment file or arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bench.experiments import executors, outputs
from bench.experiments.spec import Experiment, ExperimentError, Point, load_experiment

EXECUTORS = ("local", "dask")


def builtin_dir() -> Path:
    return Path(str(resources.files("bench.experiments") / "builtin"))


def builtins() -> dict[str, Path]:
    return {p.stem: p for p in sorted(builtin_dir().glob("*.toml"))}


def resolve(name: str) -> Path:
    p = Path(name)
    if p.exists() or "/" in name or name.endswith(".toml"):
        return p
    known = builtins()
    if name in known:
        return known[name]
    raise ExperimentError(f"{name}: no such file, nor a built-in experiment (built-in: {', '.join(known)})")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:              # not Linux
        return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vswitch-bench experiment", description=__doc__.split("\n\n")[0],
                                 epilog="docs/experiments.md describes the file format, the executors and the "
                                 "outputs.")
    ap.add_argument("experiment", nargs="?", metavar="FILE|NAME",
                    help="an experiment TOML, or the name of a built-in one (--list)")
    ap.add_argument("--list", action="store_true", help="list the built-in experiments and exit")
    ap.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                    help="local executor: points at once (default: one per core, here "
                    f"{cores()}; 1 runs them in this process)")
    ap.add_argument("-o", "--out", metavar="DIR",
                    help="the output directory (default: ./experiment-NAME, NAME the experiment's name)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the runs DIR/points.jsonl holds and run only the others (by default a run "
                    "starts afresh)")
    ap.add_argument("--executor", choices=EXECUTORS, default="local",
                    help="local: a process pool on this machine; dask: an existing dask.distributed cluster "
                    "(--scheduler) (default local)")
    ap.add_argument("--scheduler", metavar="ADDRESS",
                    help="the Dask scheduler's address, e.g. tcp://10.0.0.5:8786 (with --executor dask)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar, only the last line")
    return ap


def _console() -> Console:
    return Console(stderr=True, highlight=False)


def _record(p: Point, res: dict[str, Any]) -> dict[str, Any]:
    return {"key": p.key, "index": p.index, "seed": p.seed, "axes": p.axes, "metrics": res["metrics"],
            "histograms": res.get("histograms", {}), "ports": res.get("ports", {}),
            "wall_s": res["wall_s"], "worker": res["worker"]}


def run_experiment(exp: Experiment, out: Path, *, jobs: int = 1, resume: bool = False, executor: str = "local",
                   scheduler: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Run (what is left of) the sweep into ``out``; return counts, the failures and the summary rows."""
    from bench.experiments.kinds import get_kind
    from bench.experiments.plots import draw
    out.mkdir(parents=True, exist_ok=True)
    store = outputs.Store(out, resume)
    keys = {p.key for p in exp.points}
    todo = [p for p in exp.points if p.key not in store.records]
    resumed = len(exp.points) - len(todo)
    failures: dict[str, str] = {}
    console = _console()
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not progress)
    t0 = time.perf_counter()
    with bar:
        task = bar.add_task(exp.name, total=len(exp.points), completed=resumed)

        def done(p: Point, res: dict[str, Any]) -> None:
            store.add(_record(p, res))
            bar.advance(task)

        def failed(p: Point, why: str) -> None:
            failures[p.key] = why
            bar.console.print(f"point {p.index} seed {p.seed} ({p.key}) failed: {why}", markup=False,
                              soft_wrap=True)
            bar.advance(task)
        if executor == "dask":
            if not scheduler:
                raise ExperimentError("--executor dask: give --scheduler tcp://HOST:PORT")
            executors.run_dask(exp.kind, todo, scheduler, done, failed)
        else:
            executors.run_local(exp.kind, todo, jobs, done, failed)
    wall = time.perf_counter() - t0
    order = {p.key: i for i, p in enumerate(exp.points)}
    records = sorted((r for k, r in store.records.items() if k in keys), key=lambda r: order[r["key"]])
    prefixes = get_kind(exp.kind).metric_prefixes
    summary, merged = outputs.write_all(exp, out, records, prefixes) if records else ([], {})
    plots = []
    if records:
        for p in exp.plots:
            draw(exp, p, summary, merged, out / p.file)
            plots.append(p.file)
    return {"points": len(exp.points), "resumed": resumed, "ran": len(todo) - len(failures),
            "failed": failures, "wall_s": wall, "summary": summary, "plots": plots}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for name, path in builtins().items():
            try:
                exp = load_experiment(path)
                print(f"{name:20} {len(exp.points):4} runs  {exp.description}")
            except ExperimentError as e:
                print(f"{name:20} (cannot load: {e})")
        return 0
    try:
        if args.experiment is None:
            raise ExperimentError("give an experiment file or a built-in name (--list names them)")
        if args.jobs is not None and args.jobs < 1:
            raise ExperimentError(f"--jobs {args.jobs}: need at least 1")
        if args.scheduler and args.executor != "dask":
            raise ExperimentError("--scheduler goes with --executor dask")
        if args.executor == "dask" and args.jobs is not None:
            raise ExperimentError("--jobs is for the local executor (a Dask cluster runs as many as it has workers)")
        exp = load_experiment(resolve(args.experiment))
        out = Path(args.out) if args.out else Path(f"experiment-{exp.name}")
        if out.exists() and not out.is_dir():
            raise ExperimentError(f"--out {out}: exists and is not a directory")
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / ".vsw-write-check").touch()
            (out / ".vsw-write-check").unlink()
        except OSError as e:
            raise ExperimentError(f"--out {out}: cannot write: {e.strerror}") from None
    except ExperimentError as e:
        print(f"vswitch-bench experiment: {e}", file=sys.stderr)
        return 2
    try:
        got = run_experiment(exp, out, jobs=args.jobs or cores(), resume=args.resume, executor=args.executor,
                             scheduler=args.scheduler, progress=not args.quiet and sys.stderr.isatty())
    except (executors.ExecutorError, ExperimentError) as e:
        print(f"vswitch-bench experiment: {e}", file=sys.stderr)
        return 1
    ran, n = got["ran"], got["points"]
    rate = f"{ran / got['wall_s']:.2f} runs/s" if got["wall_s"] > 0 and ran else "-"
    files = ["results.csv", "results.parquet", "summary.csv", "summary.parquet", "results.json", *got["plots"]]
    print(f"experiment {exp.name}: {n} runs ({got['resumed']} resumed, {ran} run, {len(got['failed'])} failed) "
          f"in {got['wall_s']:.1f} s wall ({rate}, executor {args.executor}) -> {out}/: {', '.join(files)}",
          flush=True)
    return 1 if got["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
