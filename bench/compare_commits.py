"""``vswitch-bench compare-commits [REV]``: this tree against another commit, same benchmarks, interleaved.

REV (any git revision) is checked out into a temporary detached worktree
(``git worktree add --detach`` under a fresh temp directory), which is removed
at the end, also on failure, Ctrl-C or SIGTERM.  Without REV the baseline is the
merge-base of HEAD and ``main`` (what this branch changed), or ``HEAD~1`` where
HEAD is on ``main`` itself.  "This tree" is the working tree as it is, uncommitted
changes included.

No second virtualenv: both trees run with this interpreter and its packages,
with ``PYTHONPATH`` and the working directory set to the tree under test.  The
editable install's import hook comes after the path finder, so the tree on
``PYTHONPATH`` wins; every benchmark process checks, after its run, that each
module it loaded from the project's packages came from its own tree (exit 3
otherwise), and a probe prints each tree's ``vswitch.__file__`` before the first
round.  Where a compiled benchmark is selected, ``python -m vswitch.mypyc_build
ensure`` runs in each tree (this one included), so each runs its own build; the
benchmarks' JSON says which dataplane ran and a mismatch is an error.

Each benchmark runs once per tree per round, each time in a fresh process,
interleaved (round 1: A B, round 2: B A, ...) so drift and the other load on
the machine hit both trees alike and neither always goes first.  The figure of
every benchmark is a cost per frame (lower is better); the table gives each
tree's median over the rounds with its spread (min-max), the ratio this/REV
and a verdict: ``ok`` within +5 % (``faster`` under -5 %), ``SLOWER`` above.

switch       vswitch-bench switch, compiled: median round, ns/frame
switch-pure  the same with VSWITCH_PURE=1
nic-sorter   vswitch-bench nic-sorter: sorter + ring enqueue, us/frame
live-path    vswitch-bench live-path: vswitchd's data path, ns/frame (root)
peers-cpu    vswitch-bench peers --only vswitchd --measure cpu: CPU us/frame
             at 50 kpps (root, iperf3; about 10 s per run)

A benchmark REV does not have (or cannot run) is skipped with a note; trees
whose benchmark has no ``--json`` are read from their text output.

Exit status: 0 nothing slower; 1 something slower or a benchmark failed;
2 bad arguments or cannot run here; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.signals import signals_ignored, sigterm_as_interrupt

ROOT = Path(__file__).resolve().parents[1]
THRESHOLD = 0.05                      # issue 9 item 7: within 5 % or better
CHILD_TIMEOUT_S = 900


class Unavailable(Exception):
    """compare-commits cannot run (exit 2, one line)."""


class ChildFailed(Exception):
    """One benchmark run failed."""


@dataclass(frozen=True)
class Bench:
    """One benchmark: the ``vswitch-bench`` command line (the same for both trees: every
    setting spelled out, so a changed default cannot skew the comparison), how to read its
    figure from ``--json`` or, for trees without it, from its text output."""

    name: str
    label: str
    argv: tuple[str, ...]
    unit: str
    digits: int
    from_json: Callable[[dict[str, Any]], float]
    text: str | None = None           # regex whose one group is the figure in `unit`
    pure: bool = False
    root: bool = False
    tools: tuple[str, ...] = ()

    def parse(self, stdout: str, data: dict[str, Any] | None) -> float:
        """The figure of one run: from the JSON where there is one, else from the text."""
        if data is not None:
            try:
                return float(self.from_json(data))
            except (KeyError, TypeError, ValueError) as e:
                raise ChildFailed(f"no figure in its JSON ({type(e).__name__}: {e})") from None
        if self.text is None:
            raise ChildFailed("no --json in this tree and no text output to read")
        m = re.search(self.text, stdout, re.MULTILINE)
        if m is None:
            raise ChildFailed(f"no figure in its output: {stdout.strip()[-300:]!r}")
        return float(m.group(1))

    def fmt(self, v: float) -> str:
        return f"{v:,.{self.digits}f}"


SWITCH_ARGS = ("switch", "--ports", "8", "--macs", "1000", "--frames", "8192", "--batch", "64", "--rounds", "30")
SWITCH_TEXT = r"vswitch pipeline: best .*median\s+[\d.]+ Mpps \(\s*([\d.]+) ns/frame\)"
BENCHES: dict[str, Bench] = {b.name: b for b in (
    Bench("switch", "switch, compiled", SWITCH_ARGS, "ns/frame", 1,
          lambda d: d["pipeline"]["median_ns_per_frame"], SWITCH_TEXT),
    Bench("switch-pure", "switch, interpreted", SWITCH_ARGS, "ns/frame", 1,
          lambda d: d["pipeline"]["median_ns_per_frame"], SWITCH_TEXT, pure=True),
    Bench("nic-sorter", "nic-sorter", ("nic-sorter", "--profile", "82599", "--mrqc", "0x8", "--pools", "64",
                                       "--batch", "64", "--frames", "65536", "--rounds", "20"), "us/frame", 3,
          lambda d: d["sorter_us_per_frame"], r"sorter \+ ring enqueue:\s*([\d.]+) us/frame"),
    Bench("live-path", "live-path", ("live-path", "--batch", "50", "--frames", "200000", "--rounds", "5"),
          "ns/frame", 0, lambda d: d["vswitchd_ns_per_frame"], r"vswitchd data path:\s*([\d.]+) ns/frame",
          root=True),
    Bench("peers-cpu", "peers: CPU at 50 kpps", ("peers", "--only", "vswitchd", "--measure", "cpu", "--reps", "1",
                                                 "--duration", "5"), "us/frame", 2,
          lambda d: d["switches"]["vswitchd"]["cpu_us_per_frame"], root=True, tools=("iperf3", "ip", "ping")),
)}


# -- the verdict ---------------------------------------------------------------------
@dataclass
class Row:
    """One benchmark's samples for both trees, and what they say."""

    bench: Bench
    this: list[float] = field(default_factory=list)
    rev: list[float] = field(default_factory=list)
    note: str = ""                    # why it was skipped or failed
    failed: bool = False

    @property
    def ratio(self) -> float | None:
        """This tree's cost over REV's (medians); > 1 is slower."""
        if not self.this or not self.rev or self.failed:
            return None
        return statistics.median(self.this) / statistics.median(self.rev)

    @property
    def paired(self) -> list[float]:
        """Each round's this/REV: the two runs of a round are back to back, so the range of
        these says how far the noise alone moves the ratio."""
        return [a / b for a, b in zip(self.this, self.rev, strict=False)]

    @property
    def overlap(self) -> bool:
        """Do the two trees' ranges (min-max) overlap?"""
        return bool(self.this and self.rev) and max(min(self.this), min(self.rev)) <= min(max(self.this),
                                                                                          max(self.rev))

    @property
    def verdict(self) -> str:
        return verdict(self.ratio, failed=self.failed)

    def as_dict(self) -> dict[str, Any]:
        def side(xs: list[float]) -> dict[str, Any]:
            return {"samples": xs, "median": statistics.median(xs) if xs else None,
                    "min": min(xs, default=None), "max": max(xs, default=None)}
        return {"label": self.bench.label, "unit": self.bench.unit, "argv": ["vswitch-bench", *self.bench.argv],
                "pure": self.bench.pure, "this": side(self.this), "rev": side(self.rev), "ratio": self.ratio,
                "round_ratios": self.paired,
                "verdict": self.verdict, "ranges_overlap": self.overlap if self.ratio is not None else None,
                "note": self.note}


def verdict(ratio: float | None, threshold: float = THRESHOLD, failed: bool = False) -> str:
    """``ok`` within ``threshold`` slower, ``faster`` beyond it the other way, ``SLOWER``
    beyond it; ``failed`` or ``skipped`` without a ratio."""
    if failed:
        return "failed"
    if ratio is None:
        return "skipped"
    if ratio > 1 + threshold:
        return "SLOWER"
    return "faster" if ratio < 1 - threshold else "ok"


def spread(row: Row, xs: list[float]) -> str:
    """The median, and the range where there is more than one sample."""
    if not xs:
        return ""
    b = row.bench
    med = b.fmt(statistics.median(xs))
    return f"{med} ({b.fmt(min(xs))}-{b.fmt(max(xs))})" if len(xs) > 1 else med


def table(rows: list[Row], title: str, this_label: str, rev_label: str) -> Any:
    from rich.table import Table
    t = Table(title=title)
    t.add_column("benchmark")
    t.add_column("unit")
    t.add_column(f"{this_label}\nmedian (min-max)", justify="right")
    t.add_column(f"{rev_label}\nmedian (min-max)", justify="right")
    t.add_column("this/REV\n(rounds' range)", justify="right")
    t.add_column("verdict")
    for r in rows:
        ratio = r.ratio
        v = r.verdict
        if ratio is not None and v != "ok" and r.overlap:
            v += " (ranges overlap)"
        if r.note:
            v += f": {r.note}" if ratio is None else f"; {r.note}"
        style = "bold red" if r.verdict in ("SLOWER", "failed") else None
        cell = "" if ratio is None else f"{ratio:.3f}"
        if ratio is not None and len(r.paired) > 1:
            cell += f" ({min(r.paired):.2f}-{max(r.paired):.2f})"
        t.add_row(r.bench.name, r.bench.unit, spread(r, r.this), spread(r, r.rev), cell, v, style=style)
    return t


# -- git and the trees -----------------------------------------------------------------
def git(*args: str, cwd: Path = ROOT, check: bool = True) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise Unavailable(f"git {' '.join(args)}: {(r.stderr or r.stdout).strip()}")
    return r.stdout.strip() if r.returncode == 0 else ""


def resolve_rev(rev: str | None) -> tuple[str, str]:
    """(commit, how it was chosen) for REV, or for the default baseline."""
    if not git("rev-parse", "--is-inside-work-tree", check=False):
        raise Unavailable(f"{ROOT} is not a git checkout (compare-commits needs the repository)")
    how = ""
    if rev is None:
        head = git("rev-parse", "HEAD")
        base = git("merge-base", "HEAD", "main", check=False) if git("rev-parse", "--verify", "--quiet",
                                                                      "main", check=False) else ""
        if base and base != head:
            rev, how = base, "the merge-base of HEAD and main"
        else:
            rev, how = "HEAD~1", "HEAD~1"
    commit = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if not commit:
        shallow = git("rev-parse", "--is-shallow-repository", check=False) == "true"
        hint = " (this is a shallow clone: `git fetch --deepen=N` or `--unshallow` first)" if shallow else ""
        raise Unavailable(f"REV {rev!r}: not a commit in this repository{hint}")
    return commit, how or rev


def describe_this() -> str:
    branch = git("rev-parse", "--abbrev-ref", "HEAD", check=False) or "?"
    head = git("rev-parse", "--short", "HEAD", check=False)
    dirty = bool(git("status", "--porcelain", check=False))
    return f"{branch} @ {head}" + (" + uncommitted changes" if dirty else "")


@dataclass
class Tree:
    """A tree under test: its root, and how its processes are started."""

    name: str                         # "this" or "REV"
    root: Path
    entry: str = "bench.cli:main"     # its vswitch-bench console script
    compiled: bool = False
    compile_note: str = ""
    has: dict[str, bool] = field(default_factory=dict)       # subcommand -> present
    json: dict[str, bool] = field(default_factory=dict)      # subcommand -> has --json
    vswitch_file: str = ""

    def env(self, pure: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("VSWITCH_PURE", "PYTHONPATH")}
        env["PYTHONPATH"] = str(self.root)
        if pure:
            env["VSWITCH_PURE"] = "1"
        return env


def packages(*roots: Path) -> list[str]:
    """The project's top-level packages in either tree: what a tree must import from itself."""
    return sorted({d.name for r in roots for d in r.iterdir() if (d / "__init__.py").is_file()})


def entry_point(root: Path) -> str:
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text())
        return str(data["project"]["scripts"]["vswitch-bench"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "bench.cli:main"


# Run as `python -c GUARD ROOT ENTRY PACKAGES ARGS...` in the tree: the tree's vswitch-bench
# console script, called as a console script calls it; then every module of the project's
# packages that it loaded must have come from ROOT (a package missing in ROOT would
# otherwise come silently from the editable install's tree).
GUARD = """\
import importlib, os, sys
root, entry, pkgs = os.path.realpath(sys.argv[1]), sys.argv[2], set(sys.argv[3].split(","))
mod, _, fn = entry.partition(":")
sys.argv = ["vswitch-bench", *sys.argv[4:]]
try:
    rc = getattr(importlib.import_module(mod), fn)()
except SystemExit as e:
    rc = e.code
wrong = sorted(f"{n} from {m.__file__}" for n, m in list(sys.modules.items())
               if n.split(".")[0] in pkgs and getattr(m, "__file__", None)
               and not os.path.realpath(m.__file__).startswith(root + os.sep))
sys.stdout.flush()
if wrong:
    print(f"compare-commits: imported from outside the tree under test {root}: " + "; ".join(wrong[:5]),
          file=sys.stderr)
    rc = 3
sys.exit(rc)
"""
PROBE = "import json, os, vswitch; print(json.dumps(os.path.realpath(vswitch.__file__)))"

def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = CHILD_TIMEOUT_S) -> tuple[int, str, str]:
    """Run a child to the end, in a process group of its own.  On Ctrl-C, SIGTERM or a
    timeout it gets SIGTERM (a benchmark that made namespaces removes them then), SIGKILL
    30 s later, and whatever it left in its group (a compiler under the mypyc build) SIGKILL."""
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(p)
        return -1, "", f"timed out after {timeout:g} s"
    except BaseException:
        _stop(p)
        raise
    return p.returncode, out, err


def _stop(p: subprocess.Popen[str]) -> None:
    with signals_ignored():
        if p.poll() is None:
            p.terminate()
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)          # its group: the session it was started in


def tail(text: str, n: int = 300) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " / ".join(lines[-3:])[-n:]


class Runner:
    def __init__(self, trees: list[Tree], log: Callable[[str], None]) -> None:
        self.trees = trees
        self.log = log
        self.pkgs = packages(*(t.root for t in trees))

    def bench_cli(self, tree: Tree, args: list[str], pure: bool) -> tuple[int, str, str]:
        return run([sys.executable, "-c", GUARD, str(tree.root), tree.entry, ",".join(self.pkgs), *args],
                   tree.root, tree.env(pure))

    def prepare(self, tree: Tree, benches: list[Bench]) -> None:
        """The probe, the compiled build where needed, and which subcommands the tree has."""
        tree.entry = entry_point(tree.root)
        rc, out, err = run([sys.executable, "-c", PROBE], tree.root, tree.env(False), timeout=120)
        if rc != 0:
            raise Unavailable(f"{tree.name} ({tree.root}): cannot import vswitch: {tail(err)}")
        tree.vswitch_file = json.loads(out)
        if not tree.vswitch_file.startswith(str(tree.root.resolve()) + os.sep):
            raise Unavailable(f"{tree.name}: vswitch is imported from {tree.vswitch_file}, not from {tree.root}")
        self.log(f"{tree.name}: vswitch from {tree.vswitch_file}")
        if any(not b.pure for b in benches):
            if not (tree.root / "vswitch" / "mypyc_build.py").is_file():
                tree.compile_note = f"{tree.name} has no vswitch/mypyc_build.py"
            else:
                self.log(f"{tree.name}: python -m vswitch.mypyc_build ensure (in {tree.root})")
                rc, out, err = run([sys.executable, "-m", "vswitch.mypyc_build", "ensure"], tree.root,
                                   tree.env(False))
                tree.compiled = rc == 0
                if not tree.compiled:
                    tree.compile_note = f"no mypyc build in {tree.name}: {tail(err or out, 200)}"
        for sub in sorted({b.argv[0] for b in benches}):
            rc, out, err = self.bench_cli(tree, [sub, "--help"], False)
            tree.has[sub] = rc == 0
            tree.json[sub] = rc == 0 and "--json" in out

    def measure(self, b: Bench, tree: Tree) -> float:
        """One run of one benchmark in a fresh process; its figure."""
        sub = b.argv[0]
        with tempfile.TemporaryDirectory(prefix="vswitch-cmp-out-") as tmp:
            out_json = Path(tmp) / "result.json"
            argv = [*b.argv, "--json", str(out_json)] if tree.json[sub] else list(b.argv)
            rc, out, err = self.bench_cli(tree, argv, b.pure)
            if rc != 0:
                raise ChildFailed(f"{tree.name}: `vswitch-bench {shlex.join(b.argv)}` exited {rc}: "
                                  f"{tail(err or out)}")
            try:
                data = json.loads(out_json.read_text()) if tree.json[sub] else None
            except (OSError, json.JSONDecodeError) as e:
                raise ChildFailed(f"{tree.name}: `vswitch-bench {sub}` wrote no JSON: {e}") from None
        figure = b.parse(out, data)
        dataplane = (data or {}).get("dataplane") or ((data or {}).get("machine") or {}).get("dataplane")
        if dataplane is not None and dataplane.startswith("compiled") == b.pure:
            raise ChildFailed(f"{tree.name}: ran {dataplane}, wanted {'interpreted' if b.pure else 'compiled'}")
        return figure


def skip_reason(b: Bench, trees: list[Tree]) -> str:
    if b.root and os.geteuid() != 0:
        return "needs root"
    missing = [t for t in b.tools if shutil.which(t) is None]
    if missing:
        return f"needs {', '.join(missing)}"
    for t in trees:
        if not t.has.get(b.argv[0]):
            return f"{t.name} has no `vswitch-bench {b.argv[0]}`"
        if not t.json.get(b.argv[0]) and b.text is None:
            return f"{t.name}'s `vswitch-bench {b.argv[0]}` has no --json"
    if not b.pure:
        for t in trees:
            if not t.compiled:
                return t.compile_note or f"no mypyc build in {t.name}"
    return ""


def compare(benches: list[Bench], rounds: int, this: Tree, rev: Tree,
            log: Callable[[str], None]) -> list[Row]:
    runner = Runner([this, rev], log)
    for t in (this, rev):
        runner.prepare(t, benches)
    rows = [Row(b) for b in benches]
    for r in rows:
        r.note = skip_reason(r.bench, [this, rev])
    active = [r for r in rows if not r.note]
    for k in range(rounds):
        order = (this, rev) if k % 2 == 0 else (rev, this)
        for r in active:
            if r.failed:
                continue
            figs = {}
            for t in order:
                try:
                    figs[t.name] = runner.measure(r.bench, t)
                except ChildFailed as e:
                    r.failed, r.note = True, str(e)
                    log(f"round {k + 1}/{rounds} {r.bench.name}: FAILED: {e}")
                    break
                (r.this if t is this else r.rev).append(figs[t.name])
            else:
                log(f"round {k + 1}/{rounds} {r.bench.name:<12} " + ", ".join(
                    f"{n} {r.bench.fmt(v)} {r.bench.unit}" for n, v in figs.items()))
    return rows


# -- the temporary worktree ---------------------------------------------------------------
@contextlib.contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """REV checked out, detached, in a fresh temp directory; removed afterwards, whatever
    happened (the build inside it goes with it)."""
    tmp = Path(tempfile.mkdtemp(prefix="vswitch-cmp-"))
    path = tmp / "tree"
    try:
        git("worktree", "add", "--detach", "--quiet", str(path), commit)
        yield path
    finally:
        with signals_ignored():              # a second Ctrl-C must not cut the cleanup short
            r = subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT,
                               capture_output=True, text=True)
            shutil.rmtree(tmp, ignore_errors=True)
            if r.returncode != 0 and str(path) in git("worktree", "list", "--porcelain", check=False):
                git("worktree", "prune", check=False)   # the directory is gone: drop its record




def main(argv: list[str] | None = None) -> int:
    prog = "vswitch-bench compare-commits"
    ap = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="This tree against another commit: REV checked out in a temporary git worktree (removed "
        "afterwards), the same benchmarks run for both trees interleaved, each run a fresh process with this "
        "interpreter; a table of each tree's median and spread, the ratio and a verdict (ok up to "
        f"+{THRESHOLD:.0%}).",
        epilog="benchmarks (--only):\n" + next(
            para for para in __doc__.split("\n\n") if para.startswith("switch ")))
    ap.add_argument("rev", nargs="?", metavar="REV",
                    help="the commit to compare against (default: the merge-base of HEAD and main, "
                    "or HEAD~1 when HEAD is on main)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved runs of each benchmark per tree (default 3)")
    ap.add_argument("--only", default=",".join(BENCHES),
                    help=f"comma-separated benchmarks, of {','.join(BENCHES)} (default: all; live-path and "
                    "peers-cpu need root, peers-cpu takes ~10 s a run)")
    ap.add_argument("--json", metavar="FILE", help="write the samples, medians, ratios and verdicts as JSON")
    args = ap.parse_args(argv)
    names = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [n for n in names if n not in BENCHES]
    if bad or not names:
        print(f"{prog}: --only {args.only!r}: choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print(f"{prog}: --rounds {args.rounds}: must be >= 1", file=sys.stderr)
        return 2
    benches = [b for n, b in BENCHES.items() if n in names]
    from rich.console import Console
    console = Console() if sys.stdout.isatty() else Console(width=150)
    err = Console(stderr=True)

    def log(s: str) -> None:
        err.print(s, markup=False, highlight=False)
    try:
        commit, how = resolve_rev(args.rev)
        this_label = describe_this()
    except Unavailable as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    subject = git("log", "-1", "--format=%h %s", commit, check=False)
    log(f"this tree: {ROOT} ({this_label})")
    log(f"REV: {how} = {subject[:100]}")
    load0 = os.getloadavg()
    t0 = time.monotonic()
    try:
        with sigterm_as_interrupt(), worktree(commit) as path:
            log(f"REV checked out in {path}")
            this, rev = Tree("this", ROOT), Tree("REV", path)
            rows = compare(benches, args.rounds, this, rev, log)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; the temporary worktree was removed", file=sys.stderr)
        return 130
    except Unavailable as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    load1 = os.getloadavg()
    title = (f"Cost per frame: median of {args.rounds} interleaved rounds (min-max), each run a fresh process; "
             f"this/REV above {1 + THRESHOLD:.2f} is SLOWER")
    console.print(f"this tree: {ROOT} ({this_label})\nREV:       {subject} ({how})", markup=False, highlight=False)
    console.print(table(rows, title, "this tree", "REV"))
    console.print(f"{os.cpu_count()} CPUs, load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end; "
                  f"{time.monotonic() - t0:.0f} s", markup=False, highlight=False)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "command": shlex.join(["vswitch-bench", "compare-commits", *(sys.argv[1:] if argv is None else argv)]),
            "this": {"root": str(ROOT), "describe": this_label, "vswitch": this.vswitch_file},
            "rev": {"spec": args.rev, "chosen_as": how, "commit": commit, "subject": subject, "worktree": str(path),
                    "vswitch": rev.vswitch_file},
            "rounds": args.rounds, "threshold": THRESHOLD, "order": "A B, then B A, alternating by round",
            "loadavg_start": load0, "loadavg_end": load1,
            "benchmarks": {r.bench.name: r.as_dict() for r in rows}}, indent=2) + "\n")
    return 1 if any(r.verdict in ("SLOWER", "failed") for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
