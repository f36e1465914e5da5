"""A QEMU guest's receive filter, followed over QMP (query-rx-filter, NIC_RX_FILTER_CHANGED).

A QEMU guest's virtio-net driver tells the device its receive filter (the control queue's
VIRTIO_NET_CTRL_RX and MAC_TABLE_SET: promiscuous and all-multicast modes, its netdev's
multicast list); QEMU keeps it and gives it out on its QMP socket with ``query-rx-filter``,
announcing a change with the ``NIC_RX_FILTER_CHANGED`` event (once, until the next query).
That is how libvirt programs a host device with a guest's filter (``trustGuestRxFilters``),
and how vswitchd's SR-IOV mode learns what a QEMU guest on a VF joined.

`follow_rx_filter(path, mac, on_filter)` connects to the QMP socket at ``path`` (and again
whenever QEMU is not there yet, or goes), negotiates capabilities, queries the filter, then
queries again after each NIC_RX_FILTER_CHANGED; each answer for the NIC whose main MAC is
``mac`` (a callable: what it returns at each query; None: the only NIC) goes to ``on_filter`` as a
`vswitch.io.rx_filter.RxFilter`: its multicast table, ALLMULTI when the guest asked for
all multicast or its table overflowed QEMU's, PROMISC when it is promiscuous.  It runs
until cancelled.  It sends QEMU nothing but those two commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from vswitch.core.frame import parse_mac
from vswitch.io.rx_filter import RxFilter

__all__ = ["follow_rx_filter", "rx_filter_of", "RETRY_S"]

log = logging.getLogger("vswitchd")
RETRY_S = 1.0                 # between connection attempts while QEMU's socket is not there
LINE_LIMIT = 1 << 20          # one QMP message (the filter's tables are at most 64 + 64 entries)


def rx_filter_of(answer: Any, mac: str | None) -> RxFilter | None:
    """The `RxFilter` in a query-rx-filter ``return`` for the NIC with main MAC ``mac`` (None:
    the only NIC); None if there is no such NIC or the answer is not what QEMU sends."""
    if not isinstance(answer, list):
        return None
    nics = [n for n in answer if isinstance(n, dict)]
    if mac is not None:
        nics = [n for n in nics if str(n.get("main-mac", "")).lower() == mac.lower()]
    if len(nics) != 1:
        return None
    n = nics[0]
    groups: list[bytes] = []
    if n.get("multicast") != "none":
        for m in n.get("multicast-table") or []:
            try:
                g = parse_mac(str(m))
            except ValueError:
                continue
            if g[0] & 1:
                groups.append(g)
    allmulti = n.get("multicast") == "all" or bool(n.get("multicast-overflow"))
    return RxFilter(tuple(groups), allmulti, bool(n.get("promiscuous")))


class _Qmp:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.events: list[dict[str, Any]] = []

    async def message(self) -> dict[str, Any]:
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("QMP socket closed")
        msg = json.loads(line)
        if not isinstance(msg, dict):
            raise ValueError(f"not a QMP message: {line[:80]!r}")
        return msg

    async def execute(self, command: str) -> Any:
        self.writer.write(json.dumps({"execute": command}).encode() + b"\n")
        await self.writer.drain()
        while True:
            msg = await self.message()
            if "event" in msg:
                self.events.append(msg)
            elif "return" in msg:
                return msg["return"]
            elif "error" in msg:
                raise ValueError(f"QMP {command}: {msg['error'].get('desc', msg['error'])}")


Mac = str | None | Callable[[], str | None]       # the NIC's main MAC, or what gives it now


async def _session(path: str, mac: Mac, on_filter: Callable[[RxFilter], None]) -> None:
    reader, writer = await asyncio.open_unix_connection(path, limit=LINE_LIMIT)
    try:
        q = _Qmp(reader, writer)
        greeting = await q.message()
        if "QMP" not in greeting:
            raise ValueError("no QMP greeting")
        await q.execute("qmp_capabilities")
        while True:
            f = rx_filter_of(await q.execute("query-rx-filter"), mac() if callable(mac) else mac)
            if f is not None:
                on_filter(f)
            # Wait for the next change (events that came while we asked count too).
            while not any(e.get("event") == "NIC_RX_FILTER_CHANGED" for e in q.events):
                q.events.append(await q.message())
            q.events.clear()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def follow_rx_filter(path: str, mac: Mac, on_filter: Callable[[RxFilter], None],
                           port: str = "") -> None:
    """Follow the guest's receive filter at QMP socket ``path`` until cancelled (see the module)."""
    last_error = None
    while True:
        try:
            await _session(path, mac, on_filter)
        except asyncio.CancelledError:
            raise
        except (OSError, ConnectionError, ValueError) as e:
            if str(e) != last_error:         # once per kind of failure, not every retry
                log.info("qmp_unavailable", extra={"kv": {"port": port, "qmp": path, "error": str(e)}})
                last_error = str(e)
        await asyncio.sleep(RETRY_S)
