"""The command-line tools as a user reads them: every command's ``--help``, walked.

Each of vswitchd, vswitchctl and vswitch-bench is run with ``--help``, then every
subcommand it lists (and theirs), as a user would.  The parser that printed each
help is caught on its way out, so the checks see what argparse knows: every
option and argument has help text, every value option with a default says it,
every command has a description, names its own path in its usage line, and
lists its subcommands with a line each.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from collections.abc import Callable
from typing import Any

import pytest

from bench.cli import main as bench_main
from vswitch.cli import main as vswitchctl_main
from vswitch.daemon import main as vswitchd_main

TOOLS: dict[str, Callable[[list[str]], Any]] = {
    "vswitchd": vswitchd_main, "vswitchctl": vswitchctl_main, "vswitch-bench": bench_main,
}


def run_help(tool: str, path: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[argparse.ArgumentParser, str]:
    """``tool *path --help``: the parser that printed the help, and the text."""
    caught: list[argparse.ArgumentParser] = []
    original = argparse._HelpAction.__call__

    def catch(self: Any, parser: argparse.ArgumentParser, *a: Any, **kw: Any) -> None:
        caught.append(parser)
        original(self, parser, *a, **kw)
    monkeypatch.setattr(argparse._HelpAction, "__call__", catch)
    monkeypatch.setenv("COLUMNS", "100")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        TOOLS[tool]([*path, "--help"])
    assert e.value.code == 0, (tool, path)
    monkeypatch.undo()
    assert caught, f"{tool} {' '.join(path)} --help printed no argparse help"
    return caught[-1], out.getvalue()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    """name -> the help line its parent lists for it (None: not listed)."""
    out: dict[str, str | None] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            listed = {a.dest: a.help for a in action._choices_actions}
            out.update({name: listed.get(name) for name in action.choices})
    return out


def walk(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str], argparse.ArgumentParser, str, str | None]]:
    """(tool, path, parser, help text, the line its parent lists it with) for every command."""
    found = []
    todo: list[tuple[str, list[str], str | None]] = [(tool, [], "top") for tool in TOOLS]
    while todo:
        tool, path, listed = todo.pop(0)
        parser, text = run_help(tool, path, monkeypatch)
        found.append((tool, path, parser, text, listed))
        todo += [(tool, [*path, name], line) for name, line in subcommands(parser).items()]
    return found


@pytest.fixture(scope="module")
def commands() -> list[tuple[str, list[str], argparse.ArgumentParser, str, str | None]]:
    with pytest.MonkeyPatch.context() as mp:
        return walk(mp)


def test_the_walk_reaches_every_command(commands):
    names = {" ".join([tool, *path]) for tool, path, *_ in commands}
    assert {"vswitchd", "vswitchctl fdb stats", "vswitchctl fdb moves", "vswitchctl mirror add",
            "vswitchctl nic show", "vswitch-bench nic-sorter", "vswitch-bench switch", "vswitch-bench peers",
            "vswitch-bench live-path", "vswitch-bench demo", "vswitch-bench replay"} <= names


def _problems(tool: str, path: list[str], parser: argparse.ArgumentParser, text: str,
              listed: str | None) -> list[str]:
    where = " ".join([tool, *path])
    out = []
    if listed is None:
        out.append(f"{where}: not listed with a help line in its parent's --help")
    if path and not (parser.description or "").strip():
        out.append(f"{where}: no description")
    if parser.prog != where:
        out.append(f"{where}: usage says {parser.prog!r}")
    if re.search(r"issue\s*#?\d", text, re.I):
        out.append(f"{where}: its help mentions an issue number")
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = "/".join(a.option_strings) or a.dest
        if not (a.help or "").strip() or a.help == argparse.SUPPRESS:
            out.append(f"{where} {name}: no help text")
        elif (a.option_strings and a.nargs != 0 and a.default not in (None, [], argparse.SUPPRESS)
              and "default" not in a.help.lower()):
            out.append(f"{where} {name}: default {a.default!r} not shown in its help")
    return out


def test_every_option_and_command_is_described(commands):
    problems = [p for c in commands for p in _problems(*c)]
    assert not problems, "\n".join(problems)


def test_json_is_described_wherever_it_is_accepted(commands):
    for tool, path, parser, _text, _ in commands:
        for a in parser._actions:
            if "--json" in a.option_strings:
                assert a.help and "json" in a.help.lower(), (tool, path, a.help)


def test_set_port_lists_the_keys_it_accepts(commands):
    from vswitch.control.server import _SETTABLE
    text = next(t for tool, path, _, t, _ in commands if path == ["set-port"])
    flat = " ".join(text.split())
    missing = [k for k in _SETTABLE if k not in ("type", "number") and k not in flat]   # those cannot change
    assert not missing, f"set-port --help does not name {missing}:\n{text}"


@pytest.mark.parametrize("argv, want", [
    ([], "vswitchctl: error: choose a command: show, add-port"),
    (["fdb"], "vswitchctl fdb: error: choose a command: show, flush, stats, moves, add, del"),
    (["mirror"], "vswitchctl mirror: error: choose a command: add, del, show"),
])
def test_a_missing_command_names_the_choices(argv, want, capsys):
    with pytest.raises(SystemExit) as e:
        vswitchctl_main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert want in err and "required: cmd" not in err and "_cmd" not in err, err


def test_vswitch_bench_without_a_command_names_the_choices(capsys):
    with pytest.raises(SystemExit) as e:
        bench_main([])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "vswitch-bench: error: choose a command: replay, demo, switch" in err and "required: cmd" not in err, err


def test_demo_offline_says_what_it_runs_not_that_live_is_impossible(capsys, tmp_path):
    assert bench_main(["demo", "--offline", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("vswitch offline demo: 3 guests") and "not possible" not in out, out[:300]
