"""HTB (``htb``): a tree of classes, each with a guaranteed ``rate`` and a ``ceil`` it may borrow up to.

A small but faithful model of Linux's sch_htb.  Classes form a tree; frames
wait only in the leaves (each a FIFO of ``limit`` packets).  Every class has
two token buckets, kept in ns as tbf's are: ``tokens`` at ``rate`` (size
``burst``) and ``ctokens`` at ``ceil`` (size ``cburst``).  At any moment a class is

- ``can_send``: ctokens >= 0 and tokens >= 0 (within its rate),
- ``may_borrow``: ctokens >= 0 but tokens < 0 (over its rate, under its ceil),
- ``cant_send``: ctokens < 0 (at its ceil).

A backlogged leaf can send if it is ``can_send`` itself, or if it is
``may_borrow`` and, walking up, every ancestor is ``may_borrow`` until one is
``can_send``: that ancestor *lends*.  No class on the way may be
``cant_send``, so no class ever goes beyond its ceil, and a leaf borrows only
what its ancestors have to spare under their own rates.  As Linux orders it,
leaves that send within their own rate (level 0) go before any borrower;
borrowers from a nearer ancestor (lower level) go before those from a
farther one; within a level the lower ``prio`` goes first, and leaves of the
same level and prio share by deficit round robin with their ``quantum``
(Linux's per-level deficit and round pointer).  Sending a frame of L bytes
takes L's cost in ctokens from every class from the leaf to the root, and in
tokens from the lender and the classes above it (the borrowers below the
lender are not charged for their rate: they borrowed).

When nothing may send, ``next_eligible_ns`` is the earliest time at which
some backlogged leaf will (its own or an ancestor's tokens back at zero, no
class on the way still at its ceil): the queue asks the graph for that
deadline, as Linux's HTB arms its watchdog.

Levels, as Linux numbers them: leaves are level 0; a class with children
at depth d (a root is depth 0) is level 7 - d, so the tree is at most 7
deep.  A frame the classifier puts in no class (no ``map`` entry and no
``default``) goes to the *direct* queue, which is sent first and unshaped
(``direct_packets_stat``), as Linux's.

Defaults as tc computes them: ``ceil`` = rate; ``burst`` = rate/HZ + mtu
bytes with the high-resolution timer's HZ (1e9 in /proc/net/psched on
current kernels, so about 1600 bytes; tc's mtu default is 1600); ``cburst``
likewise from ceil; ``quantum`` = rate in bytes/s / ``r2q`` (10), held to
1000-200000 bytes as the kernel does.

Departure from Linux: a flat round among the leaves of one level and prio
(Linux keeps one round per lending ancestor), so borrowers under different
lenders of one level share by quantum rather than per subtree.

Per class (``stats()["per_class"]``): ``rate``, ``ceil``, ``level``, ``mode``,
``tokens_ns``, ``ctokens_ns``, ``sent_packets``, ``sent_bytes``, ``lends``,
``borrows``, and for leaves ``dropped``, ``backlog_packets``,
``backlog_bytes``.  Counter ``direct_packets_stat``.  Drop reason
``queue_full`` (a leaf or the direct queue at its limit).
"""

from __future__ import annotations

from typing import Any, ClassVar

from mypy_extensions import i64

from vswitch.core.frame import Frame
from vswitch.core.policies.base import Policy, Ring
from vswitch.core.policies.classify import KEYS, Classifier
from vswitch.core.policies.params import REQUIRED, Param

__all__ = ["Htb", "HtbClass"]

_NS_BITS = 8 * 10**9
MBUFFER = 60 * 10**9          # Linux: tokens never go below -60 s worth
MAXDEPTH = 8                  # TC_HTB_MAXDEPTH
HZ = 10**9                    # tc's get_hz() with high-resolution timers
TC_MTU = 1600                 # tc htb's default mtu
CAN_SEND, MAY_BORROW, CANT_SEND = "can_send", "may_borrow", "cant_send"

CLASS_PARAMS = (
    Param("name", "str", REQUIRED, "the class's name (the map and parent refer to it)"),
    Param("parent", "str", None, "the parent class's name (none: a root class)"),
    Param("rate", "rate", REQUIRED, "the rate guaranteed to the class", range=(8, 10**13)),
    Param("ceil", "rate", None, "the most it may send, borrowing (none: rate)", range=(8, 10**13)),
    Param("burst", "size", None, "the rate bucket (none: rate/HZ + 1600, as tc)", range=(1, 1 << 32)),
    Param("cburst", "size", None, "the ceil bucket (none: ceil/HZ + 1600, as tc)", range=(1, 1 << 32)),
    Param("prio", "int", 0, "lower goes first among classes of one level", range=(0, 7)),
    Param("quantum", "size", None, "bytes per round among equals (none: rate in bytes/s / r2q, 1000-200000)",
          range=(1, 1 << 30)),
    Param("limit", "int", 1000, "packets a leaf may hold", unit="packets", range=(1, 1 << 30)),
)


def _cost(nbytes: int, rate: int) -> int:
    """ns to send ``nbytes`` (a frame: < 2**30) at ``rate`` bit/s, rounded up."""
    # i64: compiled, an int product with an operand of 2**30 or more (8e9 here) takes mypyc's
    # slow path through heap integers, every frame; the product fits 63 bits for any frame.
    n: i64 = nbytes
    return (n * _NS_BITS + rate - 1) // rate


class HtbClass:
    """One class of the tree: its buckets, and (a leaf) its frames."""

    def __init__(self, name: str, parent: HtbClass | None, rate: int, ceil: int, burst: int, cburst: int,
                 prio: int, quantum: int, limit: int) -> None:
        self.name = name
        self.parent = parent
        self.children: list[HtbClass] = []
        self.rate = rate
        self.ceil = ceil
        self.burst = burst
        self.cburst = cburst
        self.prio = prio
        self.quantum = quantum
        self.limit = limit
        self.level = 0
        self.index = -1                 # position among the leaves
        self.buffer = burst * _NS_BITS // rate
        self.cbuffer = cburst * _NS_BITS // ceil
        self.tokens = self.buffer
        self.ctokens = self.cbuffer
        self.t_c = 0
        self.deficit: list[int] = [0] * MAXDEPTH
        self.path: list[HtbClass] = []  # this class up to its root
        self.frames = Ring()
        self.bytes = 0
        self.sent_packets = 0
        self.sent_bytes = 0
        self.dropped = 0
        self.lends = 0
        self.borrows = 0

    def elapsed(self, now_ns: int) -> int:
        e = now_ns - self.t_c
        return MBUFFER if e > MBUFFER else (e if e > 0 else 0)

    def mode(self, now_ns: int) -> str:
        e = self.elapsed(now_ns)
        if self.ctokens + e < 0:
            return CANT_SEND
        return CAN_SEND if self.tokens + e >= 0 else MAY_BORROW


class Htb(Policy):
    """A class tree with rate, ceil and borrowing; see the module docstring."""

    KIND = "htb"
    COUNTERS = ("direct_packets_stat",)
    DROP_REASONS = ("queue_full",)
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("classes", "classes", REQUIRED, "the class tree: a list of tables (name, parent, rate, ceil, "
              "burst, cburst, prio, quantum, limit)", fields=CLASS_PARAMS),
        Param("default", "str", None, "the leaf of frames the map does not place (none: the direct queue, "
              "unshaped)"),
        Param("classify", "choice", "port", "the key the map reads: " + ", ".join(KEYS), choices=KEYS),
        Param("map", "map", None, "key value -> leaf name"),
        Param("r2q", "int", 10, "the default quantum is rate in bytes/s divided by r2q", range=(1, 1 << 20)),
        Param("direct_qlen", "int", 1000, "packets the direct queue may hold", unit="packets",
              range=(1, 1 << 30)),
    )

    def __init__(self, classes: list[dict[str, Any]], default: str | None = None, classify: str = "port",
                 map: dict[int, Any] | None = None, r2q: int = 10, direct_qlen: int = 1000) -> None:
        super().__init__()
        if not classes:
            raise ValueError("classes: give at least one class")
        if r2q < 1:
            raise ValueError(f"r2q {r2q}: must be >= 1")
        self.r2q = r2q
        self.direct_qlen = direct_qlen
        self.by_name: dict[str, HtbClass] = {}
        self.order: list[HtbClass] = []
        pending = list(classes)
        while pending:               # parents before children, whatever order they were given in
            progress = False
            for spec in list(pending):
                parent_name = spec.get("parent")
                if parent_name is not None and parent_name not in self.by_name:
                    continue
                self._add_class(spec)
                pending.remove(spec)
                progress = True
            if not progress:
                names = {str(s.get("name")) for s in classes}
                for spec in pending:
                    if spec.get("parent") not in names:
                        raise ValueError(f"class {spec.get('name')!r}: no parent class {spec.get('parent')!r}")
                raise ValueError(f"classes {', '.join(repr(s.get('name')) for s in pending)}: "
                                 "their parents form a loop")
        self.leaves: list[HtbClass] = [c for c in self.order if not c.children]
        for i, leaf in enumerate(self.leaves):
            leaf.index = i
        for c in self.order:
            c.path = []
            p: HtbClass | None = c
            depth = -1
            while p is not None:
                c.path.append(p)
                p = p.parent
                depth += 1
            if c.children:
                if depth >= MAXDEPTH - 1:
                    raise ValueError(f"class {c.name!r}: the tree is too deep (at most {MAXDEPTH - 1} levels "
                                     "of classes with children, as Linux)")
                c.level = MAXDEPTH - 1 - depth
        nleaves = len(self.leaves)
        self.default = default
        direct = nleaves
        if default is not None:
            dflt = self.by_name.get(default)
            if dflt is None or dflt.children:
                raise ValueError(f"default {default!r}: not a leaf class (leaves: "
                                 f"{', '.join(c.name for c in self.leaves)})")
            direct = dflt.index
        index: dict[int, int] = {}
        for k, name in (map or {}).items():
            target = self.by_name.get(str(name))
            if target is None or target.children:
                raise ValueError(f"map {k}:{name}: not a leaf class (leaves: "
                                 f"{', '.join(c.name for c in self.leaves)})")
            index[k] = target.index
        self.map: dict[int, str] | None = ({k: self.leaves[i].name for k, i in index.items()}
                                           if map is not None else None)
        self.classifier = Classifier(classify, nleaves + 1, index, direct)
        self._direct = Ring()
        self._ptr: dict[int, int] = {}       # (level * 8 + prio) -> the leaf index whose turn it is
        self._now = 0                        # the latest time seen (for the modes stats() shows)

    def _add_class(self, spec: dict[str, Any]) -> None:
        name = str(spec["name"])
        if name in self.by_name:
            raise ValueError(f"class {name!r}: defined twice")
        parent = self.by_name.get(spec["parent"]) if spec.get("parent") is not None else None
        rate = int(spec["rate"])
        ceil = int(spec["ceil"]) if spec.get("ceil") is not None else rate
        if ceil < rate:
            raise ValueError(f"class {name!r}: ceil {ceil} is below rate {rate}")
        burst = int(spec["burst"]) if spec.get("burst") is not None else rate // 8 // HZ + TC_MTU
        cburst = int(spec["cburst"]) if spec.get("cburst") is not None else ceil // 8 // HZ + TC_MTU
        quantum = spec.get("quantum")
        if quantum is None:
            quantum = min(max(rate // 8 // self.r2q, 1000), 200000)
        cl = HtbClass(name, parent, rate, ceil, burst, cburst, int(spec.get("prio", 0)), int(quantum),
                      int(spec.get("limit", 1000)))
        if parent is not None:
            parent.children.append(cl)
        self.by_name[name] = cl
        self.order.append(cl)

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Htb:
        return cls(p["classes"], p["default"], p["classify"], p["map"], p["r2q"], p["direct_qlen"])

    # -- the data path ----------------------------------------------------------------------
    def enqueue(self, frame: Frame, now_ns: int) -> bool:
        if now_ns > self._now:
            self._now = now_ns
        c = self.classifier.classify(frame)
        n = len(frame.data)
        if c >= len(self.leaves):
            if len(self._direct) >= self.direct_qlen:
                self.drop(frame, "queue_full")
                return False
            self._direct.push(frame)
            self.counters["direct_packets_stat"] += 1
        else:
            leaf = self.leaves[c]
            if len(leaf.frames) >= leaf.limit:
                leaf.dropped += 1
                self.drop(frame, "queue_full")
                return False
            leaf.frames.push(frame)
            leaf.bytes += n
        self._backlog_packets += 1
        self._backlog_bytes += n
        return True

    def _send_level(self, leaf: HtbClass, now_ns: int) -> int:
        """The level of the class that would lend to ``leaf`` now (its own 0 within its rate), or -1."""
        for cl in leaf.path:
            e = cl.elapsed(now_ns)
            if cl.ctokens + e < 0:
                return -1
            if cl.tokens + e >= 0:
                return cl.level
        return -1

    def dequeue(self, now_ns: int) -> Frame | None:
        if now_ns > self._now:
            self._now = now_ns
        if len(self._direct):
            f = self._direct.pop()
            self._backlog_packets -= 1
            self._backlog_bytes -= len(f.data)
            return f
        best_key = -1
        cands: list[HtbClass] = []
        for leaf in self.leaves:
            if not len(leaf.frames):
                continue
            level = self._send_level(leaf, now_ns)
            if level < 0:
                continue
            key = level * MAXDEPTH + leaf.prio
            if best_key < 0 or key < best_key:
                best_key = key
                cands = [leaf]
            elif key == best_key:
                cands.append(leaf)
        if not cands:
            return None
        ptr = self._ptr.get(best_key, 0)
        leaf = cands[0]
        for c in cands:                     # the first at or after the round's pointer
            if c.index >= ptr:
                leaf = c
                break
        level = best_key // MAXDEPTH
        f = leaf.frames.pop()
        n = len(f.data)
        leaf.bytes -= n
        self._backlog_packets -= 1
        self._backlog_bytes -= n
        leaf.deficit[level] -= n
        if leaf.deficit[level] < 0:
            leaf.deficit[level] += leaf.quantum
            self._ptr[best_key] = leaf.index + 1
        else:
            self._ptr[best_key] = leaf.index
        self._charge(leaf, level, n, now_ns)
        return f

    def _charge(self, leaf: HtbClass, level: int, n: int, now_ns: int) -> None:
        for cl in leaf.path:
            e = cl.elapsed(now_ns)
            if cl.level >= level:
                if cl.level == level:
                    cl.lends += 1
                toks = cl.tokens + e
                if toks > cl.buffer:
                    toks = cl.buffer
                toks -= _cost(n, cl.rate)
                cl.tokens = toks if toks > -MBUFFER else 1 - MBUFFER
            else:
                cl.borrows += 1
                toks = cl.tokens + e
                cl.tokens = toks if toks < cl.buffer else cl.buffer
            ctoks = cl.ctokens + e
            if ctoks > cl.cbuffer:
                ctoks = cl.cbuffer
            ctoks -= _cost(n, cl.ceil)
            cl.ctokens = ctoks if ctoks > -MBUFFER else 1 - MBUFFER
            if now_ns > cl.t_c:
                cl.t_c = now_ns
            cl.sent_packets += 1
            cl.sent_bytes += n

    def next_eligible_ns(self, now_ns: int) -> int | None:
        if not self._backlog_packets:
            return None
        if len(self._direct):
            return now_ns
        best = -1
        for leaf in self.leaves:
            if not len(leaf.frames):
                continue
            blocked = now_ns                    # until no class so far is at its ceil
            for cl in leaf.path:
                e = cl.elapsed(now_ns)
                if cl.ctokens + e < 0:
                    t = now_ns - (cl.ctokens + e)
                    if t > blocked:
                        blocked = t
                t = now_ns - (cl.tokens + e) if cl.tokens + e < 0 else now_ns
                if t < blocked:
                    t = blocked
                if best < 0 or t < best:
                    best = t
        return best if best >= 0 else None

    # -- figures ----------------------------------------------------------------------------
    def stats(self) -> dict[str, object]:
        now = self._now
        classes: dict[str, object] = {}
        for cl in self.order:
            d: dict[str, object] = {"parent": cl.parent.name if cl.parent is not None else None,
                                    "rate": cl.rate, "ceil": cl.ceil, "level": cl.level, "prio": cl.prio,
                                    "quantum": cl.quantum, "mode": cl.mode(now), "tokens_ns": cl.tokens,
                                    "ctokens_ns": cl.ctokens, "sent_packets": cl.sent_packets,
                                    "sent_bytes": cl.sent_bytes, "lends": cl.lends, "borrows": cl.borrows}
            if not cl.children:
                d.update({"dropped": cl.dropped, "backlog_packets": len(cl.frames), "backlog_bytes": cl.bytes})
            classes[cl.name] = d
        return {"per_class": classes, "direct_backlog_packets": len(self._direct)}

    def config(self) -> dict[str, object]:
        return {"classes": [{"name": c.name, "parent": c.parent.name if c.parent is not None else None,
                             "rate": c.rate, "ceil": c.ceil, "burst": c.burst, "cburst": c.cburst, "prio": c.prio,
                             "quantum": c.quantum, "limit": c.limit} for c in self.order],
                "default": self.default, "classify": self.classifier.key,
                "map": dict(self.map) if self.map is not None else None, "r2q": self.r2q,
                "direct_qlen": self.direct_qlen}
