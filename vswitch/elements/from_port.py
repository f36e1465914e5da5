"""FromPort: passes the frames that entered the graph by one port, sets the rest aside.

Element `FromPort`
    input ``in``;
    output ``out``: frames whose ``in_port`` is ``port``;
    output ``other``: the rest (usually left unconnected, where the graph
    counts them: they are not drops).
Config: ``port``.  Counters: ``passed``, ``other``.

Where it sits: between an emulated NIC's default pool and the hypervisor's
software switch.  The default pool receives the wire's frames that no guest
pool took, and also VEB copies of the guests' own broadcast and multicast
(the NIC has already delivered them to the other pools and the wire): those
are for the host's own stack, which vswitchd does not have, and fed to the
switch as if they had come from the wire they would be flooded back to their
sender.
"""

from __future__ import annotations

from typing import ClassVar

from vswitch.core.element import Batch, Element, PortId


class FromPort(Element):
    OUTPUTS: ClassVar[tuple[PortId, ...]] = ("out", "other")
    COUNTERS = ("passed", "other")

    def __init__(self, name: str, port: int) -> None:
        super().__init__(name)
        self.port = port

    def push(self, inp: PortId, batch: Batch, now_ns: int) -> None:
        port = self.port
        ok = [f for f in batch if f.in_port == port]
        c = self.counters
        c["passed"] += len(ok)
        if len(ok) != len(batch):
            rest = [f for f in batch if f.in_port != port]
            c["other"] += len(rest)
            self.emit("other", rest, now_ns)
        self.emit("out", ok, now_ns)
