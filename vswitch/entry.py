"""The console scripts ``vswitchd`` and ``vswitchctl``, and ``vswitch-bench`` (bench/entry.py).

Each chooses the build of the per-frame modules (`vswitch.compiled.install`: the compiled
one only when it is current) before it imports anything that runs them, then runs its
program.  Importing a package of the project chooses nothing and installs nothing.
"""

from __future__ import annotations

from vswitch import compiled


def vswitchd() -> int:
    compiled.install()
    from vswitch.daemon import main
    return main()


def vswitchctl() -> int:
    compiled.install()
    from vswitch.cli import main
    return main()
