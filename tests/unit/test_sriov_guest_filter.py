"""SR-IOV mode learning a QEMU guest's multicast groups over QMP: the `qmp` port setting, the
QMP client (`vswitch.io.qmp`) against a QMP server speaking QEMU's query-rx-filter and
NIC_RX_FILTER_CHANGED, and the VF's driver programming what it heard (SET_MULTICAST)."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from nicmodel.tables import hash12
from vswitch.control.protocol import encode
from vswitch.control.server import ControlServer
from vswitch.core.frame import parse_mac
from vswitch.io.qmp import rx_filter_of
from vswitch.topology import ConfigError, load_topology

NIC = '[nic]\nmode = "sriov"\nnumvfs = 2\nuplink = "up0"\n\n[[port]]\nname = "up0"\ntype = "attach"\n\n'
MAC = "52:54:00:00:00:21"


def nic(table: list[str], *, mac: str = MAC, multicast: str = "normal", overflow: bool = False,
        promisc: bool = False) -> dict[str, Any]:
    """One NIC of a query-rx-filter answer, as QEMU 7.2's virtio-net gives it."""
    return {"promiscuous": promisc, "name": "virtio-net-pci.0", "main-mac": mac, "unicast": "normal",
            "vlan": "none", "vlan-table": [], "unicast-table": [], "multicast": multicast,
            "multicast-overflow": overflow, "unicast-overflow": False, "multicast-table": table,
            "broadcast-allowed": False}


@pytest.mark.parametrize("text, message", [
    (NIC + '[[port]]\nname = "vm1"\nvf = 0\nqmp = "/run/vm1.qmp"\n',
     "port[1] ('vm1'): qmp: only an attach port on a VF (a QEMU guest's tap, vf = N)"),
    ('[[port]]\nname = "vm1"\ntype = "attach"\nqmp = "/run/vm1.qmp"\n', "qmp: only an attach port on a VF"),
    (NIC + '[[port]]\nname = "vm1"\ntype = "attach"\nvf = 0\nqmp = "vm1.qmp"\n',
     "qmp 'vm1.qmp': the absolute path of QEMU's QMP unix socket"),
    (NIC + f'[[port]]\nname = "vm1"\ntype = "attach"\nvf = 0\nqmp = "/{"x" * 120}"\n', "(at most 107 bytes)"),
])
def test_a_bad_qmp_setting_names_the_port_and_what_is_wrong(tmp_path, text, message):
    (tmp_path / "sw.toml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_topology(tmp_path / "sw.toml")
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_query_rx_filter_answer_becomes_the_guests_filter():
    f = rx_filter_of([nic(["01:00:5e:00:00:01", "33:33:00:00:00:01", "52:54:00:00:00:99", "junk"])], MAC)
    assert f is not None and f.groups == (parse_mac("01:00:5e:00:00:01"), parse_mac("33:33:00:00:00:01"))
    assert (f.allmulti, f.promisc) == (False, False)
    assert rx_filter_of([nic([], multicast="all")], MAC).allmulti
    assert rx_filter_of([nic(["33:33:00:00:00:01"], overflow=True)], MAC).allmulti      # over QEMU's 64
    assert rx_filter_of([nic(["33:33:00:00:00:01"], multicast="none")], MAC).groups == ()
    assert rx_filter_of([nic([], promisc=True)], MAC.upper()).promisc
    two = [nic(["33:33:00:00:00:01"], mac="52:54:00:00:00:01"), nic(["33:33:00:00:00:02"])]
    assert rx_filter_of(two, MAC).groups == (parse_mac("33:33:00:00:00:02"),)         # by its main MAC
    assert rx_filter_of(two, None) is None and rx_filter_of(two[:1], None) is not None
    assert rx_filter_of({"not": "a list"}, MAC) is None and rx_filter_of([nic([])], "02:00:00:00:00:01") is None


class FakeQemu:
    """A QMP server as QEMU's: greeting, qmp_capabilities, query-rx-filter from ``tables``; `change`
    sends NIC_RX_FILTER_CHANGED (once until the next query, as QEMU rate-limits it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.table: list[str] = []
        self.commands: list[str] = []
        self.writer: asyncio.StreamWriter | None = None
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self.client, str(self.path))

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        writer.write(b'{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": []}}\n')
        while line := await reader.readline():
            cmd = json.loads(line)["execute"]
            self.commands.append(cmd)
            ret: Any = [nic(self.table)] if cmd == "query-rx-filter" else {}
            writer.write(json.dumps({"return": ret}).encode() + b"\n")
            await writer.drain()

    async def change(self, table: list[str]) -> None:
        self.table = table
        assert self.writer is not None
        self.writer.write(b'{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "NIC_RX_FILTER_CHANGED", '
                          b'"data": {"path": "/machine/peripheral-anon/device[0]/virtio-backend"}}\n')
        await self.writer.drain()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def test_an_attach_port_follows_its_qemu_guests_filter_and_its_vf_joins_the_groups(tmp_path):
    from vswitch.drivers.live import LiveSwitch
    p = "vsv" + secrets.token_hex(3)
    sock = tmp_path / "vm.qmp"
    (tmp_path / "sw.toml").write_text(NIC.replace('"up0"', f'"{p}up"') + f'[[port]]\nname = "{p}vm"\n'
                                      f'type = "attach"\nvf = 1\nmac = "{MAC}"\nqmp = "{sock}"\n')
    loop = asyncio.new_event_loop()
    sw = LiveSwitch(load_topology(tmp_path / "sw.toml"))
    qemu = FakeQemu(sock)
    vf = None

    async def until(cond: Any, what: str) -> None:
        for _ in range(200):
            if cond():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(what)

    async def run() -> None:
        nonlocal vf
        await sw.start()                                   # QEMU is not there yet: the daemon retries
        vf = sw.dp.nic.pf.vf(1)
        await asyncio.sleep(0.1)
        qemu.table = ["01:00:5e:00:00:01", "33:33:00:00:00:01"]
        await qemu.start()
        await until(lambda: len(vf.info.mc_hashes) == 2, "the first filter never reached the VF")
        assert vf.info.mc_hashes == [hash12(parse_mac(g)) for g in qemu.table]
        await qemu.change(["01:00:5e:00:00:01", "33:33:00:00:00:01", "33:33:ff:ab:cd:01"])
        await until(lambda: len(vf.info.mc_hashes) == 3, "the changed filter never reached the VF")
        assert hash12(parse_mac("33:33:ff:ab:cd:01")) in vf.info.mc_hashes
        assert qemu.commands == ["qmp_capabilities", "query-rx-filter", "query-rx-filter"]   # nothing else
        # A control client may not point the daemon at a socket: add-port refuses qmp, set-port too.
        server = ControlServer(sw, str(tmp_path / "unused.sock"))
        r = await server.handle(encode({"cmd": "add-port", "args": {"port": {
            "name": f"{p}x", "type": "attach", "vf": 0, "qmp": str(tmp_path / "other.qmp")}}}))
        assert not r["ok"] and "qmp: set in the config file only" in r["error"], r
        r = await server.handle(encode({"cmd": "set-port", "args": {"name": f"{p}vm", "changes": {"qmp": "/x"}}}))
        assert not r["ok"] and "qmp cannot change at run time: it is set in the config file only" in r["error"], r
        await qemu.close()
        await sw.close()

    try:
        loop.run_until_complete(asyncio.wait_for(run(), 30))
    finally:
        loop.close()
    assert any("VF->PF SET_MULTICAST 3 hashes" in e.line() for e in vf.mailbox_log)
