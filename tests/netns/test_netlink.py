"""The link monitor and netlink configuration, also from a running (uv)loop."""

from __future__ import annotations

import asyncio
import select
import subprocess
import time

import pytest

from tests.netns.conftest import Lab
from vswitch.io import netlink
from vswitch.io.errors import PortGone
from vswitch.io.netlink import LinkEvent, LinkMonitor
from vswitch.io.packet_socket import PacketSocketPort

pytestmark = pytest.mark.netns


def _wait_for(mon: LinkMonitor, want: set[tuple[str, str]], timeout: float = 5) -> list[LinkEvent]:
    got: list[LinkEvent] = []
    deadline = time.monotonic() + timeout
    while want - {(e.kind, e.name) for e in got} and time.monotonic() < deadline:
        select.select([mon], [], [], 0.2)
        got += mon.read_events()
    missing = want - {(e.kind, e.name) for e in got}
    assert not missing, f"never saw {missing}; saw {got}"
    return got


def test_monitor_sees_veth_appear_and_disappear(lab: Lab) -> None:
    with LinkMonitor() as mon:
        mon.start()
        first = _wait_for(mon, {("appeared", "lo")})
        assert all(e.kind == "appeared" for e in first)
        a, b = lab.veth("x", "y")
        events = _wait_for(mon, {("appeared", a), ("appeared", b)})
        assert mon.links[a] == next(e.ifindex for e in events if e.name == a)
        netlink.set_up(a)
        _wait_for(mon, {("changed", a)})
        subprocess.run(["ip", "link", "del", a], check=True)
        _wait_for(mon, {("gone", a), ("gone", b)})
        assert a not in mon.links and b not in mon.links


def test_monitor_resync_reports_what_changed_meanwhile(lab: Lab) -> None:
    with LinkMonitor() as mon:
        mon.start()
        _wait_for(mon, {("appeared", "lo")})
        a, _ = lab.veth("r", "s")
        _wait_for(mon, {("appeared", a)})
        # As if events were lost (ENOBUFS): one removal and one appearance went unseen.
        ghost = lab.name("gh")
        mon._state[10**6] = (ghost, 0, 1500)
        del mon._state[mon.links[a]]
        mon.start()
        ev = _wait_for(mon, {("gone", ghost), ("appeared", a)})
        assert ghost not in mon.links and a in mon.links
        assert not any(e.kind == "appeared" and e.name == "lo" for e in ev)


def test_link_state_and_the_monitors_view_of_a_link(lab: Lab) -> None:
    """`link_state` asks the kernel; `LinkMonitor.link` says what the last message said: admin
    up (IFF_UP) and carrier (IFF_RUNNING, which a veth has only once both ends are up)."""
    with LinkMonitor() as mon:
        mon.start()
        a, b = lab.veth("la", "lb")
        _wait_for(mon, {("appeared", a), ("appeared", b)})
        idx = mon.links[a]
        assert netlink.link_state(a) == mon.link(a) == (idx, False, False, 1500)
        netlink.set_up(a)
        _wait_for(mon, {("changed", a)})
        assert netlink.link_state(a) == mon.link(a) == (idx, True, False, 1500)
        netlink.set_up(b)
        deadline = time.monotonic() + 5            # carrier comes through the kernel's linkwatch, later
        while not (mon.link(a) or netlink.LinkState(0, False, False, 0)).running and time.monotonic() < deadline:
            select.select([mon], [], [], 0.2)
            mon.read_events()
        assert netlink.link_state(a) == mon.link(a) == (idx, True, True, 1500)
        subprocess.run(["ip", "link", "del", a], check=True)
        _wait_for(mon, {("gone", a)})
        assert netlink.link_state(a) is None and mon.link(a) is None


def test_attach_port_pending_up_down_up(lab: Lab) -> None:
    """What the daemon does for an attach port whose interface comes and goes."""
    name = lab.name("vm0")
    with LinkMonitor() as mon:
        mon.start()
        _wait_for(mon, {("appeared", "lo")})
        with pytest.raises(PortGone):
            PacketSocketPort(name)                               # pending
        for _ in range(2):
            subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", lab.name("vm0p")],
                           check=True)
            _wait_for(mon, {("appeared", name)})
            netlink.set_up(name)
            port = PacketSocketPort(name)                        # up
            subprocess.run(["ip", "link", "del", name], check=True)
            _wait_for(mon, {("gone", name)})
            with pytest.raises(PortGone):                        # down
                port.read_batch()
                port.write(None, b"\xff" * 60)
            port.close()


def test_asyncio_api_under_uvloop(lab: Lab) -> None:
    uvloop = pytest.importorskip("uvloop")
    ns = lab.netns("u")
    a, b = lab.veth("ua", "ub")

    async def main() -> list[LinkEvent]:
        loop = asyncio.get_running_loop()
        mon = LinkMonitor()
        queue: asyncio.Queue[LinkEvent] = asyncio.Queue()
        loop.add_reader(mon.fileno(), lambda: [queue.put_nowait(e) for e in mon.read_events()])
        mon.start()
        try:
            # Wait until the dump has reported both ends: a link that leaves
            # before the dump reaches it is never reported, neither appearing
            # nor gone (the dump is built lazily, one buffer per read).
            seen: list[LinkEvent] = []
            while not {a, b} <= {e.name for e in seen if e.kind == "appeared"}:
                seen.append(await asyncio.wait_for(queue.get(), 5))
            await netlink.aconfigure(b, netns=ns, mtu=1400, addresses=["10.213.9.1/24"])
            await netlink.aset_mtu(a, 1400)
            assert await netlink.aifindex(b) is None
            assert await netlink.aifindex(b, ns) is not None
            while not any(e.kind == "gone" and e.name == b for e in seen):
                seen.append(await asyncio.wait_for(queue.get(), 5))
            return seen
        finally:
            loop.remove_reader(mon.fileno())
            mon.close()

    seen = uvloop.run(main())
    assert any(e.kind == "appeared" and e.name == a for e in seen)
    out = lab.run(ns, "ip", "-o", "link", "show", b).stdout
    assert "mtu 1400" in out and "UP" in out


_RESYNC_DURING_DUMP = r"""
import collections, subprocess, time
from vswitch.io.netlink import LinkMonitor
subprocess.run(["ip", "-batch", "-"], check=True, text=True,
               input="".join(f"link add d{i} type veth peer name e{i}\n" for i in range(40)))
mon = LinkMonitor()
mon.start()
first = mon.read_events(max_msgs=1)   # the dump has begun, most of it is still to come
mon.start()                           # as an ENOBUFS resync would, meanwhile
events, deadline = first, time.monotonic() + 5
while time.monotonic() < deadline and len(mon.links) < 81:
    events += mon.read_events()
    time.sleep(0.01)
time.sleep(0.2)
events += mon.read_events()
kinds = collections.Counter(e.kind for e in events)
names = collections.Counter(e.name for e in events)
print(kinds["appeared"], kinds["gone"], max(names.values()), len(mon.links))
"""


def test_monitor_start_during_a_dump_reports_nothing_gone(lab: Lab) -> None:
    """A second dump asked for while one runs waits for it: the kernel would
    answer EBUSY, and reading that as an empty dump reported every link gone."""
    ns = lab.netns("dd")   # 40 veth pairs there: a dump that takes several reads
    appeared, gone, most_per_name, links = map(int, lab.python(ns, _RESYNC_DURING_DUMP).stdout.split())
    assert (appeared, gone, most_per_name, links) == (81, 0, 1, 81)
