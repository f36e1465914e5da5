"""``vswitch-bench peers``: vswitchd against the Linux bridge and vde_switch, live.

For each switch under test the same topology is built: two guest network
namespaces, a client and a server, each with one interface, joined by

``bridge``    the Linux bridge with veth pairs (the bridge sits in a namespace
              of its own, STP off, br_netfilter calls off: a plain bridge);
``vde``       vde_switch (Debian vde2) with two ``-tap`` ports, the TAPs moved
              into the guest namespaces (the switch keeps their fds);
``relay``     ``python -m bench.relay``: two TAPs and a bare copy loop on uvloop
              with the same offloads and I/O code as vswitchd, no switching:
              the floor of any Python TAP switch (frames counted from the
              TAPs' own kernel statistics);
``ovs``       Open vSwitch in user space (Debian openvswitch-switch, not in the
              default set): its own ovsdb-server and ovs-vswitchd run by hand
              on a scratch database, a ``datapath_type=netdev`` bridge with the
              NORMAL (learning) flow, ``userspace-tso-enable=true`` and two
              ``type=tap`` ports moved into the guest namespaces: the C
              user-space switch with TSO that vswitchd's design matches;
``vswitchd``  ``python -m vswitch.daemon`` with a generated config: two tap
              ports with ``netns`` set, the full pipeline on (learning, VLAN
              classification, counters).

Setup is pyroute2 (netlink); the guests' traffic is iperf3 and ping run
with ``ip netns exec``.  Measurements, each the median of ``--reps``
repetitions interleaved across switches (rep 1: tcp1 bridge, vde, vswitchd,
tcp4 bridge, ...; rep 2: ...):

- iperf3 TCP, 1 stream and 4 streams (``-P 4``): receiver Gbit/s;
- iperf3 UDP with 64-byte datagrams (``-u -l 64 -b 0``): datagrams/s the
  server received (sent minus lost);
- ping: 200 echo requests 5 ms apart; average and p99 (nearest rank) of the
  individual RTTs;
- CPU per frame: iperf3 UDP 64 B paced at 50 kpps; the switch process's
  user+sys time (``/proc/PID/stat``, all threads) over a steady-state window,
  divided by the frames the switch itself counted in that window (vde_switch:
  ``port/allprint`` on its management socket; vswitchd: ``counters``).  The
  Linux bridge runs in the kernel (softirq of the sender): n/a.

Everything created is named ``vsb`` + 6 random hex digits + a short suffix
(at most 12 characters) and is removed in a ``finally`` (also on Ctrl-C or
SIGTERM): processes it started, namespaces it created, links with its
prefix.  Nothing else is touched; traffic only flows between its own
namespaces.

Exit status: 0 all figures measured; 1 some measurement failed (the rest are
reported); 2 cannot run here (not root, a tool missing, bad arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.signals import signals_ignored, sigterm_as_interrupt

ROOT = Path(__file__).resolve().parents[1]
SWITCHES = ("bridge", "vde", "ovs", "relay", "vswitchd", "vswitchd-pure")
DEFAULT_SWITCHES = ("bridge", "vde", "relay", "vswitchd")
LABELS = {"bridge": "Linux bridge", "vde": "vde_switch", "ovs": "OVS userspace+TSO", "relay": "bare Python relay",
          "vswitchd": "vswitchd", "vswitchd-pure": "vswitchd, interpreted"}
METRICS = ("tcp1_gbps", "tcp4_gbps", "udp64_rx_pps", "ping_avg_us", "ping_p99_us", "cpu_us_per_frame")
CLIENT_IP, SERVER_IP, PLEN = "10.213.0.1", "10.213.0.2", 24
IPERF_PORT = 5201
CPU_PPS = 50_000            # the fixed load of the CPU-per-frame measurement
UDP_LEN = 64                # iperf3 -l: UDP payload bytes
PINGS, PING_INTERVAL = 200, 0.005
IFNAMSIZ = 15
OVS_TOOLS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl")
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")


class Unavailable(Exception):
    """The benchmark cannot run here (exit 2, one line)."""


class MeasureError(Exception):
    """One measurement failed; the others go on."""


# -- preconditions -------------------------------------------------------------
def check_environment(switches: list[str]) -> None:
    if os.geteuid() != 0:
        raise Unavailable("needs root (network namespaces, veth pairs, TAP devices)")
    if not os.path.exists("/dev/net/tun"):
        raise Unavailable("needs /dev/net/tun (TAP devices)")
    tools = ["ip", "iperf3", "ping"] + (["vde_switch"] if "vde" in switches else []) \
        + (list(OVS_TOOLS) if "ovs" in switches else [])
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        hint = {"iperf3": "apt-get install iperf3", "vde_switch": "apt-get install vde2",
                "ping": "apt-get install iputils-ping", "ip": "apt-get install iproute2",
                **{t: "apt-get install openvswitch-switch" for t in OVS_TOOLS}}
        raise Unavailable(f"missing tool(s): {', '.join(missing)} "
                          f"({'; '.join(hint[t] for t in missing)})")
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        raise Unavailable("needs pyroute2 (pip install pyroute2)") from None


# -- the resources one run creates ---------------------------------------------
class Lab:
    """Namespaces, processes and a scratch directory, all named with one random prefix."""

    def __init__(self) -> None:
        from pyroute2 import config as pyroute2_config
        # pyroute2 enters namespaces through forked children it stops with SIGTERM;
        # they must not inherit our SIGTERM handler.
        pyroute2_config.disable_mp_signal = True
        self.prefix = "vsb" + secrets.token_hex(3)          # 9 characters
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[Any]] = []
        self.closers: list[Callable[[], None]] = []
        self.workdir = Path(tempfile.mkdtemp(prefix=self.prefix + "-"))

    def name(self, suffix: str) -> str:
        name = self.prefix + suffix
        assert len(name) <= IFNAMSIZ, name
        return name

    def netns(self, suffix: str) -> str:
        from pyroute2 import netns
        ns = self.name(suffix)
        netns.create(ns)
        self.namespaces.append(ns)
        with ipr(ns) as ip:
            ip.link("set", index=ip.link_lookup(ifname="lo")[0], state="up")
        # No IPv6 autoconfiguration chatter (router/neighbour solicitations, MLD) in the measurements.
        nsexec(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        return ns

    def spawn(self, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def cleanup(self) -> list[str]:
        """Undo everything; returns what could not be undone (for a warning)."""
        problems: list[str] = []
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception as e:      # keep cleaning up
                problems.append(f"{getattr(fn, '__name__', fn)}: {e}")
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
            for f in (p.stdin, p.stdout, p.stderr):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
        # Links of ours still in this namespace (e.g. a TAP not yet moved); never anything else.
        try:
            with ipr(None) as ip:
                for link in ip.get_links():
                    name = link.get_attr("IFLA_IFNAME") or ""
                    if name.startswith(self.prefix):
                        with contextlib.suppress(Exception):
                            ip.link("del", index=link["index"])
        except Exception as e:
            problems.append(f"links: {e}")
        from pyroute2 import netns
        existing = set(netns.listnetns())
        for ns in self.namespaces:
            if ns in existing:
                try:
                    netns.remove(ns)
                except OSError as e:
                    problems.append(f"netns {ns}: {e}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        return problems


def ipr(ns: str | None) -> Any:
    from pyroute2 import IPRoute
    return IPRoute(netns=ns, flags=0) if ns else IPRoute()


def nsexec(ns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise MeasureError(f"{' '.join(argv)} in netns {ns} exited {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()[:300]}")
    return r


def link_index(ip: Any, name: str, timeout: float = 0.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        found = ip.link_lookup(ifname=name)
        if found:
            return int(found[0])
        if time.monotonic() >= deadline:
            raise MeasureError(f"interface {name} did not appear")
        time.sleep(0.05)


def guest_addr(ns: str, ifname: str, addr: str) -> None:
    with ipr(ns) as ip:
        idx = link_index(ip, ifname, timeout=5)
        ip.addr("add", index=idx, address=addr, prefixlen=PLEN)
        ip.link("set", index=idx, state="up")


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime, stime) of the whole process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]), int(fields[12])         # fields 14 and 15 of proc(5)


def cpu_ns_schedstat(pid: int) -> int:
    """Time on CPU of all threads in ns (/proc/PID/task/*/schedstat): a fine-grained cross-check."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


# -- the switches ----------------------------------------------------------------
class Topo:
    """Client and server namespaces joined by one switch."""

    kind = ""

    def __init__(self, lab: Lab, tag: str) -> None:
        self.lab = lab
        self.tag = tag
        self.taps: list[str] = []                    # the guests' interfaces (client, server), if TAPs
        self.client_ns = lab.netns("n" + tag + "c")
        self.server_ns = lab.netns("n" + tag + "s")
        self.pid: int | None = None                  # the switch process, if any
        self.server: subprocess.Popen[Any] | None = None

    def setup(self) -> None:
        raise NotImplementedError

    def stop_on_cleanup(self, proc: subprocess.Popen[Any]) -> None:
        """SIGTERM the switch process at cleanup (it removes what it created), then kill."""
        def stop() -> None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.lab.closers.append(stop)

    def frames(self) -> int | None:
        """Frames the switch has received on all ports (its own counter), or None."""
        return None

    def extra(self) -> dict[str, Any]:
        return {}

    def guest_tx_frames(self) -> int:
        """Frames the guests sent into the switch: their interfaces' kernel tx counters."""
        total = 0
        for ifname, ns in zip(self.taps, (self.client_ns, self.server_ns), strict=True):
            with ipr(ns) as ip:
                link = ip.get_links(link_index(ip, ifname))[0]
                total += int(link.get_attr("IFLA_STATS64")["tx_packets"])
        return total

    # -- guests -----------------------------------------------------------
    def start_iperf_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            self.server.wait(timeout=5)
        self.server = self.lab.spawn(["ip", "netns", "exec", self.server_ns, "iperf3", "-s", "-p",
                                      str(IPERF_PORT), "--bind", SERVER_IP],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = subprocess.run(["ip", "netns", "exec", self.server_ns, "ss", "-Hltn", f"sport = :{IPERF_PORT}"],
                               capture_output=True, text=True, timeout=10)
            if r.stdout.strip():
                return
            if self.server.poll() is not None:
                break
            time.sleep(0.05)
        raise MeasureError(f"{self.kind}: iperf3 server did not start")

    def check_path(self) -> None:
        r = subprocess.run(["ip", "netns", "exec", self.client_ns, "ping", "-n", "-c", "3", "-i", "0.2", "-W",
                            "2", SERVER_IP], capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise MeasureError(f"{self.kind}: client cannot ping server: {r.stdout.strip()[-200:]}")


class BridgeTopo(Topo):
    kind = "bridge"

    def setup(self) -> None:
        lab = self.lab
        sw_ns = lab.netns("nbw")
        # A plain bridge: no br_netfilter calls in its namespace (they default to on once the module is loaded).
        for key in ("call-iptables", "call-ip6tables", "call-arptables"):
            with contextlib.suppress(MeasureError):
                nsexec(sw_ns, "sysctl", "-qw", f"net.bridge.bridge-nf-{key}=0")
        br = lab.name("br")
        with ipr(sw_ns) as ip:
            ip.link("add", ifname=br, kind="bridge", br_stp_state=0, br_forward_delay=0)
            bri = link_index(ip, br)
            ip.link("set", index=bri, state="up")
        for guest_ns, side in ((self.client_ns, "c"), (self.server_ns, "s")):
            inner, outer = lab.name("b" + side), lab.name("b" + side + "p")
            with ipr(None) as ip:
                ip.link("add", ifname=inner, kind="veth", peer=outer)
                ip.link("set", index=link_index(ip, inner), net_ns_fd=guest_ns)
                ip.link("set", index=link_index(ip, outer), net_ns_fd=sw_ns)
            with ipr(sw_ns) as ip:
                idx = link_index(ip, outer, timeout=5)
                ip.link("set", index=idx, master=bri)
                ip.link("set", index=idx, state="up")
            guest_addr(guest_ns, inner, CLIENT_IP if side == "c" else SERVER_IP)


class VdeTopo(Topo):
    kind = "vde"

    def setup(self) -> None:
        lab = self.lab
        self.taps = [lab.name(self.tag + "c"), lab.name(self.tag + "s")]
        self.mgmt = str(lab.workdir / f"vde-{self.tag}.mgmt")
        # In the foreground vde_switch reads commands from stdin and exits at its end: keep a pipe open.
        self.proc = lab.spawn(["vde_switch", "-t", self.taps[0], "-t", self.taps[1],
                               "-s", str(lab.workdir / f"vde-{self.tag}.ctl"), "-M", self.mgmt],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def stop() -> None:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.close()                  # EOF: it cleans up and exits
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.terminate()
        lab.closers.append(stop)
        self.pid = self.proc.pid
        with ipr(None) as ip:
            for tap, ns in zip(self.taps, (self.client_ns, self.server_ns), strict=True):
                try:
                    idx = link_index(ip, tap, timeout=5)
                except MeasureError:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None \
                        and self.proc.stderr else ""
                    raise MeasureError(f"vde_switch did not create {tap}: {err.strip()[:200]}") from None
                ip.link("set", index=idx, net_ns_fd=ns)    # the TAP keeps vde_switch's fd attached
        deadline = time.monotonic() + 5
        while not os.path.exists(self.mgmt) and time.monotonic() < deadline:
            time.sleep(0.05)
        guest_addr(self.client_ns, self.taps[0], CLIENT_IP)
        guest_addr(self.server_ns, self.taps[1], SERVER_IP)

    def mgmt_cmd(self, cmd: str) -> str:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(self.mgmt)
            buf = b""
            while not buf.rstrip().endswith(b"vde$"):           # banner, then the prompt
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            s.sendall(cmd.encode() + b"\n")
            buf = b""
            while not re.search(rb"\n1\d\d\d [^\n]*\n", buf):    # "1000 Success" ends a reply
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            with contextlib.suppress(OSError):
                s.sendall(b"logout\n")
        finally:
            s.close()
        return buf.decode(errors="replace")

    def frames(self) -> int | None:
        out = self.mgmt_cmd("port/allprint")
        counts = [int(n) for n in re.findall(r"IN:\s+pkts\s+(\d+)", out)]
        if not counts:
            raise MeasureError(f"vde_switch port/allprint has no counters: {out[:200]!r}")
        return sum(counts)


class OvsTopo(Topo):
    """Open vSwitch's user-space datapath, run by hand on a scratch database.

    The daemons get their own run, database and log directory in the lab's
    workdir (``OVS_RUNDIR`` and friends): nothing of a system OVS is read or
    touched.  ``ovs-vswitchd`` is the measured process (all its threads).
    Frames are counted from the guests' TAPs, as for the relay: once a TAP has
    moved to a guest namespace OVS can no longer read its kernel statistics.
    """

    kind = "ovs"

    def setup(self) -> None:
        lab = self.lab
        self.taps = [lab.name(self.tag + "c"), lab.name(self.tag + "s")]
        self.dir = lab.workdir / f"ovs-{self.tag}"
        self.dir.mkdir()
        self.env = {**os.environ, **{f"OVS_{d}DIR": str(self.dir) for d in ("RUN", "DB", "LOG", "SYSCONF")}}
        self.db = f"unix:{self.dir / 'db.sock'}"
        self.run("ovsdb-tool", "create", str(self.dir / "conf.db"), str(OVS_SCHEMA))
        logs = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": self.env, "cwd": self.dir}
        self.stop_on_cleanup(lab.spawn(["ovsdb-server", str(self.dir / "conf.db"), f"--remote=p{self.db}",
                                        f"--unixctl={self.dir / 'ovsdb.ctl'}", "--no-chdir",
                                        f"--log-file={self.dir / 'ovsdb.log'}"], **logs))
        self.wait_for(self.dir / "db.sock", "ovsdb-server")
        self.vsctl("--no-wait", "init")
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:userspace-tso-enable=true")
        self.proc = lab.spawn(["ovs-vswitchd", self.db, f"--unixctl={self.dir / 'vswitchd.ctl'}", "--no-chdir",
                               f"--log-file={self.dir / 'vswitchd.log'}"], **logs)
        self.pid = self.proc.pid
        br = lab.name(self.tag + "br")
        self.bridge = br
        self.lab.closers.append(self.stop)
        self.vsctl("add-br", br, "--", "set", "Bridge", br, "datapath_type=netdev")
        for tap in self.taps:
            self.vsctl("add-port", br, tap, "--", "set", "Interface", tap, "type=tap")
        with ipr(None) as ip:
            for tap, ns in zip(self.taps, (self.client_ns, self.server_ns), strict=True):
                ip.link("set", index=link_index(ip, tap, timeout=5), net_ns_fd=ns)   # OVS keeps its fd
        guest_addr(self.client_ns, self.taps[0], CLIENT_IP)
        guest_addr(self.server_ns, self.taps[1], SERVER_IP)

    def run(self, *argv: str) -> str:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=self.env)
        if r.returncode:
            raise MeasureError(f"{' '.join(argv)} exited {r.returncode}: {(r.stderr or r.stdout).strip()[:300]}")
        return r.stdout

    def vsctl(self, *args: str) -> str:
        return self.run("ovs-vsctl", f"--db={self.db}", "--timeout=20", *args)

    def wait_for(self, path: Path, what: str) -> None:
        deadline = time.monotonic() + 10
        while not path.exists():
            if time.monotonic() > deadline:
                raise MeasureError(f"{what} did not create {path}: {self.log_tail(what)}")
            time.sleep(0.05)

    def log_tail(self, what: str) -> str:
        log = self.dir / ("ovsdb.log" if what == "ovsdb-server" else "vswitchd.log")
        with contextlib.suppress(OSError):
            return log.read_text()[-300:].strip()
        return ""

    def stop(self) -> None:
        """Delete the bridge (its internal port is a persistent TAP), then stop ovs-vswitchd."""
        if self.proc.poll() is None:
            with contextlib.suppress(MeasureError, subprocess.TimeoutExpired):
                self.vsctl("--if-exists", "del-br", self.bridge)
            with contextlib.suppress(MeasureError, subprocess.TimeoutExpired):
                self.run("ovs-appctl", f"--target={self.dir / 'vswitchd.ctl'}", "exit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def frames(self) -> int | None:
        return self.guest_tx_frames()


class VswitchdTopo(Topo):
    kind = "vswitchd"
    extra_args: tuple[str, ...] = ()          # --vswitchd-args: a configuration to compare
    env: dict[str, str] = {}

    def setup(self) -> None:
        from vswitch.control.client import Client
        from vswitch.control.protocol import ControlError
        lab = self.lab
        self.taps = [lab.name(self.tag + "c"), lab.name(self.tag + "s")]
        config = lab.workdir / f"vswitchd-{self.tag}.toml"
        lines = ["[bridge]", f'name = "{lab.name(self.tag + "sw")}"', ""]
        for tap, ns in zip(self.taps, (self.client_ns, self.server_ns), strict=True):
            lines += ["[[port]]", f'name = "{tap}"', 'type = "tap"', f'netns = "{ns}"', ""]
        config.write_text("\n".join(lines))
        sock = str(lab.workdir / f"vswitchd-{self.tag}.sock")
        self.log = lab.workdir / f"vswitchd-{self.tag}.log"
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = lab.spawn([sys.executable, "-m", "vswitch.daemon", "--config", str(config), "--socket", sock,
                               "--log-level", "warning", *self.extra_args], stdout=logf, stderr=logf, cwd=ROOT,
                              env={**os.environ, **self.env})
        logf.close()
        self.stop_on_cleanup(self.proc)               # SIGTERM: it removes its TAPs and its socket
        self.pid = self.proc.pid
        self.client = Client(sock, timeout=10)
        deadline = time.monotonic() + 30
        ports: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise MeasureError(f"vswitchd exited {self.proc.returncode}: {self.log_tail()}")
            if os.path.exists(sock):
                try:
                    ports = self.client.call("show")["ports"]
                except ControlError:
                    ports = []
                if len(ports) == 2 and all(p["state"] == "up" for p in ports):
                    break
            time.sleep(0.05)
        else:
            raise MeasureError(f"vswitchd ports not up: {ports} {self.log_tail()}")
        guest_addr(self.client_ns, self.taps[0], CLIENT_IP)
        guest_addr(self.server_ns, self.taps[1], SERVER_IP)

    def log_tail(self) -> str:
        try:
            return self.log.read_text()[-400:].strip()
        except OSError:
            return ""

    def frames(self) -> int | None:
        ports = self.client.call("counters")["ports"]
        return sum(int(p["rx_packets"]) for p in ports.values())

    def extra(self) -> dict[str, Any]:
        return {"perf_show": self.client.call("perf-show"), "counters": self.client.call("counters")}


class RelayTopo(Topo):
    kind = "relay"

    def setup(self) -> None:
        lab = self.lab
        self.taps = [lab.name(self.tag + "c"), lab.name(self.tag + "s")]
        self.proc = lab.spawn([sys.executable, "-m", "bench.relay", f"{self.taps[0]}={self.client_ns}",
                               f"{self.taps[1]}={self.server_ns}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.stop_on_cleanup(self.proc)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise MeasureError(f"relay did not start: {line} {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.pid = self.proc.pid
        guest_addr(self.client_ns, self.taps[0], CLIENT_IP)
        guest_addr(self.server_ns, self.taps[1], SERVER_IP)

    def frames(self) -> int | None:
        return self.guest_tx_frames()


class VswitchdPureTopo(VswitchdTopo):
    """vswitchd with every compiled module run from source (``VSWITCH_PURE=1``): the
    compiled dataplane's gain, measured in the same run."""

    kind = "vswitchd-pure"
    env = {"VSWITCH_PURE": "1"}


TOPOS: dict[str, type[Topo]] = {"bridge": BridgeTopo, "vde": VdeTopo, "ovs": OvsTopo, "relay": RelayTopo,
                                "vswitchd": VswitchdTopo, "vswitchd-pure": VswitchdPureTopo}
TAGS = {"bridge": "b", "vde": "v", "ovs": "o", "relay": "r", "vswitchd": "d", "vswitchd-pure": "p"}


# -- measurements ----------------------------------------------------------------
def iperf(topo: Topo, args: list[str], duration: float) -> dict[str, Any]:
    argv = ["ip", "netns", "exec", topo.client_ns, "iperf3", "-c", SERVER_IP, "-p", str(IPERF_PORT),
            "-t", f"{duration:g}", "-J", *args]
    last = ""
    for attempt in range(2):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
        try:
            data = json.loads(r.stdout)
        except json.JSONDecodeError:
            data = {"error": (r.stderr or r.stdout).strip()[:300] or f"exit {r.returncode}"}
        if "error" not in data and r.returncode == 0:
            return data
        last = str(data.get("error"))
        if attempt == 0:                 # a wedged server ("busy"): start a fresh one and retry once
            topo.start_iperf_server()
    raise MeasureError(f"{topo.kind}: iperf3 {' '.join(args)}: {last}")


def measure_tcp(topo: Topo, duration: float, streams: int) -> float:
    data = iperf(topo, ["-P", str(streams)] if streams > 1 else [], duration)
    return data["end"]["sum_received"]["bits_per_second"] / 1e9


def udp_received(data: dict[str, Any]) -> tuple[float, int, float]:
    """(received datagrams/s, received datagrams, seconds) from a UDP client's JSON."""
    end = data["end"]
    s = end.get("sum_received") or end["sum"]
    sent = end.get("sum_sent") or end["sum"]
    packets = int(s.get("packets", sent.get("packets", 0)))
    lost = int(s.get("lost_packets", 0))
    seconds = float(s.get("seconds") or sent["seconds"])
    received = packets - lost
    return received / seconds, received, seconds


def measure_udp(topo: Topo, duration: float) -> float:
    data = iperf(topo, ["-u", "-l", str(UDP_LEN), "-b", "0"], duration)
    return udp_received(data)[0]


def measure_ping(topo: Topo) -> tuple[float, float]:
    r = subprocess.run(["ip", "netns", "exec", topo.client_ns, "ping", "-n", "-c", str(PINGS), "-i",
                        f"{PING_INTERVAL:g}", "-W", "1", SERVER_IP], capture_output=True, text=True,
                       timeout=PINGS * PING_INTERVAL + 60)
    rtts = [float(x) * 1000 for x in re.findall(r"time=([\d.]+) ms", r.stdout)]
    if len(rtts) < PINGS * 0.9:
        raise MeasureError(f"{topo.kind}: only {len(rtts)} of {PINGS} pings answered")
    return statistics.fmean(rtts), percentile(rtts, 99)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def measure_cpu(topo: Topo, duration: float) -> dict[str, float]:
    """Switch CPU per frame at a fixed 50 kpps of 64 B UDP, over a steady-state window."""
    assert topo.pid is not None
    rate = CPU_PPS * UDP_LEN * 8                    # iperf3 -b counts UDP payload bits
    argv = ["ip", "netns", "exec", topo.client_ns, "iperf3", "-c", SERVER_IP, "-p", str(IPERF_PORT),
            "-t", f"{duration:g}", "-J", "-u", "-l", str(UDP_LEN), "-b", str(rate)]
    edge = min(1.0, duration * 0.2)
    p = topo.lab.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(edge)
        f0, c0, s0, t0 = topo.frames(), cpu_ticks(topo.pid), cpu_ns_schedstat(topo.pid), time.monotonic()
        time.sleep(duration - 2 * edge)
        f1, c1, s1, t1 = topo.frames(), cpu_ticks(topo.pid), cpu_ns_schedstat(topo.pid), time.monotonic()
        out, err = p.communicate(timeout=duration + 60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        data = {"error": (err or out).strip()[:300]}
    if "error" in data or p.returncode:
        raise MeasureError(f"{topo.kind}: iperf3 at {CPU_PPS} pps: {data.get('error')}")
    assert f0 is not None and f1 is not None
    frames = f1 - f0
    if frames <= 0:
        raise MeasureError(f"{topo.kind}: the switch counted no frames at {CPU_PPS} pps")
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    user, sys_ = (c1[0] - c0[0]) * tick_us / frames, (c1[1] - c0[1]) * tick_us / frames
    return {"cpu_us_per_frame": user + sys_, "cpu_user_us_per_frame": user, "cpu_sys_us_per_frame": sys_,
            "cpu_us_per_frame_schedstat": (s1 - s0) / frames / 1e3,
            "cpu_window_pps": frames / (t1 - t0),
            "cpu_iperf_rx_pps": udp_received(data)[0]}


# -- the run ------------------------------------------------------------------------
def machine_facts() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(argv: list[str]) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        return ((r.stdout or r.stderr).strip().splitlines() or ["?"])[0]
    from vswitch import compiled
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "dataplane": compiled.status(),
            "python": platform.python_version(), "iperf3": version(["iperf3", "--version"]),
            "vde_switch": version(["vde_switch", "-v"]) if shutil.which("vde_switch") else None,
            "ovs_vswitchd": version(["ovs-vswitchd", "--version"]) if shutil.which("ovs-vswitchd") else None,
            "loadavg_at_start": os.getloadavg()}


MEASURES = ("tcp1", "tcp4", "udp", "ping", "cpu")
TARGET_PEERS = ("ovs", "vde", "relay")     # shown beside vswitchd in the targets table
STEP_MEASURE = {"tcp1_gbps": "tcp1", "tcp4_gbps": "tcp4", "udp64_rx_pps": "udp", "ping": "ping", "cpu": "cpu"}


def run_benchmark(switches: list[str], reps: int, duration: float,
                  log: Callable[[str], None] = lambda s: None,
                  measures: tuple[str, ...] = MEASURES) -> dict[str, Any]:
    """Build every topology, measure, tear everything down; returns the results dict."""
    lab = Lab()
    samples: dict[str, dict[str, list[float]]] = {s: {} for s in switches}
    errors: list[str] = []
    extras: dict[str, Any] = {}
    problems: list[str] = []
    try:
        topos: dict[str, Topo] = {}
        for s in switches:
            log(f"setting up {LABELS[s]}")
            t = TOPOS[s](lab, TAGS[s])
            topos[s] = t
            t.setup()
            t.check_path()
            t.start_iperf_server()

        def record(s: str, key: str, fn: Callable[[], Any]) -> None:
            try:
                val = fn()
            except (MeasureError, subprocess.TimeoutExpired, KeyError, ValueError, OSError) as e:
                errors.append(f"{s} {key}: {e}")
                log(f"  {LABELS[s]} {key}: FAILED: {e}")
                return
            items = val.items() if isinstance(val, dict) else [(key, val)]
            for k, v in items:
                samples[s].setdefault(k, []).append(v)
            log(f"  {LABELS[s]:<12} " + ", ".join(f"{k} {v:,.3f}" for k, v in items))

        steps: list[tuple[str, Callable[[Topo], Any], bool]] = [
            ("tcp1_gbps", lambda t: measure_tcp(t, duration, 1), True),
            ("tcp4_gbps", lambda t: measure_tcp(t, duration, 4), True),
            ("udp64_rx_pps", lambda t: measure_udp(t, duration), True),
            ("ping", lambda t: dict(zip(("ping_avg_us", "ping_p99_us"), measure_ping(t), strict=True)), True),
            ("cpu", lambda t: measure_cpu(t, duration), False),
        ]
        steps = [st for st in steps if STEP_MEASURE[st[0]] in measures]
        for rep in range(reps):
            for key, fn, for_bridge in steps:
                log(f"rep {rep + 1}/{reps} {key}")
                for s in switches:
                    if s == "bridge" and not for_bridge:
                        continue
                    record(s, key, functools.partial(fn, topos[s]))
        for s, t in topos.items():
            with contextlib.suppress(Exception):
                if t.extra():
                    extras[s] = t.extra()
    finally:
        with signals_ignored():                  # a second Ctrl-C must not cut the cleanup short
            problems = lab.cleanup()
    res = summarize(switches, reps, duration, samples, errors, extras, problems)
    res["prefix"] = lab.prefix
    return res


def summarize(switches: list[str], reps: int, duration: float, samples: dict[str, dict[str, list[float]]],
              errors: list[str], extras: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    res: dict[str, Any] = {"settings": {"reps": reps, "duration_s": duration, "switches": switches,
                                        "cpu_pps": CPU_PPS, "udp_payload_bytes": UDP_LEN, "pings": PINGS,
                                        "ping_interval_s": PING_INTERVAL},
                           "switches": {}, "errors": errors, "cleanup_problems": problems}
    for s in switches:
        med = {k: statistics.median(v) for k, v in samples[s].items() if v}
        res["switches"][s] = {"label": LABELS[s], **{m: med.get(m) for m in METRICS},
                              **{k: med.get(k) for k in ("cpu_user_us_per_frame", "cpu_sys_us_per_frame",
                                                         "cpu_us_per_frame_schedstat")},
                              "cpu_window_pps": med.get("cpu_window_pps"),
                              "samples": samples[s]}
    sw = res["switches"]

    def ratio(a: str, b: str, m: str) -> float | None:
        x, y = sw.get(a, {}).get(m), sw.get(b, {}).get(m)
        return x / y if x is not None and y else None

    for s in switches:
        sw[s]["ratio_to_bridge"] = {m: ratio(s, "bridge", m) for m in METRICS if m != "cpu_us_per_frame"}
    res["cpu_ratio_vswitchd_to_vde"] = ratio("vswitchd", "vde", "cpu_us_per_frame")
    res["ratio_vswitchd_to_relay"] = {m: ratio("vswitchd", "relay", m) for m in METRICS}
    res["ratio_vswitchd_to_pure"] = {m: ratio("vswitchd", "vswitchd-pure", m) for m in METRICS}
    res["ratio_vswitchd_to_ovs"] = {m: ratio("vswitchd", "ovs", m) for m in METRICS}
    targets = [
        ("TCP 1 stream vs Linux bridge", "tcp1_gbps", "bridge", ">=", 0.9),
        ("TCP 4 streams vs Linux bridge", "tcp4_gbps", "bridge", ">=", 0.5),
        ("CPU per frame at 50 kpps vs vde_switch", "cpu_us_per_frame", "vde", "<=", 1.15),
        ("UDP 64 B received pps vs vde_switch", "udp64_rx_pps", "vde", ">=", 1.0),
        ("ping average vs Linux bridge", "ping_avg_us", "bridge", "<=", 1.5),
    ]
    res["targets"] = []
    for name, m, ref, op, want in targets:
        r = ratio("vswitchd", ref, m)
        met = None if r is None else (r >= want if op == ">=" else r <= want)
        # The same yardstick held to the other user-space switches of the run: is the
        # target within reach of any switch of this design on this machine?
        others = {s: ratio(s, ref, m) for s in TARGET_PEERS if s in switches and s != ref}
        res["targets"].append({"target": name, "metric": m, "reference": ref, "op": op, "want": want,
                               "ratio": r, "met": met, "peers": others})
    if extras:
        res["vswitchd_after"] = extras.get("vswitchd")
        if "vswitchd-pure" in extras:
            res["vswitchd_pure_after"] = extras["vswitchd-pure"]
    return res


# -- output ---------------------------------------------------------------------------
def _fmt(v: float | None, m: str) -> str:
    if v is None:
        return "n/a"
    if m.endswith("_gbps"):
        return f"{v:.2f}"
    if m == "udp64_rx_pps":
        return f"{v / 1e3:,.0f} k"
    if m == "cpu_us_per_frame":
        return f"{v:.2f}"
    return f"{v:,.0f}"


def render(res: dict[str, Any], console: Any) -> None:
    from rich.table import Table
    heads = {"tcp1_gbps": "TCP 1 stream\nGbit/s", "tcp4_gbps": "TCP 4 streams\nGbit/s",
             "udp64_rx_pps": "UDP 64 B\nrx pps", "ping_avg_us": "ping avg\nus", "ping_p99_us": "ping p99\nus",
             "cpu_us_per_frame": "CPU/frame\n@50 kpps, us"}
    st = res["settings"]
    t = Table(title=f"Peers: medians of {st['reps']} interleaved reps, {st['duration_s']:g} s each; "
              "(x) = ratio to the Linux bridge")
    t.add_column("switch")
    for m in METRICS:
        t.add_column(heads[m], justify="right")
    for s, r in res["switches"].items():
        cells = []
        for m in METRICS:
            cell = _fmt(r.get(m), m)
            rb = r["ratio_to_bridge"].get(m)
            if rb is not None and s != "bridge":
                cell += f" ({rb:.2f}x)"
            cells.append(cell)
        t.add_row(r["label"], *cells)
    console.print(t)
    tt = Table(title="Targets (vswitchd; the same ratio for the other user-space switches of the run)")
    peer_cols = [s for s in TARGET_PEERS if s in res["switches"]]
    for c in ("target", "wanted", "vswitchd", "", *(LABELS[s] for s in peer_cols)):
        tt.add_column(c)
    for g in res["targets"]:
        r = g["ratio"]
        status = "n/a" if g["met"] is None else ("met" if g["met"] else "MISSED")
        peer_cells = [("" if s == g["reference"] else "n/a" if g["peers"].get(s) is None else f"{g['peers'][s]:.2f}x")
                      for s in peer_cols]
        tt.add_row(g["target"], f"{g['op']} {g['want']:g}x", "n/a" if r is None else f"{r:.2f}x", status,
                   *peer_cells)
    console.print(tt)
    if res.get("cpu_ratio_vswitchd_to_vde") is not None:
        console.print(f"CPU per frame vswitchd / vde_switch: {res['cpu_ratio_vswitchd_to_vde']:.2f}x")
    for key, label in (("ratio_vswitchd_to_ovs", "OVS userspace+TSO"),
                       ("ratio_vswitchd_to_relay", "bare Python relay"),
                       ("ratio_vswitchd_to_pure", "vswitchd interpreted")):
        rel = {m: r for m, r in (res.get(key) or {}).items() if r is not None}
        if rel:
            console.print(f"vswitchd / {label}: " + ", ".join(f"{m} {r:.2f}x" for m, r in rel.items()))
    for e in res["errors"]:
        console.print(f"error: {e}", markup=False, highlight=False)
    for p in res["cleanup_problems"]:
        console.print(f"cleanup: {p}", markup=False, highlight=False)




def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench peers",
                                 description="vswitchd against the Linux bridge and vde_switch: two namespaces "
                                 "through each switch; iperf3 TCP/UDP, ping, switch CPU per frame (root)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions, interleaved across switches (default 3)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per iperf3 run (default 5)")
    ap.add_argument("--only", default=",".join(DEFAULT_SWITCHES),
                    help=f"comma-separated switches to run, of {','.join(SWITCHES)} "
                    f"(default {','.join(DEFAULT_SWITCHES)}; vswitchd-pure is vswitchd with VSWITCH_PURE=1; "
                    "ovs is Open vSwitch userspace with TSO, from openvswitch-switch)")
    ap.add_argument("--measure", default=",".join(MEASURES),
                    help=f"comma-separated measurements to take (default {','.join(MEASURES)})")
    ap.add_argument("--vswitchd-args", default="", metavar="ARGS",
                    help="extra vswitchd options, e.g. '--busy-poll-us 10000' (one string; default none)")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = ap.parse_args(argv)
    VswitchdTopo.extra_args = tuple(shlex.split(args.vswitchd_args))
    measures = tuple(m.strip() for m in args.measure.split(",") if m.strip())
    switches = [s.strip() for s in args.only.split(",") if s.strip()]
    prog = "vswitch-bench peers"
    bad = [s for s in switches if s not in SWITCHES]
    if bad or not switches:
        print(f"{prog}: --only {args.only!r}: choose from {', '.join(SWITCHES)}", file=sys.stderr)
        return 2
    switches = [s for s in SWITCHES if s in switches]     # fixed order: bridge, vde, relay, vswitchd, ...
    if not measures or any(m not in MEASURES for m in measures):
        print(f"{prog}: --measure {args.measure!r}: choose from {', '.join(MEASURES)}", file=sys.stderr)
        return 2
    if args.reps < 1 or args.duration < 1:
        print(f"{prog}: --reps must be >= 1 and --duration >= 1 s", file=sys.stderr)
        return 2
    try:
        check_environment(switches)
    except Unavailable as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    from rich.console import Console
    console = Console()
    if not console.is_terminal:
        console = Console(width=130)              # a file or a pipe: do not squeeze the table to 80
    err = Console(stderr=True)
    facts = machine_facts()
    err.print(f"{facts['cpus']} CPUs ({facts['cpu_model']}), kernel {facts['kernel']}, "
              f"load {facts['loadavg_at_start'][0]:.2f}; vswitchd and the relay run {facts['dataplane']}",
              markup=False, highlight=False)
    try:
        with sigterm_as_interrupt():
            res = run_benchmark(switches, args.reps, args.duration,
                                log=lambda s: err.print(s, markup=False, highlight=False),
                                measures=measures)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; everything it created was removed", file=sys.stderr)
        return 130
    except MeasureError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    facts["loadavg_at_end"] = os.getloadavg()
    res["machine"] = facts
    res["command"] = shlex.join(["vswitch-bench", "peers", *(sys.argv[1:] if argv is None else argv)])
    render(res, console)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
