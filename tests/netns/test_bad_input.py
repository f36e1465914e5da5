"""Bad input to the live switch: one clear line, a non-zero exit, and nothing changed.

Refused commands leave `show`, the FDB and the config file exactly as they were (a hypothesis
property on an in-process LiveSwitch with real TAP devices, and the reported cases through the
real vswitchctl and vswitchd); start-up errors are one line before any port exists; the control
socket and the metrics exporter hold a bounded number of connections.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.netns.harness import ROOT, Daemon, guest, ping_ok
from vswitch.control.protocol import ControlError, decode, encode
from vswitch.control.server import ControlServer
from vswitch.drivers.live import LiveSwitch
from vswitch.elements.vlan import MODES
from vswitch.topology import load_topology, save_topology, topology_to_dict

pytestmark = pytest.mark.netns


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="vswitchd-bad-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def link_exists(name: str, ns: str | None = None) -> bool:
    cmd = ["ip", *(["-n", ns] if ns else []), "link", "show", "dev", name]
    return subprocess.run(cmd, capture_output=True).returncode == 0


# -- an in-process LiveSwitch, its control dispatcher and the config file it saves -----------------

class InProcess:
    """A LiveSwitch on its own event loop (uvloop, as vswitchd), saving its config as vswitchd does;
    `handle` is the control server's dispatch of one request."""

    def __init__(self, config: Path) -> None:
        import uvloop
        self.config = config
        self.loop = uvloop.new_event_loop()
        self.sw = LiveSwitch(load_topology(config))
        self.server = ControlServer(self.sw, str(config.with_name("unused.sock")))
        self.loop.run_until_complete(self.sw.start(on_change=lambda: save_topology(self.sw.topo, config)))

    def handle(self, msg: Any) -> dict[str, Any]:
        return self.loop.run_until_complete(self.server.handle(encode({"cmd": msg[0], "args": msg[1]})))

    def snapshot(self) -> dict[str, Any]:
        """`show --json`, `fdb show --json`, the config file's bytes, and the switch's own copy of
        each port (what a half-made change leaves behind: a ghost port, a bad limit)."""
        sw = self.sw
        show = self.handle(("show", {}))["result"]
        del show["bridge"]["uptime_s"]
        fdb = self.handle(("fdb/show", {}))["result"]
        return {"show": show, "fdb": [{**e, "age": "static" if e["age"] == "static" else "dynamic"} for e in fdb],
                "config": self.config.read_bytes(), "topology": topology_to_dict(sw.topo),
                "switch_ports": {n: p.describe() for n, p in sw.dp.switch.ports.items()},
                "port_limits": dict(sw.dp.switch.fdb.port_limits), "graph_ports": sorted(sw.dp.graph.ports),
                "numbers": dict(sw.dp.numbers), "counters": sorted(self.handle(("counters", {}))["result"]["ports"]),
                "mirrors": self.handle(("mirror/show", {}))["result"]}

    def close(self) -> None:
        self.loop.run_until_complete(self.sw.close())
        self.loop.close()


@pytest.fixture
def bench(lab, workdir):
    """Namespaces g1 and g2 (a TAP port in each), a veth whose host end is an attach port, a pending
    attach port, a static FDB entry; `make()` starts a fresh switch from that config."""
    ns1, ns2 = lab.netns("g1"), lab.netns("g2")
    vm = lab.netns("vm")
    veth, peer = lab.veth("v0", "p0", vm)
    subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{veth}.disable_ipv6=1"], check=True)
    subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    lab.run(vm, "ip", "link", "set", peer, "up")
    names = {"t1": lab.name("t1"), "t2": lab.name("t2"), "v0": veth, "pe": lab.name("pe")}
    text = f"""
[[port]]
name = "{names['t1']}"
netns = "{ns1}"
tag = 10

[[port]]
name = "{names['t2']}"
netns = "{ns2}"
trunks = "10,20"

[[port]]
name = "{veth}"
type = "attach"
mac_limit = 5

[[port]]
name = "{names['pe']}"
type = "attach"

[[fdb]]
mac = "02:00:00:00:00:01"
port = "{names['t1']}"
vlan = 10
"""
    config = workdir / "sw.toml"

    class Bench:
        """The switch under test and its snapshot as built; rebuilt whenever a command changed it."""

        ports = names
        namespaces = (ns1, ns2)
        missing_ns = lab.prefix + "zz"
        new_names = (lab.name("n1"), lab.name("n2"))
        current: InProcess | None = None
        built: dict[str, Any] = {}

        @classmethod
        def switch(cls) -> InProcess:
            if cls.current is None:
                config.write_text(text)
                cls.current = InProcess(config)
                cls.built = cls.current.snapshot()
            return cls.current

        @classmethod
        def reset(cls) -> None:
            if cls.current is not None:
                cls.current.close()
                cls.current = None
    lab.on_cleanup(Bench.reset)
    return Bench


def _messages(b: Any, workdir: Path) -> st.SearchStrategy:
    """Control requests built to be refused (and some to succeed): mostly right, with one value
    wrong (sometimes two), now and then of the wrong type altogether.  Every name is one of ours:
    an existing port, a new lab-prefixed one, or one no interface can have.  Choices are weighted
    through a Random that hypothesis seeds (its own draws favour the ends of a range)."""
    existing = list(b.ports.values())
    junk = [5, None, True, 1.5, ["x"], {"a": 1}]
    bad_names = ["", "a" * 16, "a/b", "x\ny", ".", "a b", "p%d", "a:b", *junk]
    vlans = [0, 10, 20, 4094, None, 4095, 4096, -1, "10", [10], True, 1.5]
    macs = ["02:00:00:00:00:01", "02:00:00:00:00:09", "01:00:5e:00:00:01", "zz", 5, None, ""]
    pcaps = [str(workdir / "m.pcap"), str(workdir / "no" / "dir" / "m.pcap"), "", 5, None]
    # key: (right values, wrong ones), as JSON values and as the strings vswitchctl's key=value sends
    values: dict[str, tuple[list[Any], list[Any]]] = {
        "type": (["tap", "attach"], ["replay", "vhost", 5]),
        "tag": ([10, 20, "30", None, "none"], [4095, 4096, -1, "4095", "x", "1\n0", [10], 1.5]),
        "trunks": (["10,20", "1-4094", [10, 20], "none"], ["4095", "1-4095", "x", "20-10", [4095], 5]),
        "vlan_mode": ([*MODES], ["dot1q-tunnel", 5]),
        "mtu": ([1500, 9000, "1400"], [67, 70000, "x", 1.5]),
        "mac_limit": ([1, 100, "none"], [0, -1, "0", "-1", 10**7, 1.5]),
        "mac_limit_policy": (["stop", "evict"], ["drop", 5]),
        "netns": ([*b.namespaces], [b.missing_ns, "/proc/1/ns/net", "..", "", 5]),
        "persistent": ([True, False, "on"], ["maybe", 5]),
        "mac": (["02:00:00:00:00:09"], ["01:00:5e:00:00:01", "02:00:00:00:00:09\n", "zz", 5]),
        "number": ([9, "12"], [1, 2, 0, -1, 70000, "x"]),
        "state": (["up"], ["down", "up\n", 5, {}]),
        "colour": ([], ["red"]),
        **{k: ([True, False, "on", "off"], ["maybe", 5])
           for k in ("learning", "flood", "mcast_flood", "bcast_flood", "isolated", "hairpin")},
    }
    good_keys = sorted(k for k, (good, _) in values.items() if good)
    # Wrong values most often for the keys half-made changes have been seen to leave behind.
    bad_keys = sorted(values) + 6 * ["mac_limit", "netns", "mtu", "tag", "trunks", "number"]

    def message(r: Any) -> tuple[str, Any]:
        def one_in(n: int) -> bool:
            return r.randrange(n) == 0

        def port_name() -> Any:
            return r.choice(bad_names) if one_in(4) else r.choice(existing + list(b.new_names))

        def settings_(new_port: bool) -> Any:
            if one_in(8):
                return r.choice(junk)
            out = {k: r.choice(values[k][0]) for k in r.sample(good_keys, r.randrange(4))}
            for k in set(r.sample(bad_keys, r.choice([0, 1, 1, 1, 1, 2]))):
                out[k] = r.choice(values[k][1])
            if new_port and not one_in(10):
                out["name"] = r.choice(b.new_names) if not one_in(4) else port_name()
            return out

        def names() -> Any:
            return r.choice(junk) if one_in(5) else [port_name() for _ in range(r.randrange(3))]
        build = {
            "add-port": lambda: {"port": settings_(True)},
            "set-port": lambda: {"name": port_name(), "changes": settings_(False)},
            "del-port": lambda: {"name": port_name()},
            "fdb/show": lambda: {"vlan": r.choice(vlans)},
            "fdb/flush": lambda: {"port": port_name() if one_in(2) else None, "vlan": r.choice(vlans)},
            "fdb/add": lambda: {"mac": r.choice(macs), "port": port_name(), "vlan": r.choice(vlans)},
            "fdb/del": lambda: {"mac": r.choice(macs), "vlan": r.choice(vlans)},
            "counters": lambda: {"port": port_name() if one_in(2) else None},
            "mirror/add": lambda: {"name": r.choice(["m", "", 5]), "select_src": names(), "select_dst": names(),
                                   "select_all": r.choice([True, False, "yes", None]),
                                   "output_port": port_name() if one_in(2) else None,
                                   "output_pcap": r.choice(pcaps)},
            "mirror/del": lambda: {"name": r.choice(["m", "nosuch", 5])},
            **{c: dict for c in ("show", "fdb/stats-show", "fdb/moves-show", "perf-show", "nic/show",
                                 "mirror/show", "port/add")},
        }
        # The commands that change things, more often than those that only look.
        weight = {"add-port": 8, "set-port": 8, "fdb/add": 2, "del-port": 2, "mirror/add": 2}
        cmd = r.choices(sorted(build), weights=[weight.get(c, 1) for c in sorted(build)])[0]
        a = build[cmd]()
        if a and one_in(10):                                 # now and then an argument is missing
            del a[r.choice(sorted(a))]
        return cmd, (r.choice(junk) if one_in(20) else a)   # or the args are not an object
    return st.randoms(use_true_random=True).map(message)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(data=st.data())
def test_a_refused_command_changes_nothing(bench, workdir, data):
    """Any control request: a result, or a one-line error (never "internal error") after which
    `show`, `fdb show`, the config file and the switch's own port table are exactly as before."""
    msg = data.draw(_messages(bench, workdir), label="request")
    s = bench.switch()
    assert s.snapshot() == bench.built
    reply = s.handle(msg)
    assert set(reply) in ({"ok", "result"}, {"ok", "error"}), reply
    after = s.snapshot()
    if not reply["ok"]:
        err = reply["error"]
        assert "internal error" not in err and "\n" not in err, (msg, err)
        assert after == bench.built, (msg, err)
    elif after != bench.built:
        bench.reset()                       # it did change something: start the next one afresh


# -- the reported cases, through vswitchctl and a real vswitchd ------------------------------------

def _state(d: Daemon) -> tuple[Any, ...]:
    """What `show --json`, `fdb show --json` and `counters --json` print, and the config file."""
    show = d.call("show")
    del show["bridge"]["uptime_s"]
    return show, d.call("fdb/show"), d.config.read_bytes(), sorted(d.call("counters")["ports"])


def test_refused_commands_through_vswitchctl_leave_the_switch_and_its_config_alone(lab, workdir):
    ns1, ns2 = lab.netns("g1"), lab.netns("g2")
    t1, t2 = lab.name("t1"), lab.name("t2")
    d = Daemon(lab, workdir, f'[[port]]\nname = "{t1}"\nnetns = "{ns1}"\n\n'
                             f'[[port]]\nname = "{t2}"\nnetns = "{ns2}"\n').start()
    guest(lab, ns1, t1, "10.87.0.1/24")
    guest(lab, ns2, t2, "10.87.0.2/24")
    ghost = lab.name("px")
    cases = [
        (["add-port", ghost, "--type", "attach", "--mac-limit", "0"], "mac_limit 0"),
        (["add-port", ghost, "--type", "attach", "--mac-limit", "-1"], "mac_limit -1"),
        (["add-port", ghost, "--vlan", "4095"], "bad VLAN 4095"),
        (["add-port", ghost, "--netns", lab.prefix + "zz"], "does not exist"),
        (["add-port", ghost, "--netns", "/proc/1/ns/net"], "netns '/proc/1/ns/net'"),
        (["add-port", lab.name("x") + "\nx"], "name"),
        (["add-port", "a" * 16], "at most 15 bytes"),
        (["set-port", t1, "mac_limit=0"], "mac_limit 0"),
        (["set-port", t1, "netns=" + lab.prefix + "zz"], "does not exist"),
        (["set-port", t1, "tag=4095"], "bad VLAN 4095"),
        (["set-port", t1, "trunks=1-4095"], "bad VLAN 4095"),
        (["set-port", t1, "mtu=9000", "tag=5000"], "bad VLAN 5000"),
        (["fdb", "add", "01:00:5e:00:00:01", t1], "unicast"),
        (["fdb", "show", "--vlan", "4095"], "bad VLAN 4095"),
    ]
    before = _state(d)
    for argv, words in cases:
        r = d.ctl(*argv)
        assert r.returncode == 1, (argv, r.stdout, r.stderr)
        err = r.stderr.strip()
        assert len(err.splitlines()) == 1 and words in err and "internal error" not in err, (argv, r.stderr)
        assert _state(d) == before, argv
    # No ghost port took a number or receives flood copies; the TAP whose netns was mistyped still works.
    assert d.ctl("add-port", lab.name("pn"), "--type", "attach").returncode == 0
    assert d.port(lab.name("pn"))["number"] == 3
    assert ghost not in d.call("counters")["ports"]
    assert d.port(t1)["state"] == "up" and link_exists(t1, ns1)
    assert ping_ok(lab, ns1, "10.87.0.2")
    log = d.log.read_text()
    assert "Traceback" not in log and "control_error" not in log, log


def test_raw_clients_sending_wrong_types_get_the_error_and_leave_no_traceback(lab, workdir):
    d = Daemon(lab, workdir).start()
    bad = [{"cmd": "add-port", "args": {"port": {"name": 5}}}, {"cmd": "add-port", "args": {"port": 5}},
           {"cmd": "port/add", "args": {"name": 5}}, {"cmd": "fdb/show", "args": {"vlan": [1]}},
           {"cmd": "del-port", "args": {"name": ["a"]}}, {"cmd": "show", "args": [1]},
           {"cmd": "mirror/add", "args": {"name": "m", "select_all": True, "output_pcap": 5}}]
    for msg in bad:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(d.socket)
            s.sendall(json.dumps(msg).encode() + b"\n")
            reply = decode(s.makefile("rb").readline())
        assert reply["ok"] is False and "internal error" not in reply["error"], (msg, reply)
    log = d.log.read_text()
    assert "Traceback" not in log and "control_error" not in log, log


# -- start-up errors: one line, a non-zero exit, before any port exists ------------------------------

def _vswitchd(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vswitch.daemon", *argv], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def _the_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("vswitchd: ")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def test_start_up_os_errors_are_one_line_and_no_port_is_made(lab, workdir):
    tap = lab.name("t1")
    config = workdir / "sw.toml"
    config.write_text(f'[[port]]\nname = "{tap}"\n')
    sock = str(workdir / "ctl.sock")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = _the_error(_vswitchd("--config", str(config), "--socket", sock, "--metrics", f"127.0.0.1:{port}"))
    assert err == f"vswitchd: --metrics 127.0.0.1:{port}: cannot listen there: Address already in use"
    # In a namespace of our own, so the name lookup never leaves the machine.
    ns = lab.netns("dns")
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "vswitch.daemon", "--config", str(config),
                        "--socket", sock, "--metrics", "nosuchhost.invalid:9477"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert _the_error(r).startswith("vswitchd: --metrics nosuchhost.invalid:9477: cannot resolve 'nosuchhost.invalid'")
    long = str(workdir / ("s" * 120))
    err = _the_error(_vswitchd("--config", str(config), "--socket", long))
    assert err == f"vswitchd: socket path {long} is {len(long)} bytes: a Unix socket path is at most 107 bytes"
    (workdir / "file").write_text("not a directory\n")
    err = _the_error(_vswitchd("--config", str(config), "--socket", str(workdir / "file" / "ctl.sock")))
    assert err.startswith(f"vswitchd: cannot create the socket's directory {workdir / 'file'}")
    err = _the_error(_vswitchd("--config", str(config), "--socket", str(workdir / "file")))
    assert err == f"vswitchd: socket path {workdir / 'file'} exists and is not a socket: not removing it"
    assert (workdir / "file").read_text() == "not a directory\n"
    assert not link_exists(tap)                     # every check ran before the first port was opened
    assert config.read_text() == f'[[port]]\nname = "{tap}"\n'


@pytest.mark.parametrize("text, words", [
    ("bridge = 5\n", "'bridge' must be a table"),
    ("fdb = 5\n", "'fdb' must be an array of tables"),
    ('[[port]]\nname = "a"\n[[fdb]]\nmac = 5\nport = "a"\n', "fdb[0]: mac: expected str"),
    ("[bridge.move_damping]\nhold = inf\n", "[bridge.move_damping]: hold inf"),
    ('[[port]]\nname = "a"\nmac_limit = -1\n', "port[0] ('a'): mac_limit -1"),
    ('[[port]]\nname = "a"\ntype = "replay"\n', "port[0] ('a'): type 'replay'"),
    ('[[port]]\nname = "a"\ntype = "attach"\nnetns = "x"\n', "port[0] ('a'): netns"),
    (b'[bridge]\nname = "\xff"\n', "not UTF-8"),
])
def test_a_bad_config_stops_vswitchd_with_one_line(workdir, text, words):
    config = workdir / "sw.toml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    err = _the_error(_vswitchd("--config", str(config), "--socket", str(workdir / "ctl.sock")))
    assert err.startswith(f"vswitchd: {config}: ") and words in err, err


def test_vswitchctl_says_a_socket_path_is_too_long():
    long = "/tmp/" + "s" * 120
    r = subprocess.run([sys.executable, "-m", "vswitch.cli", "--socket", long, "show"], capture_output=True,
                       text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 1
    assert r.stderr == f"vswitchctl: socket path {long} is {len(long)} bytes: a Unix socket path is at most 107 bytes\n"


def test_a_stray_temporary_config_from_a_killed_daemon_is_removed_at_start(lab, workdir):
    d = Daemon(lab, workdir)
    stray = workdir / f".{d.config.name}.tmp"
    stray.write_text("# half a config, written when vswitchd was SIGKILLed\n[[port\n")
    d.start()
    assert not stray.exists()
    assert "event=stray_tmp_removed" in d.log.read_text()
    assert d.ctl("add-port", lab.name("a"), "--type", "attach").returncode == 0
    assert d.config.exists() and not stray.exists()


# -- bounded connections, against the running daemon ------------------------------------------------

def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads: line")


def test_idle_metrics_connections_do_not_each_take_a_thread(lab, workdir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = Daemon(lab, workdir, extra=["--metrics", f"127.0.0.1:{port}"]).start()
    assert d.proc is not None
    base = _threads(d.proc.pid)
    conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(300)]
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _threads(d.proc.pid) < base + 16:
            time.sleep(0.05)
        time.sleep(0.5)
        assert _threads(d.proc.pid) <= base + 16          # 300 idle connections made 300 threads
        with pytest.raises(urllib.error.HTTPError) as ei:   # the exporter is full: said at once
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert ei.value.code == 503
    finally:
        for c in conns:
            c.close()
    deadline = time.monotonic() + 15
    while True:                                            # closed by their clients: the slots come back
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            break
        except urllib.error.HTTPError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert "vswitch_port_up" in body
    assert d.proc.poll() is None


def test_the_control_socket_refuses_connections_over_its_cap_in_one_line(lab, workdir):
    d = Daemon(lab, workdir).start()
    conns = []
    try:
        for _ in range(300):
            c = socket.socket(socket.AF_UNIX)
            c.connect(d.socket)                  # blocking: waits while the listen backlog is full
            c.settimeout(20)
            conns.append(c)
        replies = []
        for c in conns:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):   # a refused one may be closed
                c.sendall(encode({"cmd": "fdb/stats-show", "args": {}}))
            replies.append(decode(c.makefile("rb").readline()).get("error", "ok"))
    finally:
        for c in conns:
            c.close()
    assert replies.count("ok") == 64
    assert set(replies) == {"ok", "too many control connections (at most 64 at once): try again"}
    # The slots are free again once the daemon has seen them close (it may take it a moment
    # to read 300 closed sockets on a busy machine): wait for that, boundedly.
    deadline = time.monotonic() + 20
    while True:
        try:
            shown = d.call("show")
            break
        except ControlError as e:
            if "too many control connections" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert shown["ports"] == []
    assert d.proc is not None and d.proc.poll() is None
