"""A real QEMU VM on a VF: vswitchd in SR-IOV mode, the VM's tap an attach port with ``vf = 1``.

The peer is a tap guest in a namespace on VF 0 (guest to guest: the NIC's VEB) and a namespace on
the uplink's far side (the wire).  The VM's virtio-net hands its tap TCP super-frames (TSO, up to
64 KiB) with partial checksums: the NIC's TSO stage in front of the VF (``nic0.tso1``) cuts them to
MTU-sized frames with complete checksums, as a VF's TX would.  The software switch sees nothing.
"""

from __future__ import annotations

import re
import sys

import pytest

from nicmodel.tables import hash12
from tests.netns.harness import Daemon, guest, ping_ok
from tests.vm.guest import Guest
from tests.vm.qemu import Vm

pytestmark = [pytest.mark.netns, pytest.mark.vm, pytest.mark.slow]

NET = "10.78.0"
VM6 = "fd78::ab:cd01"
SOLICITED = b"\x33\x33\xff\xab\xcd\x01"        # its solicited-node group (ff02::1:ffab:cd01), MTA hash 0x1c
BULK_MB = 8
# Reads one TCP connection to its end; prints the byte count and the SHA-256 of what came.
SINK = r"""
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001)); s.listen(1); print("listening", flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    h.update(b); n += len(b)
c.close(); print(n, h.hexdigest(), flush=True)
"""


def vm_ping(vm: Vm, addr: str, count: int = 5, size: int = 56) -> tuple[int, int]:
    """(sent, received) of a busybox ping from inside the VM."""
    _, out = vm.sh(f"ping -c {count} -s {size} -W 3 {addr}", timeout=90)
    m = re.search(r"(\d+) packets transmitted, (\d+) packets received", out)
    assert m, f"{vm.tap}: no ping summary:\n{out}"
    return int(m.group(1)), int(m.group(2))


def vm_ping6(vm: Vm, addr: str, count: int = 5) -> tuple[int, int]:
    """(sent, received) of a busybox ping6 from inside the VM (its address may still be tentative)."""
    for _ in range(10):
        _, out = vm.sh(f"ping6 -c {count} -W 3 {addr}", timeout=90)
        m = re.search(r"(\d+) packets transmitted, (\d+) packets received", out)
        assert m or "bad address" in out or "Cannot assign" in out, f"{vm.tap}: no ping summary:\n{out}"
        if m:
            return int(m.group(1)), int(m.group(2))
        vm.sh("sleep 1")
    raise AssertionError(f"{vm.tap}: ping6 never ran:\n{out}")


def switch_work(c: dict) -> int:
    sw = c["switch"]
    return sw["forwarded"] + sw["flooded"] + sum(sw["drops"].values())


def test_a_qemu_vm_on_a_vf_pings_a_guest_and_the_wire_and_sends_tso_bulk_through_its_vf(lab, workdir,
                                                                                        vm_guest: Guest):
    ext, hns = lab.netns("ext"), lab.netns("h")
    up, far = lab.veth("up", "far", ext)
    guest(lab, ext, far, f"{NET}.100/24")
    htap, vtap = lab.name("th"), lab.name("vm")
    qmp = workdir / "vm.qmp"                           # QEMU's QMP: the daemon follows the guest's filter
    vm_mac = f"52:54:{lab.prefix[3:5]}:{lab.prefix[5:7]}:{lab.prefix[7:9]}:01"
    d = Daemon(lab, workdir, "\n".join([
        "[nic]", 'profile = "82599"', 'mode = "sriov"', "numvfs = 4", f'uplink = "{up}"', "",
        "[[port]]", f'name = "{up}"', 'type = "attach"', "",
        "[[port]]", f'name = "{htap}"', f'netns = "{hns}"', "vf = 0", 'mac = "52:54:00:5e:00:03"', "",
        "[[port]]", f'name = "{vtap}"', 'type = "attach"', "vf = 1", f'mac = "{vm_mac}"', f'qmp = "{qmp}"',
        ""])).start()
    assert d.port(vtap)["state"] == "pending"          # QEMU has not made its tap yet
    guest(lab, hns, htap, f"{NET}.3/24")
    vm = Vm(vm_guest, tap=vtap, mac=vm_mac, ip=f"{NET}.1/24", log=workdir / f"{vtap}.console", qmp=qmp)
    lab.on_cleanup(vm.kill)
    vm.start().wait_ready()
    d.wait_state(vtap, "up")

    def vf1() -> dict:
        return next(v for v in d.ctl_json("vf", "show")["vfs"] if v["vf"] == 1)

    before = vf1()
    assert before["port"] == vtap and before["guest"] == vtap and before["mac"] == vm_mac
    # IPv4 both ways: to the guest on VF 0 (VEB) and to the wire's far side.
    assert vm_ping(vm, f"{NET}.3") == (5, 5)
    assert vm_ping(vm, f"{NET}.100") == (5, 5)
    assert ping_ok(lab, hns, f"{NET}.1") and ping_ok(lab, ext, f"{NET}.1")
    # Large datagrams: IP fragments, each MTU-sized, both ways.
    assert vm_ping(vm, f"{NET}.3", 3, 8000) == (3, 3)
    p = lab.spawn(hns, "ping", "-c", "3", "-s", "6000", "-i", "0.3", "-W", "3", f"{NET}.1")
    assert p.wait(timeout=60) == 0, p.communicate()
    # IPv6: neighbour discovery is multicast to the solicited-node groups, which reach the VM only
    # because its VF's driver joined the groups the VM's virtio-net driver gave QEMU (QMP).
    lab.run(hns, "sysctl", "-qw", f"net.ipv6.conf.{htap}.disable_ipv6=0")
    lab.run(hns, "ip", "addr", "add", "fd78::3/64", "dev", htap, "nodad")
    vm.check(f"ip addr add {VM6}/64 dev eth0 && i=0; while ip -6 addr show dev eth0 | grep -q tentative; do "
             "i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done", timeout=60)
    # The namespace first: it knows nothing of the VM, so its first frame is a multicast NS.  The
    # NIC's MTA is shared by all pools (each VF's ROMPE says whether it takes MTA hits at all):
    # the VM's group must hash apart from the groups VF 0 joined, or VF 0's hash would let it in.
    assert hash12(SOLICITED) not in next(v for v in d.ctl_json("vf", "show")["vfs"] if v["vf"] == 0)["mc_hashes"]
    p = lab.spawn(hns, "ping", "-c", "3", "-i", "0.3", "-W", "3", VM6)
    assert p.wait(timeout=60) == 0, p.communicate()
    assert vm_ping6(vm, "fd78::3") == (5, 5)
    v = vf1()
    assert hash12(SOLICITED) in v["mc_hashes"] and hash12(b"\x33\x33\x00\x00\x00\x01") in v["mc_hashes"], v
    assert any("VF->PF SET_MULTICAST" in m for m in v["mailbox"])
    # TCP bulk from the VM: its TSO super-frames cut by the NIC's TSO stage, the bytes intact.
    sink = lab.spawn(hns, sys.executable, "-c", SINK, f"{NET}.3")
    assert sink.stdout is not None and sink.stdout.readline().strip() == "listening"
    sent = vm.check(f"dd if=/dev/urandom of=/tmp/data bs=1M count={BULK_MB} 2>/dev/null && sha256sum /tmp/data",
                    timeout=120).split()[0]
    vm.check(f"nc {NET}.3 5001 < /tmp/data", timeout=300)
    out, err = sink.communicate(timeout=120)
    n, digest = out.split()
    assert (int(n), digest) == (BULK_MB << 20, sent), err
    perf = d.call("perf-show")["ports"][vtap]
    assert perf["gso_frames_in"] > 0 and perf["max_frame_bytes"] > 1514, perf      # super-frames came in
    c = d.call("counters")
    tso = c["nic"]["nic0.tso1"]
    assert tso["segmented"] > 0 and tso["segments"] > tso["segmented"], tso
    assert sum(tso.get("drops", {}).values()) == 0, tso
    assert switch_work(c) == 0, c["switch"]              # the hypervisor's switch touched no VF frame
    # `vf show`: VF 1's counters moved with all of it.
    after = vf1()
    s0, s1 = before["stats"], after["stats"]
    assert s1["tx_packets"] - s0["tx_packets"] > (BULK_MB << 20) // 1500, (s0, s1)
    assert s1["tx_bytes"] - s0["tx_bytes"] > BULK_MB << 20
    assert s1["rx_packets"] - s0["rx_packets"] > 20 and s1["tx_dropped"] == 0, s1
    r = d.ctl("vf", "show")
    assert r.returncode == 0 and vm_mac in r.stdout, r.stderr
