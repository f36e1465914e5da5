"""The ``[[plot]]`` figures, drawn with matplotlib (Agg, no display) from the summary rows.

Rows are grouped by every sweep axis a plot does not place: each group is a
line (``line``), a set of bars (``bar``), a panel (``heatmap``), so a plot
never mixes points that differ in something it does not show.

* ``line``: ``x`` against each column of ``y``, one line per group and column.
* ``bar``: bars of each ``y`` column at each ``x`` value, grouped.
* ``heatmap``: ``z`` on the grid of ``x`` and ``y`` (two axes), one panel per group.
* ``cdf``: the distribution of histogram ``hist`` (default ``latency``) for
  each parameter set, its seeds merged: the fraction of frames at or below
  each latency, from every recorded value of the HDR histogram (tail
  included); ``x`` is ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.experiments import hdr
from bench.experiments.spec import Experiment, PlotSpec


def _label(row: dict[str, Any], axes: list[str]) -> str:
    return ", ".join(f"{a.rsplit('.', 1)[-1]}={row[a]}" for a in axes)


def _groups(rows: list[dict[str, Any]], axes: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(json.dumps([r.get(a) for a in axes], default=str), []).append(r)
    return [(_label(g[0], axes), g) for g in out.values()]


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else float("nan")


def draw(exp: Experiment, p: PlotSpec, rows: list[dict[str, Any]], merged: dict[int, dict[str, str]],
         path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    placed = {c for c in (p.x, p.z, *p.y) if c}
    rest = [a for a in exp.axes if a not in placed]
    title = p.title or f"{exp.name}: {p.type}"
    if p.type == "heatmap":
        groups = _groups(rows, rest)
        fig, axs = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
        assert p.x is not None and p.z is not None
        for ax, (label, g) in zip(axs[0], groups, strict=True):
            xs = sorted({r[p.x] for r in g}, key=_sortkey)
            ys = sorted({r[p.y[0]] for r in g}, key=_sortkey)
            grid = [[float("nan")] * len(xs) for _ in ys]
            for r in g:
                grid[ys.index(r[p.y[0]])][xs.index(r[p.x])] = _num(r[p.z])
            im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
            ax.set_xticks(range(len(xs)), [str(x) for x in xs])
            ax.set_yticks(range(len(ys)), [str(y) for y in ys])
            ax.set_xlabel(p.x)
            ax.set_ylabel(p.y[0])
            for i in range(len(ys)):
                for j in range(len(xs)):
                    ax.text(j, i, f"{grid[i][j]:.4g}", ha="center", va="center", color="w", fontsize=8)
            ax.set_title(label or p.z)
            fig.colorbar(im, ax=ax, label=p.z)
        fig.suptitle(title)
    else:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        if p.type == "line":
            x = p.x or ""
            for label, g in _groups(rows, rest):
                g = sorted(g, key=lambda r: _sortkey(r[x]))
                for y in p.y:
                    name = ", ".join(s for s in (label, y if len(p.y) > 1 else "") if s) or y
                    ax.plot([r[x] for r in g], [_num(r[y]) for r in g], marker="o", label=name)
            ax.set_xlabel(x)
            ax.set_ylabel(", ".join(p.y))
        elif p.type == "bar":
            assert p.x is not None
            xs = sorted({r[p.x] for r in rows}, key=_sortkey)
            series = [(label, g, y) for label, g in _groups(rows, rest) for y in p.y]
            width = 0.8 / max(1, len(series))
            for k, (label, g, y) in enumerate(series):
                vals = {r[p.x]: _num(r[y]) for r in g}
                name = ", ".join(s for s in (label, y if len(p.y) > 1 else "") if s) or y
                ax.bar([i + k * width for i in range(len(xs))], [vals.get(x, float("nan")) for x in xs],
                       width, label=name)
            ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(xs))], [str(x) for x in xs])
            ax.set_xlabel(p.x)
            ax.set_ylabel(", ".join(p.y))
        else:                                                       # cdf
            for r in rows:
                enc = merged.get(r["index"], {}).get(p.hist)
                if enc is None:
                    continue
                xs, ys = hdr.cdf(hdr.decode(enc))
                ax.step(xs, ys, where="post", label=_label(r, list(exp.axes)) or exp.name)
            ax.set_xlabel(f"{p.hist} (ns)")
            ax.set_ylabel("fraction of frames")
        if p.logx:
            ax.set_xscale("log")
        if p.logy:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _sortkey(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int | float) and not isinstance(v, bool) else (1, str(v))
