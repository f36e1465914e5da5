"""Capture file I/O with dpkt: read pcap/pcapng as (ts_ns, bytes), write pcap.

Reading refuses, with one clear line, a capture whose link type is not
Ethernet (``NotEthernet``), and turns a truncated or corrupt file into a
``CaptureError`` naming the record number and byte offset.  Records read
before the damage are still yielded, so a replay can use them (as tcpdump
prints the packets before "truncated dump file").

pcap records are walked here with dpkt's header structs (not
``dpkt.pcap.Reader``) because that reader silently returns short data for a
truncated record and cannot say where a file went wrong.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import dpkt

LINKTYPE_ETHERNET = 1
# Sanity bound on one record (tcpdump's MAXIMUM_SNAPLEN is 262144).
MAX_RECORD = 262144

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


class CaptureError(Exception):
    """A capture file cannot be read (further); the message is one line."""


class NotEthernet(CaptureError):
    def __init__(self, path: str, linktype: int) -> None:
        super().__init__(f"{path}: link type {linktype} ({linktype_name(linktype)}) is not Ethernet (1); "
                         "this switch replays Ethernet captures only")
        self.linktype = linktype


def linktype_name(linktype: int) -> str:
    # pcap's upper bits can carry an FCS length (LT_FCS_DATAWITHFCS); the type is the low 16 bits.
    name = LINKTYPE_NAMES.get(linktype & 0xFFFF, "unknown")
    return name if linktype <= 0xFFFF else f"{name} with FCS-length bits 0x{linktype >> 16:x}"


def read_capture(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """Yield (timestamp in ns, frame bytes) for each record of a pcap or pcapng file."""
    path = str(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the generator's finally
    except OSError as e:
        raise CaptureError(f"{path}: cannot open: {e.strerror}") from None
    try:
        head = f.read(4)
        if len(head) < 4:
            raise CaptureError(f"{path}: empty or too short to be a capture ({len(head)} bytes)")
        f.seek(0)
        if head == _PCAPNG_MAGIC:
            yield from _read_pcapng(path, f)
        else:
            yield from _read_pcap(path, f)
    finally:
        f.close()


def _read_pcap(path: str, f: BinaryIO) -> Iterator[tuple[int, bytes]]:
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
    if fh.linktype != LINKTYPE_ETHERNET:
        raise NotEthernet(path, fh.linktype)
    hdr_len: int = ph_cls.__hdr_len__  # type: ignore[attr-defined]
    scale = 1 if nano else 1000
    offset = len(buf)
    n = 0
    while True:
        raw = f.read(hdr_len)
        if not raw:
            return
        n += 1
        if len(raw) < hdr_len:
            raise CaptureError(f"{path}: record {n} at offset {offset}: truncated record header "
                               f"({len(raw)} of {hdr_len} bytes)")
        ph = ph_cls(raw)
        if ph.caplen > MAX_RECORD:
            raise CaptureError(f"{path}: record {n} at offset {offset}: captured length {ph.caplen} "
                               f"exceeds {MAX_RECORD} bytes; the file is corrupt")
        data = f.read(ph.caplen)
        if len(data) < ph.caplen:
            raise CaptureError(f"{path}: record {n} at offset {offset}: truncated: header says "
                               f"{ph.caplen} captured bytes, file has {len(data)}")
        offset += hdr_len + ph.caplen
        yield ph.tv_sec * 1_000_000_000 + ph.tv_usec * scale, data


def _read_pcapng(path: str, f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    try:
        reader = dpkt.pcapng.Reader(f)
    except (ValueError, struct.error, dpkt.UnpackError) as e:
        raise CaptureError(f"{path}: bad pcapng header: {e}") from None
    if reader.datalink() != LINKTYPE_ETHERNET:
        raise NotEthernet(path, reader.datalink())
    n = 0
    it = iter(reader)
    while True:
        offset = f.tell()
        try:
            ts, data = next(it)
        except StopIteration:
            return
        except (ValueError, struct.error, dpkt.UnpackError, IndexError) as e:
            raise CaptureError(f"{path}: block after record {n} at offset {offset}: corrupt pcapng "
                               f"block ({e})") from None
        n += 1
        yield round(ts * 1_000_000_000), bytes(data)


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
        # dpkt's Writer writes the file header in native byte order; match it.
        self._hdr = dpkt.pcap.LEPktHdr if sys.byteorder == "little" else dpkt.pcap.PktHdr
        self.packets = 0
        self.bytes = 0

    def write(self, data: bytes, ts_ns: int) -> None:
        # dpkt's writepkt takes float seconds, which would lose nanoseconds; pack the
        # record header with dpkt's own struct instead.
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        n = len(data)
        hdr = self._hdr(tv_sec=sec, tv_usec=nsec, caplen=n, len=n)
        self._f.write(bytes(hdr))
        self._f.write(data)
        self.packets += 1
        self.bytes += n

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
