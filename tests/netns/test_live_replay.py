"""``vswitch-bench replay --live`` on real interfaces in namespaces this test makes.

Frames are replayed onto a veth whose peer sits in another namespace, and captured there
with tcpdump: every frame arrives, in order, bytes intact (VLAN tags included), in every
send path (streamed, preloaded with sendmmsg, preloaded one send each, top speed).  The
summary is compared with Debian's tcpreplay on the same capture.  ``--port`` replays into
a running vswitchd's tap and attach ports and the frames come out of its other port.
Nothing is ever sent outside the namespaces of the test's own ``Lab``.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench.replay_summary import parse_summary
from bench.traces import arp, ether, ipv4, udp
from tests.netns.harness import ROOT, Daemon
from vswitch.io.pcap import CaptureError, PcapWriter, read_capture

pytestmark = pytest.mark.netns
BCAST = b"\xff" * 6
UNICAST = bytes([2, 0, 0, 1, 0, 0xEE])          # never one of the frames' source MACs


def mixed_frames(n: int) -> list[bytes]:
    """n distinct frames: IPv4 UDP of many sizes (60-1514 B), VLAN-tagged ones, ARP, IPv6, broadcast."""
    out = []
    for i in range(n):
        src = bytes([2, 0, 0, 0, (i >> 8) & 0xFF, i & 0xFF])
        seq = i.to_bytes(4, "big")
        kind = i % 7
        if kind == 0:
            out.append(ether(BCAST, src, 0x0806, arp(1, src, bytes([10, 1, 0, i % 250 + 1]), bytes(6),
                                                     bytes([10, 1, 0, 254]))))
            continue
        size = (60, 64, 128, 566, 1000, 1514)[i % 6]
        pay = seq + bytes(max(0, size - 14 - 20 - 8 - 4 - (4 if kind == 1 else 0)))
        ip = ipv4(bytes([10, 1, 0, 1]), bytes([10, 1, i % 5, 2]), 17,
                  udp(bytes([10, 1, 0, 1]), bytes([10, 1, i % 5, 2]), 1000 + i % 3, 2000, pay), ident=i & 0xFFFF)
        if kind == 1:
            out.append(ether(UNICAST, src, 0x0800, ip, vlan=5))
        elif kind == 2:
            v6 = (b"\x60\0\0\0" + (8 + len(seq)).to_bytes(2, "big") + b"\x11\x40" + b"\xfe\x80" + bytes(13) + b"\x01"
                  + b"\xff\x02" + bytes(13) + b"\x01" + b"\x13\x88\x13\x89" + (8 + len(seq)).to_bytes(2, "big")
                  + b"\0\0" + seq)
            out.append(ether(b"\x33\x33\0\0\0\x01", src, 0x86DD, v6))
        else:
            out.append(ether(UNICAST, src, 0x0800, ip))
    return out


def write(path: Path, frames: list[bytes], gap_ns: int = 100_000) -> Path:
    with PcapWriter(path) as w:
        for i, f in enumerate(frames):
            w.write(f, 1_700_000_000_000_000_000 + i * gap_ns)
    os.chmod(path, 0o644)
    return path


@pytest.fixture
def pair(lab):
    """A veth pair: one end in namespace tx (we send there), the other in namespace rx."""
    tx, rx = lab.netns("t"), lab.netns("r")
    a, b = lab.name("a"), lab.name("b")
    subprocess.run(["ip", "link", "add", a, "netns", tx, "type", "veth", "peer", "name", b, "netns", rx], check=True)
    lab.run(tx, "ip", "link", "set", a, "up")
    lab.run(rx, "ip", "link", "set", b, "up")
    return tx, a, rx, b


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="vst-live-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def bench(lab, ns: str | None, *argv: str, user: int | None = None, timeout: float = 120):
    cmd = [sys.executable, "-m", "bench.cli", "replay", "--live", *argv]
    if user is not None:                     # after ip netns exec, which needs root itself
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    if ns:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


class Tcpdump:
    """tcpdump -w in a namespace, started and listening before the replay; `frames` stops it."""

    def __init__(self, lab, ns: str, iface: str, path: Path) -> None:
        if shutil.which("tcpdump") is None:
            pytest.skip("needs tcpdump (apt-get install tcpdump)")
        self.path = path
        self.p = lab.spawn(ns, "tcpdump", "-i", iface, "-w", str(path), "-U", "-n", "-s", "2048", "-B", "32768",
                           "--immediate-mode")
        deadline = time.monotonic() + 20
        buf = ""
        assert self.p.stderr is not None
        while time.monotonic() < deadline:
            if select.select([self.p.stderr], [], [], 0.5)[0]:
                line = self.p.stderr.readline()
                buf += line
                if "listening on" in line:
                    return
            if self.p.poll() is not None:
                break
        raise AssertionError(f"tcpdump did not start: {buf}{self.p.stderr.read() if self.p.poll() is not None else ''}")

    def frames(self, expect: int, timeout: float = 20) -> list[bytes]:
        deadline = time.monotonic() + timeout
        got: list[bytes] = []
        while time.monotonic() < deadline:
            with contextlib.suppress(CaptureError):      # the last record may be half written
                got = [d for _, d in read_capture(self.path)] if self.path.stat().st_size >= 24 else []
            if len(got) >= expect:
                break
            time.sleep(0.1)
        time.sleep(0.2)
        self.p.send_signal(signal.SIGINT)
        _, err = self.p.communicate(timeout=20)
        assert re.search(r"^0 packets dropped by kernel", err, re.M), err
        return [d for _, d in read_capture(self.path)]


def rx_packets(lab, ns: str, iface: str) -> int:
    return int(lab.run(ns, "cat", f"/sys/class/net/{iface}/statistics/rx_packets").stdout)


@pytest.mark.parametrize("opts", [
    ["--pps", "20000"],
    ["--pps", "20000", "--preload"],
    ["--mbps", "200", "--preload", "--batch", "1"],
    ["--topspeed", "--preload", "--batch", "64"],
    ["--topspeed"],
    ["--multiplier", "4"],
], ids=["streamed", "preload-sendmmsg", "preload-send", "topspeed-sendmmsg", "topspeed-streamed", "multiplier"])
def test_every_frame_arrives_in_order_intact(lab, pair, workdir, opts):
    tx, a, rx, b = pair
    frames = mixed_frames(700)
    cap = write(workdir / "mixed.pcap", frames)
    before = rx_packets(lab, rx, b)
    dump = Tcpdump(lab, rx, b, workdir / "got.pcap")
    r = bench(lab, tx, "--iface", a, "--loop", "2", *opts, str(cap))
    assert r.returncode == 0, r.stderr
    got = dump.frames(2 * len(frames))
    assert got == frames * 2
    assert rx_packets(lab, rx, b) - before == 2 * len(frames)
    s = parse_summary(r.stdout)
    assert s["packets"] == s["successful"] == 2 * len(frames), r.stdout
    assert s["bytes"] == 2 * sum(map(len, frames)) and s["failed"] == 0
    assert f"Statistics for network device: {a}" in r.stdout


def test_duration_and_limit_bound_what_is_sent(lab, pair, workdir):
    tx, a, rx, b = pair
    cap = write(workdir / "m.pcap", mixed_frames(50))
    # --loop 0: forever, until 0.3 s: at 1000 pps no frame is due at or after 0.3 s (frames 0..299).
    r = bench(lab, tx, "--iface", a, "--loop", "0", "--pps", "1000", "--duration", "0.3", str(cap))
    assert r.returncode == 0, r.stderr
    n = parse_summary(r.stdout)["packets"]
    assert 0 < n <= 300
    r = bench(lab, tx, "--iface", a, "--loop", "0", "--topspeed", "--limit", "123", "--preload", str(cap))
    assert r.returncode == 0 and parse_summary(r.stdout)["packets"] == 123, r.stdout + r.stderr


def test_summary_agrees_with_tcpreplay_on_the_same_capture(lab, pair, workdir):
    if shutil.which("tcpreplay") is None:
        pytest.skip("needs tcpreplay (apt-get install tcpreplay)")
    tx, a, rx, b = pair
    # IPv4 and ARP only: there Debian's tcpreplay 4.4.3 counts flows as 4.5 does (bench/replay_summary.py).
    frames = [f for f in mixed_frames(210) if f[12:14] in (b"\x08\x00", b"\x08\x06")]
    cap = write(workdir / "v4.pcap", frames)
    for extra in ([], ["--preload"]):
        ours = bench(lab, tx, "--iface", a, "--pps", "20000", "--loop", "2", *extra, str(cap))
        assert ours.returncode == 0, ours.stderr
        theirs = lab.run(tx, "tcpreplay", "-i", a, "--pps", "20000", "--loop", "2", *(["-K"] if extra else []),
                         str(cap))
        o, t = parse_summary(ours.stdout), parse_summary(theirs.stdout)
        for key in ("packets", "bytes", "flows", "flow_packets", "non_flow_packets", "successful", "failed",
                    "truncated"):
            assert o[key] == t[key], (key, extra, ours.stdout, theirs.stdout)
        # The same lines, in the same order, with the same shape.
        shape = [line.split(":")[0] for line in theirs.stdout.splitlines() if ":" in line]
        assert [line.split(":")[0] for line in ours.stdout.splitlines()] == shape


def test_bad_interfaces_are_one_line(lab, pair, workdir):
    tx, a, rx, b = pair
    cap = write(workdir / "m.pcap", mixed_frames(5))
    r = bench(lab, tx, "--iface", lab.name("zz"), str(cap))
    assert r.returncode == 2 and r.stderr.strip() == f"vswitch-bench: --iface {lab.name('zz')}: no such interface"
    lab.run(tx, "ip", "link", "set", a, "down")
    r = bench(lab, tx, "--iface", a, str(cap))
    assert r.returncode == 2 and r.stderr.strip() == f"vswitch-bench: --iface {a}: the interface is down", r.stderr
    lab.run(tx, "ip", "link", "set", a, "up")
    r = bench(lab, tx, "--iface", a, str(cap), user=65534)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert r.stderr.count("\n") == 1 and "permission denied" in r.stderr and "Traceback" not in r.stderr, r.stderr


def tap_and_attach(lab, workdir):
    """vswitchd with a tap port in namespace g and an attach port on a veth whose peer is in h."""
    g, h = lab.netns("g"), lab.netns("h")
    tap, att, peer = lab.name("tp"), lab.name("at"), lab.name("ap")
    subprocess.run(["ip", "link", "add", att, "type", "veth", "peer", "name", peer, "netns", h], check=True)
    # No IPv6 chatter (MLD, router solicitations) from our devices into the captures.
    subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{att}.disable_ipv6=1"], check=True)
    subprocess.run(["ip", "link", "set", att, "up"], check=True)
    lab.run(h, "ip", "link", "set", peer, "up")
    text = "\n".join(["[bridge]", f'name = "{lab.name("sw")}"', "", "[[port]]", f'name = "{tap}"', 'type = "tap"',
                      f'netns = "{g}"', "", "[[port]]", f'name = "{att}"', 'type = "attach"', ""])
    d = Daemon(lab, workdir, text).start()
    d.wait_state(tap, "up")
    d.wait_state(att, "up")
    lab.run(g, "sysctl", "-qw", f"net.ipv6.conf.{tap}.disable_ipv6=1")   # made in vswitchd's namespace
    lab.run(g, "ip", "link", "set", tap, "up")
    return d, g, h, tap, att, peer


def test_port_replays_into_a_tap_and_an_attach_port_with_counter_deltas(lab, workdir):
    d, g, h, tap, att, peer = tap_and_attach(lab, workdir)
    frames = [f for f in mixed_frames(300) if f[12:14] != b"\x81\x00"]   # untagged: access ports
    cap = write(workdir / "m.pcap", frames)
    n = len(frames)

    # Into the tap port: sent on the TAP inside g; flooded out of the attach port; captured in h.
    dump = Tcpdump(lab, h, peer, workdir / "h.pcap")
    r = bench(lab, None, "--port", tap, "--socket", d.socket, "--pps", "3000", str(cap))
    assert r.returncode == 0, r.stderr
    assert dump.frames(n) == frames, r.stdout
    s = parse_summary(r.stdout)
    assert s["packets"] == n and f"Statistics for network device: {tap}" in r.stdout
    assert f"vswitchd port {tap} (tap: sent on its TAP {tap} in netns {g}" in r.stdout, r.stdout
    assert f"\trx_packets +{n}, rx_bytes +{sum(map(len, frames))}," in r.stdout, r.stdout
    assert f"{att} tx_packets +{n}" in r.stdout and f"kernel counters of {tap} (netns {g}): tx_packets +{n}" \
        in r.stdout, r.stdout
    assert d.call("counters", port=tap)["ports"][tap]["rx_packets"] >= n

    # Into the attach port: sent on the veth's peer in h; out of the tap; captured inside g.
    dump = Tcpdump(lab, g, tap, workdir / "g.pcap")
    r = bench(lab, None, "--port", att, "--socket", d.socket, "--pps", "3000", "--preload", str(cap))
    assert r.returncode == 0, r.stderr
    assert dump.frames(n) == frames
    assert f"Statistics for network device: {peer}" in r.stdout
    assert f"vswitchd port {att} (attach: sent on {peer} in netns {h}, the peer of veth {att}" in r.stdout
    assert f"\trx_packets +{n}," in r.stdout and f"{tap} tx_packets +{n}" in r.stdout, r.stdout


def test_port_errors_are_one_line(lab, workdir):
    d, g, h, tap, att, peer = tap_and_attach(lab, workdir)
    cap = write(workdir / "m.pcap", mixed_frames(5))
    r = bench(lab, None, "--port", "nope", "--socket", d.socket, str(cap))
    assert r.returncode == 2 and r.stderr.strip() == (
        f"vswitch-bench: --port nope: vswitchd at {d.socket} has no such port (ports: {tap}, {att})"), r.stderr
    r = bench(lab, None, "--port", tap, "--socket", str(workdir / "none.sock"), str(cap))
    assert r.returncode == 2 and "vswitchd is not running" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    # An attach port on something that is not a veth (a persistent TAP, as a VM's): refused, saying
    # where frames can enter.
    from vswitch.io.tap import TapPort
    vm = TapPort(lab.name("vm"))                 # held open by the test, as QEMU holds a VM's tap
    lab.on_cleanup(vm.close)
    vmtap = vm.name
    subprocess.run(["ip", "link", "set", vmtap, "up"], check=True)
    d.call("add-port", port={"name": vmtap, "type": "attach"})
    d.wait_state(vmtap, "up")
    r = bench(lab, None, "--port", vmtap, "--socket", d.socket, str(cap))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"--port {vmtap}: an attach port on a tun interface: frames enter the switch through it only " \
        "from its far side" in r.stderr, r.stderr
