"""Fixtures for tests with real TAP devices, veth pairs and network namespaces.

Every name a test creates starts with ``vst`` plus a random hex suffix, so
parallel runs never collide and cleanup only ever touches our own objects.
`Lab.cleanup` always runs (fixture finalizer), even when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

IFNAMSIZ = 15


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "netns tests need root (TAP devices, veth pairs, network namespaces)"
    if not os.path.exists("/dev/net/tun"):
        return "netns tests need /dev/net/tun"
    if shutil.which("ip") is None:
        return "netns tests need iproute2's `ip` to run commands inside namespaces"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if reason is None:
        return
    for item in items:
        if "netns" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=30)


class Lab:
    """Namespaces, veth pairs and processes of one test, all removed by `cleanup`."""

    def __init__(self) -> None:
        self.prefix = "vst" + secrets.token_hex(3)          # 9 chars; 6 left for suffixes
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[Any]] = []
        self.closers: list[Callable[[], None]] = []

    def name(self, suffix: str) -> str:
        name = self.prefix + suffix
        assert len(name) <= IFNAMSIZ, f"interface name {name!r} is over {IFNAMSIZ} chars"
        return name

    def netns(self, suffix: str) -> str:
        ns = self.name(suffix)
        _run("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        self.sh(ns, "ip link set lo up")
        # No IPv6 autoconfiguration noise (router solicitations, MLD) in our captures.
        self.sh(ns, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        return ns

    def veth(self, a: str, b: str, netns_b: str | None = None) -> tuple[str, str]:
        """A veth pair ``prefix+a`` (here) / ``prefix+b`` (optionally in ``netns_b``)."""
        na, nb = self.name(a), self.name(b)
        cmd = ["ip", "link", "add", na, "type", "veth", "peer", "name", nb]
        if netns_b:
            cmd += ["netns", netns_b]
        _run(*cmd)
        return na, nb

    def sh(self, ns: str, cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", cmd], check=check, capture_output=True,
                              text=True, timeout=timeout)

    def run(self, ns: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``ns``; raises with its output if it fails."""
        r = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)
        if r.returncode:
            raise AssertionError(f"{argv} in {ns} exited {r.returncode}: {r.stdout}{r.stderr}")
        return r

    def python(self, ns: str, source: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(ns, sys.executable, "-c", source, *args)

    def spawn(self, ns: str, *argv: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def ping(self, ns: str, addr: str, count: int = 3) -> subprocess.Popen[str]:
        """Start pinging ``addr`` from ``ns`` (``ping`` if installed, else a tiny Python pinger)."""
        if shutil.which("ping"):
            return self.spawn(ns, "ping", "-c", str(count), "-i", "0.2", "-W", "2", addr)
        pinger = Path(__file__).resolve().parents[2] / "bench" / "pinger.py"
        return self.spawn(ns, sys.executable, str(pinger), addr, str(count))

    def on_cleanup(self, fn: Callable[[], None]) -> None:
        self.closers.append(fn)

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        for fn in reversed(self.closers):
            with contextlib.suppress(Exception):
                fn()
        # Links still in our namespace (veth ends, persistent TAPs), by our prefix only.
        out = _run("ip", "-o", "link", "show", check=False).stdout
        for line in out.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith(self.prefix):
                _run("ip", "link", "del", name, check=False)
        for ns in self.namespaces:
            _run("ip", "netns", "del", ns, check=False)


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    try:
        yield lab
    finally:
        lab.cleanup()


def wait_readable(fds: list[Any], timeout: float) -> list[Any]:
    return select.select(fds, [], [], timeout)[0]


def responder(port: Any, my_ip: str, my_mac: str, done: Callable[[], bool], timeout: float = 20) -> dict[str, int]:
    """Answer ARP requests and ICMP echo requests for ``my_ip`` on ``port`` until ``done()``.

    Replies are built with scapy and written with ``port.write``: this proves
    both directions of a port.  Returns counts of what was answered.
    """
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import ARP, Ether

    seen = {"arp": 0, "icmp": 0, "other": 0}
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        if not wait_readable([port], 0.2):
            continue
        for _vnet, frame in port.read_batch(64):
            p = Ether(frame)
            if ARP in p and p[ARP].op == 1 and p[ARP].pdst == my_ip:
                reply = (Ether(src=my_mac, dst=p.src) /
                         ARP(op=2, hwsrc=my_mac, psrc=my_ip, hwdst=p[ARP].hwsrc, pdst=p[ARP].psrc))
                assert port.write(None, bytes(reply))
                seen["arp"] += 1
            elif ICMP in p and p[ICMP].type == 8 and p[IP].dst == my_ip:
                reply = (Ether(src=my_mac, dst=p.src) / IP(src=my_ip, dst=p[IP].src) /
                         ICMP(type=0, id=p[ICMP].id, seq=p[ICMP].seq) / bytes(p[ICMP].payload))
                assert port.write(None, bytes(reply))
                seen["icmp"] += 1
            else:
                seen["other"] += 1
    return seen
