"""Fixtures for the real-VM tests: the netns tests' `lab`, a work directory, the cached guest."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.conftest import lab  # noqa: F401  (the same Lab: prefixes, cleanup, skip unless root)
from tests.vm.guest import Guest, GuestUnavailable, build
from tests.vm.qemu import QEMU


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = tempfile.mkdtemp(prefix="vswitch-vm-", dir="/tmp")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def vm_guest() -> Guest:
    """The test guest, built once (or found in the cache); skips where it cannot be."""
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} is not installed (apt-get install qemu-system-x86)")
    try:
        return build(log=True)
    except GuestUnavailable as e:
        pytest.skip(f"cannot build the test guest: {e}")
