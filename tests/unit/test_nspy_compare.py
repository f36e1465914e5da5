"""The project's SP, WFQ, DRR, token bucket and RED against ns.py's on one workload (issue 13
item 6; bench/nspy_compare.py): the same constant-rate flows into the same link give the same
per-flow throughput shares and drop counts (RED, random in both and not the same algorithm:
drop totals within 5 %)."""

from __future__ import annotations

import pytest

pytest.importorskip("ns", reason="ns.py is not installed (.venv/bin/pip install ns.py)")

from bench.nspy_compare import compare, parse  # noqa: E402


@pytest.mark.parametrize("policy", ["sp", "wfq", "drr", "tbf"])
def test_shares_and_drops_match_nspy(policy):
    r = compare(policy, parse(["--seconds", "1"]))
    p, n = r["project"], r["nspy"]
    assert r["max_share_difference"] <= 0.01, r
    assert p["dropped"] == n["dropped"] == 0, r
    for x, y in zip(p["packets"], n["packets"], strict=True):
        assert abs(x - y) <= max(3, 0.01 * y), r


def test_shares_follow_the_policy_not_the_offer():
    # The workload is one where the policies differ: if the comparison ran the wrong policy on
    # either side, shares would not match these.
    a = parse(["--seconds", "1"])
    assert [round(s, 2) for s in compare("sp", a)["project"]["shares"]] == [0.6, 0.1, 0.3]
    assert [round(s, 2) for s in compare("drr", a)["nspy"]["shares"]] == [0.25, 0.5, 0.25]


def test_red_drops_as_many_as_nspy():
    r = compare("red", parse(["--seconds", "4"]))
    p, n = r["project"], r["nspy"]
    assert n["dropped"] > 0
    assert abs(p["dropped"] - n["dropped"]) <= 0.05 * n["dropped"], r
    assert abs(sum(p["packets"]) - sum(n["packets"])) <= 0.01 * sum(n["packets"]), r
