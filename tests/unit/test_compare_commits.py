"""`vswitch-bench compare-commits`: the verdict and the table, reading each benchmark's figure
(JSON, and the text of trees without --json), the import guard, and one real run of the repo
against its own HEAD (no timing asserted)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bench import compare_commits as cc
from bench import nic_sorter, peers, switch_bench

ROOT = Path(__file__).resolve().parents[2]


# -- the verdict and the table ------------------------------------------------------------
@pytest.mark.parametrize("ratio,want", [
    (1.0, "ok"), (1.05, "ok"), (1.0501, "SLOWER"), (1.5, "SLOWER"),
    (0.95, "ok"), (0.9499, "faster"), (None, "skipped"),
])
def test_verdict_against_the_five_percent_threshold(ratio, want) -> None:
    assert cc.verdict(ratio) == want


def test_a_failed_benchmark_is_failed_whatever_its_samples() -> None:
    r = cc.Row(cc.BENCHES["switch"], this=[100.0], rev=[100.0], failed=True, note="REV: exited 1")
    assert r.ratio is None and r.verdict == "failed"


def test_row_ratio_is_of_the_medians_and_overlap_of_the_ranges() -> None:
    b = cc.BENCHES["switch"]
    r = cc.Row(b, this=[110.0, 300.0, 112.0], rev=[100.0, 101.0, 99.0])
    assert r.ratio == pytest.approx(112 / 100)             # medians: one outlier does not move it
    assert r.verdict == "SLOWER" and not r.overlap          # this tree's range starts above REV's
    r2 = cc.Row(b, this=[104.0, 120.0], rev=[100.0, 110.0])
    assert r2.ratio == pytest.approx(112 / 105) and r2.overlap
    assert cc.Row(b).ratio is None and cc.Row(b).verdict == "skipped"


def test_table_shows_medians_spreads_ratios_verdicts_and_notes() -> None:
    rows = [
        cc.Row(cc.BENCHES["switch"], this=[250.0, 260.0, 255.0], rev=[250.0, 251.0, 249.0]),
        cc.Row(cc.BENCHES["switch-pure"], this=[800.0, 900.0], rev=[700.0, 810.0]),
        cc.Row(cc.BENCHES["nic-sorter"], this=[0.3], rev=[0.41]),
        cc.Row(cc.BENCHES["live-path"], note="needs root"),
        cc.Row(cc.BENCHES["peers-cpu"], this=[3.9], failed=True, note="REV: exited 2: no iperf3"),
    ]
    con = Console(record=True, width=250)
    con.print(cc.table(rows, "title", "this tree", "REV"))
    text = con.export_text()
    lines = {ln.split()[1]: ln for ln in text.splitlines() if ln.startswith("│")}
    assert "255.0 (250.0-260.0)" in lines["switch"] and "250.0 (249.0-251.0)" in lines["switch"]
    assert "1.020 (1.00-1.04)" in lines["switch"] and lines["switch"].rstrip(" │").endswith("ok")
    assert "1.126" in lines["switch-pure"] and "SLOWER (ranges overlap)" in lines["switch-pure"]
    assert "0.732 " in lines["nic-sorter"] and "faster" in lines["nic-sorter"]   # one round: no range
    assert "(" not in lines["nic-sorter"].split("│")[3]     # one sample: no range
    assert "skipped: needs root" in lines["live-path"]
    assert "failed: REV: exited 2: no iperf3" in lines["peers-cpu"]
    d = rows[1].as_dict()
    assert d["verdict"] == "SLOWER" and d["this"]["median"] == 850 and d["rev"]["min"] == 700
    assert d["ratio"] == pytest.approx(850 / 755)
    assert d["round_ratios"] == pytest.approx([800 / 700, 900 / 810])   # each round's pair


# -- reading each benchmark's figure -------------------------------------------------------
def _run(main, argv, tmp_path, capsys) -> tuple[str, dict]:
    out = tmp_path / "r.json"
    rc = main([*argv, "--json", str(out)])
    assert rc == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def test_switch_figure_from_json_and_from_the_text_of_trees_without_it(tmp_path, capsys) -> None:
    text, data = _run(switch_bench.main, ["--frames", "512", "--rounds", "3", "--macs", "50"], tmp_path, capsys)
    b = cc.BENCHES["switch"]
    assert b.parse(text, data) == data["pipeline"]["median_ns_per_frame"] > 0
    assert b.parse(text, None) == pytest.approx(data["pipeline"]["median_ns_per_frame"], abs=0.05)
    assert data["dataplane"].startswith(("compiled", "interpreted"))
    assert data["check"]["forwarded"] == 512 * 3


def test_nic_sorter_figure_from_json_and_from_text(tmp_path, capsys) -> None:
    text, data = _run(nic_sorter.main, ["--frames", "1024", "--rounds", "1"], tmp_path, capsys)
    b = cc.BENCHES["nic-sorter"]
    assert b.parse(text, data) == data["sorter_us_per_frame"] > 0
    assert b.parse(text, None) == pytest.approx(data["sorter_us_per_frame"], abs=0.0005)
    assert data["drops"] == 0 and data["settings"]["frames"] == 1024


def test_peers_cpu_figure_is_read_from_the_peers_json() -> None:
    res = peers.summarize(["vswitchd"], 3, 5.0, {"vswitchd": {"cpu_us_per_frame": [3.9, 3.5, 4.4]}},
                          [], {}, [])
    res = json.loads(json.dumps(res))                       # as read back from the file
    assert cc.BENCHES["peers-cpu"].parse("", res) == 3.9
    with pytest.raises(cc.ChildFailed, match="no --json"):
        cc.BENCHES["peers-cpu"].parse("CPU per frame 3.9", None)


def test_output_without_a_figure_is_a_failure_not_a_number() -> None:
    with pytest.raises(cc.ChildFailed, match="no figure"):
        cc.BENCHES["switch"].parse("learning switch: 8 ports\n  Traceback ...", None)
    unmeasured = peers.summarize(["vswitchd"], 1, 5.0, {"vswitchd": {}}, ["vswitchd cpu: failed"], {}, [])
    with pytest.raises(cc.ChildFailed, match="no figure in its JSON"):
        cc.BENCHES["peers-cpu"].parse("", unmeasured)          # cpu_us_per_frame is None
    with pytest.raises(cc.ChildFailed, match="no figure in its JSON"):
        cc.BENCHES["switch"].parse("", {"benchmark": "switch"})


# -- the trees --------------------------------------------------------------------------
def test_guard_runs_the_trees_console_script_from_that_tree() -> None:
    tree = cc.Tree("this", ROOT)
    runner = cc.Runner([tree], log=lambda s: None)
    rc, out, err = runner.bench_cli(tree, ["switch", "--frames", "64", "--rounds", "1", "--macs", "10"], pure=True)
    assert rc == 0, err
    assert "vswitch pipeline" in out


def test_guard_refuses_a_run_that_imported_the_project_from_outside_its_tree(tmp_path) -> None:
    """A package missing in the tree under test would come from the editable install's tree."""
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "__init__.py").write_text("")
    (tmp_path / "bench" / "cli.py").write_text("def main():\n    import vswitch  # noqa\n    return 0\n")
    tree = cc.Tree("REV", tmp_path)
    runner = cc.Runner([cc.Tree("this", ROOT), tree], log=lambda s: None)
    rc, out, err = runner.bench_cli(tree, ["switch"], pure=False)
    assert rc == 3
    assert "imported from outside the tree under test" in err and str(ROOT / "vswitch") in err


def test_each_tree_runs_with_its_own_pythonpath_and_pure_setting() -> None:
    t = cc.Tree("REV", Path("/tmp/x"))
    assert t.env(False)["PYTHONPATH"] == "/tmp/x" and "VSWITCH_PURE" not in t.env(False)
    assert t.env(True)["VSWITCH_PURE"] == "1"


def test_bad_arguments_say_what_is_wrong(capsys) -> None:
    assert cc.main(["--only", "switch,bogus"]) == 2
    assert "choose from switch, switch-pure" in capsys.readouterr().err
    assert cc.main(["--rounds", "0"]) == 2
    assert cc.main(["no-such-revision-xyz", "--only", "switch-pure"]) == 2
    assert "not a commit" in capsys.readouterr().err


# -- end to end ---------------------------------------------------------------------------
def _worktrees() -> str:
    return subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.slow
@pytest.mark.once
def test_compare_head_with_itself_gives_ratios_and_removes_its_worktree(tmp_path) -> None:
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout")
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler: the compiled switch benchmark cannot be built")
    out = tmp_path / "cmp.json"
    r = subprocess.run([sys.executable, "-m", "bench.cli", "compare-commits", "HEAD", "--rounds", "1",
                        "--only", "switch", "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode in (0, 1), r.stderr                  # 1: noise flagged the same code SLOWER
    res = json.loads(out.read_text())
    sw = res["benchmarks"]["switch"]
    assert sw["verdict"] in ("ok", "faster", "SLOWER"), sw["note"]
    assert sw["ratio"] > 0 and len(sw["this"]["samples"]) == len(sw["rev"]["samples"]) == 1
    assert sw["ratio"] == pytest.approx(sw["this"]["median"] / sw["rev"]["median"])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert res["rev"]["commit"] == head
    wt = res["rev"]["worktree"]
    assert res["rev"]["vswitch"].startswith(wt + os.sep)     # REV's run imported REV's package
    assert res["this"]["vswitch"].startswith(str(ROOT) + os.sep)
    assert "this/REV" in r.stdout and "switch" in r.stdout
    assert f"worktree {wt}\n" not in _worktrees()            # cleaned up
    assert not Path(wt).exists() and not Path(wt).parent.exists()
