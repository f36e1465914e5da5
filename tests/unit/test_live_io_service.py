"""The live driver's `IoLoop.service`: what the graph has ready and what fell due, at the time it runs."""

from __future__ import annotations

from typing import Any

from vswitch.core import Frame, Graph
from vswitch.core.frame import parse_mac
from vswitch.drivers.live_io import IoLoop
from vswitch.topology import build_dataplane, parse_topology

G1, G2 = "02:00:00:01:00:01", "02:00:00:01:00:02"


def vmdq() -> tuple[Any, dict[str, list[tuple[int, int]]]]:
    topo = parse_topology({"nic": {"mode": "vmdq", "uplink": "up"},
                           "port": [{"name": "up", "type": "replay"},
                                    {"name": "g1", "type": "replay", "mac": G1},
                                    {"name": "g2", "type": "replay", "mac": G2}]})
    dp = build_dataplane(topo, Graph())
    writes: dict[str, list[tuple[int, int]]] = {n: [] for n in dp.numbers}
    for number, port in dp.graph.ports.items():
        dp.graph.set_transmit(number, lambda b, now, name=port.name: writes[name].append((now, len(b))))
    return dp, writes


def test_veb_frames_paced_at_wire_speed_reach_the_guest_in_one_batch_when_the_loop_comes_late():
    # g1 hands its pool 64 frames for g2 at t0: VEB loopback paces them at the wire's speed
    # (67.2 ns a 64-byte frame), so all but the first are due after t0.  The loop's timer comes
    # 10 us later: by then every one has been sent, and they reach g2's ring, and g2, together.
    # Before, each frame's deadline fired at its own time and g2 got 63 writes of one frame.
    dp, writes = vmdq()
    g = dp.graph
    io = IoLoop(g, {}, clock=lambda: 0, timer=lambda: 0, gone=lambda lp, e: None)
    t0 = 1_000_000
    frame = parse_mac(G2) + parse_mac(G1) + b"\x88\xb5" + bytes(46)
    g.push(dp.numbers["g1"], [Frame(frame, t0, dp.numbers["g1"]) for _ in range(64)], t0)
    io.service(t0)
    assert sum(n for _, n in writes["g2"]) == 1          # the first frame started at once
    assert t0 < g.next_deadline_ns() < t0 + 100       # the next one 67 ns later
    io.service(t0 + 10_000)
    assert writes["g2"][1:] == [(t0 + 10_000, 63)]
    assert g.next_deadline_ns() is None and not g.has_ready()
    assert writes["up"] == [] and writes["g1"] == []


def test_service_fires_what_fell_due_and_leaves_the_future_for_the_timer():
    # Interrupt moderation (rx-usecs 50): a frame from the wire waits for its timer; a service
    # before it changes nothing, one after it delivers the frame.
    topo = parse_topology({"nic": {"mode": "vmdq", "uplink": "up", "rx_usecs": 50},
                           "port": [{"name": "up", "type": "replay"}, {"name": "g1", "type": "replay", "mac": G1}]})
    dp = build_dataplane(topo, Graph())
    got: list[int] = []
    for number in dp.graph.ports:
        dp.graph.set_transmit(number, lambda b, now: got.extend(now for _ in b))
    io = IoLoop(dp.graph, {}, clock=lambda: 0, timer=lambda: 0, gone=lambda lp, e: None)
    frame = parse_mac(G1) + parse_mac("02:00:00:00:00:99") + b"\x88\xb5" + bytes(46)
    dp.graph.push(dp.numbers["up"], [Frame(frame, 0, dp.numbers["up"])], 0)
    io.service(0)
    io.service(49_999)
    assert got == [] and dp.graph.next_deadline_ns() == 50_000
    io.service(70_000)
    assert got == [70_000]


def test_the_timers_graph_work_is_counted_apart_from_every_port():
    # A frame held by interrupt moderation is delivered by the loop's timer, which no port's
    # wake-up caused: its time (and the write it caused) is the loop's timer_ns, not a port's.
    topo = parse_topology({"nic": {"mode": "vmdq", "uplink": "up", "rx_usecs": 50},
                           "port": [{"name": "up", "type": "replay"}, {"name": "g1", "type": "replay", "mac": G1}]})
    dp = build_dataplane(topo, Graph())
    ticks = iter(range(0, 10**9, 1000))                  # the perf timer: 1 us a reading
    io = IoLoop(dp.graph, {}, clock=lambda: 70_000, timer=lambda: next(ticks), gone=lambda lp, e: None)
    got: list[int] = []
    for number in dp.graph.ports:
        send = io.transmit(type("P", (), {"dev": None, "number": number})())  # type: ignore[arg-type]
        dp.graph.set_transmit(number, lambda b, now, send=send: (got.extend(now for _ in b), send(b, now))[1])
    frame = parse_mac(G1) + parse_mac("02:00:00:00:00:99") + b"\x88\xb5" + bytes(46)
    dp.graph.push(dp.numbers["up"], [Frame(frame, 0, dp.numbers["up"])], 0)
    io.service(0)
    assert got == [] and io.timer_wakeups == 0
    io._on_timer()
    assert got == [70_000]
    assert io.timer_wakeups == 1 and io.timer_tx_ns == 1000 and io.timer_ns == 3000
