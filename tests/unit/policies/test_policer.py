"""The policer element: srTCM (RFC 2697) and trTCM (RFC 2698) colours on known sequences, token
bounds as properties, and the per-colour actions in a graph."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from policy_frames import Sink, checksum, ipv4, plain

from vswitch.core import Graph
from vswitch.core.policies import Policer, build_policer
from vswitch.core.policies.policer import GREEN, RED, YELLOW

S = 1_000_000_000


def colours(p: Policer, seq: list[tuple[float, int]]) -> list[int]:
    return [p.color(n, round(t * S)) for t, n in seq]


def test_srtcm_colours_a_known_sequence():
    # CIR 1000 bytes/s, CBS 1000, EBS 1000; both buckets start full (RFC 2697 section 3).
    p = Policer("p", cir=8000, cbs=1000, ebs=1000)
    seq = [(0, 500), (0, 500), (0, 500), (0, 500), (0, 500),    # Tc 1000 -> 0, then Te 1000 -> 0, then red
           (0.5, 600), (0.5, 500),                                 # +500 to Tc only: 600 red, 500 green
           (3.5, 1000), (3.5, 1000), (3.5, 1)]                     # +3000: Tc full, the overflow fills Te
    assert colours(p, seq) == [GREEN, GREEN, YELLOW, YELLOW, RED, RED, GREEN, GREEN, YELLOW, RED]


def test_trtcm_colours_a_known_sequence():
    # CIR 1000 B/s, CBS 1000, PIR 2000 B/s, PBS 2000 (RFC 2698 section 3).
    p = Policer("p", cir=8000, cbs=1000, mode="trtcm", pir=16000, pbs=2000)
    seq = [(0, 800), (0, 800), (0, 800),                # green (Tp 1200, Tc 200), yellow (Tp 400), red
           (0.25, 500), (0.25, 400)]                     # Tp 900, Tc 450: yellow (Tp 400); green (0, 50)
    assert colours(p, seq) == [GREEN, YELLOW, RED, YELLOW, GREEN]
    assert p.tokens() == {"committed": 50, "peak": 0}


arrivals = st.lists(st.tuples(st.integers(0, 10 * S // 1000), st.integers(64, 1500)), min_size=1, max_size=300)


@settings(max_examples=100, deadline=None)
@given(cir=st.integers(1, 100).map(lambda k: k * 80_000), cbs=st.integers(1500, 20_000),
       ebs=st.integers(0, 20_000), seq=arrivals)
def test_srtcm_green_and_yellow_stay_within_their_token_bounds(cir, cbs, ebs, seq):
    p = Policer("p", cir=cir, cbs=cbs, ebs=ebs)
    seq = sorted(seq)
    green = not_red = 0
    for t, n in seq:
        c = p.color(n, t * 1000)
        green += n if c == GREEN else 0
        not_red += n if c != RED else 0
    span = (seq[-1][0] - seq[0][0]) * 1000
    assert green <= cbs + cir * span / 8 / S
    assert not_red <= cbs + ebs + cir * span / 8 / S


@settings(max_examples=100, deadline=None)
@given(cir=st.integers(1, 50).map(lambda k: k * 80_000), more=st.integers(0, 50).map(lambda k: k * 80_000),
       cbs=st.integers(1500, 20_000), pbs=st.integers(1500, 20_000), seq=arrivals)
def test_trtcm_green_within_cir_and_everything_not_red_within_pir(cir, more, cbs, pbs, seq):
    pir = cir + more
    p = Policer("p", cir=cir, cbs=cbs, mode="trtcm", pir=pir, pbs=pbs)
    seq = sorted(seq)
    green = not_red = 0
    for t, n in seq:
        c = p.color(n, t * 1000)
        green += n if c == GREEN else 0
        not_red += n if c != RED else 0
    span = (seq[-1][0] - seq[0][0]) * 1000
    assert green <= cbs + cir * span / 8 / S
    assert not_red <= pbs + pir * span / 8 / S


def test_a_policer_in_a_graph_drops_red_remarks_yellow_and_counts_colours():
    g = Graph()
    pol = g.add(build_policer("pol", cir="8kbit", cbs=1000, ebs=1000, yellow="remark", yellow_dscp=10))
    sink = g.add(Sink())
    g.connect(pol, "out", sink, "in")
    port = g.add_port(1, "p", pol, "in")
    g.push(1, [ipv4(500), ipv4(500), ipv4(500), ipv4(500), ipv4(500)], 0)
    assert len(sink.got) == 4
    remarked = [f for _, f in sink.got[2:]]
    assert all(f.data[15] >> 2 == 10 and checksum(f.data[14:34]) == 0 for f in remarked)
    assert sink.got[0][1].data[15] == 0                         # green: untouched
    c = pol.counters
    assert (c["green_packets"], c["yellow_packets"], c["red_packets"], c["remarked"]) == (2, 2, 1, 2)
    assert c["red_bytes"] == 500 and pol.drops == {"policed_red": 1, "policed_yellow": 0}
    assert port.rx_dropped == 1                                 # counted on the port it came in by
    snap = g.snapshot()["elements"]["pol"]
    assert snap["policer"]["mode"] == "srtcm" and snap["policer"]["tokens"]["committed"] == 0


def test_policer_actions_pass_and_drop_yellow():
    p = build_policer("p", cir="8kbit", cbs=600, ebs=600, yellow="drop", red="pass")
    out: list = []
    p._out["out"] = lambda batch, now: out.extend(batch)
    p.push("in", [plain(500), plain(500), plain(500)], 0)     # green, yellow (dropped), red (passed)
    assert len(out) == 2 and p.drops["policed_yellow"] == 1
