"""The compiled dataplane switch: a stale or partial mypyc build is never run."""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vswitch import compiled

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
ROOT = Path(__file__).resolve().parents[2]


def fake_tree(root: Path, built: list[str], ext_age: float) -> None:
    """Every module's source, and a build for those in ``built``, ``ext_age`` seconds older."""
    for m in compiled.MODULES:
        src = root.joinpath(*m.split(".")).with_suffix(".py")
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text("")
        os.utime(src, (1_000_000, 1_000_000))
        if m in built:
            ext = src.with_suffix(SUFFIX)
            ext.write_text("")
            os.utime(ext, (1_000_000 - ext_age, 1_000_000 - ext_age))


@pytest.mark.parametrize("built,age,state", [
    ([], 0, "none"),
    (list(compiled.MODULES), -5, "compiled"),
    (list(compiled.MODULES), 5, "stale"),             # a source edited after the build
    (list(compiled.MODULES[:-1]), -5, "partial"),
])
def test_build_state(tmp_path, monkeypatch, built, age, state) -> None:
    fake_tree(tmp_path, built, age)
    monkeypatch.setattr(compiled, "ROOT", str(tmp_path))
    assert compiled.build_state() == state


def where(env: dict[str, str]) -> list[str]:
    code = ("import vswitch.compiled as c, importlib; c.install(); "
            "print(c.status()); "
            "[print(importlib.import_module(m).__file__) for m in c.MODULES]")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, **env}, check=True)
    return r.stdout.splitlines()


def test_pure_runs_every_module_from_source() -> None:
    status, *files = where({"VSWITCH_PURE": "1"})
    assert status.startswith("interpreted")
    assert all(f.endswith(".py") for f in files)


def test_a_current_build_runs_every_module_compiled() -> None:
    if compiled.build_state() != "compiled":
        pytest.skip(f"no current mypyc build in this tree ({compiled.build_state()}): run `make compile`")
    status, *files = where({"VSWITCH_PURE": ""})
    assert status == "compiled (mypyc)"
    assert all(f.endswith(SUFFIX) for f in files)


def test_a_stray_build_of_an_unlisted_module_counts_as_partial(tmp_path, monkeypatch) -> None:
    """A build left by an older module list would load instead of its source: not compiled."""
    fake_tree(tmp_path, list(compiled.MODULES), -5)
    extra = tmp_path / "vswitch" / "drivers" / ("live" + SUFFIX)
    extra.parent.mkdir(parents=True, exist_ok=True)
    extra.write_text("")
    monkeypatch.setattr(compiled, "ROOT", str(tmp_path))
    assert compiled.stray() == ["vswitch.drivers.live"]
    assert compiled.build_state() == "partial"


def test_an_edit_to_any_module_of_the_package_makes_the_build_stale(tmp_path, monkeypatch) -> None:
    """Compiled code inlines what it imports (constants, types): an edit to a module it was
    not built from counts too."""
    fake_tree(tmp_path, list(compiled.MODULES), -5)
    monkeypatch.setattr(compiled, "ROOT", str(tmp_path))
    assert compiled.build_state() == "compiled"
    other = tmp_path / "vswitch" / "elements" / "gso.py"
    other.write_text("")
    os.utime(other, (1_000_010, 1_000_010))              # after the build
    assert compiled.build_state() == "stale"


@pytest.mark.parametrize("edited", [("nicmodel", "sorter.py"), ("sriov", "iommu.py")])
def test_an_edit_to_the_nic_model_or_sriov_makes_the_build_stale(tmp_path, monkeypatch, edited) -> None:
    """sriov.dma is compiled and imports nicmodel: their sources count as the dataplane's."""
    fake_tree(tmp_path, list(compiled.MODULES), -5)
    monkeypatch.setattr(compiled, "ROOT", str(tmp_path))
    assert "sriov.dma" in compiled.MODULES and compiled.build_state() == "compiled"
    other = tmp_path.joinpath(*edited)
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_text("")
    os.utime(other, (1_000_010, 1_000_010))              # after the build
    assert compiled.build_state() == "stale"


def test_a_stray_build_in_the_nic_model_counts_as_partial(tmp_path, monkeypatch) -> None:
    fake_tree(tmp_path, list(compiled.MODULES), -5)
    extra = tmp_path / "nicmodel" / ("sorter" + SUFFIX)
    extra.parent.mkdir(parents=True, exist_ok=True)
    extra.write_text("")
    monkeypatch.setattr(compiled, "ROOT", str(tmp_path))
    assert compiled.stray() == ["nicmodel.sorter"]
    assert compiled.build_state() == "partial"


def test_importing_the_packages_walks_no_directory_and_installs_no_import_hook() -> None:
    """The build is chosen by the program that starts (vswitch.entry, the test suite), never by an
    import: importing every package lists no directory and leaves sys.meta_path as it was."""
    code = ("import sys\n"
            "seen = []\n"
            "sys.addaudithook(lambda ev, args: ev == 'os.scandir' and seen.append(args))\n"
            "hooks = list(sys.meta_path)\n"
            "import vswitch, vswitch.core, vswitch.elements, vswitch.topology, vswitch.drivers.replay\n"
            "import nicmodel, nicmodel.host, sriov, bench\n"
            "print(len(seen), sys.meta_path == hooks)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["0", "True"], r.stdout + r.stderr


def test_a_console_script_chooses_the_build_before_the_dataplane_loads() -> None:
    code = ("import sys, vswitch.compiled as c\n"
            "from vswitch import entry\n"
            "c.install()\n"
            "import vswitch.core.graph as g\n"
            "print(c.status(), g.__file__)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "VSWITCH_PURE": "1"}, check=True)
    assert r.stdout.startswith("interpreted") and r.stdout.strip().endswith(".py"), r.stdout


def test_without_install_the_status_says_what_the_import_system_loaded() -> None:
    """``python -m bench.X`` imports the dataplane without `install`: whatever lies beside the
    source loads, and the status must name that, never "interpreted" over compiled code."""
    code = ("import vswitch.core.frame as f, vswitch.compiled as c\n"
            "print(c.status()); print(f.__file__)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "VSWITCH_PURE": "1"}, check=True)
    status, file = r.stdout.splitlines()
    if file.endswith(".py"):
        assert status.startswith("interpreted"), status
    else:
        assert status.startswith("compiled") and "without install()" in status, status
