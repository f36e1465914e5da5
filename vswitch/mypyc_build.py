"""Build or remove the compiled dataplane (see `vswitch.compiled`).

    python -m vswitch.mypyc_build build    # compile in place (needs gcc, the Python headers, mypy)
    python -m vswitch.mypyc_build ensure   # build only if there is no current build
    python -m vswitch.mypyc_build status   # compiled, or interpreted and why
    python -m vswitch.mypyc_build clean    # remove the builds
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

from vswitch.compiled import MODULES, ROOT, build_state, extension, install, source, status, stray

GROUP = "vswitch._native"     # the shared library: vswitch/_native__mypyc.<suffix>


def clean() -> list[str]:
    """Remove every build: the listed modules', stray ones of modules no longer listed, and
    the shared library."""
    removed = []
    for m in (*MODULES, *stray()):
        ext = extension(m)
        if ext:
            os.remove(ext)
            removed.append(ext)
    for lib in glob.glob(os.path.join(ROOT, "*__mypyc.*")) + glob.glob(os.path.join(ROOT, "vswitch", "*__mypyc.*")):
        os.remove(lib)
        removed.append(lib)
    return removed


def build() -> int:
    """Compile `MODULES` in place with mypyc; the previous build goes first."""
    clean()
    work = os.path.join(ROOT, "build")
    shutil.rmtree(work, ignore_errors=True)
    # mypycify rather than the mypyc command: its group_name puts the shared library the
    # modules link to inside the package (vswitch/_native__mypyc.*.so), where an installed
    # or editable vswitch finds it; the command's default name is a top-level module,
    # importable only with the source tree on sys.path.
    script = ("from setuptools import setup\n"
              "from mypyc.build import mypycify\n"
              f"setup(ext_modules=mypycify({[os.path.relpath(source(m), ROOT) for m in MODULES]!r}, "
              f"group_name={GROUP!r}, opt_level='3'), script_args=['build_ext', '--inplace'])\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        print(r.stdout[-4000:], file=sys.stderr)
        print("vswitch.mypyc_build: mypyc failed (it needs gcc, the Python headers and mypy); "
              "the dataplane stays interpreted", file=sys.stderr)
        clean()
        return 1
    state = build_state()
    print(f"vswitch.mypyc_build: {len(MODULES)} modules built in place: {state}")
    return 0 if state == "compiled" else 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["build"]:
        return build()
    if args == ["ensure"]:
        return 0 if build_state() == "compiled" else build()
    if args == ["clean"]:
        for path in clean():
            print(f"removed {os.path.relpath(path, ROOT)}")
        return 0
    if args == ["status"]:
        install()             # what a program started now would run
        print(f"{status()}; build: {build_state()}")
        return 0
    print("usage: python -m vswitch.mypyc_build build|ensure|status|clean", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
