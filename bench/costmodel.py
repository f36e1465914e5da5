"""The cost model: what each stage of each design costs its resource, TOML-loadable.

A cost table is a TOML file of four tables; every key is optional (a missing
one keeps its default) and every unknown table or key is refused, naming the
file and the key.  Times are nanoseconds, rates Gb/s.  docs/costmodel.md
gives each default's source::

    [link]
    wire_gbps = 10.0             # the uplink (10 GbE)
    pcie_gbps = 32.0             # PCIe 2.0 x8 after 8b/10b (the 82599's slot)
    pcie_overhead_bytes = 64     # per frame: descriptor fetch + write-back, TLP headers

    [host]                       # a hypervisor core
    irq_ns = 1000                # a NAPI poll's interrupt (hard IRQ, softirq entry)
    switch_frame_ns = 532        # the software switch's work per frame (OVS kernel: 1.88 Mpps/core)
    switch_byte_ns = 0.0
    vhost_frame_ns = 250         # vhost: one frame into or out of a guest's virtio ring
    vhost_tx_frame_ns = 250      # software switch: vhost taking a guest's frame off its virtio TX ring
    copy_byte_ns = 0.1           # the copy into guest memory (10 GB/s memcpy)
    vmdq_frame_ns = 250          # NetQueue: a pool's queue straight to its guest, no classification
    vf_irq_ns = 1200             # the host's share of a VF interrupt (the exit it takes, the injection)
    iommu_ns = 80                # one DMA translation (an IOTLB miss's page walk, amortised)
    nic_emulation_ns = 0         # per frame crossing the NIC: a host that emulates it (vswitchd)

    [guest]                      # a guest vCPU
    rx_frame_ns = 300            # its stack's work per received frame
    rx_byte_ns = 0.0
    tx_frame_ns = 300            # per sent frame
    tx_byte_ns = 0.0
    vm_exit_ns = 1500            # an interrupt injected: VM exit and entry, once per poll

    [queues]
    napi_budget = 64             # frames per poll (NAPI weight)
    backlog = 1000               # the hypervisor's per-guest queue (netdev_max_backlog)
    virtio_ring = 256            # a guest's virtio ring

``vswitch-bench calibrate`` writes such a file from a running vswitchd's
measured nanoseconds per stage (`from_perf`).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vswitch.schema import ConfigError


@dataclass
class Link:
    wire_gbps: float = 10.0
    pcie_gbps: float = 32.0
    pcie_overhead_bytes: int = 64


@dataclass
class Host:
    irq_ns: float = 1000.0
    switch_frame_ns: float = 532.0
    switch_byte_ns: float = 0.0
    vhost_frame_ns: float = 250.0
    vhost_tx_frame_ns: float = 250.0
    copy_byte_ns: float = 0.1
    vmdq_frame_ns: float = 250.0
    vf_irq_ns: float = 1200.0
    iommu_ns: float = 80.0
    # What a host that emulates its NIC in software (vswitchd) spends on the NIC model per
    # frame crossing it, on the core that handles the frame; a real NIC does it in hardware: 0.
    nic_emulation_ns: float = 0.0


@dataclass
class Guest:
    rx_frame_ns: float = 300.0
    rx_byte_ns: float = 0.0
    tx_frame_ns: float = 300.0
    tx_byte_ns: float = 0.0
    vm_exit_ns: float = 1500.0


@dataclass
class Queues:
    napi_budget: int = 64
    backlog: int = 1000
    virtio_ring: int = 256


@dataclass
class CostTable:
    link: Link = field(default_factory=Link)
    host: Host = field(default_factory=Host)
    guest: Guest = field(default_factory=Guest)
    queues: Queues = field(default_factory=Queues)
    source: str = "defaults (docs/costmodel.md)"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        return d

    def zero_host(self) -> CostTable:
        """The same links and queues with every host and guest cost zero (line-rate runs)."""
        t = CostTable(link=Link(**asdict(self.link)), queues=Queues(**asdict(self.queues)),
                      source=f"{self.source}, host and guest costs zero")
        t.host = Host(**{f.name: 0.0 for f in fields(Host)})
        t.guest = Guest(**{f.name: 0.0 for f in fields(Guest)})
        return t


_TABLES: dict[str, type] = {"link": Link, "host": Host, "guest": Guest, "queues": Queues}
# Bounds: links above 0; costs >= 0; queue sizes as the kernel takes them.
_INT_BOUNDS = {"pcie_overhead_bytes": (0, 4096), "napi_budget": (1, 4096), "backlog": (1, 1_000_000),
               "virtio_ring": (1, 32768)}


def parse_costs(doc: Any, source: str) -> CostTable:
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a cost table is a table of tables ({', '.join(_TABLES)})")
    unknown = set(doc) - set(_TABLES)
    if unknown:
        raise ConfigError(f"{source}: unknown table(s) {', '.join(map(repr, sorted(unknown)))} "
                          f"(known: {', '.join(_TABLES)})")
    table = CostTable(source=source)
    for name, cls in _TABLES.items():
        data = doc.get(name, {})
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        obj = getattr(table, name)
        known = {f.name: f for f in fields(cls)}
        for key, value in data.items():
            where = f"{source}: [{name}] {key}"
            if key not in known:
                raise ConfigError(f"{source}: [{name}]: unknown key {key!r} (known: {', '.join(known)})")
            is_int = known[key].type in ("int", int)
            if isinstance(value, bool) or not isinstance(value, int | float) or (is_int and not isinstance(value, int)):
                raise ConfigError(f"{where}: expected {'an integer' if is_int else 'a number'}, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{where}: {value}: must be finite")
            if key in _INT_BOUNDS:
                lo, hi = _INT_BOUNDS[key]
                if not lo <= value <= hi:
                    raise ConfigError(f"{where}: {value}: must be {lo}-{hi}")
            elif key.endswith("_gbps"):
                if not value > 0:
                    raise ConfigError(f"{where}: {value}: a rate must be above 0")
            elif value < 0:
                raise ConfigError(f"{where}: {value}: a cost must be >= 0")
            setattr(obj, key, int(value) if is_int else float(value))
    return table


def load_costs(path: str | Path) -> CostTable:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 (TOML must be)") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_costs(doc, str(path))


def dumps_costs(table: CostTable, comment: str = "") -> str:
    import tomli_w
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    return head + tomli_w.dumps(table.to_dict())


def save_costs(table: CostTable, path: str | Path, comment: str = "") -> None:
    Path(path).write_text(dumps_costs(table, comment))


# -- calibration ---------------------------------------------------------------------------------

def from_perf(perf: dict[str, Any], base: CostTable | None = None,
              emulation: bool = False) -> tuple[CostTable, dict[str, Any]]:
    """A cost table for the software path from ``vswitchctl perf-show --json``.

    vswitchd measures, per frame, its read (``rx_ns_per_frame``), its graph
    (``switch_ns_per_frame``, which includes the NIC model's emulation:
    ``nic.nic_model_ns_per_frame``, left out here because a NIC does that work in hardware)
    and its write (``tx_ns_per_frame``).  The model's software path charges a frame from the
    wire ``switch_frame_ns`` on the RX core and ``vhost_frame_ns`` + ``copy_byte_ns`` per
    byte handing it to the guest, so: ``switch_frame_ns`` = read + graph - NIC model
    (+ ``total.loop_ns_per_frame``, the event loop's work outside those stages, where the
    caller measured it: one perf-show cannot, its CPU time counts since the daemon started),
    ``vhost_frame_ns`` = write, ``copy_byte_ns`` = 0 (the write's copy is in what was
    measured), ``vhost_tx_frame_ns`` = 0 (a guest's frame costs the model vhost_tx + switch
    on entry, and vswitchd's read of the guest's TAP is its read, already in
    ``switch_frame_ns``: charging the write there too counted it twice, which compare --live
    found as a model some 25 % slow on guest-to-guest frames), and a calibrated model of one
    core forwards 1 / (read + graph + write) frames a second from any port, vswitchd's own
    ceiling.  With ``emulation`` the table models vswitchd itself rather than a host with a
    real NIC: ``nic_emulation_ns`` = the NIC model's ns over the frames that crossed it
    (``nic.nic_model_ns`` / ``nic.frames``), charged on each such frame's core, as vswitchd pays
    it on its one thread.  The rest of ``base`` (default: the defaults) is kept.
    Returns the table and the figures it came from; ValueError if perf-show counted no frames."""
    b = base or CostTable()
    table = CostTable(link=Link(**asdict(b.link)), host=Host(**asdict(b.host)),
                      guest=Guest(**asdict(b.guest)), queues=Queues(**asdict(b.queues)))
    total = perf.get("total") if isinstance(perf, dict) else None
    if not isinstance(total, dict) or "switch_ns_per_frame" not in total:
        raise ValueError("not `vswitchctl perf-show --json` output (no total.switch_ns_per_frame)")
    frames = int(total.get("frames", 0) or 0)
    if frames <= 0:
        raise ValueError("perf-show counted no frames (total.frames is 0): send traffic through vswitchd first")
    nic = perf.get("nic") or {}
    nic_ns = float(nic.get("nic_model_ns_per_frame", 0.0)) if isinstance(nic, dict) else 0.0
    rx, graph, tx = (float(total[k]) for k in ("rx_ns_per_frame", "switch_ns_per_frame", "tx_ns_per_frame"))
    # the event loop's own work per frame, outside the timed stages, when the caller measured it
    # (compare --live: the loop thread's CPU time over the run less the stages)
    loop = float(total.get("loop_ns_per_frame", 0.0) or 0.0)
    table.host.switch_frame_ns = max(0.0, rx + graph - nic_ns) + max(0.0, loop)
    table.host.vhost_frame_ns = tx
    table.host.copy_byte_ns = 0.0
    table.host.vhost_tx_frame_ns = 0.0
    table.source = "calibrated from vswitchd perf-show"
    basis = {"frames": frames, "rx_ns_per_frame": rx, "switch_ns_per_frame": graph, "tx_ns_per_frame": tx,
             "nic_model_ns_per_frame": nic_ns, "loop_ns_per_frame": loop, "switch_frame_ns": table.host.switch_frame_ns,
             "vhost_frame_ns": table.host.vhost_frame_ns}
    if emulation:
        nic_frames = int(nic.get("frames", 0) or 0) if isinstance(nic, dict) else 0
        # no frame crossed the NIC (or no NIC): nothing to charge
        table.host.nic_emulation_ns = nic_ns * frames / nic_frames if nic_frames > 0 else 0.0
        table.source = "calibrated from vswitchd perf-show, the NIC's emulation included"
        basis.update({"nic_frames": nic_frames, "nic_emulation_ns": table.host.nic_emulation_ns})
    return table, basis
