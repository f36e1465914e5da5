"""A VF's BAR0: the registers its driver (ixgbevf) reads and writes (82599 VF layout).

=========  ========================  ===================================================
offset     register                  model
=========  ========================  ===================================================
0x00000    VFCTRL                    bit 26 RST: a VF reset (queues off, VFRE/VFTE off,
                                     frames flushed, VFLRE to the PF, RSTD when done)
0x00008    VFSTATUS                  reads 0
0x00010    VFLINKS                   bit 30 link up (the port's), bits 29:28 speed
                                     (3 = 10G, 2 = 1G, 1 = 100M)
0x00200    VFMBMEM[0..15]            the mailbox buffer (`sriov.mailbox`)
0x002FC    VFMAILBOX                 the mailbox control bits (PFSTS/PFACK/RSTD read-to-clear)
0x00300    VFPSRTYPE                 the pool's PSRTYPE: RQPL (31:29), how many of the VF's
                                     queues RSS spreads over (reset 0: queue 0 only)
0x01000    VFRDBAL(i) / 0x01004 BAH  RX descriptor ring base (an IOVA) of VF queue i
0x01008    VFRDLEN(i)                ring bytes (16 per descriptor; 64..4096 descriptors,
                                     a multiple of 128 bytes, else ignored)
0x01010    VFRDH(i) / 0x01018 RDT    head (the DMA engine's next descriptor) / tail (kept)
0x01014    VFSRRCTL(i)               BSIZEPACKET bits 4:0 (KiB); DROP_EN is the PF's (QDE)
0x01028    VFRXDCTL(i)               bit 25 ENABLE, bit 30 VME (VLAN strip)
0x0101C    VFGPRC, 0x1020/0x1024 VFGORC_LSB/MSB, 0x1034 VFMPRC: RX statistics of the VF
0x02000..  VFTDBAL/BAH/LEN/H/T(i)    TX ring, as RX (0x2000 + 0x40 * i ...)
0x02028    VFTXDCTL(i)               bit 25 ENABLE
0x0201C    VFGPTC, 0x2020/0x2024 VFGOTC_LSB/MSB: TX statistics
=========  ========================  ===================================================

Queue i of the VF is queue i of its pool (`Profile.queue_of`); writes reach the NIC's
rings through its API, so the NIC's state stays the one truth.  Statistics are
free-running (they wrap at 32 bits; GORC/GOTC are 36-bit LSB/MSB pairs), counted from
the VF's creation.  Unknown offsets read 0 and ignore writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicmodel.rings import RING_MAX, RING_MIN

if TYPE_CHECKING:
    from sriov.virtual_function import VirtualFunction

__all__ = ["VfRegisters", "VFCTRL", "VFSTATUS", "VFLINKS", "VFMBMEM", "VFMAILBOX", "VFCTRL_RST", "VFPSRTYPE",
           "VFRDBAL", "VFRDBAH", "VFRDLEN", "VFRDH", "VFSRRCTL", "VFRDT", "VFRXDCTL",
           "VFTDBAL", "VFTDBAH", "VFTDLEN", "VFTDH", "VFTDT", "VFTXDCTL",
           "VFGPRC", "VFGORC_LSB", "VFGORC_MSB", "VFMPRC", "VFGPTC", "VFGOTC_LSB", "VFGOTC_MSB",
           "DCTL_ENABLE", "RXDCTL_VME", "LINKS_UP"]

VFCTRL, VFSTATUS, VFLINKS, VFMBMEM, VFMAILBOX = 0x0000, 0x0008, 0x0010, 0x0200, 0x02FC
VFPSRTYPE = 0x0300
VFCTRL_RST = 1 << 26
LINKS_UP = 1 << 30
VFRDBAL, VFRDBAH, VFRDLEN, VFRDH, VFSRRCTL, VFRDT, VFRXDCTL = 0x1000, 0x1004, 0x1008, 0x1010, 0x1014, 0x1018, 0x1028
VFTDBAL, VFTDBAH, VFTDLEN, VFTDH, VFTDT, VFTXDCTL = 0x2000, 0x2004, 0x2008, 0x2010, 0x2018, 0x2028
VFGPRC, VFGORC_LSB, VFGORC_MSB, VFMPRC = 0x101C, 0x1020, 0x1024, 0x1034
VFGPTC, VFGOTC_LSB, VFGOTC_MSB = 0x201C, 0x2020, 0x2024
DCTL_ENABLE, RXDCTL_VME = 1 << 25, 1 << 30
M32 = 0xFFFFFFFF
_SPEED = {10_000: 3, 1000: 2, 100: 1}


class VfRegisters:
    """Decodes the VF's BAR0 (see the module docstring)."""

    def __init__(self, vf: VirtualFunction) -> None:
        self.vf = vf
        self.tails = {("rx", i): 0 for i in range(8)} | {("tx", i): 0 for i in range(8)}

    # -- reads ------------------------------------------------------------
    def read32(self, off: int) -> int:
        vf = self.vf
        mbx = vf.mailbox
        if off == VFMAILBOX:
            return mbx.vf_read()
        if VFMBMEM <= off < VFMBMEM + 64 and off % 4 == 0:
            return mbx.vf_read_mem((off - VFMBMEM) // 4)
        if off == VFLINKS:
            st = vf.nic.state
            speed = _SPEED.get(st.link_speed_bps // 1_000_000, 0)
            return (LINKS_UP if st.link_up else 0) | (speed << 28)
        if off in (VFCTRL, VFSTATUS):
            return 0
        if off == VFPSRTYPE:
            return vf.nic.state.pools[vf.pool].psrtype
        q, reg, rx = self._queue_reg(off)
        if q >= 0:
            return self._read_queue(q, reg, rx)
        s = vf.stats()
        stats = {VFGPRC: s["rx_packets"], VFGORC_LSB: s["rx_bytes"], VFGORC_MSB: s["rx_bytes"] >> 32,
                 VFMPRC: s["multicast"], VFGPTC: s["tx_packets"], VFGOTC_LSB: s["tx_bytes"],
                 VFGOTC_MSB: s["tx_bytes"] >> 32}
        if off in stats:
            v = stats[off]
            return v & 0xF if off in (VFGORC_MSB, VFGOTC_MSB) else v & M32
        return 0

    @staticmethod
    def _queue_reg(off: int) -> tuple[int, int, bool]:
        """(queue, register base, is RX) for a per-queue register, else (-1, 0, False)."""
        for base, rx in ((0x1000, True), (0x2000, False)):
            rel = off - base
            if 0 <= rel < 0x40 * 8 and rel % 0x40 in (0x00, 0x04, 0x08, 0x10, 0x14, 0x18, 0x28):
                return rel // 0x40, base + rel % 0x40, rx
        return -1, 0, False

    def _read_queue(self, i: int, reg: int, rx: bool) -> int:
        vf = self.vf
        if i >= vf.num_queues:
            return 0
        q = vf.nic_queues[i]
        dq = (vf.dma.rxq if rx else vf.dma.txq)[i]
        if reg in (VFRDBAL, VFTDBAL):
            return dq.ring_iova & M32
        if reg in (VFRDBAH, VFTDBAH):
            return dq.ring_iova >> 32
        if reg == VFRDLEN:
            return vf.nic.rings.queues[q].size * 16
        if reg == VFTDLEN:
            return vf.nic.txa.queues[q].size * 16
        if reg in (VFRDH, VFTDH):
            return dq.head
        if reg in (VFRDT, VFTDT):
            return self.tails[("rx" if rx else "tx", i)]
        if reg == VFSRRCTL:
            return (dq.bsize // 1024) | (1 << 28)
        if reg == VFRXDCTL:
            return (DCTL_ENABLE if vf.nic.rings.queues[q].enabled else 0) | (RXDCTL_VME if vf.vme[i] else 0)
        if reg == VFTXDCTL:
            return DCTL_ENABLE if vf.nic.txa.queues[q].enabled else 0
        return 0

    # -- writes -----------------------------------------------------------
    def write32(self, off: int, v: int) -> None:
        vf = self.vf
        mbx = vf.mailbox
        if off == VFMAILBOX:
            mbx.vf_write(v)
            return
        if VFMBMEM <= off < VFMBMEM + 64 and off % 4 == 0:
            mbx.vf_write_mem((off - VFMBMEM) // 4, v)
            return
        if off == VFCTRL:
            if v & VFCTRL_RST:
                vf.hardware_reset()
            return
        if off == VFPSRTYPE:
            vf.nic.set_psrtype(vf.pool, v)
            return
        i, reg, rx = self._queue_reg(off)
        if i < 0 or i >= vf.num_queues:
            return
        nic = vf.nic
        q = vf.nic_queues[i]
        dq = (vf.dma.rxq if rx else vf.dma.txq)[i]
        if reg in (VFRDBAL, VFTDBAL):
            dq.ring_iova = (dq.ring_iova & ~M32) | (v & ~0x7F)      # 128-byte aligned
            dq.ring_hpa = -1
        elif reg in (VFRDBAH, VFTDBAH):
            dq.ring_iova = (dq.ring_iova & M32) | (v << 32)
            dq.ring_hpa = -1
        elif reg in (VFRDLEN, VFTDLEN):
            n = v // 16
            if v % 128 or not RING_MIN <= n <= RING_MAX:
                return                      # not a ring length the hardware takes
            if rx:
                nic.set_rings(rx=n, queue=q)
            else:
                nic.set_rings(tx=n, queue=q)
            dq.size, dq.head = n, 0
        elif reg in (VFRDT, VFTDT):
            self.tails[("rx" if rx else "tx", i)] = v & 0xFFFF
        elif reg == VFSRRCTL:
            kib = v & 0x1F
            dq.bsize = kib * 1024 if kib else 2048
        elif reg == VFRXDCTL:
            vf.vme[i] = bool(v & RXDCTL_VME)
            nic.set_queue_enabled(q, rx=bool(v & DCTL_ENABLE))
            vf.pf._apply_strip(vf)
        elif reg == VFTXDCTL:
            nic.set_queue_enabled(q, tx=bool(v & DCTL_ENABLE))
            vf.dma.refresh_tx()
