"""What the NIC model offers the SR-IOV layer: config-write hooks, extra registers that leave the
data path's caches alone, and a pool flush (a VF reset) that keeps the counters honest."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from nic_frames import eth, mac

from nicmodel.nic import Nic
from nicmodel.pci import ConfigSpace
from nicmodel.sorter import rss_index
from vswitch.core.frame import Frame, parse_mac

GIG = 1_000_000_000


def test_a_config_hook_sees_the_writes_of_its_range_and_only_those() -> None:
    c = ConfigSpace()
    c.init(0x40, 0, 4, wmask=0xFFFFFFFF)
    c.init(0x44, 0, 4, wmask=0xFFFFFFFF)
    seen: list[tuple[int, int, int]] = []

    def hook(off: int, value: int, size: int) -> None:
        seen.append((off, value, size))
        c.write_masked(off, value & 0xFF, size)        # the hook decides what lands

    c.hook(0x44, 4, hook)
    c.write(0x40, 0x12345678)
    c.write(0x46, 0xABCD, 2)
    assert c.read(0x40) == 0x12345678                  # outside the range: a plain write
    assert seen == [(0x46, 0xABCD, 2)]
    assert c.read(0x46, 2) == 0xCD


def test_a_quiet_register_does_not_move_the_state_generation() -> None:
    nic = Nic()
    box = [0]

    def w(i: int, v: int) -> None:
        box[i] = v
    nic.regs.add("SCRATCH", 1, lambda i: 0x3F000, lambda i: box[i], w, changes_state=False)
    gen = nic.state.generation
    nic.regs.write("SCRATCH", 0, 7)
    nic.regs.write32(0x3F000, 9)
    assert nic.regs.read("SCRATCH", 0) == 9 and nic.state.generation == gen
    nic.regs.write("PFVTCTL", 0, nic.regs.read("PFVTCTL", 0))
    assert nic.state.generation > gen                  # an ordinary register still does


def test_flush_pool_discards_waiting_frames_and_keeps_counters_monotonic() -> None:
    nic = Nic()
    nic.program_pool(3, mac=mac(3))
    nic.rx([eth(mac(3)) for _ in range(5)], 0)
    nic.set_pool_enabled(3, tx=False)                  # TX stalls: frames wait in the ring
    nic.tx(3, [eth(mac(9), src=mac(3)) for _ in range(4)], 0)
    before = nic.snapshot()["pools"]["3"]
    assert before["gprc"] == 5 and before["gptc"] == 0
    assert nic.flush_pool(3) == (5, 4)
    after = nic.snapshot()["pools"]["3"]
    assert after["gprc"] == 5                          # they were received
    assert after["gptc"] == 0                          # and the TX frames were never sent
    assert sum(nic.rings.queues[q].flushed for q in nic.state.pool_queues(3)) == 5
    assert sum(nic.txa.queues[q].discarded for q in nic.state.pool_queues(3)) == 4
    nic.set_pool_enabled(3, tx=True)
    assert nic.tx_service(GIG) == []                   # nothing left to send
    assert all(nic.poll(q, 64, 0) == [] for q in nic.state.pool_queues(3))


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=34, max_size=80), st.booleans(), st.sampled_from([6, 17, 1]), st.sampled_from([0x45, 0x46]))
def test_the_fast_path_spreads_over_a_pools_queues_exactly_as_rss_index(body, tagged, proto, vhl) -> None:
    """The sorter's inline RSS (the fast path, taken from the second frame of a DA on) picks
    the queue rss_index picks (the slow path's)."""
    nic = Nic(mrqc=0xB)                                # 64 pools x 2, RSS on
    nic.program_pool(5, mac=mac(5), vlan=7 if tagged else None, strip_vlan=False)
    hdr = parse_mac(mac(5)) + parse_mac(mac(9)) + (b"\x81\x00\x00\x07" if tagged else b"")
    ip = bytes([vhl]) + body[1:9] + bytes([proto]) + body[10:]
    data = hdr + b"\x08\x00" + ip
    qs = nic.state.pool_queues(5)
    for _ in range(2):                                 # the first warms the plan cache
        f = Frame(data)
        nic.rx([f], 0)
        assert f.queue == qs[rss_index(data, len(qs))]
        nic.poll(f.queue, 64, 0)


def test_the_rss_table_is_the_modulo_of_every_hash_value() -> None:
    from nicmodel.sorter import rss_table
    nic = Nic(mrqc=0xA)                                # 32 pools x 4
    qs = tuple(nic.rings.queues[q] for q in nic.state.pool_queues(3))
    table = rss_table(qs)
    assert len(table) == 256                           # an xor of octets: 0..255
    assert all(table[h] is qs[h % 4] for h in range(256))


# (not 0x8100 behind the addresses: a tag is the ``tagged`` flag's, VID 7, which the pool takes)
_ETHERTYPES = st.sampled_from([b"\x08\x00", b"\x08\x00", b"\x86\xdd", b"\x08\x06", b"\x00\x00"])


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.booleans(), _ETHERTYPES, st.sampled_from([0x45, 0x46, 0x55]),
                          st.sampled_from([6, 17, 1, 47]), st.binary(min_size=0, max_size=60)),
                min_size=1, max_size=12),
       st.sampled_from([0xB, 0xA]), st.sampled_from([0xB, 0xA]))
def test_the_fast_paths_table_picks_rss_index_for_any_frame_and_after_a_layout_change(frames, mrqc, mrqc2) -> None:
    """Every frame (short ones, IPv4 with options, other protocols and Ethertypes, tagged or
    not) lands on the queue rss_index picks, by the fast path (the second time a DA is seen)
    as by the general one; and again after the layout changes (2 queues a pool to 4 or back:
    the pool's table rebuilt)."""
    for layout in (mrqc, mrqc2):
        nic = Nic(mrqc=0xB)
        nic.set_layout(layout)
        nic.program_pool(5, mac=mac(5), vlan=7, aupe=True, strip_vlan=False)   # tagged and untagged
        qs = nic.state.pool_queues(5)
        for tagged, et, vhl, proto, body in frames:
            hdr = parse_mac(mac(5)) + parse_mac(mac(9)) + (b"\x81\x00\x00\x07" if tagged else b"")
            ip = (bytes([vhl]) + body[1:9] + bytes([proto]) + body[10:]) if body else b""
            data = hdr + et + ip
            for _ in range(2):                         # the first warms the plan cache
                f = Frame(data)
                nic.rx([f], 0)
                if len(data) < 14:
                    continue
                assert f.queue == qs[rss_index(data, len(qs))], (data.hex(), layout)
                nic.poll(f.queue, 64, 0)
        assert nic.sorter.counters["frames"] == 2 * len(frames)


def test_the_fast_path_takes_every_truncation_of_an_ipv4_udp_frame_as_rss_index_does() -> None:
    """Every length from the bare Ethernet header to past the ports, tagged and untagged: the
    fast path's bounds (no byte read beyond the frame, queue 0 where rss_index gives up)."""
    nic = Nic(mrqc=0xA)                                # 4 queues a pool
    nic.program_pool(5, mac=mac(5), vlan=7, aupe=True, strip_vlan=False)
    qs = nic.state.pool_queues(5)
    ip = bytes([0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 7, 10, 0, 1, 9]) + bytes([4, 3, 0, 80])
    for tag in (b"", b"\x81\x00\x00\x07"):
        full = parse_mac(mac(5)) + parse_mac(mac(9)) + tag + b"\x08\x00" + ip + bytes(20)
        for n in range(14 + len(tag), len(full) + 1):      # (a tag cut short: the general path's own matter)
            data = full[:n]
            for _ in range(2):                         # the second by the fast path
                f = Frame(data)
                nic.rx([f], 0)
                assert f.queue == qs[rss_index(data, len(qs))], n
                nic.poll(f.queue, 64, 0)
        assert rss_index(full, 4) != 0                 # the whole frame's hash picks another queue
