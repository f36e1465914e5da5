"""vswitchd's ``[nic] mode = "sriov"``: the config, its errors, and the control commands (vf show, vf
set, vf mailbox) on a LiveSwitch whose ports are attach ports that do not exist (they wait,
pending: the dataplane and the PF are real, no device is opened)."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vswitch.cli import parse_args
from vswitch.control.protocol import encode
from vswitch.control.server import ControlServer
from vswitch.topology import ConfigError, load_topology, parse_topology, save_topology

ROOT = Path(__file__).resolve().parents[2]
NIC = '[nic]\nmode = "sriov"\nnumvfs = 4\nuplink = "up0"\n\n[[port]]\nname = "up0"\ntype = "attach"\n\n'


def load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "sw.toml"
    path.write_text(text)
    return load_topology(path)


def refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path / "sw.toml") + ": "), msg
    assert message in msg, msg


# -- the config ------------------------------------------------------------------------------

def test_a_sriov_topology_loads_and_saves_with_its_vf_settings(tmp_path):
    topo = load(tmp_path, NIC + '[[port]]\nname = "vm1"\nvf = 2\nmac = "52:54:00:00:00:01"\nvf_vlan = 10\n'
                               'vf_qos = 3\nvf_trust = true\nvf_max_tx_rate = 500\nvf_spoofchk = false\n'
                               'vf_state = "disable"\n')
    assert topo.nic.mode == "sriov" and topo.nic.numvfs == 4
    p = topo.port("vm1")
    assert (p.vf, p.vf_vlan, p.vf_qos, p.vf_trust, p.vf_max_tx_rate, p.vf_spoofchk, p.vf_state) == \
        (2, 10, 3, True, 500, False, "disable")
    save_topology(topo, tmp_path / "saved.toml")
    text = (tmp_path / "saved.toml").read_text()
    assert "numvfs = 4" in text and "vf = 2" in text and "vf_vlan = 10" in text
    assert load_topology(tmp_path / "saved.toml") == topo


@pytest.mark.parametrize("text, message", [
    ('[nic]\nmode = "sriov"\nuplink = "up0"\n[[port]]\nname = "up0"\n',
     '[nic]: numvfs: mode = "sriov" needs the number of VFs (1-63'),
    ('[nic]\nmode = "sriov"\nnumvfs = 64\nuplink = "up0"\n[[port]]\nname = "up0"\n',
     "[nic]: numvfs 64: 82599 has 1-63 VFs (sriov_totalvfs)"),
    ('[nic]\nmode = "sriov"\nprofile = "82576"\nnumvfs = 8\nuplink = "up0"\n[[port]]\nname = "up0"\n',
     "[nic]: numvfs 8: 82576 has 1-7 VFs"),
    ('[nic]\nmode = "vmdq"\nnumvfs = 2\nuplink = "up0"\n[[port]]\nname = "up0"\n',
     "[nic]: numvfs: only mode = \"sriov\" has VFs (mode is 'vmdq')"),
    (NIC + '[[port]]\nname = "vm1"\n', "port[1] ('vm1'): vf: in [nic] mode = \"sriov\" every guest port names its VF"),
    (NIC + '[[port]]\nname = "vm1"\nvf = 4\n', "port[1] ('vm1'): vf 4: the PF has 4 VFs ([nic] numvfs)"),
    (NIC + '[[port]]\nname = "vm1"\nvf = 1\n[[port]]\nname = "vm2"\nvf = 1\n',
     "port[2] ('vm2'): vf 1: already the VF of port 'vm1'"),
    (NIC + '[[port]]\nname = "vm1"\nvf = 64\n', "port[1] ('vm1'): vf 64: must be 0-63"),
    ('[[port]]\nname = "vm1"\nvf = 0\n', "port[0] ('vm1'): vf: a port on a VF needs [nic] mode = \"sriov\""),
    ('[[port]]\nname = "vm1"\nvf_vlan = 10\n', "port[0] ('vm1'): vf_vlan: only a port on a VF (vf = N"),
    (NIC + '[[port]]\nname = "vm1"\nvf = 0\ntag = 10\n',
     "port[1] ('vm1'): tag: a port on a VF is not on the software switch (its VLAN is vf_vlan"),
    (NIC + '[[port]]\nname = "vm1"\nvf = 0\nlearning = false\n', "port[1] ('vm1'): learning: a port on a VF is not"),
    (NIC + '[[port]]\nname = "vm1"\nvf = 0\nvf_vlan = 4096\n', "port[1] ('vm1'): vf_vlan 4096: must be 0-4095"),
    (NIC + '[[port]]\nname = "vm1"\nvf = 0\nvf_state = "up"\n', "vf_state 'up': use one of auto, enable, disable"),
    # The PF driver's own checks, with its words and errno, at load.
    (NIC + '[[port]]\nname = "vm1"\nvf = 0\nvf_max_tx_rate = 5\n',
     "port[1] ('vm1'): vf 0: max_tx_rate 5 Mb/s: ixgbe requires 10 < max <= 10000 (the link speed), or 0 for no "
     "limit (Invalid argument)"),
    (NIC + '[[port]]\nname = "vm1"\nvf = 0\nvf_min_tx_rate = 5\n',
     "port[1] ('vm1'): vf 0: min_tx_rate 5 Mb/s: not supported by ixgbe, must be 0 (Invalid argument)"),
    (NIC + '[[port]]\nname = "vm1"\nvf = 0\nmtu = 9000\n', "port[1] ('vm1'): vf 0: the guest's driver failed: set MTU"),
    ('[nic]\nmode = "sriov"\nprofile = "i350"\nnumvfs = 2\nuplink = "up0"\n[[port]]\nname = "up0"\n'
     '[[port]]\nname = "vm1"\nvf = 0\nvf_max_tx_rate = 100\n', "(Operation not supported)"),
])
def test_bad_sriov_config_names_the_file_the_key_and_what_is_wrong(tmp_path, text, message):
    refused(tmp_path, text, message)


def test_the_daemon_refuses_a_bad_sriov_config_in_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text(NIC + '[[port]]\nname = "vm1"\nvf = 0\nvf_max_tx_rate = 20000\n')
    r = subprocess.run([sys.executable, "-m", "vswitch.daemon", "--config", str(tmp_path / "bad.toml"),
                        "--socket", str(tmp_path / "s.sock")], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"vswitchd: {tmp_path / 'bad.toml'}: port[1] ('vm1'): vf 0: max_tx_rate 20000 Mb/s")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


# -- a running switch --------------------------------------------------------------------------

class Running:
    def __init__(self, tmp_path: Path) -> None:
        from vswitch.drivers.live import LiveSwitch
        p = "vsd" + secrets.token_hex(3)
        self.up, self.g = p + "up", [p + "g0", p + "g1"]
        self.config = tmp_path / "sw.toml"
        self.config.write_text(f'[nic]\nmode = "sriov"\nnumvfs = 3\nuplink = "{self.up}"\n\n'
                               f'[[port]]\nname = "{self.up}"\ntype = "attach"\n\n'
                               f'[[port]]\nname = "{self.g[0]}"\ntype = "attach"\nvf = 0\n'
                               'mac = "52:54:00:00:00:10"\n\n'
                               f'[[port]]\nname = "{self.g[1]}"\ntype = "attach"\nvf = 1\nvf_cpus = 2\n')
        self.loop = asyncio.new_event_loop()
        self.sw = LiveSwitch(load_topology(self.config))
        self.server = ControlServer(self.sw, str(tmp_path / "unused.sock"))
        self.loop.run_until_complete(self.sw.start(on_change=lambda: save_topology(self.sw.topo, self.config)))
        self.pf = self.sw.dp.nic.pf

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        return self.loop.run_until_complete(self.server.handle(encode({"cmd": cmd, "args": args})))

    def ok(self, cmd: str, **args: Any) -> Any:
        r = self.call(cmd, **args)
        assert r["ok"], r
        return r["result"]

    def close(self) -> None:
        self.loop.run_until_complete(self.sw.close())
        self.loop.close()


@pytest.fixture
def running(tmp_path):
    r = Running(tmp_path)
    yield r
    r.close()


def test_vf_show_lists_every_vf_with_its_port_admin_state_and_counters(running):
    s = running.ok("vf/show")
    assert s["pf"]["num_vfs"] == 3 and s["uplink"] == running.up
    vfs = {v["vf"]: v for v in s["vfs"]}
    assert (vfs[0]["port"], vfs[1]["port"], vfs[2]["port"]) == (running.g[0], running.g[1], None)
    assert vfs[0]["mac"] == "52:54:00:00:00:10" and vfs[0]["pf_set_mac"] and not vfs[1]["pf_set_mac"]
    assert vfs[0]["guest"] == running.g[0] and vfs[2]["guest"] is None
    assert vfs[0]["clear_to_send"] and vfs[0]["rx_enabled"] and not vfs[2]["rx_enabled"]
    assert set(vfs[0]["stats"]) == {"rx_packets", "rx_bytes", "multicast", "broadcast", "rx_dropped", "tx_packets",
                                    "tx_bytes", "tx_dropped"}
    assert "vf 0     link/ether 52:54:00:00:00:10" in s["ip_link"]
    ports = {p["name"]: p for p in running.ok("show")["ports"]}
    assert ports[running.g[1]]["nic"] == "vf 1" and ports[running.up]["nic"] == "uplink"
    # The guests are not switch ports: the switch has the uplink only.
    assert [p.name for p in running.sw.dp.switch.ports.values()] == [running.up]


def test_vf_cpus_sets_the_queues_the_guests_driver_opens_and_rss_spreads_over(running):
    from sriov.vf_regs import VFPSRTYPE
    one, two = running.pf.vf(0), running.pf.vf(1)
    assert (one.guest.driver.num_rx_queues, two.guest.driver.num_rx_queues) == (1, 2)
    assert one.bar0().read32(VFPSRTYPE) >> 29 == 0 and two.bar0().read32(VFPSRTYPE) >> 29 == 1
    st = running.pf.nic.state
    assert (st.rss_queues(one.pool), st.rss_queues(two.pool)) == (1, 2)
    shown = {v["vf"]: v for v in running.ok("vf/show")["vfs"]}
    assert (shown[0]["rss_queues"], shown[1]["rss_queues"], len(shown[1]["queues"])) == (1, 2, 4)   # 32 x 4
    assert (shown[0]["tx_queues"], shown[1]["tx_queues"]) == (1, 2)
    r = running.call("set-port", name=running.g[1], changes={"vf_cpus": "1"})
    assert not r["ok"] and "vf_cpus" in r["error"] and two.guest.driver.num_rx_queues == 2, r


def test_vf_set_applies_through_the_pf_and_is_saved_as_the_ports_settings(running):
    r = running.ok("vf/set", pf="nic0", vf=1, words=["vlan", "20", "qos", "2", "spoofchk", "off",
                                                        "max_tx_rate", "300"])
    assert r["name"] == running.g[1]
    info = running.pf.vf(1).vf_info()
    assert (info["vlan"], info["qos"], info["spoofchk"], info["max_tx_rate"]) == (20, 2, False, 300)
    assert running.pf.nic.state.pools[1].aupe is False            # the port VLAN is enforced by the pool
    saved = load_topology(running.config).port(running.g[1])
    assert (saved.vf_vlan, saved.vf_qos, saved.vf_spoofchk, saved.vf_max_tx_rate) == (20, 2, False, 300)
    # The uplink's name works as the PF's too; `vlan V` alone is qos 0, as ip link.
    running.ok("vf/set", pf=running.up, vf=1, words=["vlan", "21"])
    assert (running.pf.vf(1).vf_info()["vlan"], running.pf.vf(1).vf_info()["qos"]) == (21, 0)
    # set-port's keys are the same settings.
    running.ok("set-port", name=running.g[1], changes={"vf_vlan": "0"})
    assert running.pf.vf(1).vf_info()["vlan"] == 0 and running.pf.nic.state.pools[1].aupe is True


@pytest.mark.parametrize("pf, vf, words, message", [
    ("nic0", 0, ["vlan", "31", "max_tx_rate", "5"], "ixgbe requires 10 < max <= 10000"),
    ("nic0", 0, ["mac", "01:00:5e:00:00:01"], "vf 0: 01:00:5e:00:00:01 is a multicast address (Invalid argument)"),
    ("nic0", 0, ["vlan", "4096"], "vf 0: vlan 4096 qos 0: vlan must be 0-4095 and qos 0-7 (Invalid argument)"),
    ("nic0", 0, ["vlan", "10", "qos", "8"], "qos 8: vlan must be 0-4095 and qos 0-7"),
    ("nic0", 0, ["vlan", "10", "proto", "802.1ad"], "supports 802.1Q only (Protocol not supported)"),
    ("nic0", 0, ["vlan", "ten"], 'Error: argument "ten" is wrong: Invalid "vlan" value'),
    ("nic0", 0, ["spoofchk", "maybe"], 'Error: argument of "spoofchk" must be "on" or "off", not "maybe"'),
    ("nic0", 0, ["state", "up"], 'Invalid "state" value'),
    ("nic0", 0, ["colour", "red"], 'Error: unknown vf option "colour"'),
    ("nic0", 0, ["min_tx_rate", "10"], "min_tx_rate 10 Mb/s: not supported by ixgbe, must be 0"),
    ("nic0", 2, ["vlan", "7"], "vf 2: no guest port is on it"),
    ("nic0", 3, ["vlan", "7"], "vf 3: the PF has 3 VFs (0-2) (Invalid argument)"),
    ("eth9", 0, ["vlan", "7"], "unknown PF 'eth9' (the PF is nic0"),
])
def test_a_refused_vf_set_says_why_in_one_line_and_changes_nothing(running, pf, vf, words, message):
    before = (running.config.read_bytes(), running.pf.vf(0).vf_info(), running.pf.vf(0).show()["stats"],
              running.pf.nic.state.pools[0].aupe)
    r = running.call("vf/set", pf=pf, vf=vf, words=words)
    assert r["ok"] is False and message in r["error"] and "\n" not in r["error"], r
    after = (running.config.read_bytes(), running.pf.vf(0).vf_info(), running.pf.vf(0).show()["stats"],
             running.pf.nic.state.pools[0].aupe)
    assert after == before


def test_trust_and_state_changes_reset_the_vf_and_its_guest_comes_back(running):
    vf = running.pf.vf(0)
    resets = vf.resets
    running.ok("vf/set", pf="nic0", vf=0, words=["trust", "on"])
    assert vf.resets == resets + 1 and vf.info.clear_to_send and vf.info.trusted     # the watchdog reset it
    running.ok("vf/set", pf="nic0", vf=0, words=["state", "disable"])
    st = running.pf.nic.state
    assert not (st.vfre >> vf.pool) & 1 and not (st.vfte >> vf.pool) & 1           # carries nothing
    running.ok("vf/set", pf="nic0", vf=0, words=["state", "auto"])
    assert (st.vfre >> vf.pool) & 1
    lines = running.ok("vf/mailbox", vf=0)["messages"]
    assert lines[-1].startswith("#") and any("RESET|ACK mac 52:54:00:00:00:10" in m for m in lines)


def test_a_new_admin_mac_reloads_the_guest_driver_and_moves_the_filter(running):
    running.ok("vf/set", pf="nic0", vf=1, words=["mac", "52:54:00:00:00:11"])
    vf = running.pf.vf(1)
    assert vf.guest.driver.mac == bytes.fromhex("525400000011")
    assert bytes.fromhex("525400000011") in running.pf.nic.state.rar.macs_of(vf.pool)
    assert load_topology(running.config).port(running.g[1]).mac == "52:54:00:00:00:11"
    running.ok("vf/set", pf="nic0", vf=1, words=["mac", "00:00:00:00:00:00"])       # cleared
    assert load_topology(running.config).port(running.g[1]).mac is None and not vf.info.pf_set_mac


def test_guest_ports_on_vfs_come_and_go_at_run_time(running):
    r = running.call("add-port", port={"name": "vsdextra", "type": "attach", "vf": 0})
    assert r["ok"] is False and "vf 0: already the VF of port" in r["error"]
    r = running.call("add-port", port={"name": "vsdextra", "type": "attach", "vf": 2, "tag": 5})
    assert r["ok"] is False and "tag: a port on a VF is not on the software switch" in r["error"]
    assert "vsdextra" not in running.config.read_text()
    running.ok("add-port", port={"name": "vsdextra", "type": "attach", "vf": 2, "vf_vlan": "40"})
    assert running.pf.vf(2).guest.name == "vsdextra" and running.pf.vf(2).vf_info()["vlan"] == 40
    assert load_topology(running.config).port("vsdextra").vf == 2
    r = running.call("set-port", name="vsdextra", changes={"vf": "1"})
    assert r["ok"] is False and "vf cannot change at run time" in r["error"]
    r = running.call("fdb/add", mac="02:00:00:00:00:09", port="vsdextra")
    assert r["ok"] is False and "is on a VF" in r["error"]
    number = running.sw.ports["vsdextra"].number
    assert number in running.sw.dp.graph._entry
    running.ok("del-port", name="vsdextra")
    assert running.pf.vf(2).guest is None and running.pf.vf(2).vf_info()["vlan"] == 0
    assert "vsdextra" not in {p.name for p in running.sw.topo.ports}
    assert number not in running.sw.dp.graph._entry
    running.ok("add-port", port={"name": "vsdagain", "type": "attach", "vf": 2})     # the VF is free again
    assert running.pf.vf(2).guest.name == "vsdagain"


def test_vf_commands_need_sriov_mode(tmp_path):
    from vswitch.drivers.live import LiveError, LiveSwitch
    sw = LiveSwitch(parse_topology({}))
    with pytest.raises(LiveError, match=r'no SR-IOV NIC: the config needs \[nic\] mode = "sriov"'):
        sw.vf_show()


def test_vswitchctl_vf_parses_the_ip_link_words():
    a = parse_args(["vf", "set", "nic0", "3", "vlan", "10", "qos", "3", "spoofchk", "off"])
    assert (a.cmd, a.vf_cmd, a.pf, a.n, a.words) == ("vf", "set", "nic0", 3, ["vlan", "10", "qos", "3", "spoofchk",
                                                                              "off"])
    a = parse_args(["vf", "mailbox", "2", "--json"])
    assert (a.vf_cmd, a.n, a.json) == ("mailbox", 2, True)
    with pytest.raises(SystemExit):
        parse_args(["vf", "set", "nic0", "x", "vlan", "1"])
    with pytest.raises(SystemExit):
        parse_args(["vf"])


def test_a_jumbo_mtu_on_a_vf_port_is_refused_by_the_pf_and_changes_nothing(running):
    before = (running.config.read_bytes(), running.pf.vf(0).show()["max_frame"])
    r = running.call("set-port", name=running.g[0], changes={"mtu": "9000"})
    assert r["ok"] is False and "vf 0: the guest's driver failed: set MTU 9000" in r["error"], r
    assert (running.config.read_bytes(), running.pf.vf(0).show()["max_frame"]) == before
    assert running.pf.vf(0).info.clear_to_send            # the guest is back, with its old MTU
    running.ok("set-port", name=running.g[0], changes={"mtu": "1400"})
    assert running.pf.vf(0).show()["max_frame"] == 1418
