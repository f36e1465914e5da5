"""Two real QEMU VMs on attach ports of a running vswitchd, as the README sets them up.

vswitchd starts first, with two attach ports (pending) and a TAP port for a
namespace guest; then two TCG guests start with ``-netdev tap,ifname=...,
script=no,downscript=no,vnet_hdr=on``, which leaves each tap down.  Nothing
here sets any interface up: the daemon must, and every VM restart undoes it.
"""

from __future__ import annotations

import re

import pytest

from tests.netns.harness import Daemon, guest
from tests.vm.guest import Guest
from tests.vm.qemu import Vm

pytestmark = [pytest.mark.netns, pytest.mark.vm, pytest.mark.slow]

NET = "10.77.0"
BULK_MB = 16


def guest_ping(vm: Vm, addr: str, count: int = 10) -> tuple[int, int]:
    """(sent, received) of a busybox ping from inside the VM."""
    _, out = vm.sh(f"ping -c {count} -i 0.2 -W 2 {addr}", timeout=60)
    m = re.search(r"(\d+) packets transmitted, (\d+) packets received", out)
    assert m, f"{vm.tap}: no ping summary:\n{out}"
    return int(m.group(1)), int(m.group(2))


def test_two_vms_on_attach_ports_talk_and_survive_a_restart(lab, workdir, vm_guest: Guest):
    hns = lab.netns("h")
    htap, ta, tb = lab.name("th"), lab.name("va"), lab.name("vb")
    d = Daemon(lab, workdir, "\n".join([
        "[bridge]", 'name = "br0"', "",
        "[[port]]", f'name = "{ta}"', 'type = "attach"', "",
        "[[port]]", f'name = "{tb}"', 'type = "attach"', "",
        "[[port]]", f'name = "{htap}"', f'netns = "{hns}"', ""])).start()
    assert d.port(ta)["state"] == d.port(tb)["state"] == "pending"
    guest(lab, hns, htap, f"{NET}.3/24")          # someone for B to talk to while A is down

    def vm(tap: str, n: int) -> Vm:
        mac = f"52:54:{lab.prefix[3:5]}:{lab.prefix[5:7]}:{lab.prefix[7:9]}:{n:02x}"
        v = Vm(vm_guest, tap=tap, mac=mac, ip=f"{NET}.{n}/24", log=workdir / f"{tap}.console")
        lab.on_cleanup(v.kill)                  # killed even when the test fails
        return v.start()

    a, b = vm(ta, 1), vm(tb, 2)
    a.wait_ready()
    b.wait_ready()
    d.wait_state(ta, "up")
    d.wait_state(tb, "up")

    # Ping both ways.
    assert guest_ping(a, f"{NET}.2") == (10, 10)
    assert guest_ping(b, f"{NET}.1") == (10, 10)

    # Bulk TCP from B to A; the bytes that arrive are the bytes sent.
    sent = b.check(f"dd if=/dev/urandom of=/tmp/data bs=1M count={BULK_MB} 2>/dev/null && sha256sum /tmp/data",
                   timeout=120).split()[0]
    # busybox nc half-closes when its stdin ends and exits when its peer does: the listener
    # reads a FIFO opened read-write (never at EOF), so it is the sender's close that ends it.
    a.check("mkfifo /tmp/idle && nc -l -p 5001 <> /tmp/idle > /tmp/recv & "
            "i=0; while ! netstat -ltn | grep -q ':5001 '; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done")
    b.check(f"nc {NET}.1 5001 < /tmp/data", timeout=120)
    got = a.check("wait; wc -c < /tmp/recv; sha256sum /tmp/recv", timeout=60).split()
    assert (int(got[0]), got[1]) == (BULK_MB << 20, sent)
    perf = d.call("perf-show")["ports"][tb]
    # The virtio guest hands its tap TCP super-frames; they crossed whole, with their vnet header.
    assert perf["gso_frames_in"] > 0 and perf["max_frame_bytes"] > 1514, perf

    # A is killed: its tap vanishes and its port goes down; B and the switch carry on.
    b_before = d.port(tb)
    a.kill()
    d.wait_state(ta, "down", error="removed")
    assert guest_ping(b, f"{NET}.3", 5) == (5, 5)
    assert guest_ping(b, f"{NET}.1", 2)[1] == 0
    p = d.port(tb)
    assert p["state"] == "up" and p["attaches"] == b_before["attaches"] == 1

    # A starts again with the same tap name and MAC: the port comes back on its own.
    a2 = vm(ta, 1)
    a2.wait_ready()
    p = d.wait_state(ta, "up")
    assert p["attaches"] == 2 and (p["admin_state"], p["link_state"]) == ("up", "up")
    assert guest_ping(a2, f"{NET}.2") == (10, 10)
    assert guest_ping(b, f"{NET}.1") == (10, 10)
    assert b.alive() and d.port(tb)["attaches"] == 1      # B was never restarted, its port never re-attached
    assert d.proc is not None and d.proc.poll() is None
