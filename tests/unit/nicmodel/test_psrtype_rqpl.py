"""PSRTYPE.RQPL: how many of a pool's queues RSS spreads over (82599 datasheet PSRTYPE bits
31:29; ixgbe_setup_psrtype for the PF's pools, ixgbevf_setup_psrtype for a VF's)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nic_frames import mac, udp

from nicmodel.nic import Nic


def queues_hit(nic: Nic, pool: int, n: int = 256) -> Counter[int]:
    """Frames to ``pool``'s MAC through the sorter; how many landed on each of its queues."""
    nic.rx([udp(mac(pool + 1), i) for i in range(n)], 0)
    hit: Counter[int] = Counter()
    for q in nic.state.pool_queues(pool):
        got = nic.poll(q, 4096, 0)
        assert all(f.queue == q and f.pool == pool for f in got)
        hit[q] = len(got)
    assert sum(hit.values()) == n, "a frame was lost"
    return hit


def vmdq(mrqc: int) -> Nic:
    nic = Nic("rqpl", "82599", mrqc=mrqc)
    for p in range(nic.state.num_pools):
        nic.program_pool(p, mac=mac(p + 1))
    return nic


def test_set_layout_programs_rqpl_for_every_queue_of_a_pool_as_ixgbe_does() -> None:
    for mrqc, rqpl in ((0x8, 0), (0xB, 1), (0xA, 2)):
        nic = vmdq(mrqc)
        assert {nic.regs.read("PSRTYPE", p) >> 29 for p in range(64)} == {rqpl}
        hit = queues_hit(nic, 3)
        used = [q for q, k in hit.items() if k]
        assert used == (nic.state.pool_queues(3)[:1] if mrqc == 0x8 else nic.state.pool_queues(3))


@pytest.mark.parametrize("mrqc,rqpl,spread", [(0xB, 0, 1), (0xB, 1, 2), (0xB, 2, 2),
                                              (0xA, 0, 1), (0xA, 1, 2), (0xA, 2, 4), (0xA, 3, 4)])
def test_rqpl_sets_how_many_queues_rss_uses(mrqc: int, rqpl: int, spread: int) -> None:
    nic = vmdq(mrqc)
    nic.regs.write("PSRTYPE", 5, 0x1330 | rqpl << 29)        # header bits kept, not acted on
    assert nic.regs.read("PSRTYPE", 5) == 0x1330 | rqpl << 29
    hit = queues_hit(nic, 5)
    qs = nic.state.pool_queues(5)
    assert [q for q in qs if hit[q]] == qs[:spread]          # the first 2**RQPL, capped
    assert [nic.queue_in_use(q) for q in qs] == [i < spread for i in range(len(qs))]
    other = queues_hit(nic, 6)                               # another pool keeps its own RQPL
    assert all(other[q] for q in nic.state.pool_queues(6))


def test_an_mrqc_register_write_alone_leaves_psrtype_at_its_reset_value() -> None:
    nic = Nic("rqpl", "82599")                               # reset: 0x8, PSRTYPE 0
    for p in range(64):
        nic.program_pool(p, mac=mac(p + 1))
    nic.regs.write("MRQC", 0, 0xB)
    assert nic.state.layout.rss
    hit = queues_hit(nic, 2)
    assert hit[nic.state.pool_queues(2)[0]] == 256            # RSS on, but RQPL 0: one queue
    nic.regs.write("PSRTYPE", 2, 1 << 29)
    assert all(queues_hit(nic, 2).values())


@settings(max_examples=40, deadline=None)
@given(mrqc=st.sampled_from([0x8, 0xA, 0xB]), rqpl=st.integers(0, 7), pool=st.integers(0, 31),
       flows=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=64))
def test_no_frame_lands_beyond_the_queues_rqpl_allows(mrqc: int, rqpl: int, pool: int, flows: list[int]) -> None:
    nic = vmdq(mrqc)
    nic.set_psrtype(pool, rqpl << 29)
    nic.rx([udp(mac(pool + 1), i) for i in flows], 0)
    qs = nic.state.pool_queues(pool)
    allowed = 1 if mrqc == 0x8 else min(len(qs), 1 << rqpl)
    got = [len(nic.poll(q, 4096, 0)) for q in qs]
    assert sum(got) == len(flows)
    assert not any(got[allowed:])
