"""Prometheus exporter over the same counter snapshot the CLI shows.

The HTTP server (prometheus_client's WSGI app) runs in its own thread; each
scrape asks the event loop for a snapshot (``run_coroutine_threadsafe``), so
the figures of one scrape are consistent with each other.  Each connection
takes a thread, so at most `MAX_CONNECTIONS` are served at once (the next
gets ``503 Service Unavailable`` and is closed) and a connection that sends
nothing for `IDLE_TIMEOUT_S` seconds is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector, CollectorRegistry

from vswitch.drivers.live import LiveSwitch

log = logging.getLogger("vswitchd")
MAX_CONNECTIONS = 16
IDLE_TIMEOUT_S = 10.0
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\n"
         b"Connection: close\r\nContent-Length: 32\r\n\r\ntoo many connections: try again\n")


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
        # One family per name, every element a label of it (a NIC has many queues with the
        # same counters; Prometheus refuses a family named twice).
        drops = CounterMetricFamily("vswitch_drops", "Frames dropped, by element and reason",
                                    labels=["element", "reason"])
        families: dict[str, CounterMetricFamily] = {}
        fdb_families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for el, snap in g["elements"].items():
            for reason, n in snap.get("drops", {}).items():
                drops.add_metric([el, reason], n)
            for k, v in snap.items():
                if isinstance(v, int) and not isinstance(v, bool):
                    fam = families.get(k)
                    if fam is None:
                        fam = families[k] = CounterMetricFamily(f"vswitch_{k}", f"element counter {k}",
                                                                labels=["element"])
                    fam.add_metric([el], v)
            fdb = snap.get("fdb")
            if fdb:
                for k, v in fdb.items():
                    m = fdb_families.get(k)
                    if m is None:
                        kind = GaugeMetricFamily if k in ("current_entries", "max_entries", "static") \
                            else CounterMetricFamily
                        m = fdb_families[k] = kind(f"vswitch_fdb_{k}", f"FDB {k}", labels=["bridge"])
                    m.add_metric([el], v)
            nic_port = snap.get("port")
            if "profile" in snap and isinstance(nic_port, dict):     # an emulated NIC's datasheet counters
                for name, count in nic_port.items():
                    nf = families.get(f"nic_{name}")
                    if nf is None:
                        nf = families[f"nic_{name}"] = CounterMetricFamily(f"vswitch_nic_{name}", f"NIC {name}",
                                                                           labels=["element"])
                    nf.add_metric([el], count)
        yield drops
        yield from families.values()
        yield from fdb_families.values()


class _Handler(WSGIRequestHandler):
    """One request per connection (HTTP/1.0), read within the server's idle timeout."""

    server: ExporterServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)

    def handle(self) -> None:
        with contextlib.suppress(OSError):      # timed out idle, or the client went away
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ExporterServer(ThreadingWSGIServer):
    """A thread per connection, at most ``max_connections`` of them."""

    request_queue_size = 128     # the listen backlog: a burst is answered (busy), not left to SYN retries

    def __init__(self, addr: tuple[str, int], family: int, max_connections: int, idle_timeout: float) -> None:
        self.address_family = family
        self.idle_timeout = idle_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(addr, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)     # the thread releases the slot
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("metrics_request_failed", extra={"kv": {"client": client_address}}, exc_info=True)


def start_exporter(sw: LiveSwitch, loop: asyncio.AbstractEventLoop, addr: str, port: int,
                   max_connections: int = MAX_CONNECTIONS, idle_timeout: float = IDLE_TIMEOUT_S) -> ExporterServer:
    """Serve /metrics on ``addr:port`` from a thread; OSError (socket.gaierror for a name that does not
    resolve) if it cannot listen there."""
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(sw, loop))
    family, _, _, _, sockaddr = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    server = ExporterServer((str(sockaddr[0]), port), family, max_connections, idle_timeout)
    server.set_app(make_wsgi_app(registry))
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
