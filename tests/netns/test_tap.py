"""A TAP port with offloads, moved into a namespace, answering a real ping."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import subprocess
import time

import pytest

from tests.netns.conftest import Lab, responder
from vswitch.core.frame import Frame
from vswitch.io import netlink
from vswitch.io.errors import PortGone
from vswitch.io.tap import TapPort

pytestmark = pytest.mark.netns


def test_tap_in_namespace_answers_ping(lab: Lab) -> None:
    ns = lab.netns("a")
    tap = TapPort(lab.name("t0"))
    lab.on_cleanup(tap.close)
    assert tap.vnet_hdr_len == 10
    # The fd stays attached after the interface moves into another namespace.
    netlink.configure(tap.name, netns=ns, mtu=1500, addresses=["10.213.0.1/24"])
    assert netlink.ifindex(tap.name) is None
    assert netlink.ifindex(tap.name, netns=ns) is not None
    ping = lab.ping(ns, "10.213.0.2", 3)
    seen = responder(tap, "10.213.0.2", "02:00:00:d3:00:02", done=lambda: ping.poll() is not None)
    out, err = ping.communicate(timeout=10)
    assert ping.returncode == 0, out + err
    assert seen["arp"] >= 1 and seen["icmp"] == 3


def test_tap_offloads_are_set(lab: Lab) -> None:
    tap = TapPort(lab.name("t1"))
    lab.on_cleanup(tap.close)
    TUNGETIFF = 0x800454D2
    flags = struct.unpack_from("16sH", fcntl.ioctl(tap.fd, TUNGETIFF, bytes(40)))[1]
    assert flags & 0x0002 and flags & 0x1000 and flags & 0x4000        # TAP, NO_PI, VNET_HDR
    with open(f"/sys/class/net/{tap.name}/tun_flags") as f:
        assert int(f.read(), 16) & 0x4000
    assert os.get_blocking(tap.fd) is False
    assert tap.read_batch() == []


def test_tap_close_removes_unless_persistent(lab: Lab) -> None:
    tap = TapPort(lab.name("t2"))
    tap.close()
    assert netlink.ifindex(lab.name("t2")) is None
    tap = TapPort(lab.name("t3"), persist=True)
    tap.close()
    assert netlink.ifindex(lab.name("t3")) is not None      # persistent: survives its fd
    again = TapPort(lab.name("t3"), persist=True)          # a restarted daemon re-attaches
    again.close(remove=True)
    assert netlink.ifindex(lab.name("t3")) is None


def test_tap_down_drops_and_gone_raises(lab: Lab) -> None:
    ns = lab.netns("b")
    tap = TapPort(lab.name("t4"))
    lab.on_cleanup(tap.close)
    frame = bytes.fromhex("ffffffffffff020000000001") + b"\x08\x06" + bytes(46)
    assert tap.write(None, frame) is False          # interface down: dropped, not an error
    netlink.configure(tap.name, netns=ns)
    assert tap.write(None, frame) is True
    subprocess.run(["ip", "netns", "del", ns], check=True)    # destroys the TAP device under our fd
    lab.namespaces.remove(ns)
    for _ in range(50):
        try:
            tap.read_batch()
            tap.write(None, frame)
        except PortGone as e:
            assert e.port == tap.name
            break
        time.sleep(0.05)
    else:
        pytest.fail("a TAP whose namespace was deleted did not raise PortGone")


def test_tap_batch_read_and_write(lab: Lab) -> None:
    """read_frames stamps the frames and sums their bytes; write_frames reports drops as counts."""
    ns = lab.netns("c")
    tap = TapPort(lab.name("t5"))
    lab.on_cleanup(tap.close)
    frame = bytes.fromhex("ffffffffffff020000000001") + b"\x08\x06" + bytes(46)
    f = Frame(frame)
    assert tap.write_frames([f, f]) == (120, 2, 120)            # interface down: both dropped
    assert tap.last_errno == errno.EIO
    netlink.configure(tap.name, netns=ns, addresses=["10.213.1.1/24"])
    assert tap.write_frames([f, f]) == (120, 0, 0)
    ping = lab.ping(ns, "10.213.1.2", 2)                         # ARP requests come out of the TAP
    got: list[Frame] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(g.data[12:14] == b"\x08\x06" for g in got):
        frames, nbytes = tap.read_frames(64, 1234, 7)
        assert nbytes == sum(len(g.data) for g in frames)
        got += frames
        time.sleep(0.02)
    ping.communicate(timeout=10)
    assert any(g.data[12:14] == b"\x08\x06" for g in got)
    assert all(g.ts_ns == 1234 and g.in_port == 7 and g.vlan is None for g in got)
    assert tap.rx_max == max(len(g.data) for g in got)
    subprocess.run(["ip", "netns", "del", ns], check=True)
    lab.namespaces.remove(ns)
    for _ in range(50):
        try:
            tap.write(None, frame)
        except PortGone:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a TAP whose namespace was deleted did not raise PortGone")
    with pytest.raises(PortGone) as gone:
        tap.write_frames([f, f, f])
    assert (gone.value.handled, gone.value.failed, gone.value.failed_bytes) == (0, 0, 0)   # the first raised
