"""Frame builders and a small switch harness for the unit tests.

Frames are plain bytes built here by hand (no scapy, no project code), so a
test's expectation never comes from the code under test.
"""

from __future__ import annotations

import struct
from collections import defaultdict

from vswitch.core.frame import Frame
from vswitch.topology import BridgeConfig, PortConfig, Topology, build_dataplane

NS = 1_000_000_000
BCAST = b"\xff" * 6
MCAST = bytes.fromhex("01005e000001")          # IPv4 multicast 224.0.0.1
MCAST6 = bytes.fromhex("333300000001")          # IPv6 all-nodes
STP = bytes.fromhex("0180c2000000")             # 802.1D reserved group addresses
LLDP = bytes.fromhex("0180c200000e")
ZERO = bytes(6)
IPV4 = 0x0800
ARP = 0x0806


def mac(n: int) -> bytes:
    """A locally administered unicast MAC: 02:00:00:00:hi:lo."""
    return bytes((0x02, 0, 0, 0, (n >> 8) & 0xFF, n & 0xFF))


def eth(dst: bytes, src: bytes, ethertype: int = IPV4, vlan: int | None = None, pcp: int = 0,
        payload_len: int = 46, tpid: int = 0x8100, payload: bytes | None = None) -> bytes:
    """An Ethernet frame; with ``vlan`` a tag (``tpid``, PCP/DEI ``pcp``, VID ``vlan``) after the MACs."""
    body = payload if payload is not None else bytes((i * 7 + 3) & 0xFF for i in range(payload_len))
    tag = b"" if vlan is None else struct.pack("!HH", tpid, (pcp << 12) | vlan)
    return dst + src + tag + struct.pack("!H", ethertype) + body


def tagged(data: bytes, vid: int, pcp: int = 0) -> bytes:
    """``data`` with an 802.1Q tag inserted after the MACs (written independently of push_tag)."""
    return data[:12] + b"\x81\x00" + bytes(((pcp << 4) | (vid >> 8), vid & 0xFF)) + data[12:]


def untagged(data: bytes) -> bytes:
    """``data`` without the 4 bytes after the MACs."""
    return data[:12] + data[16:]


def tag_of(data: bytes) -> tuple[int, int] | None:
    """(pcp_dei, vid) of an 802.1Q outer tag, or None."""
    if data[12:14] != b"\x81\x00":
        return None
    tci = int.from_bytes(data[14:16], "big")
    return tci >> 12, tci & 0xFFF


class Bridge:
    """A switch built from PortConfigs, with every port's egress collected."""

    def __init__(self, *ports: PortConfig, bridge: BridgeConfig | None = None, **bridge_kw) -> None:
        cfg = bridge or BridgeConfig(**bridge_kw)
        self.dp = build_dataplane(Topology(bridge=cfg, ports=list(ports)))
        self.graph = self.dp.graph
        self.switch = self.dp.switch
        self.fdb = self.switch.fdb
        self.out: dict[int, list[Frame]] = defaultdict(list)
        for n in self.switch.ports:
            self.graph.attach_egress(self.switch, n, n, self._collector(n))

    def _collector(self, n: int):
        def collect(batch: list[Frame], now_ns: int) -> None:
            self.out[n].extend(batch)
        return collect

    def port(self, name: str) -> int:
        return self.dp.numbers[name]

    def send(self, port: int, *datas: bytes, t: int = 0, vnet: bytes | None = None) -> dict[int, list[bytes]]:
        """Push one batch on ``port``; return what left each port (only ports that sent)."""
        self.out.clear()
        self.graph.push(port, [Frame(d, vnet=vnet) for d in datas], t)
        return {n: [f.data for f in fs] for n, fs in self.out.items() if fs}

    @property
    def counters(self) -> dict[str, int]:
        return self.switch.counters

    @property
    def drops(self) -> dict[str, int]:
        return self.switch.drops

    def nonzero_drops(self) -> dict[str, int]:
        return {k: v for k, v in self.switch.drops.items() if v}

    def check_accounting(self) -> None:
        """Every ingress frame counted once as forwarded, flooded or one drop reason; the flood
        kinds add up to the floods; every frame dropped for an egress MTU is a tx_dropped too."""
        ports = self.graph.ports.values()
        rx = sum(p.rx_packets for p in ports)
        c = self.counters
        drops = sum(self.drops.values())
        assert rx == c["forwarded"] + c["flooded"] + drops, (rx, dict(c), self.nonzero_drops())
        assert c["flood_broadcast"] + c["flood_multicast"] + c["flood_unknown"] == c["flooded"], dict(c)
        assert sum(p.rx_dropped for p in ports) == drops
        assert sum(p.tx_packets for p in ports) == c["forwarded"] + c["flood_copies"]
        assert sum(p.tx_dropped for p in ports) >= self.drops.get("egress_mtu", 0)
