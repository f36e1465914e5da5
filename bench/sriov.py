"""Benchmark: cost per frame of the SR-IOV VF RX and TX paths with the IOMMU on, against VMDq.

Offline, no I/O.  An 82599 with ``--vfs`` VFs (63 by default: ixgbe's limit, the PF
keeps the 64th pool), each given to a guest (RAM in its own IOMMU domain, ixgbevf brought
up through the mailbox, rings in its RAM), 64-byte IPv4/UDP frames spread over the VFs.

RX, per frame: the NIC's sorter and ring enqueue (``Nic.rx``, as in nic-sorter) plus the
VF's DMA path (``VfDma.rx``: the descriptor fetch per batch, the buffer's translation
through the domain-tagged IOTLB, a page walk on a miss).  The poll that drains the rings
is the same work in both designs and is reported apart.  The VMDq sorter path is
measured in the same run, twice: nic-sorter's own setup (MRQC 0x8, 64 pools, RSS off)
and the same layout SR-IOV uses (0xB with 63 VFs, 0xA with up to 31: RSS on).

TX, per frame: the VF's DMA path (``VfDma.tx``: the TX buffer's translation), the
hand-over to its queue and the TX service (arbitration, VMVIR, anti-spoof -- on for
every VF, as ixgbe -- VEB lookup, the wire); against the same NIC work without SR-IOV
(VMDq pools with the same MACs and anti-spoof).

    python -m bench.sriov [--vfs 63] [--batch 64] [--frames 65536] [--rounds 4] [--repeat 3]
                          [--page-size 4096] [--iotlb 64] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import struct
import time
from pathlib import Path
from typing import Any

from bench import nic_sorter
from nicmodel.nic import Nic
from sriov import Iommu, SriovPf
from vswitch import compiled
from vswitch.core.frame import Frame

OUTSIDE = bytes.fromhex("02ffffff0001")
clock = time.perf_counter_ns


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


def build_pf(vfs: int, page_size: int, iotlb: int) -> SriovPf:
    pf = SriovPf(Nic("bench", "82599"), iommu=Iommu(page_size=page_size, iotlb_entries=iotlb))
    pf.set_numvfs(vfs)
    for vf in pf.vfs:
        vf.attach_guest(f"vm{vf.index}", ram_bytes=16 * 1024 * 1024, mac=vf_mac(vf.index))
    return pf


def rx_sriov(pf: SriovPf, frames: list[Frame], batch: int, rounds: int) -> dict[str, float]:
    nic = pf.nic
    batches = [frames[i:i + batch] for i in range(0, len(frames), batch)]
    room = min(nic.rings.queues[q].size for vf in pf.vfs for q in vf.nic_queues)
    drain_every = max(1, room * len(pf.vfs) // (2 * batch))
    rx_ns = poll_ns = dma_ns = n = delivered = 0
    for _ in range(rounds):
        for k, b in enumerate(batches):
            for f in b:
                f.pool = f.queue = -1
            t0 = clock()
            nic.rx(b, 0)
            rx_ns += clock() - t0
            n += len(b)
            if (k + 1) % drain_every == 0 or k == len(batches) - 1:
                for vf in pf.vfs:
                    dma = vf.dma
                    for q in vf.nic_queues:
                        t0 = clock()
                        got = nic.poll(q, 4096, 0)
                        t1 = clock()
                        if got:
                            delivered += len(dma.rx(got))
                        t2 = clock()
                        poll_ns += t1 - t0
                        dma_ns += t2 - t1
    if delivered != n:
        raise SystemExit(f"sriov: {n - delivered} of {n} frames not delivered: the setup is wrong")
    return {"frames": n, "rx_us": rx_ns / n / 1000, "dma_us": dma_ns / n / 1000, "poll_us": poll_ns / n / 1000}


def tx_round_ns(nframes: int, speed_bps: int, size: int = 60) -> int:
    return nframes * -(-(size + 24) * 8 * 10**9 // speed_bps) + 1000


def tx_sriov(pf: SriovPf, batch: int, frames: int) -> dict[str, float]:
    nic = pf.nic
    vfs = pf.vfs
    per = {vf.index: [Frame(OUTSIDE + vf_mac(vf.index) + b"\x08\x00" + bytes(46)) for _ in range(batch)]
           for vf in vfs}
    per_round = batch * len(vfs)
    step = tx_round_ns(per_round, nic.state.link_speed_bps)
    rounds = max(1, frames // per_round)
    t = max(nic.txa.run_ns, nic.txa.wire_free_ns)      # a later run goes on where the engine stands
    dma_ns = tx_ns = svc_ns = sent = 0
    for r in range(rounds + 2):
        d = h = 0
        for vf in vfs:
            t0 = clock()
            ok = vf.dma.tx(per[vf.index])
            t1 = clock()
            nic.tx(vf.pool, ok, t)
            t2 = clock()
            d += t1 - t0
            h += t2 - t1
        t += step
        before = nic.txa.counters["served_packets"]
        t0 = clock()
        nic.tx_service(t)
        s = clock() - t0
        served = nic.txa.counters["served_packets"] - before
        if served != per_round:
            raise SystemExit(f"sriov: {served} of {per_round} TX frames sent in a round: the setup is wrong")
        if r >= 2:
            dma_ns, tx_ns, svc_ns, sent = dma_ns + d, tx_ns + h, svc_ns + s, sent + served
    return {"frames": sent, "dma_us": dma_ns / sent / 1000, "tx_us": tx_ns / sent / 1000,
            "service_us": svc_ns / sent / 1000}


def build_vmdq_tx(pools: int) -> Nic:
    """The same TX setup without SR-IOV: pools 0..pools-1 with the VFs' MACs and anti-spoof."""
    nic = Nic("vmdq", "82599", mrqc=0xB)
    nic.set_loopback(True)
    for p in range(pools):
        nic.program_pool(p, mac=vf_mac(p))
        nic.set_spoofcheck(p, mac=True, vlan=True)
    return nic


def tx_vmdq(nic: Nic, pools: int, batch: int, frames: int) -> dict[str, float]:
    per = {p: [Frame(OUTSIDE + vf_mac(p) + b"\x08\x00" + bytes(46)) for _ in range(batch)] for p in range(pools)}
    per_round = batch * pools
    step = tx_round_ns(per_round, nic.state.link_speed_bps)
    rounds = max(1, frames // per_round)
    t = max(nic.txa.run_ns, nic.txa.wire_free_ns)
    tx_ns = svc_ns = sent = 0
    for r in range(rounds + 2):
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
        if r >= 2:
            tx_ns, svc_ns, sent = tx_ns + t1 - t0, svc_ns + t2 - t1, sent + served
    return {"frames": sent, "tx_us": tx_ns / sent / 1000, "service_us": svc_ns / sent / 1000}


def vmdq_rx(mrqc: int, pools: int, nframes: int, batch: int, rounds: int) -> dict[str, float]:
    nic, frames = nic_sorter.build("82599", mrqc, pools, nframes)
    nic_sorter.run(nic, frames[: batch * 16], batch, 1)
    n, rx_ns, poll_ns = nic_sorter.run(nic, frames, batch, rounds)
    return {"frames": n, "rx_us": rx_ns / n / 1000, "poll_us": poll_ns / n / 1000}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench sriov", description=__doc__.split("\n\n")[0])
    ap.add_argument("--vfs", type=int, default=63, help="VFs, each with a guest (default 63, the 82599's limit)")
    ap.add_argument("--batch", type=int, default=64, help="frames per Nic.rx call / per VF per TX round (default 64)")
    ap.add_argument("--frames", type=int, default=65536, help="frames in the RX set and per TX run (default 65536)")
    ap.add_argument("--rounds", type=int, default=4, help="passes over the RX set per run (default 4)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs; the best of each is kept (default 3)")
    ap.add_argument("--page-size", type=int, default=4096, help="IOMMU page size: 4096, 2097152 (default 4096)")
    ap.add_argument("--iotlb", type=int, default=64, help="IOTLB entries (default 64)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = ap.parse_args(argv)
    if not 1 <= args.vfs <= 63 or args.batch < 1 or args.frames < args.batch or args.repeat < 1:
        ap.error("need 1 <= --vfs <= 63, --batch >= 1, --frames >= --batch, --repeat >= 1")
    pf = build_pf(args.vfs, args.page_size, args.iotlb)
    mrqc = pf.nic.state.layout.mrqc
    macs = [vf_mac(k) for k in range(args.vfs)]
    frames = frames_to(macs, args.frames)
    rx_sriov(pf, frames[: args.batch * 16], args.batch, 1)              # warm-up: plan cache, IOTLB
    vm_nic = build_vmdq_tx(args.vfs)
    io = pf.iommu
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "vf_rx": [], "same": [], "vf_tx": [], "vm_tx": []}
    tx_batch = min(args.batch, 32)
    for _ in range(args.repeat):    # interleaved, so every figure sees the same machine; best of each kept
        runs["base"].append(vmdq_rx(0x8, 64, args.frames, args.batch, args.rounds))
        io.counters.update(dict.fromkeys(io.counters, 0))
        runs["vf_rx"].append(rx_sriov(pf, frames, args.batch, args.rounds) | {"iotlb": io.snapshot()})
        runs["same"].append(vmdq_rx(mrqc, 64, args.frames, args.batch, args.rounds))
        io.counters.update(dict.fromkeys(io.counters, 0))
        runs["vf_tx"].append(tx_sriov(pf, tx_batch, args.frames) | {"iotlb": io.snapshot()})
        runs["vm_tx"].append(tx_vmdq(vm_nic, args.vfs, tx_batch, args.frames))

    def best(kind: str, key: str) -> float:
        return min(r[key] for r in runs[kind])

    def total(r: dict[str, float], keys: tuple[str, ...]) -> float:
        return sum(r[k] for k in keys)
    base, same = best("base", "rx_us"), best("same", "rx_us")
    rx_total = min(total(r, ("rx_us", "dma_us")) for r in runs["vf_rx"])
    tx_total = min(total(r, ("dma_us", "tx_us", "service_us")) for r in runs["vf_tx"])
    vm_total = min(total(r, ("tx_us", "service_us")) for r in runs["vm_tx"])
    rx_hits = runs["vf_rx"][-1]["iotlb"]
    tx_hits = runs["vf_tx"][-1]["iotlb"]
    lay = pf.nic.state.layout
    print(f"sriov: 82599, {args.vfs} VFs (MRQC {mrqc:#x}: {lay.pools} pools x {lay.queues_per_pool}), IOMMU "
          f"{args.page_size // 1024} KiB pages, {args.iotlb}-entry IOTLB, batch {args.batch} (TX {tx_batch}), "
          f"{runs['vf_rx'][0]['frames']} RX frames of 60 B per run, best of {args.repeat} interleaved runs, "
          f"dataplane {compiled.status()}")
    print(f"VMDq sorter path (nic-sorter: MRQC 0x8, 64 pools): {base:.3f} us/frame "
          f"(poll apart {best('base', 'poll_us'):.3f})")
    print(f"VMDq sorter path, SR-IOV's layout (MRQC {mrqc:#x}):    {same:.3f} us/frame "
          f"(poll apart {best('same', 'poll_us'):.3f})")
    print(f"VF RX path: sorter + ring {best('vf_rx', 'rx_us'):.3f} + DMA/IOMMU {best('vf_rx', 'dma_us'):.3f}, "
          f"together {rx_total:.3f} us/frame (poll apart {best('vf_rx', 'poll_us'):.3f}): "
          f"{rx_total / base:.2f}x the VMDq sorter path, {rx_total / same:.2f}x in the same layout")
    print(f"  IOTLB: hit rate {rx_hits['iotlb_hit_rate']:.3f}, "
          f"{rx_hits['page_walks'] / runs['vf_rx'][-1]['frames']:.2f} page walks/frame")
    print(f"VF TX path: DMA/IOMMU {best('vf_tx', 'dma_us'):.3f} + hand-over {best('vf_tx', 'tx_us'):.3f} + "
          f"TX service {best('vf_tx', 'service_us'):.3f}, together {tx_total:.3f} us/frame; VMDq TX (same "
          f"pools, anti-spoof, VEB): {vm_total:.3f} us/frame: {tx_total / vm_total:.2f}x")
    print(f"  IOTLB: hit rate {tx_hits['iotlb_hit_rate']:.3f}")
    result: dict[str, Any] = {
        "benchmark": "sriov", "dataplane": compiled.status(),
        "settings": {"vfs": args.vfs, "mrqc": mrqc, "batch": args.batch, "frames": args.frames,
                     "rounds": args.rounds, "repeat": args.repeat, "page_size": args.page_size,
                     "iotlb_entries": args.iotlb},
        "vmdq_sorter_us": base, "vmdq_sorter_same_layout_us": same,
        "vf_rx_us": rx_total, "vf_rx_ratio": rx_total / base, "vf_rx_ratio_same_layout": rx_total / same,
        "vf_tx_us": tx_total, "vmdq_tx_us": vm_total, "vf_tx_ratio_vmdq_tx": tx_total / vm_total,
        "runs": runs,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
