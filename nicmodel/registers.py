"""BAR0 register file: the virtualization registers by their datasheet names.

`RegisterFile` decodes 32-bit reads and writes of BAR0 offsets (82599
layout, ``ixgbe_type.h``) into the same `NicState` / ring / arbiter objects
the Python API changes, and encodes them back on read.  There is no second
copy of the state: a register write and the equivalent `Nic` method leave
the NIC identical (``tests/unit/nicmodel/test_registers.py`` checks it).

Model choices (see docs/nicmodel.md):

* One register layout (the 82599's) for every profile; table sizes follow the
  profile (24 RAR on the 82576, ...).  The 82576's own offsets are not modelled.
* VMOLR/PFVML2FLT (one register, two names) carries AUPE 24, ROMPE 25,
  ROPE 26, BAM 27, MPE 28, UPE 22 and VPE 23 (X550), and -- as on the
  82576's VMOLR -- RLPML in bits 13:0 and LPE in bit 16.
* RTTDT1C (credit refill of the queue selected by RTTDQSEL) sets the refill
  of that queue's *pool*: the model arbitrates between pools.
* Statistics registers (GPRC, GPTC, BPRC, MPRC, ROC, RUC, MPC, SSVPC,
  QPRC[0..15], QPRDC[0..15]) are clear-on-read views of the cumulative
  counters; QPRC[n]/QPRDC[n] count the RX queues RQSMR maps to statistics set
  n (reset: every queue in set 0), so every one of the 128 queues is covered.
* PSRTYPE[n] is stored as written; only RQPL (31:29) acts: RSS spreads pool n's frames over
  2**RQPL of its queues (reset 0: one).  ``Nic.set_layout`` writes it for every pool as
  ixgbe_setup_psrtype does; an MRQC write alone leaves it.
* PFVMECM selects the pools whose TX security drops SSVPC counts.

Use ``write(name, index, value)`` / ``read(name, index)`` by name, or
``write32(offset, value)`` / ``read32(offset)`` by offset.  Unknown offsets
read 0 and ignore writes (as reserved registers do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nicmodel.state import VMVIR_MODES
from nicmodel.tables import NicError

if TYPE_CHECKING:
    from nicmodel.nic import Nic

__all__ = ["RegisterFile", "Register", "queue_reg_offset"]

M32 = 0xFFFFFFFF
VMOLR_BITS = {"upe": 22, "vpe": 23, "aupe": 24, "rompe": 25, "rope": 26, "bam": 27, "mpe": 28}


def queue_reg_offset(base_lo: int, base_hi: int, q: int) -> int:
    """Per-queue registers: queues 0-63 at base_lo + 0x40*q, 64-127 at base_hi + 0x40*(q-64)."""
    return base_lo + 0x40 * q if q < 64 else base_hi + 0x40 * (q - 64)


@dataclass(frozen=True)
class Register:
    name: str
    count: int
    offset: Callable[[int], int]
    read: Callable[[int], int]
    write: Callable[[int, int], None] | None
    changes_state: bool = True    # a write moves NicState.generation (the data path's caches)


def _stride(base: int, step: int) -> Callable[[int], int]:
    return lambda i: base + step * i


def _bits(value: int, lo: int, n: int) -> int:
    return (value >> lo) & ((1 << n) - 1)


class RegisterFile:
    def __init__(self, nic: Nic) -> None:
        self.nic = nic
        self.rttdqsel = 0
        self.pfqde = 0
        nq = nic.profile.num_queues
        self.rqsmr = [0] * 32
        self._set_packets = [0] * 16
        self._set_drops = [0] * 16
        self._base_packets = [0] * nq
        self._base_drops = [0] * nq
        self._stat_seen: dict[tuple[str, int], int] = {}
        self.regs: dict[str, Register] = {}
        self._by_offset: dict[int, tuple[Register, int]] = {}
        self._define()

    # -- access ------------------------------------------------------------
    def read(self, name: str, index: int = 0) -> int:
        r = self._reg(name, index)
        return r.read(index) & M32

    def write(self, name: str, index: int, value: int) -> None:
        r = self._reg(name, index)
        if r.write is None:
            raise NicError(f"{name} is read-only")
        r.write(index, value & M32)
        if r.changes_state:
            self.nic.state.changed()

    def read32(self, offset: int) -> int:
        hit = self._by_offset.get(offset)
        return 0 if hit is None else hit[0].read(hit[1]) & M32

    def write32(self, offset: int, value: int) -> None:
        hit = self._by_offset.get(offset)
        if hit is None or hit[0].write is None:
            return
        hit[0].write(hit[1], value & M32)
        if hit[0].changes_state:
            self.nic.state.changed()

    def offset(self, name: str, index: int = 0) -> int:
        return self._reg(name, index).offset(index)

    def _reg(self, name: str, index: int) -> Register:
        r = self.regs.get(name)
        if r is None:
            raise NicError(f"unknown register {name!r}")
        if not 0 <= index < r.count:
            raise NicError(f"{name}[{index}] out of range 0..{r.count - 1}")
        return r

    def add(self, name: str, count: int, offset: Callable[[int], int], read: Callable[[int], int],
            write: Callable[[int, int], None] | None = None, *, changes_state: bool = True) -> None:
        """Register ``count`` registers ``name[i]`` at ``offset(i)`` (a layer above the NIC adding
        its own: the SR-IOV mailbox's PFMAILBOX/PFMBMEM/MBVFICR/VFLRE).  Offsets already taken keep
        their first owner.  ``changes_state=False``: writes do not touch the programmable state
        (a mailbox), so they leave the data path's caches alone."""
        self._add(name, count, offset, read, write, changes_state)

    def _add(self, name: str, count: int, offset: Callable[[int], int], read: Callable[[int], int],
             write: Callable[[int, int], None] | None = None, changes_state: bool = True) -> None:
        r = Register(name, count, offset, read, write, changes_state)
        self.regs[name] = r
        for i in range(count):
            self._by_offset.setdefault(offset(i), (r, i))

    # -- the register map --------------------------------------------------
    def _define(self) -> None:  # noqa: C901 - one table, read top to bottom
        nic = self.nic
        st = nic.state
        prof = nic.profile
        nq = prof.num_queues
        rx, tx = nic.rings.queues, nic.txa.queues

        # RAL/RAH/MPSAR: exact filters
        def ral_r(i: int) -> int:
            return int.from_bytes(st.rar.mac[i][0:4], "little")

        def ral_w(i: int, v: int) -> None:
            m = st.rar.mac[i]
            st.rar.set_entry(i, v.to_bytes(4, "little") + m[4:6], st.rar.valid[i], st.rar.pools[i])

        def rah_r(i: int) -> int:
            return int.from_bytes(st.rar.mac[i][4:6], "little") | (st.rar.valid[i] << 31)

        def rah_w(i: int, v: int) -> None:
            m = st.rar.mac[i]
            st.rar.set_entry(i, m[0:4] + (v & 0xFFFF).to_bytes(2, "little"), bool(v >> 31), st.rar.pools[i])

        def mpsar_r(half: int) -> Callable[[int], int]:
            return lambda i: (st.rar.pools[i] >> (32 * half)) & M32

        def mpsar_w(half: int) -> Callable[[int, int], None]:
            def w(i: int, v: int) -> None:
                p = st.rar.pools[i] & ~(M32 << (32 * half)) | (v << (32 * half))
                st.rar.set_entry(i, st.rar.mac[i], st.rar.valid[i], p)
            return w

        n = prof.rar_entries
        self._add("RAL", n, lambda i: 0x0A200 + 8 * i, ral_r, ral_w)
        self._add("RAH", n, lambda i: 0x0A204 + 8 * i, rah_r, rah_w)
        self._add("MPSAR_LO", n, lambda i: 0x0A600 + 8 * i, mpsar_r(0), mpsar_w(0))
        self._add("MPSAR_HI", n, lambda i: 0x0A604 + 8 * i, mpsar_r(1), mpsar_w(1))

        # hash tables
        for name, base, table in (("MTA", 0x05200, st.mta), ("UTA", 0x0F400, st.uta),
                                  ("VFTA", 0x0A000, st.vfta)):
            self._add(name, 128, _stride(base, 4), table.read_word, table.write_word)

        # VLVF / VLVFB
        def vlvf_r(i: int) -> int:
            return st.vlvf.vid[i] | (st.vlvf.valid[i] << 31)

        def vlvf_w(i: int, v: int) -> None:
            st.vlvf.set_entry(i, v & 0xFFF, bool(v >> 31), st.vlvf.pools[i])

        def vlvfb_r(j: int) -> int:
            return (st.vlvf.pools[j // 2] >> (32 * (j % 2))) & M32

        def vlvfb_w(j: int, v: int) -> None:
            i, half = j // 2, j % 2
            p = st.vlvf.pools[i] & ~(M32 << (32 * half)) | (v << (32 * half))
            st.vlvf.set_entry(i, st.vlvf.vid[i], st.vlvf.valid[i], p)

        nv = prof.vlvf_entries
        self._add("VLVF", nv, lambda i: 0x0F100 + 4 * i, vlvf_r, vlvf_w)
        self._add("VLVFB", 2 * nv, lambda j: 0x0F200 + 4 * j, vlvfb_r, vlvfb_w)

        # VMOLR / PFVML2FLT (same register)
        def vmolr_r(p: int) -> int:
            cfg = st.pools[p]
            v = sum(1 << b for k, b in VMOLR_BITS.items() if getattr(cfg, k))
            return v | (cfg.rlpml & 0x3FFF) | (cfg.lpe << 16)

        def vmolr_w(p: int, v: int) -> None:
            cfg = st.pools[p]
            for k, b in VMOLR_BITS.items():
                on = bool((v >> b) & 1)
                if k in ("upe", "vpe") and not prof.per_pool_upe:
                    on = False  # reserved on the 82599/82576 (E.4)
                setattr(cfg, k, on)
            cfg.rlpml = v & 0x3FFF
            cfg.lpe = bool((v >> 16) & 1)

        self._add("VMOLR", 64, lambda p: 0x0F000 + 4 * p, vmolr_r, vmolr_w)
        self.regs["PFVML2FLT"] = self.regs["VMOLR"]

        # PFVTCTL
        def vtctl_r(_: int) -> int:
            return (st.vt_en | (st.def_pool << 7) | (st.dis_def_pool << 29) | (st.rpl_en << 30))

        def vtctl_w(_: int, v: int) -> None:
            dp = _bits(v, 7, 6)
            st.check_pool(dp)
            st.vt_en, st.def_pool = bool(v & 1), dp
            st.dis_def_pool, st.rpl_en = bool((v >> 29) & 1), bool((v >> 30) & 1)

        self._add("PFVTCTL", 1, lambda i: 0x051B0, vtctl_r, vtctl_w)

        # 64-bit pool bitmaps as two registers
        def bitmap(attr: str) -> tuple[Callable[[int], int], Callable[[int, int], None]]:
            def r(i: int) -> int:
                return (getattr(st, attr) >> (32 * i)) & M32

            def w(i: int, v: int) -> None:
                setattr(st, attr, getattr(st, attr) & ~(M32 << (32 * i)) | (v << (32 * i)))
            return r, w

        for name, base, attr in (("PFVFRE", 0x051E0, "vfre"), ("PFVFTE", 0x08110, "vfte"),
                                 ("PFVMTXSW", 0x05180, "lle"), ("PFVMECM", 0x08790, "vmecm")):
            r, w = bitmap(attr)
            self._add(name, 2, _stride(base, 4), r, w)

        def flag_reg(attr: str, bit: int) -> tuple[Callable[[int], int], Callable[[int, int], None]]:
            return (lambda _: int(getattr(st, attr)) << bit,
                    lambda _, v: setattr(st, attr, bool((v >> bit) & 1)))

        self._add("PFDTXGSWC", 1, lambda i: 0x08220, *flag_reg("veb_en", 0))
        self._add("VLNCTRL", 1, lambda i: 0x05088, *flag_reg("vlan_filter_en", 30))

        def mcst_w(_: int, v: int) -> None:
            st.mo = v & 3
        self._add("MCSTCTRL", 1, lambda i: 0x05090, lambda _: st.mo | 4, mcst_w)

        def mrqc_w(_: int, v: int) -> None:
            st.set_layout(prof.layout(v & 0xF))
        self._add("MRQC", 1, lambda i: 0x0EC80, lambda _: st.layout.mrqc, mrqc_w)

        # PSRTYPE: RQPL (31:29) is how many of the pool's queues RSS uses; a write of MRQC alone
        # leaves it as it was (the driver writes both, as Nic.set_layout does)
        def psrtype_w(p: int, v: int) -> None:
            st.pools[p].psrtype = v
        self._add("PSRTYPE", 64, lambda p: 0x0EA00 + 4 * p, lambda p: st.pools[p].psrtype, psrtype_w)

        # per-queue RX: SRRCTL.DROP_EN, RXDCTL.ENABLE/VME, RDLEN
        def srrctl_w(q: int, v: int) -> None:
            rx[q].drop_en = bool((v >> 28) & 1)
            nic.rings.service()

        def rxdctl_w(q: int, v: int) -> None:
            rx[q].set_enabled(bool((v >> 25) & 1))
            rx[q].vlan_strip = bool((v >> 30) & 1)
            nic.rings.service()

        def rdlen_w(q: int, v: int) -> None:
            rx[q].set_size(v // 16)
            nic.rings.service()

        self._add("SRRCTL", nq, lambda q: queue_reg_offset(0x01014, 0x0D014, q),
                  lambda q: (rx[q].drop_en << 28) | 0x2, srrctl_w)
        self._add("RXDCTL", nq, lambda q: queue_reg_offset(0x01028, 0x0D028, q),
                  lambda q: (rx[q].enabled << 25) | (rx[q].vlan_strip << 30), rxdctl_w)
        self._add("RDLEN", nq, lambda q: queue_reg_offset(0x01008, 0x0D008, q),
                  lambda q: rx[q].size * 16, rdlen_w)

        # PFQDE: drop enable by queue index (write-command register)
        def pfqde_w(_: int, v: int) -> None:
            self.pfqde = v
            if (v >> 16) & 1:  # WE
                q = _bits(v, 8, 7)
                if q < nq:
                    rx[q].drop_en = bool(v & 1)
                    nic.rings.service()
        self._add("PFQDE", 1, lambda i: 0x02F04,
                  lambda _: (self.pfqde & ~1 & ~0x10000) | rx[_bits(self.pfqde, 8, 7) % nq].drop_en, pfqde_w)

        # per-queue TX
        def txdctl_w(q: int, v: int) -> None:
            tx[q].enabled = bool((v >> 25) & 1)

        self._add("TXDCTL", nq, lambda q: 0x06028 + 0x40 * q, lambda q: tx[q].enabled << 25, txdctl_w)
        self._add("TDLEN", nq, lambda q: 0x06008 + 0x40 * q, lambda q: tx[q].size * 16,
                  lambda q, v: tx[q].set_size(v // 16))

        # rate limiter: RTTDQSEL selects the queue, RTTBCNRC holds the rate factor
        def sel_w(_: int, v: int) -> None:
            self.rttdqsel = v % nq
        self._add("RTTDQSEL", 1, lambda i: 0x04904, lambda _: self.rttdqsel, sel_w)

        def bcnrc_r(_: int) -> int:
            q = tx[self.rttdqsel]
            if not q.rate_bps:
                return 0
            f = round(st.link_speed_bps * (1 << 14) / q.rate_bps)
            return (1 << 31) | ((f >> 14) << 14) | (f & 0x3FFF)

        def bcnrc_w(_: int, v: int) -> None:
            q = tx[self.rttdqsel]
            factor = _bits(v, 0, 24)  # RF_INT 23:14 . RF_DEC 13:0, a 10.14 fixed-point number
            if not (v >> 31) or not factor:
                q.set_rate(0)
            else:
                q.set_rate(round(st.link_speed_bps * (1 << 14) / factor))
        self._add("RTTBCNRC", 1, lambda i: 0x04984, bcnrc_r, bcnrc_w)

        def t1c_w(_: int, v: int) -> None:
            refill = v & 0x3FFF
            if refill:
                st.pools[st.pool_of_queue(self.rttdqsel)].tx_refill = refill
        self._add("RTTDT1C", 1, lambda i: 0x04908,
                  lambda _: st.pools[st.pool_of_queue(self.rttdqsel)].tx_refill, t1c_w)

        # PFVMVIR: VLAN insertion per pool
        def vmvir_r(p: int) -> int:
            cfg = st.pools[p]
            return (VMVIR_MODES.index(cfg.vmvir_mode) << 30) | (cfg.vmvir_qos << 13) | cfg.vmvir_vid

        def vmvir_w(p: int, v: int) -> None:
            cfg = st.pools[p]
            cfg.vmvir_mode = VMVIR_MODES[min(v >> 30, 2)]
            cfg.vmvir_vid, cfg.vmvir_qos = v & 0xFFF, _bits(v, 13, 3)
        self._add("PFVMVIR", 64, lambda p: 0x08000 + 4 * p, vmvir_r, vmvir_w)

        # PFVFSPOOF: 8 registers, MACAS bits 7:0 and VLANAS bits 15:8 for pools 8n..8n+7
        def spoof_r(n: int) -> int:
            v = 0
            for k in range(8):
                cfg = st.pools[8 * n + k]
                v |= (cfg.spoof_mac << k) | (cfg.spoof_vlan << (8 + k))
            return v

        def spoof_w(n: int, v: int) -> None:
            for k in range(8):
                cfg = st.pools[8 * n + k]
                cfg.spoof_mac = bool((v >> k) & 1)
                cfg.spoof_vlan = bool((v >> (8 + k)) & 1) and cfg.spoof_mac
        self._add("PFVFSPOOF", 8, lambda n: 0x08200 + 4 * n, spoof_r, spoof_w)

        # mirror rules
        def mrctl_r(r: int) -> int:
            m = st.mirror[r]
            return (m.pool_mirror | (m.uplink_mirror << 1) | (m.downlink_mirror << 2)
                    | (m.vlan_mirror << 3) | (m.dst << 8))

        def mrctl_w(r: int, v: int) -> None:
            m = st.mirror[r]
            m.pool_mirror, m.uplink_mirror = bool(v & 1), bool(v & 2)
            m.downlink_mirror, m.vlan_mirror = bool(v & 4), bool(v & 8)
            m.dst = _bits(v, 8, 6)

        def half_r(attr: str) -> Callable[[int], int]:
            return lambda j: (getattr(st.mirror[j // 2], attr) >> (32 * (j % 2))) & M32

        def half_w(attr: str) -> Callable[[int, int], None]:
            def w(j: int, v: int) -> None:
                m, h = st.mirror[j // 2], j % 2
                setattr(m, attr, getattr(m, attr) & ~(M32 << (32 * h)) | (v << (32 * h)))
            return w

        self._add("PFMRCTL", 4, lambda r: 0x0F600 + 4 * r, mrctl_r, mrctl_w)
        self._add("PFMRVLAN", 8, lambda j: 0x0F610 + 4 * j, half_r("vlvf_bits"), half_w("vlvf_bits"))
        self._add("PFMRVM", 8, lambda j: 0x0F630 + 4 * j, half_r("pools"), half_w("pools"))

        # statistics: clear-on-read views of the cumulative counters
        def stat(name: str, get: Callable[[int], int]) -> Callable[[int], int]:
            def r(i: int) -> int:
                total = get(i)
                seen = self._stat_seen.get((name, i), 0)
                self._stat_seen[(name, i)] = total
                return total - seen
            return r

        def port(key: str) -> Callable[[int], int]:
            return lambda _: nic.snapshot()["port"][key]

        for name, off, key in (("GPRC", 0x04074, "gprc"), ("BPRC", 0x04078, "bprc"),
                               ("MPRC", 0x0407C, "mprc"), ("GPTC", 0x04080, "gptc"),
                               ("RUC", 0x040A4, "ruc"), ("ROC", 0x040AC, "roc"),
                               ("MPC", 0x03FA0, "mpc"), ("SSVPC", 0x08780, "ssvpc")):
            self._add(name, 1, _stride(off, 0), stat(name, port(key)))
        # RQSMR: 32 registers, 4 bits per RX queue: the statistics set (0..15) QPRC[n] and
        # QPRDC[n] count it in (reset 0: every queue in set 0).  A remap moves a queue's later
        # packets only: what it counted so far stays with its old set.
        def qmap(q: int) -> int:
            return (self.rqsmr[q // 4] >> (8 * (q % 4))) & 0xF

        def settle() -> None:
            for q in range(nq):
                m = qmap(q)
                pk, dr = rx[q].rx_packets, rx[q].rx_dropped
                self._set_packets[m] += pk - self._base_packets[q]
                self._set_drops[m] += dr - self._base_drops[q]
                self._base_packets[q], self._base_drops[q] = pk, dr

        def rqsmr_w(n: int, v: int) -> None:
            settle()
            self.rqsmr[n] = v & 0x0F0F0F0F

        def set_count(totals: list[int]) -> Callable[[int], int]:
            def get(i: int) -> int:
                settle()
                return totals[i]
            return get

        self._add("RQSMR", 32, _stride(0x02300, 4), lambda n: self.rqsmr[n], rqsmr_w)
        self._add("QPRC", 16, lambda i: 0x01030 + 0x40 * i, stat("QPRC", set_count(self._set_packets)))
        self._add("QPRDC", 16, lambda i: 0x01430 + 0x40 * i, stat("QPRDC", set_count(self._set_drops)))
