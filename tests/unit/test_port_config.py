"""A port's settings are declared once (vswitch/port_config.py): every consumer follows the declaration.

Each declared setting round-trips through the TOML loader and the saved file, through set-port's
``key=value`` strings on a running LiveSwitch (attach ports whose interfaces do not exist: no
root needed; netns, which needs a TAP, is driven in tests/netns/test_port_settings.py), appears
in ``show``, and has a vswitchctl add-port option.  A setting declared not to change at run time
is refused by set-port.  A field cannot be added without its declaration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from vswitch.control.protocol import ControlError, encode
from vswitch.control.server import ControlServer, coerce
from vswitch.elements.learning_switch import SwitchPort
from vswitch.port_config import CONFIG_FILE_ONLY, PORT_SETTINGS, RUNTIME_SETTINGS, VF_SETTINGS, PortConfig
from vswitch.schema import ConfigError, declared, setting
from vswitch.topology import load_topology, parse_topology, save_topology

ROOT = Path(__file__).resolve().parents[2]
# Settings an example needs beside it to be valid (vlan_mode native-tagged takes a native VLAN).
# A VF's settings belong to a port on a VF, in an SR-IOV topology.
# A guest's NIC queue policies (rx_qdisc, tx_qdisc) belong to a port behind the NIC: a VF's, here.
NIC_QUEUE_KEYS = ("rx_qdisc", "tx_qdisc")
COMPANIONS: dict[str, dict[str, Any]] = {"vlan_mode": {"tag": 10},
                                         "ingress_policing_burst": {"ingress_policing_rate": 10000},
                                         **{k: {"vf": 0} for k in (*VF_SETTINGS, *NIC_QUEUE_KEYS)},
                                         "qmp": {"vf": 0, "type": "attach"}}
SRIOV_NIC = {"mode": "sriov", "numvfs": 4, "uplink": "up0"}
UPLINK = {"name": "up0", "type": "attach"}
# No driver of the model takes a minimum TX rate (ixgbe, igb: "must be 0"): its example is refused.
REFUSED_BY_THE_PF = {"vf_min_tx_rate": "min_tx_rate 100 Mb/s: not supported by ixgbe, must be 0"}


def example(key: str) -> dict[str, Any]:
    return {**COMPANIONS.get(key, {}), key: PORT_SETTINGS[key].example}


def doc_with(port: dict[str, Any]) -> dict[str, Any]:
    """A topology holding ``port`` first: with an SR-IOV NIC and its uplink if it is on a VF."""
    if "vf" in port:
        return {"nic": SRIOV_NIC, "port": [port, UPLINK]}
    return {"port": [port]}


def as_text(v: Any) -> str:
    """A value as a user types it after ``key=`` on the command line."""
    return str(v).lower() if isinstance(v, bool) else str(v)


# -- the declaration itself ------------------------------------------------------------------------

def test_every_field_of_portconfig_is_a_declared_setting_with_help_and_an_example():
    fields = [f.name for f in dataclasses.fields(PortConfig)]
    assert fields == list(PORT_SETTINGS)
    for key, s in PORT_SETTINGS.items():
        assert s.help.strip(), key
        if not s.required:
            assert s.example is not None and s.example != s.default, f"{key}: declare an example value"
    assert set(RUNTIME_SETTINGS) == set(PORT_SETTINGS) - {"name", "type", "number", "vf", "qmp", "vf_cpus"}


def test_a_field_without_a_declaration_cannot_be_defined():
    with pytest.raises(TypeError, match=r"Extra\.colour: every field of a declared config class is made with"):
        @declared
        class Extra(PortConfig):
            colour: str = "red"
    with pytest.raises(TypeError, match=r"Plain\.size"):
        @declared
        class Plain:
            size: int = dataclasses.field(default=1)

    @declared
    class Fine:
        size: int = setting(default=1, help="a size", runtime=True)
    assert Fine().size == 1 and Fine.__settings__["size"].runtime  # type: ignore[attr-defined]


def test_the_switch_element_holds_exactly_the_settings_declared_to_apply_to_it():
    """SwitchPort (a plain compiled dataclass in vswitch/elements) has a field for each setting
    declared ``applies=switch``, plus number, name and the VLAN built from vlan_mode/tag/trunks."""
    switch = {f.name for f in dataclasses.fields(SwitchPort)} - {"number", "name", "vlan"}
    assert switch == {k for k, s in PORT_SETTINGS.items() if "switch" in s.applies}
    assert {k for k, s in PORT_SETTINGS.items() if "vlan" in s.applies} == {"vlan_mode", "tag", "trunks"}
    for key in switch:
        cfg = PortConfig(name="p1", **example(key))
        assert getattr(cfg.switch_port(3), key) == PORT_SETTINGS[key].example, key


def test_docs_config_md_names_every_port_setting():
    text = (ROOT / "docs" / "config.md").read_text()
    section = text[text.index("[[port]]"):text.index("[[fdb]]")]
    missing = [k for k in PORT_SETTINGS if not re.search(rf"\b{k}\b", section)]
    assert not missing, f"docs/config.md's [[port]] example does not describe {missing}"


# -- TOML: load -> save -> load --------------------------------------------------------------------

@pytest.mark.parametrize("key", [k for k in PORT_SETTINGS if k != "name"])
def test_every_setting_round_trips_through_the_file(tmp_path, key):
    import tomli_w
    port = {"name": "vm1", **example(key)}
    path = tmp_path / "in.toml"
    path.write_text(tomli_w.dumps(doc_with(port)))
    if key in REFUSED_BY_THE_PF:
        with pytest.raises(ConfigError, match=re.escape(f"port[0] ('vm1'): vf 0: {REFUSED_BY_THE_PF[key]}")):
            load_topology(path)
        return
    topo = load_topology(path)
    assert getattr(topo.ports[0], key) == PORT_SETTINGS[key].example
    save_topology(topo, tmp_path / "saved.toml")
    assert f"{key} = " in (tmp_path / "saved.toml").read_text()
    again = load_topology(tmp_path / "saved.toml")
    assert again == topo and getattr(again.ports[0], key) == PORT_SETTINGS[key].example


def test_trunks_as_a_toml_array_is_saved_as_the_list_text(tmp_path):
    path = tmp_path / "in.toml"
    path.write_text('[[port]]\nname = "vm1"\ntrunks = [10, 20]\n')
    topo = load_topology(path)
    assert topo.ports[0].trunks == "10,20"
    save_topology(topo, tmp_path / "saved.toml")
    assert load_topology(tmp_path / "saved.toml") == topo


# -- set-port key=value, and show -------------------------------------------------------------------

@pytest.mark.parametrize("key", list(PORT_SETTINGS))
def test_every_setting_is_coerced_from_its_command_line_text(key):
    s = PORT_SETTINGS[key]
    value = s.example
    assert coerce(key, as_text(value)) == value
    if s.optional:                               # none clears what may be absent
        assert coerce(key, "none") is None and coerce(key, "None") is None
    assert coerce(key, value) == value           # a JSON value is passed on as it is


@pytest.mark.parametrize("key", ["mtu", "learning"])
def test_none_is_not_a_number_or_a_truth_value(key):
    with pytest.raises(ControlError, match=rf"^{key}=none: expected "):
        coerce(key, "none")


@pytest.mark.parametrize("key", ["mac_limit_policy", "type"])
def test_none_is_a_word_for_a_choice_that_cannot_be_absent_and_the_loader_refuses_it(key):
    assert coerce(key, "none") == "none"
    with pytest.raises(ConfigError, match=rf"^lab\.toml: port\[0\] \('a'\): {key} 'none': use one of "):
        parse_topology({"port": [{"name": "a", key: "none"}]}, "lab.toml")


class Running:
    """A LiveSwitch with attach ports (interfaces that do not exist: they wait, pending) and its
    control dispatcher, saving its config as vswitchd does."""

    def __init__(self, tmp_path: Path, sriov: bool = False) -> None:
        from vswitch.drivers.live import LiveSwitch
        self.prefix = "vsu" + secrets.token_hex(3)
        self.config = tmp_path / "sw.toml"
        self.config.write_text(f'[[port]]\nname = "{self.prefix}a"\ntype = "attach"\n')
        if sriov:        # the port is a guest on VF 0; the uplink is port 2
            self.config.write_text(f'[nic]\nmode = "sriov"\nnumvfs = 4\nuplink = "{self.prefix}u"\n\n'
                                   f'[[port]]\nname = "{self.prefix}a"\ntype = "attach"\nvf = 0\n\n'
                                   f'[[port]]\nname = "{self.prefix}u"\ntype = "attach"\n')
        self.loop = asyncio.new_event_loop()
        self.sw = LiveSwitch(load_topology(self.config))
        self.server = ControlServer(self.sw, str(tmp_path / "unused.sock"))
        self.loop.run_until_complete(self.sw.start(on_change=lambda: save_topology(self.sw.topo, self.config)))

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        return self.loop.run_until_complete(self.server.handle(encode({"cmd": cmd, "args": args})))

    def port(self, name: str) -> dict[str, Any]:
        reply = self.call("show")
        assert reply["ok"], reply
        return next(p for p in reply["result"]["ports"] if p["name"] == name)

    def close(self) -> None:
        self.loop.run_until_complete(self.sw.close())
        self.loop.close()


@pytest.fixture
def running(tmp_path):
    r = Running(tmp_path)
    yield r
    r.close()


@pytest.fixture
def running_sriov(tmp_path):
    r = Running(tmp_path, sriov=True)
    yield r
    r.close()


def test_show_lists_every_declared_setting_with_its_value(running):
    p = running.port(running.prefix + "a")
    for key, s in PORT_SETTINGS.items():
        assert key in p and (p[key] == s.default or key in ("name", "type", "number")), key
    assert p["mtu"] == 1500 and p["learning"] is True and p["tag"] is None and p["type"] == "attach"


@pytest.mark.parametrize("key", [k for k in RUNTIME_SETTINGS if k != "netns" and k not in REFUSED_BY_THE_PF])
def test_every_run_time_setting_changes_through_set_port_text_shows_and_is_saved(request, key):
    """vswitchctl set-port NAME key=value (the text as typed): show has it, the switch element has
    it (where it applies there), a VF has it (a VF's setting, on a port on a VF), the saved file
    has it, and a restart from that file has it."""
    from vswitch.cli import render_show
    running = request.getfixturevalue("running_sriov" if key in (*VF_SETTINGS, *NIC_QUEUE_KEYS) else "running")
    name = running.prefix + "a"
    want = PORT_SETTINGS[key].example
    changes = {k: as_text(v) for k, v in example(key).items()}
    reply = running.call("set-port", name=name, changes=changes)
    assert reply["ok"], reply
    assert running.port(name)[key] == want
    if "switch" in PORT_SETTINGS[key].applies:
        assert getattr(running.sw.dp.switch.ports[1], key) == want
    if "vlan" in PORT_SETTINGS[key].applies:
        assert running.sw.dp.switch.ports[1].vlan == PortConfig(name=name, **example(key)).vlan()
    if key in VF_SETTINGS:
        info = running.sw.dp.nic.pf.vf(0).vf_info()
        word = {"vf_state": "link_state", "vf_trust": "trust"}.get(key, key[3:])
        assert info[word] == want, info
    assert getattr(load_topology(running.config).ports[0], key) == want
    console = Console(width=400, record=True, file=io.StringIO())
    console.print(*render_show(running.call("show")["result"]))
    rendered = console.export_text()
    shown = (str(want) if key in ("vlan_mode", "tag", "trunks") else (key if want else f"no-{key}")
             if isinstance(want, bool) else f"{key} {want}")
    assert shown in rendered, rendered


@pytest.mark.parametrize("key, text", [("name", "other"), ("type", "tap"), ("number", "9")])
def test_a_setting_declared_not_to_change_at_run_time_is_refused_by_set_port(running, key, text):
    name = running.prefix + "a"
    before = (running.call("show")["result"]["ports"], running.config.read_bytes(),
              running.sw.dp.switch.ports[1].describe())
    reply = running.call("set-port", name=name, changes={key: text, "mtu": "9000"})
    assert reply == {"ok": False, "error": f"port {name!r}: {key} cannot change at run time: "
                                            "delete the port and add it again"}
    after = (running.call("show")["result"]["ports"], running.config.read_bytes(),
             running.sw.dp.switch.ports[1].describe())
    assert after == before
    # Its own value again is no change, and is taken.
    same = {"name": name, "type": "attach", "number": "1"}[key]
    assert running.call("set-port", name=name, changes={key: same})["ok"]


def test_set_port_names_the_keys_it_takes_when_one_is_unknown(running):
    reply = running.call("set-port", name=running.prefix + "a", changes={"colour": "red"})
    assert reply["ok"] is False and reply["error"].startswith("unknown port setting 'colour' (settable: ")
    for key in RUNTIME_SETTINGS:
        assert key in reply["error"]


# -- vswitchctl add-port ---------------------------------------------------------------------------

def _add_port_args(argv: list[str]) -> dict[str, Any]:
    from vswitch.cli import build_parser
    args = build_parser().parse_args(["add-port", *argv])
    return {k: getattr(args, k) for k in PORT_SETTINGS if getattr(args, k, None) is not None}


def _option(key: str) -> list[str]:
    """The add-port option for ``key`` as found in the parser (not as the declaration names it)."""
    from vswitch.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "cmd")
    add = sub.choices["add-port"]  # type: ignore[attr-defined]
    action = next(a for a in add._actions if a.dest == key)
    return list(action.option_strings)


@pytest.mark.parametrize("key", [k for k in PORT_SETTINGS if k != "name" and k not in CONFIG_FILE_ONLY])
def test_add_port_has_an_option_for_every_setting(key):
    want = PORT_SETTINGS[key].example
    opts = _option(key)
    assert opts, key
    if isinstance(want, bool):
        got = _add_port_args(["vm1", opts[0]])
    else:
        got = _add_port_args(["vm1", opts[0], as_text(want)])
    assert got == {"name": "vm1", key: want}


def test_a_config_file_only_setting_is_no_add_port_option():
    from vswitch.cli import build_parser
    with pytest.raises(SystemExit):
        build_parser().parse_args(["add-port", "vm1", "--qmp", "/run/vm1.qmp"])
    assert CONFIG_FILE_ONLY == ("qmp",)


def test_add_port_keeps_its_option_names():
    """The options users have typed (docs/vswitchd.md) are still there."""
    assert _add_port_args(["vm1", "--vlan", "10", "--trunk", "20-29", "--vlan-mode", "native-untagged",
                           "--no-learning", "--no-mcast-flood", "--isolated", "--mtu", "9000", "--mac-limit", "5",
                           "--mac-limit-policy", "evict", "--netns", "g1", "--persistent", "--number", "4"]) == {
        "name": "vm1", "tag": 10, "trunks": "20-29", "vlan_mode": "native-untagged", "learning": False,
        "mcast_flood": False, "isolated": True, "mtu": 9000, "mac_limit": 5, "mac_limit_policy": "evict",
        "netns": "g1", "persistent": True, "number": 4}


def test_add_port_refuses_a_value_of_the_wrong_type_naming_the_key(capsys):
    from vswitch.cli import build_parser
    with pytest.raises(SystemExit):
        build_parser().parse_args(["add-port", "vm1", "--mtu", "big"])
    assert "mtu=big: expected an integer" in capsys.readouterr().err


# -- generated settings: valid ones load (and round-trip), invalid ones name the key --------------

VIDS = st.integers(0, 4094)
VLAN_LIST = st.one_of(st.lists(VIDS, min_size=1, max_size=4), st.sampled_from(["10,20-29", "0", "4094", "1-4094"]))
# The VLAN settings go together (vswitch/elements/vlan.py: OVS's rules).
VLANS = st.one_of(
    st.just({}), st.fixed_dictionaries({"tag": VIDS}), st.fixed_dictionaries({"trunks": VLAN_LIST}),
    st.fixed_dictionaries({"tag": VIDS, "trunks": VLAN_LIST}),
    st.fixed_dictionaries({"vlan_mode": st.just("access"), "tag": VIDS}),
    st.fixed_dictionaries({"vlan_mode": st.just("trunk")}, optional={"trunks": VLAN_LIST}),
    st.fixed_dictionaries({"vlan_mode": st.sampled_from(["native-tagged", "native-untagged"]), "tag": VIDS},
                          optional={"trunks": VLAN_LIST}))
# Valid and invalid values for every setting, written here from docs/config.md (not read from the
# declaration); a setting declared without an entry here fails the test below.
GOOD: dict[str, st.SearchStrategy] = {
    "name": st.sampled_from(["vm1", "a" * 15, "é" * 7, "eth0.10"]),
    "type": st.sampled_from(["tap", "attach", "replay"]), "number": st.integers(1, 65279),
    "mtu": st.integers(68, 65535), "mac_limit": st.integers(1, 1_000_000),
    "mac_limit_policy": st.sampled_from(["stop", "evict"]), "netns": st.sampled_from(["g1", "ns-2", "é", "a" * 255]),
    "persistent": st.booleans(), "mac": st.sampled_from(["02:00:00:00:00:01", "52-54-00-12-34-56"]),
    **{k: st.booleans() for k in ("learning", "flood", "mcast_flood", "bcast_flood", "isolated", "hairpin")},
    "qdisc": st.sampled_from(["fq_codel", "pfifo_fast", {"kind": "tbf", "rate": "10mbit", "burst": "10kb",
                                                         "latency": "50ms"}, {"kind": "drr", "weights": [3, 1]}]),
    "ingress_policing_rate": st.integers(0, 10**10), "ingress_policing_burst": st.integers(0, 10**10),
    "storm_broadcast_pps": st.integers(0, 10**9),
    "storm_multicast_pps": st.integers(0, 10**9),
    "rx_qdisc": st.sampled_from(["fq_codel", "drr", {"kind": "codel", "target": "2ms"}]),
    "tx_qdisc": st.sampled_from(["pfifo", {"kind": "tbf", "rate": "10mbit", "burst": "10kb", "latency": "50ms"}]),
    # a port on a VF (the PF accepts these: ixgbe's max rate is 0 or 11-10000, its min rate 0)
    "vf": st.integers(0, 3), "vf_vlan": st.integers(0, 4095), "vf_qos": st.integers(0, 7),
    "vf_spoofchk": st.booleans(), "vf_trust": st.booleans(), "vf_max_tx_rate": st.sampled_from([0, 11, 500, 10000]),
    "vf_min_tx_rate": st.just(0), "vf_state": st.sampled_from(["auto", "enable", "disable"]),
    "vf_cpus": st.integers(1, 64),
    "qmp": st.sampled_from(["/run/vm0.qmp", "/tmp/vm 1/qmp.sock"]),       # an attach port on a VF only
}
# What a port on a VF may hold besides its VF settings (not the switch's).
VF_PORT_KEYS = ("type", "number", "mtu", "netns", "persistent", "mac", "vf", "qmp", *VF_SETTINGS, *NIC_QUEUE_KEYS)
JUNK = st.one_of(st.floats(), st.dates(), st.lists(st.text(max_size=2), max_size=2), st.dictionaries(
    st.text(max_size=2), st.integers(), max_size=1))
BAD: dict[str, st.SearchStrategy] = {
    "name": st.sampled_from(["", "a" * 16, "a/b", "a:b", "a b", "p%d", ".", 5, True]),
    "type": st.sampled_from(["vhost", "", 1]), "number": st.sampled_from([0, -1, 65280, 2**70, "1", True]),
    "vlan_mode": st.sampled_from(["dot1q-tunnel", "", 0]), "tag": st.sampled_from([-1, 4095, 4096, "10", True]),
    "trunks": st.sampled_from(["4095", "1-4095", "x", "20-10", [4095], [True], 5, ["10"]]),
    "mtu": st.sampled_from([0, 67, 65536, "1500", True]), "mac_limit": st.sampled_from([0, -1, 10**7, "5", False]),
    "mac_limit_policy": st.sampled_from(["drop", "", 0]), "netns": st.sampled_from(["/proc/1/ns/net", "..", "", 5]),
    "persistent": st.sampled_from([1, "true", "yes"]), "mac": st.sampled_from(["01:00:5e:00:00:01", "zz", "", 5]),
    **{k: st.sampled_from([0, 1, "on", "false"]) for k in ("learning", "flood", "mcast_flood", "bcast_flood",
                                                               "isolated", "hairpin")},
    "qdisc": st.sampled_from(["fq", "", 5, {"rate": "1mbit"}, {"kind": "tbf", "rate": "1mbit"},
                              {"kind": "fq_codel", "target": "5000"}]),
    "ingress_policing_rate": st.sampled_from([-1, 10**11, "10", True]),
    "ingress_policing_burst": st.sampled_from([-1, 10**11, "10", 1.5]),
    "storm_broadcast_pps": st.sampled_from([-1, 10**10, "1"]), "storm_multicast_pps": st.sampled_from([-1, "x"]),
    "rx_qdisc": st.sampled_from(["fq", 5, {"kind": "fq_codel", "target": "5000"}]),
    "tx_qdisc": st.sampled_from(["", {"rate": "1mbit"}, {"kind": "tbf", "rate": "1mbit"}]),
    "vf": st.sampled_from([-1, 64, "0", True]), "vf_vlan": st.sampled_from([-1, 4096, "10", True]),
    "vf_qos": st.sampled_from([8, -1, "3"]), "vf_spoofchk": st.sampled_from([1, "on"]),
    "vf_trust": st.sampled_from([0, "off"]), "vf_max_tx_rate": st.sampled_from([-1, 100_001, "5", True]),
    "vf_min_tx_rate": st.sampled_from([-1, 100_001, "0"]), "vf_state": st.sampled_from(["up", "", 0]),
    "vf_cpus": st.sampled_from([0, 65, "2", True]),
    "qmp": st.sampled_from(["vm0.qmp", "", 5, "/" + "x" * 120]),
}


def test_the_generators_cover_every_declared_setting():
    assert set(GOOD) | {"vlan_mode", "tag", "trunks"} == set(PORT_SETTINGS)
    assert set(BAD) == set(PORT_SETTINGS)


@st.composite
def valid_ports(draw: st.DrawFn) -> dict[str, Any]:
    """A switch port, or (one in four) a port on a VF with its VF's settings."""
    on_vf = draw(st.integers(0, 3)) == 0
    keys = [k for k in GOOD if k != "name" and (k in VF_PORT_KEYS if on_vf else k not in ("vf", "qmp")
                                                 and k not in VF_SETTINGS and k not in NIC_QUEUE_KEYS)]
    port = draw(st.fixed_dictionaries({"name": GOOD["name"].filter(lambda n: n != "up0")},
                                      optional={k: GOOD[k] for k in keys}))
    if port.get("type", "tap") != "tap":
        port.pop("netns", None)                  # only a tap port moves into a namespace
    if port.get("type", "tap") != "attach":
        port.pop("qmp", None)                    # only an attach port (a QEMU guest's tap) has QEMU's QMP
    if on_vf:
        port["vf"] = draw(GOOD["vf"])
        if "mtu" in port:            # the 82599 takes no jumbo VF beside a standard PF (ixgbe_set_vf_lpe)
            port["mtu"] = draw(st.integers(68, 1500))
    else:
        if port.get("ingress_policing_burst") and not port.get("ingress_policing_rate"):
            port["ingress_policing_rate"] = 1000     # a burst needs the rate it bursts over
        port.update(draw(VLANS))
    return port


@settings(max_examples=300, deadline=None)
@given(port=valid_ports())
def test_generated_valid_settings_load_and_round_trip(port):
    cfg = parse_topology(doc_with(port), "gen.toml").ports[0]
    for key, value in port.items():
        want = ",".join(map(str, value)) if key == "trunks" and isinstance(value, list) else value
        assert getattr(cfg, key) == want, key
    assert parse_topology(doc_with(cfg.to_dict())).ports[0] == cfg
    assert parse_topology(doc_with({k: v for k, v in cfg.view().items() if v is not None})).ports[0] == cfg
    cfg.switch_port(1)                           # and the switch takes it


@settings(max_examples=300, deadline=None)
@given(port=valid_ports(), data=st.data())
def test_generated_settings_with_one_bad_value_give_a_config_error_naming_the_key(port, data):
    key = data.draw(st.sampled_from(sorted(BAD)), label="key")
    port[key] = data.draw(BAD[key], label="bad value")
    label = f"gen.toml: port[0] ({port['name']!r})"      # the port as parse_topology names it
    with pytest.raises(ConfigError) as ei:
        parse_topology(doc_with(port), "gen.toml")
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith(f"{label}: {key}") and msg[len(label) + 2 + len(key)] in " :", msg


@settings(max_examples=100, deadline=None)
@given(port=valid_ports(), key=st.text(min_size=1, max_size=8).filter(lambda k: k not in PORT_SETTINGS))
def test_an_undeclared_key_is_refused_by_name(port, key):
    port[key] = 1
    with pytest.raises(ConfigError, match=re.escape(f"unknown key(s) {key!r}")):
        parse_topology(doc_with(port), "gen.toml")


@settings(max_examples=200, deadline=None)
@given(port=valid_ports(), data=st.data())
def test_generated_set_port_text_coerces_to_what_the_file_would_hold(port, data):
    """Each valid value, typed as text after key=, becomes the value the file holds."""
    for key, value in port.items():
        if key == "trunks" and isinstance(value, list):
            value = ",".join(map(str, value))
        if isinstance(value, dict):
            continue                  # a qdisc table is typed qdisc=KIND qdisc.PARAM=V (test_port_policies)
        assert coerce(key, as_text(value)) == value, key
