"""TOML topology: parsing into dataclasses, building the dataplane, and errors that say where."""

from __future__ import annotations

import textwrap

import pytest
from helpers import NS

from vswitch.elements.vlan import PortVlan
from vswitch.topology import (
    BridgeConfig,
    ConfigError,
    PortConfig,
    StaticFdbConfig,
    Topology,
    build_dataplane,
    load_topology,
    parse_topology,
)

FULL = """
[bridge]
name = "br-test"
ageing_time = 120
mac_table_size = 2048
move_log = 16

[bridge.move_damping]
moves = 3
window = 5
hold = 60

[[port]]
name = "vm1"
type = "tap"
tag = 10
netns = "guest1"
persistent = true

[[port]]
name = "vm2"
vlan_mode = "native-untagged"
tag = 20
trunks = "30-32,40"
mac_limit = 100
mac_limit_policy = "evict"
isolated = true
flood = false

[[port]]
name = "uplink"
type = "attach"
number = 7
trunks = [10, 20, 30]
mtu = 9000
hairpin = true
learning = false
mcast_flood = false
bcast_flood = false

[[port]]
name = "pcap0"
type = "replay"

[[fdb]]
mac = "02:00:00:00:00:01"
port = "vm1"
vlan = 10

[[fdb]]
mac = "02-00-00-00-00-02"
port = "uplink"
vlan = 20
"""


def write(tmp_path, text: str):
    p = tmp_path / "cfg.toml"
    p.write_text(textwrap.dedent(text))
    return p


def test_full_example_parses_into_dataclasses(tmp_path):
    topo = load_topology(write(tmp_path, FULL))
    assert topo.bridge == BridgeConfig(name="br-test", ageing_time=120, mac_table_size=2048, move_log=16,
                                       damp_moves=3, damp_window=5, damp_hold=60)
    vm1, vm2, up, pc = topo.ports
    assert vm1 == PortConfig(name="vm1", type="tap", tag=10, netns="guest1", persistent=True)
    assert vm1.vlan() == PortVlan(mode="access", tag=10)
    assert vm2.vlan_mode == "native-untagged" and vm2.tag == 20
    assert vm2.vlan().carries == {20, 30, 31, 32, 40}
    assert (vm2.mac_limit, vm2.mac_limit_policy, vm2.isolated, vm2.flood) == (100, "evict", True, False)
    assert up.type == "attach" and up.number == 7 and up.mtu == 9000
    assert up.vlan().mode == "trunk" and up.vlan().carries == {10, 20, 30}
    assert (up.hairpin, up.learning, up.mcast_flood, up.bcast_flood) == (True, False, False, False)
    assert (up.flood, up.isolated) == (True, False)
    assert pc == PortConfig(name="pcap0", type="replay")
    assert pc.vlan().carries == frozenset(range(4096))
    assert topo.fdb == [StaticFdbConfig("02:00:00:00:00:01", "vm1", 10),
                        StaticFdbConfig("02-00-00-00-00-02", "uplink", 20)]
    assert topo.port("vm2") is vm2
    with pytest.raises(KeyError):
        topo.port("nope")


def test_full_example_builds_the_dataplane(tmp_path):
    dp = build_dataplane(load_topology(write(tmp_path, FULL)))
    # configured numbers are kept, the rest are 1, 2, ... in order (as OVS ofports)
    assert dp.numbers == {"vm1": 1, "vm2": 2, "uplink": 7, "pcap0": 3}
    assert set(dp.graph.ports) == {1, 2, 3, 7}
    assert dp.name_of(7) == "uplink"
    assert dp.switch.name == "br-test"
    sw = dp.switch
    assert sw.ports[2].vlan.untagged_vid == 20 and sw.ports[2].isolated
    assert sw.ports[7].mtu == 9000 and sw.ports[7].max_frame == 9018
    f = sw.fdb
    assert (f.ageing_ns, f.max_entries, f.moves.maxlen) == (120 * NS, 2048, 16)
    assert (f.damp_moves, f.damp_window_ns, f.damp_hold_ns) == (3, 5 * NS, 60 * NS)
    assert f.port_limits == {2: (100, "evict")}
    assert f.lookup(10, bytes.fromhex("020000000001"), 10**18) == 1
    assert f.lookup(20, bytes.fromhex("020000000002"), 10**18) == 7
    assert f.snapshot()["static"] == 2
    assert dp.next_number() == 4


def test_defaults():
    topo = parse_topology({})
    assert topo.bridge == BridgeConfig()
    assert topo.bridge.ageing_time == 300 and topo.bridge.mac_table_size == 8192
    assert topo.ports == [] and topo.fdb == []
    p = parse_topology({"port": [{"name": "a"}]}).ports[0]
    assert p == PortConfig(name="a")
    assert (p.type, p.learning, p.flood, p.mcast_flood, p.bcast_flood, p.isolated, p.hairpin, p.mtu) == (
        "tap", True, True, True, True, False, False, 1500)
    assert p.to_dict() == {"name": "a"}
    assert PortConfig(name="b", tag=3, isolated=True).to_dict() == {"name": "b", "tag": 3, "isolated": True}


def test_dataplane_from_dataclasses_add_and_remove_ports():
    dp = build_dataplane(Topology(ports=[PortConfig(name="a"), PortConfig(name="b")]))
    dp.add_port(PortConfig(name="c", tag=5), dp.next_number())
    assert dp.numbers == {"a": 1, "b": 2, "c": 3}
    assert dp.remove_port("b") == 2
    assert set(dp.graph.ports) == {1, 3} and set(dp.switch.ports) == {1, 3}
    assert dp.next_number() == 2


# -- errors name the file, the port (index and name) and the key ---------------------------------

def error_of(tmp_path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_topology(path)
    msg = str(ei.value)
    assert str(path) in msg
    return msg


TWO_PORTS = """
[[port]]
name = "vm1"

[[port]]
name = "vm2"
{extra}
"""


@pytest.mark.parametrize("extra, words", [
    ('colour = "red"', ["colour"]),
    ('vlan_mode = "dot1q-tunnel"\ntag = 5', ["vlan_mode", "dot1q-tunnel"]),
    ('vlan_mode = "access"', ["vlan_mode", "access", "tag"]),
    ('tag = "10"', ["tag", "'10'"]),
    ("learning = 1", ["learning"]),
    ("mtu = 20", ["mtu", "20"]),
    ('mac_limit_policy = "drop"', ["mac_limit_policy", "drop"]),
    ('type = "vhost"', ["type", "vhost"]),
    ("vlan_mode = 'trunk'\ntag = 4", ["trunk", "tag"]),
    ("trunks = '20-10'", ["20-10"]),
])
def test_bad_port_names_file_index_name_and_key(tmp_path, extra, words):
    msg = error_of(tmp_path, TWO_PORTS.format(extra=extra))
    assert "port[1]" in msg and "vm2" in msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("extra, key", [("tag = 5000", "tag"), ('trunks = "10,5000"', "trunks"),
                                        ("trunks = [10, 5000]", "trunks")])
def test_bad_vlan_names_the_key(tmp_path, extra, key):
    msg = error_of(tmp_path, TWO_PORTS.format(extra=extra))
    assert "port[1]" in msg and "vm2" in msg and "5000" in msg
    assert f"{key}:" in msg, msg


@pytest.mark.parametrize("extra", ["tag = 5000", 'trunks = "10,5000"', "tag = -1"])
def test_bad_vlan_is_refused_with_file_port_and_value(tmp_path, extra):
    msg = error_of(tmp_path, TWO_PORTS.format(extra=extra))
    assert "port[1]" in msg and "vm2" in msg
    assert extra.split("=")[1].strip().strip('"').split(",")[-1] in msg


def test_duplicate_port_name(tmp_path):
    msg = error_of(tmp_path, """
        [[port]]
        name = "vm1"
        [[port]]
        name = "vm2"
        [[port]]
        name = "vm1"
        """)
    assert "port[2]" in msg and "vm1" in msg and "duplicate" in msg and "name" in msg


def test_duplicate_port_number(tmp_path):
    msg = error_of(tmp_path, """
        [[port]]
        name = "a"
        number = 3
        [[port]]
        name = "b"
        number = 3
        """)
    assert "port[1]" in msg and "'b'" in msg and "number" in msg


def test_port_without_a_name(tmp_path):
    msg = error_of(tmp_path, """
        [[port]]
        tag = 10
        """)
    assert "port[0]" in msg and "name" in msg


@pytest.mark.parametrize("name", ["", "a" * 16, "a/b", "a b"])
def test_bad_interface_name(tmp_path, name):
    msg = error_of(tmp_path, f'[[port]]\nname = "{name}"\n')
    assert "port[0]" in msg and "name" in msg


def test_static_fdb_naming_an_unknown_port(tmp_path):
    msg = error_of(tmp_path, """
        [[port]]
        name = "vm1"
        [[fdb]]
        mac = "02:00:00:00:00:01"
        port = "vm1"
        [[fdb]]
        mac = "02:00:00:00:00:02"
        port = "vm9"
        """)
    assert "fdb[1]" in msg and "port" in msg and "vm9" in msg


@pytest.mark.parametrize("entry, words", [
    ('mac = "02:00:00:00:00"\nport = "vm1"', ["fdb[0]", "02:00:00:00:00"]),
    ('mac = "zz:00:00:00:00:01"\nport = "vm1"', ["fdb[0]", "zz"]),
    ('mac = "02:00:00:00:00:01"\nport = "vm1"\nvlan = 4096', ["fdb[0]", "4096"]),
    ('mac = "02:00:00:00:00:01"', ["fdb[0]", "port"]),
    ('mac = "02:00:00:00:00:01"\nport = "vm1"\nage = 3', ["fdb[0]"]),
])
def test_bad_static_fdb_entry(tmp_path, entry, words):
    msg = error_of(tmp_path, f'[[port]]\nname = "vm1"\n[[fdb]]\n{entry}\n')
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("text, words", [
    ("[bridge]\ncolour = 1\n", ["[bridge]", "colour"]),
    ("[bridge]\nageing_time = 0\n", ["ageing_time"]),
    ("[bridge]\nageing_time = true\n", ["ageing_time"]),
    ("[bridge]\nmac_table_size = 0\n", ["mac_table_size"]),
    ('[bridge]\nmac_table_size = "big"\n', ["mac_table_size"]),
    ("[bridge.move_damping]\nmoves = -1\n", ["move_damping", "moves"]),
    ("[bridge.move_damping]\nwindow = 0\n", ["move_damping", "window"]),
    ("[bridge.move_damping]\nspeed = 1\n", ["move_damping", "speed"]),
    ("[switch]\nname = 'x'\n", ["switch"]),
    ("port = 3\n", ["port"]),
])
def test_bad_bridge_and_tables(tmp_path, text, words):
    msg = error_of(tmp_path, text)
    for w in words:
        assert w in msg, msg


def test_invalid_toml_and_missing_file(tmp_path):
    msg = error_of(tmp_path, "[[port]\nname = 'x'\n")
    assert "TOML" in msg
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml"):
        load_topology(missing)


def test_parse_topology_names_its_source():
    with pytest.raises(ConfigError, match=r"^lab\.toml: port\[0\]"):
        parse_topology({"port": [{"name": "a", "bogus": 1}]}, "lab.toml")
