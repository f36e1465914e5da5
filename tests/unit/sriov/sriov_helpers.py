"""Helpers for the SR-IOV tests: a PF with VFs and guests, frames as bytes, a graph around them."""

from __future__ import annotations

import struct

import pytest

from nicmodel.nic import Nic
from sriov import SriovPf
from sriov.errors import SriovError
from vswitch.core import Frame, Graph
from vswitch.core.frame import parse_mac

GIG = 1_000_000_000
WIRE = "02:00:00:00:99:99"           # a host on the far side of the uplink
BCAST = "ff:ff:ff:ff:ff:ff"


def vmac(n: int) -> str:
    """The MAC the tests give VF n's guest."""
    return f"52:54:00:00:01:{n:02x}"


def eth(dst: str, src: str, vlan: int | None = None, pcp: int = 0, size: int = 60) -> Frame:
    hdr = parse_mac(dst) + parse_mac(src)
    if vlan is not None:
        hdr += b"\x81\x00" + struct.pack("!H", (pcp << 12) | vlan)
    return Frame(hdr + b"\x08\x00" + bytes(max(0, size - 14)))


def make_pf(profile: str = "82599", numvfs: int = 4, **kw) -> SriovPf:
    pf = SriovPf(Nic("nic0", profile), mac="02:00:00:00:00:fe", **kw)
    if numvfs:
        pf.set_numvfs(numvfs)
    return pf


def with_guests(pf: SriovPf, vfs: list[int], **open_args) -> None:
    for k in vfs:
        pf.vf(k).attach_guest(f"vm{k}", ram_bytes=16 * 1024 * 1024, mac=vmac(k), **open_args)


def refused(call, err: int, match: str | None = None) -> SriovError:
    with pytest.raises(SriovError, match=match) as e:
        call()
    assert e.value.errno == err, (e.value.errno, e.value)
    return e.value


class Rig:
    """A graph with the NIC, its uplink (port 0) and one port per VF guest (port k + 1)."""

    def __init__(self, pf: SriovPf, vfs: list[int]) -> None:
        self.pf = pf
        self.g = g = Graph()
        nic = pf.nic
        g.add(nic)
        pf.attach(g)
        self.got: dict[str, list[Frame]] = {"up": []}
        g.add_port(0, "up", nic, "wire")
        g.bind_egress(nic, "wire", 0)
        g.set_transmit(0, lambda b, now: self.got["up"].extend(b))
        for k in vfs:
            name = f"vm{k}"
            self.got[name] = []
            g.add_port(k + 1, name, pf.vf(k).dma, "guest")
            g.bind_egress(pf.vf(k).dma, "guest", k + 1)
            g.set_transmit(k + 1, lambda b, now, n=name: self.got[n].extend(b))

    def from_wire(self, frames: list[Frame], now: int = 0) -> None:
        self.g.push(0, frames, now)
        self.g.run_until(now)

    def from_vf(self, k: int, frames: list[Frame], now: int = 0) -> None:
        self.g.push(k + 1, frames, now)
        self.g.run_until(now)

    def run(self, until: int) -> None:
        self.g.run_until(until)

    def take(self, name: str) -> list[Frame]:
        out, self.got[name] = self.got[name], []
        return out
