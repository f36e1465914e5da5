"""Pcap mirrors write only into their directory: names confined, links and existing files refused."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import dpkt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vswitch.io.mirror_dir import MirrorDir, MirrorPathError, confine

FRAME = bytes.fromhex("ffffffffffff020000000001" "0806") + bytes(46)


def records(path) -> list[tuple[float, bytes]]:
    with open(path, "rb") as f:
        return [(ts, bytes(buf)) for ts, buf in dpkt.pcap.Reader(f)]


def write_one(md: MirrorDir, name: str, mode: str = "new", ts_ns: int = 1_000_000_000) -> None:
    w, _ = md.open(name, mode)
    w.write(FRAME, ts_ns)
    w.close()


@pytest.fixture
def mirrors(tmp_path):
    return MirrorDir(str(tmp_path / "mirrors"))


@pytest.fixture
def victim(tmp_path):
    """A file outside the mirror directory that must never change."""
    v = tmp_path / "victim"
    v.write_bytes(b"precious\n")
    return v


@pytest.mark.parametrize("name", ["a.pcap", "with space.pcap", ".hidden", "x" * 255])
def test_plain_names_are_files_in_the_directory(name):
    assert confine(name, "/var/lib/vswitch/mirrors") == name


def test_an_absolute_path_inside_the_directory_is_its_file_name():
    assert confine("/var/lib/vswitch/mirrors/a.pcap", "/var/lib/vswitch/mirrors") == "a.pcap"
    assert confine("/var/lib/vswitch/mirrors//./a.pcap", "/var/lib/vswitch/mirrors/") == "a.pcap"


@pytest.mark.parametrize("name, words", [
    ("", "needs a file name"),
    (None, "needs a file name"),
    (5, "needs a file name"),
    ("../etc/passwd", "'..' is refused"),
    ("..", "'..' is refused"),
    ("/var/lib/vswitch/mirrors/../x", "'..' is refused"),
    ("/etc/shadow", "outside the mirror directory"),
    ("/var/lib/vswitch/mirrors-evil/x", "outside the mirror directory"),
    ("/var/lib/vswitch/mirrors", "outside the mirror directory"),
    ("sub/a.pcap", "no subdirectories"),
    (".", "not a file name"),
    ("a\nb", "control characters"),
    ("a\0b", "control characters"),
    ("x" * 256, "longer than 255 bytes"),
])
def test_names_that_leave_the_directory_are_refused(name, words):
    with pytest.raises(MirrorPathError, match=words):
        confine(name, "/var/lib/vswitch/mirrors")


@given(st.text(alphabet=st.sampled_from("ab./\n\0é"), max_size=12))
def test_confine_never_yields_a_name_that_leaves_the_directory(name):
    d = "/var/lib/vswitch/mirrors"
    try:
        got = confine(name, d)
    except MirrorPathError as e:
        assert "\n" not in str(e).replace(repr(name), "")
        return
    assert got and "/" not in got and got not in (".", "..") and "\0" not in got
    assert os.path.dirname(os.path.normpath(os.path.join(d, got))) == d


def test_a_new_file_is_created_in_a_directory_made_0750(mirrors):
    write_one(mirrors, "m.pcap")
    assert stat.S_IMODE(os.stat(mirrors.path).st_mode) == 0o750
    path = os.path.join(mirrors.path, "m.pcap")
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o007 == 0            # no access for others
    assert records(path) == [(1.0, FRAME)]


def test_an_existing_file_is_refused_unless_append_or_replace(mirrors):
    write_one(mirrors, "m.pcap", ts_ns=1_000_000_000)
    path = Path(mirrors.path) / "m.pcap"
    before = path.read_bytes()
    with pytest.raises(MirrorPathError, match="exists: give --append or --replace"):
        mirrors.open("m.pcap")
    assert path.read_bytes() == before
    write_one(mirrors, "m.pcap", "append", ts_ns=2_000_000_000)
    assert [ts for ts, _ in records(path)] == [1.0, 2.0]               # one header, both records
    write_one(mirrors, "m.pcap", "replace", ts_ns=3_000_000_000)
    assert [ts for ts, _ in records(path)] == [3.0]


def test_append_creates_a_missing_file_and_refuses_one_that_is_not_its_pcap(mirrors, tmp_path):
    write_one(mirrors, "new.pcap", "append")
    assert len(records(os.path.join(mirrors.path, "new.pcap"))) == 1
    other = Path(mirrors.path) / "notes.txt"
    other.write_text("not a capture, longer than a pcap header\n")
    with pytest.raises(MirrorPathError, match="not a pcap this mirror can append to"):
        mirrors.open("notes.txt", "append")
    assert other.read_text() == "not a capture, longer than a pcap header\n"


@pytest.mark.parametrize("mode", ["new", "append", "replace"])
def test_a_symlink_in_the_directory_is_refused_and_its_target_untouched(mirrors, victim, mode):
    write_one(mirrors, "seed.pcap")                                     # the directory exists
    os.symlink(victim, os.path.join(mirrors.path, "evil.pcap"))
    with pytest.raises(MirrorPathError, match="is a symbolic link: refused"):
        mirrors.open("evil.pcap", mode)
    assert victim.read_bytes() == b"precious\n"


def test_a_dangling_symlink_does_not_create_its_target(mirrors, tmp_path):
    write_one(mirrors, "seed.pcap")
    target = tmp_path / "created-by-the-daemon"
    os.symlink(target, os.path.join(mirrors.path, "dangling.pcap"))
    for mode in ("new", "append", "replace"):
        with pytest.raises(MirrorPathError, match="symbolic link"):
            mirrors.open("dangling.pcap", mode)
    assert not target.exists()


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_a_hard_link_to_another_file_is_refused(mirrors, victim, mode):
    write_one(mirrors, "seed.pcap")
    try:
        os.link(victim, os.path.join(mirrors.path, "linked.pcap"))
    except PermissionError:
        pytest.skip("hard links to this file are not allowed here (fs.protected_hardlinks)")
    with pytest.raises(MirrorPathError, match="2 hard links: refused"):
        mirrors.open("linked.pcap", mode)
    assert victim.read_bytes() == b"precious\n"


def test_a_fifo_is_refused_without_hanging(mirrors):
    write_one(mirrors, "seed.pcap")
    os.mkfifo(os.path.join(mirrors.path, "fifo.pcap"))
    result: list[str] = []

    def attempt() -> None:
        for mode in ("new", "append", "replace"):
            try:
                mirrors.open("fifo.pcap", mode)
                result.append("opened")
            except MirrorPathError as e:
                result.append(str(e))
    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "open() blocked on a FIFO"
    assert result[0].endswith("exists: give --append or --replace, or another name")
    assert all("not a regular file" in r for r in result[1:]), result


def test_a_directory_others_may_write_to_is_refused(mirrors):
    write_one(mirrors, "seed.pcap")
    os.chmod(mirrors.path, 0o770)
    with pytest.raises(MirrorPathError, match="group or others may write to it"):
        mirrors.open("x.pcap")
    assert not os.path.exists(os.path.join(mirrors.path, "x.pcap"))


def test_a_directory_owned_by_someone_else_is_refused(mirrors):
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    write_one(mirrors, "seed.pcap")
    os.chown(mirrors.path, 65534, 65534)
    with pytest.raises(MirrorPathError, match="owned by uid 65534"):
        mirrors.open("x.pcap")


def test_a_file_another_mirror_writes_is_refused(mirrors):
    w, key = mirrors.open("busy.pcap")
    with pytest.raises(MirrorPathError, match="being written by another mirror"):
        mirrors.open("busy.pcap", "replace", in_use=[key])
    w.write(FRAME, 5)
    w.close()
    assert len(records(os.path.join(mirrors.path, "busy.pcap"))) == 1


def test_a_directory_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(MirrorPathError, match=r"mirror directory .*/file/mirrors: .*Not a directory"):
        MirrorDir(str(tmp_path / "file" / "mirrors")).open("x.pcap")
