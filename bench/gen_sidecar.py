"""The sidecars of a generated trace: a vswitch topology (TOML) and a manifest (JSON).

The topology has one ``[[port]]`` per guest (``g1`` ... ``gN``, type
``replay``, the guest's ``mac``; with VLANs an access port of its VLAN, or
with tagged guests a trunk of that VLAN only) after an ``uplink`` port (a
trunk of every VLAN), optionally with a ``[nic]`` (the emulated 82599 in
``vmdq`` or ``software`` mode, its wire side the uplink).  It is written
through vswitch's own loader (`vswitch.topology.parse_topology`), so what
this writes, ``vswitch-bench replay --config`` reads.

The manifest (``"format": "vswitch-gen/1"``) says how the trace was made (the
options, the seed), what it holds (frames by kind, bytes, the span, mean
rates) and, for replay, which port each frame enters by: ``map`` gives every
source MAC in the trace its port (a guest's MAC -> its port, a wire host's ->
the uplink) and ``default_port`` (the uplink) takes any other;
``vswitch-bench replay --map-from MANIFEST`` applies both.  ``flows`` lists
each flow with its ingress and egress port, its frames and bytes and its mean
rate, so a replay's per-port counters can be checked against it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from bench.tracegen import NS, UPLINK, GenResult, GenSpec
from vswitch.topology import ConfigError, parse_topology

FORMAT = "vswitch-gen/1"
NIC_CHOICES = ("none", "software", "vmdq")
VMDQ_MAX_GUESTS = 63                 # the 82599's 64 pools, pool 0 the hypervisor's


def _mac(b: bytes) -> str:
    return b.hex(":")


def _ip(b: bytes) -> str:
    return ".".join(str(x) for x in b)


def check_nic(spec: GenSpec, nic: str) -> None:
    if nic not in NIC_CHOICES:
        raise ValueError(f"--nic {nic!r}: use one of {', '.join(NIC_CHOICES)}")
    if nic == "vmdq" and spec.guests > VMDQ_MAX_GUESTS:
        raise ValueError(f"--nic vmdq: at most {VMDQ_MAX_GUESTS} guests (the 82599 has 64 VMDq pools, "
                         f"pool 0 the hypervisor's); --guests {spec.guests}")


def topology_doc(spec: GenSpec, nic: str = "none") -> dict[str, Any]:
    """The topology for the guests ``spec`` makes (checked by vswitch's loader)."""
    from bench.tracegen import make_hosts
    guests, wire = make_hosts(spec)
    ports: list[dict[str, Any]] = [{"name": UPLINK, "type": "replay"}]
    for g in guests:
        p: dict[str, Any] = {"name": g.port, "type": "replay", "mac": _mac(g.mac)}
        if spec.vlans:
            if spec.tagged_guests and g.vlan:
                p.update(vlan_mode="trunk", trunks=str(g.vlan))
            else:
                p["tag"] = g.vlan
        ports.append(p)
    vlans = len({g.vlan for g in guests})
    bridge: dict[str, Any] = {"name": "br0"}
    entries = len(guests) + len(wire) * vlans
    if entries > 8192:                      # the default mac_table_size would evict
        bridge["mac_table_size"] = entries
    doc: dict[str, Any] = {"bridge": bridge, "port": ports}
    if nic != "none":
        doc["nic"] = {"profile": "82599", "mode": nic, "uplink": UPLINK}
    parse_topology(doc, "generated topology")          # the loader's checks: what it refuses, we never write
    return doc


def write_topology(spec: GenSpec, path: str | Path, trace: str, nic: str = "none") -> None:
    doc = topology_doc(spec, nic)
    text = (f"# Written by vswitch-bench gen for {trace}: one port per guest, after the uplink (the wire).\n"
            "# A frame enters by its source MAC: a guest's MAC -> its port, any other -> uplink\n"
            "# (vswitch-bench replay --map-from <the manifest> applies this).\n" + tomli_w.dumps(doc))
    Path(path).write_text(text)


def manifest_doc(res: GenResult, trace: str, topology: str | None, argv: list[str], nic: str,
                 pcapng: bool = False) -> dict[str, Any]:
    spec = res.spec
    span_s = res.span_ns / NS
    rates = res.rates()
    ports: list[dict[str, Any]] = [{"name": UPLINK, "role": "uplink"}]
    ports += [{"name": g.port, "role": "guest", "mac": _mac(g.mac), "ip": _ip(g.ip), "vlan": g.vlan}
              for g in res.guests]
    mapping = {_mac(g.mac): g.port for g in res.guests}
    mapping.update({_mac(h.mac): UPLINK for h in res.wire})
    flows = []
    for f in res.flows:
        flows.append({
            "id": f.id, "kind": f.kind, "src": f.src.name, "dst": f.dst.name,
            "ingress": f.src.port, "egress": f.dst.port, "vlan": f.vlan, "tagged": f.tagged,
            "proto": f.proto, "src_mac": _mac(f.src.mac), "dst_mac": _mac(f.dst.mac),
            "src_ip": _ip(f.src.ip), "dst_ip": _ip(f.dst.ip), "sport": f.sport, "dport": f.dport,
            "frames": f.frames, "bytes": f.bytes,
            "pps": f.frames / span_s if span_s else 0.0,
        })
    rate: dict[str, Any] = {"count": spec.count, "pattern": spec.pattern}
    if spec.pps is not None:
        rate["pps"] = float(spec.pps)
    else:
        rate["bps"] = float(spec.bps or 0)
    if spec.pattern == "onoff":
        rate.update(on_ns=spec.on_ns, off_ns=spec.off_ns)
    return {
        "format": FORMAT,
        "trace": trace,
        "pcapng": pcapng,
        "topology": topology,
        "command": argv,
        "seed": spec.seed,
        "nic": nic,
        "sizes": spec.sizes.to_json(),
        "rate": rate,
        "mix": spec.fractions(),
        "frames": {"total": res.frames, "data": res.data_frames, **res.by_kind, "announce": res.announce,
                   "arp": res.arp, "broadcast": res.broadcast},
        "bytes": {"capture": res.bytes, "data_capture": res.data_bytes},
        "first_ts_ns": res.first_ts_ns, "data_start_ns": res.data_start_ns, "last_ts_ns": res.last_ts_ns,
        "span_ns": res.span_ns,
        "offered": rates,
        "uplink": UPLINK,
        "default_port": UPLINK,
        "ports": ports,
        "wire_hosts": [{"name": h.name, "mac": _mac(h.mac), "ip": _ip(h.ip)} for h in res.wire],
        "map": mapping,
        "flows": flows,
    }


def write_manifest(res: GenResult, path: str | Path, trace: str, topology: str | None, argv: list[str],
                   nic: str, pcapng: bool = False) -> None:
    doc = manifest_doc(res, trace, topology, argv, nic, pcapng)
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


# -- reading it back (vswitch-bench replay --map-from) ---------------------------------------------

@dataclass
class PortMap:
    """What replay needs of a manifest: source MAC -> port, the port for other MACs, the topology."""

    macs: dict[bytes, str]
    default_port: str
    topology: Path | None


def load_port_map(path: str | Path) -> PortMap:
    """Read a manifest's port map; ConfigError (one line, naming the file) if it is not one."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a JSON manifest: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a manifest of vswitch-bench gen (no \"format\": \"{FORMAT}\")")
    mapping, default = doc.get("map"), doc.get("default_port")
    if not isinstance(mapping, dict) or not isinstance(default, str):
        raise ConfigError(f"{path}: \"map\" must be an object (MAC -> port) and \"default_port\" a port name")
    macs: dict[bytes, str] = {}
    for mac, port in mapping.items():
        try:
            raw = bytes.fromhex(mac.replace(":", ""))
        except ValueError:
            raw = b""
        if len(raw) != 6 or not isinstance(port, str):
            raise ConfigError(f"{path}: map: {mac!r} -> {port!r}: expected \"aa:bb:cc:dd:ee:ff\": \"PORT\"")
        macs[raw] = port
    topo = doc.get("topology")
    topology = None
    if isinstance(topo, str) and topo:
        topology = Path(topo) if Path(topo).is_absolute() else path.parent / topo
    return PortMap(macs, default, topology)
