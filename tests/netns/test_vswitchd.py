"""vswitchd end to end: real TAP devices, real namespaces, real ping/iperf3/scapy traffic."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dpkt
import pytest

from tests.netns.harness import Daemon, guest, mac_of, ping_ok

pytestmark = pytest.mark.netns
L2TOOL = str(Path(__file__).with_name("l2tool.py"))


@pytest.fixture
def workdir():
    # World-traversable, so the socket's own mode is what stops an unprivileged user.
    d = tempfile.mkdtemp(prefix="vswitchd-test-", dir="/tmp")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def tap_config(lab, guests: dict[str, dict]) -> tuple[str, dict[str, str]]:
    """TOML with one tap port per guest namespace; returns (text, {guest: tap name})."""
    lines = ["[bridge]", 'name = "br0"', ""]
    taps = {}
    for g, opts in guests.items():
        ns = lab.netns(g)
        tap = lab.name("t" + g)
        taps[g] = tap
        lines += ["[[port]]", f'name = "{tap}"', f'netns = "{ns}"']
        for k, v in opts.items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    return "\n".join(lines), taps


def ns_of(lab, g: str) -> str:
    return lab.prefix + g


def test_three_guests_ping_and_fdb_has_each_mac(lab, workdir):
    text, taps = tap_config(lab, {"g1": {}, "g2": {}, "g3": {}})
    d = Daemon(lab, workdir, text).start()
    for i, g in enumerate(("g1", "g2", "g3"), 1):
        guest(lab, ns_of(lab, g), taps[g], f"10.99.0.{i}/24")
    for a in (1, 2, 3):
        for b in (1, 2, 3):
            if a != b:
                assert ping_ok(lab, ns_of(lab, f"g{a}"), f"10.99.0.{b}", 2), (a, b, d.log.read_text())
    fdb = d.ctl_json("fdb", "show")
    where = {e["mac"]: e["port"] for e in fdb}
    for g in ("g1", "g2", "g3"):
        assert where[mac_of(lab, ns_of(lab, g), taps[g])] == taps[g]
    counters = d.ctl_json("counters")
    for tap in taps.values():
        assert counters["ports"][tap]["rx_packets"] >= 4 and counters["ports"][tap]["tx_packets"] >= 4
    sw = counters["switch"]
    assert sw["forwarded"] > 0 and sw["drops"]["vlan_not_allowed"] == 0
    assert d.stop() == 0
    # Clean exit: the daemon's TAP devices are gone, the socket is removed.
    assert not os.path.exists(d.socket)
    for g, tap in taps.items():
        assert lab.run(ns_of(lab, g), "ip", "-o", "link").stdout.count(tap) == 0


def sniff(lab, ns: str, iface: str, seconds: float, *until: str) -> subprocess.Popen[str]:
    """Capture on ``iface`` until each of ``until`` (``src=MAC``, ``dst=MAC``) has matched a frame,
    at most ``seconds``; returns once the capture is listening."""
    p = lab.spawn(ns, sys.executable, L2TOOL, "sniff", iface, str(seconds), *until)
    assert p.stderr is not None
    for line in p.stderr:                  # scapy's import first (seconds on a busy machine)
        if line.strip() == "listening":
            return p
    raise AssertionError(f"the capture on {iface} did not start: {p.communicate(timeout=30)}")


def sniff_result(p: subprocess.Popen[str]) -> list[dict]:
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return json.loads(out)


def test_vlan_access_ports_are_isolated_and_trunk_sees_both_tagged(lab, workdir):
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    text, taps = tap_config(lab, {"a1": {"tag": 10}, "a2": {"tag": 10}, "b1": {"tag": 20},
                                  "tr": {"vlan_mode": "trunk", "trunks": "10,20"}})
    d = Daemon(lab, workdir, text).start()
    guest(lab, ns_of(lab, "a1"), taps["a1"], "10.98.0.1/24")
    guest(lab, ns_of(lab, "a2"), taps["a2"], "10.98.0.2/24")
    guest(lab, ns_of(lab, "b1"), taps["b1"], "10.98.0.3/24")
    lab.run(ns_of(lab, "tr"), "ip", "link", "set", taps["tr"], "up")
    assert ping_ok(lab, ns_of(lab, "a1"), "10.98.0.2")             # same VLAN
    assert not ping_ok(lab, ns_of(lab, "a1"), "10.98.0.3", 2)      # VLAN 10 -> 20: no way
    assert not ping_ok(lab, ns_of(lab, "b1"), "10.98.0.2", 2)

    # The trunk carries both VLANs, tagged: ARP broadcasts from a1 (VLAN 10) and b1 (VLAN 20).
    # The capture ends when it has seen both guests (not after a fixed time: an unanswered ping
    # takes seconds, more without iputils-ping).
    mac_a1 = mac_of(lab, ns_of(lab, "a1"), taps["a1"])
    mac_b1 = mac_of(lab, ns_of(lab, "b1"), taps["b1"])
    sn = sniff(lab, ns_of(lab, "tr"), taps["tr"], 30, f"src={mac_a1}", f"src={mac_b1}")
    pings = [lab.ping(ns_of(lab, "a1"), "10.98.0.77", 2), lab.ping(ns_of(lab, "b1"), "10.98.0.78", 2)]
    frames = sniff_result(sn)
    for p in pings:
        p.wait(timeout=30)
    seen = {(Ether(bytes.fromhex(f["hex"])).src, f["vlan"]) for f in frames}
    assert (mac_a1, 10) in seen and (mac_b1, 20) in seen, seen
    assert (mac_a1, None) not in seen and (mac_b1, None) not in seen   # never untagged on the trunk

    # A tagged frame sent on the trunk in VLAN 10 reaches a1, whose reply comes back tagged 10.
    me = "02:aa:00:00:00:10"
    req = Ether(dst="ff:ff:ff:ff:ff:ff", src=me) / Dot1Q(vlan=10) / ARP(
        op=1, hwsrc=me, psrc="10.98.0.50", pdst="10.98.0.1")
    sn = sniff(lab, ns_of(lab, "tr"), taps["tr"], 30, f"dst={me}")
    lab.run(ns_of(lab, "tr"), sys.executable, L2TOOL, "send", taps["tr"], bytes(req).hex())
    replies = [Ether(bytes.fromhex(f["hex"])) for f in sniff_result(sn)]
    arp_replies = [p for p in replies if ARP in p and p[ARP].op == 2 and p[ARP].psrc == "10.98.0.1"]
    assert arp_replies and all(p[Dot1Q].vlan == 10 for p in arp_replies)
    fdb = d.ctl_json("fdb", "show", "--vlan", "10")
    assert {"mac": me, "port": taps["tr"]}.items() <= next(e for e in fdb if e["mac"] == me).items()


def test_isolated_ports_cannot_talk_to_each_other(lab, workdir):
    text, taps = tap_config(lab, {"i1": {"isolated": True}, "i2": {"isolated": True}, "n": {}})
    Daemon(lab, workdir, text).start()
    guest(lab, ns_of(lab, "i1"), taps["i1"], "10.97.0.1/24")
    guest(lab, ns_of(lab, "i2"), taps["i2"], "10.97.0.2/24")
    guest(lab, ns_of(lab, "n"), taps["n"], "10.97.0.3/24")
    assert ping_ok(lab, ns_of(lab, "i1"), "10.97.0.3")
    assert ping_ok(lab, ns_of(lab, "i2"), "10.97.0.3")
    assert not ping_ok(lab, ns_of(lab, "i1"), "10.97.0.2", 2)


def test_ports_deleted_and_readded_at_runtime(lab, workdir):
    text, taps = tap_config(lab, {"g1": {}, "g2": {}})
    d = Daemon(lab, workdir, text).start()
    guest(lab, ns_of(lab, "g1"), taps["g1"], "10.96.0.1/24")
    guest(lab, ns_of(lab, "g2"), taps["g2"], "10.96.0.2/24")
    assert ping_ok(lab, ns_of(lab, "g1"), "10.96.0.2")
    r = d.ctl("del-port", taps["g2"])
    assert r.returncode == 0, r.stderr
    assert [p["name"] for p in d.call("show")["ports"]] == [taps["g1"]]
    assert not ping_ok(lab, ns_of(lab, "g1"), "10.96.0.2", 2)
    r = d.ctl("add-port", taps["g2"], "--netns", ns_of(lab, "g2"))
    assert r.returncode == 0, r.stderr
    guest(lab, ns_of(lab, "g2"), taps["g2"], "10.96.0.2/24")       # a new device: configure it again
    # The new TAP has a new MAC: g1 must forget the old one (a VM would keep its MAC).
    lab.run(ns_of(lab, "g1"), "ip", "neigh", "flush", "dev", taps["g1"])
    assert ping_ok(lab, ns_of(lab, "g1"), "10.96.0.2")


def test_attach_port_pending_up_down_up_while_others_keep_talking(lab, workdir):
    text, taps = tap_config(lab, {"g1": {}, "g2": {}})
    d = Daemon(lab, workdir, text).start()
    guest(lab, ns_of(lab, "g1"), taps["g1"], "10.95.0.1/24")
    guest(lab, ns_of(lab, "g2"), taps["g2"], "10.95.0.2/24")
    vm_ns = lab.netns("vm")
    veth = lab.name("v0")
    r = d.ctl("add-port", veth, "--type", "attach")
    assert r.returncode == 0 and "pending" in r.stderr
    assert d.port(veth)["state"] == "pending"

    def make_veth():                         # created down; the daemon sets its end up
        lab.veth("v0", "p0", vm_ns)
        guest(lab, vm_ns, lab.name("p0"), "10.95.0.9/24")

    make_veth()
    d.wait_state(veth, "up")
    assert ping_ok(lab, vm_ns, "10.95.0.1")
    # The "VM" goes away: the port goes down, the others keep forwarding.
    subprocess.run(["ip", "link", "del", veth], check=True)
    d.wait_state(veth, "down")
    assert ping_ok(lab, ns_of(lab, "g1"), "10.95.0.2")
    assert d.proc is not None and d.proc.poll() is None
    make_veth()
    p = d.wait_state(veth, "up")
    assert p["attaches"] == 2
    assert ping_ok(lab, vm_ns, "10.95.0.2")


def test_attach_port_sets_its_interface_up_and_follows_its_state(lab, workdir):
    """A veth created down (as QEMU leaves a script=no tap) is set up by the daemon when the port
    attaches.  Its operational state is reported as netlink tells it: an admin's down by hand is
    reported and left alone, the far side down is no carrier; re-created, it is set up again."""
    from vswitch.io import netlink
    text, taps = tap_config(lab, {"g1": {}})
    d = Daemon(lab, workdir, text).start()
    guest(lab, ns_of(lab, "g1"), taps["g1"], "10.87.0.1/24")
    vm_ns = lab.netns("vm")
    veth, peer = lab.name("v0"), lab.name("p0")
    assert d.ctl("add-port", veth, "--type", "attach").returncode == 0
    p = d.port(veth)
    assert (p["state"], p["admin_state"], p["link_state"]) == ("pending", None, None)

    lab.veth("v0", "p0", vm_ns)                         # both ends down: nobody here sets ours up
    guest(lab, vm_ns, peer, "10.87.0.9/24")             # the guest brings its own side up
    p = d.wait_state(veth, "up")
    assert (p["admin_state"], p["link_state"], p["error"]) == ("up", "up", None)
    assert netlink.link_state(veth).up
    assert ping_ok(lab, vm_ns, "10.87.0.1"), d.log.read_text()

    # The admin sets it down by hand: reported, and not overruled.
    netlink.set_up(veth, up=False)
    p = d.wait_state(veth, "down", error="interface down")
    assert (p["admin_state"], p["link_state"]) == ("down", "down")
    show = d.ctl("show")
    assert show.returncode == 0 and "interface down" in show.stdout, show.stdout
    assert not ping_ok(lab, vm_ns, "10.87.0.1", 1)
    assert not netlink.link_state(veth).up and d.port(veth)["state"] == "down"
    lab.run(vm_ns, "ip", "neigh", "flush", "dev", peer)  # the guest's unanswered ARP would swallow the next ping
    netlink.set_up(veth)                                 # and up again by hand
    d.wait_state(veth, "up")
    assert ping_ok(lab, vm_ns, "10.87.0.1"), d.log.read_text()

    # The far side goes down: up, but no carrier.
    lab.run(vm_ns, "ip", "link", "set", peer, "down")
    p = d.wait_state(veth, "down", error="no carrier")
    assert (p["admin_state"], p["link_state"]) == ("up", "down")
    lab.run(vm_ns, "ip", "link", "set", peer, "up")
    d.wait_state(veth, "up")

    # Left down by the admin, then gone and back (a VM restart): set up again by the daemon.
    netlink.set_up(veth, up=False)
    d.wait_state(veth, "down", error="interface down")
    subprocess.run(["ip", "link", "del", veth], check=True)
    p = d.wait_state(veth, "down", error="removed")
    assert (p["admin_state"], p["link_state"]) == (None, None)
    lab.veth("v0", "p0", vm_ns)
    guest(lab, vm_ns, peer, "10.87.0.9/24")
    p = d.wait_state(veth, "up")
    assert p["attaches"] == 2
    assert ping_ok(lab, vm_ns, "10.87.0.1"), d.log.read_text()
    assert d.proc is not None and d.proc.poll() is None


def test_attach_port_on_a_tap_a_vm_process_holds(lab, workdir):
    """QEMU's -netdev tap,script=no in miniature: the "VM" (this process) creates the tap, down,
    and holds its fd.  The daemon, started first, attaches, sets it up, and frames flow both ways;
    the VM dies (its tap vanishes) and starts again: the port follows, with no help."""
    from tests.netns.conftest import responder
    from vswitch.io.tap import TapPort
    text, taps = tap_config(lab, {"g1": {}})
    d = Daemon(lab, workdir, text).start()
    g1 = ns_of(lab, "g1")
    guest(lab, g1, taps["g1"], "10.86.0.1/24")
    name = lab.name("vm0")
    r = d.ctl("add-port", name, "--type", "attach")
    assert r.returncode == 0 and "pending" in r.stderr

    def talk(vm: TapPort, mac: str) -> None:
        lab.run(g1, "ip", "neigh", "flush", "dev", taps["g1"])
        ping = lab.ping(g1, "10.86.0.2", 3)
        seen = responder(vm, "10.86.0.2", mac, done=lambda: ping.poll() is not None)
        out, err = ping.communicate(timeout=10)
        assert ping.returncode == 0, (out, err, seen)
        assert seen["icmp"] == 3

    for boot in (1, 2):
        vm = TapPort(name)                                # created down, as QEMU's
        lab.on_cleanup(vm.close)
        p = d.wait_state(name, "up")
        assert p["attaches"] == boot and p["link_state"] == "up"
        talk(vm, f"02:00:00:86:00:0{boot}")
        vm.close()                                        # the VM is killed: its tap goes with it
        d.wait_state(name, "down", error="removed")

    # A persistent tap (`ip tuntap add`, libvirt's managed='no') with no process behind it:
    # attached and set up, but without carrier until a VM opens it.
    TapPort(name, persist=True).close()
    p = d.wait_state(name, "down", error="no carrier")
    assert (p["attaches"], p["admin_state"], p["link_state"]) == (3, "up", "down")
    vm = TapPort(name, persist=True)
    lab.on_cleanup(lambda: vm.close(remove=True))
    d.wait_state(name, "up")
    talk(vm, "02:00:00:86:00:03")


def test_attach_port_to_a_vm_started_before_the_daemon(lab, workdir):
    """A VM's tap that exists, down, when vswitchd starts is set up as the port attaches."""
    from tests.netns.conftest import responder
    from vswitch.io.tap import TapPort
    name = lab.name("vm1")
    vm = TapPort(name)                                    # the VM was there first
    lab.on_cleanup(vm.close)
    text, taps = tap_config(lab, {"g1": {}})
    d = Daemon(lab, workdir, text + f'\n[[port]]\nname = "{name}"\ntype = "attach"\n').start()
    p = d.wait_state(name, "up")
    assert (p["attaches"], p["admin_state"], p["link_state"]) == (1, "up", "up")
    g1 = ns_of(lab, "g1")
    guest(lab, g1, taps["g1"], "10.85.0.1/24")
    ping = lab.ping(g1, "10.85.0.2", 3)
    seen = responder(vm, "10.85.0.2", "02:00:00:85:00:02", done=lambda: ping.poll() is not None)
    out, err = ping.communicate(timeout=10)
    assert ping.returncode == 0 and seen["icmp"] == 3, (out, err, seen, d.log.read_text())


def test_malformed_frames_are_counted_and_dropped_forwarding_goes_on(lab, workdir):
    text, taps = tap_config(lab, {"g1": {}, "g2": {}})
    d = Daemon(lab, workdir, text).start()
    guest(lab, ns_of(lab, "g1"), taps["g1"], "10.94.0.1/24")
    guest(lab, ns_of(lab, "g2"), taps["g2"], "10.94.0.2/24")
    bad = [
        "ffffffffffff" + "020000000001" + "8100" + "00",          # 802.1Q tag cut short (15 bytes)
        "ffffffffffff" + "010000000001" + "0800" + "00" * 46,     # multicast source MAC
        "ffffffffffff" + "000000000000" + "0800" + "00" * 46,     # all-zero source MAC
        "0180c2000000" + "020000000002" + "0026" + "42" * 46,     # STP BPDU: link-local, not forwarded
    ]
    before = d.call("counters")["switch"]["drops"]
    lab.run(ns_of(lab, "g1"), sys.executable, L2TOOL, "send", taps["g1"], *bad)
    time.sleep(0.5)
    c = d.call("counters")
    drops = c["switch"]["drops"]
    assert drops["runt"] - before["runt"] == 1
    assert drops["invalid_src_mac"] - before["invalid_src_mac"] == 2
    assert drops["reserved_multicast"] - before["reserved_multicast"] == 1
    assert c["ports"][taps["g1"]]["rx_dropped"] >= 4
    assert ping_ok(lab, ns_of(lab, "g1"), "10.94.0.2")
    assert d.proc is not None and d.proc.poll() is None


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed (apt-get install iperf3)")
def test_iperf3_tcp_crosses_as_gso_superframes(lab, workdir):
    text, taps = tap_config(lab, {"g1": {}, "g2": {}})
    d = Daemon(lab, workdir, text).start()
    guest(lab, ns_of(lab, "g1"), taps["g1"], "10.93.0.1/24")
    guest(lab, ns_of(lab, "g2"), taps["g2"], "10.93.0.2/24")
    server = lab.spawn(ns_of(lab, "g2"), "iperf3", "-s", "-1")
    time.sleep(0.5)
    r = lab.run(ns_of(lab, "g1"), "iperf3", "-c", "10.93.0.2", "-t", "3", "-J", timeout=60)
    server.wait(timeout=20)
    res = json.loads(r.stdout)
    assert "error" not in res, res.get("error")
    received = res["end"]["sum_received"]["bytes"]
    assert received > 10_000_000
    perf = d.call("perf-show")
    sender = perf["ports"][taps["g1"]]
    assert sender["gso_frames_in"] > 0 and sender["max_frame_bytes"] > 1514   # super-frames, unsegmented
    counters = d.call("counters")
    assert counters["ports"][taps["g1"]]["rx_bytes"] >= received
    assert counters["switch"]["drops"]["oversize"] == 0
    for tap in taps.values():
        assert counters["ports"][tap]["tx_errors"] == 0


def call_as_user(uid: int, path: str) -> str:
    """What vswitchctl's client says when an unprivileged user asks the daemon (forked, setuid)."""
    from vswitch.control.client import Client
    from vswitch.control.protocol import ControlError
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                          # child: drop root, try the socket
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                Client(path).call("show")
                msg = "accepted"
            except ControlError as e:
                msg = str(e)
            os.write(w, msg.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return data.decode()


def test_restart_keeps_ports_and_socket_refuses_unprivileged_user(lab, workdir):
    d = Daemon(lab, workdir).start()                      # no config file yet: empty switch
    ns = lab.netns("g1")
    tap = lab.name("tg1")
    assert d.ctl("add-port", tap, "--netns", ns, "--vlan", "30", "--isolated").returncode == 0
    assert d.ctl("set-port", tap, "mtu=1400", "learning=off").returncode == 0
    pend = lab.name("pv")
    assert d.ctl("add-port", pend, "--type", "attach", "--trunk", "5-7").returncode == 0
    saved = d.config.read_text()
    assert tap in saved and pend in saved
    mode = stat.S_IMODE(os.stat(d.socket).st_mode)
    assert mode == 0o660
    msg = call_as_user(65534, d.socket)                   # nobody
    assert msg.startswith("permission denied on ") and "\n" not in msg
    assert d.stop() == 0

    d2 = Daemon(lab, workdir).start()
    ports = {p["name"]: p for p in d2.call("show")["ports"]}
    assert set(ports) == {tap, pend}
    assert ports[tap]["tag"] == 30 and ports[tap]["isolated"] and ports[tap]["mtu"] == 1400
    assert ports[tap]["learning"] is False and ports[tap]["state"] == "up"
    assert ports[pend]["trunks"] == "5-7" and ports[pend]["state"] == "pending"
    mtu = json.loads(lab.run(ns, "ip", "-j", "link", "show", tap).stdout)[0]["mtu"]
    assert mtu == 1400


def test_cli_errors_are_one_clear_line(lab, workdir):
    text, taps = tap_config(lab, {"g1": {}})
    d = Daemon(lab, workdir, text).start()
    cases = [
        (["del-port", "nosuchport"], "unknown port 'nosuchport'"),
        (["add-port", lab.name("x"), "--vlan", "5000"], "bad VLAN 5000"),
        (["set-port", taps["g1"], "tag=abc"], "tag=abc: expected an integer"),
        (["set-port", taps["g1"], "colour=blue"], "unknown port setting 'colour'"),
        (["fdb", "show", "--vlan", "4096"], "bad VLAN 4096"),
        (["counters", "--port", "nope"], "unknown port 'nope'"),
    ]
    for argv, msg in cases:
        r = d.ctl(*argv)
        assert r.returncode == 1, (argv, r.stdout, r.stderr)
        assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, (argv, r.stderr)
    d.stop()
    r = d.ctl("show")
    assert r.returncode == 1 and "vswitchd is not running" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_and_pcap_mirror(lab, workdir):
    text, taps = tap_config(lab, {"g1": {}, "g2": {}})
    port = _free_port()
    d = Daemon(lab, workdir, text, extra=["--metrics", f"127.0.0.1:{port}",
                                          "--mirror-dir", str(workdir / "mirrors")]).start()
    guest(lab, ns_of(lab, "g1"), taps["g1"], "10.92.0.1/24")
    guest(lab, ns_of(lab, "g2"), taps["g2"], "10.92.0.2/24")
    pcap = workdir / "mirrors" / "mirror.pcap"
    r = d.ctl("mirror", "add", "m1", "--select-src-port", taps["g1"], "--output-pcap", "mirror.pcap")
    assert r.returncode == 0, r.stderr
    assert ping_ok(lab, ns_of(lab, "g1"), "10.92.0.2", 3)
    m = d.ctl_json("mirror", "show")[0]
    assert m["tx_packets"] >= 4
    # Readable while the mirror is still writing (as tcpdump -r on a growing file).
    with open(pcap, "rb") as f:
        frames = [bytes(buf) for _, buf in dpkt.pcap.Reader(f)]
    assert d.ctl("mirror", "del", "m1").returncode == 0
    src = bytes.fromhex(mac_of(lab, ns_of(lab, "g1"), taps["g1"]).replace(":", ""))
    assert len(frames) == m["tx_packets"] and all(f[6:12] == src for f in frames)
    icmp = [f for f in frames if f[12:14] == b"\x08\x00" and f[23] == 1]
    assert len(icmp) >= 3
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    line = next(ln for ln in body.splitlines()
                if ln.startswith(f'vswitch_port_rx_packets_total{{port="{taps["g1"]}"}}'))
    assert float(line.split()[-1]) >= 4
    assert 'vswitch_drops_total{element="br0",reason="runt"}' in body


def test_pcap_mirror_writes_only_new_files_in_its_directory(lab, workdir):
    """A socket client names the mirror's file and the daemon is root: the name must not reach
    any file but a new one in --mirror-dir (no absolute paths elsewhere, no '..', no symlinks,
    no existing file unless --append or --replace)."""
    text, taps = tap_config(lab, {"g1": {}})
    mdir = workdir / "mirrors"
    d = Daemon(lab, workdir, text, extra=["--mirror-dir", str(mdir)]).start()
    victim = workdir / "victim.conf"
    victim.write_text("precious\n")

    def refused(name: str, words: str, *flags: str) -> None:
        r = d.ctl("mirror", "add", "m", "--select-all", "--output-pcap", name, *flags)
        assert r.returncode == 1 and words in r.stderr, (name, flags, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert victim.read_text() == "precious\n"
        assert d.ctl_json("mirror", "show") == []

    refused(str(victim), "outside the mirror directory")
    refused(str(victim), "outside the mirror directory", "--replace")
    refused("../victim.conf", "'..' is refused", "--append")
    refused("sub/x.pcap", "no subdirectories")
    refused("", "a pcap mirror needs a file name")                     # not a mirror with no output

    r = d.ctl("mirror", "add", "ok", "--select-all", "--output-pcap", "first.pcap")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(mdir).st_mode) == 0o750                 # made by the daemon, 0750
    assert d.ctl_json("mirror", "show")[0]["output_pcap"] == str(mdir / "first.pcap")
    assert d.ctl("mirror", "del", "ok").returncode == 0
    assert (mdir / "first.pcap").read_bytes()[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")

    os.symlink(victim, mdir / "evil.pcap")                              # planted by a local user
    for flags in ((), ("--append",), ("--replace",)):
        refused("evil.pcap", "is a symbolic link: refused", *flags)
    refused("first.pcap", "exists: give --append or --replace")
    (mdir / "first.pcap").write_bytes(b"x" * 100)
    r = d.ctl("mirror", "add", "again", "--select-all", "--output-pcap", str(mdir / "first.pcap"), "--replace")
    assert r.returncode == 0, r.stderr
    assert (mdir / "first.pcap").stat().st_size == 24                   # a fresh pcap header, nothing else
    r = d.ctl("mirror", "add", "both", "--select-all", "--output-pcap", "x.pcap", "--append", "--replace")
    assert r.returncode == 2 and "not allowed with argument" in r.stderr


def _rx_packets(lab, ns: str, ifname: str) -> int:
    return json.loads(lab.run(ns, "ip", "-j", "-s", "link", "show", ifname).stdout)[0]["stats64"]["rx"]["packets"]


def test_mirror_to_a_port_copies_what_another_port_sends(lab, workdir):
    text, taps = tap_config(lab, {"g1": {}, "g2": {}, "spy": {}})
    d = Daemon(lab, workdir, text).start()
    guest(lab, ns_of(lab, "g1"), taps["g1"], "10.91.0.1/24")
    guest(lab, ns_of(lab, "g2"), taps["g2"], "10.91.0.2/24")
    lab.run(ns_of(lab, "spy"), "ip", "link", "set", taps["spy"], "up")
    assert ping_ok(lab, ns_of(lab, "g1"), "10.91.0.2", 1)              # learn first: no floods to the spy
    before = _rx_packets(lab, ns_of(lab, "spy"), taps["spy"])
    r = d.ctl("mirror", "add", "m2", "--select-dst-port", taps["g2"], "--output-port", taps["spy"])
    assert r.returncode == 0, r.stderr
    assert ping_ok(lab, ns_of(lab, "g1"), "10.91.0.2", 5)
    m = d.ctl_json("mirror", "show")[0]
    assert m["output_port"] == taps["spy"] and m["tx_packets"] >= 5 and m["tx_dropped"] == 0
    # The spy's interface received the mirrored copies (the echo requests sent to g2) and nothing else
    # reached it: unicast between g1 and g2 is not flooded once learned.
    got = _rx_packets(lab, ns_of(lab, "spy"), taps["spy"]) - before
    assert got == m["tx_packets"]
    assert d.ctl("mirror", "add", "bad", "--select-all", "--output-port", "nope").returncode == 1


def test_busy_poll_catches_replies_without_sleeping(lab, workdir):
    text, taps = tap_config(lab, {"g1": {}, "g2": {}})
    d = Daemon(lab, workdir, text, extra=["--busy-poll-us", "500"]).start()
    guest(lab, ns_of(lab, "g1"), taps["g1"], "10.90.0.1/24")
    guest(lab, ns_of(lab, "g2"), taps["g2"], "10.90.0.2/24")
    assert ping_ok(lab, ns_of(lab, "g1"), "10.90.0.2", 5)
    loop = d.call("perf-show")["loop"]
    assert loop["busy_poll_us"] == 500
    # Each echo reply comes back within the polling window of its request: caught while spinning.
    assert loop["busy_poll_catches"] >= 5
    r = subprocess.run([sys.executable, "-m", "vswitch.daemon", "--busy-poll-us", "-1"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "--busy-poll-us -1: must be 0-1000000" in r.stderr


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed (apt-get install iperf3)")
def test_busy_poll_under_continuous_traffic_keeps_the_control_socket_answering(lab, workdir):
    """A spinning loop hands the event loop back every millisecond: while UDP never lets the
    switch go idle, vswitchctl still answers promptly and sees the counters move."""
    text, taps = tap_config(lab, {"g1": {}, "g2": {}})
    d = Daemon(lab, workdir, text, extra=["--busy-poll-us", "100000"]).start()
    guest(lab, ns_of(lab, "g1"), taps["g1"], "10.89.0.1/24")
    guest(lab, ns_of(lab, "g2"), taps["g2"], "10.89.0.2/24")
    assert ping_ok(lab, ns_of(lab, "g1"), "10.89.0.2", 2)
    server = lab.spawn(ns_of(lab, "g2"), "iperf3", "-s", "-1")
    time.sleep(0.5)
    client = lab.spawn(ns_of(lab, "g1"), "iperf3", "-c", "10.89.0.2", "-u", "-l", "64", "-b", "10M", "-t", "5")
    time.sleep(1.5)
    seen, waits = [], []
    for _ in range(3):
        t0 = time.monotonic()
        seen.append(d.call("counters")["ports"][taps["g1"]]["rx_packets"])
        waits.append(time.monotonic() - t0)
        time.sleep(0.5)
    running = client.poll() is None
    client.wait(timeout=30)
    server.wait(timeout=30)
    assert max(waits) < 1.0, waits              # a starved loop answers only once the traffic stops (3.6 s)
    assert running, "the traffic ended before the control calls did: the test proved nothing"
    assert seen[0] < seen[1] < seen[2]          # answered while the traffic ran, not after it
    assert d.call("perf-show")["loop"]["busy_poll_catches"] > 0


def test_frames_a_down_guest_refuses_count_as_tx_dropped_not_sent(lab, workdir):
    """A guest whose interface is down refuses every write (EIO): those frames are tx_dropped,
    and neither tx_packets nor tx_bytes counts them."""
    from vswitch.io import netlink
    text, taps = tap_config(lab, {"g1": {}, "g2": {}})
    d = Daemon(lab, workdir, text).start()
    guest(lab, ns_of(lab, "g1"), taps["g1"], "10.88.0.1/24")
    netlink.configure(taps["g2"], netns=ns_of(lab, "g2"), up=False)
    before = d.call("counters")["ports"][taps["g2"]]
    lab.ping(ns_of(lab, "g1"), "10.88.0.2", 2).wait(timeout=20)     # ARP broadcasts, flooded to g2
    after = d.call("counters")["ports"][taps["g2"]]
    assert after["tx_dropped"] - before["tx_dropped"] >= 2
    assert (after["tx_packets"], after["tx_bytes"]) == (before["tx_packets"], before["tx_bytes"])
