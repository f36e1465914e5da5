"""vswitch: a software virtual switch and NIC-virtualization dataplane."""

__version__ = "0.1.0"
