"""When each frame of a live replay is sent: tcpreplay's speed modes as pure arithmetic (no clock, no I/O).

`Schedule.due` gives every frame its ideal send time in ns after the start of the run.
The schedule is cumulative: frame k's time comes from k, from the bytes up to and
including it, or from its own capture timestamp, never from when frame k-1 actually
left.  A sender that wakes late (a sleep overshoots, the machine is busy) sends the
frames that are due at once and is back on the ideal line; errors do not add up, so
the rate over a run is the asked rate however coarse the sleeps are
(tcpreplay's send_packets.c/calc_sleep_time does the same for --mbps and --pps).

Speed modes (one at a time, as tcpreplay's):

``multiplier`` (the default, 1.0)  the capture's own gaps divided by the factor:
    frame k is due at (max timestamp so far - first timestamp of its segment) / F
    after its segment began.  A record stamped earlier than one before it is due at
    once (time never goes back).  A segment is one capture in one loop; each segment
    begins at the ideal time of the last frame before it (tcpreplay restarts the
    capture clock at each file and loop too, but at the wall time it got there).
``pps`` R          frame k (counted over the whole run, loops included) is due at k / R s.
``mbps`` M         frame k is due when the bytes of frames 0..k (caplen, as tcpreplay
    counts: no preamble, inter-frame gap or FCS) have taken (bytes * 8) / (M * 1e6) s;
    the first frame goes at 0.  Over a run of B bytes the last frame is due at
    B * 8 / (M * 1e6) s, so bytes / elapsed is M exactly (tcpreplay's next_tx_ns).
``topspeed``       every frame is due at 0: as fast as the sender goes.  (``--mbps 0``
    means topspeed, as in tcpreplay.)

`plan` walks the captures loop by loop and applies `Limits`: ``loops`` (0: forever),
``limit`` (at most that many frames) and ``duration_ns`` (no frame due at or after it;
the sender also stops by the clock).  The schedule counts frames *attempted*: a frame
whose send fails still had its slot, so the schedule never depends on what the
network did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

SPEED_MODES = ("multiplier", "pps", "mbps", "topspeed")

Records = Iterable[tuple[int, bytes]]          # (timestamp ns, frame) as vswitch.io.pcap yields them


@dataclass(frozen=True)
class Speed:
    """One speed mode and its value (the factor, packets/s or Mbit/s; unused for topspeed)."""

    mode: str = "multiplier"
    value: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in SPEED_MODES:
            raise ValueError(f"speed mode {self.mode!r}: one of {', '.join(SPEED_MODES)}")
        if self.mode != "topspeed" and not self.value > 0:
            raise ValueError(f"{self.mode} {self.value!r}: must be > 0")

    def describe(self) -> str:
        return {"multiplier": f"capture timing x{self.value:g}", "pps": f"{self.value:g} packets/s",
                "mbps": f"{self.value:g} Mbit/s", "topspeed": "top speed"}[self.mode]


class Schedule:
    """Ideal send times, ns after the start; call `start_segment` before each capture of each loop
    and `due` once per frame, in order."""

    def __init__(self, speed: Speed) -> None:
        self.speed = speed
        self.frames = 0                  # frames given a time so far (attempted)
        self.bytes = 0
        self.last_due = 0
        # Times are one correctly rounded division of an exact product, not a product with a
        # rounded rate: 12354 B at 1.5 Mb/s is 65,888,000 ns, where bytes * (8e3 / 1.5) truncates
        # to 65,887,999.
        self._rate = float(speed.value)
        self._segment_base = 0
        self._ts0: int | None = None
        self._ts_max = 0

    def start_segment(self) -> None:
        """A capture begins (again): in multiplier mode its timeline starts at the last ideal time."""
        self._segment_base = self.last_due
        self._ts0 = None

    def due(self, ts_ns: int, length: int) -> int:
        mode = self.speed.mode
        if mode == "pps":
            d = int(self.frames * 1e9 / self._rate)
        elif mode == "mbps":
            d = int((self.bytes + length) * 8e3 / self._rate) if self.frames else 0
        elif mode == "multiplier":
            if self._ts0 is None:
                self._ts0 = self._ts_max = ts_ns
            elif ts_ns > self._ts_max:
                self._ts_max = ts_ns
            d = self._segment_base + int((self._ts_max - self._ts0) / self.speed.value)
        else:
            d = 0
        self.frames += 1
        self.bytes += length
        self.last_due = d
        return d


@dataclass(frozen=True)
class Limits:
    loops: int = 1                       # 0: forever
    limit: int = 0                       # 0: no limit
    duration_ns: int | None = None

    def __post_init__(self) -> None:
        if self.loops < 0:
            raise ValueError(f"--loop {self.loops}: must be >= 0 (0 loops forever)")
        if self.limit < 0:
            raise ValueError(f"--limit {self.limit}: must be >= 1")
        if self.duration_ns is not None and self.duration_ns <= 0:
            raise ValueError("--duration: must be > 0 seconds")


@dataclass
class Progress:
    """Where `plan` got to: loops begun and frames planned (for the summary and the flow count)."""

    loops: int = 0
    frames: int = 0
    stopped_by: str = "end"              # end | limit | duration | empty


def plan(captures: Sequence[Callable[[], Records]], speed: Speed, limits: Limits,
         progress: Progress | None = None, schedule: Schedule | None = None) -> Iterator[tuple[int, bytes]]:
    """(due ns, frame) for every frame to send, in order: each capture (a factory giving a fresh
    iterator of its records) in turn, loop after loop, within `limits`."""
    sched = schedule or Schedule(speed)
    prog = progress if progress is not None else Progress()
    duration = limits.duration_ns
    n = 0
    while limits.loops == 0 or prog.loops < limits.loops:
        prog.loops += 1
        before = n
        for open_capture in captures:
            sched.start_segment()
            for ts, data in open_capture():
                d = sched.due(ts, len(data))
                if duration is not None and d >= duration:
                    prog.stopped_by = "duration"
                    return
                n += 1
                prog.frames = n
                yield d, data
                if limits.limit and n >= limits.limit:
                    prog.stopped_by = "limit"
                    return
        if n == before:                  # nothing in the captures: looping would never end
            prog.stopped_by = "empty"
            return
