"""A tiny QEMU guest for the VM tests, built from Debian packages and cached between runs.

The kernel is Debian's (`linux-image-amd64`, through the versioned package it
depends on), fetched with ``apt-get download`` and read straight out of the
.deb: only ``/boot/vmlinuz-*``, its config and the modules the virtio NIC
needs are taken; nothing is installed.  Under TCG, decompressing the 8 MB
bzImage took QEMU's guest 17 s of a 26 s boot, so the ELF kernel inside it is
unpacked here once (xz, as Debian builds it) and booted through its PVH entry
(``CONFIG_PVH``): about 7 s to a shell (the bzImage is the fallback).  Debian's kernel builds virtio, virtio_pci and
virtio_net as modules (uncompressed ``.ko`` in bookworm's 6.1; ``.ko.xz`` is
decompressed here), so the initramfs carries them and its ``/init`` loads them
in dependency order (read from each module's ``.modinfo``).  Userland is
one static busybox: the installed ``/bin/busybox`` when it is static
(Debian's busybox-static), else busybox-static's, downloaded the same way.

The guest's ``/init`` reads ``vsw.ip=ADDR/PLEN`` from the kernel command
line, puts it on eth0 and brings eth0 up (the guest's own side, as any OS
does), prints ``vswitch-guest: ready`` and runs a shell on the serial console
(ttyS0) with echo off and no prompt: `tests.vm.qemu.Vm` drives it.

The build lands in ``$VSWITCH_GUEST_CACHE``, else ``$XDG_CACHE_HOME/vswitch/guest``
(``~/.cache/vswitch/guest``), in one directory per kernel package version,
busybox and init script; a second run finds it (about 20 s to build, after
a 70 MB download).  Never in the repository.

``python -m tests.vm.guest`` builds or finds it and prints the files and a
QEMU command line for trying it by hand.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import lzma
import os
import re
import shlex
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

KERNEL_META = "linux-image-amd64"
BUSYBOX_PKG = "busybox-static"
# What virtio-net-pci needs, with their config symbols (a kernel that builds one in needs no
# module); their dependencies (virtio, virtio_ring, failover, ...) follow.
MODULES = {"virtio_pci": "CONFIG_VIRTIO_PCI", "virtio_net": "CONFIG_VIRTIO_NET"}
# Where those and their dependencies live in the package's tree.
MODULE_DIRS = ("kernel/drivers/virtio/", "kernel/drivers/net/", "kernel/net/core/")

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || echo "vswitch-guest: insmod $m failed"; done
ip=
for arg in $(cat /proc/cmdline); do
    case "$arg" in vsw.ip=*) ip=${arg#vsw.ip=} ;; esac
done
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -n "$ip" ] && ip addr add "$ip" dev eth0
ip link set eth0 up
stty -F /dev/ttyS0 -echo
echo "vswitch-guest: ready $ip $(cat /sys/class/net/eth0/address)" > /dev/ttyS0
# Commands through a pipe: a non-interactive shell (no prompt, no line editing echoing them),
# whose background jobs read /dev/null, never the commands that follow.
while true; do
    cat /dev/ttyS0 | sh > /dev/ttyS0 2>&1
done
"""


class GuestUnavailable(RuntimeError):
    """The guest cannot be built here; the message says why (for a test's skip)."""


@dataclass(frozen=True)
class Guest:
    kernel: Path        # vmlinux (PVH) or vmlinuz (bzImage)
    initrd: Path
    key: str

    def qemu_args(self, *, cmdline: str = "") -> list[str]:
        """QEMU arguments that boot this guest (add -netdev/-device and the serial)."""
        return ["-kernel", str(self.kernel), "-initrd", str(self.initrd),
                "-append", f"console=ttyS0 quiet loglevel=1 panic=-1 {cmdline}".strip()]


def cache_dir() -> Path:
    env = os.environ.get("VSWITCH_GUEST_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vswitch" / "guest"


def _run(argv: list[str], cwd: Path | None = None, timeout: float = 600) -> str:
    try:
        r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise GuestUnavailable(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise GuestUnavailable(f"{' '.join(argv)} took over {timeout:.0f} s") from None
    if r.returncode:
        tail = (r.stderr or r.stdout).strip().splitlines()[-2:]
        raise GuestUnavailable(f"{' '.join(argv)} failed: {' / '.join(tail)}")
    return r.stdout


def _candidate(pkg: str) -> tuple[str, str]:
    """(version, Depends) of the version apt would install."""
    out = _run(["apt-cache", "show", "--no-all-versions", pkg], timeout=60)
    fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", out, re.M))
    if "Version" not in fields:
        raise GuestUnavailable(f"apt-cache knows no {pkg} (apt-get update?)")
    return fields["Version"], fields.get("Depends", "")


def kernel_package() -> tuple[str, str]:
    """The versioned image package `linux-image-amd64` stands for, and its version."""
    _, depends = _candidate(KERNEL_META)
    m = re.search(r"(linux-image-[0-9][^ ,]*-amd64)(?: \(= ([^)]+)\))?", depends)
    if m is None:
        raise GuestUnavailable(f"{KERNEL_META} depends on no kernel image: {depends!r}")
    pkg = m.group(1)
    return pkg, m.group(2) or _candidate(pkg)[0]


def _is_static(path: Path) -> bool:
    """An ELF executable without a program interpreter (PT_INTERP) is statically linked."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return False
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _download(pkg: str, version: str, into: Path) -> Path:
    _run(["apt-get", "download", "-o", "APT::Sandbox::User=root", f"{pkg}={version}"], cwd=into)
    debs = list(into.glob(f"{pkg}_*.deb"))
    if not debs:
        raise GuestUnavailable(f"apt-get download {pkg}={version} left no .deb")
    return debs[0]


def _members(deb: Path, want: re.Pattern[str]) -> dict[str, bytes]:
    """The files of a .deb whose path matches ``want``, read from its data tarball."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for m in tar:
                if m.isfile() and want.search(m.name):
                    f = tar.extractfile(m)
                    assert f is not None
                    found[m.name.lstrip("./")] = f.read()
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.wait() != 0:
            raise GuestUnavailable(f"dpkg-deb --fsys-tarfile {deb.name} failed: {err.strip()}")
    return found


def _modinfo(ko: bytes) -> dict[str, str]:
    """A module's ``.modinfo`` section (ELF64 little-endian) as key=value."""
    shoff, = struct.unpack_from("<Q", ko, 40)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ko, 58)

    def section(i: int) -> tuple[int, int, int]:
        name, _, _, _, off, size = struct.unpack_from("<IIQQQQ", ko, shoff + i * shentsize)
        return name, off, size

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        if ko[stroff + name:ko.index(b"\0", stroff + name)] == b".modinfo":
            pairs = (s.decode(errors="replace").partition("=") for s in ko[off:off + size].split(b"\0") if s)
            return {k: v for k, _, v in pairs}
    return {}


def load_order(modules: dict[str, bytes], roots: tuple[str, ...] | list[str] = tuple(MODULES)) -> list[str]:
    """The modules ``roots`` need, each after its dependencies."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name not in modules:
            raise GuestUnavailable(f"kernel module {name} (needed by {' <- '.join(path) or 'the NIC'}) "
                                   "is not in the package")
        if name in path:
            raise GuestUnavailable(f"module dependency loop: {' -> '.join((*path, name))}")
        for dep in filter(None, _modinfo(modules[name]).get("depends", "").split(",")):
            visit(dep, (*path, name))
        order.append(name)

    for r in roots:
        visit(r, ())
    return order


class _Cpio:
    """A newc ("070701") cpio archive, as the kernel's initramfs unpacker reads it."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        nameb = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nameb), 0)
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % v for v in fields) + nameb)
        self.buf.write(b"\0" * (-self.buf.tell() % 4) + data)
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return self.buf.getvalue()


def _unpacked_kernel(bzimage: bytes, config: bytes) -> bytes | None:
    """The ELF kernel inside a bzImage, where QEMU can boot it directly (PVH entry)."""
    if b"\nCONFIG_PVH=y\n" not in config:
        return None
    for magic, open_ in ((b"\xfd7zXZ\x00", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ)),
                         (b"\x1f\x8b\x08\x00", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS))):
        at = bzimage.find(magic)
        while at >= 0:
            with contextlib.suppress(lzma.LZMAError, zlib.error, EOFError):
                elf = open_().decompress(bzimage[at:])
                if elf[:4] == b"\x7fELF":
                    return elf
            at = bzimage.find(magic, at + 1)
    return None


def _initramfs(busybox: bytes, modules: dict[str, bytes], order: list[str]) -> bytes:
    c = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"):
        c.add(d, stat.S_IFDIR | 0o755)
    c.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))      # init's stdio before devtmpfs
    c.add("bin/busybox", stat.S_IFREG | 0o755, busybox)
    c.add("bin/sh", stat.S_IFLNK | 0o777, b"busybox")
    c.add("init", stat.S_IFREG | 0o755, INIT.encode())
    for name in order:
        c.add(f"lib/modules/{name}.ko", stat.S_IFREG | 0o644, modules[name])
    c.add("lib/modules/order", stat.S_IFREG | 0o644, "".join(f"{m}\n" for m in order).encode())
    return gzip.compress(c.finish(), compresslevel=6, mtime=0)


def _installed_busybox() -> Path | None:
    for p in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if _is_static(p):
            return p
    return None


def _busybox_key() -> str:
    """What the busybox to use is, without fetching it: the installed static binary's
    hash, else the busybox-static version apt would download."""
    p = _installed_busybox()
    if p is not None:
        return "bb" + hashlib.sha256(p.read_bytes()).hexdigest()[:12]
    return f"{BUSYBOX_PKG}_{_candidate(BUSYBOX_PKG)[0]}"


def _busybox(tmp: Path) -> bytes:
    p = _installed_busybox()
    if p is not None:
        return p.read_bytes()
    deb = _download(BUSYBOX_PKG, _candidate(BUSYBOX_PKG)[0], tmp)
    files = _members(deb, re.compile(r"(^|/)bin/busybox$"))
    if not files:
        raise GuestUnavailable(f"{deb.name} holds no bin/busybox")
    return next(iter(files.values()))


def _refresh_lists() -> bool:
    """``apt-get update`` once, as root: a fresh machine's package lists may be missing, or
    name a kernel version its mirror no longer has.  False where it cannot be run."""
    if os.geteuid() != 0:
        return False
    _run(["apt-get", "update", "-qq"], timeout=600)
    return True


def build(cache: Path | None = None, log: bool = False) -> Guest:
    try:
        return _build(cache, log)
    except GuestUnavailable:
        if shutil.which("apt-get") is None or not _refresh_lists():
            raise
        return _build(cache, log)


def _build(cache: Path | None = None, log: bool = False) -> Guest:
    """The guest for the kernel apt would install now: from the cache, else built there.

    Raises `GuestUnavailable` (with the reason) where it cannot be: no apt, no network,
    package lists that name a version the mirror no longer has."""
    cache = cache or cache_dir()
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        found = sorted(cache.glob("*/initrd.gz"), key=lambda p: p.stat().st_mtime) if cache.is_dir() else []
        if found:                         # built earlier; nothing here could build it again
            return _stored(found[-1].parent)
        raise GuestUnavailable("building the test guest needs apt-get and dpkg-deb (a Debian host)")
    kpkg, kver = kernel_package()
    init_key = hashlib.sha256((INIT + " ".join(MODULES)).encode()).hexdigest()[:8]
    key = f"{kpkg}_{kver}+{_busybox_key()}+init{init_key}".replace(":", "_")
    out = cache / key
    if (out / "initrd.gz").is_file():
        return _stored(out)
    if log:
        print(f"building the test guest {key} in {cache} (downloads {kpkg}, about 70 MB)", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=cache) as t:
        tmp = Path(t)
        busybox = _busybox(tmp)
        deb = _download(kpkg, kver, tmp)
        dirs = "|".join(re.escape(d) for d in MODULE_DIRS)
        files = _members(deb, re.compile(rf"^\./boot/(vmlinuz|config)-|/lib/modules/[^/]+/({dirs})[^/]+\.ko(\.xz)?$"))
        vmlinuz = [v for k, v in files.items() if k.startswith("boot/vmlinuz-")]
        if not vmlinuz:
            raise GuestUnavailable(f"{deb.name} holds no /boot/vmlinuz-*")
        config = b"".join(v for k, v in files.items() if k.startswith("boot/config-"))
        modules: dict[str, bytes] = {}
        for path, data in files.items():
            name = path.rsplit("/", 1)[1]
            if name.endswith(".ko.xz"):
                modules[name[:-6].replace("-", "_")] = lzma.decompress(data)
            elif name.endswith(".ko"):
                modules[name[:-3].replace("-", "_")] = data
        built_in = {name for name, sym in MODULES.items() if f"\n{sym}=y\n".encode() in config}
        order = load_order(modules, [m for m in MODULES if m not in built_in])
        staging = tmp / "out"
        staging.mkdir()
        vmlinux = _unpacked_kernel(vmlinuz[0], config)
        if vmlinux is not None:
            (staging / "vmlinux").write_bytes(vmlinux)
        else:
            (staging / "vmlinuz").write_bytes(vmlinuz[0])
        (staging / "initrd.gz").write_bytes(_initramfs(busybox, modules, order))
        (staging / "modules").write_text("\n".join(order) + "\n")
        with contextlib.suppress(FileExistsError, OSError):
            staging.rename(out)           # atomic: a concurrent build's copy is as good
        if not (out / "initrd.gz").is_file():
            raise GuestUnavailable(f"could not store the guest in {out}")
    return _stored(out)


def _stored(d: Path) -> Guest:
    kernel = d / "vmlinux" if (d / "vmlinux").is_file() else d / "vmlinuz"
    return Guest(kernel, d / "initrd.gz", d.name)


def main() -> int:
    try:
        g = build(log=True)
    except GuestUnavailable as e:
        print(f"guest: {e}", file=sys.stderr)
        return 1
    print(f"kernel {g.kernel}\ninitrd {g.initrd}")
    print(shlex.join(["qemu-system-x86_64", "-m", "256", "-display", "none", "-serial", "stdio", "-no-reboot",
                      *g.qemu_args(cmdline="vsw.ip=10.0.0.1/24"),
                      "-netdev", "tap,id=n0,ifname=vm0,script=no,downscript=no,vnet_hdr=on",
                      "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
