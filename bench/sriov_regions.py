"""Instructions per frame of one region of `bench.sriov`'s RX pass or TX run, counted by callgrind.

The timed figures of ``vswitch-bench sriov`` move 1.5-2x with this VM's spells; the
instruction count of a region does not.  This runs the RX pass or the TX rounds of
bench/sriov.py (the same NICs, frames, batches, drain cycles and TX rounds) and turns
callgrind's collection on only around one region:

    rx       ``Nic.rx`` (the sorter and ring enqueue; in the VF case the VF layout's sorter)
    poll     the NAPI polls that drain the rings
    dma      the VF DMA/IOMMU path (``VfDma.rx``; ``vf`` only)
    txdma    the VF TX DMA/IOMMU path (``VfDma.tx_guest``; ``vf`` only)
    tx       the TX hand-over to the pools' queues (``Nic.tx``; ``vf`` and ``vmdq``)
    service  the TX service (``Nic.tx_service``; ``vf`` and ``vmdq``)

of one kind: ``base`` (nic-sorter's VMDq NIC, MRQC 0x8), ``same`` (the same in SR-IOV's
layout, 0xB), ``vf`` (63 VFs with 1-vCPU guests, one queue each, the IOMMU on), ``vf2``
(the same with 2-vCPU guests: two queues each, RSS; RX regions only) or ``vmdq`` (bench.sriov's VMDq
TX NIC: 63 pools with the VFs' MACs and anti-spoof).  Set-up and warm-up cancel out of
the difference of two runs of different lengths (a TX pass: ``--frames`` rounded down
to whole rounds of ``--tx-batch`` frames per pool):

    valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file=/dev/null \\
        python -m bench.sriov_regions vf dma --passes 2     # and --passes 1
    instructions per frame = (Collected of 2 passes - Collected of 1) / frames a pass (printed)

(``PYTHONHASHSEED=0`` for a run-to-run identical count; ``VSWITCH_PURE=1`` for the interpreted
dataplane, as `vswitch-bench` chooses it.)  The switch is a two-line C
helper calling ``CALLGRIND_TOGGLE_COLLECT``, built with the C compiler from valgrind's
``callgrind.h`` into a temporary directory; without them (or outside valgrind) the
region markers are no-ops and the script only runs the passes.
"""

from __future__ import annotations

if __name__ == "__main__":          # run as a program: choose the dataplane build before importing it
    from vswitch import compiled as _compiled
    _compiled.install()

import argparse
import ctypes
import gc
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import nic_sorter
from bench import sriov as S
from vswitch import compiled

_RX = ("rx", "poll", "dma")
_TX = ("txdma", "tx", "service")
_HELPER = "#include <valgrind/callgrind.h>\nvoid cg_toggle(void) { CALLGRIND_TOGGLE_COLLECT; }\n"


def toggle() -> Callable[[], Any] | None:
    """callgrind's collection switch, or None where the helper cannot be built."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not Path("/usr/include/valgrind/callgrind.h").exists():
        return None
    tmp = Path(tempfile.mkdtemp(prefix="vsw-cgt-"))
    try:
        (tmp / "cgt.c").write_text(_HELPER)
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp / "cgt.so"), str(tmp / "cgt.c")],
                       check=True, capture_output=True)
        return ctypes.CDLL(str(tmp / "cgt.so")).cg_toggle
    except (OSError, subprocess.CalledProcessError):
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)      # the loaded library stays mapped


def _off() -> None:
    return None


def measure(marks: dict[str, Callable[[], Any]], region: str) -> None:
    """``marks[region]`` becomes callgrind's collection switch (or stays a no-op, said once,
    where the helper cannot be built)."""
    sw = toggle()
    if sw is None:
        print("sriov_regions: no callgrind helper (needs a C compiler and valgrind's callgrind.h): "
              "the passes run unmeasured")
    else:
        marks[region] = sw


def rx_pass(nic: Any, batches: list, drain_every: int, queues: list[int], dmas: list | None,
            marks: dict[str, Callable[[], Any]]) -> int:
    """bench.sriov.rx_pass without the clock, ``marks[region]`` called on entering and leaving
    each stretch of that region.  Returns the frames delivered."""
    rx_on, poll_on, dma_on = marks["rx"], marks["poll"], marks["dma"]
    delivered = 0
    for k0 in range(0, len(batches), drain_every):
        cycle = batches[k0:k0 + drain_every]
        for b in cycle:
            for f in b:
                f.pool = f.queue = -1
        rx = nic.rx
        rx_on()
        for b in cycle:
            rx(b, 0)
        rx_on()
        poll = nic.poll
        if dmas is None:
            poll_on()
            got = [poll(q, 4096, 0) for q in queues]
            poll_on()
            delivered += sum(map(len, got))
        else:
            for q, d in zip(queues, dmas, strict=True):
                poll_on()
                g = poll(q, 4096, 0)
                poll_on()
                dma_on()
                if g:
                    delivered += len(d.rx(g))
                dma_on()
    return delivered


def tx_pass(nic: Any, per: dict[int, list], pools: list[int], dmas: list | None, rounds: int,
            t: int, step: int, marks: dict[str, Callable[[], Any]]) -> tuple[int, int]:
    """bench.sriov.tx_sriov's rounds (``dmas``: each pool's VF DMA path) or tx_vmdq's (None)
    without the clock, ``marks[region]`` around each round's stretch of that region.
    Returns the TX engine's time after the rounds and the frames served."""
    txdma_on, tx_on, svc_on = marks["txdma"], marks["tx"], marks["service"]
    per_round = sum(len(per[p]) for p in pools)
    served = 0
    for _ in range(rounds):
        if dmas is None:
            oks = [(p, per[p]) for p in pools]
        else:
            txdma_on()
            oks = [(p, ok) for p, d in zip(pools, dmas, strict=True) for ok in d.tx_guest(per[p])]
            txdma_on()
        tx = nic.tx
        tx_on()
        for p, ok in oks:
            tx(p, ok, t)
        tx_on()
        t += step
        before = nic.txa.counters["served_packets"]
        svc_on()
        nic.tx_service(t)
        svc_on()
        got = nic.txa.counters["served_packets"] - before
        if got != per_round:
            raise SystemExit(f"sriov_regions: {got} of {per_round} TX frames sent in a round")
        served += got
    return t, served


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sriov_regions", description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=("base", "same", "vf", "vf2", "vmdq"))
    ap.add_argument("region", choices=(*_RX, *_TX))
    ap.add_argument("--passes", type=int, default=1, help="measured passes over the frames (default 1)")
    ap.add_argument("--frames", type=int, default=65536, help="frames per pass (default 65536, as bench.sriov)")
    ap.add_argument("--batch", type=int, default=64, help="frames per Nic.rx call (default 64)")
    ap.add_argument("--tx-batch", type=int, default=32,
                    help="frames per pool per TX round (default 32, as bench.sriov)")
    ap.add_argument("--page-size", type=int, default=4096, help="IOMMU page size (default 4096)")
    args = ap.parse_args(argv)
    if args.region == "dma" and args.kind not in ("vf", "vf2"):
        ap.error(f"the {args.region} region is the VF path's: kind vf or vf2")
    if args.region == "txdma" and args.kind != "vf":
        ap.error(f"the {args.region} region is the VF path's: kind vf")
    if args.region in _TX and args.kind not in ("vf", "vmdq"):
        ap.error(f"the {args.region} region is a TX region: kind vf or vmdq")
    if args.region in _RX and args.kind == "vmdq":
        ap.error(f"the {args.region} region is an RX region: kind base, same, vf or vf2")
    if args.passes < 1 or args.frames < args.batch or args.tx_batch < 1:
        ap.error("need --passes >= 1, --frames >= --batch and --tx-batch >= 1")
    if args.region in _TX:
        return tx_main(args)
    B = args.batch
    dmas: list | None
    if args.kind in ("vf", "vf2"):
        pf = S.build_pf(63, args.page_size, 64, cpus=1 if args.kind == "vf" else 2)
        frames = S.frames_to([S.vf_mac(k) for k in range(63)], args.frames)
        nic = pf.nic
        queues, dmas, drain_every = S.sriov_rx_layout(pf, B)
    else:
        nic, frames = nic_sorter.build("82599", 0x8 if args.kind == "base" else 0xB, 64, args.frames)
        queues, drain_every = S.vmdq_rx_layout(nic, B)
        dmas = None
    batches = [frames[i:i + B] for i in range(0, len(frames), B)]

    marks: dict[str, Callable[[], Any]] = dict.fromkeys(_RX, _off)
    gc.disable()
    rx_pass(nic, batches[:16], drain_every, queues, dmas, marks)        # warm-up: plans, IOTLB
    rx_pass(nic, batches, drain_every, queues, dmas, marks)
    measure(marks, args.region)
    for _ in range(args.passes):
        got = rx_pass(nic, batches, drain_every, queues, dmas, marks)
        if got != len(frames):
            raise SystemExit(f"sriov_regions: {len(frames) - got} of {len(frames)} frames not delivered")
    print(f"sriov_regions: {args.kind} {args.region}, {args.passes} x {len(frames)} frames, "
          f"dataplane {compiled.status()}")
    return 0


def tx_main(args: argparse.Namespace) -> int:
    """The TX regions: bench.sriov's TX rounds, two of warm-up, then ``--passes`` passes."""
    B = args.tx_batch
    if args.kind == "vf":
        pf = S.build_pf(63, args.page_size, 64)
        nic = pf.nic
        pools = [vf.pool for vf in pf.vfs]
        dmas: list | None = [vf.dma for vf in pf.vfs]
        macs = {vf.pool: S.vf_mac(vf.index) for vf in pf.vfs}
    else:
        nic = S.build_vmdq_tx(63)
        pools = list(range(63))
        dmas = None
        macs = {p: S.vf_mac(p) for p in pools}
    # as tx_sriov and tx_vmdq: each pool sends the same frames from its own MAC every round
    per = {p: [S.Frame(S.OUTSIDE + macs[p] + b"\x08\x00" + bytes(46)) for _ in range(B)] for p in pools}
    step = S.tx_round_ns(B * len(pools), nic.state.link_speed_bps)
    rounds = max(1, args.frames // (B * len(pools)))

    marks: dict[str, Callable[[], Any]] = dict.fromkeys(_TX, _off)
    gc.disable()
    t, _ = tx_pass(nic, per, pools, dmas, 2, 0, step, marks)          # warm-up: IOTLB, queues
    measure(marks, args.region)
    for _ in range(args.passes):
        t, sent = tx_pass(nic, per, pools, dmas, rounds, t, step, marks)
    print(f"sriov_regions: {args.kind} {args.region}, {args.passes} x {sent} frames "
          f"({rounds} rounds of {B} frames from each of {len(pools)} pools), dataplane {compiled.status()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
