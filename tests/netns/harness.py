"""Run a real vswitchd (a subprocess) with guests in real namespaces, for the netns tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vswitch.control.client import Client
from vswitch.control.protocol import ControlError

ROOT = Path(__file__).resolve().parents[2]


class Daemon:
    """A vswitchd process with its own config file and control socket under ``workdir``."""

    def __init__(self, lab: Any, workdir: Path, config_text: str | None = None, extra: list[str] | None = None):
        self.lab = lab
        self.workdir = workdir
        self.config = workdir / "vswitchd.toml"
        self.socket = str(workdir / "ctl.sock")
        self.log = workdir / "vswitchd.log"
        self.extra = extra or []
        if config_text is not None:
            self.config.write_text(config_text)
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = Client(self.socket, timeout=20)
        lab.on_cleanup(self.stop)

    def start(self, timeout: float = 20) -> Daemon:
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([sys.executable, "-m", "vswitch.daemon", "--config", str(self.config),
                                      "--socket", self.socket, *self.extra], stdout=logf, stderr=logf, cwd=ROOT)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"vswitchd exited {self.proc.returncode}:\n{self.log.read_text()}")
            if os.path.exists(self.socket):
                try:
                    self.client.call("show")
                    return self
                except ControlError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"vswitchd did not come up:\n{self.log.read_text()}")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"vswitchd ignored SIGTERM:\n{self.log.read_text()}") from None

    def call(self, cmd: str, **args: Any) -> Any:
        return self.client.call(cmd, **args)

    def ctl(self, *argv: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
        """Run the real vswitchctl command line (optionally as another uid)."""
        return subprocess.run([sys.executable, "-m", "vswitch.cli", "--socket", self.socket, *argv],
                              capture_output=True, text=True, timeout=30, cwd=ROOT, user=user)

    def ctl_json(self, *argv: str) -> Any:
        r = self.ctl(*argv, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def port(self, name: str) -> dict[str, Any]:
        for p in self.call("show")["ports"]:
            if p["name"] == name:
                return p
        raise KeyError(name)

    def wait_state(self, name: str, state: str, timeout: float = 10, error: str | None = None) -> dict[str, Any]:
        """Wait until port ``name`` is in ``state`` (and, if given, its reason contains ``error``)."""
        deadline = time.monotonic() + timeout
        p = self.port(name)
        while time.monotonic() < deadline:
            p = self.port(name)
            if p["state"] == state and (error is None or error in (p.get("error") or "")):
                return p
            time.sleep(0.05)
        want = f"{state} ({error})" if error else state
        raise AssertionError(f"port {name} stayed {p['state']} ({p.get('error')}), wanted {want}\n"
                             f"{self.log.read_text()}")


def mac_of(lab: Any, ns: str, ifname: str) -> str:
    out = lab.run(ns, "ip", "-j", "link", "show", ifname).stdout
    return json.loads(out)[0]["address"]


def ping_ok(lab: Any, ns: str, addr: str, count: int = 3) -> bool:
    p = lab.ping(ns, addr, count)
    p.wait(timeout=30)
    return p.returncode == 0


def guest(lab: Any, ns: str, ifname: str, cidr: str) -> None:
    lab.run(ns, "ip", "addr", "add", cidr, "dev", ifname)
    lab.run(ns, "ip", "link", "set", ifname, "up")
