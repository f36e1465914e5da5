"""Prometheus exporter over the same counter snapshot the CLI shows.

The HTTP server (prometheus_client) runs in its own thread; each scrape asks
the event loop for a snapshot (``run_coroutine_threadsafe``), so the figures
of one scrape are consistent with each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from vswitch.drivers.live import LiveSwitch


class SnapshotCollector(Collector):
    def __init__(self, sw: LiveSwitch, loop: asyncio.AbstractEventLoop) -> None:
        self.sw = sw
        self.loop = loop

    def _snapshot(self) -> dict[str, Any]:
        async def snap() -> dict[str, Any]:
            return {"graph": self.sw.dp.graph.snapshot(), "ports": self.sw.show()["ports"]}
        return asyncio.run_coroutine_threadsafe(snap(), self.loop).result(timeout=5)

    def collect(self) -> Iterator[Any]:
        s = self._snapshot()
        g = s["graph"]
        port = {}
        for name, counters in g["ports"].items():
            for k, v in counters.items():
                if k not in port:
                    port[k] = CounterMetricFamily(f"vswitch_port_{k}", f"Port {k} (kernel name)", labels=["port"])
                port[k].add_metric([name], v)
        yield from port.values()
        up = GaugeMetricFamily("vswitch_port_up", "1 if the port's device is attached", labels=["port", "state"])
        for p in s["ports"]:
            up.add_metric([p["name"], p["state"]], 1.0 if p["state"] == "up" else 0.0)
        yield up
        for el, snap in g["elements"].items():
            drops = CounterMetricFamily("vswitch_drops", "Frames dropped, by element and reason",
                                        labels=["element", "reason"])
            for reason, n in snap.get("drops", {}).items():
                drops.add_metric([el, reason], n)
            yield drops
            for k, v in snap.items():
                if isinstance(v, int):
                    c = CounterMetricFamily(f"vswitch_{k}", f"{el} {k}", labels=["element"])
                    c.add_metric([el], v)
                    yield c
            fdb = snap.get("fdb")
            if fdb:
                for k, v in fdb.items():
                    m: GaugeMetricFamily | CounterMetricFamily
                    if k in ("current_entries", "max_entries", "static"):
                        m = GaugeMetricFamily(f"vswitch_fdb_{k}", f"FDB {k}", labels=["bridge"])
                    else:
                        m = CounterMetricFamily(f"vswitch_fdb_{k}", f"FDB {k}", labels=["bridge"])
                    m.add_metric([el], v)
                    yield m


def start_exporter(sw: LiveSwitch, loop: asyncio.AbstractEventLoop, addr: str, port: int) -> Any:
    from prometheus_client import start_http_server
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(sw, loop))
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server
