"""The test suite's start: it chooses the dataplane build (compiled when current, or from
source with VSWITCH_PURE=1) before any test module imports the dataplane, as a program does."""

from vswitch import compiled

compiled.install()
