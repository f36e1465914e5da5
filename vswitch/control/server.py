"""The daemon's control server: JSON lines on a Unix socket, dispatched to the LiveSwitch.

The socket is created mode 0660 (owner root): only root, or members of the
socket's group, may talk to the daemon.  Every handler returns a JSON-ready
value or raises an error whose message is shown to the user as one line.

Each command declares the arguments it reads and their JSON types; a request
is checked against that before its handler runs, so a raw client sending a
wrong type gets an error naming the argument, and a handler sees only what
it expects.  At most `MAX_CLIENTS` connections are served at once (the next
is told so and closed), and a connection that sends no request for
`IDLE_TIMEOUT_S` seconds is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
from typing import Any

from vswitch.control.protocol import MAX_LINE, ControlError, check_socket_path, decode, encode
from vswitch.core.frame import parse_mac
from vswitch.drivers.live import LiveError, LiveSwitch
from vswitch.elements.vlan import check_vid
from vswitch.port_config import CONFIG_FILE_ONLY, PORT_SETTINGS, QDISC_KEYS, coerce_setting, fold_qdisc
from vswitch.qdisc_view import qdisc_view
from vswitch.topology import ConfigError, StaticFdbConfig, parse_port
from vswitch.views import fdb_stats_view, fdb_view, moves_view

log = logging.getLogger("vswitchd")

Handler = Callable[[LiveSwitch, dict[str, Any]], Awaitable[Any]]
HANDLERS: dict[str, Handler] = {}
ARGS: dict[str, dict[str, str]] = {}       # command -> {argument: kind}; "?" = may be absent or null
MAX_CLIENTS = 64
IDLE_TIMEOUT_S = 60.0

# kind -> (what the user is told it must be, the check)
_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "object": ("a JSON object", lambda v: isinstance(v, dict)),
    "[str]": ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
}
_JSON_TYPE = {str: "string", int: "number", float: "number", bool: "boolean", list: "array", dict: "object",
              type(None): "null"}

# A port's settings are declared in vswitch/port_config.py; `state` is set-port's action (state=up).
_SETTABLE = (*PORT_SETTINGS, *(f"{k}.PARAM" for k in QDISC_KEYS), "state")


def command(name: str, /, **args: str) -> Callable[[Handler], Handler]:
    """Register a handler and the arguments it reads (``vlan="int?"``: an optional integer)."""
    for kind in args.values():
        assert kind.rstrip("?") in _KINDS, kind

    def reg(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        ARGS[name] = args
        return fn
    return reg


def _brief(v: Any) -> str:
    text = repr(v)
    return f"{_JSON_TYPE.get(type(v), type(v).__name__)} {text if len(text) <= 40 else text[:37] + '...'}"


def check_args(cmd: str, args: dict[str, Any]) -> None:
    """ControlError naming the first argument of ``cmd`` that is missing or of the wrong type."""
    for key, kind in ARGS[cmd].items():
        v = args.get(key)
        if v is None:
            if kind.endswith("?"):
                continue
            raise ControlError(f"{cmd}: missing argument {key!r}")
        want, ok = _KINDS[kind.rstrip("?")]
        if not ok(v):
            raise ControlError(f"{cmd}: {key}: expected {want}, got {_brief(v)}")


def coerce(key: str, value: Any) -> Any:
    """A ``key=value`` from the command line to the setting's declared type (a JSON value as it
    is: `parse_port` checks it); errors name the key."""
    if key != "state" and key not in PORT_SETTINGS:
        raise ControlError(f"unknown port setting {key!r} (settable: {', '.join(_SETTABLE)})")
    if not isinstance(value, str) or key == "state":
        return value
    try:
        return coerce_setting(key, value)
    except ValueError as e:
        raise ControlError(str(e)) from None


@command("show")
async def _show(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return sw.show()


@command("add-port", port="object")
async def _add_port(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    raw = {k: coerce(k, v) for k, v in a.get("port", {}).items() if k != "state"}
    raw = {k: v for k, v in raw.items() if v is not None}
    for k in CONFIG_FILE_ONLY:      # the daemon would connect to what it names: the config file's to choose
        if k in raw:
            raise ControlError(f"{k}: set in the config file only (the daemon connects to that socket)")
    try:
        cfg = parse_port(raw, f"port {raw.get('name')!r}")
    except ConfigError as e:
        raise ControlError(str(e)) from None
    lp = await sw.add_port(cfg)
    return lp.describe()


@command("del-port", name="str")
async def _del_port(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    await sw.del_port(a["name"])
    return {"deleted": a["name"]}


@command("set-port", name="str", changes="object")
async def _set_port(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    raw = a.get("changes", {})
    if not raw:
        raise ControlError("set-port needs at least one key=value")
    # KEY.PARAM=VALUE of a queue-policy setting (qdisc, rx_qdisc, tx_qdisc): folded into KEY
    params: dict[str, dict[str, Any]] = {}
    for k, v in raw.items():
        head, dot, param = k.partition(".")
        if dot and head in QDISC_KEYS:
            params.setdefault(head, {})[param] = v
    changes = {k: coerce(k, v) for k, v in raw.items() if not ("." in k and k.partition(".")[0] in QDISC_KEYS)}
    for key, p in params.items():
        try:
            changes = fold_qdisc(getattr(sw._port(a["name"]).cfg, key), changes, p, key)
        except ValueError as e:
            raise ControlError(f"port {a['name']!r}: {e}") from None
    lp = await sw.set_port(a["name"], changes)
    return lp.describe()


def _vlan_arg(a: dict[str, Any]) -> int | None:
    v = a.get("vlan")
    if v is None:
        return None
    try:
        return check_vid(v)
    except ValueError as e:
        raise ControlError(str(e)) from None


@command("fdb/show", vlan="int?")
async def _fdb_show(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return fdb_view(sw.dp.switch, sw.clock(), _vlan_arg(a))


@command("fdb/flush", port="str?", vlan="int?")
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


@command("fdb/add", mac="str", port="str", vlan="int?")
async def _fdb_add(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    lp = sw._port(a["port"])
    if sw.dp.on_vf(lp.cfg.name):
        raise ControlError(f"port {lp.cfg.name!r} is on a VF: the NIC switches its frames, not the FDB")
    vlan = _vlan_arg(a) or 0
    try:
        mac = parse_mac(a["mac"])
    except ValueError as e:
        raise ControlError(str(e)) from None
    if mac[0] & 1:
        raise ControlError(f"{mac.hex(':')}: a static entry needs a unicast MAC")
    if vlan not in sw.dp.switch.ports[lp.number].vlan.carries:
        raise ControlError(f"port {lp.cfg.name!r} does not carry VLAN {vlan}")
    sw.dp.switch.fdb.add_static(vlan, mac, lp.number)
    sw.topo.fdb = [s for s in sw.topo.fdb if not (parse_mac(s.mac) == mac and s.vlan == vlan)]
    sw.topo.fdb.append(StaticFdbConfig(mac.hex(":"), lp.cfg.name, vlan))
    sw._persist()
    return {"added": mac.hex(":"), "port": lp.cfg.name, "vlan": vlan}


@command("fdb/del", mac="str", vlan="int?")
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


@command("qdisc/show", port="str?")
async def _qdisc_show(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    if a.get("port"):
        sw._port(a["port"])
    return qdisc_view(sw.dp, a.get("port"))


@command("counters", port="str?")
async def _counters(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return sw.counters(a.get("port"))


@command("perf-show")
async def _perf(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return sw.perf_show()


@command("nic/show")
async def _nic_show(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return sw.nic_show()


@command("vf/show")
async def _vf_show(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return sw.vf_show()


@command("vf/set", pf="str", vf="int", words="[str]")
async def _vf_set(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return await sw.vf_set(a["pf"], a["vf"], a["words"])


@command("vf/mailbox", vf="int")
async def _vf_mailbox(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return {"vf": a["vf"], "messages": sw.vf_mailbox(a["vf"])}


@command("graph/show")
async def _graph_show(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return sw.dp.graph.describe()


@command("mirror/add", name="str", select_src="[str]?", select_dst="[str]?", select_all="bool?",
         output_port="str?", output_pcap="str?", append="bool?", replace="bool?")
async def _mirror_add(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    # append / replace: what to do with an existing pcap file (refused when neither is given)
    append, replace = bool(a.get("append")), bool(a.get("replace"))
    if append and replace:
        raise ControlError("give --append or --replace, not both")
    m = sw.add_mirror(a["name"], a.get("select_src") or [], a.get("select_dst") or [], bool(a.get("select_all")),
                      a.get("output_port"), a.get("output_pcap"),
                      "append" if append else "replace" if replace else "new")
    return m.describe()


@command("mirror/del", name="str")
async def _mirror_del(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    sw.del_mirror(a["name"])
    return {"deleted": a["name"]}


@command("mirror/show")
async def _mirror_show(sw: LiveSwitch, a: dict[str, Any]) -> Any:
    return [m.describe() for m in sw.mirrors.values()]


def _listened_on(path: str) -> bool:
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class ControlServer:
    def __init__(self, sw: LiveSwitch, path: str, mode: int = 0o660, max_clients: int = MAX_CLIENTS,
                 idle_timeout: float = IDLE_TIMEOUT_S) -> None:
        self.sw = sw
        self.path = path
        self.mode = mode
        self.max_clients = max_clients
        self.idle_timeout = idle_timeout
        self.server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._bound = False
        self._busy_logged = False        # one log line per spell of refusals, not one per connection

    def prepare(self) -> None:
        """Check the socket path and make its directory, before anything else starts: ControlError
        says what is wrong.  A socket someone listens on is another daemon's; a stale one (left by
        a crash) is replaced by `start`; any other file is left alone."""
        check_socket_path(self.path)
        d = os.path.dirname(self.path) or "."
        try:
            os.makedirs(d, exist_ok=True)
        except FileExistsError:
            raise ControlError(f"cannot create the socket's directory {d}: a file of that name is in the way "
                               "(not a directory)") from None
        except OSError as e:
            raise ControlError(f"cannot create the socket's directory {d}: {e.strerror or e}") from None
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise ControlError(f"socket path {self.path}: {e.strerror or e}") from None
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlError(f"socket path {self.path} exists and is not a socket: not removing it")
        if _listened_on(self.path):
            raise ControlError(f"another vswitchd is already running on {self.path}")

    async def start(self) -> None:
        self.prepare()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)               # a stale socket from a crash (prepare: nobody listens)
        old = os.umask(0o117)                 # the socket is never world-accessible, not even briefly
        try:
            self.server = await asyncio.start_unix_server(self._client, path=self.path, limit=MAX_LINE)
        except OSError as e:
            raise ControlError(f"cannot listen on {self.path}: {e.strerror or e}") from None
        finally:
            os.umask(old)
        self._bound = True
        os.chmod(self.path, self.mode)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for w in list(self._clients):
                w.close()
            await self.server.wait_closed()
        if self._bound:                        # never a file this server did not create
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._clients) >= self.max_clients:
            if not self._busy_logged:
                self._busy_logged = True
                log.warning("control_busy", extra={"kv": {"connections": len(self._clients),
                                                          "note": "refusing more until one closes"}})
            writer.write(encode({"ok": False, "error": f"too many control connections (at most "
                                                      f"{self.max_clients} at once): try again"}))
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.drain(), 1.0)
            writer.close()
            return
        self._clients.add(writer)
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), self.idle_timeout)
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(encode({"ok": False, "error": "control message too long"}))
                    break
                except TimeoutError:           # idle (or sending a line too slowly): free the slot
                    break
                if not line:
                    break
                c0 = self.sw.control_started_ns = time.thread_time_ns()
                try:
                    writer.write(encode(await self.handle(line)))
                finally:                       # also when the client is gone mid-answer
                    self.sw.control_cpu_ns += time.thread_time_ns() - c0
                    self.sw.control_started_ns = 0
                await asyncio.wait_for(writer.drain(), self.idle_timeout)
        except (ConnectionError, BrokenPipeError, TimeoutError):
            pass
        finally:
            self._clients.discard(writer)
            self._busy_logged = False
            writer.close()

    async def handle(self, line: bytes) -> dict[str, Any]:
        try:
            req = decode(line)
            cmd = req.get("cmd")
            handler = HANDLERS.get(cmd) if isinstance(cmd, str) else None
            if handler is None:
                raise ControlError(f"unknown command {cmd!r} (known: {', '.join(sorted(HANDLERS))})")
            args = req.get("args")
            args = {} if args is None else args
            if not isinstance(args, dict):
                raise ControlError("args must be a JSON object")
            check_args(str(cmd), args)
            return {"ok": True, "result": await handler(self.sw, args)}
        except (ControlError, LiveError) as e:
            return {"ok": False, "error": str(e)}
        except KeyError as e:
            return {"ok": False, "error": f"missing argument {e}"}
        except Exception as e:            # a bug must not kill the daemon; report it in one line
            log.exception("control_error", extra={"kv": {"error": repr(e)}})
            return {"ok": False, "error": f"internal error: {type(e).__name__}: {e}"}
