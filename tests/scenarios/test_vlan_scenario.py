"""One scenario, two drivers: the same topology and frames through offline replay and live vswitchd.

The expected egress of every port is written from the VLAN rules (OVS
vlan_mode), not computed by the switch; the replay driver and the live daemon
with real TAP devices must both produce exactly it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dpkt
import pytest

from vswitch.drivers.replay import ReplayDriver, records_per_port
from vswitch.io.pcap import PcapWriter
from vswitch.topology import build_dataplane, parse_topology

# u1, u2, u3 have no VLAN config (trunks of every VLAN, OVS's default); u1 and u3 a jumbo MTU.
PORTS = {"a1": {"tag": 10}, "a2": {"tag": 10}, "b1": {"tag": 20},
         "tr": {"vlan_mode": "trunk", "trunks": "10,20"},
         "u1": {"mtu": 9000}, "u2": {}, "u3": {"mtu": 9000}}
MAC = {p: bytes([2, 0xAA, 0, 0, 0, i]) for i, p in enumerate(PORTS, 1)}
BCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes, marker: int, vlan: int | None = None, pcp: int = 0, size: int = 44) -> bytes:
    tag = b"\x81\x00" + ((pcp << 13) | vlan).to_bytes(2, "big") if vlan is not None else b""
    return dst + src + tag + b"\x88\xb5" + marker.to_bytes(2, "big") + bytes(size)   # local experimental type


def untagged(f: bytes) -> bytes:
    return f[:12] + f[16:] if f[12:14] == b"\x81\x00" else f


def tagged(f: bytes, vid: int) -> bytes:
    return f[:12] + b"\x81\x00" + vid.to_bytes(2, "big") + untagged(f)[12:]


# (ingress port, frame), in order: later frames rely on what earlier ones taught the switch.
F1 = frame(BCAST, MAC["a1"], 1)                 # VLAN 10 broadcast
F2 = frame(BCAST, MAC["b1"], 2)                 # VLAN 20 broadcast
F3 = frame(MAC["a1"], MAC["tr"], 3, vlan=10)    # known unicast to a1 (learned from F1), from the trunk
F4 = frame(BCAST, MAC["tr"], 4, vlan=20)        # VLAN 20 broadcast from the trunk
F5 = frame(MAC["b1"], MAC["a2"], 5)             # b1 is known only in VLAN 20: unknown in VLAN 10, flooded
F6 = frame(BCAST, MAC["a1"], 6, vlan=20)        # tagged frame on an access port: dropped (OVS)
F7 = frame(BCAST, MAC["u1"], 7, vlan=0, pcp=5)  # priority tag, VLAN 0: leaves u2 and u3 unchanged
F8 = frame(BCAST, MAC["u2"], 8, vlan=4095)      # VID 4095 is reserved: dropped (vlan_reserved)
F9 = frame(BCAST, MAC["u1"], 9, size=8998)      # 9014 bytes (L3 9000): fits u3, not u2's MTU 1500
SCENARIO = [("a1", F1), ("b1", F2), ("tr", F3), ("tr", F4), ("a2", F5), ("a1", F6), ("u1", F7),
            ("u2", F8), ("u1", F9)]

EXPECTED = {
    "a1": [untagged(F3), untagged(F5)],
    "a2": [untagged(F1)],
    "b1": [untagged(F4)],
    "tr": [tagged(F1, 10), tagged(F2, 20), tagged(F5, 10)],
    "u1": [tagged(F1, 10), tagged(F2, 20), tagged(F4, 20), tagged(F5, 10)],
    "u2": [tagged(F1, 10), tagged(F2, 20), tagged(F4, 20), tagged(F5, 10), F7],
    "u3": [tagged(F1, 10), tagged(F2, 20), tagged(F4, 20), tagged(F5, 10), F7, F9],
}
DROPS = {"vlan_not_allowed": 1, "vlan_reserved": 1}      # and F9's copy to u2: a tx_dropped there


def marker(f: bytes) -> int:
    u = untagged(f)
    return int.from_bytes(u[14:16], "big")


def by_marker(frames: list[bytes]) -> list[bytes]:
    return sorted(frames, key=marker)


def test_replay_driver(tmp_path: Path) -> None:
    topo = parse_topology({"port": [{"name": n, "type": "replay", **o} for n, o in PORTS.items()]})
    dp = build_dataplane(topo)
    files = {}
    for name in PORTS:
        with PcapWriter(tmp_path / f"in-{name}.pcap") as w:
            for i, (port, f) in enumerate(SCENARIO):
                if port == name:
                    w.write(f, (i + 1) * 1_000_000)
        files[dp.numbers[name]] = tmp_path / f"in-{name}.pcap"
    res = ReplayDriver(dp, out_dir=tmp_path / "out").run(records_per_port(files))
    assert res.error is None
    got = {}
    for name, path in res.outputs.items():
        with open(path, "rb") as fh:
            got[name] = [bytes(buf) for _, buf in dpkt.pcap.Reader(fh)]
    assert {n: by_marker(f) for n, f in got.items()} == {n: by_marker(f) for n, f in EXPECTED.items()}
    assert {k: v for k, v in dp.switch.drops.items() if v} == DROPS
    assert {n: c["tx_dropped"] for n, c in dp.graph.snapshot()["ports"].items()} == {
        n: int(n == "u2") for n in PORTS}


L2TOOL = str(Path(__file__).resolve().parents[1] / "netns" / "l2tool.py")


@pytest.mark.netns
def test_live_vswitchd(lab) -> None:
    from tests.netns.harness import Daemon
    work = Path(tempfile.mkdtemp(prefix="vswitch-scenario-", dir="/tmp"))
    lab.on_cleanup(lambda: shutil.rmtree(work, ignore_errors=True))
    lines = []
    taps, nss = {}, {}
    for name, opts in PORTS.items():
        nss[name] = lab.netns(name)
        taps[name] = lab.name("t" + name)
        lines += ["[[port]]", f'name = "{taps[name]}"', f'netns = "{nss[name]}"']
        lines += [f"{k} = {json.dumps(v)}" for k, v in opts.items()] + [""]
    d = Daemon(lab, work, "\n".join(lines)).start()
    for name in PORTS:
        lab.run(nss[name], "ip", "link", "set", taps[name], "up")
    sent = work / "sent"
    sniffers = {n: lab.spawn(nss[n], sys.executable, L2TOOL, "sniff", taps[n], "120", f"stop={sent}")
                for n in PORTS}
    for p in sniffers.values():                            # scapy's import (seconds when busy), then it listens
        assert p.stderr is not None
        assert any(line.strip() == "listening" for line in p.stderr), p.communicate(timeout=60)

    def u2_tx_dropped() -> int:
        return d.call("counters")["ports"][taps["u2"]]["tx_dropped"]
    for port, f in SCENARIO:
        if f is F9:
            before = u2_tx_dropped()
        lab.run(nss[port], sys.executable, L2TOOL, "send", taps[port], f.hex())
        time.sleep(0.2)
    # The daemon has read every frame (and written its copies); then a second for the captures to
    # read theirs, and for any frame that should not arrive to show up.
    deadline = time.monotonic() + 30
    while (sum(c["rx_packets"] for c in d.call("counters")["ports"].values()) < len(SCENARIO)
           and time.monotonic() < deadline):
        time.sleep(0.05)
    while u2_tx_dropped() == before and time.monotonic() < deadline:      # F9 switched
        time.sleep(0.05)
    time.sleep(1)
    after = u2_tx_dropped()
    sent.write_text("")
    got = {}
    for n, p in sniffers.items():
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        mine = {marker(f) for port, f in SCENARIO if port == n}
        frames = [bytes.fromhex(x["hex"]) for x in json.loads(out)]
        # Only the scenario's frames (EtherType 0x88b5), and not the port's own, seen going out.
        got[n] = [f for f in frames if untagged(f)[12:14] == b"\x88\xb5" and marker(f) not in mine]
    assert {n: by_marker(f) for n, f in got.items()} == {n: by_marker(f) for n, f in EXPECTED.items()}
    drops = d.call("counters")["switch"]["drops"]
    assert {k: drops[k] for k in DROPS} == DROPS
    assert after - before == 1                             # F9's copy, refused by u2's MTU


@pytest.fixture
def lab():
    from tests.netns.conftest import Lab, _skip_reason
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("ip") is None or subprocess.run([sys.executable, "-c", "import scapy"]).returncode:
        pytest.skip("needs iproute2 and scapy")
    lab = Lab()
    try:
        yield lab
    finally:
        lab.cleanup()
