"""Policer: a three-colour marker, srTCM (RFC 2697) or trTCM (RFC 2698), as an element.

A policer is not a queue: it holds nothing and never delays a frame.  It is
an `Element` (input ``in``, output ``out``) that meters each frame at the
time it arrives, colours it green, yellow or red, and then passes, drops or
re-marks it by colour.  Put it on a path in the graph (a port's ingress,
before a queue); a shaper (``tbf``) is what delays instead.

Metering is colour-blind (every frame is metered as if it arrived
uncoloured), byte-counted over the whole frame as the element sees it
(RFC 2697/2698 count IP bytes: the Ethernet header is 14-18 bytes more per
frame).  Both buckets start full.  Tokens are integers (byte*8e9 units), so
the arithmetic is exact.

``srtcm`` (RFC 2697): committed bucket ``cbs`` filled at ``cir``; its overflow
fills the excess bucket ``ebs``.  A frame that fits the committed bucket is
green, else one that fits the excess bucket is yellow, else red.

``trtcm`` (RFC 2698): peak bucket ``pbs`` at ``pir`` and committed bucket
``cbs`` at ``cir``.  A frame that does not fit the peak bucket is red (no
tokens taken); else one that does not fit the committed bucket is yellow
(peak tokens taken); else green (both taken).

Actions per colour (``yellow``, ``red``; green always passes): ``pass``,
``drop``, or ``remark`` (set the IP DSCP to ``yellow_dscp``/``red_dscp``, the
IPv4 checksum updated; a frame that is not IP passes unchanged).

Counters: ``green_packets``, ``green_bytes``, ``yellow_packets``,
``yellow_bytes``, ``red_packets``, ``red_bytes``, ``remarked``.  Drop reasons
``policed_red``, ``policed_yellow``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from vswitch.core.element import Batch, Element, PortId
from vswitch.core.policies.headers import set_dscp
from vswitch.core.policies.params import REQUIRED, Param

__all__ = ["Policer", "GREEN", "YELLOW", "RED"]

GREEN, YELLOW, RED = 0, 1, 2
_NS_BITS = 8 * 10**9
ACTIONS = ("pass", "drop", "remark")


class Policer(Element):
    """srTCM or trTCM metering and per-colour action; see the module docstring."""

    INPUTS: ClassVar[tuple[PortId, ...]] = ("in",)
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ("out",)
    COUNTERS = ("green_packets", "green_bytes", "yellow_packets", "yellow_bytes", "red_packets", "red_bytes",
                "remarked")
    DROP_REASONS = ("policed_red", "policed_yellow")
    KIND: ClassVar[str] = "policer"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("mode", "choice", "srtcm", "srtcm (RFC 2697: cir, cbs, ebs) or trtcm (RFC 2698: cir, cbs, pir, pbs)",
              choices=("srtcm", "trtcm")),
        Param("cir", "rate", REQUIRED, "committed information rate", range=(8, 10**13)),
        Param("cbs", "size", REQUIRED, "committed burst size", range=(0, 1 << 32)),
        Param("ebs", "size", 0, "srtcm: excess burst size (0: two colours, green and red)", range=(0, 1 << 32)),
        Param("pir", "rate", None, "trtcm: peak information rate (>= cir)", range=(8, 10**13)),
        Param("pbs", "size", None, "trtcm: peak burst size", range=(1, 1 << 32)),
        Param("yellow", "choice", "pass", "what happens to a yellow frame", choices=ACTIONS),
        Param("red", "choice", "drop", "what happens to a red frame", choices=ACTIONS),
        Param("yellow_dscp", "int", 12, "DSCP a remarked yellow frame gets (12: AF12)", range=(0, 63)),
        Param("red_dscp", "int", 14, "DSCP a remarked red frame gets (14: AF13)", range=(0, 63)),
    )

    def __init__(self, name: str, cir: int, cbs: int, mode: str = "srtcm", ebs: int = 0, pir: int | None = None,
                 pbs: int | None = None, yellow: str = "pass", red: str = "drop", yellow_dscp: int = 12,
                 red_dscp: int = 14) -> None:
        if mode not in ("srtcm", "trtcm"):
            raise ValueError(f"mode {mode!r}: srtcm or trtcm")
        if cir < 1:
            raise ValueError(f"cir {cir}: must be > 0 bit/s")
        if yellow not in ACTIONS or red not in ACTIONS:
            raise ValueError(f"yellow {yellow!r}, red {red!r}: each one of {', '.join(ACTIONS)}")
        if mode == "srtcm":
            if pir is not None or pbs is not None:
                raise ValueError("pir, pbs: only with mode trtcm")
            if cbs + ebs <= 0:
                raise ValueError("cbs, ebs: at least one must be > 0 (RFC 2697)")
        else:
            if pir is None or pbs is None:
                raise ValueError("pir and pbs: required with mode trtcm")
            if pir < cir:
                raise ValueError(f"pir {pir}: must be >= cir {cir} (RFC 2698)")
            if cbs <= 0:
                raise ValueError("cbs: must be > 0 (RFC 2698)")
            if ebs:
                raise ValueError("ebs: only with mode srtcm (trtcm has pbs)")
        super().__init__(name)
        self.mode = mode
        self.trtcm = mode == "trtcm"
        self.cir, self.cbs, self.ebs = cir, cbs, ebs
        self.pir = pir if pir is not None else 0
        self.pbs = pbs if pbs is not None else 0
        self.yellow, self.red = yellow, red
        self.yellow_dscp, self.red_dscp = yellow_dscp, red_dscp
        # Buckets in byte*8e9 units: a rate of r bit/s adds r units per ns; a byte costs 8e9 units.
        self._c_max = cbs * _NS_BITS
        self._e_max = (pbs if self.trtcm and pbs is not None else ebs) * _NS_BITS   # trTCM: the peak bucket
        self._tc = self._c_max
        self._te = self._e_max
        self._t = -1                  # time of the last update (-1: none yet; buckets full)
        self._actions = (0, ACTIONS.index(yellow), ACTIONS.index(red))

    @classmethod
    def from_params(cls, name: str, p: dict[str, Any]) -> Policer:
        return cls(name, p["cir"], p["cbs"], p["mode"], p["ebs"], p["pir"], p["pbs"], p["yellow"], p["red"],
                   p["yellow_dscp"], p["red_dscp"])

    def _refill(self, now_ns: int) -> None:
        if self._t < 0:
            self._t = now_ns
            return
        dt = now_ns - self._t
        if dt <= 0:
            return
        self._t = now_ns
        if self.trtcm:
            self._te = min(self._e_max, self._te + self.pir * dt)
            self._tc = min(self._c_max, self._tc + self.cir * dt)
            return
        tc = self._tc + self.cir * dt
        if tc > self._c_max:
            self._te = min(self._e_max, self._te + tc - self._c_max)   # the overflow fills the excess bucket
            tc = self._c_max
        self._tc = tc

    def color(self, nbytes: int, now_ns: int) -> int:
        """Meter ``nbytes`` arriving at ``now_ns``: GREEN, YELLOW or RED (tokens taken as the RFC says)."""
        self._refill(now_ns)
        b = nbytes * _NS_BITS
        if self.trtcm:
            if self._te < b:
                return RED
            if self._tc < b:
                self._te -= b
                return YELLOW
            self._te -= b
            self._tc -= b
            return GREEN
        if self._tc >= b:
            self._tc -= b
            return GREEN
        if self._te >= b:
            self._te -= b
            return YELLOW
        return RED

    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:
        out: Batch = []
        c = self.counters
        acts = self._actions
        for f in batch:
            n = len(f.data)
            col = self.color(n, now_ns)
            if col == GREEN:
                c["green_packets"] += 1
                c["green_bytes"] += n
                out.append(f)
                continue
            if col == YELLOW:
                c["yellow_packets"] += 1
                c["yellow_bytes"] += n
            else:
                c["red_packets"] += 1
                c["red_bytes"] += n
            act = acts[col]
            if act == 1:
                self.drop(f, "policed_yellow" if col == YELLOW else "policed_red")
                continue
            if act == 2 and set_dscp(f, self.yellow_dscp if col == YELLOW else self.red_dscp):
                c["remarked"] += 1
            out.append(f)
        self.emit("out", out, now_ns)

    def tokens(self) -> dict[str, int]:
        """The buckets' contents in bytes (``committed``, and ``excess`` or ``peak``)."""
        return {"committed": self._tc // _NS_BITS, ("peak" if self.trtcm else "excess"): self._te // _NS_BITS}

    def config(self) -> dict[str, object]:
        d: dict[str, object] = {"mode": self.mode, "cir": self.cir, "cbs": self.cbs}
        if self.trtcm:
            d["pir"], d["pbs"] = self.pir, self.pbs
        else:
            d["ebs"] = self.ebs
        d["yellow"], d["red"] = self.yellow, self.red
        if "remark" in (self.yellow, self.red):
            d["yellow_dscp"], d["red_dscp"] = self.yellow_dscp, self.red_dscp
        return d

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap["policer"] = {"kind": self.KIND, **self.config(), "tokens": self.tokens()}
        return snap
