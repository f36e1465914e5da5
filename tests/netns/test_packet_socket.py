"""An attach port (AF_PACKET) on a veth whose peer sits in a namespace."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from tests.netns.conftest import Lab, responder, wait_readable
from vswitch.io import netlink
from vswitch.io.errors import PortGone
from vswitch.io.packet_socket import PacketSocketPort

pytestmark = pytest.mark.netns

MY_MAC = "02:00:00:d3:01:02"
IFF_PROMISC = 0x100


def _attached(lab: Lab, suffix: str, addr: str) -> tuple[str, str, PacketSocketPort]:
    ns = lab.netns(suffix)
    here, there = lab.veth(suffix + "h", suffix + "g", netns_b=ns)
    netlink.set_up(here)
    netlink.configure(there, netns=ns, addresses=[addr])
    port = PacketSocketPort(here)
    lab.on_cleanup(port.close)
    return ns, here, port


def test_attach_sees_namespace_frames_and_injects_replies(lab: Lab) -> None:
    ns, here, port = _attached(lab, "a", "10.213.1.1/24")
    assert port.vnet_hdr_len == 10
    ping = lab.ping(ns, "10.213.1.2", 3)
    seen = responder(port, "10.213.1.2", MY_MAC, done=lambda: ping.poll() is not None)
    out, err = ping.communicate(timeout=10)
    assert ping.returncode == 0, out + err
    assert seen["arp"] >= 1 and seen["icmp"] == 3


def test_attach_is_promiscuous_and_ignores_its_own_frames(lab: Lab) -> None:
    ns, here, port = _attached(lab, "b", "10.213.2.1/24")
    assert _flags(here) & IFF_PROMISC
    cap = lab.spawn(ns, sys.executable, "-c", _CAPTURE, lab.name("bg"), "2")
    time.sleep(0.5)
    # A frame to a unicast MAC that is not the interface's own: only promiscuous mode delivers it.
    stranger = bytes(Ether(src=MY_MAC, dst="02:00:00:00:99:99") / IP(src="10.213.2.9", dst="10.213.2.8") /
                     UDP(sport=1, dport=2) / b"to-a-stranger")
    assert port.write(None, stranger)
    # ... and our own transmission is not read back.
    time.sleep(0.2)
    assert all(f != stranger for _, f in port.read_batch())
    # The namespace sends a frame to a foreign MAC; the attach socket still sees it.
    lab.python(ns, _SEND, lab.name("bg"))
    assert wait_readable([port], 2)
    frames = [f for _, f in port.read_batch()]
    assert any(b"from-the-namespace" in f for f in frames)
    out, _ = cap.communicate(timeout=10)
    assert "to-a-stranger" in out
    port.close()
    assert not _flags(here) & IFF_PROMISC        # the kernel drops the membership with the socket


def _flags(ifname: str) -> int:
    with open(f"/sys/class/net/{ifname}/flags") as f:
        return int(f.read(), 16)


def test_vlan_tag_survives_receive(lab: Lab) -> None:
    ns, here, port = _attached(lab, "c", "10.213.3.1/24")
    tagged = bytes(Ether(src="02:00:00:00:00:0c", dst=MY_MAC) / Dot1Q(vlan=42, prio=5) /
                   IP(src="10.1.1.1", dst="10.1.1.2") / UDP(sport=7, dport=7) / b"tagged")
    lab.python(ns, _SEND_RAW, lab.name("cg"), tagged.hex())
    assert wait_readable([port], 2)
    frames = [f for _, f in port.read_batch()]
    assert tagged in frames, "the 802.1Q tag stripped by the kernel was not put back"


def test_down_drops_and_removal_raises_port_gone(lab: Lab) -> None:
    ns, here, port = _attached(lab, "d", "10.213.4.1/24")
    frame = bytes(Ether(src=MY_MAC, dst="ff:ff:ff:ff:ff:ff") / IP() / UDP() / b"x")
    netlink.set_up(here, up=False)
    assert port.write(None, frame) is False
    port.read_batch()                                   # ENETDOWN while merely down: no exception
    netlink.set_up(here)
    assert port.write(None, frame) is True
    subprocess.run(["ip", "link", "del", here], check=True)
    with pytest.raises(PortGone):
        port.read_batch()
        port.write(None, frame)
    with pytest.raises(PortGone):
        PacketSocketPort(here)                          # not there: the daemon keeps the port pending


_CAPTURE = """
import socket, sys, select
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 3))
while select.select([s], [], [], float(sys.argv[2]))[0]:
    d = s.recv(65536)
    print(d.decode("latin-1"), flush=True)
"""

_SEND = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
s.send(bytes.fromhex("020000000077020000000078") + b"\\x08\\x00" + b"from-the-namespace".ljust(46, b"."))
"""

_SEND_RAW = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
s.send(bytes.fromhex(sys.argv[2]))
"""
