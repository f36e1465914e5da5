"""IxgbeVf: the guest's VF driver (what Linux's ixgbevf does), through the VF's BAR0 only.

It never touches the PF, the NIC model or the mailbox object: every step is a 32-bit
read or write of the VF's registers (`sriov.virtual_function.VfBar`), so it sees what a
real driver sees -- all-ones when the VF does not decode (VF MSE clear), read-to-clear
bits that a second read has lost, a NACK when the PF says no.

Mailbox primitives (ixgbevf mbx.c): ``_read_v2p`` ORs what VFMAILBOX shows into the
cached read-to-clear bits (``hw->mbx.v2p_mailbox``); ``check_for_msg/ack/rst`` test and
consume one of them; writing takes the VFU lock, flushes stale bits, fills VFMBMEM and
writes REQ (which releases the lock and interrupts the PF); reading takes the lock,
copies the buffer and writes ACK.  ``write_posted`` waits for PFACK, ``read_posted`` for
PFSTS, each polling at most ``retries`` times (IXGBE_VF_MBX_INIT_TIMEOUT) with ``wait()``
between polls (a deferred PF runs there; a synchronous one has already answered).

``probe()`` (ixgbevf_probe -> ixgbevf_sw_init): reset the VF (VFCTRL.RST, wait RSTD),
RESET through the mailbox (the reply gives the administrative MAC, ACK, or none, NACK,
and the multicast filter type), negotiate the API from the newest down (1.5 .. 1.0), and
ask for the queues (1.1+), of which it uses as many as the guest has CPUs (``cpus``), at
most 2 (ixgbevf_set_num_queues).  ``open(mtu, mac, multicast, xcast, vlans)`` (ixgbevf_open):
the MAC (the admin's, else ``mac``, else one derived from the VF's routing ID, as
ixgbevf's random one), SET_LPE for the MTU, VFPSRTYPE (RQPL 1 with two RX queues, else 0:
the NIC's RSS then spreads over exactly the queues it opened), the rings (descriptor rings
and buffers in the guest's RAM, VFRDBAL/VFRDLEN/VFSRRCTL/VFRXDCTL with VLAN strip, VFTDBAL/...),
UPDATE_XCAST_MODE (MULTI, as IFF_MULTICAST asks), SET_MULTICAST with at most 30 hashes
(the rest are punted, as ixgbevf's comment says), SET_VLAN for each VLAN it joins.
``set_rx_mode(groups, allmulti, promisc)`` is ixgbevf_set_rx_mode, what the guest's kernel
calls when its netdev's multicast list or flags change: the xcast mode the flags ask for
(ALLMULTI also when the list holds more groups than the 30 hashes one message carries; the
PF caps an untrusted VF at MULTI, and the groups beyond 30 are then lost, as on Linux),
then SET_MULTICAST with the list; both are kept for the reopen after a reset.
``service()`` is the watchdog: a PF control message without CTS asks for a reset,
which it then does (reset, renegotiate, reopen).

A refused request raises `VfRequestRefused` (its ``reply`` is the PF's words); a PF that
never answers, `MailboxTimeout`; a VF that reads all-ones, `SriovError` EIO.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Any

from sriov.dma import BUFFER_DEFAULT, GuestRam
from sriov.errors import SriovError
from sriov.mailbox import (
    API_10,
    API_11,
    API_12,
    API_13,
    API_14,
    API_15,
    API_VERSIONS,
    MAX_MC_HASHES,
    MBX_SIZE,
    MSG_ACK,
    MSG_CTS,
    MSG_NACK,
    MSGINFO_SHIFT,
    PF_CONTROL_MSG,
    VF_ACK,
    VF_API_NEGOTIATE,
    VF_GET_QUEUES,
    VF_GET_RETA,
    VF_GET_RSS_KEY,
    VF_PFACK,
    VF_PFSTS,
    VF_R2C,
    VF_REQ,
    VF_RESET,
    VF_RSTD,
    VF_RSTI,
    VF_SET_LPE,
    VF_SET_MAC_ADDR,
    VF_SET_MACVLAN,
    VF_SET_MULTICAST,
    VF_SET_VLAN,
    VF_UPDATE_XCAST_MODE,
    VF_VFU,
    XCAST_ALLMULTI,
    XCAST_MODES,
    XCAST_MULTI,
    XCAST_PROMISC,
    mac_to_words,
    words_to_mac,
)
from sriov.vf_regs import (
    DCTL_ENABLE,
    RXDCTL_VME,
    VFCTRL,
    VFCTRL_RST,
    VFLINKS,
    VFMAILBOX,
    VFMBMEM,
    VFPSRTYPE,
    VFRDBAH,
    VFRDBAL,
    VFRDLEN,
    VFRDT,
    VFRXDCTL,
    VFSRRCTL,
    VFTDBAL,
    VFTXDCTL,
)
from vswitch.core.frame import mac_str, parse_mac

__all__ = ["IxgbeVf", "MailboxTimeout", "VfRequestRefused", "NEGOTIATE_ORDER", "MBX_TIMEOUT"]

MBX_TIMEOUT = 2000                # IXGBE_VF_MBX_INIT_TIMEOUT polls
NEGOTIATE_ORDER = (API_15, API_14, API_13, API_12, API_11, API_10)
IXGBEVF_MAX_QUEUES = 8
IXGBEVF_MAX_RSS_QUEUES = 2
# ixgbevf_setup_psrtype: the header types it names (TCP, UDP, IPv4, IPv6, L2) and RQPL=1 (bit 29)
# when it runs more than one RX queue
PSRTYPE_HDRS = 0x10 | 0x20 | 0x100 | 0x200 | 0x1000
PSRTYPE_RQPL_2 = 1 << 29


class MailboxTimeout(SriovError):
    def __init__(self, what: str) -> None:
        super().__init__(f"mailbox: no {what} from the PF", errno.ETIMEDOUT)


class VfRequestRefused(SriovError):
    """The PF NACKed a request (``reply``: its words)."""

    def __init__(self, message: str, reply: Sequence[int], err: int = errno.EPERM) -> None:
        super().__init__(message, err)
        self.reply = list(reply)


def _mta_vector(mac: bytes, mc_filter_type: int) -> int:
    """ixgbevf_mta_vector: 12 bits of the address as the PF's MO says."""
    shift = (4, 3, 2, 0)[mc_filter_type & 3]
    return ((mac[5] << 8 | mac[4]) >> shift) & 0xFFF


class IxgbeVf:
    """ixgbevf on one VF (see the module docstring)."""

    def __init__(self, bar: Any, ram: GuestRam | None = None, *, wait: Callable[[], Any] | None = None,
                 retries: int = MBX_TIMEOUT, ring_size: int = 512, buffer_size: int = BUFFER_DEFAULT,
                 cpus: int = 1) -> None:
        self.bar = bar
        self.cpus = max(1, cpus)          # the guest's num_online_cpus()
        self.ram = ram
        self.wait = wait
        self.retries = retries
        self.ring_size = ring_size
        self.buffer_size = buffer_size
        self.v2p = 0                      # hw->mbx.v2p_mailbox: cached read-to-clear bits
        self.perm_addr: bytes | None = None
        self.mac: bytes | None = None
        self.mc_filter_type = 0
        self.api = API_10
        self.num_rx_queues = self.num_tx_queues = 1
        self.max_rx_queues = self.max_tx_queues = 1     # what GET_QUEUES offered
        self.trans_vlan = 0
        self.mtu = 1500
        self.multicast: list[bytes] = []
        self.vlans: set[int] = set()
        self.xcast = XCAST_MULTI
        self.reset_requested = False
        self.up = False
        self.rings: dict[tuple[str, int], int] = {}     # (rx|tx, queue) -> descriptor ring IOVA
        self.transcript: list[str] = []                  # what the driver did, one line per step
        self._open_args: dict[str, Any] = {}

    # -- registers -----------------------------------------------------------------
    def _read(self, off: int) -> int:
        v = int(self.bar.read32(off))
        # IXGBE_FAILED_READ_REG: all-ones may be a value; VFSTATUS reading all-ones too means gone
        if v == 0xFFFFFFFF and int(self.bar.read32(0x0008)) == 0xFFFFFFFF:
            raise SriovError(f"VF BAR0 {off:#x} reads all-ones: the VF does not decode (VF MSE clear, "
                             "or the VF is gone)", errno.EIO)
        return v

    def _write(self, off: int, v: int) -> None:
        self.bar.write32(off, v)

    # -- mailbox primitives (ixgbevf mbx.c) -----------------------------------------------
    def _read_v2p(self) -> int:
        v = self._read(VFMAILBOX) | self.v2p
        self.v2p |= v & VF_R2C
        return v

    def _check_bit(self, mask: int) -> bool:
        hit = bool(self._read_v2p() & mask)
        self.v2p &= ~mask
        return hit

    def check_for_msg(self) -> bool:
        return self._check_bit(VF_PFSTS)

    def check_for_ack(self) -> bool:
        return self._check_bit(VF_PFACK)

    def check_for_rst(self) -> bool:
        return self._check_bit(VF_RSTD | VF_RSTI)

    def _obtain_lock(self) -> None:
        self._write(VFMAILBOX, VF_VFU)
        if not self._read_v2p() & VF_VFU:
            raise SriovError("mailbox: the PF holds the buffer (VFU not granted)", errno.EBUSY)

    def write_mbx(self, words: Sequence[int]) -> None:
        self._obtain_lock()
        self.check_for_msg()                               # flush: the buffer is overwritten
        self.check_for_ack()
        for i, w in enumerate(words):
            self._write(VFMBMEM + 4 * i, w)
        self._write(VFMAILBOX, VF_REQ)                     # release the lock, interrupt the PF

    def read_mbx(self, n: int = MBX_SIZE) -> list[int]:
        self._obtain_lock()
        words = [self._read(VFMBMEM + 4 * i) for i in range(n)]
        self._write(VFMAILBOX, VF_ACK)
        return words

    def _poll(self, check: Callable[[], bool], what: str) -> None:
        for _ in range(self.retries):
            if check():
                return
            if self.wait is not None:
                self.wait()
        raise MailboxTimeout(what)

    def write_posted(self, words: Sequence[int]) -> None:
        self.write_mbx(words)
        self._poll(self.check_for_ack, "ACK")

    def read_posted(self, n: int = MBX_SIZE) -> list[int]:
        self._poll(self.check_for_msg, "message")
        return self.read_mbx(n)

    def request(self, words: Sequence[int], n: int = MBX_SIZE) -> list[int]:
        """ixgbevf_write_msg_read_ack: a request and the PF's reply (CTS kept in word 0)."""
        self.write_posted(words)
        return self.read_posted(n)

    def _ok(self, reply: list[int], code: int, what: str) -> list[int]:
        w0 = reply[0]
        if w0 & 0xFFFF == code and w0 & MSG_ACK and not w0 & MSG_NACK:
            return reply
        err = errno.EPERM if w0 & MSG_NACK else errno.EIO
        raise VfRequestRefused(f"{what}: the PF {'refused it (NACK)' if w0 & MSG_NACK else 'gave no ACK'}",
                               reply, err)

    def _note(self, line: str) -> None:
        self.transcript.append(line)

    # -- reset and negotiation --------------------------------------------------------
    def reset_hw(self) -> None:
        """ixgbevf_reset_hw_vf: stop the queues, VFCTRL.RST, wait for RSTD, RESET by mailbox."""
        for i in range(IXGBEVF_MAX_QUEUES):
            self._write(VFRXDCTL + 0x40 * i, 0)
            self._write(VFTXDCTL + 0x40 * i, 0)
        self.v2p = 0
        self._write(VFCTRL, VFCTRL_RST)
        self._poll(self.check_for_rst, "reset done (RSTD)")
        self.write_mbx([VF_RESET])
        reply = self.read_posted(4)
        w0 = reply[0]
        if w0 == VF_RESET | MSG_ACK:
            self.perm_addr = words_to_mac(reply[1], reply[2])
            self._note(f"reset: PF gave MAC {mac_str(self.perm_addr)}")
        elif w0 == VF_RESET | MSG_NACK:
            self.perm_addr = None
            self._note("reset: no MAC from the PF")
        else:
            raise VfRequestRefused(f"reset: unexpected reply {w0:#010x}", reply, errno.EIO)
        self.mc_filter_type = reply[3]
        self.api = API_10
        self.reset_requested = False

    def negotiate_api(self) -> int:
        """ixgbevf_negotiate_api: the newest version the PF ACKs."""
        for api in NEGOTIATE_ORDER:
            reply = self.request([VF_API_NEGOTIATE, api, 0], 3)
            if reply[0] & ~MSG_CTS == VF_API_NEGOTIATE | MSG_ACK:
                self.api = api
                self._note(f"api {API_VERSIONS[api]} negotiated")
                return api
            self._note(f"api {API_VERSIONS[api]} refused")
        self.api = API_10
        return API_10

    def get_queues(self) -> None:
        """ixgbevf_get_queues + ixgbevf_set_num_queues (API 1.1+): what the PF offers (and whether
        a port VLAN is there), then as many queues as the guest has CPUs, at most
        IXGBEVF_MAX_RSS_QUEUES (2) -- and never more than offered; API 1.0: one queue."""
        self.num_rx_queues = self.num_tx_queues = 1
        if self.api not in (API_11, API_12, API_13, API_14, API_15):
            return
        reply = self._ok(self.request([VF_GET_QUEUES, 0, 0, 0, 0], 5), VF_GET_QUEUES, "get queues")
        self.max_tx_queues = max(1, min(reply[1], IXGBEVF_MAX_QUEUES))
        self.max_rx_queues = max(1, min(reply[2], IXGBEVF_MAX_QUEUES))
        self.trans_vlan = reply[3]
        rss = min(self.cpus, IXGBEVF_MAX_RSS_QUEUES)
        self.num_rx_queues = min(rss, self.max_rx_queues)
        self.num_tx_queues = min(rss, self.max_tx_queues)
        self._note(f"queues: {self.max_rx_queues} rx, {self.max_tx_queues} tx offered, "
                   f"{self.num_rx_queues} rx, {self.num_tx_queues} tx used ({self.cpus} cpus), "
                   f"port vlan {bool(self.trans_vlan)}")

    def probe(self) -> None:
        self.reset_hw()
        self.negotiate_api()
        self.get_queues()

    # -- requests ---------------------------------------------------------------------
    def set_mac(self, mac: bytes) -> None:
        """ixgbevf_set_rar_vf: SET_MAC_ADDR."""
        w1, w2 = mac_to_words(mac)
        self._ok(self.request([VF_SET_MAC_ADDR, w1, w2], 3), VF_SET_MAC_ADDR, f"set MAC {mac_str(mac)}")
        self.mac = mac
        self._note(f"mac {mac_str(mac)} set")

    def set_uc_addr(self, index: int, mac: bytes | None) -> None:
        """ixgbevf_set_uc_addr_vf: SET_MACVLAN (index 0: clear the VF's extra filters)."""
        w1, w2 = mac_to_words(mac) if mac else (0, 0)
        self._ok(self.request([VF_SET_MACVLAN | (index << MSGINFO_SHIFT), w1, w2], 3), VF_SET_MACVLAN,
                 f"macvlan {index}")

    def update_mc_addr_list(self, groups: Sequence[bytes]) -> int:
        """ixgbevf_update_mc_addr_list_vf: at most 30 hashes; link-local groups are skipped.
        Returns how many groups the PF was told of."""
        cnt = min(len(groups), MAX_MC_HASHES)
        vectors: list[int] = []
        for g in groups:
            if len(vectors) == cnt:
                break
            if g[:5] == b"\x01\x80\xc2\x00\x00" and g[5] & 0xF0 == 0:
                continue                                   # is_link_local_ether_addr
            vectors.append(_mta_vector(g, self.mc_filter_type))
        vectors += [0] * (cnt - len(vectors))
        words = [VF_SET_MULTICAST | (cnt << MSGINFO_SHIFT)] + [0] * (MBX_SIZE - 1)
        for i, v in enumerate(vectors):
            words[1 + i // 2] |= v << (16 * (i % 2))
        self._ok(self.request(words), VF_SET_MULTICAST, "set multicast")
        self.multicast = list(groups)
        self._note(f"multicast: {len(groups)} groups, {cnt} hashes sent")
        return cnt

    def update_xcast_mode(self, mode: int) -> int:
        """UPDATE_XCAST_MODE (API 1.2+); returns the mode the PF granted."""
        if self.api not in (API_12, API_13, API_14, API_15):
            raise SriovError("xcast mode needs mailbox API 1.2", errno.EOPNOTSUPP)
        reply = self._ok(self.request([VF_UPDATE_XCAST_MODE, mode], 2), VF_UPDATE_XCAST_MODE, "xcast mode")
        self.xcast = reply[1]
        return reply[1]

    def set_rx_mode(self, groups: Sequence[str | bytes], *, allmulti: bool = False, promisc: bool = False) -> int:
        """ixgbevf_set_rx_mode: the netdev's flags or multicast list changed.  The most inclusive
        xcast mode the flags need (PROMISC, ALLMULTI, else MULTI), then the list; both are what a
        reopen after a reset programs again.  Returns the VF's xcast mode."""
        macs = [parse_mac(g) if isinstance(g, str) else bytes(g) for g in groups]
        flags_mode = XCAST_PROMISC if promisc else XCAST_ALLMULTI if allmulti else XCAST_MULTI
        self._open_args["multicast"] = macs
        self._open_args["xcast"] = flags_mode
        self._rx_mode(macs, flags_mode)
        return self.xcast

    def _rx_mode(self, macs: list[bytes], mode: int) -> None:
        """UPDATE_XCAST_MODE (API 1.2+; ALLMULTI instead of MULTI beyond the 30 hashes one
        SET_MULTICAST carries) and SET_MULTICAST.  A mode the PF refuses leaves the VF's as it
        was (ixgbevf ignores the error); an untrusted VF gets MULTI (the PF's cap) and its groups
        beyond 30 are lost, as on Linux."""
        if mode == XCAST_MULTI and len(macs) > MAX_MC_HASHES:
            mode = XCAST_ALLMULTI
        if self.api in (API_12, API_13, API_14, API_15):
            try:
                got = self.update_xcast_mode(mode)
                self._note(f"xcast {XCAST_MODES[mode]} asked, {XCAST_MODES.get(got, str(got))} granted")
            except VfRequestRefused as e:
                self._note(f"xcast {XCAST_MODES.get(mode, str(mode))} refused ({e.message})")
        self.update_mc_addr_list(macs)

    def set_vfta(self, vid: int, add: bool = True) -> None:
        """ixgbevf_set_vfta_vf: SET_VLAN."""
        self._ok(self.request([VF_SET_VLAN | (int(add) << MSGINFO_SHIFT), vid], 2), VF_SET_VLAN,
                 f"{'add' if add else 'remove'} vlan {vid}")
        (self.vlans.add if add else self.vlans.discard)(vid)

    def set_rlpml(self, mtu: int) -> None:
        """ixgbevf_rlpml_set_vf: SET_LPE with max_frame = MTU + Ethernet header + FCS."""
        self._ok(self.request([VF_SET_LPE, mtu + 14 + 4], 2), VF_SET_LPE, f"set MTU {mtu}")
        self.mtu = mtu

    def get_reta(self) -> list[int]:
        """GET_RETA: 128 entries of 2 bits (82599)."""
        reply = self._ok(self.request([VF_GET_RETA]), VF_GET_RETA, "get RETA")
        return [(reply[1 + i // 16] >> (2 * (i % 16))) & 0x3 for i in range(128)]

    def get_rss_key(self) -> bytes:
        reply = self._ok(self.request([VF_GET_RSS_KEY]), VF_GET_RSS_KEY, "get RSS key")
        return b"".join(reply[1 + i].to_bytes(4, "little") for i in range(10))

    def link_up(self) -> bool:
        return bool(self._read(VFLINKS) & (1 << 30))

    # -- rings ---------------------------------------------------------------------------
    def configure_rings(self) -> None:
        """ixgbevf_configure_rx_ring / _tx_ring: rings and buffers in the guest's RAM, the
        descriptors written with the buffers' addresses, the queues enabled (VLAN strip on);
        first VFPSRTYPE (ixgbevf_setup_psrtype), so RSS spreads over the RX queues it opens."""
        self._write(VFPSRTYPE, PSRTYPE_HDRS | (PSRTYPE_RQPL_2 if self.num_rx_queues > 1 else 0))
        if self.ram is None:
            return
        n, bs = self.ring_size, self.buffer_size
        for kind, queues in (("rx", self.num_rx_queues), ("tx", self.num_tx_queues)):
            for i in range(queues):
                ring = self.rings.get((kind, i))
                if ring is None:
                    ring = self.ram.alloc(16 * n)
                    bufs = self.ram.alloc(n * bs)
                    self.ram.write_ring(ring, [bufs + bs * s for s in range(n)])
                    self.rings[(kind, i)] = ring
                base = (VFRDBAL if kind == "rx" else VFTDBAL) + 0x40 * i
                self._write(base, ring & 0xFFFFFFFF)
                self._write(base + (VFRDBAH - VFRDBAL), ring >> 32)
                self._write(base + (VFRDLEN - VFRDBAL), 16 * n)
                if kind == "rx":
                    self._write(VFSRRCTL + 0x40 * i, bs // 1024)
                    self._write(VFRDT + 0x40 * i, n - 1)
                    self._write(VFRXDCTL + 0x40 * i, DCTL_ENABLE | RXDCTL_VME)
                else:
                    self._write(VFTXDCTL + 0x40 * i, DCTL_ENABLE)

    # -- up / down -------------------------------------------------------------------------
    def open(self, mtu: int = 1500, mac: str | bytes | None = None, multicast: Sequence[str | bytes] = (),
             xcast: int = XCAST_MULTI, vlans: Sequence[int] = ()) -> None:
        """ixgbevf_open: MAC, MTU, rings, xcast mode and multicast list (`_rx_mode`), VLANs."""
        self._open_args = {"mtu": mtu, "mac": mac, "multicast": multicast, "xcast": xcast, "vlans": vlans}
        if self.perm_addr is not None:
            addr = self.perm_addr
        elif mac is not None:
            addr = parse_mac(mac) if isinstance(mac, str) else bytes(mac)
        elif self.mac is not None:
            addr = self.mac
        else:
            rid = self.bar.fn.rid if hasattr(self.bar, "fn") else 0
            addr = bytes([0x02, 0x09, 0xC0, 0x00, rid >> 8 & 0xFF, rid & 0xFF])   # "random", reproducible
        self.set_mac(addr)
        self.set_rlpml(mtu)
        self.configure_rings()
        self._rx_mode([parse_mac(g) if isinstance(g, str) else bytes(g) for g in multicast], xcast)
        for vid in vlans:
            self.set_vfta(vid, True)
        self.up = True

    def service(self) -> bool:
        """The watchdog: read a PF message if one waits; a control message without CTS (the
        admin changed trust or link state, or the PF reset) means reset.  Returns True if it
        reset and reopened the VF."""
        if self.check_for_msg():
            msg = self.read_mbx(1)[0]
            if msg & PF_CONTROL_MSG and not msg & MSG_CTS:
                self.reset_requested = True
            self._note(f"PF message {msg:#010x}")
        if self.reset_requested:
            self.probe()
            if self.up:
                self.open(**self._open_args)
            return True
        return False
