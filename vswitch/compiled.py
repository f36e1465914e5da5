"""The compiled dataplane: which modules mypyc builds, and whether this process runs them.

``make compile`` (``python -m vswitch.mypyc_build build``) compiles the hot-path
modules in `MODULES` with mypyc, in place: a ``<module>.cpython-*.so`` beside
each ``.py``, plus the shared library they all link to, ``vswitch/_native__mypyc.*.so``.  The
source stays the one truth: the same Python, type-checked by mypy, runs
compiled or interpreted, and the whole test suite runs both ways in CI.

The import system prefers an extension module to its source, so a build older
than the source it came from would silently run stale code.  `install` (called by
each program before it imports the dataplane: `vswitch.entry`, `bench.entry`, ``python -m
vswitch.daemon``, the test suite) therefore checks once per process: if any module's
build is missing, if any ``.py`` of `PACKAGES` is newer than the oldest build
(compiled code inlines constants and types from the modules it imports, so an
edit anywhere counts), or if ``VSWITCH_PURE=1`` is set, every module in
`MODULES` is loaded from source.  All or none: compiled modules call
each other's native code directly, so a compiled graph beside an interpreted
``Frame`` would build frames of the wrong class.

The builds are made and removed by ``python -m vswitch.mypyc_build``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

# The per-frame path: frames, the graph and its counters, the switch and its FDB, the
# devices' read and write loops, a replayed capture's record parser and its batching stream,
# the queue policies (schedulers and the policer; their parameter declarations and factory
# are not per frame), and the SR-IOV VF's DMA path (every frame's buffer through the IOMMU).
# Everything else runs once per batch or less.
MODULES = (
    "vswitch.core.frame",
    "vswitch.core.element",
    "vswitch.core.counters",
    "vswitch.core.graph",
    "vswitch.core.scheduler",
    "vswitch.core.policies.base",
    "vswitch.core.policies.headers",
    "vswitch.core.policies.classify",
    "vswitch.core.policies.classful",
    "vswitch.core.policies.fifo",
    "vswitch.core.policies.prio",
    "vswitch.core.policies.rr",
    "vswitch.core.policies.drr",
    "vswitch.core.policies.wfq",
    "vswitch.core.policies.tbf",
    "vswitch.core.policies.htb",
    "vswitch.core.policies.red",
    "vswitch.core.policies.codel",
    "vswitch.core.policies.fq_codel",
    "vswitch.core.policies.policer",
    "vswitch.elements.fdb",
    "vswitch.elements.learning_switch",
    "vswitch.io.tap",
    "vswitch.io.packet_socket",
    "vswitch.io.pcap_records",
    "vswitch.drivers.stream",
    "sriov.dma",
)
# The packages whose sources a build depends on: those of MODULES and what they import
# (sriov.dma imports nicmodel's rings and sorter); an edit in any makes a build stale.
PACKAGES = ("vswitch", "nicmodel", "sriov")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # holds the vswitch package
_status = ""                    # set by install(); empty: nobody chose, status() looks


def source(module: str) -> str:
    return os.path.join(ROOT, *module.split(".")) + ".py"


def extension(module: str) -> str | None:
    base = os.path.join(ROOT, *module.split("."))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if os.path.exists(base + suffix):
            return base + suffix
    return None


def stray() -> list[str]:
    """Modules of `PACKAGES` with an extension build that `MODULES` does not list (left by
    an older build): they would load instead of their source."""
    out = []
    for dirpath, _, files in _walk():
        for f in files:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:    # the longest first
                if f.endswith(suffix):
                    name = os.path.relpath(os.path.join(dirpath, f[: -len(suffix)]), ROOT).replace(os.sep, ".")
                    if name not in MODULES and not name.endswith("__mypyc"):
                        out.append(name)
                    break
    return out


def _walk() -> list[tuple[str, list[str], list[str]]]:
    return [w for pkg in PACKAGES for w in os.walk(os.path.join(ROOT, pkg))]


def build_state() -> str:
    """``compiled``, ``none`` (no build), ``partial`` (some missing, or stray builds of
    unlisted modules) or ``stale``."""
    built = [extension(m) for m in MODULES]
    if stray():
        return "partial"
    if not any(built):
        return "none"
    if not all(built):
        return "partial"
    oldest = min(os.path.getmtime(ext) for ext in built)  # type: ignore[arg-type]
    for dirpath, _, files in _walk():
        if any(f.endswith(".py") and os.path.getmtime(os.path.join(dirpath, f)) > oldest for f in files):
            return "stale"
    return "compiled"


class _FromSource(importlib.abc.MetaPathFinder):
    """Load the modules in `MODULES` (and any stray builds) from their ``.py``, whatever
    builds lie beside them."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname in self.names and os.path.exists(source(fullname)):
            return importlib.util.spec_from_file_location(fullname, source(fullname))
        return None


def install() -> None:
    """Decide, once, whether this process runs the compiled modules."""
    global _status
    if any(isinstance(f, _FromSource) for f in sys.meta_path):
        return
    state = build_state()
    if state == "compiled" and os.environ.get("VSWITCH_PURE", "") not in ("", "0"):
        _status = "interpreted (VSWITCH_PURE is set)"
    elif state == "compiled":
        _status = "compiled (mypyc)"
        return
    elif state == "none":
        _status = "interpreted"
    else:
        _status = f"interpreted ({state} build ignored: run `make compile`)"
    sys.meta_path.insert(0, _FromSource(set(MODULES) | set(stray())))


def status() -> str:
    """How this process runs the dataplane, for logs, ``vswitchctl show`` and benchmarks.

    Without `install` (e.g. ``python -m bench.X``) the import system chose, by itself: this says
    what it loaded, so a report never calls compiled code interpreted."""
    if _status:
        return _status
    loaded = [sys.modules[m] for m in MODULES if m in sys.modules]
    ext = [m for m in loaded if not (getattr(m, "__file__", "") or "").endswith(".py")]
    if not loaded or not ext:
        return "interpreted (no build chosen: install() not called)"
    if len(ext) == len(loaded):
        return "compiled (mypyc; loaded without install(): VSWITCH_PURE and build age unchecked)"
    return f"mixed: {len(ext)} of {len(loaded)} dataplane modules compiled (install() not called)"
