"""tcpreplay's summary lines and flow count (bench/replay_summary.py).

The expected lines below are what Debian's tcpreplay 4.4.3 printed on this project's
machine (a veth in a namespace); the elapsed microseconds of each are the only value for
which the Rated line comes out as printed, and the Actual and Flows lines then have to
match too.  Flow classification is checked on frames built by scapy.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, LLC, STP, Dot1AD, Dot1Q, Dot3, Ether

from bench.replay_summary import (
    EXISTING,
    INVALID,
    NEW,
    NON_FLOW,
    FlowCount,
    SendStats,
    actual_line,
    flow_key,
    flows_line,
    parse_summary,
    rated_line,
    summary_lines,
)

# (packets, bytes, elapsed µs, flows) -> tcpreplay's lines
TCPREPLAY_RUNS = [
    ((14, 840, 675, 1), "Actual: 14 packets (840 bytes) sent in 0.000675 seconds",
     "Rated: 1244444.4 Bps, 9.95 Mbps, 20740.74 pps",
     "Flows: 1 flows, 1481.48 fps, 14 unique flow packets, 0 unique non-flow packets"),
    ((1, 94, 9, 0), "Actual: 1 packets (94 bytes) sent in 0.000009 seconds",
     "Rated: 10444444.4 Bps, 83.55 Mbps, 111111.11 pps", None),
    ((3, 282, 94, 0), "Actual: 3 packets (282 bytes) sent in 0.000094 seconds",
     "Rated: 3000000.0 Bps, 24.00 Mbps, 31914.89 pps", None),
    ((3, 282, 80, 0), "Actual: 3 packets (282 bytes) sent in 0.000080 seconds",
     "Rated: 3525000.0 Bps, 28.20 Mbps, 37500.00 pps", None),
    ((100000, 34592070, 2767369, 350), "Actual: 100000 packets (34592070 bytes) sent in 2.76 seconds",
     "Rated: 12499984.6 Bps, 99.99 Mbps, 36135.40 pps",
     "Flows: 350 flows, 126.47 fps, 100000 unique flow packets, 0 unique non-flow packets"),
    ((100000, 34592070, 1999984, 350), "Actual: 100000 packets (34592070 bytes) sent in 1.99 seconds",
     "Rated: 17296173.3 Bps, 138.36 Mbps, 50000.40 pps",
     "Flows: 350 flows, 175.00 fps, 100000 unique flow packets, 0 unique non-flow packets"),
    ((300000, 18000000, 2032780, 0), "Actual: 300000 packets (18000000 bytes) sent in 2.03 seconds",
     "Rated: 8854868.7 Bps, 70.83 Mbps, 147581.14 pps", None),
    ((100, 39262, 420, 350), "Actual: 100 packets (39262 bytes) sent in 0.000420 seconds", None,
     "Flows: 350 flows, 833333.33 fps, 20000 unique flow packets, 0 unique non-flow packets"),
]


@pytest.mark.parametrize("run, actual, rated, flows", TCPREPLAY_RUNS)
def test_lines_match_what_tcpreplay_printed(run, actual, rated, flows):
    pkts, nbytes, us, nflows = run
    ns = us * 1000 + 999                         # tcpreplay truncates to whole µs
    assert actual_line(pkts, nbytes, ns) == actual
    if rated:
        assert rated_line(pkts, nbytes, ns) == rated
    if flows:
        fp = int(flows.split(", ")[2].split()[0])
        assert flows_line(nflows, fp, 0, ns) == flows


def test_rated_is_integer_arithmetic_on_truncated_values():
    # 1 packet of 60 bytes in 1 s: 60 Bps, 0.00048 Mbps -> "0.000" (three decimals under 1 Mbps).
    assert rated_line(1, 60, 10**9) == "Rated: 60.0 Bps, 0.000 Mbps, 1.00 pps"
    assert rated_line(7, 1000, 3 * 10**9) == "Rated: 333.3 Bps, 0.002 Mbps, 2.33 pps"
    # Over 1e9 bytes and 1 s, tcpreplay divides by whole milliseconds (so 1999999 µs counts as 1999 ms).
    assert rated_line(2, 2_000_000_000, 1_999_999_000) == "Rated: 1000500250.1 Bps, 8004.00 Mbps, 1.00 pps"
    assert rated_line(0, 0, 10**9) == "Rated: 0.0 Bps, 0.000 Mbps, 0.00 pps"
    assert actual_line(5, 300, 12_345_678_901) == "Actual: 5 packets (300 bytes) sent in 12.34 seconds"


def test_summary_order_device_block_and_failed_line():
    st = SendStats(sent=10, bytes=600, failed=2, truncated=0, retry_enobufs=3, retry_eagain=1)
    lines = summary_lines("veth0", st, 1_000_000, (4, 9, 1))
    assert lines == [
        "Actual: 10 packets (600 bytes) sent in 0.001000 seconds",
        "Rated: 600000.0 Bps, 4.80 Mbps, 10000.00 pps",
        "Failed write attempts: 2",
        "Flows: 4 flows, 4000.00 fps, 9 unique flow packets, 1 unique non-flow packets",
        "Statistics for network device: veth0",
        "\tSuccessful packets:        10",
        "\tFailed packets:            2",
        "\tTruncated packets:         0",
        "\tRetried packets (ENOBUFS): 3",
        "\tRetried packets (EAGAIN):  1",
    ]
    got = parse_summary("\n".join(lines))
    assert got["packets"] == 10 and got["Mbps"] == 4.8 and got["flows"] == 4 and got["retried_enobufs"] == 3
    # No flows seen (or none counted): no Flows line, as tcpreplay.
    assert not any(x.startswith("Flows") for x in summary_lines("x", SendStats(sent=1, bytes=60), 10**6, (0, 0, 1)))


# -- flows ------------------------------------------------------------------------------------

E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def fb(p) -> bytes:
    return bytes(p)


def test_the_key_is_the_directional_five_tuple():
    a = fb(E / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=53) / b"x")
    back = fb(E / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=53, dport=1000) / b"x")
    other_port = fb(E / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1001, dport=53) / b"x")
    tcp = fb(E / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000, dport=53))
    keys = {flow_key(f) for f in (a, back, other_port, tcp)}
    assert len(keys) == 4 and all(isinstance(k, bytes) for k in keys)
    # The MAC addresses, TTL, payload and VLAN tags are not part of it.
    same = [fb(Ether(src="02:00:00:00:00:09") / IP(src="10.0.0.1", dst="10.0.0.2", ttl=3) / UDP(sport=1000, dport=53)
               / b"yy"),
            fb(E / Dot1Q(vlan=10) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=53)),
            fb(E / Dot1AD(vlan=20) / Dot1Q(vlan=10) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=53))]
    assert {flow_key(f) for f in same} == {flow_key(a)}


def test_icmp_type_and_code_are_its_ports_and_other_protocols_have_none():
    echo = flow_key(fb(E / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8, id=1)))
    echo2 = flow_key(fb(E / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8, id=2, seq=9)))
    reply = flow_key(fb(E / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=0, id=1)))
    assert echo == echo2 != reply
    gre = flow_key(fb(E / IP(src="10.0.0.1", dst="10.0.0.2", proto=47) / (b"\0" * 30)))
    assert isinstance(gre, bytes) and gre[-5:] == b"\0\0\0\0\x2f"


def test_ipv6_with_one_hop_by_hop_header():
    plain = flow_key(fb(E / IPv6(src="fe80::1", dst="ff02::1") / UDP(sport=5, dport=6)))
    hbh = flow_key(fb(E / IPv6(src="fe80::1", dst="ff02::1") / IPv6ExtHdrHopByHop() / UDP(sport=5, dport=6)))
    assert isinstance(plain, bytes) and plain == hbh


def test_non_ip_and_invalid_frames():
    assert flow_key(fb(E / ARP(pdst="10.0.0.2"))) == NON_FLOW
    assert flow_key(fb(Ether(type=0x88CC) / (b"\0" * 50))) == NON_FLOW                  # LLDP
    assert flow_key(fb(Ether(type=0x0800) / (b"\x65" + b"\0" * 40))) == NON_FLOW        # IPv4 type, version 6
    stp = fb(Dot3(dst="01:80:c2:00:00:00") / LLC() / STP())                             # 802.3, LLC 0x42
    assert flow_key(stp) == INVALID
    assert flow_key(fb(E / IP() / UDP())[:14 + 20 + 4]) == INVALID                      # UDP header cut
    assert flow_key(fb(E / IP())[:18]) == INVALID                                        # <= 18 bytes
    assert flow_key(fb(E)[:12] + b"\x05\xf0" + bytes(50)) == INVALID                   # EtherType 1520


def test_counts_streamed_and_preloaded_as_tcpreplay():
    ip = [fb(E / IP(src="10.0.0.1", dst=f"10.0.0.{i % 3 + 2}") / UDP(sport=1, dport=2)) for i in range(6)]
    arp = fb(E / ARP())
    frames = ip + [arp]                          # 3 flows, 6 flow packets, 1 non-flow
    fc = FlowCount.of([frames[:4], frames[4:]])  # two captures share one flow table
    assert list(fc.kinds) == [NEW, NEW, NEW, EXISTING, EXISTING, EXISTING, NON_FLOW]
    assert fc.sizes == [4, 3]
    # Streamed: what was attempted, loop after loop (a later loop adds packets, no flows).
    assert fc.totals(2, preloaded=False) == (2, 2, 0)
    assert fc.totals(7, preloaded=False) == (3, 6, 1)
    assert fc.totals(7 * 3 + 2, preloaded=False) == (3, 6 * 3 + 2, 3)
    # Preloaded: counted once while loading, whatever was sent.
    assert fc.totals(2, preloaded=True) == (3, 6, 1)
    assert fc.totals(70, preloaded=True) == (3, 6, 1)
