"""Capture file I/O: read pcap/pcapng as (ts_ns, bytes), write pcap (dpkt).

`read_capture` opens a capture and reads its header at once (for pcapng, the
blocks up to the first packet), so a missing, unreadable, non-capture or
non-Ethernet file is refused before anything is replayed.  Iterating the
returned `Capture` yields (timestamp in ns, frame bytes); a truncated or
corrupt file raises a one-line ``CaptureError`` naming the record number and
byte offset and saying what is wrong, after the records before the damage
(as tcpdump prints the packets before "truncated dump file").

Link types, as libpcap reads them:

* pcap: the header's link-type field is LT_LINKTYPE(x) = x & 0x03FFFFFF; its
  upper bits are libpcap's extension (pcap/pcap.h): when
  LT_FCS_LENGTH_PRESENT (0x04000000) is set, LT_FCS_LENGTH(x) =
  (x & 0xF0000000) >> 28 gives the FCS length in 16-bit units, and that many
  bytes are stripped from the end of each frame before it enters the switch
  (``Capture.fcs_len``).  Without that bit the FCS length is unknown and
  frames are left as they are (0x30000001 and 0x40000001 are Ethernet).
* pcapng: each Interface Description Block has its own link type and
  timestamp resolution.  Packets of a non-Ethernet interface are skipped and
  counted (``Capture.skipped``), where libpcap (and so tcpdump and tcpreplay)
  stops at such an interface; a capture none of whose interfaces is Ethernet
  is refused (``NotEthernet``).  A packet naming an interface no IDB of its
  section describes is a corrupt file.  Simple Packet Blocks carry no
  timestamp: they get the timestamp of the record before them.  The pcapng
  if_fcslen option is not applied (writers disagree on its unit).

Records are walked here with struct and dpkt's header structs rather than
``dpkt.pcap.Reader``/``dpkt.pcapng.Reader``: those return short data for a
truncated record, cannot say where a file went wrong, and the pcapng one
knows only the first interface (its link type and resolution).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import dpkt

from vswitch.io import pcap_records

LINKTYPE_ETHERNET = 1
# Bytes of a plain pcap file read at a time (the records whole in it make one chunk).
READ_SIZE = 1 << 20
Chunk = tuple[list[int], list[bytes]]
# Sanity bound on one record (tcpdump's MAXIMUM_SNAPLEN is 262144).
MAX_RECORD = 262144
# libpcap's bound on a pcapng block (sf-pcapng.c INITIAL_MAX_BLOCKSIZE).
MAX_BLOCK = 16 * 1024 * 1024

# The pcap header's link-type field (libpcap sf-pcap.c and pcap/pcap.h).
LT_LINKTYPE_MASK = 0x03FFFFFF
LT_FCS_LENGTH_PRESENT = 0x04000000


def lt_fcs_length(field: int) -> int:
    """LT_FCS_LENGTH(x): the FCS length in 16-bit units (meaningful with LT_FCS_LENGTH_PRESENT)."""
    return (field & 0xF0000000) >> 28


LINKTYPE_NAMES = {
    0: "NULL (BSD loopback)", 1: "EN10MB (Ethernet)", 6: "IEEE802_5 (Token Ring)",
    7: "ARCNET_BSD", 8: "SLIP", 9: "PPP", 10: "FDDI", 12: "RAW (raw IP)", 14: "RAW (raw IP)",
    50: "PPP_HDLC", 51: "PPP_ETHER (PPPoE)", 101: "RAW (raw IP)", 104: "C_HDLC (Cisco HDLC)",
    105: "IEEE802_11 (Wi-Fi)", 107: "FRELAY", 108: "LOOP (OpenBSD loopback)", 113: "LINUX_SLL (Linux cooked capture)",
    117: "PFLOG", 119: "IEEE802_11_PRISM", 127: "IEEE802_11_RADIOTAP (radiotap)", 129: "ARCNET_LINUX",
    138: "APPLE_IP_OVER_IEEE1394", 139: "MTP2_WITH_PHDR", 143: "DOCSIS", 147: "USER0", 148: "USER1",
    149: "USER2", 150: "USER3", 163: "IEEE802_11_AVS", 165: "BACNET_MS_TP", 166: "PPP_PPPD",
    169: "GPRS_LLC", 177: "LINUX_LAPD", 187: "BLUETOOTH_HCI_H4", 192: "PPI", 195: "IEEE802_15_4_WITHFCS",
    197: "ERF", 201: "BLUETOOTH_HCI_H4_WITH_PHDR", 215: "IEEE802_15_4_NONASK_PHY", 220: "USB_LINUX_MMAPPED",
    228: "IPV4 (raw IPv4)", 229: "IPV6 (raw IPv6)", 230: "IEEE802_15_4_NOFCS", 231: "DBUS",
    235: "DVB_CI", 239: "NFLOG", 240: "NETANALYZER", 249: "USBPCAP", 251: "BLUETOOTH_LE_LL",
    252: "WIRESHARK_UPPER_PDU", 254: "SCTP", 258: "PKTAP", 263: "IPMI_HPM_2", 266: "NORDIC_BLE",
    274: "NFC_LLCP", 276: "LINUX_SLL2 (Linux cooked capture v2)", 271: "VSOCK",
    242: "IPOIB (IP over InfiniBand)", 164: "JUNIPER_MONITOR", 160: "USER13",
    100: "ATM_RFC1483", 281: "DISPLAYPORT_AUX",
    283: "ETW",
}

_PCAP_MAGICS = {
    dpkt.pcap.TCPDUMP_MAGIC: (False, False), dpkt.pcap.TCPDUMP_MAGIC_NANO: (False, True),
    dpkt.pcap.PMUDPCT_MAGIC: (True, False), dpkt.pcap.PMUDPCT_MAGIC_NANO: (True, True),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
# dpkt.pcap.PktHdr / LEPktHdr: tv_sec, tv_usec (ns in a nanosecond file), caplen, len.
_PKTHDR_BE, _PKTHDR_LE = struct.Struct(">IIII"), struct.Struct("<IIII")
assert _PKTHDR_BE.size == dpkt.pcap.PktHdr.__hdr_len__ == dpkt.pcap.LEPktHdr.__hdr_len__ == pcap_records.HDR_LEN


class CaptureError(Exception):
    """A capture file cannot be read (further); the message is one line."""


class NotEthernet(CaptureError):
    def __init__(self, path: str, linktype: int, others: list[tuple[str, int]] | None = None) -> None:
        # ``linktype``: a pcap header's whole field or a pcapng IDB's link type; ``others``:
        # (where, link type) of every pcapng interface when there are several.
        lt = linktype & LT_LINKTYPE_MASK
        if others:
            what = " and ".join(f"link type {t} ({linktype_name(t)}) of {where}" for where, t in others)
            super().__init__(f"{path}: {what} are not Ethernet (1); this switch replays Ethernet captures only")
        else:
            field = f" (link-type field 0x{linktype:08x})" if linktype != lt else ""
            super().__init__(f"{path}: link type {lt} ({linktype_name(lt)}) is not Ethernet (1){field}; "
                             "this switch replays Ethernet captures only")
        self.linktype = lt


def linktype_name(linktype: int) -> str:
    return LINKTYPE_NAMES.get(linktype & LT_LINKTYPE_MASK, "unknown")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Capture:
    """An open capture file; iterate it (once) for (timestamp in ns, frame bytes).

    Attributes: ``fcs_len`` (bytes of FCS stripped from the end of each frame, pcap), ``skipped``
    (pcapng packets of non-Ethernet interfaces, not yielded) and ``skipped_by_interface``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.fcs_len = 0
        self.skipped = 0
        self.skipped_by_interface: dict[str, int] = {}
        self._chunks: Generator[Chunk, None, None] | None = None     # plain pcap: the records' source
        try:
            self._f: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close() or the end of the records
        except OSError as e:
            raise CaptureError(f"{self.path}: cannot open: {e.strerror}") from None
        try:
            head = self._f.read(4)
            if len(head) < 4:
                raise CaptureError(f"{self.path}: empty or too short to be a capture ({len(head)} bytes)")
            self._f.seek(0)
            if head == _PCAPNG_MAGIC:
                self._records: Generator[tuple[int, bytes], None, None] = _Pcapng(self).records()
            else:
                self._records = self._pcap()
        except BaseException:
            self._f.close()
            raise

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        return self._records

    def close(self) -> None:
        self._records.close()
        if self._chunks is not None:
            self._chunks.close()
        self._f.close()

    def notes(self) -> list[str]:
        """What reading changed or left out, for the replay's summary."""
        out = []
        if self.fcs_len:
            out.append(f"{self.fcs_len}-byte FCS stripped from each frame (link-type field)")
        if self.skipped:
            where = ", ".join(f"{k}: {v}" for k, v in self.skipped_by_interface.items())
            out.append(f"skipped {_plural(self.skipped, 'packet')} of non-Ethernet interfaces ({where})")
        return out

    # -- pcap ---------------------------------------------------------------------------------

    def _pcap(self) -> Generator[tuple[int, bytes], None, None]:
        """Check the file header now; return the generator of its records."""
        path, f = self.path, self._f
        buf = f.read(dpkt.pcap.FileHdr.__hdr_len__)
        if len(buf) < dpkt.pcap.FileHdr.__hdr_len__:
            raise CaptureError(f"{path}: truncated pcap file header ({len(buf)} of 24 bytes)")
        magic = struct.unpack("<I", buf[:4])[0]
        # dpkt's FileHdr is big-endian; a little-endian file reads as the swapped magic.
        fh = dpkt.pcap.FileHdr(buf)
        if fh.magic not in _PCAP_MAGICS:
            raise CaptureError(f"{path}: not a pcap or pcapng file (magic 0x{magic:08x})")
        swapped, nano = _PCAP_MAGICS[fh.magic]
        if swapped:
            fh = dpkt.pcap.LEFileHdr(buf)
            ph_cls: type = dpkt.pcap.LEPktHdr
        else:
            ph_cls = dpkt.pcap.PktHdr
        if (fh.linktype & LT_LINKTYPE_MASK) != LINKTYPE_ETHERNET:
            raise NotEthernet(path, fh.linktype)
        if fh.linktype & LT_FCS_LENGTH_PRESENT:
            self.fcs_len = 2 * lt_fcs_length(fh.linktype)
        self._chunks = self._pcap_chunks(ph_cls, 1 if nano else 1000, len(buf))
        return _flat(self._chunks)

    def _pcap_chunks(self, ph_cls: type, scale: int, offset: int) -> Generator[Chunk, None, None]:
        """The records as chunks: the whole records of each read of the file (`READ_SIZE`),
        parsed by `vswitch.io.pcap_records.parse` (one precompiled struct per record header
        rather than a dpkt object, and no file read per record: the replay streams from
        here).  Damage raises after the chunk of the records before it."""
        path, f, fcs = self.path, self._f, self.fcs_len
        little = ph_cls is dpkt.pcap.LEPktHdr
        hdr_len = pcap_records.HDR_LEN
        read = f.read
        buf = b""
        pos = 0
        base = offset            # file offset of buf[0]
        n = 0                    # records before buf[pos]
        try:
            while True:
                more = read(READ_SIZE)
                if pos:
                    base += pos
                    buf = buf[pos:] + more if pos < len(buf) else more
                    pos = 0
                else:
                    buf = buf + more if buf else more
                ts_list: list[int] = []
                data_list: list[bytes] = []
                pos = pcap_records.parse(buf, pos, little, scale, fcs, MAX_RECORD, ts_list, data_list)
                n += len(ts_list)
                left = len(buf) - pos
                error = None
                if left >= hdr_len:
                    caplen = pcap_records.header(buf, pos, little)[2]
                    if caplen > MAX_RECORD:
                        error = CaptureError(f"{path}: record {n + 1} at offset {base + pos}: captured length "
                                             f"{caplen} exceeds {MAX_RECORD} bytes; the file is corrupt")
                    elif not more:
                        error = CaptureError(f"{path}: record {n + 1} at offset {base + pos}: truncated: header "
                                             f"says {caplen} captured bytes, file has {left - hdr_len}")
                elif left and not more:
                    error = CaptureError(f"{path}: record {n + 1} at offset {base + pos}: truncated record "
                                         f"header ({left} of {hdr_len} bytes)")
                if ts_list:
                    yield ts_list, data_list
                if error is not None:
                    raise error
                if not more:
                    return
        finally:
            f.close()

    def chunks(self) -> Iterator[Chunk]:
        """The records as chunks, ``(timestamps in ns, frame bytes)`` lists of the same length,
        in file order: what a replay streams (one call per chunk, not per record).  Use either
        this or iteration, once."""
        if self._chunks is not None:
            return self._chunks
        return _grouped(self._records)


def _flat(chunks: Iterator[Chunk]) -> Generator[tuple[int, bytes], None, None]:
    for ts_list, data_list in chunks:
        yield from zip(ts_list, data_list, strict=True)


def _grouped(records: Iterator[tuple[int, bytes]], size: int = 4096) -> Iterator[Chunk]:
    ts_list: list[int] = []
    data_list: list[bytes] = []
    try:
        for ts, data in records:
            ts_list.append(ts)
            data_list.append(data)
            if len(ts_list) >= size:
                yield ts_list, data_list
                ts_list, data_list = [], []
    except CaptureError:
        if ts_list:                     # the records before the damage first
            yield ts_list, data_list
        raise
    if ts_list:
        yield ts_list, data_list


def read_capture(path: str | Path) -> Capture:
    """Open a pcap or pcapng file (header checked now); iterate the result for (ts_ns, bytes)."""
    return Capture(path)


# -- pcapng ----------------------------------------------------------------------------------------

_SHB, _IDB, _PB, _SPB, _NRB, _ISB, _EPB, _DSB = 0x0A0D0D0A, 1, 2, 3, 4, 5, 6, 0x0A
_PACKET_BLOCKS = (_EPB, _PB, _SPB)
_BLOCK_NAMES = {_SHB: "Section Header", _IDB: "Interface Description", _NRB: "Name Resolution",
                _ISB: "Interface Statistics", _DSB: "Decryption Secrets"}
_BOM = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
# After the 8-byte block header: EPB interface, ts high, ts low, captured and original length;
# PB (obsolete) the same with a 16-bit interface and a drop count; SPB the original length.
_EPB_FIELDS = {bo: struct.Struct(bo + "IIIII") for bo in "<>"}
_PB_FIELDS = {bo: struct.Struct(bo + "HHIIII") for bo in "<>"}
_OPT_IF_TSRESOL, _OPT_IF_TSOFFSET = 9, 14


@dataclass
class _Interface:
    where: str           # "interface 1" ("section 2 interface 1" after the first section)
    linktype: int
    snaplen: int
    mul: int = 1000      # ticks -> ns: (ticks * mul >> shift) // div + offset_ns (default: microseconds)
    shift: int = 0
    div: int = 1
    offset_ns: int = 0


class _Pcapng:
    """The pcapng block walker behind `Capture`: sections, interfaces, packets."""

    def __init__(self, cap: Capture) -> None:
        self.cap = cap
        self.path = cap.path
        self.f = cap._f
        self.offset = 0          # of the next block
        self.n = 0               # packet records read (Ethernet or not)
        self.bo = "<"
        self.sections = 0
        self.ifaces: list[_Interface] = []
        self.last_ts = 0
        # Read up to the first packet block now, so that a file without an Ethernet interface
        # is refused before anything is replayed.
        block = self._block()
        assert block is not None and block[0] == _SHB     # the caller saw the magic
        self._section(*block)
        while True:
            block = self._block()
            if block is None or block[0] in _PACKET_BLOCKS:
                break
            self._other(*block)
        self.pending = block
        if not self.ifaces:
            if block is None:
                raise CaptureError(f"{self.path}: no Interface Description Block: the file describes "
                                   "no interface and holds no packet")
            raise self._corrupt(block[0], block[1], "a packet block before any Interface Description Block")
        if all(i.linktype != LINKTYPE_ETHERNET for i in self.ifaces):
            others = [(i.where, i.linktype) for i in self.ifaces] if len(self.ifaces) > 1 else None
            raise NotEthernet(self.path, self.ifaces[0].linktype, others)

    def records(self) -> Generator[tuple[int, bytes], None, None]:
        try:
            block = self.pending
            while block is not None:
                btype, offset, raw = block
                if btype in _PACKET_BLOCKS:
                    self.n += 1
                    rec = self._packet(btype, offset, raw)
                    if rec is not None:
                        yield rec
                else:
                    self._other(btype, offset, raw)
                block = self._block()
        finally:
            self.f.close()

    # -- blocks ------------------------------------------------------------------------------

    def _where(self, btype: int | None, offset: int) -> str:
        if btype in _PACKET_BLOCKS:
            return f"record {self.n + 1} at offset {offset}"
        name = _BLOCK_NAMES.get(btype or -1)
        kind = f"{name} block" if name else "block"
        return f"{kind} at offset {offset} (after record {self.n})"

    def _corrupt(self, btype: int | None, offset: int, what: str) -> CaptureError:
        return CaptureError(f"{self.path}: {self._where(btype, offset)}: {what}")

    def _block(self) -> tuple[int, int, bytes] | None:
        """The next block as (type, offset, whole block bytes), checked; None at the end of the file."""
        f, offset = self.f, self.offset
        head = f.read(8)
        if not head:
            return None
        if len(head) < 8:
            raise self._corrupt(None, offset, f"truncated block header ({len(head)} of 8 bytes)")
        btype = struct.unpack_from(self.bo + "I", head)[0]      # the SHB's type reads the same either way
        if btype == _SHB:
            bom = f.read(4)
            if bom not in _BOM:
                what = (f"truncated Section Header Block ({8 + len(bom)} bytes)" if len(bom) < 4
                        else f"bad byte-order magic 0x{bom.hex()}")
                raise self._corrupt(btype, offset, what)
            self.bo = _BOM[bom]
            head += bom
        length = struct.unpack_from(self.bo + "I", head, 4)[0]
        if length < 12:
            raise self._corrupt(btype, offset, f"block length {length} is less than the 12-byte minimum")
        if length % 4:
            raise self._corrupt(btype, offset, f"block length {length} is not a multiple of 4")
        if length > MAX_BLOCK:
            raise self._corrupt(btype, offset, f"block length {length} exceeds {MAX_BLOCK} bytes")
        rest = f.read(length - len(head))
        if len(head) + len(rest) < length:
            raise self._corrupt(btype, offset, f"truncated: block length says {length} bytes, "
                                f"the file has {len(head) + len(rest)}")
        raw = head + rest
        trailer = struct.unpack_from(self.bo + "I", raw, length - 4)[0]
        if trailer != length:
            raise self._corrupt(btype, offset, f"trailing block length {trailer} differs from the leading {length}")
        self.offset = offset + length
        return btype, offset, raw

    def _other(self, btype: int, offset: int, raw: bytes) -> None:
        if btype == _SHB:
            self._section(btype, offset, raw)
        elif btype == _IDB:
            self._interface(offset, raw)
        # Other blocks (name resolution, statistics, custom ...) say nothing the switch needs.

    def _section(self, btype: int, offset: int, raw: bytes) -> None:
        if len(raw) < 28:
            raise self._corrupt(btype, offset, f"Section Header Block of {len(raw)} bytes, "
                                "shorter than its 28-byte minimum")
        major, minor = struct.unpack_from(self.bo + "HH", raw, 12)
        if major != 1:
            raise CaptureError(f"{self.path}: {self._where(btype, offset)}: unsupported pcapng version "
                               f"{major}.{minor}")
        self.sections += 1
        self.ifaces = []

    def _interface(self, offset: int, raw: bytes) -> None:
        if len(raw) < 20:
            raise self._corrupt(_IDB, offset, f"Interface Description Block of {len(raw)} bytes, "
                                "shorter than its 20-byte minimum")
        linktype, _reserved, snaplen = struct.unpack_from(self.bo + "HHI", raw, 8)
        number = len(self.ifaces)
        where = f"interface {number}" if self.sections == 1 else f"section {self.sections} interface {number}"
        iface = _Interface(where, linktype, snaplen)
        for code, value in self._options(offset, raw, 16):
            if code == _OPT_IF_TSRESOL:
                if len(value) != 1:
                    raise self._corrupt(_IDB, offset, f"if_tsresol option of {len(value)} bytes, not 1")
                exp = value[0] & 0x7F
                if value[0] & 0x80:                  # a negative power of 2
                    iface.mul, iface.shift, iface.div = 1_000_000_000, exp, 1
                elif exp <= 9:                       # a negative power of 10
                    iface.mul, iface.shift, iface.div = 10 ** (9 - exp), 0, 1
                else:
                    iface.mul, iface.shift, iface.div = 1, 0, 10 ** (exp - 9)
            elif code == _OPT_IF_TSOFFSET:
                if len(value) != 8:
                    raise self._corrupt(_IDB, offset, f"if_tsoffset option of {len(value)} bytes, not 8")
                iface.offset_ns = struct.unpack(self.bo + "q", value)[0] * 1_000_000_000
        self.ifaces.append(iface)

    def _options(self, offset: int, raw: bytes, at: int) -> Iterator[tuple[int, bytes]]:
        # Walked by hand: dpkt's option parser reads a short value silently and raises on a
        # comment that is not UTF-8.
        end = len(raw) - 4
        while at < end:
            if end - at < 4:
                raise self._corrupt(_IDB, offset, f"truncated option header ({end - at} of 4 bytes)")
            code, length = struct.unpack_from(self.bo + "HH", raw, at)
            if code == 0:
                return
            if at + 4 + length > end:
                raise self._corrupt(_IDB, offset, f"option {code} of {length} bytes overruns the block")
            yield code, raw[at + 4:at + 4 + length]
            at += 4 + (length + 3) // 4 * 4

    # -- packets -----------------------------------------------------------------------------

    def _packet(self, btype: int, offset: int, raw: bytes) -> tuple[int, bytes] | None:
        where = f"record {self.n} at offset {offset}"
        room = len(raw) - 32
        if btype == _SPB:
            room = len(raw) - 16
            if room < 0:
                raise CaptureError(f"{self.path}: {where}: Simple Packet Block of {len(raw)} bytes, "
                                   "shorter than its 16-byte minimum")
            iface_id, ticks = 0, -1
            origlen = struct.unpack_from(self.bo + "I", raw, 8)[0]
            snaplen = self.ifaces[0].snaplen if self.ifaces else 0
            caplen = min(origlen, snaplen) if snaplen else origlen
            start = 12
        else:
            if room < 0:
                kind = "Enhanced Packet" if btype == _EPB else "Packet"
                raise CaptureError(f"{self.path}: {where}: {kind} Block of {len(raw)} bytes, "
                                   "shorter than its 32-byte minimum")
            if btype == _EPB:
                iface_id, high, low, caplen, origlen = _EPB_FIELDS[self.bo].unpack_from(raw, 8)
            else:
                iface_id, _drops, high, low, caplen, origlen = _PB_FIELDS[self.bo].unpack_from(raw, 8)
            ticks = high << 32 | low
            start = 28
        if caplen > MAX_RECORD:
            raise CaptureError(f"{self.path}: {where}: captured length {caplen} exceeds {MAX_RECORD} bytes")
        if caplen > room:
            raise CaptureError(f"{self.path}: {where}: captured length {caplen} exceeds the {room} bytes "
                               "of packet data the block holds")
        if iface_id >= len(self.ifaces):
            k = len(self.ifaces)
            have = "no interface" if k == 0 else ("only 1 (interface 0)" if k == 1
                                                 else f"only {k} (interfaces 0-{k - 1})")
            raise CaptureError(f"{self.path}: {where}: names interface {iface_id}, but this section "
                               f"describes {have}; the file is corrupt")
        iface = self.ifaces[iface_id]
        if ticks >= 0:                                  # an SPB has no timestamp: keep the last one
            self.last_ts = (ticks * iface.mul >> iface.shift) // iface.div + iface.offset_ns
        if iface.linktype != LINKTYPE_ETHERNET:
            cap = self.cap
            cap.skipped += 1
            key = f"{iface.where}, link type {iface.linktype} {linktype_name(iface.linktype)}"
            cap.skipped_by_interface[key] = cap.skipped_by_interface.get(key, 0) + 1
            return None
        return self.last_ts, raw[start:start + caplen]


class PcapWriter:
    """Write Ethernet frames to a pcap file that tcpdump and Wireshark read (ns timestamps).

    Given ``file`` (an open binary file), writes there instead of creating ``path``; with
    ``header=False`` it appends records to a file that already has this writer's header.
    """

    def __init__(self, path: str | Path, snaplen: int = MAX_RECORD, file: BinaryIO | None = None,
                 header: bool = True) -> None:
        self.path = str(path)
        self._f = file if file is not None else open(self.path, "wb")  # noqa: SIM115
        if header:
            dpkt.pcap.Writer(self._f, snaplen=snaplen, linktype=LINKTYPE_ETHERNET, nano=True)   # writes it
        # dpkt's Writer writes the file header in native byte order; match it.  Record headers
        # are dpkt's PktHdr/LEPktHdr fields, packed with one precompiled struct (no dpkt
        # object per frame).
        self._pack = (_PKTHDR_LE if sys.byteorder == "little" else _PKTHDR_BE).pack
        self.packets = 0
        self.bytes = 0

    def write(self, data: bytes, ts_ns: int) -> None:
        # dpkt's writepkt takes float seconds, which would lose nanoseconds.
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        n = len(data)
        self._f.write(self._pack(sec, nsec, n, n))
        self._f.write(data)
        self.packets += 1
        self.bytes += n

    def write_frames(self, frames: Iterable[Any]) -> None:
        """Write each frame (anything with ``data`` and ``ts_ns``, a `Frame`) as `write` would,
        in one file write."""
        pack = self._pack
        parts = []
        nbytes = 0
        for f in frames:
            data = f.data
            n = len(data)
            sec, nsec = divmod(f.ts_ns, 1_000_000_000)
            parts.append(pack(sec, nsec, n, n))
            parts.append(data)
            nbytes += n
        self._f.write(b"".join(parts))
        self.packets += len(parts) // 2
        self.bytes += nbytes

    def flush(self) -> None:
        """Push buffered records to the file, so a reader (tcpdump -r) sees them now."""
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
