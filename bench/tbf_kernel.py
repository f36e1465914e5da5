"""Benchmark: the project's tbf against the kernel's, on the same offered traffic in the same run.

Two network namespaces joined by a veth pair (all made with pyroute2, named
``vqp`` plus a random suffix, removed at the end even on failure).  The
sender's end carries the kernel's ``tbf`` (pyroute2's tc API: ``rate``,
``burst``, ``limit`` as tc names them); static neighbour entries and no IPv6,
so nothing but the test's frames passes the shaper.  A paced sender offers
``--frame``-byte UDP frames at ``--offered`` for ``--seconds`` and records
when it handed each to the kernel; a receiver in the other namespace takes
the kernel's receive timestamp of each (SO_TIMESTAMPNS; both clocks
CLOCK_REALTIME).  The recorded send times and sizes (the offered trace as it
really happened) then go through the project's tbf (`TokenBucket` in a core
`Queue`, the same rate, burst and byte limit) driven as the discrete driver
drives a queue: each frame enqueued at its send time, each departure at the
time ``next_eligible_ns`` gives (a veth has no line rate).

Reported for both: frames delivered and dropped, the delivered rate after
the first window (bytes from the end of the first window to the last frame,
over that time), and the bytes passed in the first window of ``--window``
ms from the first frame offered (and the most in any window of that
length), beside the envelope burst + rate*T and what was offered in the
first window (a sender stalled by a loaded machine may offer less).  As a
test checks: neither rate exceeds the set rate by 2 %, the project's is at
most 2 % below the kernel's (above it when a loaded machine runs the
kernel's dequeue late by more than burst/rate: the bucket overflows and
loses tokens, which the project's on-time departures never do), and the
first-window bytes agree within one frame plus 1 % of each other and of the
envelope.

    vswitch-bench tbf-kernel [--rate 10mbit] [--burst 50000] [--limit 100000] [--offered 40mbit]
                             [--frame 1000] [--seconds 3] [--window 50] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from vswitch.core.frame import Frame
from vswitch.core.policies.params import parse_rate, parse_size
from vswitch.core.policies.tbf import TokenBucket
from vswitch.core.queues import Queue

T = TypeVar("T")
PORT = 5201
NET_A, NET_B = "10.250.77.1", "10.250.77.2"
MAC_A, MAC_B = "02:76:71:00:00:01", "02:76:71:00:00:02"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)     # Linux asm-generic; Python 3.11 lacks the name
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33                      # Linux asm-generic/socket.h
HEADERS = 14 + 20 + 8              # Ethernet, IPv4, UDP: what a qdisc counts besides the payload


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """``fn()`` run in a thread that has entered network namespace ``ns`` (a socket keeps the
    namespace it was made in; this thread's namespace is left as it was)."""
    from pyroute2 import netns
    out: list[T] = []
    err: list[BaseException] = []

    def run() -> None:
        try:
            netns.setns(ns, flags=0)
            out.append(fn())
        except BaseException as e:       # handed to the caller
            err.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]


@contextlib.contextmanager
def veth_lab(rate: int, burst: int, limit: int) -> Iterator[dict[str, Any]]:
    """Namespaces ``<p>a`` (sender, tbf on its veth end) and ``<p>b`` (receiver)."""
    from pyroute2 import IPRoute, NetNS, netns
    prefix = "vqp" + secrets.token_hex(3)
    ns_a, ns_b, va, vb = prefix + "a", prefix + "b", prefix + "s", prefix + "r"
    made: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            netns.create(ns)
            made.append(ns)
            # No IPv6 (router solicitations, MLD) through the shaper: /proc/sys/net is the
            # namespace of whoever opens it.
            in_netns(ns, lambda: Path("/proc/sys/net/ipv6/conf/default/disable_ipv6").write_text("1\n"))
            in_netns(ns, lambda: Path("/proc/sys/net/ipv6/conf/all/disable_ipv6").write_text("1\n"))
        with IPRoute() as ip:
            ip.link("add", ifname=va, kind="veth", peer={"ifname": vb, "net_ns_fd": ns_b})
            ip.link("set", index=ip.link_lookup(ifname=va)[0], net_ns_fd=ns_a)
        for ns, dev, addr, mac, peer, peer_mac in ((ns_a, va, NET_A, MAC_A, NET_B, MAC_B),
                                                   (ns_b, vb, NET_B, MAC_B, NET_A, MAC_A)):
            with NetNS(ns) as n:
                idx = n.link_lookup(ifname=dev)[0]
                n.link("set", index=idx, address=mac)
                n.addr("add", index=idx, address=addr, prefixlen=24)
                n.neigh("add", dst=peer, lladdr=peer_mac, ifindex=idx, state=0x80)     # NUD_PERMANENT
                n.link("set", index=idx, state="up")
                lo = n.link_lookup(ifname="lo")[0]
                n.link("set", index=lo, state="up")
                if ns == ns_a:
                    # rate in bytes/s, burst and limit in bytes (pyroute2 computes tc's buffer).
                    n.tc("add", "tbf", idx, rate=rate // 8, burst=burst, limit=limit)
        yield {"ns_a": ns_a, "ns_b": ns_b, "va": va, "vb": vb}
    finally:
        for ns in made:
            with contextlib.suppress(Exception):
                netns.remove(ns)


def tbf_stats(ns: str, dev: str) -> dict[str, int]:
    """The kernel tbf's counters (tc -s qdisc: sent bytes/packets, dropped, overlimits)."""
    from pyroute2 import NetNS
    with NetNS(ns) as n:
        idx = n.link_lookup(ifname=dev)[0]
        for q in n.get_qdiscs(index=idx):
            if q.get_attr("TCA_KIND") == "tbf":
                s = q.get_attr("TCA_STATS2").get_attr("TCA_STATS_BASIC")
                qs = q.get_attr("TCA_STATS2").get_attr("TCA_STATS_QUEUE")
                return {"sent_bytes": s["bytes"], "sent_packets": s["packets"], "dropped": qs["drops"],
                        "overlimits": qs["overlimits"]}
    raise RuntimeError(f"no tbf on {dev} in {ns}")


def kernel_run(lab: dict[str, Any], frame: int, offered: int, seconds: float) -> dict[str, Any]:
    """Offer the paced UDP stream through the kernel's tbf; the send trace and the arrivals."""
    payload = frame - HEADERS
    tx = in_netns(lab["ns_a"], lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    rx = in_netns(lab["ns_b"], lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    # Room in the sender's socket for more than the tbf's limit (a frame's skb counts about
    # twice its length): the qdisc drops over-limit frames instead of the socket blocking the
    # sender, so the offered rate is what it is asked to be.  SO_SNDBUFFORCE: root, past wmem_max.
    tx.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 16 << 20)
    rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
    rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    rx.bind((NET_B, PORT))
    rx.settimeout(0.5)
    arrivals: list[tuple[int, int]] = []
    done = threading.Event()

    def receive() -> None:
        tspec = struct.Struct("qq")
        while True:
            try:
                data, anc, _, _ = rx.recvmsg(65536, 64)
            except TimeoutError:
                if done.is_set():
                    return
                continue
            ts = next((tspec.unpack(d[:16]) for lvl, typ, d in anc
                       if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS), None)
            if ts is not None:
                arrivals.append((ts[0] * 10**9 + ts[1], len(data) + HEADERS))

    rt = threading.Thread(target=receive)
    rt.start()
    sends: list[int] = []
    gap = frame * 8 * 10**9 // offered
    buf = bytes(payload)
    clock = time.time_ns
    start = clock()
    end = start + int(seconds * 10**9)
    nxt = start
    try:
        while nxt < end:
            now = clock()
            if now < nxt:
                if nxt - now > 200_000:
                    time.sleep((nxt - now - 100_000) / 1e9)
                continue
            sends.append(clock())
            tx.sendto(buf, (NET_B, PORT))
            nxt += gap
        time.sleep(0.3)
        # Everything queued has left once the backlog (at most limit bytes) has drained.
        time.sleep(0.5)
    finally:
        done.set()
        rt.join()
        tx.close()
        rx.close()
    return {"sends": sends, "arrivals": arrivals, "tc": tbf_stats(lab["ns_a"], lab["va"])}


def project_run(sends: list[int], frame: int, rate: int, burst: int, limit: int) -> dict[str, Any]:
    """The same send trace through the project's tbf: enqueue at each send time, each departure
    at the time the queue says it is eligible."""
    q = Queue("tbf", TokenBucket(rate, burst, limit=limit))
    data = bytes(frame)
    out: list[tuple[int, int]] = []
    clock = sends[0]

    def drain_until(t_end: int | None) -> None:
        nonlocal clock
        while True:
            t = q.next_eligible_ns(clock)
            if t is None or (t_end is not None and t > t_end):
                return
            clock = max(clock, t)
            for f in q.pull(1, clock):
                out.append((clock, len(f.data)))

    for t in sends:
        drain_until(t)
        clock = t
        q.push("in", [Frame(data)], t)
    drain_until(None)
    return {"departures": out, "dropped": sum(q.drops.values()), "sent_packets": q.counters["sent_packets"]}


def shape_figures(t0: int, passed: list[tuple[int, int]], window_ns: int) -> dict[str, Any]:
    """Delivered rate after the first window, bytes in the first window from ``t0``."""
    first = sum(n for t, n in passed if t - t0 <= window_ns)
    tail = [(t, n) for t, n in passed if t - t0 > window_ns]
    rate = 0.0
    if len(tail) > 1:
        # The frames after the first one of the tail, over the time from it to the last.
        rate = sum(n for _, n in tail[1:]) * 8e9 / (tail[-1][0] - tail[0][0])
    most = held = 0
    j = 0
    for t, n in passed:                     # the most bytes in any window of window_ns
        held += n
        while t - passed[j][0] > window_ns:
            held -= passed[j][1]
            j += 1
        most = max(most, held)
    return {"frames": len(passed), "bytes": sum(n for _, n in passed), "first_window_bytes": first,
            "max_window_bytes": most, "rate_bps": rate}


def compare(rate: int, burst: int, limit: int, offered: int, frame: int, seconds: float,
            window_ms: float) -> dict[str, Any]:
    with veth_lab(rate, burst, limit) as lab:
        k = kernel_run(lab, frame, offered, seconds)
    sends = k["sends"]
    p = project_run(sends, frame, rate, burst, limit)
    window = int(window_ms * 1e6)
    t0 = sends[0]
    kern = shape_figures(t0, sorted(k["arrivals"]), window) | {"dropped": k["tc"]["dropped"], "tc": k["tc"]}
    proj = shape_figures(t0, p["departures"], window) | {"dropped": p["dropped"]}
    offered_real = (len(sends) - 1) * frame * 8e9 / (sends[-1] - sends[0]) if len(sends) > 1 else 0.0
    return {"settings": {"rate": rate, "burst": burst, "limit": limit, "offered": offered, "frame": frame,
                         "seconds": seconds, "window_ms": window_ms},
            "offered_frames": len(sends), "offered_rate_bps": offered_real,
            "envelope_first_window": burst + rate * window_ms / 8e3,
            "offered_first_window_bytes": frame * sum(1 for t in sends if t - t0 <= window),
            "kernel": kern, "project": proj,
            "rate_ratio": proj["rate_bps"] / kern["rate_bps"] if kern["rate_bps"] else float("nan")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench tbf-kernel", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", default="10mbit", help="tbf rate, tc units (default 10mbit)")
    ap.add_argument("--burst", default="50000", help="tbf burst, bytes or tc size units (default 50000)")
    ap.add_argument("--limit", default="100000", help="tbf limit, bytes that may wait (default 100000)")
    ap.add_argument("--offered", default="40mbit", help="offered UDP rate (default 40mbit)")
    ap.add_argument("--frame", type=int, default=1000, help="frame size in bytes, 64-1514 (default 1000)")
    ap.add_argument("--seconds", type=float, default=3.0, help="how long to offer traffic (default 3)")
    ap.add_argument("--window", type=float, default=50.0, help="first window T in ms (default 50)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    a = ap.parse_args(argv)
    try:
        rate, offered = parse_rate(a.rate), parse_rate(a.offered)
        burst, limit = parse_size(a.burst), parse_size(a.limit)
    except ValueError as e:
        ap.error(str(e))
    if not 64 <= a.frame <= 1514 or a.seconds <= 0 or a.window <= 0 or burst < a.frame:
        ap.error("need 64 <= --frame <= 1514, --burst >= --frame, --seconds > 0, --window > 0")
    if os.geteuid() != 0:
        print("tbf-kernel: needs root (network namespaces, a veth pair, tc)")
        return 2
    r = compare(rate, burst, limit, offered, a.frame, a.seconds, a.window)
    k, p = r["kernel"], r["project"]
    print(f"tbf-kernel: rate {a.rate} burst {burst} B limit {limit} B; offered {r['offered_frames']} frames of "
          f"{a.frame} B at {r['offered_rate_bps'] / 1e6:.2f} Mbit/s for {a.seconds} s; first window {a.window} ms")
    print(f"  {'':8} {'delivered':>10} {'dropped':>8} {'rate Mbit/s':>12} {'first-window B':>15} "
          f"{'most in a window':>17}")
    for name, x in (("kernel", k), ("project", p)):
        print(f"  {name:8} {x['frames']:10} {x['dropped']:8} {x['rate_bps'] / 1e6:12.4f} "
              f"{x['first_window_bytes']:15} {x['max_window_bytes']:17}")
    print(f"  rate project/kernel {r['rate_ratio']:.4f}; envelope burst + rate*T = "
          f"{r['envelope_first_window']:.0f} B; offered in the first window {r['offered_first_window_bytes']} B")
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
