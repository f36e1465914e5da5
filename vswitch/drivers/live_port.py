"""A live port: its configuration, its device, its state, and its figures for perf-show.

Port states: ``up``; ``pending`` (an attach port whose interface does not
exist yet: it attaches when netlink reports it); ``down`` (its interface
vanished: the port keeps its config and comes back with the interface; a
TAP port is re-created by ``vswitchctl set-port NAME state=up`` or a
restart).  An attach port whose interface is there but not usable is ``down``
with the reason ``interface down`` (not IFF_UP) or ``no carrier``
(live_devices.py says when each happens).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vswitch.core.element import Batch
from vswitch.io.packet_socket import PacketSocketPort
from vswitch.io.tap import TapPort
from vswitch.topology import PortConfig

__all__ = ["LivePort", "PortPerf", "LiveError", "perf_dict"]


class LiveError(ValueError):
    """A request the live switch refuses; the message is for the user."""


@dataclass
class PortPerf:
    """Per-port live figures for perf-show."""

    wakeups: int = 0          # readiness callbacks
    idle_wakeups: int = 0     # callbacks that found nothing to read
    batches: int = 0
    frames: int = 0
    rx_ns: int = 0            # reading the fd and building frames
    dp_ns: int = 0            # the graph's work for them, excluding the device writes it caused
    tx_ns: int = 0            # device writes caused by this port's frames
    tx_calls: int = 0
    gso_in: int = 0           # GSO super-frames received (a GSO type in their virtio-net header)
    max_frame: int = 0
    kernel_dropped: int = 0   # an attach port's frames the kernel dropped at its socket's full queue


@dataclass
class LivePort:
    cfg: PortConfig
    number: int
    state: str = "pending"
    dev: TapPort | PacketSocketPort | None = None
    error: str | None = None
    since_ns: int = 0
    attaches: int = 0
    perf: PortPerf = field(default_factory=PortPerf)
    role: str | None = None              # the emulated NIC's "uplink", "pool N" (vmdq guest) or "vf N"
    address: str | None = None           # a tap's MAC to set (a guest on a VF with an admin MAC)
    push: Callable[[Batch, int, int], None] | None = None    # the port's graph ingress
    # An attach port's interface as netlink last reported it (None: not there, or a tap port).
    admin_up: bool | None = None         # IFF_UP
    carrier: bool | None = None          # IFF_RUNNING
    opening: bool = False                # an open is under way
    reappeared: bool = False             # ... and the interface appeared again meanwhile

    def describe(self) -> dict[str, Any]:
        d = self.cfg.view()
        d.update({"number": self.number, "state": self.state,
                  "error": self.error, "attaches": self.attaches,
                  "ifindex": getattr(self.dev, "ifindex", None),
                  "admin_state": _updown(self.admin_up), "link_state": _updown(self.carrier)})
        if self.role is not None:
            d["nic"] = self.role
        return d


def _updown(flag: bool | None) -> str | None:
    return None if flag is None else ("up" if flag else "down")


def perf_dict(p: PortPerf) -> dict[str, Any]:
    f = p.frames or 1
    busy = p.wakeups - p.idle_wakeups
    return {"wakeups": p.wakeups, "busy_wakeups": busy, "idle_wakeups": p.idle_wakeups,
            "busy_pct": 100.0 * busy / p.wakeups if p.wakeups else 0.0,
            "frames": p.frames, "batches": p.batches,
            "frames_per_batch": p.frames / p.batches if p.batches else 0.0,
            "rx_ns_per_frame": p.rx_ns / f, "switch_ns_per_frame": p.dp_ns / f,
            "tx_ns_per_frame": p.tx_ns / f,
            "total_ns_per_frame": (p.rx_ns + p.dp_ns + p.tx_ns) / f,
            "gso_frames_in": p.gso_in, "max_frame_bytes": p.max_frame, "kernel_dropped": p.kernel_dropped}
