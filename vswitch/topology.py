"""The one topology description: TOML -> typed dataclasses -> a dataplane graph.

The live daemon, the replay driver and the experiments all build their graph
from a `Topology`.  Example::

    [bridge]
    name = "br0"
    ageing_time = 300          # seconds (OVS mac-aging-time)
    mac_table_size = 8192      # OVS mac-table-size
    move_log = 64              # MAC moves remembered for `fdb moves`

    [bridge.move_damping]      # a MAC moving more than `moves` times within
    moves = 5                  # `window` seconds is frozen on its port for
    window = 10                # `hold` seconds; moves = 0 disables damping
    hold = 30

    [[port]]
    name = "vm1"
    type = "tap"               # tap | attach | replay
    tag = 10                   # access VLAN (vlan_mode defaults as in OVS)
    # vlan_mode = "native-untagged"; trunks = "10,20-29"
    # learning, flood, mcast_flood, bcast_flood, isolated, hairpin = true/false
    # mtu = 1500; mac_limit = 100; mac_limit_policy = "stop" | "evict"
    # netns = "guest1"         # tap: move the interface into this namespace
    # persistent = false       # tap: keep the device when the daemon exits
    # ingress_policing_rate = 10000; ingress_policing_burst = 1000   # kbit/s, kbit (as OVS)
    # storm_broadcast_pps = 100; storm_multicast_pps = 1000

    [port.qdisc]               # the port's egress qdisc (docs/policies.md)
    kind = "fq_codel"          # or tbf, drr, htb, ... with tc's parameters
    target = "5ms"

    [[fdb]]                    # static entries
    mac = "02:00:00:00:00:01"
    port = "vm1"
    vlan = 10

Errors name the file, the table and the key: ``cfg.toml: port[2] ('vm3'):
tag: bad VLAN 5000: ...``.  A port's settings are declared once, in
`vswitch.port_config` (type, default, checks, help, whether they may change
at run time); `parse_port` and the saved ``[[port]]`` tables come from there.
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vswitch.core.element import Element, PortId
from vswitch.core.frame import parse_mac
from vswitch.core.graph import Graph
from vswitch.core.policies import build_policer, build_scheduler
from vswitch.core.queues import Queue
from vswitch.elements.fdb import NS, Fdb
from vswitch.elements.from_port import FromPort
from vswitch.elements.learning_switch import LearningSwitch
from vswitch.elements.segment import Segmenter
from vswitch.elements.storm_control import StormControl
from vswitch.elements.vlan import check_vid
from vswitch.port_config import (  # noqa: F401  (the port's declaration; re-exported, as before it moved)
    IFNAMSIZ,
    MAX_ENTRIES,
    MAX_PORT_NUMBER,
    PORT_FLAGS,
    PORT_TYPES,
    PortConfig,
    check_ifname,
    check_netns_name,
    check_qdisc,
    parse_port,
    qdisc_spec,
)
from vswitch.schema import ConfigError

MAX_SECONDS = 1_000_000        # ageing time and move-damping window/hold
MAX_MOVE_LOG = 100_000


@dataclass
class BridgeConfig:
    name: str = "br0"
    ageing_time: float = 300.0
    mac_table_size: int = 8192
    move_log: int = 64
    damp_moves: int = 5
    damp_window: float = 10.0
    damp_hold: float = 30.0


NIC_MODES = ("software", "vmdq", "sriov")


@dataclass
class NicConfig:
    """``[nic]``: an emulated NIC between the uplink port and the guests (vswitchd)."""

    profile: str = "82599"
    mode: str = "vmdq"
    uplink: str = ""
    rx_ring: int = 512
    tx_ring: int = 512
    rx_usecs: int = 0
    rx_frames: int = 0
    numvfs: int = 0                 # mode = "sriov": the VFs the PF driver enables (sriov_numvfs)
    # A queue policy in front of each guest pool's TX queue (vmdq mode; docs/policies.md),
    # as a port's qdisc is given: a kind, or a table with kind and parameters.
    tx_qdisc: str | dict[str, Any] | None = None


@dataclass
class StaticFdbConfig:
    mac: str
    port: str
    vlan: int = 0


@dataclass
class Topology:
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    ports: list[PortConfig] = field(default_factory=list)
    fdb: list[StaticFdbConfig] = field(default_factory=list)
    nic: NicConfig | None = None

    def port(self, name: str) -> PortConfig:
        for p in self.ports:
            if p.name == name:
                return p
        raise KeyError(name)


# -- parsing ---------------------------------------------------------------------

_BRIDGE_KEYS = {"name": str, "ageing_time": (int, float), "mac_table_size": int, "move_log": int}
_DAMP_KEYS = {"moves": ("damp_moves", int), "window": ("damp_window", (int, float)),
              "hold": ("damp_hold", (int, float))}

def _typed(where: str, key: str, value: Any, typ: Any) -> Any:
    if isinstance(value, bool) and typ is not bool and (typ is int or typ == (int, float)):
        raise ConfigError(f"{where}: {key}: expected a number, got {value!r}")
    if not isinstance(value, typ):
        want = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise ConfigError(f"{where}: {key}: expected {want}, got {type(value).__name__} {value!r}")
    return value


def parse_topology(doc: dict[str, Any], source: str = "<config>") -> Topology:
    topo = Topology()
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a topology is a table of tables (bridge, port, fdb, nic)")
    unknown = set(doc) - {"bridge", "port", "fdb", "nic"}
    if unknown:
        raise ConfigError(f"{source}: unknown table(s) {', '.join(map(repr, sorted(unknown)))} "
                          "(known: bridge, port, fdb, nic)")
    br = doc.get("bridge", {})
    if not isinstance(br, dict):
        raise ConfigError(f"{source}: 'bridge' must be a table ([bridge])")
    for key, value in br.items():
        where = f"{source}: [bridge]"
        if key == "move_damping":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: move_damping must be a table")
            for dk, dv in value.items():
                if dk not in _DAMP_KEYS:
                    raise ConfigError(f"{where}.move_damping: unknown key {dk!r} (known: moves, window, hold)")
                attr, typ = _DAMP_KEYS[dk]
                setattr(topo.bridge, attr, _typed(where + ".move_damping", dk, dv, typ))
            continue
        if key not in _BRIDGE_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(_BRIDGE_KEYS)}, move_damping)")
        setattr(topo.bridge, key, _typed(where, key, value, _BRIDGE_KEYS[key]))
    b = topo.bridge
    # Each bound is written so that NaN fails it too; infinity is over every maximum.
    if not 1 <= b.ageing_time <= MAX_SECONDS:
        raise ConfigError(f"{source}: [bridge]: ageing_time {b.ageing_time}: must be 1-{MAX_SECONDS} seconds")
    if not 1 <= b.mac_table_size <= MAX_ENTRIES:
        raise ConfigError(f"{source}: [bridge]: mac_table_size {b.mac_table_size}: must be 1-{MAX_ENTRIES}")
    if not 0 <= b.move_log <= MAX_MOVE_LOG:
        raise ConfigError(f"{source}: [bridge]: move_log {b.move_log}: must be 0-{MAX_MOVE_LOG} "
                          "(moves kept for `fdb moves`)")
    damp = f"{source}: [bridge.move_damping]"
    if not 0 <= b.damp_moves <= MAX_ENTRIES:
        raise ConfigError(f"{damp}: moves {b.damp_moves}: must be 0-{MAX_ENTRIES} (0 disables damping)")
    if not 0 < b.damp_window <= MAX_SECONDS:
        raise ConfigError(f"{damp}: window {b.damp_window}: must be over 0 and at most {MAX_SECONDS} seconds")
    if not 0 <= b.damp_hold <= MAX_SECONDS:
        raise ConfigError(f"{damp}: hold {b.damp_hold}: must be 0-{MAX_SECONDS} seconds")
    ports = doc.get("port", [])
    if not isinstance(ports, list):
        raise ConfigError(f"{source}: 'port' must be an array of tables ([[port]])")
    seen: set[str] = set()
    numbers: set[int] = set()
    for i, pd in enumerate(ports):
        label = f"{source}: port[{i}]" + (f" ({pd.get('name')!r})" if isinstance(pd, dict) and "name" in pd
                                           else "")
        if not isinstance(pd, dict):
            raise ConfigError(f"{label}: must be a table")
        p = parse_port(pd, label)
        if p.name in seen:
            raise ConfigError(f"{label}: duplicate port name {p.name!r}")
        if p.number is not None:
            if p.number in numbers:
                raise ConfigError(f"{label}: number {p.number}: already taken by another port")
            numbers.add(p.number)
        seen.add(p.name)
        topo.ports.append(p)
    fdbs = doc.get("fdb", [])
    if not isinstance(fdbs, list):
        raise ConfigError(f"{source}: 'fdb' must be an array of tables ([[fdb]])")
    for i, fd in enumerate(fdbs):
        where = f"{source}: fdb[{i}]"
        if not isinstance(fd, dict) or set(fd) - {"mac", "port", "vlan"} or not {"mac", "port"} <= set(fd):
            raise ConfigError(f"{where}: a static entry is a table with mac, port and optional vlan")
        mac = _typed(where, "mac", fd["mac"], str)
        port_name = _typed(where, "port", fd["port"], str)
        vlan = _typed(where, "vlan", fd.get("vlan", 0), int)
        try:
            if parse_mac(mac)[0] & 1:
                raise ValueError(f"{mac}: a static entry needs a unicast MAC")
        except ValueError as e:
            raise ConfigError(f"{where}: mac: {e}") from None
        try:
            check_vid(vlan)
        except ValueError as e:
            raise ConfigError(f"{where}: vlan: {e}") from None
        if port_name not in seen:
            raise ConfigError(f"{where}: port {port_name!r} is not a configured port")
        if vlan not in topo.port(port_name).vlan().carries:
            raise ConfigError(f"{where}: port {port_name!r} does not carry VLAN {vlan}")
        topo.fdb.append(StaticFdbConfig(mac, port_name, vlan))
    if "nic" in doc:
        topo.nic = parse_nic(doc["nic"], f"{source}: [nic]", seen)
    for i, p in enumerate(topo.ports):
        err = nic_queue_error(topo.nic, p)
        if err is not None:
            raise ConfigError(f"{source}: port[{i}] ({p.name!r}): {err}")
    _check_vf_ports(topo, source)
    return topo


NIC_QUEUE_KEYS = ("rx_qdisc", "tx_qdisc")     # a port's policies on its NIC queues (its pool's or VF's)


def nic_queue_error(nic: NicConfig | None, cfg: PortConfig) -> str | None:
    """Why ``cfg``'s ``rx_qdisc``/``tx_qdisc`` cannot be (None: they can): only a guest port
    behind the NIC in vmdq or sriov mode has NIC queues of its own."""
    key = next((k for k in NIC_QUEUE_KEYS if getattr(cfg, k) is not None), None)
    if key is None:
        return None
    if nic is None or nic.mode not in ("vmdq", "sriov"):
        return (f"{key}: only a guest port behind the NIC ([nic] mode = \"vmdq\" or \"sriov\") has NIC "
                f"queues of its own (for the port's egress use qdisc)")
    if cfg.name == nic.uplink:
        return f"{key}: the uplink is the NIC's wire, not a guest's queues (use [nic] or a guest port)"
    return None


def qdisc_scheduler(setting: str | dict[str, Any]) -> Any:
    """The scheduler a qdisc setting (a kind, or a table with ``kind``) names (`build_scheduler`)."""
    spec = qdisc_spec(setting)
    return build_scheduler(spec["kind"], **{k: v for k, v in spec.items() if k != "kind"})


def _check_vf_ports(topo: Topology, source: str) -> None:
    """mode = "sriov": every guest port names its own VF, and the PF accepts each one's settings
    (a scratch PF is programmed as the daemon will program its own: the driver's errors)."""
    nic = topo.nic
    labels = {p.name: f"{source}: port[{i}] ({p.name!r})" for i, p in enumerate(topo.ports)}
    if nic is None or nic.mode != "sriov":
        for p in topo.ports:
            if p.vf is not None:
                raise ConfigError(f"{labels[p.name]}: vf: a port on a VF needs [nic] mode = \"sriov\"")
        return
    owner: dict[int, str] = {}
    vf_ports = []
    for p in topo.ports:
        if p.name == nic.uplink:
            if p.vf is not None:
                raise ConfigError(f"{labels[p.name]}: vf: the uplink is the NIC's wire, not a VF")
            continue
        if p.vf is None:
            raise ConfigError(f"{labels[p.name]}: vf: in [nic] mode = \"sriov\" every guest port names its VF "
                              f"(vf = 0-{nic.numvfs - 1})")
        if p.vf >= nic.numvfs:
            raise ConfigError(f"{labels[p.name]}: vf {p.vf}: the PF has {nic.numvfs} VFs ([nic] numvfs)")
        if p.vf in owner:
            raise ConfigError(f"{labels[p.name]}: vf {p.vf}: already the VF of port {owner[p.vf]!r}")
        owner[p.vf] = p.name
        vf_ports.append((labels[p.name], p.name, p.vf, p.vf_settings(), p.mtu))
    try:
        _nic_plugin("check_ports", "sriov")("nic0", nic_settings(nic), vf_ports)
    except ValueError as e:
        raise ConfigError(str(e)) from None


_NIC_KEYS: dict[str, Any] = {"profile": str, "mode": str, "uplink": str, "rx_ring": int, "tx_ring": int,
                             "rx_usecs": int, "rx_frames": int, "numvfs": int, "tx_qdisc": (str, dict)}


def parse_nic(data: Any, where: str, ports: set[str]) -> NicConfig:
    profiles = _nic_plugin("PROFILES")
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(data) - set(_NIC_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, sorted(unknown)))} "
                          f"(known: {', '.join(_NIC_KEYS)})")
    cfg = NicConfig(**{k: _typed(where, k, v, _NIC_KEYS[k]) for k, v in data.items()})
    if cfg.profile not in profiles:
        raise ConfigError(f"{where}: profile {cfg.profile!r}: use one of {', '.join(sorted(profiles))}")
    if cfg.mode not in NIC_MODES:
        raise ConfigError(f"{where}: mode {cfg.mode!r}: use one of {', '.join(NIC_MODES)}")
    if not cfg.uplink:
        raise ConfigError(f"{where}: uplink: name the port behind the NIC (its wire side)")
    if cfg.uplink not in ports:
        raise ConfigError(f"{where}: uplink {cfg.uplink!r} is not a configured port")
    for k in ("rx_ring", "tx_ring"):
        if not 64 <= getattr(cfg, k) <= 4096:
            raise ConfigError(f"{where}: {k} {getattr(cfg, k)}: descriptors 64-4096 (as ethtool -G)")
    if cfg.rx_usecs < 0 or cfg.rx_frames < 0:
        raise ConfigError(f"{where}: rx_usecs and rx_frames must be >= 0")
    if cfg.mode == "sriov":
        total = _nic_plugin("max_vfs", "sriov")(cfg.profile)
        if "numvfs" not in data:
            raise ConfigError(f"{where}: numvfs: mode = \"sriov\" needs the number of VFs (1-{total}, "
                              "what `echo N > sriov_numvfs` enables)")
        if not 1 <= cfg.numvfs <= total:
            raise ConfigError(f"{where}: numvfs {cfg.numvfs}: {cfg.profile} has 1-{total} VFs (sriov_totalvfs)")
    elif "numvfs" in data:
        raise ConfigError(f"{where}: numvfs: only mode = \"sriov\" has VFs (mode is {cfg.mode!r})")
    if cfg.tx_qdisc is not None:
        if cfg.mode != "vmdq":
            raise ConfigError(f"{where}: tx_qdisc: only in vmdq mode (it sits on each guest pool's TX queue)")
        try:
            cfg.tx_qdisc = check_qdisc(cfg.tx_qdisc)
        except ValueError as e:
            raise ConfigError(f"{where}: tx_qdisc: {e}") from None
    return cfg


def load_topology(path: str | Path) -> Topology:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")            # TOML is UTF-8, whatever the locale says
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(f"{path}: not UTF-8 (TOML must be): byte 0x{raw[e.start]:02x} at line {line}, "
                          f"column {col}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_topology(doc, str(path))


def topology_to_dict(topo: Topology) -> dict[str, Any]:
    b = topo.bridge
    default = BridgeConfig()
    bridge = {k: getattr(b, k) for k in _BRIDGE_KEYS if getattr(b, k) != getattr(default, k) or k == "name"}
    damping = {dk: getattr(b, attr) for dk, (attr, _) in _DAMP_KEYS.items()
               if getattr(b, attr) != getattr(default, attr)}
    if damping:
        bridge["move_damping"] = damping
    doc: dict[str, Any] = {"bridge": bridge, "port": [p.to_dict() for p in topo.ports]}
    if topo.fdb:
        doc["fdb"] = [{"mac": s.mac, "port": s.port, "vlan": s.vlan} for s in topo.fdb]
    if topo.nic is not None:
        default_nic = NicConfig()
        doc["nic"] = {k: getattr(topo.nic, k) for k in _NIC_KEYS
                      if getattr(topo.nic, k) != getattr(default_nic, k) or k in ("mode", "uplink")
                      or (k == "numvfs" and topo.nic.mode == "sriov")}
    return doc


def save_tmp_path(path: str | Path) -> Path:
    """The temporary file `save_topology` writes before its rename (left behind by a SIGKILL)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


def save_topology(topo: Topology, path: str | Path) -> None:
    """Write the topology as TOML atomically (temporary file, fsync, rename)."""
    import os

    import tomli_w

    path = Path(path)
    text = ("# Written by vswitchd: ports added, changed or removed at run time are saved here.\n"
            + tomli_w.dumps(topology_to_dict(topo)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = save_tmp_path(path)
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# -- building --------------------------------------------------------------------

def make_fdb(b: BridgeConfig) -> Fdb:
    return Fdb(max_entries=b.mac_table_size, ageing_ns=int(b.ageing_time * NS), move_log=b.move_log,
               damp_moves=b.damp_moves, damp_window_ns=int(b.damp_window * NS),
               damp_hold_ns=int(b.damp_hold * NS))


def assign_numbers(topo: Topology) -> dict[str, int]:
    """Port numbers: the configured ones, the rest 1, 2, ... in config order (as OVS ofports)."""
    used = {p.number for p in topo.ports if p.number is not None}
    out: dict[str, int] = {}
    nxt = 1
    for p in topo.ports:
        if p.number is not None:
            out[p.name] = p.number
            continue
        while nxt in used:
            nxt += 1
        out[p.name] = nxt
        used.add(nxt)
    return out


# The emulated NIC is a plug-in the topology loads by name, so the switch's package never
# imports the NIC model's (which builds on this package's core): no import cycle.
# It names its profiles (``PROFILES``) and builds the host object (``build``).  SR-IOV mode's
# host (the PF driver, VFs, guests on them) is its own plug-in, next to the SR-IOV model; it
# also says how many VFs a profile has (``max_vfs``) and checks the VF ports (``check_ports``).
NIC_PLUGIN = "nicmodel.host"
NIC_PLUGINS = {"software": NIC_PLUGIN, "vmdq": NIC_PLUGIN, "sriov": "sriov.host"}


def _nic_plugin(attr: str, mode: str = "vmdq") -> Any:
    return getattr(importlib.import_module(NIC_PLUGINS[mode]), attr)


def nic_settings(cfg: NicConfig) -> dict[str, Any]:
    """What the plug-in's host is built with."""
    s: dict[str, Any] = {"profile": cfg.profile, "mode": cfg.mode, "rx_ring": cfg.rx_ring, "tx_ring": cfg.tx_ring,
                         "rx_usecs": cfg.rx_usecs, "rx_frames": cfg.rx_frames}
    if cfg.mode == "sriov":
        s["numvfs"] = cfg.numvfs
    if cfg.tx_qdisc is not None:
        s["tx_qdisc"] = qdisc_spec(cfg.tx_qdisc)
    return s


def load_nic_host(cfg: NicConfig, name: str = "nic0") -> Any:
    """The NIC plug-in's host object (`nicmodel.host.NicHost`, `sriov.host.SriovHost`) for a ``[nic]``."""
    return _nic_plugin("build", cfg.mode)(name, **nic_settings(cfg))


@dataclass
class Dataplane:
    """A built graph: the switch, the emulated NIC if any, and the port name <-> number maps.

    Every configured port is a graph port with the same number as its switch port.  With a
    ``[nic]`` the uplink port is the NIC's wire (through a `Segmenter`), and the switch's
    uplink port is wired to the NIC's pool 0 (the hypervisor's: its frames from the wire,
    through a `FromPort` that sets aside the VEB copies of guests' frames); in vmdq mode each guest
    port's frames enter its pool, and what its pool receives leaves by the guest's port, as
    does what the switch sends it.  Drivers only give each graph port its transmit."""

    graph: Graph
    switch: LearningSwitch
    numbers: dict[str, int]
    nic: Any = None                 # nicmodel.host.NicHost
    uplink: str | None = None
    qdiscs: dict[str, Queue] = field(default_factory=dict)              # port -> its egress qdisc
    ingress: dict[str, list[Element]] = field(default_factory=dict)     # port -> policer, storm control
    entries: dict[str, tuple[Element, PortId]] = field(default_factory=dict)   # port -> where frames enter

    def name_of(self, number: int) -> str:
        if number in self.switch.ports:
            return self.switch.ports[number].name
        return next(n for n, k in self.numbers.items() if k == number)     # a guest on a VF

    def on_vf(self, name: str) -> bool:
        """The port is a guest on a VF (sriov mode): not a switch port."""
        return self.nic is not None and not self.nic.vmdq and name in self.nic.bindings

    def add_port(self, cfg: PortConfig, number: int) -> None:
        """Add a port (switch, graph and, in vmdq mode, a pool; in sriov mode a guest port on its
        VF is not a switch port); nothing is changed if it fails."""
        g, sw, host = self.graph, self.switch, self.nic
        if any(getattr(cfg, k) is not None for k in NIC_QUEUE_KEYS):
            err = nic_queue_error(self.nic_config(), cfg)
            if err is not None:
                raise ConfigError(f"port {cfg.name!r}: {err}")
        if host is not None and host.mode == "sriov" and cfg.name != self.uplink:
            self._add_vf_port(cfg, number)
            self.set_nic_qdiscs(cfg)
            return
        binding = None
        if host is not None and host.vmdq and cfg.name != self.uplink:
            vlan = cfg.vlan()
            binding = host.bind(cfg.name, vlan.tag if vlan.mode == "access" else None, cfg.mac)
        try:
            sw.add_port(cfg.switch_port(number))
        except Exception:
            if binding is not None:
                host.unbind(cfg.name)
            raise
        nic: Any = host.nic if host is not None else None
        if nic is not None and cfg.name == self.uplink:
            seg = g.elements.get(f"{nic.name}.segment")
            if seg is None:
                seg = g.add(Segmenter(f"{nic.name}.segment", cfg.mtu))
                g.connect(seg, "out", nic, "wire")
            g.add_port(number, cfg.name, seg, "in")
            g.bind_egress(nic, "wire", number)
            # The default pool to the switch as the uplink's frames; guests' VEB copies set aside.
            pool = f"pool{self.nic.default_pool}"
            host = g.elements.get(f"{nic.name}.{pool}")
            if not isinstance(host, FromPort):
                host = g.add(FromPort(f"{nic.name}.{pool}", number))
                g.connect(nic, pool, host, "in")
            host.port = number
            g.connect(host, "out", sw, number)
            g.connect(sw, number, nic, pool)
        elif binding is not None:
            # The guest's frames enter its pool's TX queue as the NIC's TSO and checksum offload
            # leave them: MTU-sized, complete (a 64 KB super-frame fits no pool's VEB copy).
            found = g.elements.get(f"{nic.name}.tso{binding.pool}")
            if isinstance(found, Segmenter):
                tso = found
            else:
                tso = g.add(Segmenter(f"{nic.name}.tso{binding.pool}", cfg.mtu))
                g.connect(tso, "out", nic, f"pool{binding.pool}")
            tso.mtu = cfg.mtu
            g.add_port(number, cfg.name, tso, "in")
            g.bind_egress(nic, f"pool{binding.pool}", number)
            g.bind_egress(sw, number, number)
        else:
            g.add_port(number, cfg.name, sw, number)
            g.bind_egress(sw, number, number)
        self.numbers[cfg.name] = number
        self.entries[cfg.name] = g.entry(number)
        self.set_ingress(cfg)
        self.set_qdisc(cfg.name, cfg.qdisc)
        if binding is not None:
            self.set_nic_qdiscs(cfg)

    # -- a port's queue policies ---------------------------------------------------
    def set_qdisc(self, name: str, setting: str | dict[str, Any] | None) -> None:
        """Give port ``name`` the egress qdisc ``spec`` (``{"kind": ..., params}``, as
        `PortConfig.qdisc`), or none: a core `Queue` with that scheduler between every element
        output that feeds the port's transmit and the transmit, drained by whatever driver runs
        the graph.  A replaced qdisc is dropped with what it held (as Linux's qdisc replace).
        The scheduler is built first: a bad spec changes nothing (ValueError)."""
        g = self.graph
        number = self.numbers[name]
        queue = None
        if setting is not None:
            spec = qdisc_spec(setting)
            params = {k: v for k, v in spec.items() if k != "kind"}
            queue = Queue(f"{name}.qdisc", build_scheduler(spec["kind"], **params))
        old = self.qdiscs.pop(name, None)
        if old is not None:
            feeds = [(link.src, link.out) for link in g.links if link.dst is old]
            g.remove(old)
        else:
            feeds = g.egress_feeds(number)
        if queue is None:
            for el, out in feeds:
                g.bind_egress(el, out, number)
            return
        g.add(queue)
        for el, out in feeds:
            g.connect(el, out, queue, "in")
        g.bind_egress(queue, "out", number)
        self.qdiscs[name] = queue

    def nic_config(self) -> NicConfig | None:
        """The ``[nic]`` as far as the NIC queue policies care (its mode and uplink)."""
        if self.nic is None:
            return None
        return NicConfig(mode=self.nic.mode, uplink=self.uplink or "")

    def nic_qdisc_error(self, cfg: PortConfig) -> str | None:
        """Why the port cannot have its ``rx_qdisc``/``tx_qdisc`` here (None: it can)."""
        return nic_queue_error(self.nic_config(), cfg)

    def set_nic_qdiscs(self, cfg: PortConfig, old: PortConfig | None = None) -> None:
        """The policies on guest port ``cfg.name``'s NIC queues, as ``cfg`` has them (only
        those that differ from ``old``'s): ``rx_qdisc`` on each RX queue of its pool (or VF),
        each its own instance (`Nic.set_rx_qdisc`); ``tx_qdisc`` in front of its TX queue 0
        (`Nic.set_tx_qdisc`; none: ``[nic] tx_qdisc`` if the NIC has one).  Every scheduler
        is built before any is installed."""
        host = self.nic
        b = host.bindings.get(cfg.name) if host is not None else None
        if b is None:
            return
        nic = host.nic
        if old is None or cfg.rx_qdisc != old.rx_qdisc:
            queues = nic.state.pool_queues(b.pool)
            scheds = [qdisc_scheduler(cfg.rx_qdisc) if cfg.rx_qdisc is not None else None for _ in queues]
            for q, sched in zip(queues, scheds, strict=True):
                nic.set_rx_qdisc(q, sched)
        if old is None and cfg.tx_qdisc is None:
            return                           # a new port keeps what its pool was given ([nic] tx_qdisc)
        if old is None or cfg.tx_qdisc != old.tx_qdisc:
            setting = cfg.tx_qdisc if cfg.tx_qdisc is not None else getattr(host, "tx_qdisc", None)
            nic.set_tx_qdisc(b.pool, qdisc_scheduler(setting) if setting is not None else None)

    def clear_nic_qdiscs(self, name: str) -> None:
        """The port is going: its NIC queues' policies go with it."""
        host = self.nic
        b = host.bindings.get(name) if host is not None else None
        if b is None:
            return
        nic = host.nic
        for q in nic.state.pool_queues(b.pool):
            if q in nic.rx_qdisc:
                nic.set_rx_qdisc(q, None)
        if b.pool in nic.tx_qdisc:
            nic.set_tx_qdisc(b.pool, None)

    def set_ingress(self, cfg: PortConfig) -> None:
        """Put port ``cfg.name``'s ingress policer and storm control (each only if set) between
        its graph entry and where its frames went before; a driver fetches the port's
        ``graph.ingress`` again afterwards."""
        g = self.graph
        number = self.numbers[cfg.name]
        chain: list[Element] = []
        pol = cfg.policer_params()
        if pol is not None:
            chain.append(build_policer(f"{cfg.name}.policer", **pol))
        if cfg.storm_broadcast_pps is not None or cfg.storm_multicast_pps is not None:
            chain.append(StormControl(f"{cfg.name}.storm", cfg.storm_broadcast_pps, cfg.storm_multicast_pps))
        for el in self.ingress.pop(cfg.name, []):
            g.remove(el)
        base, inp = self.entries[cfg.name]
        for el in chain:
            g.add(el)
        for a, b in zip(chain, chain[1:], strict=False):
            g.connect(a, "out", b, "in")
        if chain:
            g.connect(chain[-1], "out", base, inp)
            g.set_entry(number, chain[0], "in")
            self.ingress[cfg.name] = chain
        else:
            g.set_entry(number, base, inp)

    def _add_vf_port(self, cfg: PortConfig, number: int) -> None:
        """A guest on a VF: its frames are the VF's TX DMA (after the NIC's TSO: MTU-sized), and
        what the VF receives leaves by the port; the software switch never sees them."""
        if cfg.vf is None:
            raise ConfigError(f"port {cfg.name!r}: vf: in [nic] mode = \"sriov\" every guest port names its VF")
        if number in self.numbers.values():
            raise ConfigError(f"port {cfg.name!r}: number {number} is taken")
        g, host = self.graph, self.nic
        b = host.bind(cfg.name, cfg.vf, cfg.vf_settings(), cfg.mtu)
        vf = host.pf.vf(b.vf)
        tso = g.elements.get(f"{host.nic.name}.tso{b.pool}")
        if not isinstance(tso, Segmenter):
            tso = g.add(Segmenter(f"{host.nic.name}.tso{b.pool}", cfg.mtu))
            g.connect(tso, "out", vf.dma, "guest")
        tso.mtu = cfg.mtu
        g.add_port(number, cfg.name, tso, "in")
        g.bind_egress(vf.dma, "guest", number)
        self.numbers[cfg.name] = number

    def remove_port(self, name: str) -> int:
        on_vf = self.on_vf(name)
        for el in [*self.ingress.pop(name, []), *[q for q in [self.qdiscs.pop(name, None)] if q is not None]]:
            self.graph.remove(el)
        self.entries.pop(name, None)
        number = self.numbers.pop(name)
        self.graph.detach_port(number)
        if not on_vf:
            self.switch.remove_port(number)
        if self.nic is not None:
            self.clear_nic_qdiscs(name)
            self.nic.unbind(name)
        return number

    def update_port(self, old: PortConfig, new: PortConfig, repool: bool = True) -> None:
        """A port's settings changed at run time: the switch's copy, and (``repool``: its VLAN
        or MAC changed) a guest's pool follows; a guest's VF takes its new admin settings (the
        PF's errors refuse it and change nothing)."""
        if self.on_vf(new.name):
            self.nic.program(new.name, new.vf_settings(), new.mtu)
            entry = self.graph.entry(self.numbers[new.name])[0]
            if isinstance(entry, Segmenter):
                entry.mtu = new.mtu
            self.set_nic_qdiscs(new, old)
            return
        self.switch.update_port(self.numbers[new.name], **new.switch_settings())
        if new.qdisc != old.qdisc:
            self.set_qdisc(new.name, new.qdisc)
        self.set_nic_qdiscs(new, old)
        if new.policer_params() != old.policer_params() or (new.storm_broadcast_pps, new.storm_multicast_pps) \
                != (old.storm_broadcast_pps, old.storm_multicast_pps):
            self.set_ingress(new)
        entry = self.entries[new.name][0]
        if isinstance(entry, Segmenter):             # the uplink's, or a guest's TSO: the new MTU
            entry.mtu = new.mtu
        host = self.nic
        b = host.bindings.get(new.name) if host is not None else None
        if b is not None and repool:
            v = new.vlan()
            host.reprogram(new.name, v.tag if v.mode == "access" else None, new.mac)

    def role(self, name: str) -> str | None:
        """``uplink``, ``pool N`` (a vmdq guest), ``vf N`` (a guest on a VF) or None (a switch port)."""
        if self.nic is None:
            return None
        if name == self.uplink:
            return "uplink"
        b = self.nic.bindings.get(name)
        if b is None:
            return None
        return f"vf {b.vf}" if self.on_vf(name) else f"pool {b.pool}"

    def taken(self, number: int) -> bool:
        return number in self.switch.ports or number in self.numbers.values()

    def next_number(self) -> int:
        n = 1
        while self.taken(n):
            n += 1
        return n


def build_dataplane(topo: Topology, graph: Graph | None = None) -> Dataplane:
    """The graph for a topology (the switch, and the NIC of a ``[nic]`` section); drivers
    then give each graph port its transmit (`Graph.set_transmit`)."""
    graph = graph or Graph()
    switch = LearningSwitch(topo.bridge.name, make_fdb(topo.bridge))
    graph.add(switch)
    dp = Dataplane(graph, switch, {})
    if topo.nic is not None:
        dp.nic = load_nic_host(topo.nic)
        dp.uplink = topo.nic.uplink
        dp.nic.attach(graph)
    numbers = assign_numbers(topo)
    for p in topo.ports:
        dp.add_port(p, numbers[p.name])
    for s in topo.fdb:
        switch.fdb.add_static(s.vlan, parse_mac(s.mac), dp.numbers[s.port])
    return dp
