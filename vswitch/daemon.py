"""vswitchd: the live switch daemon.

    vswitchd [--config FILE] [--socket PATH] [--metrics ADDR:PORT] [--mirror-dir DIR] [--log-level LEVEL]

Loads the topology (TOML; a missing file means an empty switch, created on
the first change), opens every port, serves the control socket, and logs one
logfmt line per event (``ts=... level=info event=port_added port=vm1 ...``).
Ports added, changed or removed at run time are written back to the config
file atomically, so a restarted daemon comes back with the same ports.
SIGTERM/SIGINT stop it cleanly: fds closed, TAP devices it created removed
unless marked persistent, the control socket unlinked.
"""

from __future__ import annotations

if __name__ == "__main__":          # run as a program: choose the dataplane build before importing it
    from vswitch import compiled as _compiled
    _compiled.install()

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from vswitch import compiled
from vswitch.control.protocol import DEFAULT_SOCKET, ControlError
from vswitch.control.server import ControlServer
from vswitch.drivers.live import LiveError, LiveSwitch
from vswitch.io.memory import keep_heap
from vswitch.io.mirror_dir import DEFAULT_MIRROR_DIR
from vswitch.topology import ConfigError, Topology, load_topology, save_tmp_path, save_topology

DEFAULT_CONFIG = "/etc/vswitch/vswitchd.toml"
log = logging.getLogger("vswitchd")


class LogfmtFormatter(logging.Formatter):
    """One structured line per event: ts, level, event, then the event's key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [f"ts={t}.{int(record.msecs):03d}Z", f"level={record.levelname.lower()}",
                 f"event={record.getMessage()}"]
        for k, v in getattr(record, "kv", {}).items():
            parts.append(f"{k}={_q(v)}")
        if record.exc_info:
            parts.append(f"exc={_q(self.formatException(record.exc_info))}")
        return " ".join(parts)


def _q(v: Any) -> str:
    s = str(v)
    if s and not any(c in s for c in ' "=\n\t'):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _parse_metrics(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--metrics {text!r}: expected ADDR:PORT, e.g. 127.0.0.1:9477")
    return host.strip("[]") or "127.0.0.1", int(port)


LIVE_TYPES = ("tap", "attach")


def _remove_stray_tmp(config: Path) -> None:
    """A daemon killed while saving (SIGKILL between write and rename) leaves its temporary file."""
    tmp = save_tmp_path(config)
    if tmp.is_symlink() or tmp.is_file():
        try:
            tmp.unlink()
        except OSError as e:
            log.warning("stray_tmp_left", extra={"kv": {"file": str(tmp), "error": e.strerror}})
            return
        log.info("stray_tmp_removed", extra={"kv": {"file": str(tmp)}})


def _start_exporter(sw: LiveSwitch, loop: asyncio.AbstractEventLoop, text: str, host: str, port: int) -> Any:
    import socket

    from vswitch.control.metrics import start_exporter
    try:
        return start_exporter(sw, loop, host, port)
    except socket.gaierror as e:
        raise ControlError(f"--metrics {text}: cannot resolve {host!r}: {e.strerror}") from None
    except OSError as e:
        raise ControlError(f"--metrics {text}: cannot listen there: {e.strerror or e}") from None


async def run(args: argparse.Namespace) -> int:

    config = Path(args.config)
    if config.exists():
        topo = load_topology(config)
    else:
        topo = Topology()
        log.info("config_missing", extra={"kv": {"config": str(config), "note": "starting empty"}})
    for i, p in enumerate(topo.ports):
        if p.type not in LIVE_TYPES:
            raise ConfigError(f"{config}: port[{i}] ({p.name!r}): type {p.type!r}: vswitchd runs "
                              f"{' and '.join(LIVE_TYPES)} ports")
    metrics = _parse_metrics(args.metrics) if args.metrics else None
    _remove_stray_tmp(config)

    sw = LiveSwitch(topo, batch=args.batch, busy_poll_us=args.busy_poll_us, mirror_dir=args.mirror_dir)
    server = ControlServer(sw, args.socket)
    server.prepare()                                 # the socket path is usable: before any port exists
    heap_kept = keep_heap()

    def persist() -> None:
        try:
            save_topology(sw.topo, config)
        except OSError as e:
            log.error("config_save_failed", extra={"kv": {"config": str(config), "error": e.strerror}})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    exporter = None
    try:
        if metrics:                                  # a port already taken fails before any TAP is made
            exporter = _start_exporter(sw, loop, args.metrics, *metrics)
        await sw.start(on_change=persist)
        await server.start()
        log.info("started", extra={"kv": {"config": str(config), "socket": args.socket,
                                          "ports": len(sw.ports), "loop": type(loop).__module__,
                                          "metrics": args.metrics or "off", "pid": os.getpid(),
                                          "malloc_trim": "off" if heap_kept else "default",
                                          "dataplane": compiled.status()}})
        await stop.wait()
        log.info("stopping", extra={"kv": {"reason": "signal"}})
    finally:
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
        await server.close()
        await sw.close()
        log.info("stopped", extra={"kv": {}})
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vswitchd", description="vswitch live switch daemon")
    ap.add_argument("--config", default=DEFAULT_CONFIG, help=f"topology TOML (default {DEFAULT_CONFIG})")
    ap.add_argument("--socket", default=DEFAULT_SOCKET, help=f"control socket (default {DEFAULT_SOCKET})")
    ap.add_argument("--metrics", metavar="ADDR:PORT",
                    help="serve Prometheus metrics, e.g. 127.0.0.1:9477 (off by default)")
    ap.add_argument("--batch", type=int, default=64, help="frames drained per readiness wake-up (default 64)")
    ap.add_argument("--busy-poll-us", type=int, default=0, metavar="US",
                    help="after each batch keep polling the ports this long before sleeping: lower "
                         "latency for CPU time (default 0: off)")
    ap.add_argument("--mirror-dir", default=DEFAULT_MIRROR_DIR, metavar="DIR",
                    help="the only directory pcap mirrors write to: `mirror add --output-pcap NAME` names a "
                         f"file in it; created 0750 when missing (default {DEFAULT_MIRROR_DIR})")
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                    help="least severe event logged (logfmt lines on stderr; default info)")
    args = ap.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler], force=True)
    for noisy in ("pyroute2", "asyncio"):          # --log-level debug is for vswitchd's own events
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    if args.batch < 1:
        ap.error(f"--batch {args.batch}: must be >= 1")
    if not 0 <= args.busy_poll_us <= 1_000_000:
        ap.error(f"--busy-poll-us {args.busy_poll_us}: must be 0-1000000")
    try:
        import uvloop
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        log.warning("uvloop_missing", extra={"kv": {"note": "running on plain asyncio, slower"}})
        runner = asyncio.Runner()
    try:
        with runner:
            return runner.run(run(args))
    except (ConfigError, ControlError, LiveError) as e:
        print(f"vswitchd: {e}", file=sys.stderr)      # one line, not also a log line
        return 2
    except PermissionError as e:
        print(f"vswitchd: permission denied: {e} (run as root: TAP devices need CAP_NET_ADMIN)", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
