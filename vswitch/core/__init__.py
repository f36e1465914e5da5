"""The sans-IO dataplane core: frames, elements, the graph, counters, queues.

Nothing here does I/O or reads a clock; drivers pass ``now_ns`` in.
"""

from vswitch.core.counters import PORT_COUNTERS, PortCounters
from vswitch.core.element import Batch, Element
from vswitch.core.frame import BROADCAST, Frame, mac_str, parse_mac, pop_tag, push_tag
from vswitch.core.graph import Graph, GraphError
from vswitch.core.queues import Queue

__all__ = ["BROADCAST", "PORT_COUNTERS", "Batch", "Element", "Frame", "Graph", "GraphError",
           "PortCounters", "Queue", "mac_str", "parse_mac", "pop_tag", "push_tag"]
