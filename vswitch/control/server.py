"""The daemon's control server: JSON lines on a Unix socket, dispatched to the LiveSwitch.

The socket is created mode 0660 (owner root): only root, or members of the
socket's group, may talk to the daemon.  Every handler returns a JSON-ready
value or raises an error whose message is shown to the user as one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import Any

from vswitch.control.protocol import MAX_LINE, ControlError, decode, encode
from vswitch.core.frame import parse_mac
from vswitch.drivers.live import LiveError, LiveSwitch
from vswitch.elements.vlan import check_vid
from vswitch.topology import PORT_FLAGS, ConfigError, PortConfig, StaticFdbConfig, parse_port
from vswitch.views import fdb_stats_view, fdb_view, moves_view

log = logging.getLogger("vswitchd")

Handler = Callable[[LiveSwitch, dict[str, Any]], Awaitable[Any]]
HANDLERS: dict[str, Handler] = {}

_SETTABLE = {f.name: f.type for f in fields(PortConfig)} | {"state": "str"}
_INT_KEYS = {"tag", "mtu", "mac_limit", "number"}
_BOOL_KEYS = set(PORT_FLAGS) | {"persistent"}


def command(name: str) -> Callable[[Handler], Handler]:
    def reg(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn
    return reg


def coerce(key: str, value: Any) -> Any:
    """A ``key=value`` from the command line to the config's type; errors name the key."""
    if key not in _SETTABLE:
        raise ControlError(f"unknown port setting {key!r} (settable: {', '.join(sorted(_SETTABLE))})")
    if not isinstance(value, str):
        return value
    if value.lower() == "none":
        return None
    if key in _BOOL_KEYS:
        v = value.lower()
        if v in ("true", "on", "yes", "1"):
            return True
        if v in ("false", "off", "no", "0"):
            return False
        raise ControlError(f"{key}={value}: expected true/false (or on/off)")
    if key in _INT_KEYS:
        try:
            return int(value)
        except ValueError:
            raise ControlError(f"{key}={value}: expected an integer") from None
    return value


@command("show")
async def _show(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return sw.show()


@command("add-port")
async def _add_port(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    raw = {k: coerce(k, v) for k, v in a.get("port", {}).items() if k != "state"}
    raw = {k: v for k, v in raw.items() if v is not None}
    try:
        cfg = parse_port(raw, f"port {raw.get('name')!r}")
    except ConfigError as e:
        raise ControlError(str(e)) from None
    lp = await sw.add_port(cfg)
    return lp.describe()


@command("del-port")
async def _del_port(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    await sw.del_port(a["name"])
    return {"deleted": a["name"]}


@command("set-port")
async def _set_port(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    changes = {k: coerce(k, v) for k, v in a.get("changes", {}).items()}
    if not changes:
        raise ControlError("set-port needs at least one key=value")
    lp = await sw.set_port(a["name"], changes)
    return lp.describe()


def _vlan_arg(a: dict[str, Any]) -> int | None:
    v = a.get("vlan")
    if v is None:
        return None
    try:
        return check_vid(int(v))
    except ValueError as e:
        raise ControlError(str(e)) from None


@command("fdb/show")
async def _fdb_show(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return fdb_view(sw.dp.switch, sw.clock(), _vlan_arg(a))


@command("fdb/flush")
async def _fdb_flush(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    port = sw._port(a["port"]).number if a.get("port") else None
    n = sw.dp.switch.fdb.flush(port=port, vlan=_vlan_arg(a))
    log.info("fdb_flushed", extra={"kv": {"port": a.get("port") or "all", "entries": n}})
    return {"flushed": n}


@command("fdb/stats-show")
async def _fdb_stats(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return fdb_stats_view(sw.dp.switch.fdb)


@command("fdb/moves-show")
async def _fdb_moves(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return moves_view(sw.dp.switch)


@command("fdb/add")
async def _fdb_add(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    lp = sw._port(a["port"])
    vlan = _vlan_arg(a) or 0
    try:
        mac = parse_mac(a["mac"])
    except ValueError as e:
        raise ControlError(str(e)) from None
    if mac[0] & 1:
        raise ControlError(f"{a['mac']}: a static entry needs a unicast MAC")
    if vlan not in sw.dp.switch.ports[lp.number].vlan.carries:
        raise ControlError(f"port {lp.cfg.name!r} does not carry VLAN {vlan}")
    sw.dp.switch.fdb.add_static(vlan, mac, lp.number)
    sw.topo.fdb = [s for s in sw.topo.fdb if not (parse_mac(s.mac) == mac and s.vlan == vlan)]
    sw.topo.fdb.append(StaticFdbConfig(mac.hex(":"), lp.cfg.name, vlan))
    sw._persist()
    return {"added": mac.hex(":"), "port": lp.cfg.name, "vlan": vlan}


@command("fdb/del")
async def _fdb_del(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    vlan = _vlan_arg(a) or 0
    try:
        mac = parse_mac(a["mac"])
    except ValueError as e:
        raise ControlError(str(e)) from None
    if not sw.dp.switch.fdb.delete(vlan, mac):
        raise ControlError(f"no FDB entry for {mac.hex(':')} in VLAN {vlan}")
    sw.topo.fdb = [s for s in sw.topo.fdb if not (parse_mac(s.mac) == mac and s.vlan == vlan)]
    sw._persist()
    return {"deleted": mac.hex(":"), "vlan": vlan}


@command("counters")
async def _counters(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return sw.counters(a.get("port"))


@command("perf-show")
async def _perf(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return sw.perf_show()


@command("nic/show")
async def _nic_show(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return sw.nic_show()


@command("mirror/add")
async def _mirror_add(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    # append / replace: what to do with an existing pcap file (refused when neither is given)
    append, replace = a.get("append", False), a.get("replace", False)
    if not isinstance(append, bool) or not isinstance(replace, bool):
        raise ControlError("mirror/add: append and replace must be true or false")
    if append and replace:
        raise ControlError("give --append or --replace, not both")
    m = sw.add_mirror(a["name"], a.get("select_src", []), a.get("select_dst", []), bool(a.get("select_all")),
                      a.get("output_port"), a.get("output_pcap"),
                      "append" if append else "replace" if replace else "new")
    return m.describe()


@command("mirror/del")
async def _mirror_del(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    sw.del_mirror(a["name"])
    return {"deleted": a["name"]}


@command("mirror/show")
async def _mirror_show(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return [m.describe() for m in sw.mirrors.values()]


class ControlServer:
    def __init__(self, sw: LiveSwitch, path: str, mode: int = 0o660) -> None:
        self.sw = sw
        self.path = path
        self.mode = mode
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        old = os.umask(0o117)                 # the socket is never world-accessible, not even briefly
        try:
            self.server = await asyncio.start_unix_server(self._client, path=self.path, limit=MAX_LINE)
        finally:
            os.umask(old)
        os.chmod(self.path, self.mode)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(encode({"ok": False, "error": "control message too long"}))
                    break
                if not line:
                    break
                writer.write(encode(await self.handle(line)))
                await writer.drain()
        except (ConnectionError, BrokenPipeError):
            pass
        finally:
            writer.close()

    async def handle(self, line: bytes) -> dict[str, Any]:
        try:
            req = decode(line)
            cmd = req.get("cmd")
            handler = HANDLERS.get(cmd) if isinstance(cmd, str) else None
            if handler is None:
                raise ControlError(f"unknown command {cmd!r} (known: {', '.join(sorted(HANDLERS))})")
            args = req.get("args") or {}
            if not isinstance(args, dict):
                raise ControlError("args must be a JSON object")
            return {"ok": True, "result": await handler(self.sw, args)}
        except (ControlError, LiveError) as e:
            return {"ok": False, "error": str(e)}
        except KeyError as e:
            return {"ok": False, "error": f"missing argument {e}"}
        except Exception as e:            # a bug must not kill the daemon; report it in one line
            log.exception("control_error", extra={"kv": {"error": repr(e)}})
            return {"ok": False, "error": f"internal error: {type(e).__name__}: {e}"}
