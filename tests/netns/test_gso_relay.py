"""TCP between two namespaces through a tiny relay over our ports: GSO super-frames cross it.

``offload`` mode passes each (vnet, frame) pair through unchanged; ``plain``
mode sends every frame through `gso.to_plain` first, as the switch must for
a port without offloads.  On a TAP written without ``NEEDS_CSUM`` the
kernel verifies every checksum, so an intact transfer in ``plain`` mode
proves the segmentation produces correct frames.
"""

from __future__ import annotations

import hashlib
import select
import sys
import threading
import time
from typing import Any

import pytest

from tests.netns.conftest import Lab
from vswitch.core.gso import to_plain
from vswitch.io import netlink
from vswitch.io.packet_socket import PacketSocketPort
from vswitch.io.tap import TapPort

pytestmark = [pytest.mark.netns, pytest.mark.slow]

NBYTES = 24 << 20

_SERVER = """
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5201)); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(30)
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(1 << 20)
    if not d:
        break
    h.update(d); n += len(d)
print(n, h.hexdigest())
"""

_CLIENT = """
import socket, sys, time
n = int(sys.argv[2])
block = bytes((i * 13 + 7) & 0xFF for i in range(1 << 16))
for _ in range(50):
    try:
        c = socket.create_connection((sys.argv[1], 5201), timeout=30); break
    except OSError:
        time.sleep(0.1)
sent = 0
while sent < n:
    c.sendall(block); sent += len(block)
c.close()
"""


def _expected() -> str:
    block = bytes((i * 13 + 7) & 0xFF for i in range(1 << 16))
    h = hashlib.sha256()
    for _ in range(NBYTES // len(block)):
        h.update(block)
    return h.hexdigest()


class Relay(threading.Thread):
    def __init__(self, a: Any, b: Any, plain: bool) -> None:
        super().__init__(daemon=True)
        self.a, self.b, self.plain = a, b, plain
        self.stop = threading.Event()
        self.max_len = 0
        self.gso_types: set[int] = set()
        self.frames = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for src in select.select([self.a, self.b], [], [], 0.1)[0]:
                    dst = self.b if src is self.a else self.a
                    for vnet, frame in src.read_batch(64):
                        self.frames += 1
                        self.max_len = max(self.max_len, len(frame))
                        if vnet is not None and vnet[1]:
                            self.gso_types.add(vnet[1] & 0x7F)
                        if self.plain:
                            for f in to_plain(vnet, frame, 1500):
                                dst.write(None, f)
                        else:
                            dst.write(vnet, frame)
        except BaseException as e:   # surfaced by the test
            self.error = e


def _taps(lab: Lab, na: str, nb: str) -> tuple[Any, Any]:
    a, b = TapPort(lab.name("ta")), TapPort(lab.name("tb"))
    lab.on_cleanup(a.close)
    lab.on_cleanup(b.close)
    netlink.configure(a.name, netns=na, mtu=1500, addresses=["10.213.5.1/24"])
    netlink.configure(b.name, netns=nb, mtu=1500, addresses=["10.213.5.2/24"])
    return a, b


def _attach(lab: Lab, na: str, nb: str) -> tuple[Any, Any]:
    ports = []
    for ns, s, addr in ((na, "a", "10.213.5.1/24"), (nb, "b", "10.213.5.2/24")):
        here, there = lab.veth("h" + s, "g" + s, netns_b=ns)
        netlink.set_up(here)
        netlink.configure(there, netns=ns, addresses=[addr])
        p = PacketSocketPort(here)
        lab.on_cleanup(p.close)
        ports.append(p)
    return ports[0], ports[1]


@pytest.mark.parametrize("kind", ["tap", "attach"])
@pytest.mark.parametrize("plain", [False, True], ids=["offload", "plain"])
def test_tcp_transfer_carries_gso_superframes(lab: Lab, kind: str, plain: bool) -> None:
    na, nb = lab.netns("A"), lab.netns("B")
    a, b = (_taps if kind == "tap" else _attach)(lab, na, nb)
    relay = Relay(a, b, plain)
    relay.start()
    lab.on_cleanup(relay.stop.set)
    server = lab.spawn(nb, sys.executable, "-c", _SERVER, "10.213.5.2")
    time.sleep(0.3)
    t0 = time.monotonic()
    lab.run(na, sys.executable, "-c", _CLIENT, "10.213.5.2", str(NBYTES), timeout=120)
    out, err = server.communicate(timeout=60)
    elapsed = time.monotonic() - t0
    relay.stop.set()
    relay.join(5)
    assert relay.error is None, repr(relay.error)
    assert server.returncode == 0, err
    n, digest = out.split()
    assert int(n) == NBYTES and digest == _expected()
    assert relay.max_len > 1514, "no frame larger than the MTU crossed the relay"
    assert relay.gso_types & {1, 4}, f"no TCP GSO type seen: {relay.gso_types}"
    print(f"{kind}/{'plain' if plain else 'offload'}: {NBYTES * 8 / elapsed / 1e9:.2f} Gb/s, "
          f"{relay.frames} frames, largest {relay.max_len} B")
