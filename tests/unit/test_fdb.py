"""The forwarding database: aging, limits and fair eviction, static entries, moves, damping, flush."""

from __future__ import annotations

import pytest
from helpers import NS, mac

from vswitch.elements.fdb import Fdb, Move

A, B, C, D, E, F, G = (mac(i) for i in range(1, 8))
AGE = 300 * NS


def fdb(**kw) -> Fdb:
    kw.setdefault("damp_moves", 0)
    return Fdb(**kw)


def table(f: Fdb, now: int | None = None) -> dict[tuple[int, bytes], int]:
    return {(e.vlan, e.mac): e.port for e in f.entries(now)}


# -- aging ---------------------------------------------------------------------------------

def test_default_ageing_is_300s_and_default_size_8192():
    f = Fdb()
    assert f.ageing_ns == AGE
    assert f.max_entries == 8192


@pytest.mark.parametrize("t0", [0, 1, 123_456_789_000])
def test_entry_valid_until_the_last_ns_and_gone_at_the_timeout_via_lookup(t0):
    f = fdb()
    f.learn(10, A, 1, t0)
    assert f.lookup(10, A, t0) == 1
    assert f.lookup(10, A, t0 + AGE - 1) == 1
    assert f.stats["expired"] == 0
    assert f.lookup(10, A, t0 + AGE) is None
    assert f.stats["expired"] == 1
    assert f.lookup(10, A, t0 + AGE + 1) is None
    assert f.expire(t0 + 2 * AGE) == 0
    assert f.stats["expired"] == 1
    assert len(f) == 0


def test_entry_ages_exactly_at_the_timeout_via_expire():
    f = fdb(ageing_ns=1000)
    f.learn(1, A, 1, 5000)
    f.learn(1, B, 2, 5500)
    assert f.expire(5999) == 0
    assert table(f) == {(1, A): 1, (1, B): 2}
    assert f.expire(6000) == 1
    assert table(f) == {(1, B): 2}
    assert f.stats["expired"] == 1
    assert f.lookup(1, A, 6000) is None
    assert f.stats["expired"] == 1          # counted once, not again by lookup
    assert f.expire(6499) == 0
    assert f.expire(6500) == 1
    assert f.stats["expired"] == 2
    assert len(f) == 0


def test_refresh_restarts_the_timer():
    f = fdb(ageing_ns=1000)
    f.learn(1, A, 1, 0)
    f.learn(1, A, 1, 700)
    assert f.lookup(1, A, 1699) == 1
    assert f.lookup(1, A, 1700) is None
    assert f.stats["learned"] == 1 and f.stats["expired"] == 1


def test_learning_over_an_expired_entry_counts_it_once_and_learns_again():
    f = fdb(ageing_ns=1000)
    f.learn(1, A, 1, 0)
    f.learn(1, A, 2, 1000)                  # the old entry is dead: not a move
    assert f.lookup(1, A, 1000) == 2
    assert f.stats == {**f.stats, "expired": 1, "learned": 2, "moved": 0}
    assert f.expire(1999) == 0
    assert f.stats["expired"] == 1


def test_entries_with_now_hides_expired_ones():
    f = fdb(ageing_ns=1000)
    f.learn(1, A, 1, 0)
    f.learn(1, B, 1, 500)
    assert table(f, 999) == {(1, A): 1, (1, B): 1}
    assert table(f, 1000) == {(1, B): 1}
    assert table(f, 1500) == {}


def test_vlans_are_separate_tables():
    f = fdb()
    f.learn(10, A, 1, 0)
    f.learn(20, A, 2, 0)
    assert f.lookup(10, A, 1) == 1
    assert f.lookup(20, A, 1) == 2
    assert f.lookup(30, A, 1) is None
    assert f.stats["moved"] == 0 and len(f) == 2


def test_bad_parameters():
    with pytest.raises(ValueError):
        Fdb(max_entries=0)
    with pytest.raises(ValueError):
        Fdb(ageing_ns=0)
    f = Fdb()
    with pytest.raises(ValueError):
        f.set_port_limit(1, 5, "drop")
    with pytest.raises(ValueError):
        f.set_port_limit(1, 0)


# -- global limit and fair eviction ---------------------------------------------------------

def fill_5():
    """Port 1 holds A(t=1) B(t=2) C(t=3); port 2 holds D(t=0, the oldest overall) and E(t=4)."""
    f = fdb(max_entries=5)
    f.learn(1, D, 2, 0)
    f.learn(1, A, 1, 1)
    f.learn(1, B, 1, 2)
    f.learn(1, C, 1, 3)
    f.learn(1, E, 2, 4)
    assert len(f) == 5
    return f


def test_full_table_evicts_the_oldest_entry_of_the_port_with_most_entries():
    f = fill_5()
    f.learn(1, F, 3, 10)
    assert f.stats["evicted"] == 1
    assert len(f) == 5
    # D is the oldest overall but port 2 is not the biggest: A goes
    assert table(f) == {(1, B): 1, (1, C): 1, (1, D): 2, (1, E): 2, (1, F): 3}


def test_a_refresh_changes_which_entry_is_oldest():
    f = fill_5()
    f.learn(1, A, 1, 5)                     # A is now the newest of port 1
    f.learn(1, F, 3, 10)
    assert table(f) == {(1, A): 1, (1, C): 1, (1, D): 2, (1, E): 2, (1, F): 3}
    f.learn(1, C, 1, 11)
    f.learn(1, A, 1, 12)                    # port 1 now: C(11) A(12); ports 2 has D(0) E(4)
    f.learn(1, G, 4, 13)                    # tie 2/2 between ports 1 and 2: either is "most"
    assert f.stats["evicted"] == 2
    assert len(f) == 5
    gone = {(1, A), (1, C), (1, D), (1, E)} - set(table(f))
    assert gone in ({(1, C)}, {(1, D)})     # the oldest of whichever port was chosen


def test_repeated_evictions_follow_lru_within_the_port():
    f = fdb(max_entries=4)
    for i, m in enumerate((A, B, C, D)):
        f.learn(1, m, 1, i)
    f.learn(1, A, 1, 10)                    # order now B C D A
    f.learn(1, E, 1, 11)                    # evicts B
    f.learn(1, F, 1, 12)                    # evicts C
    assert table(f) == {(1, D): 1, (1, A): 1, (1, E): 1, (1, F): 1}
    assert f.stats["evicted"] == 2


def test_full_table_expires_before_evicting():
    f = fdb(max_entries=2, ageing_ns=100)
    f.learn(1, A, 1, 0)
    f.learn(1, B, 1, 50)
    f.learn(1, C, 2, 100)                   # A has just expired: no eviction needed
    assert table(f) == {(1, B): 1, (1, C): 2}
    assert f.stats["evicted"] == 0 and f.stats["expired"] == 1


def test_snapshot_uses_ovs_words():
    f = fill_5()
    f.learn(1, F, 3, 10)
    snap = f.snapshot()
    assert snap["current_entries"] == 5
    assert snap["max_entries"] == 5
    assert snap["learned"] == 6
    assert snap["evicted"] == 1
    assert {"expired", "moved", "static", "moves_damped", "learn_refused"} <= set(snap)


# -- per-port limits ---------------------------------------------------------------------------

def test_port_limit_stop_refuses_new_macs_on_that_port_only():
    f = fdb()
    f.set_port_limit(1, 2, "stop")
    f.learn(1, A, 1, 0)
    f.learn(1, B, 1, 1)
    f.learn(1, C, 1, 2)
    assert f.stats["learn_refused"] == 1
    assert f.lookup(1, C, 3) is None
    assert table(f) == {(1, A): 1, (1, B): 1}
    f.learn(1, A, 1, 5)                     # refreshing a known MAC is fine
    assert f.lookup(1, A, AGE + 4) == 1
    f.learn(1, C, 2, 6)                     # other ports are not limited
    assert f.lookup(1, C, 6) == 2
    assert f.port_count(1) == 2 and f.port_count(2) == 1
    assert f.stats["learn_refused"] == 1 and f.stats["evicted"] == 0


def test_port_limit_stop_refuses_a_move_into_the_full_port():
    f = fdb()
    f.set_port_limit(1, 1, "stop")
    f.learn(1, A, 1, 0)
    f.learn(1, B, 2, 0)
    f.learn(1, B, 1, 1)
    assert f.lookup(1, B, 1) == 2
    assert f.port_count(1) == 1


def test_port_limit_evict_replaces_that_ports_oldest():
    f = fdb()
    f.set_port_limit(1, 2, "evict")
    f.learn(1, D, 2, 0)                     # older, but on another port
    f.learn(1, A, 1, 1)
    f.learn(1, B, 1, 2)
    f.learn(1, A, 1, 3)                     # refresh: B is now port 1's oldest
    f.learn(1, C, 1, 4)
    assert table(f) == {(1, A): 1, (1, C): 1, (1, D): 2}
    assert f.stats["evicted"] == 1 and f.stats["learn_refused"] == 0


def test_port_limit_stop_does_not_count_aged_out_entries():
    """An entry is gone from t + ageing on: its slot under a 'stop' limit is free again."""
    f = fdb(ageing_ns=1000)
    f.set_port_limit(1, 1, "stop")
    f.learn(1, A, 1, 0)
    f.learn(1, B, 1, 999)                   # A still valid: refused
    assert f.stats["learn_refused"] == 1
    f.learn(1, B, 1, 1000)                  # A aged out: B takes its place
    assert table(f) == {(1, B): 1}
    assert f.stats["learn_refused"] == 1
    assert f.stats["expired"] == 1 and f.stats["evicted"] == 0


def test_port_limit_evict_counts_an_aged_out_victim_as_expired():
    f = fdb(ageing_ns=1000)
    f.set_port_limit(1, 1, "evict")
    f.learn(1, A, 1, 0)
    f.learn(1, B, 1, 1000)
    assert table(f) == {(1, B): 1}
    assert f.stats["expired"] == 1 and f.stats["evicted"] == 0


def test_port_limit_stop_lets_a_mac_move_into_a_slot_freed_by_aging():
    f = fdb(ageing_ns=1000)
    f.set_port_limit(1, 1, "stop")
    f.learn(1, A, 1, 0)
    f.learn(1, B, 2, 900)
    f.learn(1, B, 1, 1000)
    assert table(f) == {(1, B): 1}
    assert f.stats["moved"] == 1 and f.stats["learn_refused"] == 0


def test_port_limit_lowered_evict_trims_the_oldest_at_once_stop_keeps():
    f = fdb()
    for i, m in enumerate((A, B, C, D)):
        f.learn(1, m, 1, i)
    f.learn(1, A, 1, 10)                    # refreshed: B is now the oldest
    f.learn(1, E, 2, 0)                     # another port: untouched
    f.set_port_limit(1, 2, "evict")
    assert table(f) == {(1, A): 1, (1, D): 1, (1, E): 2}
    assert f.stats["evicted"] == 2 and f.port_count(1) == 2
    g = fdb()
    for i, m in enumerate((A, B, C)):
        g.learn(1, m, 1, i)
    g.set_port_limit(1, 1, "stop")          # keeps what it has, learns no more there
    assert g.port_count(1) == 3 and g.stats["evicted"] == 0
    g.learn(1, D, 1, 5)
    assert g.lookup(1, D, 5) is None and g.stats["learn_refused"] == 1
    g.set_port_limit(1, 1, "evict")         # switching policy applies it
    assert g.port_count(1) == 1 and g.stats["evicted"] == 2


def test_port_limit_can_be_removed():
    f = fdb()
    f.set_port_limit(1, 1, "stop")
    f.learn(1, A, 1, 0)
    f.set_port_limit(1, None)
    f.learn(1, B, 1, 0)
    assert f.port_count(1) == 2


# -- static entries -------------------------------------------------------------------------

def test_static_entries_never_age():
    f = fdb(ageing_ns=100)
    f.add_static(1, A, 3)
    assert f.lookup(1, A, 10**15) == 3
    assert f.expire(10**15) == 0
    assert table(f, 10**15) == {(1, A): 3}
    assert f.snapshot()["static"] == 1


def test_static_entries_never_move():
    f = fdb()
    f.add_static(1, A, 3)
    f.learn(1, A, 4, 5)
    assert f.lookup(1, A, 5) == 3
    assert f.stats["moved"] == 0 and len(f.moves) == 0 and f.stats["learned"] == 0


def test_static_entries_are_never_evicted():
    f = fdb(max_entries=3)
    f.add_static(1, A, 1)
    f.add_static(1, B, 1)
    f.learn(1, C, 1, 0)
    f.learn(1, D, 2, 1)                     # full: the only dynamic entry, C, goes
    assert table(f) == {(1, A): 1, (1, B): 1, (1, D): 2}
    f.learn(1, E, 2, 2)                     # D goes
    assert table(f) == {(1, A): 1, (1, B): 1, (1, E): 2}
    assert f.stats["evicted"] == 2


def test_table_full_of_static_entries_refuses_to_learn():
    f = fdb(max_entries=2)
    f.add_static(1, A, 1)
    f.add_static(1, B, 2)
    f.learn(1, C, 3, 0)
    assert f.lookup(1, C, 0) is None
    assert len(f) == 2
    with pytest.raises(ValueError):
        f.add_static(1, C, 3)


def test_static_replaces_a_dynamic_entry():
    f = fdb(ageing_ns=100)
    f.learn(1, A, 1, 0)
    f.add_static(1, A, 2)
    assert len(f) == 1
    assert f.lookup(1, A, 10**12) == 2
    assert f.port_count(1) == 0


def test_delete():
    f = fdb()
    f.add_static(1, A, 1)
    f.learn(1, B, 1, 0)
    assert f.delete(1, A) and f.delete(1, B)
    assert not f.delete(1, A)
    assert len(f) == 0


# -- moves ---------------------------------------------------------------------------------

def test_moves_are_counted_and_logged():
    f = fdb()
    f.learn(10, A, 1, 100)
    f.learn(10, A, 2, 200)
    f.learn(20, B, 5, 250)
    f.learn(20, B, 6, 300)
    assert f.lookup(10, A, 300) == 2
    assert f.stats["moved"] == 2
    assert f.stats["learned"] == 2
    assert [(m.mac, m.vlan, m.from_port, m.to_port, m.time_ns) for m in f.moves] == [
        (A, 10, 1, 2, 200), (B, 20, 5, 6, 300)]
    assert isinstance(f.moves[0], Move)
    assert f.port_count(1) == 0 and f.port_count(2) == 1


def test_moved_entry_is_fresh_on_its_new_port():
    f = fdb(ageing_ns=1000)
    f.learn(1, A, 1, 0)
    f.learn(1, A, 2, 900)
    assert f.lookup(1, A, 1899) == 2
    assert f.lookup(1, A, 1900) is None


def test_move_log_keeps_the_last_n():
    f = fdb(move_log=3)
    f.learn(1, A, 0, 0)
    for i in range(1, 6):
        f.learn(1, A, i, i)
    assert f.stats["moved"] == 5
    assert [(m.from_port, m.to_port, m.time_ns) for m in f.moves] == [(2, 3, 3), (3, 4, 4), (4, 5, 5)]


def test_moves_update_per_port_counts_for_eviction():
    f = fdb(max_entries=3)
    f.learn(1, A, 1, 0)
    f.learn(1, B, 1, 1)
    f.learn(1, C, 2, 2)
    f.learn(1, A, 2, 3)                     # port 1: B; port 2: C, A
    f.learn(1, D, 3, 4)                     # evicts port 2's oldest: C
    assert table(f) == {(1, A): 2, (1, B): 1, (1, D): 3}


# -- damping ---------------------------------------------------------------------------------

K, WINDOW, HOLD = 3, 10 * NS, 30 * NS


def damped() -> Fdb:
    return Fdb(damp_moves=K, damp_window_ns=WINDOW, damp_hold_ns=HOLD)


def test_more_than_k_moves_within_the_window_freeze_the_mac():
    f = damped()
    f.learn(1, A, 1, 0)
    f.learn(1, A, 2, 1 * NS)
    f.learn(1, A, 1, 2 * NS)
    f.learn(1, A, 2, 3 * NS)                # K = 3 moves: all allowed
    assert f.stats["moved"] == 3 and f.lookup(1, A, 3 * NS) == 2
    f.learn(1, A, 1, 4 * NS)                # the 4th within 10 s: refused, frozen on port 2
    assert f.lookup(1, A, 4 * NS) == 2
    assert f.stats["moved"] == 3
    assert f.stats["moves_damped"] == 1
    f.learn(1, A, 1, 20 * NS)               # still frozen (the window alone has passed)
    f.learn(1, A, 3, 34 * NS - 1)           # still frozen until 4 s + 30 s
    assert f.lookup(1, A, 34 * NS - 1) == 2
    assert f.stats["moves_damped"] == 3
    assert f.stats["moved"] == 3
    f.learn(1, A, 1, 34 * NS)               # the hold is over: it may move again
    assert f.lookup(1, A, 34 * NS) == 1
    assert f.stats["moved"] == 4
    assert f.stats["moves_damped"] == 3
    undamped = [m for m in f.moves if not m.damped]
    assert [(m.from_port, m.to_port) for m in undamped] == [(1, 2), (2, 1), (1, 2), (2, 1)]


def test_frozen_mac_stays_fresh_on_its_own_port():
    f = damped()
    f.learn(1, A, 1, 0)
    for i in range(1, K + 2):
        f.learn(1, A, 1 + i % 2, i * NS)
    port = f.lookup(1, A, (K + 1) * NS)
    f.learn(1, A, port, 12 * NS)            # traffic on its own port refreshes it
    assert f.lookup(1, A, 12 * NS + AGE - 1) == port


def test_moves_spread_wider_than_the_window_are_not_damped():
    f = damped()
    f.learn(1, A, 1, 0)
    for i in range(1, 30):                  # every 4 s: at most 2 earlier moves within 10 s
        f.learn(1, A, 1 + i % 2, 4 * i * NS)
    assert f.stats["moved"] == 29
    assert f.stats["moves_damped"] == 0


def test_moves_every_3s_are_damped_on_the_fourth():
    f = damped()
    f.learn(1, A, 1, 0)
    for i in range(1, 5):                   # moves at 3, 6, 9 s; the one at 12 s has 3 within 10 s
        f.learn(1, A, 1 + i % 2, 3 * i * NS)
    assert f.stats["moved"] == 3
    assert f.stats["moves_damped"] == 1


def test_damping_is_per_mac():
    f = damped()
    f.learn(1, A, 1, 0)
    f.learn(1, B, 1, 0)
    for i in range(1, K + 2):
        f.learn(1, A, 1 + i % 2, i * NS)
    f.learn(1, B, 2, 5 * NS)
    assert f.lookup(1, B, 5 * NS) == 2
    assert f.stats["moves_damped"] == 1


def test_damp_moves_zero_disables_damping():
    f = Fdb(damp_moves=0, damp_window_ns=WINDOW, damp_hold_ns=HOLD)
    f.learn(1, A, 1, 0)
    for i in range(1, 50):
        f.learn(1, A, 1 + i % 2, i)
    assert f.stats["moved"] == 49
    assert f.stats["moves_damped"] == 0
    assert f.lookup(1, A, 50) == 1 + 49 % 2


# -- flush -------------------------------------------------------------------------------------

def flush_fixture() -> Fdb:
    f = fdb()
    f.learn(10, A, 1, 0)
    f.learn(20, B, 1, 0)
    f.learn(10, C, 2, 0)
    f.learn(20, D, 2, 0)
    f.add_static(10, E, 1)
    return f


def test_flush_by_port():
    f = flush_fixture()
    assert f.flush(port=1) == 2
    assert table(f) == {(10, C): 2, (20, D): 2, (10, E): 1}
    assert f.port_count(1) == 0 and f.port_count(2) == 2


def test_flush_by_vlan():
    f = flush_fixture()
    assert f.flush(vlan=20) == 2
    assert table(f) == {(10, A): 1, (10, C): 2, (10, E): 1}


def test_flush_by_port_and_vlan():
    f = flush_fixture()
    assert f.flush(port=2, vlan=10) == 1
    assert table(f) == {(10, A): 1, (20, B): 1, (20, D): 2, (10, E): 1}


def test_flush_all_keeps_static_unless_asked():
    f = flush_fixture()
    assert f.flush() == 4
    assert table(f) == {(10, E): 1}
    assert f.flush(static=True) == 1
    assert len(f) == 0
    assert f.stats["expired"] == 0 and f.stats["evicted"] == 0


def test_flushed_room_is_reusable():
    f = fdb(max_entries=2)
    f.learn(1, A, 1, 0)
    f.learn(1, B, 1, 0)
    f.flush(port=1)
    f.learn(1, C, 2, 1)
    f.learn(1, D, 2, 1)
    assert table(f) == {(1, C): 2, (1, D): 2}
    assert f.stats["evicted"] == 0
