"""The console script ``vswitch-bench``: chooses the dataplane build (`vswitch.compiled.install`)
before importing the benchmarks, then runs them."""

from __future__ import annotations

from vswitch import compiled


def vswitch_bench() -> int:
    compiled.install()
    from bench.cli import main
    return main()
