"""What a sweep writes: the point store (``--resume``), the tables (CSV, Parquet), the JSON results.

``points.jsonl``: one JSON object per finished run, appended as it finishes
(so an interrupted sweep keeps what it did): its key, index, seed, the
values its sweep gave, the kind's metrics, histograms and per-port rows,
``wall_s`` and ``worker``.  ``--resume`` reads it back and skips every run
whose key (`bench.experiments.spec.point_key`) is there.

From the store, in sweep order (index, then seed), whichever executor ran them:

* ``results.csv``, ``results.parquet``: one row per run: ``index``, ``seed``,
  ``key``, one column per sweep axis (its dotted path; a table or array value
  as JSON), the metrics, the latency columns of each histogram, ``wall_s``
  (the one column that differs between two runs of the same point) and
  ``worker``.  A ``drops_<reason>`` a run did not have is 0.
* ``summary.csv``, ``summary.parquet``: one row per parameter set: the axes,
  ``seeds``, each numeric metric's mean over the seeds, and the latency
  columns of the seeds' histograms merged (the percentiles of every frame of
  every seed, not a mean of percentiles).
* ``results.json``: the experiment, every run in full (histograms encoded)
  and the summary rows with their merged histograms.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from bench.experiments import hdr
from bench.experiments.spec import Experiment

STORE = "points.jsonl"


def read_store(out: Path) -> dict[str, dict[str, Any]]:
    """The runs already stored, by key (a line cut short by a crash is ignored)."""
    got: dict[str, dict[str, Any]] = {}
    path = out / STORE
    if not path.exists():
        return got
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("key"), str) and "metrics" in rec:
            got[rec["key"]] = rec
    return got


class Store:
    def __init__(self, out: Path, resume: bool) -> None:
        self.path = out / STORE
        self.records = read_store(out) if resume else {}
        if not resume and self.path.exists():
            self.path.unlink()
        if resume and self.path.exists():          # rewrite it without any torn line
            self.path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records.values()))

    def add(self, rec: dict[str, Any]) -> None:
        self.records[rec["key"]] = rec
        with open(self.path, "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")


def _cell(v: Any) -> Any:
    return json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v


def run_rows(exp: Experiment, records: list[dict[str, Any]], prefixes: tuple[str, ...]) -> list[dict[str, Any]]:
    metric_cols: list[str] = []
    for r in records:
        for k in r["metrics"]:
            if k not in metric_cols:
                metric_cols.append(k)
    rows = []
    for r in records:
        row: dict[str, Any] = {"index": r["index"], "seed": r["seed"], "key": r["key"]}
        row.update({a: _cell(r["axes"].get(a)) for a in exp.axes})
        for k in metric_cols:
            row[k] = r["metrics"].get(k, 0 if k.startswith(prefixes) else None)
        for name, enc in sorted(r.get("histograms", {}).items()):
            row.update(hdr.summary(name, hdr.decode(enc), exp.measure.percentiles))
        row["wall_s"] = r["wall_s"]
        row["worker"] = r["worker"]
        rows.append(row)
    return _uniform(rows)


def summary_rows(exp: Experiment, records: list[dict[str, Any]], prefixes: tuple[str, ...]
                 ) -> tuple[list[dict[str, Any]], dict[int, dict[str, str]]]:
    by_index: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        by_index.setdefault(r["index"], []).append(r)
    rows = []
    merged: dict[int, dict[str, str]] = {}
    m = exp.measure
    names: list[str] = []
    for r in records:
        names += [k for k in r["metrics"] if k not in names]
    for index in sorted(by_index):
        runs = by_index[index]
        row: dict[str, Any] = {"index": index}
        row.update({a: _cell(runs[0]["axes"].get(a)) for a in exp.axes})
        row["seeds"] = len(runs)
        for k in names:
            vals = [r["metrics"].get(k, 0 if k.startswith(prefixes) else None) for r in runs]
            nums = [v for v in vals if isinstance(v, int | float) and not isinstance(v, bool)]
            if len(nums) == len(vals):
                mean = sum(nums) / len(nums)
                row[k] = int(mean) if all(isinstance(v, int) for v in nums) and mean == int(mean) else mean
            else:
                row[k] = vals[0] if len(set(map(str, vals))) == 1 else None
        merged[index] = {}
        hnames = sorted({n for r in runs for n in r.get("histograms", {})})
        for name in hnames:
            h = hdr.merge((r["histograms"][name] for r in runs if name in r.get("histograms", {})),
                          m.latency_max_ns, m.digits)
            row.update(hdr.summary(name, h, m.percentiles))
            merged[index][name] = hdr.encode(h)
        rows.append(row)
    return _uniform(rows), merged


def _uniform(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row with every column (None where missing), and a column of ints and floats all floats
    (so Parquet has one type per column and reading back gives the same values)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    out = [{c: r.get(c) for c in cols} for r in rows]
    for c in cols:
        vals = [r[c] for r in out if r[c] is not None]
        if any(isinstance(v, float) for v in vals) and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                           for v in vals):
            for r in out:
                if r[c] is not None:
                    r[c] = float(r[c])
    return out


def write_table(rows: list[dict[str, Any]], csv_path: Path, parquet_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    cols = list(rows[0]) if rows else []
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), parquet_path)


def write_all(exp: Experiment, out: Path, records: list[dict[str, Any]], prefixes: tuple[str, ...]
              ) -> tuple[list[dict[str, Any]], dict[int, dict[str, str]]]:
    runs = run_rows(exp, records, prefixes)
    summary, merged = summary_rows(exp, records, prefixes)
    write_table(runs, out / "results.csv", out / "results.parquet")
    write_table(summary, out / "summary.csv", out / "summary.parquet")
    doc = {"format": "vswitch-experiment/1", "experiment": exp.name, "description": exp.description,
           "file": str(exp.path), "kind": exp.kind, "axes": list(exp.axes), "seeds": list(exp.seeds),
           "percentiles": list(exp.measure.percentiles), "runs": records,
           "summary": [{**row, "histograms": merged[row["index"]]} for row in summary]}
    (out / "results.json").write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return summary, merged
