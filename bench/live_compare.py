"""``vswitch-bench compare TRACE --live``: the model against vswitchd, measured.

For each design vswitchd runs (`LIVE_MODES`: the ``[nic] mode`` values
vswitchd's config accepts, `vswitch.topology.NIC_MODES`; software and VMDq
today, SR-IOV joins by itself when vswitchd takes ``mode = "sriov"``), this

1. builds the trace's topology live: every guest port a TAP of vswitchd in a
   network namespace of its own, the uplink an attach port on a veth whose
   peer sits in a "wire" namespace (names ``vlc`` + 6 random hex digits + a
   suffix; everything is removed in a ``finally``, also on Ctrl-C and SIGTERM);
2. starts vswitchd (``python -m vswitch.daemon``) with that config and the
   ``[nic]`` in the mode;
3. replays the trace into it with the live replay's sender and pacer
   (`bench.live_replay`): the capture preloaded, each frame sent from where its
   source MAC's port sits (a guest's frame on its TAP in its namespace, a wire
   host's on the uplink veth's peer), at the trace's own timing, ``--pps``,
   ``--mbps``, ``--multiplier`` or ``--topspeed`` (as fast as the sender can);
4. reads the daemon's counter deltas, its ``perf-show`` (per-stage ns per
   frame), its CPU time (``/proc/PID/task/*/schedstat``) and the kernel's
   counters of every interface (what the guests' TAPs received, what the
   senders' interfaces dropped);
5. runs the model (`bench.compare.run_point`) of the same trace in that mode,
   one core, offered the load the sender achieved (at top speed: its measured
   rate as ``pps``; otherwise the same timing), with the cost table
   calibrated from this daemon's own perf-show and CPU time
   (`bench.costmodel.from_perf` with ``cpu_ns_per_frame``), or ``--costs FILE``;
6. sets measured and predicted side by side: delivered frames and rate, drops
   by stage, the host's ns per frame per stage, each with the difference in
   percent ((predicted - measured) / measured).

``--reps N`` replays N times into the same daemon and keeps the run that
delivered the most (best of N: the machine is shared).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.costmodel import CostTable, from_perf
from bench.gen_sidecar import PortMap
from bench.live_replay import (
    Pacer,
    PacketSender,
    Preloaded,
    link_stats,
    ns_path,
    resolve_port,
    set_timer_slack,
)
from bench.peers import Lab, cpu_ns_schedstat, ipr
from bench.replay_pacing import Limits, Progress, Schedule, Speed, plan
from bench.replay_summary import SendStats
from vswitch.drivers.replay import SourceMacAssigner
from vswitch.io.pcap import read_capture
from vswitch.topology import NIC_MODES, Topology, assign_numbers, topology_to_dict

ROOT = Path(__file__).resolve().parents[1]
LIVE_MODES: tuple[str, ...] = tuple(NIC_MODES)   # what vswitchd's [nic] mode accepts
BATCH = 64                   # frames per sendmmsg(2) when several are due
SETTLE_S = 0.5               # the daemon's counters still this long: it has drained


class LiveError(Exception):
    """The live run could not be set up or run (one line)."""


class CompareLab(Lab):
    """`bench.peers.Lab` with this command's prefix ``vlc``."""

    def __init__(self) -> None:
        super().__init__()
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.prefix = "vlc" + secrets.token_hex(3)
        self.workdir = Path(tempfile.mkdtemp(prefix=self.prefix + "-"))
        os.chmod(self.workdir, 0o755)


# -- the live topology ------------------------------------------------------------------------

@dataclass
class LiveTopo:
    config: str                                  # the TOML vswitchd runs
    live: dict[str, str]                         # topology port -> interface name
    netns: dict[str, str | None]                 # topology port -> namespace of its far side
    uplink: str                                  # the topology's uplink port
    far: dict[str, str] = field(default_factory=dict)   # topology port -> the interface its guest sees


def live_topology(topo: Topology, mode: str, lab: CompareLab) -> LiveTopo:
    """The trace's topology as vswitchd runs it (module docstring, step 1): creates the namespaces
    and the uplink's veth pair; vswitchd creates the TAPs."""
    from bench.modes import uplink_of
    uplink = uplink_of(topo)
    doc = topology_to_dict(topo)
    live: dict[str, str] = {}
    netns: dict[str, str | None] = {}
    far: dict[str, str] = {}
    for i, port in enumerate(doc["port"], 1):
        name = port["name"]
        if name == uplink:
            ifname, wire = lab.name("u"), lab.name("w")
            ns = lab.netns("nw")
            with ipr(None) as ip:
                ip.link("add", ifname=ifname, kind="veth", peer={"ifname": wire})
                idx = ip.link_lookup(ifname=wire)[0]
                ip.link("set", index=idx, net_ns_fd=ns)
                with contextlib.suppress(OSError):       # no IPv6 chatter from our end of it
                    Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6").write_text("1")
                ip.link("set", index=ip.link_lookup(ifname=ifname)[0], state="up")
            with ipr(ns) as ip:
                ip.link("set", index=ip.link_lookup(ifname=wire)[0], state="up")
            port.update(name=ifname, type="attach")
            port.pop("netns", None)
            far[name] = wire
        else:
            ifname = lab.name(f"g{i}")
            ns = lab.netns(f"n{i}")
            port.update(name=ifname, type="tap", netns=ns)
            far[name] = ifname
        live[name], netns[name] = ifname, ns
    for s in doc.get("fdb", []):
        s["port"] = live[s["port"]]
    nic = dict(doc.get("nic") or {})
    nic.update(mode=mode, uplink=live[uplink])
    if mode == "sriov":
        # Each guest owns a VF (in port order, as bench.modes builds the model's PF); an access
        # VLAN becomes the VF's port VLAN, and the switch's own settings (and static FDB entries
        # on guests) do not apply to a port that is not on the switch.
        guests = [p for p in doc["port"] if p["name"] != live[uplink]]
        for k, port in enumerate(guests):
            tag = port.pop("tag", None)
            for key in ("trunks", "vlan_mode"):
                port.pop(key, None)
            port["vf"] = k
            if tag:
                port["vf_vlan"] = tag
        nic["numvfs"] = max(1, len(guests))
        vf_ports = {p["name"] for p in guests}
        doc["fdb"] = [s for s in doc.get("fdb", []) if s["port"] not in vf_ports]
        if not doc["fdb"]:
            doc.pop("fdb")
    doc["nic"] = nic
    import tomli_w
    return LiveTopo(tomli_w.dumps(doc), live, netns, uplink, far)


class Vswitchd:
    """A vswitchd started by this run (stopped with SIGTERM by the lab's cleanup: it removes its TAPs)."""

    def __init__(self, lab: CompareLab, lt: LiveTopo, tag: str) -> None:
        from vswitch.control.client import Client
        from vswitch.control.protocol import ControlError
        config = lab.workdir / f"vswitchd-{tag}.toml"
        config.write_text(lt.config)
        self.socket = str(lab.workdir / f"vswitchd-{tag}.sock")
        self.log = lab.workdir / f"vswitchd-{tag}.log"
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        import subprocess
        self.proc = lab.spawn([sys.executable, "-m", "vswitch.daemon", "--config", str(config),
                               "--socket", self.socket, "--log-level", "warning"],
                              stdout=logf, stderr=logf, cwd=ROOT)
        logf.close()
        self.pid = self.proc.pid

        def stop() -> None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        lab.closers.append(stop)
        self.client = Client(self.socket, timeout=20)
        want = set(lt.live.values())
        deadline = time.monotonic() + 30
        ports: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LiveError(f"vswitchd ({tag}) exited {self.proc.returncode}: {self.log_tail()}")
            if os.path.exists(self.socket):
                try:
                    ports = self.client.call("show")["ports"]
                except (ControlError, OSError):
                    ports = []
                if {p["name"] for p in ports if p["state"] == "up"} >= want:
                    return
            time.sleep(0.05)
        raise LiveError(f"vswitchd ({tag}): ports not up after 30 s: "
                        f"{[(p['name'], p['state'], p.get('error')) for p in ports]} {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return " ".join(self.log.read_text()[-400:].split())
        except OSError:
            return ""

    def call(self, cmd: str, **kw: Any) -> Any:
        return self.client.call(cmd, **kw)


# -- sending ----------------------------------------------------------------------------------

class RoutingSender:
    """Several `PacketSender` s as one: each preloaded frame goes out of the sender of its port
    (``route[i]``: the index of frame i's sender); a run of frames is split where the port
    changes, each piece one sendmmsg(2) from the preloaded vector.  One `SendStats` for all."""

    def __init__(self, senders: list[PacketSender], route: list[int], by_frame: dict[bytes, int]) -> None:
        self.senders = senders
        self.route = route
        self.by_frame = by_frame
        self.stats = SendStats()
        for s in senders:
            s.stats = self.stats

    def send(self, frame: bytes) -> None:
        self.senders[self.by_frame[frame[6:12]]].send(frame)

    def send_run(self, pre: Preloaded, lo: int, n: int) -> None:
        route, vec, cum = self.route, pre.vector(), pre.cum
        end = lo + n
        while lo < end:
            k = route[lo]
            hi = lo + 1
            while hi < end and route[hi] == k:
                hi += 1
            self.senders[k].send_mmsg(vec, lo, hi - lo, cum)
            lo = hi

    def close(self) -> None:
        for s in self.senders:
            s.close()


def _ns_total(perf: dict[str, Any]) -> dict[str, float]:
    t = perf["total"]
    f = int(t["frames"])
    nic = perf.get("nic") or {}
    return {"frames": f, "rx_ns": t["rx_ns_per_frame"] * f, "switch_ns": t["switch_ns_per_frame"] * f,
            "tx_ns": t["tx_ns_per_frame"] * f, "nic_ns": float(nic.get("nic_model_ns", 0.0)),
            "nic_frames": int(nic.get("frames", 0)),         # frames that crossed the emulated NIC
            "wakeups": int(t["wakeups"]), "busy_wakeups": int(t["busy_wakeups"]), "batches": int(t["batches"]),
            # graph work the loop's timer ran (deadlines), which no port's figures hold: the NIC
            # model's self time includes it, so without it graph = switch - nic can go negative
            "timer_ns": float(perf.get("loop", {}).get("timer_ns", 0)),
            "timer_tx_ns": float(perf.get("loop", {}).get("timer_tx_ns", 0)),
            # the loop thread's CPU time and its part answering control requests (this command's
            # polls among them): the difference over a run is the frames' CPU time
            "loop_cpu_ns": float(perf.get("loop", {}).get("cpu_ns", 0)),
            "control_cpu_ns": float(perf.get("loop", {}).get("control_cpu_ns", 0))}


def _delta(a: Any, b: Any) -> Any:
    if isinstance(b, dict):
        return {k: _delta(a.get(k, {}) if isinstance(a, dict) else {}, v) for k, v in b.items()
                if isinstance(v, dict | int | float) and not isinstance(v, bool)}
    if isinstance(b, int | float) and not isinstance(b, bool):
        return b - (a if isinstance(a, int | float) and not isinstance(a, bool) else 0)
    return 0


def _drops_in(d: Any, path: str = "") -> dict[str, dict[str, int]]:
    """Every ``drops`` table (reason -> frames) in a counters delta, by the element holding it."""
    out: dict[str, dict[str, int]] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            if k == "drops" and isinstance(v, dict):
                got = {r: int(n) for r, n in v.items() if isinstance(n, int | float) and n}
                if got:
                    out[path or "switch"] = got
            elif isinstance(v, dict):
                out.update(_drops_in(v, k if k not in ("elements", "parts", "ports") else path))
    return out


@dataclass
class Run:
    offered: dict[str, Any]
    delivered: dict[str, Any]
    drops: dict[str, Any]
    perf: dict[str, float]
    cpu_ns: int
    counters: dict[str, Any]
    kernel: dict[str, dict[str, int]]


def replay_once(d: Vswitchd, lt: LiveTopo, pre: Preloaded, sender: RoutingSender, speed: Speed) -> Run:
    """One replay of the preloaded trace into the daemon (module docstring, steps 3-4)."""
    names = list(lt.live)

    def kstats() -> dict[str, dict[str, int]]:
        return {n: link_stats(lt.far[n], ns_path(lt.netns[n])) or {} for n in names}
    def socket_drops(perf: dict[str, Any]) -> int:      # what the attach ports' sockets had no room for
        return sum(int(p.get("kernel_dropped", 0)) for p in perf["ports"].values())
    ps0 = d.call("perf-show")
    c0, p0, k0, cpu0 = d.call("counters"), _ns_total(ps0), kstats(), cpu_ns_schedstat(d.pid)
    sender.stats.__init__()                          # type: ignore[misc]  # fresh counts per run
    pacer = Pacer(sender)
    progress = Progress()
    if speed.mode == "topspeed":
        pacer.run_topspeed(pre, Limits(), BATCH, progress)
    else:
        items = plan(pre.factories(), speed, Limits(), progress, Schedule(speed))
        pacer.run(items, None, pre, BATCH)
    elapsed = max(1, pacer.end - pacer.start)
    # Until the daemon's counters stop moving: the time of the last change ends its run.
    t_end = time.perf_counter_ns()
    last = None
    still = time.monotonic()
    deadline = still + 30
    while time.monotonic() < deadline:
        c = d.call("counters")
        sig = tuple((p["rx_packets"], p["tx_packets"], p["rx_dropped"], p["tx_dropped"])
                    for p in c["ports"].values())
        if sig != last:
            last, still, t_end = sig, time.monotonic(), time.perf_counter_ns()
        elif time.monotonic() - still >= SETTLE_S:
            break
        time.sleep(0.02)
    cpu1 = cpu_ns_schedstat(d.pid)
    ps1 = d.call("perf-show")
    c1, p1, k1 = d.call("counters"), _ns_total(ps1), kstats()
    delta = _delta(c0, c1)
    kd = {n: _delta(k0[n], k1[n]) for n in names}
    span = max(elapsed, t_end - pacer.start)
    per_port = {}
    for n in names:
        pd = delta["ports"].get(lt.live[n], {})
        per_port[n] = {"frames": int(pd.get("tx_packets", 0)), "bytes": int(pd.get("tx_bytes", 0)),
                       "tx_dropped": int(pd.get("tx_dropped", 0)), "rx_frames": int(pd.get("rx_packets", 0)),
                       "rx_dropped": int(pd.get("rx_dropped", 0)),
                       # the far side's kernel: what the guest (or the wire host) received
                       "kernel_rx_frames": int(kd[n].get("rx_packets", 0)),
                       "kernel_tx_dropped": int(kd[n].get("tx_dropped", 0))}
    out_frames = sum(p["frames"] for p in per_port.values())
    out_bytes = sum(p["bytes"] for p in per_port.values())
    st = sender.stats
    perf = {k: p1[k] - p0[k] for k in p1}
    elements = _drops_in(delta)
    drops: dict[str, Any] = {"elements": elements,
             # frames vswitchd never read: the queue of the interface they were sent on overflowed
             # (a tap's, counted on it), or an attach port's socket queue (PACKET_STATISTICS)
             "entry": sum(p["kernel_tx_dropped"] for p in per_port.values()) + socket_drops(ps1) - socket_drops(ps0),
             "entry_socket": socket_drops(ps1) - socket_drops(ps0),
             "egress": sum(p["tx_dropped"] for p in per_port.values())}
    drops["switch_total"] = sum(sum(v.values()) for v in elements.values())
    return Run(offered={"frames": st.sent, "bytes": st.bytes, "failed": st.failed, "elapsed_ns": elapsed,
                        "pps": st.sent * 1e9 / elapsed},
               delivered={"frames": out_frames, "bytes": out_bytes, "span_ns": span,
                          "pps": out_frames * 1e9 / span,
                          "kernel_rx_frames": sum(p["kernel_rx_frames"] for p in per_port.values()),
                          "ports": per_port},
               drops=drops, perf=perf, cpu_ns=cpu1 - cpu0, counters=delta, kernel=kd)


# -- measured against predicted ---------------------------------------------------------------

def pct(pred: float, meas: float) -> float | None:
    """(predicted - measured) / measured in percent; None when nothing was measured."""
    return None if not meas else 100.0 * (pred - meas) / meas


def stage_costs(run: Run) -> dict[str, float]:
    """The daemon's host ns per frame it read, by stage, and its whole CPU time per frame."""
    f = run.perf["frames"] or 1
    rx, sw, tx, nic = (run.perf[k] / f for k in ("rx_ns", "switch_ns", "tx_ns", "nic_ns"))
    timer_tx = run.perf.get("timer_tx_ns", 0.0) / f
    timer_graph = run.perf.get("timer_ns", 0.0) / f - timer_tx
    graph, write = sw + timer_graph - nic, tx + timer_tx
    timed = rx + graph + nic + write
    # The loop's own work per frame (epoll, the callbacks' dispatch, what runs between the timed
    # stages): the loop thread's CPU time less its control requests', less the timed stages.
    # Those are wall time: descheduled on a loaded machine they exceed the CPU time, and this
    # is 0 (it cannot be told apart then).
    loop_cpu = run.perf.get("loop_cpu_ns", 0.0) - run.perf.get("control_cpu_ns", 0.0)
    loop = max(0.0, loop_cpu / f - timed) if loop_cpu > 0 else 0.0
    return {"frames": run.perf["frames"], "read_ns": rx, "graph_ns": graph, "nic_model_ns": nic,
            "write_ns": write, "timer_ns": timer_graph + timer_tx, "perf_show_total_ns": timed, "loop_ns": loop,
            "frames_per_batch": run.perf["frames"] / run.perf["batches"] if run.perf.get("batches") else 0.0,
            "nic_frames": run.perf.get("nic_frames", 0),
            # the NIC model's ns per frame that crossed it (what `nic_emulation_ns` is set to)
            "nic_emulation_ns": run.perf["nic_ns"] / run.perf["nic_frames"] if run.perf.get("nic_frames") else 0.0,
            "cpu_ns": run.cpu_ns / f}


def calibrate(run: Run, base: CostTable | None = None, emulation: bool = True) -> tuple[CostTable, dict[str, Any]]:
    """The model's costs from this run's perf-show and CPU time (`from_perf`).  With
    ``emulation`` (software mode) the NIC model's time and the loop's own work are charged
    too: the prediction is then vswitchd's own, which runs its NIC model on the same thread as
    its switch.  VMDq and SR-IOV
    are predicted as a host whose NIC is hardware (the NIC model and the DMA it emulates, the
    reads and writes of the pools' and VFs' frames, free), which is what those designs are."""
    f = int(run.perf["frames"])
    # the stages as stage_costs splits them: the timer's graph work with the graph's, its writes
    # with the writes
    timer_tx = run.perf.get("timer_tx_ns", 0.0)
    timer_graph = run.perf.get("timer_ns", 0.0) - timer_tx
    perf = {"total": {"frames": f, "rx_ns_per_frame": run.perf["rx_ns"] / (f or 1),
                      "switch_ns_per_frame": (run.perf["switch_ns"] + timer_graph) / (f or 1),
                      "tx_ns_per_frame": (run.perf["tx_ns"] + timer_tx) / (f or 1),
                      "cpu_ns_per_frame": run.cpu_ns / (f or 1),
                      # the loop's work is vswitchd's (its emulation's, in VMDq and SR-IOV mode)
                      "loop_ns_per_frame": stage_costs(run)["loop_ns"] if emulation else 0.0},
            "nic": {"nic_model_ns_per_frame": run.perf["nic_ns"] / (f or 1),
                    "frames": int(run.perf.get("nic_frames", 0))}}
    return from_perf(perf, base, emulation=emulation)


def model_kw(run: Run, speed: Speed) -> dict[str, Any]:
    """run_point's timing for the load the sender offered (top speed: its measured rate)."""
    if speed.mode == "topspeed":
        return {"time_mode": "pps", "pps": run.offered["pps"]}
    if speed.mode == "multiplier":
        return {"time_mode": "recorded", "multiplier": speed.value}
    return {"time_mode": speed.mode, speed.mode: speed.value}


def side_by_side(run: Run, model: dict[str, Any], costs: CostTable) -> dict[str, Any]:
    """Measured against predicted, with the difference in percent (module docstring, step 6)."""
    m_ports = model["ports"]
    ports = {n: {"measured": p["frames"], "predicted": m_ports.get(n, {}).get("frames", 0),
                 "diff_pct": pct(m_ports.get(n, {}).get("frames", 0), p["frames"])}
             for n, p in run.delivered["ports"].items()}
    md = model["drops"]
    entry = sum(sum(v.values()) for k, v in md.items()
                if k.endswith(".virtio_tx") or ".rxq" in k or k in ("nic0", "nic0.rx"))
    egress = sum(sum(v.values()) for k, v in md.items() if k.endswith((".backlog", ".virtio_rx", ".tx_emulation")))
    switch = model["drops_total"] - entry - egress
    drops = {"entry": {"measured": run.drops["entry"], "predicted": entry},
             "switch": {"measured": run.drops["switch_total"], "predicted": switch},
             "egress": {"measured": run.drops["egress"], "predicted": egress}}
    for v in drops.values():
        v["diff_pct"] = pct(v["predicted"], v["measured"])
    meas = stage_costs(run)
    core = model["resources"].get("core0", {})
    h = costs.host
    # What the model charges its core per frame it delivered (interrupts per poll included),
    # against vswitchd's perf-show read + graph + write per frame it read.
    fwd = model["delivered"]["frames"]
    pred_core = core.get("busy_ns", 0.0) / fwd if fwd else None
    stages: dict[str, dict[str, Any]] = {
        "read+graph+loop (switch_frame_ns)": {"measured": meas["read_ns"] + meas["graph_ns"] + meas["loop_ns"],
                                              "predicted": h.switch_frame_ns + h.vhost_tx_frame_ns},
        "loop, outside the timed stages": {"measured": meas["loop_ns"], "predicted": None},
        "write (vhost_frame_ns)": {"measured": meas["write_ns"], "predicted": h.vhost_frame_ns},
        "NIC model, per NIC frame (nic_emulation_ns)": {"measured": meas["nic_emulation_ns"],
                                                        "predicted": h.nic_emulation_ns},
        "host, per frame": {"measured": meas["perf_show_total_ns"] + meas["loop_ns"], "predicted": pred_core},
        "daemon CPU (schedstat), per frame": {"measured": meas["cpu_ns"], "predicted": None}}
    for v in stages.values():
        v["diff_pct"] = None if v["predicted"] is None else pct(v["predicted"], v["measured"])
    dl = run.delivered
    return {"delivered_frames": {"measured": dl["frames"], "predicted": model["delivered"]["frames"],
                                 "diff_pct": pct(model["delivered"]["frames"], dl["frames"])},
            "delivered_pps": {"measured": dl["pps"], "predicted": model["delivered"]["pps"],
                              "diff_pct": pct(model["delivered"]["pps"], dl["pps"])},
            "ports": ports, "drops": drops, "stages": stages, "measured_stages": meas}


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    from bench.signals import sigterm_as_interrupt
    with sigterm_as_interrupt():
        yield


def check_environment() -> None:
    if os.geteuid() != 0:
        raise LiveError("--live needs root (TAP devices, veth pairs, network namespaces)")
    if not os.path.exists("/dev/net/tun"):
        raise LiveError("--live needs /dev/net/tun")


def give_cpu(pid: int, cpu: int) -> None:
    """vswitchd (every thread) pinned to ``cpu``.  Not at a raised priority: the kernel's work
    for the frames it writes to the TAPs (the guests' stacks, in softirq or ksoftirqd) runs
    on that CPU too, and a nice -20 daemon starved it (guest-to-guest runs 30-70 % off)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task), {cpu})


@contextlib.contextmanager
def off_cpu(cpu: int | None) -> Iterator[None]:
    """This process (the sender) on every CPU but ``cpu`` while the body runs."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, before - {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_live_compare(topology: Topology, trace: Path, port_map: PortMap | None, modes: list[str],
                     speed: Speed, costs: CostTable | None, reps: int = 1, log: Any = None,
                     cpu: int | None = None) -> list[dict[str, Any]]:
    """Each mode live and in the model (module docstring); a result per mode.  ``cpu``: the
    daemon's own core (`give_cpu`), the sender off it."""
    from bench.compare import run_point
    numbers = assign_numbers(topology)
    by_number = {v: k for k, v in numbers.items()}
    if port_map is not None:
        assign = SourceMacAssigner(sorted(numbers.values()), {m: numbers[p] for m, p in port_map.macs.items()},
                                   numbers[port_map.default_port])
    else:
        assign = SourceMacAssigner(sorted(numbers.values()))
    records = list(read_capture(trace))
    entry_of = [by_number[assign(data)] for _, data in records]
    pre = Preloaded([records])
    results = []
    with _sigterm_unwinds():
        for mode in modes:
            lab = CompareLab()
            try:
                lt = live_topology(topology, mode, lab)
                d = Vswitchd(lab, lt, mode)
                if cpu is not None:
                    give_cpu(d.pid, cpu)
                entries = sorted(set(entry_of))
                senders = []
                for n in entries:
                    from bench.live_replay import TargetError
                    try:
                        t = resolve_port(d.client, lt.live[n], d.socket)
                    except TargetError as e:
                        raise LiveError(f"{mode}: {e}") from None
                    senders.append(PacketSender(t.ifname, t.netns))
                idx = {n: i for i, n in enumerate(entries)}
                route = [idx[n] for n in entry_of]
                by_mac = {data[6:12]: idx[n] for (_, data), n in zip(records, entry_of, strict=True)}
                sender = RoutingSender(senders, route, by_mac)
                set_timer_slack(1)
                try:
                    with off_cpu(cpu):
                        runs = [replay_once(d, lt, pre, sender, speed) for _ in range(reps)]
                finally:
                    sender.close()
                best = max(runs, key=lambda r: r.delivered["pps"])
                table, basis = (costs, None) if costs is not None else calibrate(best, emulation=mode == "software")
                model = run_point(topology, trace, table, mode, cores=1, port_map=port_map,
                                  **model_kw(best, speed))
                perf = d.call("perf-show")
                results.append({
                    "mode": mode, "speed": {"mode": speed.mode, "value": speed.value}, "reps": reps,
                    "daemon_cpu": cpu,
                    "dataplane": perf.get("loop", {}).get("dataplane"),
                    "measured": {"offered": best.offered, "delivered": best.delivered, "drops": best.drops,
                                 "stages": stage_costs(best), "cpu_ns": best.cpu_ns,
                                 "all_reps_delivered_pps": [r.delivered["pps"] for r in runs]},
                    "predicted": model,
                    "costs": {"source": table.source, "host": table.to_dict()["host"], "basis": basis},
                    "compare": side_by_side(best, model, table)})
            finally:
                problems = lab.cleanup()
                if problems and log is not None:
                    print(f"vswitch-bench compare: cleanup: {'; '.join(problems)}", file=log)
    return results


# -- the report -------------------------------------------------------------------------------

def _f(v: float | None, fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def render(results: list[dict[str, Any]]) -> Any:
    from rich.table import Table
    t = Table(title="vswitch-bench compare --live: vswitchd measured against the model")
    t.add_column("")
    for r in results:
        for col in ("measured", "predicted", "diff %"):
            t.add_column(f"{r['mode']} {col}", justify="right")

    def row(label: str, get: Any, fmt: str = ",.0f") -> None:
        cells = []
        for r in results:
            v = get(r)
            cells += [_f(v["measured"], fmt), _f(v["predicted"], fmt), _f(v["diff_pct"], "+.1f")]
        t.add_row(label, *cells)
    row("offered pps (sent)", lambda r: {"measured": r["measured"]["offered"]["pps"],
                                         "predicted": r["predicted"]["offered"]["pps"],
                                         "diff_pct": pct(r["predicted"]["offered"]["pps"],
                                                         r["measured"]["offered"]["pps"])})
    row("delivered frames", lambda r: r["compare"]["delivered_frames"])
    row("delivered pps", lambda r: r["compare"]["delivered_pps"])
    for p in sorted({p for r in results for p in r["compare"]["ports"]}):
        row(f"  to {p}", lambda r, p=p: r["compare"]["ports"].get(p, {"measured": None, "predicted": None,
                                                                        "diff_pct": None}))
    for s in ("entry", "switch", "egress"):
        row(f"drops {s}", lambda r, s=s: r["compare"]["drops"][s])
    for s in sorted({s for r in results for s in r["compare"]["stages"]}):
        row(f"ns/frame {s}", lambda r, s=s: r["compare"]["stages"][s], ",.1f")
    return t


def summary_lines(results: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in results:
        c = r["compare"]
        m = r["measured"]["stages"]
        out.append(f"{r['mode']}: delivered {c['delivered_pps']['measured']:,.0f} pps measured, "
                   f"{c['delivered_pps']['predicted']:,.0f} predicted "
                   f"({_f(c['delivered_pps']['diff_pct'], '+.1f')} %); "
                   f"daemon CPU {m['cpu_ns']:.0f} ns/frame, perf-show (wall) {m['perf_show_total_ns']:.0f} "
                   f"(read {m['read_ns']:.0f}, graph {m['graph_ns']:.0f}, NIC model {m['nic_model_ns']:.0f}, "
                   f"write {m['write_ns']:.0f}); costs: {r['costs']['source']}")
    return out


def hostname() -> str:
    return socket.gethostname()
