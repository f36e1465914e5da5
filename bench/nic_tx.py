"""Benchmark: cost per frame of the NIC model's TX service.

Offline, no I/O: an 82599 with ``--pools`` pools configured (each programmed
with its own MAC), ``--active`` of them sending.  Each round every active pool
hands ``--batch`` frames to its TX queue (``Nic.tx``, timed apart), then
``Nic.tx_service`` runs the TX side far enough in model time that every frame
is sent; only ``tx_service`` is timed: arbitration, rate limiters, VMVIR,
anti-spoof, VEB loopback and the wire.  The default is the issue's setup:
credits (wrr), anti-spoof and VEB on, 500 Mb/s per pool, 64 pools configured,
and it sweeps the number of active pools (issue 10 item 1: the cost must not
grow with the pools configured).

    python -m bench.nic_tx [--active 1,8,63] [--pools 64] [--arbitration wrr|rr]
                           [--rate-mbps 500] [--no-spoofcheck] [--no-veb] [--local]
                           [--batch 32] [--frames 65536] [--size 60]
                           [--clock cpu|wall] [--repeat 1]

``--clock cpu`` (the default) times on the thread's CPU clock, so another process's time
slice on a shared machine does not count; ``--repeat N`` runs each ``--active`` value N
times, interleaved, and reports the best (and the worst).
"""

from __future__ import annotations

import argparse
import time

from nicmodel.nic import Nic
from nicmodel.tx_arbiter import WIRE_OVERHEAD
from vswitch.core.frame import Frame

OUTSIDE = bytes.fromhex("02ffffff0001")


def mac(p: int) -> bytes:
    return bytes([2, 0, 0, 0, p >> 8, p & 0xFF])


def build(args: argparse.Namespace, active: int) -> tuple[Nic, list[int]]:
    nic = Nic("bench", "82599", tx_arbitration=args.arbitration)
    nic.set_rings(tx=4096)
    pools = list(range(1, args.pools)) if args.pools > 1 else [0]
    for p in range(nic.state.num_pools):
        if p < args.pools:
            nic.program_pool(p, mac=mac(p))
        else:
            nic.set_pool_enabled(p, rx=False, tx=False)
    senders = pools[:active]
    nic.set_loopback(args.veb)
    for p in senders:
        if args.spoofcheck:
            nic.set_spoofcheck(p, mac=True)
        if args.rate_mbps:
            nic.set_pool_tx_rate(p, args.rate_mbps)
        nic.set_tx_weight(p, 1 + p % 8 * 20)
    return nic, senders


def frames_for(p: int, senders: list[int], n: int, size: int, local: bool) -> list[Frame]:
    """n frames from pool p: to a MAC outside, or (``local``) every other one to the next sender."""
    out = []
    peer = mac(senders[(senders.index(p) + 1) % len(senders)])
    hdr = b"\x08\x00" + bytes(size - 14)
    for i in range(n):
        dst = peer if local and i % 2 else OUTSIDE
        out.append(Frame(dst + mac(p) + hdr))
    return out


def run(args: argparse.Namespace, active: int) -> tuple[int, int, int]:
    """Returns (frames sent, ns in tx_service, ns in tx)."""
    nic, senders = build(args, active)
    clock = time.thread_time_ns if args.clock == "cpu" else time.perf_counter_ns
    bits = (args.size + WIRE_OVERHEAD) * 8
    per_round = len(senders) * args.batch
    speed = nic.state.link_speed_bps
    # model time per round: the wire for everything, or one pool's batch at its rate
    round_ns = per_round * -(-bits * 10**9 // speed)   # the wire rounds each frame up to a ns
    if args.rate_mbps:
        round_ns = max(round_ns, -(-args.batch * bits * 10**9 // (args.rate_mbps * 10**6)))
    round_ns += 1_000
    batches = {p: frames_for(p, senders, args.batch, args.size, args.local) for p in senders}
    t = 0
    sent = svc_ns = tx_ns = 0
    rounds = max(1, args.frames // per_round)
    nq = nic.profile.num_queues
    for r in range(rounds + 2):
        timed = r >= 2   # two warm-up rounds
        t0 = clock()
        for p in senders:
            nic.tx(p, batches[p], t)
        t1 = clock()
        t += round_ns
        before = nic.txa.counters["served_packets"]
        nic.tx_service(t)
        t2 = clock()
        served = nic.txa.counters["served_packets"] - before
        if served != per_round:
            raise SystemExit(f"nic-tx: {served} of {per_round} frames sent in a round: the setup is wrong")
        if args.local:
            for q in range(nq):
                while len(nic.poll(q, 4096, t)) == 4096:
                    pass
        if timed:
            tx_ns += t1 - t0
            svc_ns += t2 - t1
            sent += served
    lost = sum(nic.snapshot()["drops"].values())
    if lost:
        raise SystemExit(f"nic-tx: {lost} frames dropped: the benchmark setup is wrong")
    return sent, svc_ns, tx_ns


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench nic-tx", description=__doc__.split("\n\n")[0])
    ap.add_argument("--active", default="1,8,63",
                    help="comma-separated numbers of sending pools (default 1,8,63; at most --pools - 1)")
    ap.add_argument("--pools", type=int, default=64, help="pools configured, of the 82599's 64 (default 64)")
    ap.add_argument("--arbitration", choices=("rr", "wrr"), default="wrr",
                    help="TX arbitration between pools: round robin or credits (default wrr)")
    ap.add_argument("--rate-mbps", type=int, default=500,
                    help="TX rate limit of each sending pool in Mb/s, 0 for none (default 500)")
    ap.add_argument("--no-spoofcheck", dest="spoofcheck", action="store_false",
                    help="MAC anti-spoof off on the sending pools (on by default)")
    ap.add_argument("--no-veb", dest="veb", action="store_false", help="VEB loopback off (on by default)")
    ap.add_argument("--local", action="store_true", help="every other frame to another guest (VEB loopback)")
    ap.add_argument("--batch", type=int, default=32,
                    help="frames each sending pool hands over per round (default 32)")
    ap.add_argument("--frames", type=int, default=65536, help="frames timed per --active value (default 65536)")
    ap.add_argument("--size", type=int, default=60, help="frame size without FCS (default 60)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu: the thread's CPU time (default; a shared machine's other processes do not "
                         "count), wall: perf_counter")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each --active value, interleaved; the best is reported (default 1)")
    args = ap.parse_args(argv)
    actives = [int(a) for a in args.active.split(",")]
    if not 1 <= args.pools <= 64 or any(not 1 <= a <= max(1, args.pools - 1) for a in actives) or args.size < 14:
        ap.error("need 1 <= --pools <= 64, 1 <= --active < --pools, --size >= 14")
    if args.repeat < 1:
        ap.error("need --repeat >= 1")
    print(f"nic-tx: 82599, {args.pools} pools configured, {args.arbitration}, "
          f"rate {args.rate_mbps or 'none'} Mb/s, spoofcheck {'on' if args.spoofcheck else 'off'}, "
          f"VEB {'on' if args.veb else 'off'}{' (half local)' if args.local else ''}, "
          f"batch {args.batch}, {args.size} B frames, {args.clock} clock"
          f"{f', best of {args.repeat}' if args.repeat > 1 else ''}")
    runs: dict[int, list[tuple[float, float, int]]] = {a: [] for a in actives}
    for _ in range(args.repeat):
        for a in actives:
            n, svc_ns, tx_ns = run(args, a)
            runs[a].append((svc_ns / n, tx_ns / n, n))
    for a in actives:
        svc, tx, n = min(runs[a])
        worst = f" (worst {max(runs[a])[0] / 1000:.3f})" if args.repeat > 1 else ""
        print(f"{a:3d} active: tx_service {svc / 1000:.3f} us/frame{worst} ({1e9 / svc:,.0f} frames/s), "
              f"tx (hand-over, apart) {tx / 1000:.3f} us/frame, {n} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
