"""Fast capture writers for generated traces: pcap (nanosecond) and pcapng, streamed.

Both write Ethernet (link type 1) records with nanosecond timestamps, packed
with ``struct`` and handed to a large buffered file, so writing costs well
under a microsecond per frame (dpkt's writers build a header object per
packet).  The files are what tcpdump, Wireshark and tcpreplay read:

* pcap: little-endian, magic 0xa1b23c4d (nanosecond resolution), version 2.4,
  snaplen 262144, link type 1; each record's original length is its
  captured length (the FCS is not captured, as on a Linux capture);
* pcapng: one Section Header Block (byte-order magic 0x1A2B3C4D, version 1.0,
  section length unknown), one Interface Description Block (link type 1,
  snaplen 262144, ``if_tsresol`` = 9: nanoseconds) and one Enhanced Packet
  Block per frame.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

SNAPLEN = 262144
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, SNAPLEN, 1)
_PCAP_RECORD = struct.Struct("<IIII")

_SHB = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
# IDB: link type 1, reserved, snaplen; options if_tsresol (9) = 9 (10^-9 s), padded, then opt_endofopt.
_IDB = struct.pack("<IIHHI", 1, 32, 1, 0, SNAPLEN) + struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0) \
    + struct.pack("<I", 32)
_EPB = struct.Struct("<IIIIIII")
_PADS = [b"", b"\0\0\0", b"\0\0", b"\0"]
_BUFFER = 1 << 20


class TraceWriter:
    """Write frames with ns timestamps to ``path``; ``pcapng`` chooses the format.

    `write_batch` takes parallel lists of timestamps and frames (a generator collects a few
    thousand and hands them over, so that no call is made per frame); `write` one record.
    """

    def __init__(self, path: str | Path, pcapng: bool = False) -> None:
        self.path = str(path)
        self.pcapng = pcapng
        self._f: BinaryIO = open(self.path, "wb", buffering=_BUFFER)  # noqa: SIM115 - closed by close()
        self._f.write(_SHB + _IDB if pcapng else _PCAP_HEADER)
        self.packets = 0
        self.bytes = 0

    def write(self, data: bytes, ts_ns: int) -> None:
        self.write_batch([ts_ns], [data])

    def write_batch(self, stamps: list[int], frames: list[bytes]) -> None:
        if self.pcapng:
            epb = _EPB.pack
            parts = [x for ts, d in zip(stamps, frames, strict=True)
                     for x in (epb(6, 32 + len(d) + (-len(d) & 3), 0, ts >> 32, ts & 0xFFFFFFFF, len(d), len(d)),
                               d, _PADS[len(d) & 3], (32 + len(d) + (-len(d) & 3)).to_bytes(4, "little"))]
        else:
            rec = _PCAP_RECORD.pack
            parts = [x for ts, d in zip(stamps, frames, strict=True)
                     for x in (rec(ts // 1_000_000_000, ts % 1_000_000_000, len(d), len(d)), d)]
        self._f.write(b"".join(parts))
        self.packets += len(frames)
        self.bytes += sum(map(len, frames))

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
