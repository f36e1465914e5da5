"""The factory: policies from their names and parameters, refused with a clear error; one declaration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from policy_frames import ipv4

from vswitch.core.policies import KINDS, ParamError, build_policer, build_scheduler, describe
from vswitch.core.policies.params import format_value, parse_rate, parse_size, parse_time
from vswitch.core.queues import Queue
from vswitch.core.scheduler import Scheduler

ROOT = Path(__file__).resolve().parents[3]

# What each kind needs beyond its defaults to be built at all.
REQUIRED = {
    "tbf": {"rate": "10mbit", "burst": "10kb", "latency": "50ms"},
    "htb": {"classes": [{"name": "root", "rate": "100mbit"}, {"name": "a", "parent": "root", "rate": "10mbit"}],
            "default": "a"},
    "red": {"limit": 400_000},
}


@pytest.mark.parametrize("text, bits", [("100mbit", 100_000_000), ("1gbit", 10**9), ("10kbps", 80_000),
                                        ("1.5mbit", 1_500_000), ("8bit", 8), ("1Mibit", 1 << 20),
                                        (1_000_000, 1_000_000)])
def test_rates_read_as_tc_writes_them(text, bits):
    assert parse_rate(text) == bits


@pytest.mark.parametrize("text, nbytes", [("1514", 1514), ("10kb", 10240), ("10k", 10240), ("1mb", 1 << 20),
                                          ("32kbit", 4096), (1500, 1500)])
def test_sizes_read_as_tc_writes_them(text, nbytes):
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text, ns", [("5ms", 5_000_000), ("100us", 100_000), ("1s", 10**9), ("250ns", 250),
                                      ("1.5ms", 1_500_000), (7, 7)])
def test_times_read_in_ns(text, ns):
    assert parse_time(text) == ns


@pytest.mark.parametrize("kind, params, words", [
    ("fq_codel", {"target": "5000"}, ["fq_codel", "target", "5000", "unit"]),     # tc would read us: refused
    ("tbf", {"rate": "100", "burst": 1000, "limit": 1000}, ["tbf", "rate", "unit"]),
    ("fq_codel", {"flows": 0}, ["fq_codel", "flows 0", "1 to 65536"]),
    ("fq_codel", {"quantun": 1514}, ["fq_codel", "unknown parameter", "'quantun'", "quantum"]),
    ("fq_codel", {"ecn": "maybe"}, ["fq_codel", "ecn", "on/off"]),
    ("fq_codel", {"target": "5 parsecs"}, ["fq_codel", "target", "unknown unit"]),
    ("tbf", {"rate": "10mbit", "burst": "10kb"}, ["tbf", "limit or latency"]),
    ("tbf", {"burst": "10kb", "limit": 100}, ["tbf", "rate is required"]),
    ("tbf", {"rate": "10mbit", "burst": "10kb", "limit": 10_000, "peakrate": "5mbit", "mtu": 1514},
     ["tbf", "peakrate", "greater than rate"]),
    ("tbf", {"rate": "10mbit", "burst": "10kb", "limit": 10_000, "peakrate": "50mbit"}, ["tbf", "mtu"]),
    ("drr", {"weights": "3,x"}, ["drr", "weights"]),
    ("drr", {"weights": "3,0"}, ["drr", "weights", "each must be"]),
    ("drr", {"classify": "colour"}, ["drr", "classify", "use one of"]),
    ("drr", {"map": "1:5"}, ["drr", "map 1:5", "0-1"]),
    ("drr", {"limit": None, "limit_bytes": None}, ["drr", "limit"]),
    ("prio", {"bands": 2}, ["prio", "bands 2", "priomap"]),
    ("red", {"limit": 1000, "max": 2000}, ["red", "max 2000", "limit"]),
    ("red", {"limit": 400_000, "max": 90_000, "min": 90_000}, ["red", "min", "below max"]),
    ("red", {"limit": 400_000, "max": 90_000, "probability": 2}, ["red", "probability 2", "0 to 1"]),
    ("htb", {"classes": [{"name": "a", "rate": "1mbit", "ceil": "100kbit"}]}, ["htb", "ceil", "below rate"]),
    ("htb", {"classes": [{"name": "a", "parent": "nope", "rate": "1mbit"}]}, ["htb", "no parent class 'nope'"]),
    ("htb", {"classes": [{"name": "a", "rate": "1mbit", "colour": 1}]}, ["htb", "class 'a'", "unknown parameter"]),
    ("htb", {"classes": [{"name": "a", "rate": "1mbit"}], "default": "b"}, ["htb", "default 'b'", "not a leaf"]),
    ("cbq", {}, ["unknown qdisc kind", "'cbq'", "fq_codel"]),
])
def test_a_bad_parameter_is_refused_naming_the_kind_the_parameter_and_the_value(kind, params, words):
    with pytest.raises(ValueError) as e:
        build_scheduler(kind, **params)
    assert isinstance(e.value, ParamError)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


# Config keys that are not the parameter's name, and defaults config shows resolved.
ALIAS: dict[tuple[str, str], str] = {}
# Defaults of "none" that the policy resolves (and config shows resolved): prio's Linux priomap,
# tbf's limit from latency, RED's min, burst and EWMA weight as tc derives them.
RESOLVED = {("prio", "map"), ("tbf", "limit"), ("red", "min"), ("red", "max"), ("red", "burst"), ("red", "ewma_log")}


def test_every_kind_builds_with_its_defaults_and_reports_them_in_its_config():
    """One declaration: what the spec says a default is, is what the built policy runs with."""
    for name, kind in KINDS.items():
        s = build_scheduler(name, **REQUIRED.get(name, {}))
        assert isinstance(s, Scheduler) and name == s.KIND
        cfg = s.config()
        for p in kind.params:
            if p.name in REQUIRED.get(name, {}) or p.required or (name, p.name) in RESOLVED:
                continue
            key = ALIAS.get((name, p.name), p.name)
            if p.default is None and key not in cfg:
                continue                        # not set, and config leaves it out
            assert cfg[key] == p.default, (name, p.name, cfg.get(key), p.default)


def test_constructors_default_to_the_declared_defaults():
    from vswitch.core.policies import CoDel, FqCodel, PfifoFast
    for cls in (CoDel, FqCodel, PfifoFast):
        built = build_scheduler(cls.KIND).config()
        assert cls().config() == built, cls.KIND


def test_text_and_values_build_the_same_policy():
    a = build_scheduler("fq_codel", target="2ms", interval="50ms", quantum="3028", ecn="off", memory_limit="4mb")
    b = build_scheduler("fq_codel", target=2_000_000, interval=50_000_000, quantum=3028, ecn=False,
                        memory_limit=4 << 20)
    assert a.config() == b.config()
    assert a.config()["target"] == 2_000_000 and a.config()["ecn"] is False


def test_a_built_policy_runs_in_a_queue_and_the_snapshot_shows_tc_figures():
    q = Queue("q", build_scheduler("drr", weights="1,1", quantum=1514))
    q.push("in", [ipv4(in_port=1), ipv4(in_port=2)], 0)
    snap = q.snapshot()
    assert snap["scheduler"]["kind"] == "drr" and snap["scheduler"]["weights"] == [1, 1]
    assert snap["scheduler"]["per_class"]["0"]["backlog_packets"] == 1
    assert snap["backlog_packets"] == 2


def test_the_policer_is_built_and_refused_the_same_way():
    p = build_policer("pol", cir="1mbit", cbs="2kb", ebs="4kb")
    assert p.config()["cbs"] == 2048
    with pytest.raises(ParamError, match="policer: pir and pbs"):
        build_policer("pol", mode="trtcm", cir="1mbit", cbs=1000)
    with pytest.raises(ParamError, match="policer: cir is required"):
        build_policer("pol", cbs=1000)


def test_describe_gives_every_parameter_with_type_unit_default_and_range():
    d = describe()
    assert set(d) == {*KINDS, "policer"}
    fq = {p["name"]: p for p in d["fq_codel"]["params"]}
    assert fq["limit"]["default"] == 10240 and fq["limit"]["unit"] == "packets"
    assert fq["flows"]["default"] == 1024 and fq["quantum"]["default"] == 1514
    assert fq["target"]["default"] == 5_000_000 and fq["target"]["unit"] == "ns"
    assert fq["interval"]["default"] == 100_000_000 and fq["drop_batch"]["default"] == 64
    assert fq["memory_limit"]["default"] == 32 << 20 and fq["ecn"]["default"] is True
    assert d["tbf"]["work_conserving"] is False and d["drr"]["work_conserving"] is True
    assert {p["name"] for p in d["tbf"]["params"]} == {"rate", "burst", "limit", "latency", "peakrate", "mtu"}
    assert d["htb"]["params"][0]["fields"][0]["name"] == "name"


def test_docs_describe_every_kind_and_every_parameter_with_its_default():
    """docs/policies.md stays true: a section per kind, each parameter in its table with the
    declared default (as format_value writes it)."""
    text = (ROOT / "docs" / "policies.md").read_text()
    for name, kind in [*KINDS.items(), ("policer", None)]:
        m = re.search(rf"^## .*`{re.escape(name)}`.*$", text, re.M)
        assert m, f"docs/policies.md: no section for {name}"
        section = text[m.end():]
        nxt = re.search(r"^## ", section, re.M)
        section = section[: nxt.start()] if nxt else section
        params = kind.params if kind is not None else describe_policer()
        for p in params:
            row = re.search(rf"^\| `{re.escape(p.name)}` \|.*$", section, re.M)
            assert row, f"docs/policies.md [{name}]: no row for {p.name}"
            default = "required" if p.required else format_value(p, p.default)
            assert f"| {default} |" in row.group(0), f"docs/policies.md [{name}] {p.name}: default {default}"


def describe_policer():
    from vswitch.core.policies import Policer
    return Policer.PARAMS
