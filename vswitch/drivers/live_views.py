"""What the control server shows of a live switch, all from the graph's one snapshot.

``show`` (bridge, ports, mirrors), ``counters`` (ports, the switch, the
emulated NIC, mirrors, every queue), ``perf_show`` (OVS's pmd-perf-show for
the event loop: per-port stages in ns/frame, batches, wake-ups; per element
busy time, the NIC's apart) and ``nic_show``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from vswitch import compiled
from vswitch.drivers.live_port import LiveError, PortPerf, perf_dict
from vswitch.io.packet_socket import PacketSocketPort

if TYPE_CHECKING:
    from vswitch.drivers.live import LiveSwitch


def show(sw: LiveSwitch) -> dict[str, Any]:
    b = sw.topo.bridge
    return {"bridge": {"name": b.name, "ageing_time": b.ageing_time, "mac_table_size": b.mac_table_size,
                       "uptime_s": (sw.clock() - sw.started_ns) / 1e9,
                       "dataplane": compiled.status()},
            "ports": [lp.describe() for lp in sorted(sw.ports.values(), key=lambda p: p.number)],
            "mirrors": [m.describe() for m in sw.mirrors.values()]}


def _nic_elements(sw: LiveSwitch, snap: dict[str, Any]) -> dict[str, Any]:
    """The NIC's part of the snapshot: the NIC's own summary and each of its parts."""
    host = sw.dp.nic
    if host is None:
        return {}
    prefix = host.nic.name
    return {k: v for k, v in snap["elements"].items() if k == prefix or k.startswith(prefix + ".")}


def counters(sw: LiveSwitch, port: str | None = None) -> dict[str, Any]:
    snap = sw.dp.graph.snapshot()
    if port is not None:
        sw._port(port)
        return {"ports": {port: snap["ports"][port]}}
    out = {"ports": snap["ports"], "switch": snap["elements"][sw.dp.switch.name],
           "mirrors": {m.name: m.describe() for m in sw.mirrors.values()}}
    nic = _nic_elements(sw, snap)
    if nic:
        out["nic"] = nic
    return out


def perf_show(sw: LiveSwitch) -> dict[str, Any]:
    snap = sw.dp.graph.snapshot()
    ports = {}
    tot = PortPerf()
    for name, lp in sw.ports.items():
        p = lp.perf
        if lp.dev is not None:             # fold in what the open device has counted
            p = replace(p, gso_in=p.gso_in + lp.dev.rx_gso, max_frame=max(p.max_frame, lp.dev.rx_max))
            if isinstance(lp.dev, PacketSocketPort):
                p = replace(p, kernel_dropped=p.kernel_dropped + lp.dev.kernel_drops())
        for k in tot.__dataclass_fields__:
            if k == "max_frame":
                tot.max_frame = max(tot.max_frame, p.max_frame)
            else:
                setattr(tot, k, getattr(tot, k) + getattr(p, k))
        ports[name] = perf_dict(p)
    perf = snap.get("perf", {})
    nic = None
    host = sw.dp.nic
    if host is not None:
        # The emulation's own cost (what NIC hardware does for free) apart from the host's.
        names = [n for n in perf if n == host.nic.name or n.startswith(host.nic.name + ".")]
        nic_ns = sum(perf[n]["self_ns"] for n in names)
        frames = tot.frames or 1
        up = snap["ports"].get(sw.dp.uplink or "", {})
        nic = {"mode": host.mode, "nic_model_ns": nic_ns, "nic_model_ns_per_frame": nic_ns / frames,
               # the frames that crossed the emulated NIC, either way: its cost per such frame
               # is what calibration charges the NIC's own frames (`from_perf`, emulation)
               "frames": int(up.get("rx_packets", 0)) + int(up.get("tx_packets", 0)),
               "elements": {n: perf[n] for n in names}}
        if host.mode == "sriov":
            # With SR-IOV a real hypervisor spends nothing per VF frame: the NIC switches them and
            # the guests' DMA is hardware.  Here the emulation also reads and writes the guests'
            # taps (their VFs' DMA); the hypervisor's own work is its switch's (the PF pool).
            vf_io = sum(sw.ports[n].perf.rx_ns + sw.ports[n].perf.tx_ns for n in sw.ports if sw.dp.on_vf(n))
            hyp = sum(e["self_ns"] for n, e in perf.items() if n not in names)
            vf_frames = sum(sw.ports[n].perf.frames for n in sw.ports if sw.dp.on_vf(n))
            nic["sriov"] = {"emulation_ns": nic_ns + vf_io, "vf_dma_io_ns": vf_io, "vf_frames_in": vf_frames,
                            "emulation_ns_per_frame": (nic_ns + vf_io) / frames,
                            "hypervisor_ns": hyp, "hypervisor_ns_per_frame": hyp / frames,
                            "switch_frames": _switch_frames(snap["elements"][sw.dp.switch.name])}
    io = sw.io
    # The loop thread's CPU time now, and its control share so far: this request's own part
    # included, so that two perf-shows' difference leaves out all control work between them.
    cpu_now = time.thread_time_ns()
    control = sw.control_cpu_ns + (cpu_now - sw.control_started_ns if sw.control_started_ns else 0)
    return {"total": perf_dict(tot), "ports": ports, "nic": nic,
            "elements": perf,
            "loop": {"dataplane": compiled.status(), "ticks": sw.ticks,
                     "max_lag_us": sw.loop_lag_max_ns / 1e3,
                     "busy_poll_us": io.busy_poll_ns // 1000, "busy_poll_catches": io.busy_polls,
                     # graph work from the loop's timer (deadlines), no port's: writes apart
                     "timer_wakeups": io.timer_wakeups, "timer_ns": io.timer_ns, "timer_tx_ns": io.timer_tx_ns,
                     # the loop thread's CPU time (this runs on it), and its share answering the
                     # control socket: the rest, less the timed stages, is the loop's own per frame
                     "cpu_ns": cpu_now, "control_cpu_ns": control,
                     "uptime_s": (sw.clock() - sw.started_ns) / 1e9}}


def _switch_frames(c: dict[str, Any]) -> int:
    """Frames the software switch handled: forwarded, flooded or dropped."""
    return int(c["forwarded"] + c["flooded"] + sum(c["drops"].values()))


def nic_show(sw: LiveSwitch) -> dict[str, Any]:
    host = sw.dp.nic
    if host is None:
        raise LiveError("no emulated NIC: add a [nic] section (profile, mode, uplink) to the config")
    s = host.show()
    s["uplink"] = sw.dp.uplink
    return s


def vf_show(sw: LiveSwitch) -> dict[str, Any]:
    """``vf show``: the PF, its VFs (admin state, counters, the guest port on each), the IOMMU."""
    host = sw._sriov()
    s: dict[str, Any] = host.vf_show()
    s["uplink"] = sw.dp.uplink
    return s
