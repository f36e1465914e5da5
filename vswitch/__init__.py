"""vswitch: a software virtual switch and NIC-virtualization dataplane."""

from vswitch import compiled

__version__ = "0.1.0"

# Before any dataplane module is imported: run the mypyc build only if it is current.
compiled.install()
