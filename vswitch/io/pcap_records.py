"""Plain-pcap records parsed out of a buffer, many per call (compiled: vswitch/compiled.py).

`parse` walks the records that lie whole in ``buf`` from ``pos`` on and appends each one's
timestamp (ns) and frame bytes (a slice of ``buf``) to two lists; it stops at the first
record that is not whole in the buffer, or whose captured length exceeds ``max_record``,
and returns where that record starts, so that the caller (`vswitch.io.pcap.Capture`) reads
more of the file, or reports the damage with the record's number and offset.  One call per
buffer read (a megabyte: thousands of records) instead of two file reads per record.

The header is dpkt's PktHdr (tv_sec, tv_usec or tv_nsec, caplen, len), unpacked with one
precompiled struct; ``fcs`` bytes of FCS (the link-type field's, libpcap's LT_FCS_LENGTH)
are stripped from the end of each frame as far as they were captured.
"""

from __future__ import annotations

import struct

HDR_LEN = 16
_LE = struct.Struct("<IIII")
_BE = struct.Struct(">IIII")
# Compiled, a header's fields are read byte by byte (mypyc indexes bytes natively: cheaper
# than a call into struct and the tuple it builds); interpreted, one struct call is cheaper.
COMPILED = __file__.endswith((".so", ".pyd"))


def parse(buf: bytes, pos: int, little: bool, scale: int, fcs: int, max_record: int,
          ts_out: list[int], data_out: list[bytes]) -> int:
    """Append the whole records of ``buf`` from ``pos`` to ``ts_out``/``data_out``; return the
    offset in ``buf`` of the first record not taken (``len(buf)`` when every byte was)."""
    if COMPILED:
        return _parse_indexed(buf, pos, little, scale, fcs, max_record, ts_out, data_out)
    unpack_from = _LE.unpack_from if little else _BE.unpack_from
    end = len(buf)
    ts_append = ts_out.append
    data_append = data_out.append
    while pos + HDR_LEN <= end:
        sec, frac, caplen, wire_len = unpack_from(buf, pos)
        start = pos + HDR_LEN
        stop = start + caplen
        if caplen > max_record or stop > end:
            break
        if fcs:
            # The FCS is the last fcs bytes of the frame on the wire (len); strip the part of
            # it that was captured.
            keep = wire_len - fcs
            if keep < caplen:
                stop = start + max(keep, 0)
        ts_append(sec * 1_000_000_000 + frac * scale)
        data_append(buf[start:stop])
        pos = start + caplen
    return pos


def _u32(buf: bytes, at: int, little: bool) -> int:
    if little:
        return buf[at] | buf[at + 1] << 8 | buf[at + 2] << 16 | buf[at + 3] << 24
    return buf[at] << 24 | buf[at + 1] << 16 | buf[at + 2] << 8 | buf[at + 3]


def _parse_indexed(buf: bytes, pos: int, little: bool, scale: int, fcs: int, max_record: int,
                   ts_out: list[int], data_out: list[bytes]) -> int:
    """`parse` with the header read byte by byte (the compiled build's way)."""
    end = len(buf)
    while pos + HDR_LEN <= end:
        caplen = _u32(buf, pos + 8, little)
        start = pos + HDR_LEN
        stop = start + caplen
        if caplen > max_record or stop > end:
            break
        if fcs:
            keep = _u32(buf, pos + 12, little) - fcs
            if keep < caplen:
                stop = start + max(keep, 0)
        ts_out.append(_u32(buf, pos, little) * 1_000_000_000 + _u32(buf, pos + 4, little) * scale)
        data_out.append(buf[start:stop])
        pos = start + caplen
    return pos


def header(buf: bytes, pos: int, little: bool) -> tuple[int, int, int, int]:
    """The record header at ``pos`` (tv_sec, fraction, caplen, len), for error reports."""
    return (_LE if little else _BE).unpack_from(buf, pos)
