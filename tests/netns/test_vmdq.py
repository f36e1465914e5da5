"""vswitchd with the emulated NIC: VMDq pools (and software mode) with real guests and a real wire."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.netns.harness import Daemon, guest, mac_of, ping_ok

pytestmark = pytest.mark.netns


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="vswitchd-nic-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def nic_topology(lab, mode: str, vlan_g3: int | None = None) -> tuple[str, dict[str, str], str]:
    """An uplink (attach, veth whose far side sits in namespace 'ext') and three tap guests."""
    ext = lab.netns("ext")
    up, far = lab.veth("up", "far", ext)          # ours stays down: the daemon sets it up
    guest(lab, ext, far, "10.61.0.100/24")
    lines = ["[nic]", 'profile = "82599"', f'mode = "{mode}"', f'uplink = "{up}"', "",
             "[[port]]", f'name = "{up}"', 'type = "attach"', ""]
    taps = {}
    for g in ("g1", "g2", "g3"):
        ns = lab.netns(g)
        taps[g] = lab.name("t" + g)
        lines += ["[[port]]", f'name = "{taps[g]}"', f'netns = "{ns}"', ""]
    return "\n".join(lines), taps, ext


def test_vmdq_guests_ping_out_and_each_other_frames_land_in_their_pools(lab, workdir):
    text, taps, ext = nic_topology(lab, "vmdq")
    d = Daemon(lab, workdir, text).start()
    for i, g in enumerate(("g1", "g2", "g3"), 1):
        guest(lab, lab.prefix + g, taps[g], f"10.61.0.{i}/24")
    for i, g in enumerate(("g1", "g2", "g3"), 1):
        assert ping_ok(lab, lab.prefix + g, "10.61.0.100"), (g, d.log.read_text())     # out through the wire
        assert ping_ok(lab, ext, f"10.61.0.{i}"), g                                     # in from the wire
    assert ping_ok(lab, lab.prefix + "g1", "10.61.0.2")                                 # guest to guest (VEB)
    assert ping_ok(lab, lab.prefix + "g3", "10.61.0.1")
    nic = d.ctl_json("nic", "show")
    assert nic["mode"] == "vmdq"
    pools = {b["port"]: b for b in nic["bindings"]}
    assert sorted(b["pool"] for b in pools.values()) == [1, 2, 3]
    for g in ("g1", "g2", "g3"):
        b = pools[taps[g]]
        # The guest's MAC is in RAR for its pool, and its pool's queues received its frames.
        assert b["mac"] == mac_of(lab, lab.prefix + g, taps[g])
        rar = {f["mac"]: f["pools"] for f in nic["filters"]["rar"]}
        assert rar[b["mac"]] == [b["pool"]]
        counters = nic["counters"]["pools"][str(b["pool"])]
        assert counters["gprc"] >= 3 and counters["gptc"] >= 3
        assert sum(nic["counters"]["queues"][f"q{q}_rx_packets"] for q in b["queues"]) == counters["gprc"]
    # Frames from the wire reached the guests by pool selection, not by the software FDB.
    sw = d.call("counters")["switch"]
    assert sw["forwarded"] == 0
    # The NIC's counters are in the graph's snapshot: counters --json shows its parts, and the
    # emulation's own time is told apart from the switch's in perf-show.
    c = d.call("counters")
    assert c["nic"]["nic0"]["port"]["gprc"] > 0 and c["nic"]["nic0"]["port"]["gptc"] > 0
    assert c["nic"]["nic0.sorter"]["frames"] > 0
    assert sum(c["nic"][f"nic0.rxq{q}"]["sent_packets"] for q in pools[taps["g1"]]["queues"]) >= 3
    perf = d.call("perf-show")["nic"]
    assert perf["mode"] == "vmdq" and perf["nic_model_ns_per_frame"] > 0
    # the frames that crossed the NIC either way: the uplink port's, as calibration divides by them
    (up,) = [c for n, c in d.call("counters")["ports"].items() if n not in taps.values()]
    assert 0 < perf["frames"] <= up["rx_packets"] + up["tx_packets"]
    # the loop thread's CPU time, and what answering the control socket took of it (every call)
    l0 = d.call("perf-show")["loop"]
    l1 = d.call("perf-show")["loop"]
    assert 0 < l0["control_cpu_ns"] < l1["control_cpu_ns"] < l1["cpu_ns"] and l0["cpu_ns"] <= l1["cpu_ns"]
    assert perf["elements"]["nic0"]["calls"] > 0 and perf["elements"]["nic0"]["self_ns"] > 0


def test_vmdq_access_vlan_guest_is_tagged_on_the_wire(lab, workdir):
    """A guest on access VLAN 30: VMVIR tags its frames on the wire; the far side without VLAN 30 cannot
    reach it, the other guests (untagged pools) still can talk to the wire."""
    text, taps, ext = nic_topology(lab, "vmdq")
    text = text.replace(f'name = "{taps["g3"]}"', f'name = "{taps["g3"]}"\ntag = 30')
    d = Daemon(lab, workdir, text).start()
    for i, g in enumerate(("g1", "g2", "g3"), 1):
        guest(lab, lab.prefix + g, taps[g], f"10.61.0.{i}/24")
    assert ping_ok(lab, lab.prefix + "g1", "10.61.0.100")
    assert not ping_ok(lab, lab.prefix + "g3", "10.61.0.100", 2)      # tagged 30 on the wire: ext ignores it
    nic = d.ctl_json("nic", "show")
    b3 = next(b for b in nic["bindings"] if b["port"] == taps["g3"])
    assert b3["vlan"] == 30
    assert any(v["vid"] == 30 and v["pools"] == [b3["pool"]] for v in nic["filters"]["vlvf"])
    # Taking the port out of VLAN 30 at run time re-programs its pool: untagged again, it reaches the wire.
    r = d.ctl("set-port", taps["g3"], "tag=none")
    assert r.returncode == 0, r.stderr
    nic = d.ctl_json("nic", "show")
    assert next(b for b in nic["bindings"] if b["port"] == taps["g3"])["vlan"] is None
    assert not any(v["vid"] == 30 for v in nic["filters"]["vlvf"])
    # g3's kernel remembers its failed ARP for 10.61.0.100 (FAILED): make it ask again.
    lab.run(lab.prefix + "g3", "ip", "neigh", "flush", "dev", taps["g3"])
    assert ping_ok(lab, lab.prefix + "g3", "10.61.0.100")


def test_software_mode_one_queue_switch_classifies_everything(lab, workdir):
    text, taps, ext = nic_topology(lab, "software")
    d = Daemon(lab, workdir, text).start()
    for i, g in enumerate(("g1", "g2", "g3"), 1):
        guest(lab, lab.prefix + g, taps[g], f"10.61.0.{i}/24")
    assert ping_ok(lab, lab.prefix + "g1", "10.61.0.100")
    assert ping_ok(lab, ext, "10.61.0.2")
    assert ping_ok(lab, lab.prefix + "g1", "10.61.0.3")
    nic = d.ctl_json("nic", "show")
    assert nic["bindings"] == []
    q = nic["counters"]["queues"]
    assert q["q0_rx_packets"] > 0
    assert all(v == 0 for k, v in q.items() if k.endswith("_rx_packets") and k != "q0_rx_packets")
    assert d.call("counters")["switch"]["forwarded"] > 0          # the software FDB did the work
