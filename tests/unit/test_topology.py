"""TOML topology: parsing into dataclasses, building the dataplane, and errors that say where."""

from __future__ import annotations

import textwrap

import pytest
from helpers import NS
from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- bad input: every refusal is a ConfigError naming the file, the table and the key ---------------

@pytest.mark.parametrize("text, words", [
    ("bridge = 5\n", ["'bridge'", "table"]),
    ("fdb = 5\n", ["'fdb'", "array of tables"]),
    ('[[port]]\nname = "a"\n[[fdb]]\nmac = 5\nport = "a"\n', ["fdb[0]", "mac", "5"]),
    ('[[port]]\nname = "a"\n[[fdb]]\nmac = "02:00:00:00:00:01"\nport = ["a"]\n', ["fdb[0]", "port", "['a']"]),
    ('[[port]]\nname = "a"\n[[fdb]]\nmac = "02:00:00:00:00:01"\nport = "a"\nvlan = "10"\n', ["fdb[0]", "vlan"]),
    ("[bridge.move_damping]\nhold = inf\n", ["[bridge.move_damping]", "hold", "inf"]),
    ("[bridge.move_damping]\nhold = 1e300\n", ["[bridge.move_damping]", "hold"]),
    ("[bridge.move_damping]\nwindow = nan\n", ["[bridge.move_damping]", "window", "nan"]),
    ("[bridge.move_damping]\nwindow = -inf\n", ["[bridge.move_damping]", "window"]),
    ("[bridge.move_damping]\nmoves = 99999999999999999999\n", ["[bridge.move_damping]", "moves"]),
    ("[bridge]\nageing_time = nan\n", ["[bridge]", "ageing_time"]),
    ("[bridge]\nmove_log = -1\n", ["[bridge]", "move_log", "-1"]),
    ("[bridge]\nmove_log = 99999999999999999999\n", ["[bridge]", "move_log"]),
    ('[[port]]\nname = "a"\nmac_limit = -1\n', ["port[0]", "'a'", "mac_limit", "-1"]),
    ('[[port]]\nname = "a"\nmac_limit = 0\n', ["port[0]", "'a'", "mac_limit", "0"]),
    ('[[port]]\nname = "a"\nnumber = 0\n', ["port[0]", "'a'", "number"]),
    ('[[port]]\nname = "a"\nnumber = 99999999999999999999\n', ["port[0]", "'a'", "number"]),
    ('[[port]]\nname = "a"\nmtu = 20\n', ["port[0]", "'a'", "mtu", "20"]),
    ('[[port]]\nname = "a"\nmac = "zz"\n', ["port[0]", "'a'", "mac", "zz"]),
    ('[[port]]\nname = "a"\ntype = "attach"\nnetns = "g1"\n', ["port[0]", "'a'", "netns", "tap"]),
])
def test_type_and_range_errors_name_file_table_and_key(tmp_path, text, words):
    msg = error_of(tmp_path, text)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_a_file_that_is_not_utf8_is_a_config_error_saying_where(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_bytes(b'[bridge]\nname = "br\xff0"\n')
    with pytest.raises(ConfigError) as ei:
        load_topology(path)
    assert str(ei.value) == f"{path}: not UTF-8 (TOML must be): byte 0xff at line 2, column 11"


@pytest.mark.parametrize("text, key", [
    ('[[port]]\nname = "a"\ntag = 4095\n', "tag"),
    ('[[port]]\nname = "a"\ntrunks = "10,4095"\n', "trunks"),
    ('[[port]]\nname = "a"\ntrunks = "4000-4095"\n', "trunks"),
    ('[[port]]\nname = "a"\ntrunks = [4095]\n', "trunks"),
    ('[[port]]\nname = "a"\n[[fdb]]\nmac = "02:00:00:00:00:01"\nport = "a"\nvlan = 4095\n', "vlan"),
])
def test_vlan_4095_is_reserved(tmp_path, text, key):
    msg = error_of(tmp_path, text)
    assert f"{key}: bad VLAN 4095" in msg and "reserved" in msg, msg


def test_vlan_4094_is_the_highest_vlan(tmp_path):
    topo = load_topology(write(tmp_path, '[[port]]\nname = "a"\ntag = 4094\n[[port]]\nname = "b"\n'
                                         'trunks = "4000-4094"\n'))
    assert topo.ports[0].vlan().carries == {4094} and 4094 in topo.ports[1].vlan().carries


@pytest.mark.parametrize("name", ["a\nb", "a\tb", "a\rb", "a\x0bb", "a\x0cb", "a:b", "a/b", "a b", ".", "..", "",
                                  "a" * 16, "é" * 8, "vm%d", "a\x00b", "\ud800",
                                  "à"])            # c3 a0 in UTF-8: the kernel's isspace() takes 0xa0
def test_port_names_the_kernel_refuses_are_refused(name):
    with pytest.raises(ConfigError) as ei:
        parse_topology({"port": [{"name": name}]}, "lab.toml")
    msg = str(ei.value)
    assert msg.startswith("lab.toml: port[0]") and "name" in msg and "\n" not in msg, msg


@pytest.mark.parametrize("name", ["a", "a" * 15, "é" * 7, "vm-1.a_b", "eth0@x", "é"])
def test_port_names_the_kernel_takes_are_taken(name):
    assert parse_topology({"port": [{"name": name}]}).ports[0].name == name


@pytest.mark.parametrize("netns", ["/proc/1/ns/net", "../../proc/1/ns/net", ".", "..", "", "a" * 256, "a\x00b"])
def test_netns_must_be_a_name_under_run_netns(netns):
    with pytest.raises(ConfigError) as ei:
        parse_topology({"port": [{"name": "a", "netns": netns}]}, "lab.toml")
    assert str(ei.value).startswith("lab.toml: port[0] ('a'): netns")


def test_multicast_static_fdb_entry_is_refused(tmp_path):
    msg = error_of(tmp_path, '[[port]]\nname = "a"\n[[fdb]]\nmac = "01:00:5e:00:00:01"\nport = "a"\n')
    assert "fdb[0]" in msg and "mac" in msg and "unicast" in msg


def test_replay_reports_a_config_type_error_in_one_line(tmp_path, capsys):
    from bench.cli import main as bench_main
    cfg = write(tmp_path, "bridge = 5\n")
    pcap = tmp_path / "empty.pcap"
    pcap.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    assert bench_main(["replay", "--config", str(cfg), str(pcap)]) == 2
    err = capsys.readouterr().err
    assert err == f"vswitch-bench: {cfg}: 'bridge' must be a table ([bridge])\n"


# -- generated documents: a Topology that builds and saves, or a ConfigError ------------------------

def _weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of the strategies, each picked with its weight."""
    table = [s for w, s in choices for _ in range(w)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


TOML_SCALARS = st.one_of(st.booleans(), st.integers(), st.integers(-(2**70), 2**70), st.floats(),
                         st.text(max_size=10), st.datetimes(), st.dates())
TOML_ANY = st.recursive(TOML_SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c,
                                                                                          max_size=3), max_leaves=6)
NAMES = st.sampled_from(["vm1", "vm2", "up", "a" * 15, "é" * 7])
BAD_NAMES = st.one_of(st.sampled_from(["a" * 16, "", "a/b", "a:b", "a b", "x\n", ".", "é" * 8, "p%d"]),
                      st.text(max_size=17))
MACS = st.sampled_from(["02:00:00:00:00:01", "02-00-00-00-00-02", "52:54:00:12:34:56"])
BAD_MACS = st.one_of(st.sampled_from(["01:00:5e:00:00:01", "zz", "", "ff:ff:ff:ff:ff:ff", "02:00:00:00:00"]),
                     st.text(max_size=18))
VIDS = st.integers(0, 4094)
BAD_VIDS = st.sampled_from([-1, 4095, 4096, 2**64])
SECONDS = st.one_of(st.integers(1, 1_000_000), st.floats(1, 1_000_000))
BAD_SECONDS = st.one_of(st.sampled_from([0, -1, 1_000_001]), st.floats().filter(lambda f: not 1 <= f <= 1e6))


def documents(anything: st.SearchStrategy) -> st.SearchStrategy:
    """Topology documents near the valid ones: most values right, some out of range or malformed,
    a few of any type at all; now and then the whole document is anything."""
    from nicmodel.profiles import PROFILES
    from vswitch.elements.vlan import MODES

    def key(good: st.SearchStrategy, bad: st.SearchStrategy | None = None) -> st.SearchStrategy:
        return _weighted((30, good), *([(2, bad)] if bad is not None else []), (1, anything))

    port_keys = {
        "type": key(st.sampled_from(["tap", "attach", "replay"]), st.just("vhost")),
        "number": key(st.integers(1, 65279), st.sampled_from([0, -1, 65280, 2**70])),
        "vlan_mode": key(st.sampled_from(MODES), st.just("dot1q-tunnel")), "tag": key(VIDS, BAD_VIDS),
        "trunks": key(st.one_of(st.lists(VIDS, max_size=4), st.sampled_from(["10,20-29", "", "0", "4094"])),
                      st.one_of(st.lists(BAD_VIDS, min_size=1, max_size=2), st.text("0123456789,- ", max_size=9))),
        "mtu": key(st.integers(68, 65535), st.sampled_from([0, 67, 65536])),
        "mac_limit": key(st.integers(1, 1_000_000), st.sampled_from([0, -1, 10**7])),
        "mac_limit_policy": key(st.sampled_from(["stop", "evict"]), st.just("drop")),
        "netns": key(st.sampled_from(["g1", "ns-2", "é"]), st.sampled_from(["/proc/1/ns/net", "..", "", "a" * 256])),
        "persistent": key(st.booleans()), "mac": key(MACS, BAD_MACS),
        **{k: key(st.booleans()) for k in ("learning", "flood", "mcast_flood", "bcast_flood", "isolated", "hairpin")},
    }
    port = st.fixed_dictionaries({"name": key(NAMES, BAD_NAMES)}, optional=port_keys)
    bridge = st.fixed_dictionaries({}, optional={
        "name": key(st.text(max_size=8)), "ageing_time": key(SECONDS, BAD_SECONDS),
        "mac_table_size": key(st.integers(1, 1_000_000), st.sampled_from([0, 10**7])),
        "move_log": key(st.integers(0, 100_000), st.sampled_from([-1, 100_001, 2**70])),
        "move_damping": key(st.fixed_dictionaries({}, optional={
            "moves": key(st.integers(0, 1_000_000), st.sampled_from([-1, 2**70])),
            "window": key(SECONDS, BAD_SECONDS), "hold": key(st.integers(0, 1_000_000), BAD_SECONDS)})),
    })

    @st.composite
    def doc(draw: st.DrawFn) -> dict:
        out: dict = {}
        ports = draw(st.lists(port, max_size=4, unique_by=lambda p: str(p.get("name"))))
        # The FDB and the NIC name configured ports, mostly.
        names = key(st.sampled_from([p["name"] for p in ports if isinstance(p.get("name"), str)] or ["vm1"]),
                    st.one_of(NAMES, BAD_NAMES))
        fdb = st.fixed_dictionaries({"mac": key(MACS, BAD_MACS), "port": names}, optional={"vlan": key(VIDS, BAD_VIDS)})
        nic = st.fixed_dictionaries({"uplink": names}, optional={
            "profile": key(st.sampled_from(sorted(PROFILES)), st.just("e1000")),
            "mode": key(st.sampled_from(["vmdq", "software"]), st.just("sriov")),
            **{k: key(st.integers(64, 4096), st.sampled_from([0, 63, 4097])) for k in ("rx_ring", "tx_ring")},
            **{k: key(st.integers(0, 10_000), st.just(-1)) for k in ("rx_usecs", "rx_frames")}})
        if draw(st.booleans()):
            out["bridge"] = draw(key(bridge))
        if ports or draw(st.booleans()):
            out["port"] = draw(key(st.just(ports)))
        if draw(st.integers(0, 3 if ports else 9)) == 0:
            out["fdb"] = draw(key(st.lists(fdb, max_size=3)))
        if draw(st.integers(0, 3 if ports else 9)) == 0:
            out["nic"] = draw(key(nic))
        return out

    return _weighted((19, doc()), (1, st.dictionaries(st.text(max_size=6), anything, max_size=3)))


def _loads_or_refuses(path) -> None:
    """What vswitchd and replay do with a file: a ConfigError naming it, or a Topology that builds
    a dataplane and that, saved as vswitchd saves it, loads back the same."""
    from vswitch.topology import save_topology
    try:
        topo = load_topology(path)
    except ConfigError as e:
        assert str(e).startswith(f"{path}: ") and "\n" not in str(e), str(e)
        return
    build_dataplane(topo)          # with its emulated NIC, if the file has one
    saved = path.with_name("saved.toml")
    save_topology(topo, saved)
    assert load_topology(saved) == topo


@settings(max_examples=250, deadline=None)
@given(doc=documents(TOML_ANY))
def test_generated_toml_documents_load_or_give_a_config_error(doc):
    import tempfile
    from pathlib import Path

    import tomli_w
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "gen.toml"
        path.write_text(tomli_w.dumps(doc))
        _loads_or_refuses(path)


@settings(max_examples=150, deadline=None)
@given(base=st.sampled_from([FULL, TWO_PORTS.format(extra="tag = 5")]), edits=st.lists(
    st.tuples(st.integers(0, 10_000), st.binary(min_size=0, max_size=3)), min_size=1, max_size=4))
def test_corrupted_files_load_or_give_a_config_error(base, edits):
    import tempfile
    from pathlib import Path
    raw = bytearray(textwrap.dedent(base).encode())
    for at, junk in edits:
        at %= len(raw)
        raw[at:at + 1] = junk
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "gen.toml"
        path.write_bytes(bytes(raw))
        _loads_or_refuses(path)


JSON_ANY = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
                        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                        max_leaves=6)


@settings(max_examples=250, deadline=None)
@given(doc=st.one_of(documents(JSON_ANY), JSON_ANY))
def test_generated_dicts_parse_or_give_a_config_error(doc):
    try:
        topo = parse_topology(doc, "lab.toml")  # type: ignore[arg-type]
    except ConfigError as e:
        assert str(e).startswith("lab.toml: ") and "\n" not in str(e), str(e)
        return
    build_dataplane(topo)
