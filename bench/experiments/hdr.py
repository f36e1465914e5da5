"""Latency histograms: HDR histograms (the ``hdrhistogram`` package), encoded to travel, merged exactly.

Every latency is recorded (no sampling); a histogram keeps ``digits``
significant digits of each value (3: within 0.1 %) from 1 ns to
``max_ns``.  Point runners return them encoded (`encode`, a compressed
base64 string, what HdrHistogram's other implementations read); the runner
merges a point's seeds by adding the histograms (`merge`), so a percentile of
several runs is the percentile of all their frames, never an average of
percentiles.
"""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram


def new(max_ns: int = 60 * 10**9, digits: int = 3) -> HdrHistogram:
    return HdrHistogram(1, max_ns, digits)


def encode(h: HdrHistogram) -> str:
    return h.encode().decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


def merge(encoded: Iterable[str], max_ns: int = 60 * 10**9, digits: int = 3) -> HdrHistogram:
    out = new(max_ns, digits)
    for e in encoded:
        out.add(decode(e))
    return out


def percentile_column(name: str, q: float) -> str:
    """``latency``, 99.9 -> ``latency_p99_9_ns``."""
    text = f"{q:g}".replace(".", "_")
    return f"{name}_p{text}_ns"


def mean(h: HdrHistogram) -> float:
    """``h.get_mean_value()``, the same value, from the non-zero counts: hdrh's walks every bucket
    from the lowest value to the highest recorded one in Python (about 1.5 ms per thousand
    buckets here, and a wide latency range has tens of thousands), which was most of a sweep's
    time in its table of results."""
    total = h.get_total_count()
    if not total:
        return 0.0
    acc = 0
    for i, c in enumerate(h.counts):
        if c:
            acc += c * h._hdr_median_equiv_value(h.get_value_from_index(i))
    return float(acc) / total


def summary(name: str, h: HdrHistogram, percentiles: Iterable[float]) -> dict[str, int | float]:
    """The table's columns for a histogram: count, mean, max and each percentile (ns)."""
    n = h.get_total_count()
    out: dict[str, int | float] = {f"{name}_count": n}
    for q in percentiles:
        out[percentile_column(name, q)] = h.get_value_at_percentile(q) if n else 0
    out[f"{name}_mean_ns"] = round(mean(h), 3) if n else 0.0
    out[f"{name}_max_ns"] = h.get_max_value() if n else 0
    return out


def cdf(h: HdrHistogram) -> tuple[list[int], list[float]]:
    """(values, cumulative fraction) at each recorded value: the whole distribution, tail included."""
    total = h.get_total_count()
    xs: list[int] = []
    ys: list[float] = []
    seen = 0
    for it in h.get_recorded_iterator():
        seen += it.count_at_value_iterated_to
        xs.append(it.value_iterated_to)
        ys.append(seen / total)
    return xs, ys
