"""Where each table and key of a TOML text is: its line, for error messages.

`tomllib` gives a line only for syntax errors; a file that parses but says
something wrong ("rx_ring = 5000") must still be reported at its line.  This
scans the text once, tracking the current table (``[a.b]``, ``[[a]]`` with the
array's running index) and each ``key = value`` (bare, quoted or dotted keys),
and maps every path to the line where it is defined.  Paths are tuples of
keys, with an int for the index of an array of tables (``("plot", 1, "y")``).
Inside an inline table or a value spanning lines it records only the key that
holds it; `KeyLines.line` falls back to the nearest enclosing path it knows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}

Path = tuple[str | int, ...]


def _key_parts(s: str, i: int) -> tuple[list[str], int] | None:
    """Parse a (dotted) key at ``s[i:]``; return its parts and the index after it, or None."""
    parts: list[str] = []
    n = len(s)
    while True:
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            return None
        c = s[i]
        if c == '"':
            j, buf = i + 1, []
            while j < n and s[j] != '"':
                if s[j] == "\\" and j + 1 < n:
                    buf.append(_ESCAPES.get(s[j + 1], s[j + 1]))
                    j += 2
                    continue
                buf.append(s[j])
                j += 1
            if j >= n:
                return None
            parts.append("".join(buf))
            i = j + 1
        elif c == "'":
            j = s.find("'", i + 1)
            if j < 0:
                return None
            parts.append(s[i + 1:j])
            i = j + 1
        else:
            m = _BARE.match(s, i)
            if not m:
                return None
            parts.append(m.group())
            i = m.end()
        while i < n and s[i] in " \t":
            i += 1
        if i < n and s[i] == ".":
            i += 1
            continue
        return parts, i


class KeyLines:
    """Path -> line (1-based) of every table header and key in a TOML text."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        arrays: dict[tuple[str, ...], int] = {}        # array-of-tables path (names only) -> last index
        table: Path = ()
        in_string: str | None = None                    # inside a multi-line string: its delimiter
        depth = 0                                       # open brackets of a value spanning lines
        for no, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if in_string is not None:
                if line.count(in_string) % 2:
                    in_string = None
                continue
            if depth > 0:
                depth += _bracket_delta(line)
                continue
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                array = line.startswith("[[")
                got = _key_parts(line, 2 if array else 1)
                if got is None:
                    continue
                names = tuple(got[0])
                table = self._resolve(names, arrays)
                if array:
                    idx = arrays.get(names, -1) + 1
                    arrays[names] = idx
                    # a new element: the deeper arrays under it start again
                    for k in [k for k in arrays if len(k) > len(names) and k[:len(names)] == names]:
                        del arrays[k]
                    table = (*table, idx)
                self.lines.setdefault(table, no)
                continue
            got = _key_parts(line, 0)
            if got is None or got[1] >= len(line) or line[got[1]] != "=":
                continue
            path = (*table, *got[0])
            self.lines.setdefault(path, no)
            value = line[got[1] + 1:].strip()
            for delim in ('"""', "'''"):
                if value.startswith(delim) and value.count(delim) % 2:
                    in_string = delim
            if in_string is None:
                depth = max(0, _bracket_delta(value))

    @staticmethod
    def _resolve(names: tuple[str, ...], arrays: dict[tuple[str, ...], int]) -> Path:
        """A header's names as a path: each prefix that is an array of tables takes its last index."""
        out: list[str | int] = []
        for k in range(1, len(names) + 1):
            out.append(names[k - 1])
            if k < len(names) and names[:k] in arrays:
                out.append(arrays[names[:k]])
        return tuple(out)

    def line(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, or of the nearest enclosing table or key this text defines."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return None


def _bracket_delta(value: str) -> int:
    """Open minus closed brackets and braces outside strings and comments (a value spanning lines)."""
    d = 0
    q: str | None = None
    i = 0
    while i < len(value):
        c = value[i]
        if q:
            if c == "\\" and q == '"':
                i += 2
                continue
            if c == q:
                q = None
        elif c in "\"'":
            q = c
        elif c == "#":
            break
        elif c in "[{":
            d += 1
        elif c in "]}":
            d -= 1
        i += 1
    return d


def dotted(path: Sequence[str | int]) -> str:
    """A path as the user writes it: ``sweep.axes."topology.nic.rx_ring"``, ``plot[1].y``."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            part = p if _BARE.fullmatch(p) else '"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"'
            out += ("." if out else "") + part
    return out
