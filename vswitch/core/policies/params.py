"""The declared parameters of a policy: one `Param` per setting (name, type, default, unit, range).

Each policy class lists its `Param`\\ s in ``PARAMS``; `build_scheduler` and
`build_policer` (``factory.py``), the docs' tables and (later) ``vswitchctl
set-port P qdisc=...`` and experiment files all read that one declaration.

Values come as Python values in the *base unit* of their type, or as text
the way ``tc`` writes them:

=========  ==========  ============================================================
type       base unit   text
=========  ==========  ============================================================
``rate``   bit/s       ``100mbit``, ``1gbit``, ``10kbps`` (kilobytes/s, as tc), ``1.5mbit``
``size``   bytes       ``1514``, ``10kb``/``10k`` (10240, as tc), ``1mb``, ``32kbit``
``time``   ns          ``5ms``, ``100us``, ``1s``, ``250ns``
``int``    (the unit)  ``1024``
``float``              ``0.02``
``bool``               ``on``/``off``, ``true``/``false``, ``yes``/``no``, ``1``/``0``
``choice``             one of the declared words
``ints``               ``3,1`` (a list of integers: weights)
``map``                ``7:0,6:0,5:1`` (key value to class: an index, or a class name)
``classes``            a list of tables, each checked against its own `Param`\\ s (HTB)
=========  ==========  ============================================================

Departure from tc: a bare number is in the base unit, and a rate or time given
as *text* must carry its unit (tc reads a bare rate as bytes/s and a bare time
as microseconds; refusing ``target=5000`` is safer than guessing which was meant).
A value out of its range, of the wrong type or an unknown name is a
``ValueError`` that names the policy, the parameter and the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Param", "REQUIRED", "ParamError", "parse_rate", "parse_size", "parse_time", "check_params",
           "format_value"]


class ParamError(ValueError):
    """A refused parameter; the message names the policy, the parameter and the value."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()      # the default of a parameter that has none

TYPES = ("int", "float", "bool", "choice", "rate", "size", "time", "ints", "map", "classes", "str")
UNITS = {"rate": "bit/s", "size": "bytes", "time": "ns"}


@dataclass(frozen=True)
class Param:
    """One setting of a policy, declared once."""

    name: str
    type: str                      # one of TYPES
    default: Any                   # REQUIRED: must be given; None: not set (the policy says what that means)
    help: str
    unit: str = ""                 # shown in docs; rate/size/time have theirs (UNITS)
    range: tuple[float, float] | None = None   # inclusive, in the base unit
    choices: tuple[str, ...] = ()
    fields: tuple[Param, ...] = ()   # ``classes``: each table's own parameters
    linux: str = ""                # what Linux/tc does, where the default or meaning departs

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise TypeError(f"Param {self.name}: unknown type {self.type!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def base_unit(self) -> str:
        return UNITS.get(self.type, self.unit)

    # -- values --------------------------------------------------------------------
    def parse(self, value: Any, where: str) -> Any:
        """``value`` (Python, or text as tc writes it) in the base unit, checked; ParamError
        ``where: name value: rule`` otherwise."""
        if value is None:
            if self.default is None:
                return None
            raise ParamError(f"{where}: {self.name}: a value is needed")
        try:
            v = self._convert(value, where)
        except ParamError:
            raise
        except (ValueError, TypeError) as e:
            raise ParamError(f"{where}: {self.name} {_shown(value)}: {e}") from None
        if self.range is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
            lo, hi = self.range
            if not lo <= v <= hi:        # NaN fails too
                raise ParamError(f"{where}: {self.name} {_shown(value)}: must be "
                                 f"{format_value(self, lo)} to {format_value(self, hi)}")
        if self.type == "ints" and self.range is not None:
            lo, hi = self.range
            for x in v:
                if not lo <= x <= hi:
                    raise ParamError(f"{where}: {self.name} {_shown(value)}: each must be "
                                     f"{format_value(self, lo)} to {format_value(self, hi)}")
        return v

    def _convert(self, value: Any, where: str) -> Any:
        t = self.type
        text = value.strip() if isinstance(value, str) else None
        if t == "rate":
            return parse_rate(value)
        if t == "size":
            return parse_size(value)
        if t == "time":
            return parse_time(value)
        if t == "int":
            if text is not None:
                return int(text, 0) if text.lower().startswith("0x") else int(text)
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    return int(value)
                raise ValueError("expected an integer")
            return value
        if t == "float":
            if text is not None:
                return float(text)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError("expected a number")
            return float(value)
        if t == "bool":
            if isinstance(value, bool):
                return value
            if text is not None and text.lower() in ("on", "true", "yes", "1"):
                return True
            if text is not None and text.lower() in ("off", "false", "no", "0"):
                return False
            raise ValueError("expected on/off (true/false)")
        if t in ("choice", "str"):
            if not isinstance(value, str):
                raise ValueError("expected a word")
            if t == "choice" and value not in self.choices:
                raise ValueError(f"use one of {', '.join(self.choices)}")
            return value
        if t == "ints":
            items: Sequence[Any] = [x for x in text.split(",") if x.strip()] if text is not None else value
            if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
                raise ValueError("expected a list of integers such as 3,1")
            out = []
            for x in items:
                if isinstance(x, str):
                    out.append(int(x.strip()))
                elif isinstance(x, int) and not isinstance(x, bool):
                    out.append(x)
                else:
                    raise ValueError("expected a list of integers such as 3,1")
            if not out:
                raise ValueError("expected at least one integer")
            return out
        if t == "map":
            return _parse_map(value, text)
        if t == "classes":
            return _parse_classes(self, value, where)
        raise AssertionError(t)

    def describe(self) -> dict[str, Any]:
        """The declaration as data (docs, ``--help``, JSON)."""
        d: dict[str, Any] = {"name": self.name, "type": self.type, "unit": self.base_unit,
                             "default": None if self.required else self.default, "required": self.required,
                             "help": self.help}
        if self.range is not None:
            d["range"] = list(self.range)
        if self.choices:
            d["choices"] = list(self.choices)
        if self.fields:
            d["fields"] = [f.describe() for f in self.fields]
        if self.linux:
            d["linux"] = self.linux
        return d


def _parse_map(value: Any, text: str | None) -> dict[int, int | str]:
    pairs: list[tuple[Any, Any]]
    if text is not None:
        pairs = []
        for item in text.split(","):
            if not item.strip():
                continue
            k, sep, v = item.partition(":")
            if not sep:
                raise ValueError("expected KEY:CLASS pairs such as 7:0,6:0,5:1")
            pairs.append((k.strip(), v.strip()))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise ValueError("expected KEY:CLASS pairs such as 7:0,6:0,5:1")
    out: dict[int, int | str] = {}
    for k, v in pairs:
        key = int(k, 0) if isinstance(k, str) else k
        if isinstance(key, bool) or not isinstance(key, int):
            raise ValueError(f"key {k!r} is not an integer")
        if isinstance(v, str):
            out[key] = int(v) if v.lstrip("-").isdigit() else v
        elif isinstance(v, int) and not isinstance(v, bool):
            out[key] = v
        else:
            raise ValueError(f"class {v!r} for key {k!r}: expected a class index or name")
    return out


def _parse_classes(p: Param, value: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError("expected a list of class tables")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ValueError(f"class {i}: expected a table")
        name = item.get("name", i)
        out.append(check_params(p.fields, item, f"{where}: class {name!r}"))
    return out


def check_params(params: Sequence[Param], given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Every parameter of ``params`` from ``given`` (or its default), checked; unknown names and
    missing required ones are refused."""
    known = {p.name: p for p in params}
    unknown = [k for k in given if k not in known]
    if unknown:
        raise ParamError(f"{where}: unknown parameter{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))} (known: {', '.join(known) or 'none'})")
    out: dict[str, Any] = {}
    for p in params:
        if p.name in given:
            out[p.name] = p.parse(given[p.name], where)
        elif p.required:
            raise ParamError(f"{where}: {p.name} is required ({p.help})")
        else:
            out[p.name] = p.default
    return out


# -- units, as tc reads them (iproute2 tc/tc_util.c) ----------------------------------------

_NUM = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)\s*$")

_RATE = {"bit": 1, "kbit": 1000, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12,
         "kibit": 1024, "mibit": 1024**2, "gibit": 1024**3, "tibit": 1024**4,
         "bps": 8, "kbps": 8000, "mbps": 8 * 10**6, "gbps": 8 * 10**9, "tbps": 8 * 10**12,
         "kibps": 8 * 1024, "mibps": 8 * 1024**2, "gibps": 8 * 1024**3, "tibps": 8 * 1024**4}
_SIZE = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3,
         "kbit": 1024 // 8, "mbit": 1024**2 // 8, "gbit": 1024**3 // 8}
_TIME = {"s": 10**9, "sec": 10**9, "secs": 10**9, "ms": 10**6, "msec": 10**6, "msecs": 10**6,
         "us": 1000, "usec": 1000, "usecs": 1000, "ns": 1, "nsec": 1, "nsecs": 1}


def _number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a {what}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite {what}")
        return round(value)
    return value


def _text(value: str, table: dict[str, int], what: str, example: str, bare: bool) -> int:
    m = _NUM.match(value)
    if not m:
        raise ValueError(f"expected a {what} such as {example}")
    num, unit = m.group(1), m.group(2).lower()
    if not unit and not bare:
        raise ValueError(f"give the unit, as in {example}")
    if unit not in table:
        raise ValueError(f"unknown unit {m.group(2)!r} (a {what} such as {example})")
    return round(float(num) * table[unit])


def parse_rate(value: Any) -> int:
    """A rate in bit/s: an int/float in bit/s, or tc text (``100mbit``, ``10kbps`` = 80000)."""
    if isinstance(value, str):
        return _text(value, _RATE, "rate", "100mbit", bare=False)
    return _number(value, "rate in bit/s")


def parse_size(value: Any) -> int:
    """A size in bytes: an int, or tc text (``1514``, ``10kb`` = 10240, ``32kbit`` = 4096)."""
    if isinstance(value, str):
        return _text(value, _SIZE, "size", "10kb", bare=True)
    return _number(value, "size in bytes")


def parse_time(value: Any) -> int:
    """A time in ns: an int in ns, or text with its unit (``5ms``, ``100us``, ``1s``)."""
    if isinstance(value, str):
        return _text(value, _TIME, "time", "5ms", bare=False)
    return _number(value, "time in ns")


def format_value(p: Param, v: Any) -> str:
    """A value of ``p`` for people: ``100Mbit``, ``5ms``, ``10240`` (docs, messages)."""
    if v is None:
        return "none"
    if p.type == "rate" and isinstance(v, (int, float)):
        for div, unit in ((10**9, "Gbit"), (10**6, "Mbit"), (10**3, "Kbit")):
            if v >= div and v % div == 0:
                return f"{int(v // div)}{unit}"
        return f"{v}bit"
    if p.type == "time" and isinstance(v, (int, float)):
        for div, unit in ((10**9, "s"), (10**6, "ms"), (10**3, "us")):
            if v >= div and v % div == 0:
                return f"{int(v // div)}{unit}"
        return f"{v}ns"
    if p.type == "size" and isinstance(v, (int, float)):
        return f"{v}"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, list):
        return ",".join(map(str, v))
    if isinstance(v, dict):
        return ",".join(f"{k}:{c}" for k, c in v.items())
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) and (not value.isprintable() or " " in value or not value) \
        else str(value)
