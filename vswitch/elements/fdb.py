"""The forwarding database: (VLAN, MAC) -> port, with aging, limits, moves and damping.

Semantics (all driven by ``now_ns``, never a clock):

* **Aging.** A dynamic entry last seen at ``t`` is valid while
  ``now_ns < t + ageing_ns`` and gone from ``t + ageing_ns`` on (default
  300 s, as OVS and the Linux bridge).  Expired entries are removed lazily
  when met and by ``expire(now_ns)``; either way each counts once in
  ``expired``.
* **Table limit** (``max_entries``, default 8192 as OVS's mac-table-size).
  When full, learning a new MAC evicts the least recently seen dynamic entry
  of the port holding the most dynamic entries (OVS's fair eviction, which
  stops a MAC flood on one port from pushing out everyone else).
* **Per-port limit** (optional): policy ``stop`` refuses to learn more on
  that port (counted in ``learn_refused``; frames are still forwarded, as the
  Linux bridge's ``fdb_max_learned``), ``evict`` replaces that port's least
  recently seen entry.
* **Static entries** never age, never move and are never evicted.
* **Moves.** A MAC seen on another port moves there (``moved``), and the move
  is logged (last ``move_log`` moves: MAC, VLAN, from, to, time).
* **Move damping.** If a MAC already moved ``damp_moves`` times within
  ``damp_window_ns``, the next move is refused and the MAC is frozen on its
  current port for ``damp_hold_ns``; each move refused while frozen counts in
  ``moves_damped``.  ``damp_moves = 0`` disables damping.

LRU order per port is kept exactly without per-frame bookkeeping: a refresh
only updates ``seen``; each port has a lazy heap of (seen, seq, entry) that
eviction pops, re-pushing entries refreshed since they were pushed.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

NS: Final = 1_000_000_000
# A static entry's "last seen" lies in the far future, so the data path's single
# freshness test (now - seen < ageing) holds for it without a separate flag check.
STATIC_SEEN: Final = 1 << 62


class FdbEntry:
    __slots__ = ("mac", "vlan", "port", "seen", "static", "alive", "move_times", "hold_until")

    def __init__(self, mac: bytes, vlan: int, port: int, seen: int, static: bool = False) -> None:
        self.mac = mac
        self.vlan = vlan
        self.port = port
        self.seen = seen
        self.static = static
        self.alive = True
        self.move_times: deque[int] | None = None
        self.hold_until = 0


@dataclass(frozen=True)
class Move:
    mac: bytes
    vlan: int
    from_port: int
    to_port: int
    time_ns: int
    damped: bool = False


class Fdb:
    STATS = ("learned", "expired", "evicted", "moved", "moves_damped", "learn_refused")

    def __init__(self, max_entries: int = 8192, ageing_ns: int = 300 * NS, move_log: int = 64,
                 damp_moves: int = 5, damp_window_ns: int = 10 * NS, damp_hold_ns: int = 30 * NS) -> None:
        if max_entries < 1:
            raise ValueError(f"fdb max_entries must be >= 1, got {max_entries}")
        if ageing_ns <= 0:
            raise ValueError(f"fdb ageing time must be > 0, got {ageing_ns} ns")
        self.max_entries = max_entries
        self.ageing_ns = ageing_ns
        self.damp_moves = damp_moves
        self.damp_window_ns = damp_window_ns
        self.damp_hold_ns = damp_hold_ns
        # vlan -> {mac -> entry}: the per-VLAN dict avoids building a tuple key per frame.
        self.vlans: dict[int, dict[bytes, FdbEntry]] = {}
        self.moves: deque[Move] = deque(maxlen=move_log)
        self.stats = dict.fromkeys(self.STATS, 0)
        self.n_dynamic = 0
        self.n_static = 0
        self._per_port: dict[int, int] = {}          # dynamic entries per port
        self._heaps: dict[int, list[tuple[int, int, FdbEntry]]] = {}
        self._seq = 0
        self.port_limits: dict[int, tuple[int, str]] = {}  # port -> (limit, "stop"|"evict")

    # -- queries -------------------------------------------------------------
    def table(self, vlan: int) -> dict[bytes, FdbEntry]:
        """The VLAN's MAC table (created empty on first use and kept)."""
        tbl = self.vlans.get(vlan)
        if tbl is None:
            tbl = self.vlans[vlan] = {}
        return tbl

    def lookup(self, vlan: int, mac: bytes, now_ns: int) -> int | None:
        tbl = self.vlans.get(vlan)
        e = tbl.get(mac) if tbl else None
        if e is None:
            return None
        if not e.static and now_ns - e.seen >= self.ageing_ns:
            self._remove(e)
            self.stats["expired"] += 1
            return None
        return e.port

    def entries(self, now_ns: int | None = None) -> list[FdbEntry]:
        out = []
        for tbl in self.vlans.values():
            for e in tbl.values():
                if now_ns is None or e.static or now_ns - e.seen < self.ageing_ns:
                    out.append(e)
        return out

    def __len__(self) -> int:
        return self.n_dynamic + self.n_static

    def port_count(self, port: int) -> int:
        return self._per_port.get(port, 0)

    # -- learning ------------------------------------------------------------
    def learn(self, vlan: int, mac: bytes, port: int, now_ns: int) -> None:
        """Learn or refresh ``mac`` on ``port`` (the data path's slow path)."""
        tbl = self.table(vlan)
        e = tbl.get(mac)
        if e is not None and not e.static and now_ns - e.seen >= self.ageing_ns:
            self._remove(e)
            self.stats["expired"] += 1
            e = None
        if e is None:
            self._insert(tbl, vlan, mac, port, now_ns)
            return
        if e.port == port:
            if not e.static:
                e.seen = now_ns
            return
        if e.static:
            return
        self._move(e, port, now_ns)

    def _insert(self, tbl: dict[bytes, FdbEntry], vlan: int, mac: bytes, port: int, now_ns: int) -> None:
        limit = self.port_limits.get(port)
        if limit is not None and self._per_port.get(port, 0) >= limit[0] and not self._free_slot(
                port, now_ns, evict=limit[1] == "evict"):
            self.stats["learn_refused"] += 1
            return
        if self.n_dynamic + self.n_static >= self.max_entries:
            # Full: an aged-out entry goes first.  Each port's oldest entry is the top of
            # its heap, so this costs one peek per port, never a scan of the table (a MAC
            # flood into a full table must stay cheap).
            for p in list(self._per_port):
                if self._free_slot(p, now_ns, evict=False):
                    break
        if self.n_dynamic + self.n_static >= self.max_entries:
            victim_port = max(self._per_port, key=self._per_port.__getitem__, default=None)
            if victim_port is None or not self._evict_from(victim_port):
                self.stats["learn_refused"] += 1
                return
        e = FdbEntry(mac, vlan, port, now_ns)
        tbl[mac] = e
        self._add_dynamic(e)
        self.stats["learned"] += 1

    def _move(self, e: FdbEntry, port: int, now_ns: int) -> None:
        if self.damp_moves > 0:
            if now_ns < e.hold_until:
                self.stats["moves_damped"] += 1
                return
            times = e.move_times
            if times is None:
                times = e.move_times = deque(maxlen=self.damp_moves)
            while times and now_ns - times[0] >= self.damp_window_ns:
                times.popleft()
            if len(times) >= self.damp_moves:
                e.hold_until = now_ns + self.damp_hold_ns
                self.stats["moves_damped"] += 1
                self.moves.append(Move(e.mac, e.vlan, e.port, port, now_ns, damped=True))
                return
            times.append(now_ns)
        limit = self.port_limits.get(port)
        if limit is not None and self._per_port.get(port, 0) >= limit[0] and not self._free_slot(
                port, now_ns, evict=limit[1] == "evict"):
            self.stats["learn_refused"] += 1
            return
        self.moves.append(Move(e.mac, e.vlan, e.port, port, now_ns))
        self._dec_port(e.port)
        e.port = port
        e.seen = now_ns
        self._per_port[port] = self._per_port.get(port, 0) + 1
        self._heap_push(e)
        self.stats["moved"] += 1

    def add_static(self, vlan: int, mac: bytes, port: int) -> None:
        """A permanent entry; replaces a dynamic one for the same (VLAN, MAC)."""
        tbl = self.table(vlan)
        old = tbl.get(mac)
        if old is not None:
            self._remove(old)
        elif len(self) >= self.max_entries:
            victim = max(self._per_port, key=self._per_port.__getitem__, default=None)
            if victim is None or not self._evict_from(victim):
                raise ValueError(f"FDB full ({self.max_entries} static entries): cannot add a static entry")
        tbl[mac] = FdbEntry(mac, vlan, port, STATIC_SEEN, static=True)
        self.n_static += 1

    def delete(self, vlan: int, mac: bytes) -> bool:
        e = self.vlans.get(vlan, {}).get(mac)
        if e is None:
            return False
        self._remove(e)
        return True

    def flush(self, port: int | None = None, vlan: int | None = None, static: bool = False) -> int:
        """Remove dynamic entries (and static ones if asked) of a port/VLAN, or all."""
        victims = [e for tbl in self.vlans.values() for e in tbl.values()
                   if (port is None or e.port == port) and (vlan is None or e.vlan == vlan)
                   and (static or not e.static)]
        for e in victims:
            self._remove(e)
        return len(victims)

    def expire(self, now_ns: int) -> int:
        """Remove every dynamic entry whose ageing time has passed."""
        old = [e for tbl in self.vlans.values() for e in tbl.values()
               if not e.static and now_ns - e.seen >= self.ageing_ns]
        for e in old:
            self._remove(e)
        self.stats["expired"] += len(old)
        return len(old)

    def set_port_limit(self, port: int, limit: int | None, policy: str = "stop") -> None:
        if limit is None:
            self.port_limits.pop(port, None)
            return
        if policy not in ("stop", "evict"):
            raise ValueError(f"bad mac limit policy {policy!r}: use stop or evict")
        if limit < 1:
            raise ValueError(f"bad per-port mac limit {limit}: must be >= 1")
        self.port_limits[port] = (limit, policy)
        # A limit lowered under what the port holds: "evict" trims it now, oldest first
        # (counted as evicted), as the policy would have; "stop" keeps what it has and
        # learns nothing more there until it is under the limit (the Linux bridge's
        # learned-entry limit does the same).
        if policy == "evict":
            while self._per_port.get(port, 0) > limit and self._evict_from(port):
                pass

    # -- internals -------------------------------------------------------------
    def _add_dynamic(self, e: FdbEntry) -> None:
        self.n_dynamic += 1
        self._per_port[e.port] = self._per_port.get(e.port, 0) + 1
        self._heap_push(e)

    def _heap_push(self, e: FdbEntry) -> None:
        heap = self._heaps.setdefault(e.port, [])
        self._seq += 1
        heapq.heappush(heap, (e.seen, self._seq, e))
        # Stale items pile up as entries move or die; rebuild when they dominate.
        if len(heap) > 4 * self._per_port.get(e.port, 0) + 64:
            live = {id(x): x for _, _, x in heap if x.alive and x.port == e.port}
            fresh = []
            for x in live.values():
                self._seq += 1
                fresh.append((x.seen, self._seq, x))
            heapq.heapify(fresh)
            self._heaps[e.port] = fresh

    def _evict_from(self, port: int) -> bool:
        """Evict ``port``'s least recently seen dynamic entry; False if it has none."""
        heap = self._heaps.get(port)
        while heap:
            seen, _, e = heapq.heappop(heap)
            if not e.alive or e.port != port or e.static:
                continue
            if e.seen != seen:          # refreshed since pushed: not the oldest yet
                self._seq += 1
                heapq.heappush(heap, (e.seen, self._seq, e))
                continue
            self._remove(e)
            self.stats["evicted"] += 1
            return True
        return False

    def _free_slot(self, port: int, now_ns: int, evict: bool) -> bool:
        """Make room under ``port``'s limit: remove its least recently seen dynamic entry if
        that has aged out (counted ``expired``), or with ``evict`` in any case (``evicted``).
        False if nothing was removed.  Reads the port's heap only, never the whole table."""
        heap = self._heaps.get(port)
        while heap:
            seen, _, e = heap[0]
            if not e.alive or e.port != port or e.static:
                heapq.heappop(heap)
                continue
            if e.seen != seen:          # refreshed since pushed: re-file under its real age
                self._seq += 1
                heapq.heapreplace(heap, (e.seen, self._seq, e))
                continue
            if now_ns - e.seen >= self.ageing_ns:
                reason = "expired"
            elif evict:
                reason = "evicted"
            else:
                return False
            heapq.heappop(heap)
            self._remove(e)
            self.stats[reason] += 1
            return True
        return False

    def _remove(self, e: FdbEntry) -> None:
        tbl = self.vlans.get(e.vlan)
        if tbl is not None and tbl.get(e.mac) is e:
            del tbl[e.mac]
        if not e.alive:
            return
        e.alive = False
        if e.static:
            self.n_static -= 1
        else:
            self.n_dynamic -= 1
            self._dec_port(e.port)

    def _dec_port(self, port: int) -> None:
        left = self._per_port[port] - 1
        if left:
            self._per_port[port] = left
        else:
            del self._per_port[port]
            self._heaps.pop(port, None)

    def snapshot(self) -> dict[str, Any]:
        """Statistics as OVS's fdb/stats-show words them."""
        return {"current_entries": len(self), "max_entries": self.max_entries,
                "static": self.n_static, **self.stats}
