"""The live demo: vswitchd with three namespace guests pinging each other.

Creates three network namespaces (``vsdemo<hex>1..3``), starts vswitchd with
one TAP port per guest (each TAP moved into its guest's namespace), gives the
guests 10.0.0.1-3/24, has every guest ping the others, shows what vswitchctl
shows (ports, MAC table, counters), then stops the daemon and removes
everything it created, even on failure or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyroute2 import netns as pyroute2_netns
from rich.console import Console

from vswitch.control.client import Client
from vswitch.control.protocol import ControlError
from vswitch.io import netlink


def live_possible() -> str | None:
    """None if the live demo can run here, else why not."""
    if os.geteuid() != 0:
        return "not running as root (TAP devices and namespaces need CAP_NET_ADMIN)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is missing (needed to run ping inside the namespaces)"
    return None


def _ping(ns: str, addr: str, count: int = 3) -> tuple[bool, str]:
    if shutil.which("ping"):
        cmd = ["ping", "-c", str(count), "-i", "0.2", "-W", "2", addr]
    else:
        cmd = [sys.executable, str(Path(__file__).with_name("pinger.py")), addr, str(count)]
    r = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=60)
    lines = [ln for ln in r.stdout.splitlines() if "received" in ln or "rtt" in ln]
    return r.returncode == 0, "; ".join(lines)


def run_live_demo(console: Console) -> int:
    from vswitch.cli import main as vswitchctl

    prefix = "vsdemo" + secrets.token_hex(2)
    work = Path(tempfile.mkdtemp(prefix="vswitch-demo-"))
    sock = str(work / "ctl.sock")
    namespaces: list[str] = []
    proc: subprocess.Popen[bytes] | None = None
    try:
        lines = ['[bridge]', 'name = "br0"', ""]
        for i in (1, 2, 3):
            ns = f"{prefix}g{i}"
            pyroute2_netns.create(ns)
            namespaces.append(ns)
            lines += ["[[port]]", f'name = "{prefix}t{i}"', f'netns = "{ns}"', ""]
        (work / "vswitchd.toml").write_text("\n".join(lines))
        log = open(work / "vswitchd.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "vswitch.daemon", "--config", str(work / "vswitchd.toml"),
                                 "--socket", sock], stdout=log, stderr=log)
        client = Client(sock)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.call("show")
                break
            except ControlError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"vswitchd did not start:\n{(work / 'vswitchd.log').read_text()}") from None
                time.sleep(0.05)
        for i, ns in enumerate(namespaces, 1):
            netlink.configure(f"{prefix}t{i}", netns=ns, addresses=[f"10.0.0.{i}/24"])
            netlink.set_up("lo", netns=ns)
        console.print(f"vswitch live demo: vswitchd (pid {proc.pid}) with 3 guests in namespaces "
                      f"{', '.join(namespaces)}, on TAP ports {prefix}t1-3, addresses 10.0.0.1-3/24\n")
        ok_all = True
        for a in (1, 2, 3):
            for b in (1, 2, 3):
                if a != b:
                    ok, summary = _ping(namespaces[a - 1], f"10.0.0.{b}")
                    ok_all &= ok
                    console.print(f"guest {a} -> 10.0.0.{b}: {'ok' if ok else 'FAILED'}  ({summary})")
        console.print()
        for argv in (["show"], ["fdb", "show"], ["counters"]):
            console.print(f"$ vswitchctl {' '.join(argv)}")
            vswitchctl(["--socket", sock, *argv])
        early = [name for name, c in client.call("counters")["ports"].items() if c["tx_dropped"]]
        if early:
            # Not a fault: the guests come up one after another, and the first one's
            # IPv6 multicast is flooded to TAPs whose interfaces are still down.
            console.print(f"tx_dropped on {', '.join(early)}: frames flooded there before that guest's "
                          "interface was up (a TAP refuses writes while its interface is down)")
        return 0 if ok_all else 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            if proc.poll() is None:
                proc.kill()
        for ns in namespaces:
            with contextlib.suppress(OSError):
                pyroute2_netns.remove(ns)
        shutil.rmtree(work, ignore_errors=True)
