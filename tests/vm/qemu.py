"""One QEMU guest (tests/vm/guest.py) on a tap, driven through its serial console.

``Vm(guest, tap=..., mac=..., ip=..., log=...)`` runs ``qemu-system-x86_64``
under TCG with ``-netdev tap,ifname=TAP,script=no,downscript=no,vnet_hdr=on``
and a virtio-net-pci NIC, exactly as the README's example; QEMU creates the
tap (down) when it starts.  With ``qmp=PATH`` QEMU also listens for QMP there
(``-qmp unix:PATH,server=on,wait=off``), as an SR-IOV mode port's ``qmp`` wants.
The serial console is QEMU's stdio: a thread copies what the guest prints
into a buffer (and the log file), `sh` sends a command line and waits for the
marker that follows it, with the exit status.
`kill` sends SIGKILL to the PID this object started, nothing else.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.vm.guest import Guest

QEMU = "qemu-system-x86_64"
# QEMU's 16550A raises the receive interrupt at the FIFO's trigger level (8 bytes); its
# character-timeout interrupt did not come under TCG here, so a line's last bytes waited in
# the FIFO for more input.  Sixteen newlines after each command (empty commands to the
# guest's shell) push it through.
PUSH = b"\n" * 16


class VmError(AssertionError):
    pass


class Vm:
    def __init__(self, guest: Guest, *, tap: str, mac: str, ip: str, log: Path, memory_mb: int = 256,
                 qmp: Path | None = None) -> None:
        self.guest, self.tap, self.mac, self.ip, self.log = guest, tap, mac, ip, log
        self.memory_mb = memory_mb
        self.qmp = qmp                  # QEMU's QMP socket (-qmp unix:...), for vswitchd to follow
        self.proc: subprocess.Popen[bytes] | None = None
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._seq = 0
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self) -> list[str]:
        return [QEMU, "-name", self.tap, "-accel", "tcg", "-m", str(self.memory_mb), "-nodefaults",
                "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
                *self.guest.qemu_args(cmdline=f"vsw.ip={self.ip}"),
                "-netdev", f"tap,id=n0,ifname={self.tap},script=no,downscript=no,vnet_hdr=on",
                "-device", f"virtio-net-pci,netdev=n0,mac={self.mac}",
                *(["-qmp", f"unix:{self.qmp},server=on,wait=off"] if self.qmp else [])]

    def start(self) -> Vm:
        self._buf.clear()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with open(self.log, "ab") as log:
            log.write(f"--- {' '.join(self.argv())}\n".encode())
            while True:
                data = proc.stdout.read1(65536)
                if not data:
                    break
                log.write(data)
                log.flush()
                with self._cond:
                    self._buf += data
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return self._buf.decode(errors="replace").replace("\r", "")

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> re.Match[bytes]:
        """Wait until the console output (from byte ``start``) matches ``pattern``."""
        rx = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self._buf, start)
                if m is not None:
                    return m
                if self.proc is not None and self.proc.poll() is not None and not (
                        self._reader and self._reader.is_alive()):
                    raise VmError(f"{self.tap}: QEMU exited {self.proc.returncode} waiting for {pattern!r}:\n"
                                  f"{self.output()[-3000:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise VmError(f"{self.tap}: no {pattern!r} within {timeout:.0f} s:\n{self.output()[-3000:]}")
                self._cond.wait(min(left, 0.5))

    def wait_ready(self, timeout: float = 120) -> None:
        """Until the guest's init has configured eth0 and its shell takes commands."""
        self.wait_for(r"vswitch-guest: ready", timeout)
        self.sh("true", timeout=30)

    def sh(self, command: str, timeout: float = 60) -> tuple[int, str]:
        """Run ``command`` in the guest's shell: its exit status and what it printed."""
        assert self.proc is not None and self.proc.stdin is not None
        self._seq += 1
        marker = f"@@vsw-{self._seq}-"
        with self._cond:
            start = len(self._buf)
        try:
            self.proc.stdin.write(f"{command}\necho {marker}$?@@\n".encode() + PUSH)
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise VmError(f"{self.tap}: QEMU is gone:\n{self.output()[-3000:]}") from None
        m = self.wait_for(rf"{re.escape(marker)}(\d+)@@", timeout, start)
        with self._cond:
            text = self._buf[start:m.start()].decode(errors="replace")
        return int(m.group(1).decode()), text.replace("\r", "").strip("\n")

    def check(self, command: str, timeout: float = 60) -> str:
        """`sh`, raising with the output unless the command succeeded."""
        rc, out = self.sh(command, timeout)
        if rc:
            raise VmError(f"{self.tap}: `{command}` exited {rc}:\n{out}")
        return out

    def kill(self) -> None:
        """SIGKILL the QEMU this object started (as a VM crash), and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self._reader is not None:
            self._reader.join(timeout=10)
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
