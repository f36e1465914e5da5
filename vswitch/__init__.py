"""vswitch: a software virtual switch and NIC-virtualization dataplane.

Importing the package does nothing else: which build of the per-frame modules a process
runs (compiled or from source, `vswitch.compiled`) is chosen by the program that starts,
before it imports them (`vswitch.entry`, ``python -m vswitch.daemon``, the test suite).
"""

__version__ = "0.1.0"
