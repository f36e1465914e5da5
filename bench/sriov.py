"""Benchmark: cost per frame of the SR-IOV VF RX and TX paths with the IOMMU on, against VMDq.

Offline, no I/O.  An 82599 with ``--vfs`` VFs (63 by default: ixgbe's limit, the PF
keeps the 64th pool), each given to a guest (RAM in its own IOMMU domain, ixgbevf brought
up through the mailbox, rings in its RAM), 64-byte IPv4/UDP frames spread over the VFs.
The RX path is measured on two such NICs: guests of one vCPU (ixgbevf opens one queue and
leaves PSRTYPE.RQPL at 0, so the pool's RSS is off) and of two (two queues, RQPL 1).

RX, per frame: the NIC's sorter and ring enqueue (``Nic.rx``, as in nic-sorter) plus the
VF's DMA path (``VfDma.rx``: the descriptor fetch per batch, the buffer's translation
through the domain-tagged IOTLB, a page walk on a miss), each queue's frames right after
that queue's poll, as `VirtualFunction.receive` does.  The poll that drains the rings is
the same work in both designs and is reported apart.  The VMDq sorter path is
measured in the same run, twice: nic-sorter's own setup (MRQC 0x8, 64 pools, RSS off),
the like of the 1-vCPU guests, and the same layout SR-IOV uses (0xB with 63 VFs, 0xA with
up to 31: RSS over each pool's queues), the like of the 2-vCPU guests.

TX, per frame: the VF's DMA path (``VfDma.tx_guest``: the guest's queue choice, the
TX buffer's translation), the hand-over to its queue and the TX service
(arbitration, VMVIR, anti-spoof -- on for every VF, as ixgbe -- VEB lookup, the wire);
against the same NIC work without SR-IOV (VMDq pools with the same MACs and anti-spoof).

Measurement: every NIC is built and warmed up once; ``--repeat`` runs, each of the six
kinds in turn (the order rotated from run to run), with the garbage collector off while
one runs; each RX pass and each ``1/--rounds`` of a TX run is a sample, and a figure is
the best sample of its kind (a total the best sample's sum).

    python -m bench.sriov [--vfs 63] [--batch 64] [--frames 65536] [--rounds 4] [--repeat 3]
                          [--page-size 4096] [--iotlb 64] [--clock cpu|wall] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import nic_sorter
from nicmodel.nic import Nic
from sriov import Iommu, SriovPf
from sriov.dma import VfDma
from vswitch import compiled
from vswitch.core.frame import Frame

OUTSIDE = bytes.fromhex("02ffffff0001")
Clock = Callable[[], int]
CLOCKS: dict[str, Clock] = {"cpu": time.thread_time_ns, "wall": time.perf_counter_ns}


def vf_mac(k: int) -> bytes:
    return bytes([0x52, 0x54, 0, 0, k >> 8, k & 0xFF])


def frames_to(macs: list[bytes], n: int) -> list[Frame]:
    out = []
    src = bytes.fromhex("0200000000ff")
    for i in range(n):
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, 0, 0, 64, 17, 0,
                         bytes([10, 0, 0, i & 0xFF]), bytes([10, 0, 1, (i >> 8) & 0xFF]))
        udp = struct.pack("!HHHH", 1024 + (i & 0xFF), 80, 26, 0)
        out.append(Frame(macs[i % len(macs)] + src + b"\x08\x00" + ip + udp + bytes(18)))
    return out


def build_pf(vfs: int, page_size: int, iotlb: int, cpus: int = 1) -> SriovPf:
    """``vfs`` VFs, each given to a guest of ``cpus`` vCPUs (its ixgbevf opens min(cpus, 2)
    queues and sets the pool's RSS to them)."""
    pf = SriovPf(Nic("bench", "82599"), iommu=Iommu(page_size=page_size, iotlb_entries=iotlb))
    pf.set_numvfs(vfs)
    for vf in pf.vfs:
        vf.attach_guest(f"vm{vf.index}", ram_bytes=16 * 1024 * 1024, mac=vf_mac(vf.index), cpus=cpus)
    return pf


def rx_pass(nic: Nic, batches: list[list[Frame]], drain_every: int, queues: list[int],
            dmas: list[VfDma] | None, clock: Clock) -> dict[str, Any]:
    """One pass over ``batches`` through ``Nic.rx``, the rings drained every ``drain_every``
    batches by a poll of ``queues`` (and, for SR-IOV, the DMA of what each poll got through
    ``dmas``, the queue's VF, right after that queue's poll, as `VirtualFunction.receive`
    does it).  ``Nic.rx`` and VMDq's polls are timed in one stretch per drain cycle (the clock
    read a few times per ten thousand frames, so its own cost does not count); SR-IOV's polls
    and DMA in one stretch each per queue (two clock reads per queue's drain of ~128 frames:
    ~1 % of the DMA figure, counted against SR-IOV)."""
    rx_ns = poll_ns = dma_ns = n = delivered = 0
    for k0 in range(0, len(batches), drain_every):
        cycle = batches[k0:k0 + drain_every]
        for b in cycle:
            for f in b:                 # frames are reused: reset what the NIC annotated
                f.pool = f.queue = -1
        rx = nic.rx
        t0 = clock()
        for b in cycle:
            rx(b, 0)
        t1 = clock()
        rx_ns += t1 - t0
        poll = nic.poll
        if dmas is None:
            got = [poll(q, 4096, 0) for q in queues]
            poll_ns += clock() - t1
        else:
            # Each queue's frames DMAed straight after its poll, while they are in the cache, as
            # the product does: a DMA pass after all the polls (~16,000 frames later) found them
            # evicted and paid ~0.2 us per frame of cache misses no VF path has.
            got = []
            for q, d in zip(queues, dmas, strict=True):
                ta = clock()
                g = poll(q, 4096, 0)
                tb = clock()
                if g:
                    delivered += len(d.rx(g))
                poll_ns += tb - ta
                dma_ns += clock() - tb
                got.append(g)
        n += sum(map(len, cycle))
        if dmas is None:
            delivered += sum(map(len, got))
        if any(len(g) == 4096 for g in got):
            raise SystemExit("sriov: a ring held more than a poll takes: the setup is wrong")
    if delivered != n:
        raise SystemExit(f"sriov: {n - delivered} of {n} frames not delivered: the setup is wrong")
    return {"frames": n, "rx_us": rx_ns / n / 1000, "dma_us": dma_ns / n / 1000, "poll_us": poll_ns / n / 1000}


def rx_sriov(pf: SriovPf, frames: list[Frame], batch: int, rounds: int,
             clock: Clock = time.thread_time_ns) -> list[dict[str, Any]]:
    """The VF RX path, one sample per pass over ``frames`` (each ends with every ring drained)."""
    batches = [frames[i:i + batch] for i in range(0, len(frames), batch)]
    queues, dmas, drain_every = sriov_rx_layout(pf, batch)
    return [rx_pass(pf.nic, batches, drain_every, queues, dmas, clock) for _ in range(rounds)]


def sriov_rx_layout(pf: SriovPf, batch: int) -> tuple[list[int], list[VfDma], int]:
    """The VF RX pass's queues (the ones each VF's guest opened: its NAPI polls those), each
    one's DMA path, and the batches per drain cycle (half of what the rings hold: no ring
    fills between two drains)."""
    opened = {vf.index: vf.nic_queues[:vf.guest.driver.num_rx_queues if vf.guest else len(vf.nic_queues)]
              for vf in pf.vfs}
    queues = [q for vf in pf.vfs for q in opened[vf.index]]
    dmas = [vf.dma for vf in pf.vfs for _ in opened[vf.index]]
    room = min(pf.nic.rings.queues[q].size for q in queues)
    return queues, dmas, max(1, room * len(pf.vfs) // (2 * batch))


def vmdq_rx(nic: Nic, frames: list[Frame], batch: int, rounds: int,
            clock: Clock = time.thread_time_ns) -> list[dict[str, Any]]:
    """The VMDq sorter path as nic-sorter measures it (``Nic.rx``; the drain apart), one
    sample per pass over ``frames``."""
    batches = [frames[i:i + batch] for i in range(0, len(frames), batch)]
    queues, drain_every = vmdq_rx_layout(nic, batch)
    return [rx_pass(nic, batches, drain_every, queues, None, clock) for _ in range(rounds)]


def vmdq_rx_layout(nic: Nic, batch: int) -> tuple[list[int], int]:
    """The VMDq RX pass's queues (all of the NIC's) and the batches per drain cycle."""
    room = min(q.size for q in nic.rings.queues)
    return list(range(nic.profile.num_queues)), max(1, room * nic.state.num_pools // (2 * batch))  # as nic_sorter.run


def tx_round_ns(nframes: int, speed_bps: int, size: int = 60) -> int:
    return nframes * -(-(size + 24) * 8 * 10**9 // speed_bps) + 1000


def tx_sriov(pf: SriovPf, batch: int, frames: int, samples: int,
             clock: Clock = time.thread_time_ns) -> list[dict[str, Any]]:
    """``samples`` samples of about ``frames / samples`` frames each, after two rounds of warm-up."""
    nic = pf.nic
    vfs = pf.vfs
    per = {vf.index: [Frame(OUTSIDE + vf_mac(vf.index) + b"\x08\x00" + bytes(46)) for _ in range(batch)]
           for vf in vfs}
    per_round = batch * len(vfs)
    step = tx_round_ns(per_round, nic.state.link_speed_bps)
    rounds = max(1, frames // per_round // samples)
    t = max(nic.txa.run_ns, nic.txa.wire_free_ns)      # a later run goes on where the engine stands
    out = []
    for k in range(samples):
        dma_ns = tx_ns = svc_ns = sent = 0
        for r in range(rounds + (2 if k == 0 else 0)):
            t0 = clock()
            # as VfDma's guest input: the guest's TX queue choice (one queue here), then the DMA
            oks = [(vf.pool, b) for vf in vfs for b in vf.dma.tx_guest(per[vf.index])]
            t1 = clock()
            for pool, b in oks:
                nic.tx(pool, b, t)
            t2 = clock()
            d, h = t1 - t0, t2 - t1
            t += step
            before = nic.txa.counters["served_packets"]
            t0 = clock()
            nic.tx_service(t)
            s = clock() - t0
            served = nic.txa.counters["served_packets"] - before
            if served != per_round:
                raise SystemExit(f"sriov: {served} of {per_round} TX frames sent in a round: the setup is wrong")
            if k or r >= 2:
                dma_ns, tx_ns, svc_ns, sent = dma_ns + d, tx_ns + h, svc_ns + s, sent + served
        out.append({"frames": sent, "dma_us": dma_ns / sent / 1000, "tx_us": tx_ns / sent / 1000,
                    "service_us": svc_ns / sent / 1000})
    return out


def build_vmdq_tx(pools: int) -> Nic:
    """The same TX setup without SR-IOV: pools 0..pools-1 with the VFs' MACs and anti-spoof."""
    nic = Nic("vmdq", "82599", mrqc=0xB)
    nic.set_loopback(True)
    for p in range(pools):
        nic.program_pool(p, mac=vf_mac(p))
        nic.set_spoofcheck(p, mac=True, vlan=True)
    return nic


def tx_vmdq(nic: Nic, pools: int, batch: int, frames: int, samples: int,
            clock: Clock = time.thread_time_ns) -> list[dict[str, Any]]:
    per = {p: [Frame(OUTSIDE + vf_mac(p) + b"\x08\x00" + bytes(46)) for _ in range(batch)] for p in range(pools)}
    per_round = batch * pools
    step = tx_round_ns(per_round, nic.state.link_speed_bps)
    rounds = max(1, frames // per_round // samples)
    t = max(nic.txa.run_ns, nic.txa.wire_free_ns)
    out = []
    for k in range(samples):
        tx_ns = svc_ns = sent = 0
        for r in range(rounds + (2 if k == 0 else 0)):
            t0 = clock()
            for p in range(pools):
                nic.tx(p, per[p], t)
            t1 = clock()
            t += step
            before = nic.txa.counters["served_packets"]
            nic.tx_service(t)
            t2 = clock()
            served = nic.txa.counters["served_packets"] - before
            if served != per_round:
                raise SystemExit(f"sriov: VMDq sent {served} of {per_round} frames in a round: the setup is wrong")
            if k or r >= 2:
                tx_ns, svc_ns, sent = tx_ns + t1 - t0, svc_ns + t2 - t1, sent + served
        out.append({"frames": sent, "tx_us": tx_ns / sent / 1000, "service_us": svc_ns / sent / 1000})
    return out


def quiet(run: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``run()`` with the cyclic garbage collector off (as timeit does): a collection of the
    generation holding the frame sets (hundreds of thousands of objects) would otherwise land
    in whichever timed region happens to allocate at the time."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return run()
    finally:
        if was:
            gc.enable()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench sriov", description=__doc__.split("\n\n")[0])
    ap.add_argument("--vfs", type=int, default=63, help="VFs, each with a guest (default 63, the 82599's limit)")
    ap.add_argument("--batch", type=int, default=64, help="frames per Nic.rx call / per VF per TX round (default 64)")
    ap.add_argument("--frames", type=int, default=65536, help="frames in the RX set and per TX run (default 65536)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="samples per run: passes over the RX set, parts of the TX run (default 4)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="interleaved runs; the best sample of each kind is kept (default 3)")
    ap.add_argument("--page-size", type=int, default=4096, help="IOMMU page size: 4096, 2097152 (default 4096)")
    ap.add_argument("--iotlb", type=int, default=64, help="IOTLB entries (default 64)")
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="cpu",
                    help="cpu: the thread's CPU time (a shared machine's other work does not count), "
                         "wall: perf_counter (default cpu)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = ap.parse_args(argv)
    if not 1 <= args.vfs <= 63 or args.batch < 1 or args.frames < args.batch or args.repeat < 1:
        ap.error("need 1 <= --vfs <= 63, --batch >= 1, --frames >= --batch, --repeat >= 1")
    # Two SR-IOV NICs: guests of one vCPU (ixgbevf opens one queue: the pool's RSS is off, as
    # in nic-sorter's 0x8) and of two (two queues, RSS over both, as in VMDq 0xB).
    pf = build_pf(args.vfs, args.page_size, args.iotlb, cpus=1)
    pf2 = build_pf(args.vfs, args.page_size, args.iotlb, cpus=2)
    mrqc = pf.nic.state.layout.mrqc
    macs = [vf_mac(k) for k in range(args.vfs)]
    frames = frames_to(macs, args.frames)
    for p in (pf, pf2):
        rx_sriov(p, frames[: args.batch * 16], args.batch, 1)         # warm-up: plan cache, IOTLB
    vm_nic = build_vmdq_tx(args.vfs)
    # The VMDq NICs are built once, like the SR-IOV one, and warmed up the same way.
    vmdq = {m: nic_sorter.build("82599", m, 64, args.frames) for m in (0x8, mrqc)}
    for nic, fr in vmdq.values():
        vmdq_rx(nic, fr[: args.batch * 16], args.batch, 1)
    io = pf.iommu
    tx_batch = min(args.batch, 32)
    clock = CLOCKS[args.clock]

    def vf_rx(p: SriovPf) -> list[dict[str, Any]]:
        p.iommu.counters.update(dict.fromkeys(p.iommu.counters, 0))
        out = rx_sriov(p, frames, args.batch, args.rounds, clock)
        out[-1]["iotlb"] = p.iommu.snapshot()
        return out

    def vf_tx() -> list[dict[str, Any]]:
        io.counters.update(dict.fromkeys(io.counters, 0))
        out = tx_sriov(pf, tx_batch, args.frames, args.rounds, clock)
        out[-1]["iotlb"] = io.snapshot()
        return out

    kinds: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "base": lambda: vmdq_rx(vmdq[0x8][0], vmdq[0x8][1], args.batch, args.rounds, clock),
        "vf_rx": lambda: vf_rx(pf),
        "same": lambda: vmdq_rx(vmdq[mrqc][0], vmdq[mrqc][1], args.batch, args.rounds, clock),
        "vf_rx2": lambda: vf_rx(pf2),
        "vf_tx": vf_tx,
        "vm_tx": lambda: tx_vmdq(vm_nic, args.vfs, tx_batch, args.frames, args.rounds, clock),
    }
    order = list(kinds)
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in order}
    # Interleaved, so every figure sees the same machine, and rotated, so none always runs first
    # or after the same neighbour; every pass (RX) or 1/--rounds of the TX frames (TX) is a
    # sample, and the best sample of each kind is kept: on a shared machine the short samples
    # are the ones least often preempted.
    for r in range(args.repeat):
        for kind in order[r % len(order):] + order[:r % len(order)]:
            runs[kind].extend(quiet(kinds[kind]))

    def best(kind: str, key: str) -> float:
        return min(r[key] for r in runs[kind])

    def total(r: dict[str, float], keys: tuple[str, ...]) -> float:
        return sum(r[k] for k in keys)
    base, same = best("base", "rx_us"), best("same", "rx_us")
    rx_total = min(total(r, ("rx_us", "dma_us")) for r in runs["vf_rx"])
    rx2_total = min(total(r, ("rx_us", "dma_us")) for r in runs["vf_rx2"])
    tx_total = min(total(r, ("dma_us", "tx_us", "service_us")) for r in runs["vf_tx"])
    vm_total = min(total(r, ("tx_us", "service_us")) for r in runs["vm_tx"])
    tx_hits = runs["vf_tx"][-1]["iotlb"]
    lay = pf.nic.state.layout
    print(f"sriov: 82599, {args.vfs} VFs (MRQC {mrqc:#x}: {lay.pools} pools x {lay.queues_per_pool}), IOMMU "
          f"{args.page_size // 1024} KiB pages, {args.iotlb}-entry IOTLB, batch {args.batch} (TX {tx_batch}), "
          f"{runs['vf_rx'][0]['frames']} RX frames of 60 B per sample, best of {args.repeat} x {args.rounds} "
          f"samples in rotated interleaved runs (GC off, {args.clock} clock), "
          f"dataplane {compiled.status()}")
    print(f"VMDq sorter path (nic-sorter: MRQC 0x8, 64 pools): {base:.3f} us/frame "
          f"(poll apart {best('base', 'poll_us'):.3f})")
    print(f"VMDq sorter path, SR-IOV's layout (MRQC {mrqc:#x}):    {same:.3f} us/frame "
          f"(poll apart {best('same', 'poll_us'):.3f})")
    for kind, tot, what, ref, ref_name in (
            ("vf_rx", rx_total, "1-vCPU guests: one queue each, RSS off", base, "the VMDq sorter path (0x8)"),
            ("vf_rx2", rx2_total, "2-vCPU guests: two queues each, RSS", same,
             f"the VMDq sorter path in the same layout ({mrqc:#x})")):
        hits = runs[kind][-1]["iotlb"]
        print(f"VF RX path, {what}: sorter + ring {best(kind, 'rx_us'):.3f} + DMA/IOMMU "
              f"{best(kind, 'dma_us'):.3f}, together {tot:.3f} us/frame (poll apart {best(kind, 'poll_us'):.3f}): "
              f"{tot / ref:.2f}x {ref_name}")
        print(f"  IOTLB: hit rate {hits['iotlb_hit_rate']:.3f}, "
              f"{hits['page_walks'] / (runs[kind][-1]['frames'] * args.rounds):.2f} page walks/frame")
    print(f"VF TX path: DMA/IOMMU {best('vf_tx', 'dma_us'):.3f} + hand-over {best('vf_tx', 'tx_us'):.3f} + "
          f"TX service {best('vf_tx', 'service_us'):.3f}, together {tx_total:.3f} us/frame; VMDq TX (same "
          f"pools, anti-spoof, VEB): {vm_total:.3f} us/frame: {tx_total / vm_total:.2f}x")
    print(f"  IOTLB: hit rate {tx_hits['iotlb_hit_rate']:.3f}")
    result: dict[str, Any] = {
        "benchmark": "sriov", "dataplane": compiled.status(),
        "settings": {"vfs": args.vfs, "mrqc": mrqc, "batch": args.batch, "frames": args.frames,
                     "rounds": args.rounds, "repeat": args.repeat, "page_size": args.page_size, "clock": args.clock,
                     "iotlb_entries": args.iotlb},
        "vmdq_sorter_us": base, "vmdq_sorter_same_layout_us": same,
        "vf_rx_us": rx_total, "vf_rx_ratio": rx_total / base,
        "vf_rx2_us": rx2_total, "vf_rx2_ratio_same_layout": rx2_total / same, "vf_rx2_ratio": rx2_total / base,
        "vf_tx_us": tx_total, "vmdq_tx_us": vm_total, "vf_tx_ratio_vmdq_tx": tx_total / vm_total,
        "runs": runs,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
