"""Counter holders with the names users already know.

`PortCounters` uses the kernel's interface statistics names (as in
``ip -s link`` and OVS's Interface statistics).  ``rx_dropped`` counts frames
received on the port that the switch then dropped, whatever the reason (the
reason itself is counted by the element that dropped it), except frames a
NIC lost for want of buffer space, which count as ``rx_missed_errors`` (as
ixgbe reports MPC); ``tx_dropped`` counts frames the driver could not hand
to the device, and frames (or flood copies) the switch did not send to the
port because they exceed its MTU.
"""

from __future__ import annotations

PORT_COUNTERS = ("rx_packets", "rx_bytes", "rx_dropped", "rx_errors", "rx_missed_errors",
                 "tx_packets", "tx_bytes", "tx_dropped", "tx_errors")


class PortCounters:
    __slots__ = ("name",) + PORT_COUNTERS

    def __init__(self, name: str) -> None:
        self.name = name
        self.rx_packets = self.rx_bytes = self.rx_dropped = self.rx_errors = self.rx_missed_errors = 0
        self.tx_packets = self.tx_bytes = self.tx_dropped = self.tx_errors = 0

    def as_dict(self) -> dict[str, int]:
        return {c: getattr(self, c) for c in PORT_COUNTERS}

    def __repr__(self) -> str:
        return f"PortCounters({self.name!r}, {self.as_dict()})"
