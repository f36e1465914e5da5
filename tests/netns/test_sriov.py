"""vswitchd in SR-IOV mode: guests on VFs of the emulated NIC, with real namespaces and a real wire.

Each guest is a tap port in its own namespace on a VF; the uplink is a veth whose far side is in
namespace 'ext'.  The NIC's sorter, VEB and anti-spoof carry the frames; the software switch
must not see them.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nicmodel.tables import hash12
from tests.netns.harness import Daemon, guest, mac_of, ping_ok

pytestmark = pytest.mark.netns
L2TOOL = str(Path(__file__).with_name("l2tool.py"))
MACS = {"g1": "52:54:00:5d:00:01", "g2": "52:54:00:5d:00:02", "g3": "52:54:00:5d:00:03"}


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="vsd-sriov-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def sriov_topology(lab, extra: dict[str, list[str]] | None = None) -> tuple[str, dict[str, str], str, str]:
    """[nic] mode = "sriov" with 4 VFs; three tap guests on VFs 0-2 with admin MACs."""
    ext = lab.netns("ext")
    up, far = lab.veth("up", "far", ext)
    guest(lab, ext, far, "10.62.0.100/24")
    lines = ["[nic]", 'profile = "82599"', 'mode = "sriov"', "numvfs = 4", f'uplink = "{up}"', "",
             "[[port]]", f'name = "{up}"', 'type = "attach"', ""]
    taps = {}
    for k, g in enumerate(("g1", "g2", "g3")):
        ns = lab.netns(g)
        taps[g] = lab.name("t" + g)
        lines += ["[[port]]", f'name = "{taps[g]}"', f'netns = "{ns}"', f"vf = {k}", f'mac = "{MACS[g]}"',
                  *(extra or {}).get(g, []), ""]
    return "\n".join(lines), taps, ext, far


def start_guests(lab, taps: dict[str, str]) -> None:
    for i, g in enumerate(("g1", "g2", "g3"), 1):
        guest(lab, lab.prefix + g, taps[g], f"10.62.0.{i}/24")


def switch_work(c: dict) -> int:
    sw = c["switch"]
    return sw["forwarded"] + sw["flooded"] + sum(sw["drops"].values())


def vfs_by_port(d: Daemon) -> dict[str, dict]:
    return {v["port"]: v for v in d.ctl_json("vf", "show")["vfs"] if v["port"]}


def test_three_guests_on_vfs_ping_each_other_and_the_wire_and_the_switch_does_nothing(lab, workdir):
    text, taps, ext, _ = sriov_topology(lab)
    d = Daemon(lab, workdir, text).start()
    start_guests(lab, taps)
    for g in ("g1", "g2", "g3"):
        # The daemon gave each guest's interface its VF's admin MAC, as a VF's netdev takes it.
        assert mac_of(lab, lab.prefix + g, taps[g]) == MACS[g]
    for i, g in enumerate(("g1", "g2", "g3"), 1):
        assert ping_ok(lab, lab.prefix + g, "10.62.0.100"), (g, d.log.read_text())     # out through the wire
        assert ping_ok(lab, ext, f"10.62.0.{i}"), g                                     # in from the wire
    assert ping_ok(lab, lab.prefix + "g1", "10.62.0.2")                                 # VF to VF: VEB
    assert ping_ok(lab, lab.prefix + "g2", "10.62.0.3")
    assert ping_ok(lab, lab.prefix + "g3", "10.62.0.1")
    c = d.call("counters")
    assert switch_work(c) == 0, c["switch"]            # the hypervisor's switch touched no VF frame
    nic = c["nic"]["nic0"]
    assert nic["port"]["gprc"] > 0 and nic["port"]["gptc"] > 0
    assert nic["loopback_packets"] > 0                  # guest to guest inside the NIC
    vfs = vfs_by_port(d)
    c2 = d.call("counters")          # the two views are read one after the other: a late frame
    for k, g in enumerate(("g1", "g2", "g3")):   # (an ARP refresh, a neighbour probe) may fall between
        v = vfs[taps[g]]
        assert v["vf"] == k and v["mac"] == MACS[g] and v["guest"] == taps[g]
        assert v["stats"]["rx_packets"] >= 6 and v["stats"]["tx_packets"] >= 6, v["stats"]
        assert v["stats"]["tx_dropped"] == 0
        delivered = (c["nic"][f"nic0.vf{k}"]["rx_delivered"], c2["nic"][f"nic0.vf{k}"]["rx_delivered"])
        assert delivered[0] <= v["stats"]["rx_packets"] <= delivered[1], (delivered, v["stats"])
        assert v["domain"] == taps[g]                   # its DMA crosses the IOMMU in its own domain
    show = d.ctl_json("vf", "show")
    assert show["iommu"]["counters"]["translations"] > 0 and show["iommu"]["counters"]["faults"] == 0
    assert {p["name"]: p.get("nic") for p in d.call("show")["ports"]}[taps["g2"]] == "vf 1"
    # perf-show: the emulation's own cost apart from what a real hypervisor would spend.
    sv = d.call("perf-show")["nic"]["sriov"]
    assert sv["switch_frames"] == 0 and sv["vf_frames_in"] > 0
    assert sv["emulation_ns"] > sv["hypervisor_ns"] >= 0
    # The human views and the mailbox.
    r = d.ctl("vf", "show")
    assert r.returncode == 0 and MACS["g1"] in r.stdout and "ssvpc" in r.stdout, r.stderr
    mbx = d.ctl_json("vf", "mailbox", "0")
    assert any("RESET|ACK mac " + MACS["g1"] in m for m in mbx["messages"]), mbx


def _frame(dst: str, src: str) -> str:
    """An IPv4-ethertype frame (a UDP-like payload nobody answers) as hex."""
    return (bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", "")) + b"\x08\x00"
            + bytes(46)).hex()


def test_a_spoofing_guest_is_dropped_and_counted_while_the_others_keep_talking(lab, workdir):
    text, taps, ext, far = sriov_topology(lab)
    d = Daemon(lab, workdir, text).start()
    start_guests(lab, taps)
    assert ping_ok(lab, lab.prefix + "g3", "10.62.0.100")
    far_mac = mac_of(lab, ext, far)
    before = vfs_by_port(d)[taps["g3"]]["stats"]
    ssvpc0 = d.ctl_json("vf", "show")["ssvpc"]
    spoofed = [_frame(far_mac, "02:de:ad:be:ef:01") for _ in range(5)]
    lab.run(lab.prefix + "g3", sys.executable, L2TOOL, "send", taps["g3"], *spoofed)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = vfs_by_port(d)[taps["g3"]]["stats"]
        if now["tx_dropped"] - before["tx_dropped"] >= 5:
            break
        time.sleep(0.1)
    assert now["tx_dropped"] - before["tx_dropped"] == 5, (before, now)
    show = d.ctl_json("vf", "show")
    assert show["ssvpc"] - ssvpc0 == 5
    assert d.call("counters")["nic"]["nic0"]["drops"]["spoofed_mac"] >= 5
    # The spoofer's own frames still go; the others never noticed.
    assert ping_ok(lab, lab.prefix + "g3", "10.62.0.100")
    assert ping_ok(lab, lab.prefix + "g1", "10.62.0.100")
    assert ping_ok(lab, lab.prefix + "g1", "10.62.0.2")
    assert switch_work(d.call("counters")) == 0
    for g in ("g1", "g2"):
        assert vfs_by_port(d)[taps[g]]["stats"]["tx_dropped"] == 0


def sniff(lab, ns: str, iface: str, seconds: float, *until: str):
    p = lab.spawn(ns, sys.executable, L2TOOL, "sniff", iface, str(seconds), *until)
    assert p.stderr is not None
    for line in p.stderr:
        if line.strip() == "listening":
            return p
    raise AssertionError(f"the capture on {iface} did not start: {p.communicate(timeout=30)}")


def test_a_vfs_port_vlan_set_at_run_time_tags_its_frames_on_the_wire_and_is_saved(lab, workdir):
    text, taps, ext, far = sriov_topology(lab)
    d = Daemon(lab, workdir, text).start()
    start_guests(lab, taps)
    assert ping_ok(lab, lab.prefix + "g1", "10.62.0.100")
    r = d.ctl("vf", "set", "nic0", "0", "vlan", "30", "qos", "5")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    v = vfs_by_port(d)[taps["g1"]]
    assert (v["vlan"], v["qos"]) == (30, 5)
    saved = d.config.read_text()
    assert "vf_vlan = 30" in saved and "vf_qos = 5" in saved
    # g1's frames now leave tagged 30 (PCP 5): the far side, without VLAN 30, sees them tagged.
    sn = sniff(lab, ext, far, 20, f"src={MACS['g1']}")
    lab.ping(lab.prefix + "g1", "10.62.0.100", 2).wait(timeout=30)
    got = [f for f in json.loads(sn.communicate(timeout=60)[0]) if f["hex"][12:24] == MACS["g1"].replace(":", "")]
    assert got, "no frame of g1 on the wire"
    for f in got:
        raw = bytes.fromhex(f["hex"])
        assert raw[12:14] == b"\x81\x00", f
        tci = struct.unpack("!H", raw[14:16])[0]
        assert (tci & 0xFFF, tci >> 13) == (30, 5)
    # The others are untagged still, and talk.
    assert ping_ok(lab, lab.prefix + "g2", "10.62.0.100")
    # Refused: one line, a non-zero exit, nothing changed (not the VF, not the file).
    r = d.ctl("vf", "set", "nic0", "0", "vlan", "31", "max_tx_rate", "5")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "ixgbe requires 10 < max" in r.stderr, r.stderr
    v = vfs_by_port(d)[taps["g1"]]
    assert (v["vlan"], v["max_tx_rate"]) == (30, 0) and d.config.read_text() == saved
    r = d.ctl("vf", "set", "nic0", "0", "mac", "01:00:5e:00:00:01")
    assert r.returncode == 1 and "is a multicast address (Invalid argument)" in r.stderr, r.stderr
    r = d.ctl("vf", "set", "nic0", "0", "vlan", "ten")
    assert r.returncode == 1 and 'Invalid "vlan" value' in r.stderr, r.stderr
    r = d.ctl("vf", "set", "nic0", "3", "vlan", "7")
    assert r.returncode == 1 and "no guest port is on it" in r.stderr, r.stderr
    r = d.ctl("vf", "set", "eth9", "0", "vlan", "7")
    assert r.returncode == 1 and "unknown PF 'eth9'" in r.stderr, r.stderr
    assert d.config.read_text() == saved
    # Back to untagged at run time: g1 reaches the wire's far side again.
    assert d.ctl("vf", "set", "nic0", "0", "vlan", "0").returncode == 0
    lab.run(lab.prefix + "g1", "ip", "neigh", "flush", "dev", taps["g1"])
    assert ping_ok(lab, lab.prefix + "g1", "10.62.0.100")
    # While g1 was on VLAN 30 its VF took no untagged frame (AUPE off): the far side's untagged
    # unicast to g1 (its ARP probes) matched no VF and landed in the PF's pool, the switch's, which
    # has nowhere to send them.  No guest's frame ever went through the switch.
    sw = d.call("counters")["switch"]
    assert sw["forwarded"] == sw["flooded"] == 0 and sum(sw["drops"].values()) == sw["drops"]["no_flood_ports"]


def solicited_node(addr: str) -> bytes:
    """The solicited-node group's link-layer address of an IPv6 address (33:33:ff + its last 3 bytes)."""
    return b"\x33\x33\xff" + ipaddress.IPv6Address(addr).packed[-3:]


def link_local(lab, ns: str, dev: str, timeout: float = 10) -> str:
    """The interface's fe80:: address once its duplicate address detection is over."""
    deadline = time.monotonic() + timeout
    while True:
        out = lab.run(ns, "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link").stdout
        if "fe80::" in out and "tentative" not in out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return next(a for a in out.split() if a.startswith("fe80::")).split("/")[0]


def test_guests_on_vfs_reach_each_other_by_ipv6_their_drivers_join_their_multicast_groups(lab, workdir):
    # IPv6 neighbour discovery is multicast (to the target's solicited-node group): it reaches a
    # guest only if its VF's MTA hashes carry its groups, which its ixgbevf sets from its netdev's
    # list (SET_MULTICAST).  Without that, g1 never learns g2's MAC and the ping fails.
    text, taps, ext, _ = sriov_topology(lab)
    d = Daemon(lab, workdir, text).start()
    start_guests(lab, taps)
    for i, g in enumerate(("g1", "g2", "g3"), 1):
        lab.run(lab.prefix + g, "sysctl", "-qw", f"net.ipv6.conf.{taps[g]}.disable_ipv6=0")   # the lab's default: off
        lab.run(lab.prefix + g, "ip", "addr", "add", f"fd62::{i}/64", "dev", taps[g], "nodad")
    assert ping_ok(lab, lab.prefix + "g1", "fd62::2", 3), d.log.read_text()[-3000:]     # VF to VF: VEB
    assert ping_ok(lab, lab.prefix + "g3", "fd62::1", 3)
    g2_ll = link_local(lab, lab.prefix + "g2", taps["g2"])
    assert ping_ok(lab, lab.prefix + "g1", f"{g2_ll}%{taps['g1']}", 3)                 # link-local
    # Each VF carries its guest's groups: SET_MULTICAST in its mailbox, the hashes in the PF's
    # view, the multicast counted in the VF's RX.
    vfs = vfs_by_port(d)
    for k, g in enumerate(("g1", "g2", "g3")):
        v = vfs[taps[g]]
        want = {hash12(b"\x33\x33\x00\x00\x00\x01"), hash12(solicited_node(f"fd62::{k + 1}"))}
        assert want <= set(v["mc_hashes"]), (g, v["mc_hashes"])
        assert v["xcast_mode"] == "multi"
        assert any("VF->PF SET_MULTICAST" in m for m in v["mailbox"]), v["mailbox"]
        assert v["stats"]["multicast"] > 0, v["stats"]
    assert switch_work(d.call("counters")) == 0
    # A group joined later (a new address: its solicited-node group) is programmed too.
    lab.run(lab.prefix + "g2", "ip", "addr", "add", "fd62::77:2/64", "dev", taps["g2"], "nodad")
    h = hash12(solicited_node("fd62::77:2"))
    deadline = time.monotonic() + 10
    while h not in vfs_by_port(d)[taps["g2"]]["mc_hashes"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert h in vfs_by_port(d)[taps["g2"]]["mc_hashes"]
    assert ping_ok(lab, lab.prefix + "g1", "fd62::77:2", 3)
