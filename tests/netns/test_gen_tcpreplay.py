"""A generated trace through Debian's tcpreplay: it reads pcap and pcapng and sends every frame.

tcpreplay sends the trace on one end of a veth pair inside a namespace of our own; tcpdump on the
other end captures what arrives, and the captured frames are the trace's, byte for byte and in order.
"""

from __future__ import annotations

import re
import select
import shutil
import subprocess
import time

import pytest

from bench.gen import main as gen_main
from vswitch.io.pcap import read_capture

pytestmark = [pytest.mark.netns, pytest.mark.once]   # the generator and tcpreplay: no dataplane


def frames(path) -> list[bytes]:
    cap = read_capture(path)
    try:
        return [f for _, f in cap]
    finally:
        cap.close()


@pytest.mark.skipif(shutil.which("tcpreplay") is None or shutil.which("tcpdump") is None,
                    reason="needs tcpreplay and tcpdump (Debian packages tcpreplay, tcpdump)")
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_tcpreplay_sends_every_frame_of_a_generated_trace(lab, tmp_path, fmt):
    out = tmp_path / f"t.{fmt}"
    assert gen_main([str(out), "-q", *(["--pcapng"] if fmt == "pcapng" else []), "--guests", "4",
                     "--vlans", "10,20", "--tcp", "0.5", "--size", "imix", "--frames", "500",
                     "--arp-pps", "100000", "--bcast-pps", "100000"]) == 0
    sent = frames(out)
    ns = lab.netns("r")
    a, b = lab.veth("a", "b", netns_b=ns)
    subprocess.run(["ip", "link", "set", a, "netns", ns], check=True, timeout=30)
    lab.sh(ns, f"ip link set {a} up && ip link set {b} up")
    got = tmp_path / "got.pcap"
    dump = lab.spawn(ns, "tcpdump", "-n", "-U", "-i", b, "-w", str(got), "-c", str(len(sent)))
    deadline = time.monotonic() + 20
    seen = ""
    while "listening on" not in seen and time.monotonic() < deadline:
        if select.select([dump.stderr], [], [], 0.5)[0]:
            seen += dump.stderr.readline()
    assert "listening on" in seen, seen
    r = lab.run(ns, "tcpreplay", "-i", a, "--pps", "20000", str(out))
    m = re.search(r"Actual: (\d+) packets \((\d+) bytes\)", r.stdout)
    assert m, r.stdout
    assert int(m.group(1)) == len(sent) and int(m.group(2)) == sum(map(len, sent))
    assert re.search(rf"Successful packets:\s+{len(sent)}\b", r.stdout), r.stdout
    dump.wait(timeout=20)
    assert frames(got) == sent
