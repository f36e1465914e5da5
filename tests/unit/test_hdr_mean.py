"""bench/experiments/hdr.py's ``mean``: hdrh's ``get_mean_value`` exactly, from the non-zero counts
(the runner's tables use it; hdrh's walk over every bucket was most of a sweep's time)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.experiments import hdr


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 60 * 10**9), max_size=200), st.integers(1, 5))
def test_mean_is_hdrh_mean(values: list[int], digits: int) -> None:
    h = hdr.new(60 * 10**9, min(digits, 3))
    for v in values:
        h.record_value(v)
    assert hdr.mean(h) == h.get_mean_value()
    merged = hdr.merge([hdr.encode(h), hdr.encode(h)])     # decoded and added, as the runner merges seeds
    assert hdr.mean(merged) == merged.get_mean_value()


def test_mean_in_summary() -> None:
    h = hdr.new()
    for v in (1_000, 2_000, 3_000_000):
        h.record_value(v)
    assert hdr.summary("x", h, [50])["x_mean_ns"] == round(h.get_mean_value(), 3)
    assert hdr.summary("x", hdr.new(), [50])["x_mean_ns"] == 0.0
