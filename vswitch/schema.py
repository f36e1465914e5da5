"""Settings declared once, on the dataclass that holds them.

A config class is written with `declared` (a dataclass) and every field with
`setting()`: its type is the field's annotation, and the call gives its
default, its help text, whether it may change at run time, and its checks
(``choices``, ``bounds``, a ``check`` function that raises ValueError with the
rule in words).  From that one declaration come:

- `load`: a dict from a TOML file (or a JSON request) to the class, checked
  strictly (``"10"`` is not an integer, ``1`` is not a boolean); the first
  problem is a `ConfigError` naming where, the key and the value;
- `from_text`: a ``key=value`` string from the command line to the type
  (``tag=none`` clears an optional setting, ``on``/``off`` for booleans);
- `to_dict` (what is saved: the values that differ from the defaults) and
  `view` (every setting, for ``show``).

A field made without `setting()` is refused when the class is defined, so a
setting cannot exist without its declaration.  See docs/architecture.md
("One declaration of each setting") for why this is stdlib dataclasses and
not a schema library.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")
MISSING: Any = dataclasses.MISSING
_KEY = "vswitch.setting"
TRUE_WORDS = ("true", "on", "yes", "1")
FALSE_WORDS = ("false", "off", "no", "0")


class ConfigError(ValueError):
    """Bad configuration; the message says what is wrong and where."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting as declared; `name`, `types` and `default` come from the dataclass field."""

    name: str
    types: tuple[type, ...]            # the annotation's types; NoneType in it: optional (may be cleared)
    default: Any                       # MISSING: required
    help: str
    runtime: bool                      # may change while the switch runs
    choices: tuple[Any, ...] = ()
    bounds: tuple[int, int] | None = None
    bounds_note: str = ""              # said after the bounds ("(leave it out for no limit)")
    check: Callable[[Any], Any] | None = None   # raises ValueError (the rule); returns the value, normalised
    also: tuple[type, ...] = ()        # further types a file may give (``check`` turns them into ``types``)
    applies: frozenset[str] = frozenset()       # what a run-time change touches (the owner names these)
    option: str | None = None          # the command-line option, when not ``--name-with-dashes``
    metavar: str | None = None
    example: Any = None                # a valid value other than the default (docs and tests)

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def optional(self) -> bool:
        return type(None) in self.types

    def kind(self) -> str:
        """The type in words, for error messages: ``int``, ``str or list``."""
        names = [_TYPE_WORDS.get(t, t.__name__) for t in (*self.types, *self.also) if t is not type(None)]
        return " or ".join(dict.fromkeys(names))

    # -- values ------------------------------------------------------------------
    def value(self, v: Any) -> Any:
        """``v`` checked strictly against the declaration (normalised by ``check``); ValueError
        says what is wrong, starting with the key."""
        if not any(_is(v, t) for t in (*self.types, *self.also)):
            got = "null" if v is None else type(v).__name__
            raise ValueError(f"{self.name}: expected {self.kind()}, got {got} {v!r}")
        if v is None:
            return None
        if self.choices and v not in self.choices:
            raise ValueError(f"{self.name} {v!r}: use one of {', '.join(map(str, self.choices))}")
        if self.bounds is not None and not self.bounds[0] <= v <= self.bounds[1]:   # NaN fails too
            raise ValueError(f"{self.name} {v}: must be {self.bounds[0]}-{self.bounds[1]}"
                             + (f" {self.bounds_note}" if self.bounds_note else ""))
        if self.check is not None:
            try:
                v = self.check(v)
            except ValueError as e:
                msg = str(e)
                raise ValueError(msg if msg.startswith(f"{self.name} ") else f"{self.name}: {msg}") from None
        return v

    def from_text(self, text: str) -> Any:
        """A command-line ``key=value`` string as this setting's type (not yet range-checked):
        ``none`` clears an optional setting; booleans take true/false, on/off, yes/no, 1/0."""
        if self.optional and text.lower() == "none":
            return None
        if bool in self.types:
            word = text.lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError(f"{self.name}={_shown(text)}: expected true/false (or on/off)")
        if int in self.types:
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{self.name}={_shown(text)}: expected an integer") from None
        if float in self.types:
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"{self.name}={_shown(text)}: expected a number") from None
        return text

    def default_text(self) -> str:
        return "none" if self.default is None else str(self.default).lower() if isinstance(self.default, bool) \
            else str(self.default)


_TYPE_WORDS: dict[type, str] = {float: "a number", dict: "a table"}


def _is(v: Any, t: type) -> bool:
    if t is bool:
        return isinstance(v, bool)
    if t is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if t is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, t)


def _shown(value: str) -> str:
    """A value as typed, or quoted where it would not print on one line."""
    return value if value.isprintable() else repr(value)


def setting(*, default: Any = MISSING, help: str, runtime: bool, choices: tuple[Any, ...] = (),
            bounds: tuple[int, int] | None = None, bounds_note: str = "", check: Callable[[Any], Any] | None = None,
            also: tuple[type, ...] = (), applies: tuple[str, ...] = (), option: str | None = None,
            metavar: str | None = None, example: Any = None) -> Any:
    """A declared dataclass field (see `Setting` for what each argument means)."""
    spec = {"help": help, "runtime": runtime, "choices": choices, "bounds": bounds, "bounds_note": bounds_note,
            "check": check, "also": also, "applies": frozenset(applies), "option": option, "metavar": metavar,
            "example": example}
    return dataclasses.field(default=default, metadata={_KEY: spec})


@dataclass_transform(field_specifiers=(setting,))
def declared(cls: type[T]) -> type[T]:
    """Make ``cls`` a dataclass whose every field is a `setting()`; TypeError names a field that is
    not (so a field cannot be added without its declaration).  ``cls.__settings__`` maps each
    name to its `Setting`, in field order."""
    dc = dataclasses.dataclass(cls)
    hints = typing.get_type_hints(dc)
    out: dict[str, Setting] = {}
    for f in dataclasses.fields(dc):  # type: ignore[arg-type]  # a dataclass by now
        spec = f.metadata.get(_KEY)
        if spec is None:
            raise TypeError(f"{cls.__name__}.{f.name}: every field of a declared config class is made with "
                            "setting() (its help, checks and whether it may change at run time)")
        hint = hints[f.name]
        tps = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
            else (hint,)
        out[f.name] = Setting(name=f.name, types=tuple(tps), default=f.default, **spec)
    dc.__settings__ = out  # type: ignore[attr-defined]
    return dc


def settings_of(cls: type) -> dict[str, Setting]:
    out: dict[str, Setting] = cls.__settings__  # type: ignore[attr-defined]
    return out


def load(cls: type[T], data: Mapping[str, Any], where: str, what: str) -> T:
    """``data`` as a ``cls``, every value checked by its declaration, then ``cls.check()`` if it has one
    (rules between settings).  The first problem is a ConfigError ``where: key...``; ``what``
    names the thing in "a port needs a name"."""
    decl = settings_of(cls)
    unknown = set(data) - set(decl)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, sorted(unknown)))} "
                          f"(known: {', '.join(sorted(decl))})")
    for s in decl.values():
        if s.required and s.name not in data:
            raise ConfigError(f"{where}: a {what} needs a {s.name}")
    kw = {}
    for s in decl.values():
        if s.name in data:
            try:
                kw[s.name] = s.value(data[s.name])
            except ValueError as e:
                raise ConfigError(f"{where}: {e}") from None
    obj = cls(**kw)
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """The settings to write back: the required ones and those that differ from the default."""
    return {s.name: getattr(obj, s.name) for s in settings_of(type(obj)).values()
            if s.required or getattr(obj, s.name) != s.default}


def view(obj: Any) -> dict[str, Any]:
    """Every setting and its value (defaults included), for ``show``."""
    return {s.name: getattr(obj, s.name) for s in settings_of(type(obj)).values()}
