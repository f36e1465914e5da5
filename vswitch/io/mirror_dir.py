"""Where pcap mirrors write: one directory the daemon owns, and file names confined to it.

A control client names a pcap mirror's file and the daemon runs as root, so that name
must reach no file but a capture in this directory.  `confine` takes a bare file name
(or an absolute path whose directory is the mirror directory) and refuses anything
else: ``..``, subdirectories, other directories, control characters.  `MirrorDir.open`
then opens the name relative to a descriptor of the directory (openat) with
``O_NOFOLLOW``, and makes every check on the opened descriptor, so a symlink, a hard
link or a FIFO planted in the directory, or a rename between the check and the open,
cannot send the write anywhere else:

- ``new`` (the default): ``O_CREAT|O_EXCL``: an existing file, or a symlink, is refused;
- ``append``: an existing file must be a regular file with one link, owned by the
  daemon's user, that starts with this writer's pcap header (nanosecond, Ethernet,
  this machine's byte order); records are added at its end;
- ``replace``: the same checks, then the file is truncated.

The directory is created mode 0750 when missing, and refused if it is not owned by
the daemon's user or if group or others may write to it (they could plant links).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
from collections.abc import Collection

import dpkt

from vswitch.io.pcap import LINKTYPE_ETHERNET, PcapWriter

DEFAULT_MIRROR_DIR = "/var/lib/vswitch/mirrors"
MODES = ("new", "append", "replace")
NAME_MAX = 255


class MirrorPathError(ValueError):
    """A pcap mirror file the daemon refuses to open; the message is one line for the user."""


def confine(name: object, directory: str) -> str:
    """The file name inside ``directory`` that ``name`` stands for; `MirrorPathError` if it
    leaves the directory (a string check only: `MirrorDir.open` does the rest on descriptors)."""
    if not isinstance(name, str) or not name:
        raise MirrorPathError("a pcap mirror needs a file name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise MirrorPathError(f"{name!r}: control characters in a file name")
    where = f"a file name in the mirror directory {directory}"
    if ".." in name.split("/"):
        raise MirrorPathError(f"{name}: '..' is refused: give {where}")
    if name.startswith("/"):
        head, tail = os.path.split(os.path.normpath(name))
        if head != os.path.normpath(directory):
            raise MirrorPathError(f"{name}: outside the mirror directory: give {where}")
        name = tail
    if "/" in name or name == ".":
        raise MirrorPathError(f"{name}: not a file name: give {where} (no subdirectories)")
    if len(name.encode()) > NAME_MAX:
        raise MirrorPathError(f"{name[:40]}...: file name longer than {NAME_MAX} bytes")
    return name


class MirrorDir:
    """The directory pcap mirrors write to (``vswitchd --mirror-dir``)."""

    def __init__(self, path: str = DEFAULT_MIRROR_DIR) -> None:
        self.path = os.path.abspath(path)

    def _open_dir(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = self._create()
        except OSError as e:
            raise MirrorPathError(f"mirror directory {self.path}: {e.strerror}") from None
        st = os.fstat(fd)
        why = None
        if st.st_uid != os.geteuid():
            why = f"owned by uid {st.st_uid}, not by the daemon's user (uid {os.geteuid()})"
        elif st.st_mode & 0o022:
            why = f"group or others may write to it (mode {stat.S_IMODE(st.st_mode):04o}; chmod 0750 it)"
        if why:
            os.close(fd)
            raise MirrorPathError(f"mirror directory {self.path}: {why}")
        return fd

    def _create(self) -> int:
        made = False
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
            with contextlib.suppress(FileExistsError):     # made meanwhile: checked as any other
                os.mkdir(self.path, 0o750)
                made = True
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if made:
                os.fchmod(fd, 0o750)                       # not as the umask left it
        except OSError as e:
            raise MirrorPathError(f"mirror directory {self.path}: cannot create it: {e.strerror}") from None
        return fd

    def open(self, name: object, mode: str = "new",
             in_use: Collection[tuple[int, int]] = ()) -> tuple[PcapWriter, tuple[int, int]]:
        """A writer on ``name`` in the directory, and the file's (st_dev, st_ino); ``in_use``
        lists the files other mirrors write, which are refused."""
        if mode not in MODES:
            raise MirrorPathError(f"pcap mode {mode!r}: expected one of {', '.join(MODES)}")
        fname = confine(name, self.path)
        path = os.path.join(self.path, fname)
        dfd = self._open_dir()
        try:
            return self._open_in(dfd, fname, path, mode, in_use)
        finally:
            os.close(dfd)

    def _open_in(self, dfd: int, fname: str, path: str, mode: str,
                 in_use: Collection[tuple[int, int]]) -> tuple[PcapWriter, tuple[int, int]]:
        # O_NOFOLLOW: a symlink is never followed; O_NONBLOCK: a FIFO planted here cannot hang
        # the daemon in open() (it is refused below, as anything but a regular file).
        base = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            try:
                fd = os.open(fname, base | os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640, dir_fd=dfd)
                created = True
            except FileExistsError:
                if mode == "new":
                    raise
                fd = os.open(fname, base | os.O_RDWR, dir_fd=dfd)
                created = False
        except OSError as e:
            raise MirrorPathError(self._open_error(dfd, fname, path, e)) from None
        f = None
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            header = True
            if not created:
                self._check_existing(st, path, key, in_use)
                if mode == "replace":
                    os.ftruncate(fd, 0)
                elif st.st_size:
                    self._check_header(fd, path)
                    header = False
                os.lseek(fd, 0, os.SEEK_END)
            os.set_blocking(fd, True)
            f = os.fdopen(fd, "wb")
            writer = PcapWriter(path, file=f, header=header)
            writer.flush()
            return writer, key
        except BaseException as e:
            if f is not None:
                f.close()
            else:
                os.close(fd)
            if created:
                os.unlink(fname, dir_fd=dfd)           # a refused command leaves nothing behind
            if isinstance(e, OSError):
                raise MirrorPathError(f"cannot write {path}: {e.strerror}") from None
            raise

    @staticmethod
    def _open_error(dfd: int, fname: str, path: str, e: OSError) -> str:
        try:
            is_link = stat.S_ISLNK(os.lstat(fname, dir_fd=dfd).st_mode)
        except OSError:
            is_link = False
        if is_link:
            return f"{path} is a symbolic link: refused (a mirror writes only files in its directory)"
        if e.errno == errno.EEXIST:
            return f"{path} exists: give --append or --replace, or another name"
        if e.errno == errno.ENXIO:
            return f"{path} is not a regular file: refused"
        return f"cannot write {path}: {e.strerror}"

    @staticmethod
    def _check_existing(st: os.stat_result, path: str, key: tuple[int, int],
                        in_use: Collection[tuple[int, int]]) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise MirrorPathError(f"{path} is not a regular file: refused")
        if st.st_nlink != 1:
            raise MirrorPathError(f"{path} has {st.st_nlink} hard links: refused (it may be another file)")
        if st.st_uid != os.geteuid():
            raise MirrorPathError(f"{path} is owned by uid {st.st_uid}, not by the daemon's user: refused")
        if key in in_use:
            raise MirrorPathError(f"{path} is being written by another mirror")

    @staticmethod
    def _check_header(fd: int, path: str) -> None:
        head = os.pread(fd, 24, 0)
        ok = len(head) == 24
        if ok:
            magic, _maj, _min, _tz, _sig, _snap, linktype = struct.unpack("=IHHiIII", head)
            ok = magic == dpkt.pcap.TCPDUMP_MAGIC_NANO and linktype == LINKTYPE_ETHERNET
        if not ok:
            raise MirrorPathError(f"{path} is not a pcap this mirror can append to (nanosecond Ethernet "
                                  "pcap in this machine's byte order): give --replace or another name")
