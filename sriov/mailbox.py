"""The PF-VF mailbox of one VF: 16 shared dwords, the lock and handshake bits, and the messages.

Hardware (82599 datasheet 8.3.5 as ixgbe_mbx.h and ixgbevf's mbx.c use it):

* ``mem``: 16 dwords (64 bytes, IXGBE_VFMAILBOX_SIZE), the VF's VFMBMEM (VF BAR0 0x200)
  and the PF's PFMBMEM(vf) (PF BAR0 0x13000 + 64 * vf).
* VF side, VFMAILBOX (VF BAR0 0x2FC): REQ (bit 0, write 1: tell the PF a message is
  there), ACK (bit 1, write 1: the PF's message was read), VFU (bit 2, the VF's lock on
  the buffer), PFU (bit 3, read only: the PF holds it), PFSTS (bit 4: the PF wrote a
  message), PFACK (bit 5: the PF read the VF's), RSTI (bit 6: the PF is in reset),
  RSTD (bit 7: reset done).  PFSTS, PFACK and RSTD are read-to-clear (R2C_BITS 0xB0):
  a driver that reads VFMAILBOX must keep what it saw (ixgbevf caches them in
  ``hw->mbx.v2p_mailbox``), or the next read has lost them.
* PF side, PFMAILBOX(vf) (PF BAR0 0x4B00 + 4 * vf): STS (bit 0, write 1: message for the
  VF), ACK (bit 1: the VF's message was read), VFU (bit 2, read only), PFU (bit 3, the PF's
  lock), RVFU (bit 4, write 1: force the VF's lock off, for a stuck VF).
  MBVFICR(i) (0x710 + 4 * i, 16 VFs each): VFREQ bits 15:0 and VFACK bits 31:16, set by
  the VF's REQ/ACK writes, write 1 to clear.  Each sets the PF's mailbox interrupt.
* The lock: writing VFU (or PFU) takes the buffer only if the other side does not hold
  it; writing the register without the bit releases it (a REQ or STS write alone
  releases the writer's lock, as the drivers rely on).  A write to the buffer by a side
  that does not hold the lock still lands (ixgbe itself clears the buffer at a VF's
  RESET without taking the lock) and is counted in ``vf_lock_violations`` /
  ``pf_lock_violations``, so a driver that forgets the lock shows (the datasheet's
  rule is not in the reference: the model's choice).

Messages (ixgbe_mbx.h): word 0 holds the code in bits 15:0, extra info in 23:16
(SET_MULTICAST: the hash count; SET_VLAN: add; SET_MACVLAN: the index) and the reply
flags ACK (bit 31), NACK (bit 30), CTS (bit 29).  `decode` turns a message into one
line for the log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Mailbox", "MailboxEntry", "decode", "mac_to_words", "words_to_mac", "MSG_NAMES",
           "API_VERSIONS", "XCAST_MODES", "MBX_SIZE",
           "VF_REQ", "VF_ACK", "VF_VFU", "VF_PFU", "VF_PFSTS", "VF_PFACK", "VF_RSTI", "VF_RSTD", "VF_R2C",
           "PF_STS", "PF_ACK", "PF_VFU", "PF_PFU", "PF_RVFU",
           "MSG_ACK", "MSG_NACK", "MSG_CTS", "MSGINFO_SHIFT",
           "VF_RESET", "VF_SET_MAC_ADDR", "VF_SET_MULTICAST", "VF_SET_VLAN", "VF_SET_LPE", "VF_SET_MACVLAN",
           "VF_API_NEGOTIATE", "VF_GET_QUEUES", "VF_GET_RETA", "VF_GET_RSS_KEY", "VF_UPDATE_XCAST_MODE",
           "VF_GET_LINK_STATE", "PF_CONTROL_MSG", "MAX_MC_HASHES",
           "API_10", "API_20", "API_11", "API_12", "API_13", "API_14", "API_15",
           "XCAST_NONE", "XCAST_MULTI", "XCAST_ALLMULTI", "XCAST_PROMISC"]

MBX_SIZE = 16
MAX_MC_HASHES = 30                      # IXGBE_MAX_VF_MC_ENTRIES

VF_REQ, VF_ACK, VF_VFU, VF_PFU, VF_PFSTS, VF_PFACK, VF_RSTI, VF_RSTD = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80
VF_R2C = VF_PFSTS | VF_PFACK | VF_RSTD
PF_STS, PF_ACK, PF_VFU, PF_PFU, PF_RVFU = 0x1, 0x2, 0x4, 0x8, 0x10

MSG_ACK, MSG_NACK, MSG_CTS = 0x80000000, 0x40000000, 0x20000000
MSGINFO_SHIFT = 16

VF_RESET, VF_SET_MAC_ADDR, VF_SET_MULTICAST, VF_SET_VLAN = 0x01, 0x02, 0x03, 0x04
VF_SET_LPE, VF_SET_MACVLAN, VF_API_NEGOTIATE, VF_GET_QUEUES = 0x05, 0x06, 0x08, 0x09
VF_GET_RETA, VF_GET_RSS_KEY, VF_UPDATE_XCAST_MODE, VF_GET_LINK_STATE = 0x0A, 0x0B, 0x0C, 0x10
PF_CONTROL_MSG = 0x0100

MSG_NAMES = {VF_RESET: "RESET", VF_SET_MAC_ADDR: "SET_MAC_ADDR", VF_SET_MULTICAST: "SET_MULTICAST",
             VF_SET_VLAN: "SET_VLAN", VF_SET_LPE: "SET_LPE", VF_SET_MACVLAN: "SET_MACVLAN",
             VF_API_NEGOTIATE: "API_NEGOTIATE", VF_GET_QUEUES: "GET_QUEUES", VF_GET_RETA: "GET_RETA",
             VF_GET_RSS_KEY: "GET_RSS_KEY", VF_UPDATE_XCAST_MODE: "UPDATE_XCAST_MODE", 0x0D: "IPSEC_ADD",
             0x0E: "IPSEC_DEL", VF_GET_LINK_STATE: "GET_LINK_STATE", PF_CONTROL_MSG: "PF_CONTROL_MSG"}

# enum ixgbe_pfvf_api_rev: the numbers are the order they were added in
API_10, API_20, API_11, API_12, API_13, API_14, API_15 = range(7)
API_VERSIONS = {API_10: "1.0", API_20: "2.0", API_11: "1.1", API_12: "1.2", API_13: "1.3", API_14: "1.4",
                API_15: "1.5"}
XCAST_NONE, XCAST_MULTI, XCAST_ALLMULTI, XCAST_PROMISC = range(4)
XCAST_MODES = {XCAST_NONE: "none", XCAST_MULTI: "multi", XCAST_ALLMULTI: "allmulti", XCAST_PROMISC: "promisc"}


def mac_to_words(mac: bytes) -> tuple[int, int]:
    """A MAC as ixgbe lays it in msgbuf[1..2] (``u8 *addr = (u8 *)&msgbuf[1]``, little-endian)."""
    return int.from_bytes(mac[0:4], "little"), int.from_bytes(mac[4:6], "little")


def words_to_mac(w1: int, w2: int) -> bytes:
    return w1.to_bytes(4, "little") + (w2 & 0xFFFF).to_bytes(2, "little")


def _flags(w0: int) -> str:
    return "".join(f"|{n}" for bit, n in ((MSG_ACK, "ACK"), (MSG_NACK, "NACK"), (MSG_CTS, "CTS")) if w0 & bit)


def decode(words: Sequence[int], to_vf: bool = False) -> str:
    """One mailbox message as a line: name, reply flags and the payload decoded.

    ``to_vf``: a message the PF wrote (a reply or a control message)."""
    w = list(words) + [0] * (MBX_SIZE - len(words))
    w0 = w[0]
    code = w0 & 0xFFFF
    info = (w0 >> MSGINFO_SHIFT) & 0xFF
    name = MSG_NAMES.get(code, f"MSG_{code:#06x}")
    head = name + _flags(w0) if code else _flags(w0)[1:] or "0"
    if to_vf and len(words) == 1 and code != PF_CONTROL_MSG:
        return head                                        # a bare NACK: no payload came back
    nack = bool(w0 & MSG_NACK)
    mac = words_to_mac(w[1], w[2]).hex(":")
    if code == PF_CONTROL_MSG:
        return head + ("" if w0 & MSG_CTS else " (not clear to send: the VF must reset)")
    if code == VF_RESET:
        if not to_vf:
            return head
        return head + (f" mac {mac}" if w0 & MSG_ACK else " no MAC assigned") + f" mc_filter_type {w[3]}"
    if code in (VF_SET_MAC_ADDR,):
        return f"{head} {mac}"
    if code == VF_SET_MACVLAN:
        return f"{head} index {info}" + (f" {mac}" if info else " (clear the VF's MAC filters)")
    if code == VF_SET_MULTICAST:
        hashes = [(w[1 + i // 2] >> (16 * (i % 2))) & 0xFFFF for i in range(min(info, MAX_MC_HASHES))]
        return f"{head} {info} hash{'es' if info != 1 else ''}" + (
            f" [{', '.join(f'{h:#05x}' for h in hashes)}]" if hashes and not to_vf else "")
    if code == VF_SET_VLAN:
        return f"{head} {'add' if info else 'remove'} vlan {w[1] & 0xFFF}"
    if code == VF_SET_LPE:
        return f"{head} max_frame {w[1]}"
    if code == VF_API_NEGOTIATE:
        return f"{head} api {API_VERSIONS.get(w[1], str(w[1]))}"
    if code == VF_GET_QUEUES:
        if to_vf and not nack:
            return f"{head} tx_queues {w[1]} rx_queues {w[2]} trans_vlan {w[3]} default_queue {w[4]}"
        return head
    if code == VF_UPDATE_XCAST_MODE:
        return f"{head} {XCAST_MODES.get(w[1], str(w[1]))}"
    if code == VF_GET_LINK_STATE and to_vf and not nack:
        return f"{head} link {'enabled' if w[1] else 'disabled'}"
    return head


@dataclass(frozen=True)
class MailboxEntry:
    """One message in a VF's mailbox log, decoded; ``note`` says why the PF refused it."""

    seq: int
    time_ns: int
    to_vf: bool
    words: tuple[int, ...]
    text: str
    note: str = ""

    def line(self) -> str:
        arrow = "PF->VF" if self.to_vf else "VF->PF"
        return f"#{self.seq} {arrow} {self.text}" + (f"  ({self.note})" if self.note else "")

    def as_dict(self) -> dict[str, object]:
        return {"seq": self.seq, "time_ns": self.time_ns, "direction": "pf->vf" if self.to_vf else "vf->pf",
                "words": [f"{x:#010x}" for x in self.words], "text": self.text, "note": self.note}


class Mailbox:
    """The mailbox hardware of one VF (see the module docstring).

    ``on_pf_event()`` is the PF's mailbox interrupt (a VF REQ or ACK, or a VF reset);
    ``on_vf_event()`` the VF's (a PF STS or ACK).  Either may be None.
    """

    def __init__(self, vf: int) -> None:
        self.vf = vf
        self.mem = [0] * MBX_SIZE
        self.vfu = self.pfu = False
        self.pfsts = self.pfack = self.rstd = self.rsti = False   # what the VF's read clears (RSTI: no)
        self.vfreq = self.vfack = False                           # MBVFICR bits (W1C)
        self.vf_lock_violations = 0
        self.pf_lock_violations = 0
        self.on_pf_event: Callable[[], None] | None = None
        self.on_vf_event: Callable[[], None] | None = None

    # -- the VF's side (VF BAR0) ------------------------------------------------
    def vf_read(self) -> int:
        """VFMAILBOX; PFSTS, PFACK and RSTD clear on the read."""
        v = ((VF_VFU if self.vfu else 0) | (VF_PFU if self.pfu else 0) | (VF_PFSTS if self.pfsts else 0)
             | (VF_PFACK if self.pfack else 0) | (VF_RSTI if self.rsti else 0) | (VF_RSTD if self.rstd else 0))
        self.pfsts = self.pfack = self.rstd = False
        return v

    def vf_write(self, v: int) -> None:
        if v & VF_VFU:
            if not self.pfu:
                self.vfu = True
        else:
            self.vfu = False
        event = False
        if v & VF_REQ:
            self.vfreq = event = True
        if v & VF_ACK:
            self.vfack = event = True
        if event and self.on_pf_event is not None:
            self.on_pf_event()

    def vf_read_mem(self, i: int) -> int:
        return self.mem[i]

    def vf_write_mem(self, i: int, v: int) -> None:
        if not self.vfu:
            self.vf_lock_violations += 1
        self.mem[i] = v & 0xFFFFFFFF

    # -- the PF's side (PF BAR0) ------------------------------------------------
    def pf_read(self) -> int:
        return (PF_VFU if self.vfu else 0) | (PF_PFU if self.pfu else 0)

    def pf_write(self, v: int) -> None:
        if v & PF_RVFU:
            self.vfu = False
        if v & PF_PFU:
            if not self.vfu:
                self.pfu = True
        else:
            self.pfu = False
        event = False
        if v & PF_STS:
            self.pfsts = event = True
        if v & PF_ACK:
            self.pfack = event = True
        if event and self.on_vf_event is not None:
            self.on_vf_event()

    def pf_read_mem(self, i: int) -> int:
        return self.mem[i]

    def pf_write_mem(self, i: int, v: int) -> None:
        if not self.pfu:
            self.pf_lock_violations += 1
        self.mem[i] = v & 0xFFFFFFFF

    # -- a VF reset -------------------------------------------------------------
    def reset_done(self) -> None:
        """The VF's reset finished: RSTD set (read-to-clear), the VF's lock and pending bits gone."""
        self.vfu = False
        self.pfsts = self.pfack = False
        self.rsti = False
        self.rstd = True
