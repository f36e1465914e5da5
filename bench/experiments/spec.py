"""The experiment file (TOML) -> typed dataclasses -> the points of its sweep.

An experiment names a topology, traffic, the policies at each queue, what to
measure, a sweep (the product of axes, or a list of points, each axis any
field by its dotted path) and plots; docs/experiments.md describes every key.
`load_experiment` reads and checks it all, every point included, before
anything runs: an error is one line, ``FILE:LINE: KEY: what is wrong`` (for a
value a sweep gave, the line of that axis or point, and which point it was).

A point's parameters are plain data (`Point.params`: the ``topology``,
``traffic``, ``policy`` and ``measure`` sections with every default filled
in and paths made absolute): that dict and the seed are all a point runner
gets (`bench.experiments.kinds`), and the point's key is a hash of them and
the kind, so ``--resume`` knows a point it has done.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench.experiments.tomlkeys import KeyLines, dotted
from vswitch.schema import ConfigError

SECTIONS = ("experiment", "topology", "traffic", "policy", "measure", "sweep", "plot")
SWEEPABLE = ("topology", "traffic", "policy")
PLOT_TYPES = ("line", "cdf", "bar", "heatmap")
NIC_MODES = ("none", "software", "vmdq", "sriov")
DEFAULT_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
MAX_POINTS = 100_000

Path_ = tuple[str | int, ...]


class ExperimentError(ConfigError):
    """An experiment file that cannot run; the message is one line: file, line, key, what."""


class FieldError(Exception):
    def __init__(self, path: Path_, msg: str) -> None:
        super().__init__(msg)
        self.path = path
        self.msg = msg


# -- typed sections ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class NicSpec:
    """``[topology.nic]``: the emulated NIC between the uplink and the guests (docs/nicmodel.md)."""

    mode: str = "vmdq"
    profile: str = "82599"
    rx_ring: int = 512
    tx_ring: int = 512
    rx_usecs: int = 0
    rx_frames: int = 0


@dataclass(frozen=True)
class TopologySpec:
    """``[topology]``: a topology file, or the generator's guests g1..gN behind an uplink."""

    file: str | None = None
    guests: int = 4
    vlans: tuple[int, ...] = ()
    tagged_guests: bool = False
    wire_hosts: int = 2
    nic: NicSpec | None = None
    cores: int = 1                 # hypervisor cores (the discrete kind; docs/costmodel.md)
    costs: dict[str, Any] = field(default_factory=dict)   # a cost table's tables, as its TOML has them


@dataclass(frozen=True)
class TrafficSpec:
    """``[traffic]``: a trace (with its manifest), or the generator's parameters (``vswitch-bench gen``'s
    options, ``-`` written ``_``)."""

    trace: str | None = None
    manifest: str | None = None
    pps: str | None = None
    mbps: str | None = None
    gbps: str | None = None
    count: str = "l1"
    size: str = "64"
    duration: str | None = None
    frames: int | None = None
    pattern: str = "constant"
    on: str = "1ms"
    off: str = "1ms"
    flows: int = 16
    east_west: float = 0.5
    inbound: float = 0.5
    tcp: float = 0.0
    arp_pps: str = "0"
    bcast_pps: str = "0"
    announce: bool = True
    batch: int = 64
    sources: dict[str, Any] = field(default_factory=dict)   # name -> a simple source's table (kind "queue")


@dataclass(frozen=True)
class MeasureSpec:
    """``[measure]``: per-frame latency into HDR histograms, the percentiles of the table, per-port rows."""

    latency: bool = True
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    latency_max_ns: int = 60 * 10**9
    digits: int = 3
    per_port: bool = True


@dataclass(frozen=True)
class PlotSpec:
    """``[[plot]]``: one matplotlib figure drawn from the summary rows."""

    type: str
    file: str
    title: str = ""
    x: str | None = None
    y: tuple[str, ...] = ()
    z: str | None = None
    hist: str = "latency"
    logx: bool = False
    logy: bool = False


@dataclass(frozen=True)
class Point:
    """One run: the parameters (plain data), the seed, and the values its sweep gave."""

    index: int                     # the parameter set's place in the sweep (0-based)
    seed: int
    axes: dict[str, Any]           # dotted path -> value, for the fields the sweep set
    params: dict[str, Any]
    key: str                       # hash of kind, params and seed: what --resume matches


@dataclass(frozen=True)
class Experiment:
    path: Path
    name: str
    description: str
    kind: str
    seeds: tuple[int, ...]
    topology: TopologySpec
    traffic: TrafficSpec
    policy: dict[str, dict[str, Any]]
    measure: MeasureSpec
    axes: tuple[str, ...]          # the dotted paths a sweep sets (columns of the tables)
    points: tuple[Point, ...]
    plots: tuple[PlotSpec, ...]
    doc: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def param_sets(self) -> int:
        return len(self.points) // len(self.seeds)


# -- value checks ------------------------------------------------------------------------------------

def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _take(d: dict[str, Any], path: Path_, known: dict[str, Any]) -> None:
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise FieldError((*path, unknown[0]), f"unknown key (known here: {', '.join(known)})")


def _typed(d: dict[str, Any], path: Path_, key: str, kind: str, default: Any) -> Any:
    if key not in d:
        return default
    v = d[key]
    p = (*path, key)
    ok = {"int": isinstance(v, int) and not isinstance(v, bool),
          "num": _is_num(v),
          "bool": isinstance(v, bool),
          "str": isinstance(v, str),
          "numstr": _is_num(v) or isinstance(v, str),
          "table": isinstance(v, dict),
          "list": isinstance(v, list)}[kind]
    if not ok:
        want = {"int": "an integer", "num": "a number", "bool": "true or false", "str": "a string",
                "numstr": "a number or a string", "table": "a table", "list": "an array"}[kind]
        raise FieldError(p, f"expected {want}, got {type(v).__name__} {v!r}")
    return v


def _as_text(v: Any) -> str | None:
    return None if v is None else (v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v))


def _path_of(base: Path, v: str | None) -> str | None:
    if v is None:
        return None
    p = Path(v).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


_NIC_KEYS = {"mode": "str", "profile": "str", "rx_ring": "int", "tx_ring": "int", "rx_usecs": "int",
             "rx_frames": "int"}
_TOPO_KEYS = {"file": "str", "guests": "int", "vlans": "list", "tagged_guests": "bool", "wire_hosts": "int",
              "nic": "table", "cores": "int", "costs": "table"}
_TRAFFIC_KEYS = {"trace": "str", "manifest": "str", "pps": "numstr", "mbps": "numstr", "gbps": "numstr",
                 "count": "str", "size": "numstr", "duration": "numstr", "frames": "int", "pattern": "str",
                 "on": "numstr", "off": "numstr", "flows": "int", "east_west": "num", "inbound": "num",
                 "tcp": "num", "arp_pps": "numstr", "bcast_pps": "numstr", "announce": "bool", "batch": "int",
                 "sources": "table"}
_MEASURE_KEYS = {"latency": "bool", "percentiles": "list", "latency_max_ns": "int", "digits": "int",
                 "per_port": "bool"}
_PLOT_KEYS = {"type": "str", "file": "str", "title": "str", "x": "str", "y": "list|str",
              "z": "str", "hist": "str", "logx": "bool", "logy": "bool"}
_EXPERIMENT_KEYS = {"name": "str", "description": "str", "kind": "str", "seed": "int", "seeds": "int|list"}


def parse_topology_section(d: Any, base: Path) -> TopologySpec:
    path: Path_ = ("topology",)
    if not isinstance(d, dict):
        raise FieldError(path, "must be a table")
    _take(d, path, _TOPO_KEYS)
    g = {k: _typed(d, path, k, t, getattr(TopologySpec, k, None)) for k, t in _TOPO_KEYS.items()
         if k not in ("nic", "costs")}
    vlans = tuple(g["vlans"] or ())
    for i, v in enumerate(vlans):
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 4094:
            raise FieldError((*path, "vlans", i), f"bad VLAN {v!r}: a VLAN ID is 0-4094")
    nic = None
    raw = _typed(d, path, "nic", "table", None)
    if raw is not None:
        np_: Path_ = (*path, "nic")
        _take(raw, np_, _NIC_KEYS)
        n = NicSpec(**{k: _typed(raw, np_, k, t, getattr(NicSpec, k)) for k, t in _NIC_KEYS.items()})
        if n.mode not in NIC_MODES:
            raise FieldError((*np_, "mode"), f"{n.mode!r}: use one of {', '.join(NIC_MODES)}")
        for k in ("rx_ring", "tx_ring"):
            if not 64 <= getattr(n, k) <= 4096:
                raise FieldError((*np_, k), f"{getattr(n, k)}: descriptors 64-4096 (as ethtool -G)")
        for k in ("rx_usecs", "rx_frames"):
            if getattr(n, k) < 0:
                raise FieldError((*np_, k), f"{getattr(n, k)}: must be >= 0")
        nic = None if n.mode == "none" else n
    file = _path_of(base, g["file"])
    if file is not None and not Path(file).is_file():
        raise FieldError((*path, "file"), f"no such file {file!r}")
    if g["guests"] < 1:
        raise FieldError((*path, "guests"), f"{g['guests']}: need at least 1 guest")
    if g["wire_hosts"] < 0:
        raise FieldError((*path, "wire_hosts"), f"{g['wire_hosts']}: must be >= 0")
    if not 1 <= g["cores"] <= 256:
        raise FieldError((*path, "cores"), f"{g['cores']}: hypervisor cores, 1-256")
    costs = copy.deepcopy(_typed(d, path, "costs", "table", {}))
    return TopologySpec(file=file, guests=g["guests"], vlans=vlans, tagged_guests=g["tagged_guests"],
                        wire_hosts=g["wire_hosts"], nic=nic, cores=g["cores"], costs=costs)


def parse_traffic_section(d: Any, base: Path) -> TrafficSpec:
    path: Path_ = ("traffic",)
    if not isinstance(d, dict):
        raise FieldError(path, "must be a table")
    _take(d, path, _TRAFFIC_KEYS)
    v = {k: _typed(d, path, k, t, getattr(TrafficSpec, k, None)) for k, t in _TRAFFIC_KEYS.items()}
    v["sources"] = copy.deepcopy(v["sources"] or {})
    for name, src in v["sources"].items():
        if not isinstance(src, dict):
            raise FieldError((*path, "sources", name), f"a source is a table (rate, size, ...), got {src!r}")
    rates = [k for k in ("pps", "mbps", "gbps") if v[k] is not None]
    if len(rates) > 1:
        raise FieldError((*path, rates[1]), f"give one rate: {' and '.join(rates)} are both set")
    if v["duration"] is not None and v["frames"] is not None:
        raise FieldError((*path, "frames"), "give the length once: duration or frames")
    if v["batch"] < 1:
        raise FieldError((*path, "batch"), f"{v['batch']}: must be >= 1")
    for k in ("pps", "mbps", "gbps", "size", "duration", "on", "off", "arp_pps", "bcast_pps"):
        v[k] = _as_text(v[k])
    for k in ("trace", "manifest"):
        v[k] = _path_of(base, v[k])
        if v[k] is not None and not Path(v[k]).is_file():
            raise FieldError((*path, k), f"no such file {v[k]!r}")
    if v["manifest"] is not None and v["trace"] is None:
        raise FieldError((*path, "manifest"), "a manifest goes with a trace: give trace too")
    return TrafficSpec(**v)


def parse_measure_section(d: Any) -> MeasureSpec:
    path: Path_ = ("measure",)
    if not isinstance(d, dict):
        raise FieldError(path, "must be a table")
    _take(d, path, _MEASURE_KEYS)
    v = {k: _typed(d, path, k, t, getattr(MeasureSpec, k)) for k, t in _MEASURE_KEYS.items()}
    pct = tuple(v["percentiles"])
    for i, q in enumerate(pct):
        if not _is_num(q) or not 0 < q <= 100:
            raise FieldError((*path, "percentiles", i), f"{q!r}: a percentile is a number in (0, 100]")
    if not 1 <= v["digits"] <= 5:
        raise FieldError((*path, "digits"), f"{v['digits']}: significant digits 1-5 (HDR histogram)")
    if v["latency_max_ns"] < 2:
        raise FieldError((*path, "latency_max_ns"), f"{v['latency_max_ns']}: must be >= 2")
    return MeasureSpec(latency=v["latency"], percentiles=tuple(float(q) for q in pct),
                       latency_max_ns=v["latency_max_ns"], digits=v["digits"], per_port=v["per_port"])


def parse_policy_section(d: Any) -> dict[str, dict[str, Any]]:
    """``[policy.QUEUE]`` tables, passed through to the kind as they are (it says what it supports)."""
    if not isinstance(d, dict):
        raise FieldError(("policy",), "must be a table of [policy.QUEUE] tables")
    for name, t in d.items():
        if not isinstance(t, dict):
            raise FieldError(("policy", name), f"expected a table (e.g. qdisc = \"fq_codel\"), got {t!r}")
    return copy.deepcopy(d)


def _option(m: re.Match[str]) -> str:
    return m.group(1).replace("-", "_")


def gen_spec(topology: TopologySpec, traffic: TrafficSpec, seed: int) -> Any:
    """The generator's `GenSpec` for a point; FieldError at the key the generator refused."""
    from bench.gen import parse_rate, parse_time
    from bench.tracegen import NS, GenSpec, parse_sizes
    t = traffic

    def at(key: str, fn: Any) -> Any:
        try:
            return fn()
        except ValueError as e:
            raise FieldError(("traffic", key), re.sub(r"--([a-z][a-z-]*)", _option, str(e))) from None
    pps = bps = None
    if t.gbps is not None:
        bps = at("gbps", lambda: parse_rate(t.gbps or "", "gbps") * 10**9)
    elif t.mbps is not None:
        bps = at("mbps", lambda: parse_rate(t.mbps or "", "mbps") * 10**6)
    else:
        pps = at("pps", lambda: parse_rate(t.pps if t.pps is not None else "100000", "pps"))
    duration = None if t.frames is not None else at("duration", lambda: parse_time(t.duration or "1", "duration"))
    bg = {}
    for k in ("arp_pps", "bcast_pps"):
        val = at(k, lambda k=k: Fraction(getattr(t, k)))
        if val < 0:
            raise FieldError(("traffic", k), f"{val}: must be >= 0")
        bg[k] = val
    spec = GenSpec(guests=topology.guests, vlans=topology.vlans, tagged_guests=topology.tagged_guests,
                   wire_hosts=topology.wire_hosts, flows=t.flows, east_west=t.east_west, inbound=t.inbound,
                   tcp=t.tcp, sizes=at("size", lambda: parse_sizes(t.size)), pps=pps, bps=bps, count=t.count,
                   duration_ns=duration, frames=t.frames, pattern=t.pattern,
                   on_ns=at("on", lambda: parse_time(t.on, "on")), off_ns=at("off", lambda: parse_time(t.off, "off")),
                   seed=seed, start_ns=1_700_000_000 * NS, announce=t.announce, **bg)
    try:
        spec.check()
    except ValueError as e:
        msg = re.sub(r"--([a-z][a-z-]*)", _option, str(e))
        m = re.search(r"--([a-z][a-z-]*)", str(e))
        key = m.group(1).replace("-", "_") if m else ""
        section = "topology" if key in ("guests", "vlans", "wire_hosts", "tagged_guests") else "traffic"
        raise FieldError((section, key) if key else (section,), msg) from None
    return spec


# -- the whole file ----------------------------------------------------------------------------------

def set_dotted(doc: dict[str, Any], dotted_path: str, value: Any) -> None:
    parts = dotted_path.split(".")
    d = doc
    for p in parts[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise FieldError(tuple(parts), f"{p!r} is not a table")
        d = nxt
    d[parts[-1]] = value


def point_key(kind: str, params: dict[str, Any], seed: int) -> str:
    blob = json.dumps({"kind": kind, "params": params, "seed": seed}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sections(doc: dict[str, Any], base: Path) -> tuple[TopologySpec, TrafficSpec, dict[str, Any], MeasureSpec]:
    return (parse_topology_section(doc.get("topology", {}), base),
            parse_traffic_section(doc.get("traffic", {}), base),
            parse_policy_section(doc.get("policy", {})),
            parse_measure_section(doc.get("measure", {})))


def params_of(topo: TopologySpec, traffic: TrafficSpec, policy: dict[str, Any], measure: MeasureSpec
              ) -> dict[str, Any]:
    """A point's parameters as plain data (what a point runner gets)."""
    from dataclasses import asdict
    t = asdict(topo)
    t["vlans"] = list(topo.vlans)
    m = asdict(measure)
    m["percentiles"] = list(measure.percentiles)
    return {"topology": t, "traffic": asdict(traffic), "policy": policy, "measure": m}


def spec_from_params(params: dict[str, Any]) -> tuple[TopologySpec, TrafficSpec, MeasureSpec]:
    """The typed sections back from a point's parameters (in a point runner)."""
    t = dict(params["topology"])
    nic = NicSpec(**t.pop("nic")) if t.get("nic") else None
    topo = TopologySpec(**{**t, "vlans": tuple(t["vlans"]), "nic": nic})
    m = dict(params["measure"])
    return topo, TrafficSpec(**params["traffic"]), MeasureSpec(**{**m, "percentiles": tuple(m["percentiles"])})


class _Locator:
    def __init__(self, path: Path, lines: KeyLines) -> None:
        self.path = path
        self.lines = lines

    def error(self, fpath: Path_, msg: str, at: Path_ | None = None, note: str = "") -> ExperimentError:
        line = self.lines.line(at if at is not None else fpath)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ExperimentError(f"{where}: {dotted(fpath) or '(top level)'}: {msg}{note}")


def _parse_plot(i: int, d: Any) -> PlotSpec:
    path: Path_ = ("plot", i)
    if not isinstance(d, dict):
        raise FieldError(path, "must be a table ([[plot]])")
    _take(d, path, _PLOT_KEYS)
    for k in ("type", "file"):
        if k not in d:
            raise FieldError((*path, k), "missing: every plot names its type and its file")
    v: dict[str, Any] = {}
    for k, t in _PLOT_KEYS.items():
        if k == "y":
            continue
        v[k] = _typed(d, path, k, t, getattr(PlotSpec, k, None))
    y = d.get("y", [])
    y = [y] if isinstance(y, str) else y
    if not isinstance(y, list) or not all(isinstance(s, str) for s in y):
        raise FieldError((*path, "y"), f"a column name or an array of them, got {d.get('y')!r}")
    if v["type"] not in PLOT_TYPES:
        raise FieldError((*path, "type"), f"{v['type']!r}: use one of {', '.join(PLOT_TYPES)}")
    need = {"line": ("x", "y"), "bar": ("x", "y"), "heatmap": ("x", "y", "z"), "cdf": ()}[v["type"]]
    for k in need:
        if not (y if k == "y" else v[k]):
            raise FieldError((*path, k), f"missing: a {v['type']} plot needs {', '.join(need)}")
    if v["type"] == "heatmap" and len(y) != 1:
        raise FieldError((*path, "y"), "a heat map has one y (the second axis)")
    f = v["file"]
    if "/" in f or f.startswith(".") or not f.endswith((".png", ".svg", ".pdf")):
        raise FieldError((*path, "file"), f"{f!r}: a file name in the output directory ending .png, .svg or .pdf")
    return PlotSpec(**{**v, "y": tuple(y)})


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ExperimentError(f"{path}: cannot read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ExperimentError(f"{path}:{line}: not UTF-8 (TOML must be)") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        where = f"{path}:{m.group(1)}" if m else str(path)
        raise ExperimentError(f"{where}: not valid TOML: {msg}" + (f" (column {m.group(2)})" if m else "")) from None
    loc = _Locator(path, KeyLines(text))
    try:
        return _build(path, doc, loc)
    except FieldError as e:
        raise loc.error(e.path, e.msg) from None


def _build(path: Path, doc: dict[str, Any], loc: _Locator) -> Experiment:
    from bench.experiments.kinds import check_kind
    base = path.resolve().parent
    _take(doc, (), dict.fromkeys(SECTIONS))
    exp = doc.get("experiment", {})
    if not isinstance(exp, dict):
        raise FieldError(("experiment",), "must be a table")
    _take(exp, ("experiment",), _EXPERIMENT_KEYS)
    name = _typed(exp, ("experiment",), "name", "str", path.stem)
    description = _typed(exp, ("experiment",), "description", "str", "")
    kind = _typed(exp, ("experiment",), "kind", "str", "replay")
    first = _typed(exp, ("experiment",), "seed", "int", 1)
    seeds_v = exp.get("seeds", 1)
    if isinstance(seeds_v, int) and not isinstance(seeds_v, bool):
        if not 1 <= seeds_v <= 10_000:
            raise FieldError(("experiment", "seeds"), f"{seeds_v}: seeds per point, 1-10000 (or a list of seeds)")
        seeds = tuple(range(first, first + seeds_v))
    elif isinstance(seeds_v, list) and seeds_v and all(isinstance(s, int) and not isinstance(s, bool)
                                                       for s in seeds_v):
        if len(set(seeds_v)) != len(seeds_v):
            raise FieldError(("experiment", "seeds"), "a seed is listed twice")
        seeds = tuple(seeds_v)
    else:
        raise FieldError(("experiment", "seeds"), f"a count of seeds or a non-empty array of integers, "
                         f"got {seeds_v!r}")
    try:
        check_kind(kind)
    except KeyError as e:
        raise FieldError(("experiment", "kind"), str(e.args[0])) from None
    topo, traffic, policy, measure = _sections(doc, base)
    plots_raw = doc.get("plot", [])
    if not isinstance(plots_raw, list):
        raise FieldError(("plot",), "write plots as [[plot]] tables")
    plots = tuple(_parse_plot(i, p) for i, p in enumerate(plots_raw))
    files = [p.file for p in plots]
    for i, f in enumerate(files):
        if files.index(f) != i:
            raise FieldError(("plot", i, "file"), f"{f!r}: another plot writes that file")

    # the sweep: a list of assignments (dotted path -> value), each with where it was written
    sweep = doc.get("sweep", {})
    if not isinstance(sweep, dict):
        raise FieldError(("sweep",), "must be a table")
    _take(sweep, ("sweep",), {"axes": None, "point": None})
    assignments: list[list[tuple[str, Any, Path_]]] = []
    axes_order: list[str] = []
    if "axes" in sweep and "point" in sweep:
        raise FieldError(("sweep", "point"), "give [sweep.axes] (their product) or [[sweep.point]] (a list), "
                         "not both")
    if "axes" in sweep:
        axes = sweep["axes"]
        if not isinstance(axes, dict) or not axes:
            raise FieldError(("sweep", "axes"), "a table of dotted paths, each an array of values")
        cols = []
        for axis, values in axes.items():
            _check_axis_path(("sweep", "axes", axis), axis)
            if not isinstance(values, list) or not values:
                raise FieldError(("sweep", "axes", axis), f"a non-empty array of values, got {values!r}")
            cols.append([(axis, v, ("sweep", "axes", axis, j)) for j, v in enumerate(values)])
            axes_order.append(axis)
        n = 1
        for c in cols:
            n *= len(c)
        if n * len(seeds) > MAX_POINTS:
            raise FieldError(("sweep", "axes"), f"{n} points x {len(seeds)} seeds: at most {MAX_POINTS} runs")
        assignments = [list(combo) for combo in itertools.product(*cols)]
    elif "point" in sweep:
        pts = sweep["point"]
        if not isinstance(pts, list) or not pts:
            raise FieldError(("sweep", "point"), "write points as [[sweep.point]] tables")
        for i, pt in enumerate(pts):
            if not isinstance(pt, dict) or not pt:
                raise FieldError(("sweep", "point", i), "a table of dotted paths and their values")
            row: list[tuple[str, Any, Path_]] = []
            for axis, v in _flatten(pt):
                _check_axis_path(("sweep", "point", i, axis), axis)
                row.append((axis, v, ("sweep", "point", i, axis)))
                if axis not in axes_order:
                    axes_order.append(axis)
            assignments.append(row)
    else:
        assignments = [[]]

    points: list[Point] = []
    keys: dict[str, int] = {}
    for index, assign in enumerate(assignments):
        pdoc = {k: copy.deepcopy(doc.get(k, {})) for k in SWEEPABLE + ("measure",)}
        for axis, v, where in assign:
            try:
                set_dotted(pdoc, axis, v)
            except FieldError as e:
                raise loc.error(where[:-1] if isinstance(where[-1], int) else where, e.msg) from None
        try:
            ptopo, ptraffic, ppolicy, pmeasure = _sections(pdoc, base)
            if ptopo.file is None:
                gen_spec(ptopo, ptraffic, seeds[0]) if ptraffic.trace is None else None
            params = params_of(ptopo, ptraffic, ppolicy, pmeasure)
            from bench.experiments.kinds import check_params
            check_params(kind, params)
        except FieldError as e:
            raise _point_error(loc, e, assign, index) from None
        axes_vals = {axis: v for axis, v, _ in assign}
        for seed in seeds:
            key = point_key(kind, params, seed)
            if key in keys:
                raise _point_error(loc, FieldError(("sweep",), f"the same point as point {keys[key]} "
                                                               "(a sweep lists it twice)"), assign, index)
            keys[key] = index
            points.append(Point(index, seed, axes_vals, params, key))
    exp_obj = Experiment(path=path, name=name, description=description, kind=kind, seeds=seeds, topology=topo,
                         traffic=traffic, policy=policy, measure=measure, axes=tuple(axes_order),
                         points=tuple(points), plots=plots, doc=doc)
    _check_plots(exp_obj)
    return exp_obj


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"topology": {"nic": {"rx_ring": 64}}}`` or ``{"topology.nic.rx_ring": 64}`` -> dotted pairs.
    A point sets a policy's whole table when it gives a table under ``policy.QUEUE``."""
    out = []
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v and not (name.startswith("policy.") and name.count(".") >= 1):
            out.extend(_flatten(v, name + "."))
        else:
            out.append((name, v))
    return out


def _check_axis_path(where: Path_, name: str) -> None:
    parts = name.split(".")
    if parts[0] not in SWEEPABLE or len(parts) < 2 or not all(parts):
        raise FieldError(where, f"a sweep sets a field by its dotted path under {', '.join(SWEEPABLE)} "
                         "(e.g. \"topology.nic.rx_ring\")")


def _point_error(loc: _Locator, e: FieldError, assign: list[tuple[str, Any, Path_]], index: int
                 ) -> ExperimentError:
    """An error in a point: at the axis or point that set the field, else at the base file's key."""
    err = ".".join(str(p) for p in e.path)
    at = None
    for name, _, where in assign:
        if err == name or err.startswith(name + ".") or name.startswith(err + ".") or err == name.split(".")[0]:
            at = where
            break
    given = ", ".join(f"{n} = {json.dumps(v)}" for n, v, _ in assign)
    note = f" (point {index}: {given})" if assign else ""
    return loc.error(e.path, e.msg, at=at, note=note)


def _check_plots(exp: Experiment) -> None:
    from bench.experiments.kinds import is_metric

    def known(col: str) -> bool:
        return col in exp.axes or is_metric(exp.kind, exp.measure, col)
    for i, p in enumerate(exp.plots):
        for k in ("x", "z"):
            col = getattr(p, k)
            if col is not None and not known(col):
                raise FieldError(("plot", i, k), f"{col!r}: not a sweep axis or a metric of kind {exp.kind!r} "
                                 f"(axes: {', '.join(exp.axes) or 'none'}; metrics: see docs/experiments.md)")
        for col in p.y:
            if not known(col):
                raise FieldError(("plot", i, "y"), f"{col!r}: not a sweep axis or a metric of kind {exp.kind!r} "
                                 f"(axes: {', '.join(exp.axes) or 'none'})")
