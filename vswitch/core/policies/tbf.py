"""Token-bucket shaper (``tbf``), with Linux tbf's parameters and arithmetic (sch_tbf.c).

Tokens are kept as Linux keeps them, in nanoseconds of transmission time at
``rate``: the bucket holds at most ``burst`` bytes' worth (``buffer``), fills
at one ns per ns, and a frame of L bytes costs L*8e9/rate ns (rounded up, so
the output never exceeds the envelope below by rounding).  The head frame
leaves when the bucket, filled for the time since the last departure, still
holds its cost; otherwise nothing leaves and ``next_eligible_ns`` says when
the missing tokens will have arrived, so the queue asks the graph for that
deadline (the kernel's watchdog timer) and the queue counts an
``overlimits``.  With ``peakrate`` a second bucket of ``mtu`` bytes at
``peakrate`` must also hold the frame's cost.

Over any window of T ns the output is at most ``burst + rate*T/8e9`` bytes
(and, with a peak bucket, ``mtu + peakrate*T/8e9``); a backlogged tbf sends
at ``rate`` in the long run.

Frames wait in a byte FIFO of ``limit`` bytes (tc: ``limit``, or ``latency``:
limit = rate*latency + burst, and with a peak rate at most peakrate*latency
+ mtu, as tc computes it).  Drop reasons: ``queue_full`` (the FIFO is full),
``exceeds_burst`` (a frame larger than ``burst``, or than ``mtu`` with a peak
rate: it could never leave; Linux drops it too, unless it can segment GSO).
Not shaped: the queue's requeued frames (Linux's too).
"""

from __future__ import annotations

from typing import Any, ClassVar

from mypy_extensions import i64

from vswitch.core.frame import Frame
from vswitch.core.policies.base import Policy, Ring
from vswitch.core.policies.params import REQUIRED, Param

__all__ = ["TokenBucket"]

_NS_BITS = 8 * 10**9          # bits per byte times ns per second


def _cost(nbytes: int, rate: int) -> int:
    """ns to send ``nbytes`` (a frame: < 2**30) at ``rate`` bit/s, rounded up."""
    # i64: compiled, an int product with an operand of 2**30 or more (8e9 here) takes mypyc's
    # slow path through heap integers, every frame; the product fits 63 bits for any frame.
    n: i64 = nbytes
    return (n * _NS_BITS + rate - 1) // rate


class TokenBucket(Policy):
    """A token bucket (and optionally a peak-rate bucket) in front of a byte FIFO."""

    KIND = "tbf"
    DROP_REASONS = ("queue_full", "exceeds_burst")
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("rate", "rate", REQUIRED, "the long-term rate", range=(8, 10**13)),
        Param("burst", "size", REQUIRED, "the bucket: bytes that may leave back to back (tc: burst, buffer, "
              "maxburst)", range=(1, 1 << 32)),
        Param("limit", "size", None, "bytes that may wait for tokens (give limit or latency)",
              range=(1, 1 << 40)),
        Param("latency", "time", None, "the longest a frame may wait: sets limit = rate*latency + burst, "
              "as tc does (give limit or latency)", range=(1, 10**12)),
        Param("peakrate", "rate", None, "the rate of a second bucket of mtu bytes (none: no peak bucket); "
              "must exceed rate", range=(8, 10**13)),
        Param("mtu", "size", None, "the peak bucket's size (tc: mtu, minburst); required with peakrate",
              range=(1, 1 << 32)),
    )

    def __init__(self, rate: int, burst: int, limit: int | None = None, latency: int | None = None,
                 peakrate: int | None = None, mtu: int | None = None) -> None:
        if rate < 1:
            raise ValueError(f"rate {rate}: must be > 0 bit/s")
        if burst < 1:
            raise ValueError(f"burst {burst}: must be >= 1 byte")
        if (limit is None) == (latency is None):
            raise ValueError("limit or latency: give one of them (as tc: tbf rate R burst B latency 50ms)")
        if peakrate is not None:
            if mtu is None:
                raise ValueError("mtu: required with peakrate (the peak bucket's size)")
            if peakrate <= rate:
                raise ValueError(f"peakrate {peakrate}: must be greater than rate {rate} (as Linux)")
        elif mtu is not None:
            raise ValueError("mtu: only with peakrate (it sizes the peak bucket)")
        super().__init__()
        self.rate = rate
        self.burst = burst
        self.peakrate = peakrate
        self.mtu = mtu
        self.latency = latency
        if latency is not None:
            lim = rate * latency // _NS_BITS + burst
            if peakrate is not None and mtu is not None:
                lim = min(lim, peakrate * latency // _NS_BITS + mtu)
            limit = lim
        assert limit is not None
        self.limit = limit
        # The bucket, in ns of sending at rate, rounded up as a frame's cost is: a frame of
        # burst bytes must fit (rounded down, it cost 1 ns more than the bucket ever held and
        # waited 1 ns at a time for ever).
        self.buffer_ns = _cost(burst, rate)
        self.tokens = self.buffer_ns                        # it starts full
        self._peak = peakrate is not None
        self._peakrate = peakrate if peakrate is not None else 1
        self.mtu_ns = _cost(mtu, self._peakrate) if mtu is not None else 0   # rounded up, as buffer_ns
        self.ptokens = self.mtu_ns
        self.max_size = min(burst, mtu) if mtu is not None else burst
        self.t_c = 0                 # time of the last departure (the buckets were full before it)
        self._q = Ring()

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> TokenBucket:
        return cls(p["rate"], p["burst"], p["limit"], p["latency"], p["peakrate"], p["mtu"])

    def enqueue(self, frame: Frame, now_ns: int) -> bool:
        n = len(frame.data)
        if n > self.max_size:
            self.drop(frame, "exceeds_burst")
            return False
        if self._backlog_bytes + n > self.limit:
            self.drop(frame, "queue_full")
            return False
        self._q.push(frame)
        self._backlog_packets += 1
        self._backlog_bytes += n
        return True

    def _wait(self, n: int, now_ns: int) -> tuple[int, int, int]:
        """(ns the head frame of ``n`` bytes must still wait, tokens, ptokens after sending it)."""
        elapsed = now_ns - self.t_c
        if elapsed < 0:
            elapsed = 0
        toks = elapsed if elapsed < self.buffer_ns else self.buffer_ns
        ptoks = 0
        if self._peak:
            ptoks = toks + self.ptokens
            if ptoks > self.mtu_ns:
                ptoks = self.mtu_ns
            ptoks -= _cost(n, self._peakrate)
        toks += self.tokens
        if toks > self.buffer_ns:
            toks = self.buffer_ns
        toks -= _cost(n, self.rate)
        wait = -toks if toks < 0 else 0
        if ptoks < 0 and -ptoks > wait:
            wait = -ptoks
        return wait, toks, ptoks

    def dequeue(self, now_ns: int) -> Frame | None:
        q = self._q
        if not len(q):
            return None
        n = len(q.first().data)
        wait, toks, ptoks = self._wait(n, now_ns)
        if wait > 0:
            return None
        f = q.pop()
        if now_ns > self.t_c:
            self.t_c = now_ns
        self.tokens = toks
        self.ptokens = ptoks
        self._backlog_packets -= 1
        self._backlog_bytes -= n
        return f

    def next_eligible_ns(self, now_ns: int) -> int | None:
        q = self._q
        if not len(q):
            return None
        wait, _, _ = self._wait(len(q.first().data), now_ns)
        return now_ns + wait

    def stats(self) -> dict[str, object]:
        return {"tokens_ns": self.tokens, "ptokens_ns": self.ptokens}

    def config(self) -> dict[str, object]:
        d: dict[str, object] = {"rate": self.rate, "burst": self.burst, "limit": self.limit}
        if self.latency is not None:
            d["latency"] = self.latency
        if self.peakrate is not None:
            d["peakrate"] = self.peakrate
            d["mtu"] = self.mtu
        return d
