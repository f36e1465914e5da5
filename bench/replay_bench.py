"""``vswitch-bench replay-bench``: ``vswitch-bench replay --live`` against Debian's tcpreplay, in one run.

Both tools send the same generated captures, with the same options, onto the same veth:
one end in a sender namespace, the other in a receiver namespace, both made by this run
(``vsb`` + 6 random hex digits) and removed at the end (also on Ctrl-C or SIGTERM).
Nothing is sent anywhere else.  Cases (each a fresh process per tool, interleaved
across tools and repeated ``--reps`` times; medians):

``mbps100``    an IMIX capture (7:4:1 of 64/570/1518 B on the wire, so 60/566/1514 B
               captured, as both tools count bytes) at ``--mbps 100``, streamed from the file;
``pps50k``     the same capture at ``--pps 50000``;
``mbps100-K``, ``pps50k-K``  the same from memory (``--preload`` / ``-K``);
``top64``      64 B frames (60 B captured) at ``--topspeed`` from memory (``--preload`` /
               tcpreplay's ``-K``) for ``--seconds``;
``top64-stream`` the same, streamed from the file (no preload);
``top64-send`` vswitch-bench only: from memory with ``--batch 1`` (one send(2) per frame
               instead of sendmmsg(2) batches of 64: what the batching buys).

Each run is measured twice: by the sender's own summary (its Rated line) and at the
receiving side, from the receiving veth's kernel counters (IFLA_STATS64 rx_packets and
rx_bytes, sampled every 5 ms from this process): the receive rate is the least-squares
slope of the samples over the middle 90 % of the span between the first and the last
frame's arrival, and "delivered" is frames received / frames the sender counted.  Rate
error is (measured - asked) / asked.  The sender's CPU time (user + sys) comes from
wait4(2).

Targets (issue 12): the sender's rate within 1 % of the asked rate at --mbps 100 and
--pps 50000, as tcpreplay; the highest 64 B rate at --topspeed at least 0.5x tcpreplay's.

Exit status: 0 every figure measured; 1 some run failed (the others are reported);
2 cannot run here (not root, no tcpreplay, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.peers import Lab, ipr
from bench.replay_summary import parse_summary
from bench.signals import signals_ignored, sigterm_as_interrupt
from bench.traces import ether, ipv4, udp
from vswitch.io.pcap import PcapWriter

ROOT = Path(__file__).resolve().parents[1]
IMIX = (60,) * 7 + (566,) * 4 + (1514,)          # captured bytes: 64/570/1518 on the wire with the FCS
IMIX_FRAMES = 24_000                              # 2000 IMIX cycles of 12 frames, shuffled
SMALL_FRAMES = 100_000
FLOWS = 64
TOOLS = ("tcpreplay", "vswitch-bench")


class Unavailable(Exception):
    """The benchmark cannot run here (exit 2, one line)."""


@dataclass(frozen=True)
class Case:
    name: str
    capture: str                  # imix | small
    speed: tuple[str, ...]        # the same options for both tools
    asked_pps: float | None = None
    asked_mbps: float | None = None
    preload: bool = False
    tools: tuple[str, ...] = TOOLS
    ours_extra: tuple[str, ...] = ()
    timed: bool = False           # --duration instead of a loop count


CASES = (
    Case("mbps100", "imix", ("--mbps", "100"), asked_mbps=100.0),
    Case("mbps100-K", "imix", ("--mbps", "100"), asked_mbps=100.0, preload=True),
    Case("pps50k", "imix", ("--pps", "50000"), asked_pps=50_000.0),
    Case("pps50k-K", "imix", ("--pps", "50000"), asked_pps=50_000.0, preload=True),
    Case("top64", "small", ("--topspeed",), preload=True, timed=True),
    Case("top64-stream", "small", ("--topspeed",), timed=True),
    Case("top64-send", "small", ("--topspeed",), preload=True, tools=("vswitch-bench",), ours_extra=("--batch", "1"),
         timed=True),
)


# -- captures --------------------------------------------------------------------------------------

def frame(size: int, i: int) -> bytes:
    """An IPv4/UDP frame of ``size`` captured bytes in one of FLOWS flows, from one sender MAC."""
    src_ip, dst_ip = bytes([10, 77, 0, 1]), bytes([10, 77, 1, i % FLOWS + 1])
    data = bytes(size - 14 - 20 - 8)
    return ether(bytes([2, 0x77, 0, 0, 0, 2]), bytes([2, 0x77, 0, 0, 0, 1]), 0x0800,
                 ipv4(src_ip, dst_ip, 17, udp(src_ip, dst_ip, 4000 + i % FLOWS, 5000, data), ident=i & 0xFFFF))


def write_captures(workdir: Path) -> dict[str, dict[str, Any]]:
    rnd = random.Random(12)
    sizes = [IMIX[i % len(IMIX)] for i in range(IMIX_FRAMES)]
    rnd.shuffle(sizes)
    out = {}
    for name, szs in (("imix", sizes), ("small", [60] * SMALL_FRAMES)):
        path = workdir / f"{name}.pcap"
        with PcapWriter(path) as w:
            for i, n in enumerate(szs):
                w.write(frame(n, i), 1_700_000_000_000_000_000 + i * 10_000)
        out[name] = {"path": str(path), "frames": len(szs), "bytes": sum(szs)}
    return out


# -- the network ------------------------------------------------------------------------------------

class Net(Lab):
    """Sender and receiver namespaces joined by one veth pair: `bench.peers.Lab`'s resources (one random
    prefix, cleaned up however the run ends) with this benchmark's two namespaces."""

    def __init__(self) -> None:
        super().__init__()
        os.chmod(self.workdir, 0o755)                   # the capture files are read by tcpreplay too
        self.tx_ns, self.rx_ns = self.name("tx"), self.name("rx")
        self.tx_if, self.rx_if = self.name("a"), self.name("b")

    def setup(self) -> None:
        for ns in (self.tx_ns, self.rx_ns):
            self.netns(ns[len(self.prefix):])
        with ipr(None) as ip:
            ip.link("add", ifname=self.tx_if, kind="veth", peer=self.rx_if)
            ip.link("set", index=ip.link_lookup(ifname=self.tx_if)[0], net_ns_fd=self.tx_ns)
            ip.link("set", index=ip.link_lookup(ifname=self.rx_if)[0], net_ns_fd=self.rx_ns)
        for ns, ifname in ((self.tx_ns, self.tx_if), (self.rx_ns, self.rx_if)):
            with ipr(ns) as ip:
                ip.link("set", index=ip.link_lookup(ifname=ifname)[0], state="up")

    def sh(self, ns: str, *argv: str) -> str:
        r = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=60)
        if r.returncode:
            raise RuntimeError(f"{' '.join(argv)} in {ns}: {(r.stderr or r.stdout).strip()[:200]}")
        return r.stdout


class RxSampler(threading.Thread):
    """(monotonic ns, rx_packets, rx_bytes) of the receiving veth every ``interval`` s."""

    def __init__(self, ns: str, ifname: str, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        from pyroute2 import IPRoute
        self.ip = IPRoute(netns=ns, flags=0)
        self.idx = self.ip.link_lookup(ifname=ifname)[0]
        self.interval = interval
        self.samples: list[tuple[int, int, int]] = []
        self.stop_event = threading.Event()

    def read(self) -> tuple[int, int, int]:
        st = self.ip.get_links(self.idx)[0].get_attr("IFLA_STATS64")
        return time.monotonic_ns(), int(st["rx_packets"]), int(st["rx_bytes"])

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.samples.append(self.read())
            time.sleep(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        self.samples.append(self.read())
        self.ip.close()


def slope(points: list[tuple[float, float]]) -> float | None:
    n = len(points)
    if n < 3:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def receiver_rates(samples: list[tuple[int, int, int]]) -> dict[str, Any]:
    """Received packets and bytes, and the rates over the middle 90 % of the arrivals."""
    p0, b0 = samples[0][1], samples[0][2]
    p1, b1 = samples[-1][1], samples[-1][2]
    moving = [i for i in range(1, len(samples)) if samples[i][1] != samples[i - 1][1]]
    out: dict[str, Any] = {"rx_packets": p1 - p0, "rx_bytes": b1 - b0, "rx_pps": None, "rx_mbps": None}
    if len(moving) < 3:
        return out
    t_first, t_last = samples[moving[0] - 1][0], samples[moving[-1]][0]
    span = t_last - t_first
    lo, hi = t_first + span * 0.05, t_last - span * 0.05
    mid = [s for s in samples if lo <= s[0] <= hi]
    pps = slope([(t / 1e9, p) for t, p, _ in mid])
    bps = slope([(t / 1e9, b) for t, _, b in mid])
    out.update(rx_pps=pps, rx_mbps=None if bps is None else bps * 8 / 1e6, rx_span_s=span / 1e9)
    return out


# -- one run ----------------------------------------------------------------------------------------

def command(tool: str, case: Case, net: Net, caps: dict[str, dict[str, Any]], seconds: float,
            json_path: Path) -> list[str]:
    cap = caps[case.capture]
    if case.timed:                # tcpreplay takes whole seconds only
        limit = ["--loop", "0", "--duration", str(max(1, round(seconds)))]
    else:
        per_loop_s = (cap["bytes"] * 8 / (case.asked_mbps * 1e6) if case.asked_mbps
                      else cap["frames"] / (case.asked_pps or 1))
        limit = ["--loop", str(max(1, math.ceil(seconds / per_loop_s)))]
    if tool == "tcpreplay":
        return ["tcpreplay", "-i", net.tx_if, *case.speed, *limit, *(["-K"] if case.preload else []), cap["path"]]
    return [sys.executable, "-m", "bench.cli", "replay", "--live", "--iface", net.tx_if, *case.speed, *limit,
            *(["--preload"] if case.preload else []), *case.ours_extra, "--json", str(json_path), cap["path"]]


def run_one(tool: str, case: Case, net: Net, caps: dict[str, dict[str, Any]], seconds: float) -> dict[str, Any]:
    jpath = net.workdir / "ours.json"
    argv = command(tool, case, net, caps, seconds, jpath)
    sampler = RxSampler(net.rx_ns, net.rx_if)
    outf = net.workdir / "out.txt"
    sampler.start()
    time.sleep(0.05)
    with open(outf, "w") as out:
        p = subprocess.Popen(["ip", "netns", "exec", net.tx_ns, *argv], stdout=out, stderr=subprocess.STDOUT,
                             cwd=ROOT)
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            p.kill()
            p.wait()
            raise
        p.returncode = os.waitstatus_to_exitcode(status)
    time.sleep(0.1)
    sampler.stop()
    text = outf.read_text()
    if p.returncode:
        raise RuntimeError(f"{tool} {case.name} exited {p.returncode}: {text.strip()[-300:]}")
    s = parse_summary(text)
    if "pps" not in s:
        raise RuntimeError(f"{tool} {case.name}: no summary in its output: {text.strip()[-300:]}")
    res: dict[str, Any] = {"tool": tool, "case": case.name, "command": shlex.join(argv),
                           "tx_packets": s["packets"], "tx_bytes": s["bytes"], "tx_seconds": s["seconds"],
                           "tx_pps": s["pps"], "tx_mbps": s["Mbps"], "failed": s.get("failed"),
                           "cpu_s": ru.ru_utime + ru.ru_stime, "summary": text}
    res.update(receiver_rates(sampler.samples))
    res["delivered"] = res["rx_packets"] / s["packets"] if s["packets"] else None
    if case.asked_pps:
        res["tx_error"] = s["pps"] / case.asked_pps - 1
        res["rx_error"] = None if res["rx_pps"] is None else res["rx_pps"] / case.asked_pps - 1
    elif case.asked_mbps:
        res["tx_error"] = s["Mbps"] / case.asked_mbps - 1
        res["rx_error"] = None if res["rx_mbps"] is None else res["rx_mbps"] / case.asked_mbps - 1
    return res


# -- the benchmark ----------------------------------------------------------------------------------

def check_environment() -> None:
    if os.geteuid() != 0:
        raise Unavailable("needs root (network namespaces, a veth pair, raw sockets)")
    if shutil.which("tcpreplay") is None:
        raise Unavailable("needs Debian's tcpreplay (apt-get install tcpreplay; it is in the Makefile's "
                          "SYSTEM_PACKAGES)")
    if shutil.which("ip") is None:
        raise Unavailable("needs iproute2's ip (apt-get install iproute2)")


def tcpreplay_version() -> str:
    r = subprocess.run(["tcpreplay", "-V"], capture_output=True, text=True, timeout=10)
    return ((r.stdout or r.stderr).strip().splitlines() or ["?"])[0]


def run_benchmark(cases: list[Case], reps: int, seconds: float, log: Any) -> dict[str, Any]:
    net = Net()
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    problems: list[str] = []
    try:
        net.setup()
        caps = write_captures(net.workdir)
        for rep in range(reps):
            for case in cases:
                for tool in case.tools:
                    try:
                        r = run_one(tool, case, net, caps, seconds)
                    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                        errors.append(str(e))
                        log(f"rep {rep + 1} {case.name} {tool}: FAILED: {e}")
                        continue
                    r["rep"] = rep + 1
                    results.append(r)
                    rx = "n/a" if r["rx_pps"] is None else f"{r['rx_pps']:,.0f}"
                    log(f"rep {rep + 1} {case.name:<13} {tool:<14} sent {r['tx_pps']:>12,.2f} pps "
                        f"{r['tx_mbps']:>9,.2f} Mbps; received {rx} pps, {r['delivered']:.4f} delivered")
    finally:
        with signals_ignored():
            problems = net.cleanup()
    return summarize(cases, reps, seconds, results, errors, problems, net.prefix)


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarize(cases: list[Case], reps: int, seconds: float, results: list[dict[str, Any]], errors: list[str],
              problems: list[str], prefix: str) -> dict[str, Any]:
    table = []
    for case in cases:
        for tool in case.tools:
            rows = [r for r in results if r["case"] == case.name and r["tool"] == tool]
            if not rows:
                continue
            med = {k: _median(rows, k) for k in ("tx_pps", "tx_mbps", "tx_error", "rx_pps", "rx_mbps", "rx_error",
                                                  "delivered", "cpu_s", "tx_seconds")}
            table.append({"case": case.name, "tool": tool, "runs": len(rows), "asked_pps": case.asked_pps,
                          "asked_mbps": case.asked_mbps, "command": rows[0]["command"],
                          **med, "max_abs_tx_error": max((abs(r["tx_error"]) for r in rows
                                                          if r.get("tx_error") is not None), default=None)})

    def row(case: str, tool: str) -> dict[str, Any] | None:
        return next((t for t in table if t["case"] == case and t["tool"] == tool), None)
    targets = []
    for name, what in (("mbps100", "--mbps 100"), ("mbps100-K", "--mbps 100 --preload"),
                       ("pps50k", "--pps 50000"), ("pps50k-K", "--pps 50000 --preload")):
        for tool in TOOLS:
            r = row(name, tool)
            if r and r["tx_error"] is not None:
                targets.append({"target": f"{what} within 1 % ({tool}, sender)", "value": r["tx_error"],
                                "met": abs(r["tx_error"]) <= 0.01})
            if r and r["rx_error"] is not None:
                targets.append({"target": f"{what} within 1 % ({tool}, receiver)", "value": r["rx_error"],
                                "met": abs(r["rx_error"]) <= 0.01})
    ours, theirs = row("top64", "vswitch-bench"), row("top64", "tcpreplay")
    for key, side in (("tx_pps", "sender"), ("rx_pps", "receiver")):
        if ours and theirs and ours[key] and theirs[key]:
            ratio = ours[key] / theirs[key]
            targets.append({"target": f"64 B --topspeed >= 0.5x tcpreplay ({side})", "value": ratio,
                            "met": ratio >= 0.5})
    return {"settings": {"reps": reps, "seconds": seconds, "cases": [c.name for c in cases],
                         "imix_frames": IMIX_FRAMES, "small_frames": SMALL_FRAMES},
            "table": table, "targets": targets, "runs": results, "errors": errors,
            "cleanup_problems": problems, "prefix": prefix}


def render(res: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v * 100:+.3f} %"

    def num(v: float | None, fmt: str = ",.0f") -> str:
        return "n/a" if v is None else format(v, fmt)
    st = res["settings"]
    t = Table(title=f"Live replay vs tcpreplay: medians of {st['reps']} interleaved runs, ~{st['seconds']:g} s each, "
              "veth into a namespace")
    for c in ("case", "tool", "asked", "sent pps", "sent Mbps", "error (sender)", "recv pps", "recv Mbps",
              "error (receiver)", "delivered", "CPU s"):
        t.add_column(c, justify="left" if c in ("case", "tool") else "right")
    for r in res["table"]:
        asked = (f"{r['asked_mbps']:g} Mbps" if r["asked_mbps"] else f"{r['asked_pps']:,.0f} pps" if r["asked_pps"]
                 else "top")
        t.add_row(r["case"], r["tool"], asked, num(r["tx_pps"]), num(r["tx_mbps"], ",.2f"), pct(r["tx_error"]),
                  num(r["rx_pps"]), num(r["rx_mbps"], ",.2f"), pct(r["rx_error"]), num(r["delivered"], ".4f"),
                  num(r["cpu_s"], ".2f"))
    console.print(t)
    tt = Table(title="Targets")
    for c in ("target", "value", ""):
        tt.add_column(c)
    for g in res["targets"]:
        v = g["value"]
        tt.add_row(g["target"], f"{v:.2f}x" if "0.5x" in g["target"] else pct(v), "met" if g["met"] else "MISSED")
    console.print(tt)
    for e in res["errors"]:
        console.print(f"error: {e}", markup=False, highlight=False)
    for p in res["cleanup_problems"]:
        console.print(f"cleanup: {p}", markup=False, highlight=False)



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitch-bench replay-bench",
                                 description="vswitch-bench replay --live against Debian's tcpreplay on a veth into "
                                 "a namespace: rate accuracy at --mbps 100 and --pps 50000, the highest 64 B rate at "
                                 "--topspeed; measured by each sender and at the receiving veth (root)")
    ap.add_argument("--reps", type=int, default=3, help="runs of each case and tool, interleaved (default 3)")
    ap.add_argument("--seconds", type=float, default=4.0, help="about how long each run sends (default 4)")
    ap.add_argument("--only", default=",".join(c.name for c in CASES),
                    help=f"comma-separated cases (default: all of {','.join(c.name for c in CASES)})")
    ap.add_argument("--json", metavar="FILE", help="write the results (every run, the medians) as JSON")
    args = ap.parse_args(argv)
    prog = "vswitch-bench replay-bench"
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    known = {c.name: c for c in CASES}
    bad = [n for n in names if n not in known]
    if bad or not names:
        print(f"{prog}: --only {args.only!r}: choose from {', '.join(known)}", file=sys.stderr)
        return 2
    if args.reps < 1 or not 0.5 <= args.seconds <= 600:
        print(f"{prog}: --reps must be >= 1 and --seconds between 0.5 and 600", file=sys.stderr)
        return 2
    try:
        check_environment()
    except Unavailable as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    from rich.console import Console
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    err = Console(stderr=True)
    facts: dict[str, Any] = {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
             "tcpreplay": tcpreplay_version(), "loadavg_at_start": os.getloadavg()}
    err.print(f"{facts['cpus']} CPUs, kernel {facts['kernel']}, {facts['tcpreplay']}, load "
              f"{facts['loadavg_at_start'][0]:.2f}", markup=False, highlight=False)

    try:
        with sigterm_as_interrupt():
            res = run_benchmark([known[n] for n in names], args.reps, args.seconds,
                                lambda s: err.print(s, markup=False, highlight=False))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; everything it created was removed", file=sys.stderr)
        return 130
    facts["loadavg_at_end"] = os.getloadavg()
    res["machine"] = facts
    res["command"] = shlex.join(["vswitch-bench", "replay-bench", *(sys.argv[1:] if argv is None else argv)])
    render(res, console)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
