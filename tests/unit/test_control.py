"""The control protocol and server dispatch: bad requests get one-line errors, never a crash."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vswitch.control.client import Client
from vswitch.control.protocol import ControlError, decode, encode
from vswitch.control.server import HANDLERS, ControlServer, coerce


def handle(line: bytes) -> dict:
    # Dispatch errors are found before any handler touches the switch.
    return asyncio.run(ControlServer(None, "/nonexistent").handle(line))  # type: ignore[arg-type]


@pytest.mark.parametrize("line, words", [
    (b"not json\n", "malformed control message"),
    (b"[1, 2]\n", "not a JSON object"),
    (b'{"cmd": "frobnicate"}\n', "unknown command 'frobnicate'"),
    (b'{"cmd": 42}\n', "unknown command 42"),
    (b'{"cmd": "show", "args": [1]}\n', "args must be a JSON object"),
])
def test_bad_requests_get_one_line_errors(line, words):
    reply = handle(line)
    assert reply["ok"] is False and words in reply["error"] and "\n" not in reply["error"]


def test_encode_decode_round_trip():
    msg = {"cmd": "fdb/show", "args": {"vlan": 10}}
    raw = encode(msg)
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert decode(raw) == msg
    assert json.loads(raw) == msg


@pytest.mark.parametrize("key, value, want", [
    ("tag", "10", 10), ("tag", "none", None), ("isolated", "on", True), ("learning", "false", False),
    ("trunks", "10,20-30", "10,20-30"), ("mtu", 9000, 9000),
])
def test_coerce_converts_command_line_values(key, value, want):
    assert coerce(key, value) == want


@pytest.mark.parametrize("key, value, words", [
    ("tag", "ten", "tag=ten: expected an integer"),
    ("flood", "maybe", "flood=maybe: expected true/false"),
    ("colour", "red", "unknown port setting 'colour'"),
])
def test_coerce_rejects_bad_values_naming_the_key(key, value, words):
    with pytest.raises(ControlError, match=words):
        coerce(key, value)


@pytest.mark.parametrize("key, value", [("mtu", "9000\nx"), ("hairpin", "on\n"), ("tag", "1\r0")])
def test_a_value_that_would_break_the_line_is_quoted(key, value):
    with pytest.raises(ControlError) as ei:
        coerce(key, value)
    assert str(ei.value).startswith(f"{key}={value!r}: expected") and "\n" not in str(ei.value)


def test_client_says_when_the_daemon_is_not_running(tmp_path):
    with pytest.raises(ControlError, match="vswitchd is not running"):
        Client(str(tmp_path / "missing.sock")).call("show")


# -- raw clients sending wrong types get the error, never "internal error" ---------------------------

@pytest.mark.parametrize("msg, words", [
    ({"cmd": "add-port", "args": {"port": 5}}, "add-port: port: expected a JSON object, got number 5"),
    ({"cmd": "add-port", "args": {}}, "add-port: missing argument 'port'"),
    ({"cmd": "del-port", "args": {"name": 5}}, "del-port: name: expected a string, got number 5"),
    ({"cmd": "del-port", "args": {"name": ["a"]}}, "del-port: name: expected a string, got array ['a']"),
    ({"cmd": "set-port", "args": {"name": "a", "changes": ["tag=1"]}}, "set-port: changes: expected a JSON object"),
    ({"cmd": "fdb/show", "args": {"vlan": [1]}}, "fdb/show: vlan: expected an integer, got array [1]"),
    ({"cmd": "fdb/show", "args": {"vlan": "10"}}, "fdb/show: vlan: expected an integer, got string '10'"),
    ({"cmd": "fdb/show", "args": {"vlan": True}}, "fdb/show: vlan: expected an integer, got boolean True"),
    ({"cmd": "fdb/show", "args": {"vlan": 1.5}}, "fdb/show: vlan: expected an integer, got number 1.5"),
    ({"cmd": "fdb/flush", "args": {"port": {"a": 1}}}, "fdb/flush: port: expected a string"),
    ({"cmd": "fdb/add", "args": {"mac": 5, "port": "a"}}, "fdb/add: mac: expected a string, got number 5"),
    ({"cmd": "fdb/del", "args": {"vlan": 1}}, "fdb/del: missing argument 'mac'"),
    ({"cmd": "counters", "args": {"port": ["a"]}}, "counters: port: expected a string"),
    ({"cmd": "mirror/add", "args": {"name": "m", "select_all": True, "output_pcap": 5}},
     "mirror/add: output_pcap: expected a string, got number 5"),
    ({"cmd": "mirror/add", "args": {"name": "m", "select_src": "vm1", "output_port": "p"}},
     "mirror/add: select_src: expected a list of strings, got string 'vm1'"),
    ({"cmd": "mirror/add", "args": {"name": "m", "select_all": "yes", "output_port": "p"}},
     "mirror/add: select_all: expected true or false"),
    ({"cmd": "mirror/del", "args": {"name": None}}, "mirror/del: missing argument 'name'"),
    ({"cmd": "show", "args": 0}, "args must be a JSON object"),
    ({"cmd": "show", "args": ""}, "args must be a JSON object"),
    ({"cmd": "port/add", "args": {"name": 5}}, "unknown command 'port/add'"),
])
def test_wrong_argument_types_are_refused_before_the_handler_runs(msg, words):
    reply = handle(json.dumps(msg).encode() + b"\n")        # no switch: a handler that ran would crash
    assert reply == {"ok": False, "error": reply["error"]} and words in reply["error"], reply


def test_a_message_nested_too_deeply_is_malformed():
    reply = handle(b"[" * 100_000 + b"\n")
    assert reply == {"ok": False, "error": "malformed control message: nested too deeply"}


JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=5)
# The protocol's argument types, as a raw client must send them (written out here, not read from the server).
WANT = {
    "add-port": {"port": dict}, "del-port": {"name": str}, "set-port": {"name": str, "changes": dict},
    "fdb/show": {"vlan": int}, "fdb/flush": {"port": str, "vlan": int},
    "fdb/add": {"mac": str, "port": str, "vlan": int},
    "fdb/del": {"mac": str, "vlan": int}, "counters": {"port": str}, "mirror/del": {"name": str},
    "mirror/add": {"name": str, "select_src": list, "select_dst": list, "select_all": bool, "output_port": str,
                   "output_pcap": str},
}


def _wrong(v: object, want: type) -> bool:
    return v is not None and type(v) is not want          # True is no integer here


@settings(max_examples=200, deadline=None)
@given(data=st.data(), cmd=st.sampled_from(sorted(WANT)))
def test_a_wrongly_typed_argument_is_named_and_the_handler_never_runs(data, cmd):
    want = WANT[cmd]
    bad_key = data.draw(st.sampled_from(sorted(want)))
    args = {k: data.draw(JSON_VALUES) for k in want if k != bad_key}
    args[bad_key] = data.draw(JSON_VALUES.filter(lambda v: _wrong(v, want[bad_key])))
    reply = handle(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
    assert reply["ok"] is False and "internal error" not in reply["error"], reply
    assert reply["error"].startswith(f"{cmd}: "), reply


@settings(max_examples=200, deadline=None)
@given(cmd=st.sampled_from(sorted(set(HANDLERS) - {"add-port", "mirror/add"}) + ["nope"]),
       args=st.one_of(st.dictionaries(st.sampled_from(["name", "port", "vlan", "mac", "changes", "x"]), JSON_VALUES,
                                      max_size=4), JSON_VALUES))
def test_generated_messages_on_a_live_switch_get_a_result_or_an_error_never_an_internal_error(cmd, args):
    """A LiveSwitch that opened nothing (no root needed): every command but those that open devices or
    files (add-port, mirror/add: tests/netns/test_bad_input.py drives those on a running switch)."""
    from vswitch.drivers.live import LiveSwitch
    from vswitch.topology import Topology
    sw = LiveSwitch(Topology())
    reply = asyncio.run(ControlServer(sw, "/nonexistent").handle(encode({"cmd": cmd, "args": args})))
    assert reply["ok"] is True or ("internal error" not in reply["error"] and "\n" not in reply["error"]), reply


def test_client_says_a_socket_path_is_too_long(tmp_path):
    path = str(tmp_path / ("s" * 120))
    with pytest.raises(ControlError) as ei:
        Client(path).call("show")
    assert str(ei.value) == f"socket path {path} is {len(path)} bytes: a Unix socket path is at most 107 bytes"


# -- connection limits: a bounded number at once, idle ones closed -----------------------------------

def test_control_socket_serves_a_bounded_number_of_connections_and_closes_idle_ones(tmp_path):
    from vswitch.drivers.live import LiveSwitch
    from vswitch.topology import Topology

    async def call(conn, cmd: str) -> dict:
        r, w = conn
        w.write(encode({"cmd": cmd, "args": {}}))
        return decode(await asyncio.wait_for(r.readline(), 5))

    async def main() -> None:
        srv = ControlServer(LiveSwitch(Topology()), str(tmp_path / "ctl.sock"), max_clients=4, idle_timeout=0.5)
        await srv.start()
        try:
            held = [await asyncio.open_unix_connection(srv.path) for _ in range(4)]
            for conn in held:                                 # each answered once, then left idle
                assert (await call(conn, "show"))["ok"] is True
            busy = "too many control connections (at most 4 at once): try again"
            extra = await asyncio.open_unix_connection(srv.path)
            assert await call(extra, "show") == {"ok": False, "error": busy}
            assert await asyncio.wait_for(extra[0].read(), 5) == b""          # and closed
            with pytest.raises(ControlError, match=r"^too many control connections"):   # as vswitchctl says it
                await asyncio.to_thread(Client(srv.path).call, "show")
            # A connection that keeps asking is not idle: it outlives the timeout.
            r, w = held[0]
            for _ in range(4):
                await asyncio.sleep(0.3)
                assert (await call(held[0], "show"))["ok"] is True
            for r, _ in held[1:]:                             # the idle ones were closed, freeing their slots
                assert await asyncio.wait_for(r.read(), 5) == b""
            assert (await asyncio.to_thread(Client(srv.path).call, "fdb/stats-show"))["current_entries"] == 0
        finally:
            await srv.close()
    asyncio.run(main())


def _recv_all(s) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def test_metrics_exporter_serves_a_bounded_number_of_connections_and_closes_idle_ones():
    import socket
    import threading
    import urllib.request

    from vswitch.control.metrics import start_exporter
    from vswitch.drivers.live import LiveSwitch
    from vswitch.topology import Topology
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    srv = start_exporter(LiveSwitch(Topology()), loop, "127.0.0.1", 0, max_connections=4, idle_timeout=1.0)
    port = srv.server_address[1]
    conns = []
    try:
        before = threading.active_count()
        conns = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
        for s in conns[4:]:                  # beyond the first four: told at once, and closed
            assert _recv_all(s).startswith(b"HTTP/1.0 503 Service Unavailable\r\n")
        assert threading.active_count() <= before + 4
        for s in conns[:4]:                  # the four that said nothing are closed after the idle timeout
            assert _recv_all(s) == b""
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "# TYPE vswitch_port_up gauge" in body
    finally:
        for s in conns:
            s.close()
        srv.shutdown()
        srv.server_close()
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)


# -- a refused command changes nothing (attach ports whose interfaces do not exist: no root needed) ----

def test_refused_port_commands_leave_no_ghost_and_no_bad_copy(tmp_path):
    import secrets

    from vswitch.drivers.live import LiveSwitch
    from vswitch.topology import load_topology, save_topology
    prefix = "vsu" + secrets.token_hex(3)
    config = tmp_path / "sw.toml"
    config.write_text(f'[[port]]\nname = "{prefix}a"\ntype = "attach"\nmac_limit = 5\n')

    async def main() -> None:
        sw = LiveSwitch(load_topology(config))
        await sw.start(on_change=lambda: save_topology(sw.topo, config))
        server = ControlServer(sw, str(tmp_path / "unused.sock"))

        async def call(cmd: str, **args: object) -> dict:
            return await server.handle(encode({"cmd": cmd, "args": args}))

        def state() -> tuple:
            return (sw.show()["ports"], {n: p.describe() for n, p in sw.dp.switch.ports.items()},
                    dict(sw.dp.switch.fdb.port_limits), sorted(sw.dp.graph.ports), config.read_bytes())
        try:
            before = state()
            for cmd, args in [
                ("add-port", {"port": {"name": prefix + "x", "type": "attach", "mac_limit": 0}}),
                ("add-port", {"port": {"name": prefix + "x", "type": "attach", "mac_limit": "-1"}}),
                ("add-port", {"port": {"name": prefix + "x", "type": "attach", "number": 0}}),
                ("add-port", {"port": {"name": prefix + "x", "type": "attach", "netns": "g1"}}),
                ("set-port", {"name": prefix + "a", "changes": {"mac_limit": "0"}}),
                ("set-port", {"name": prefix + "a", "changes": {"mtu": "9000", "tag": "4095"}}),
                ("set-port", {"name": prefix + "a", "changes": {"netns": "g1"}}),
            ]:
                reply = await call(cmd, **args)
                assert reply["ok"] is False and "internal error" not in reply["error"], (cmd, args, reply)
                assert state() == before, (cmd, args, reply)
            reply = await call("add-port", port={"name": prefix + "y", "type": "attach"})
            assert reply["ok"] and reply["result"]["number"] == 2          # no ghost took number 2
        finally:
            await sw.close()
    asyncio.run(main())
