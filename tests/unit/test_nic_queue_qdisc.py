"""A guest port's policies on its NIC queues (issue 13 item 2): ``rx_qdisc`` on each RX queue of
its pool (vmdq) or VF (sriov), between the ring and the poll; ``tx_qdisc`` in front of its TX
queue.  From the config file, at run time through the control server (set-port, saved as other
port settings), in ``qdisc show``, and in the discrete driver, where fq_codel on the NIC RX queue
keeps a sparse flow's latency low under a flood while a FIFO does not."""

from __future__ import annotations

import asyncio
import secrets
import struct
from pathlib import Path
from typing import Any

import pytest

from vswitch.control.protocol import encode
from vswitch.control.server import ControlServer
from vswitch.drivers.discrete import Cost, DiscreteDriver, Plan
from vswitch.drivers.replay import Record
from vswitch.port_config import change_port
from vswitch.qdisc_view import qdisc_view, tc_text
from vswitch.topology import (
    ConfigError,
    build_dataplane,
    load_topology,
    parse_topology,
    save_topology,
    topology_to_dict,
)

G1_MAC = "02:00:00:00:00:11"
UP_MAC = b"\x02\x00\x00\x00\x00\xfe"


def vmdq_doc(g1: dict | None = None, nic: dict | None = None) -> dict:
    return {"port": [{"name": "up", "type": "replay"},
                     {"name": "g1", "type": "replay", "mac": G1_MAC, **(g1 or {})}],
            "nic": {"mode": "vmdq", "uplink": "up", **(nic or {})}}


def udp(sport: int, size: int = 200, dst: str = G1_MAC) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size - 14, 0, 0, 64, 17, 0, bytes([10, 0, 0, 1]),
                     bytes([10, 0, 0, 2]))
    body = struct.pack("!HHHH", sport, 5000, size - 34, 0) + bytes(size - 42)
    return bytes.fromhex(dst.replace(":", "")) + UP_MAC + b"\x08\x00" + ip + body


def pool_queues(dp: Any, port: str) -> list[int]:
    return list(dp.nic.nic.state.pool_queues(dp.nic.bindings[port].pool))


# -- config ---------------------------------------------------------------------------------------

def test_vmdq_guest_gets_its_rx_and_tx_policies_and_they_are_saved():
    topo = parse_topology(vmdq_doc({"rx_qdisc": {"kind": "fq_codel", "target": "2ms"}, "tx_qdisc": "pfifo"}))
    dp = build_dataplane(topo)
    nic = dp.nic.nic
    qs = pool_queues(dp, "g1")
    assert sorted(nic.rx_qdisc) == qs                      # each RX queue of the pool its own policy
    assert len({id(nic.rx_qdisc[q].scheduler) for q in qs}) == len(qs)
    assert nic.rx_qdisc[qs[0]].scheduler.config()["target"] == 2_000_000
    assert nic.tx_qdisc[dp.nic.bindings["g1"].pool].scheduler.KIND == "pfifo"
    saved = topology_to_dict(topo)["port"][1]
    assert saved["rx_qdisc"] == {"kind": "fq_codel", "target": "2ms"} and saved["tx_qdisc"] == "pfifo"


def test_sriov_guest_gets_policies_on_its_vf_queues(tmp_path):
    path = tmp_path / "sw.toml"
    path.write_text('[nic]\nmode = "sriov"\nnumvfs = 2\nuplink = "up"\n[[port]]\nname = "up"\n'
                    '[[port]]\nname = "g1"\nvf = 1\nrx_qdisc = "fq_codel"\n[port.tx_qdisc]\nkind = "tbf"\n'
                    'rate = "10mbit"\nburst = "10kb"\nlatency = "50ms"\n')
    dp = build_dataplane(load_topology(path))
    nic = dp.nic.nic
    vf = dp.nic.pf.vf(1)
    assert sorted(nic.rx_qdisc) == sorted(vf.nic_queues)
    assert nic.tx_qdisc[vf.pool].scheduler.KIND == "tbf"
    rows = {r["port"]: r for r in qdisc_view(dp)}
    assert [r["queue"] for r in rows["g1"]["nic_rx"]] == sorted(vf.nic_queues)
    assert rows["g1"]["nic_tx"]["pool"] == vf.pool and "nic_rx" not in rows["up"]
    dp.remove_port("g1")
    assert nic.rx_qdisc == {} and nic.tx_qdisc == {}


@pytest.mark.parametrize("doc, says", [
    (vmdq_doc({"rx_qdisc": "nosuch"}), "port[1] ('g1'): rx_qdisc: unknown qdisc kind 'nosuch'"),
    (vmdq_doc({"rx_qdisc": {"kind": "fq_codel", "target": "fast"}}), "port[1] ('g1'): rx_qdisc: "),
    (vmdq_doc({"tx_qdisc": {"rate": "1mbit"}}), "port[1] ('g1'): tx_qdisc: a qdisc table needs a kind"),
    ({**vmdq_doc(), "port": [{"name": "up", "rx_qdisc": "fq_codel"}, {"name": "g1", "mac": G1_MAC}]},
     "port[0] ('up'): rx_qdisc: the uplink is the NIC's wire"),
    (vmdq_doc({"tx_qdisc": "pfifo"}, {"mode": "software"}), "port[1] ('g1'): tx_qdisc: only a guest port behind "
                                                            "the NIC"),
    ({"port": [{"name": "a", "rx_qdisc": "pfifo"}]}, "port[0] ('a'): rx_qdisc: only a guest port behind the NIC"),
])
def test_bad_nic_queue_policies_are_refused_with_where(doc, says):
    with pytest.raises(ConfigError) as e:
        parse_topology(doc, "t.toml")
    assert str(e.value).startswith("t.toml: ") and says in str(e.value) and "\n" not in str(e.value)


def test_runtime_change_installs_replaces_and_clears_back_to_the_nic_default():
    topo = parse_topology(vmdq_doc(nic={"tx_qdisc": "pfifo"}))
    dp = build_dataplane(topo)
    nic, pool, qs = dp.nic.nic, dp.nic.bindings["g1"].pool, pool_queues(dp, "g1")
    old = topo.port("g1")
    assert nic.rx_qdisc == {} and nic.tx_qdisc[pool].scheduler.KIND == "pfifo"
    new = change_port(old, {"rx_qdisc": "drr", "tx_qdisc": {"kind": "tbf", "rate": "1mbit", "burst": "2kb",
                                                             "limit": "10kb"}}, "port 'g1'")
    dp.update_port(old, new)
    assert [nic.rx_qdisc[q].scheduler.KIND for q in qs] == ["drr"] * len(qs)
    assert nic.tx_qdisc[pool].scheduler.KIND == "tbf"
    cleared = change_port(new, {"rx_qdisc": None, "tx_qdisc": None}, "port 'g1'")
    dp.update_port(new, cleared)
    assert nic.rx_qdisc == {} and nic.tx_qdisc[pool].scheduler.KIND == "pfifo"     # [nic] tx_qdisc again


def test_the_replay_driver_runs_an_rx_qdisc_as_part_of_the_nic_queue():
    """Nothing of the replay driver's own: a tbf on the guest's NIC RX queue paces what reaches it."""
    from vswitch.drivers.replay import ReplayDriver
    dp = build_dataplane(parse_topology(vmdq_doc({"rx_qdisc": {"kind": "tbf", "rate": "8mbit", "burst": 2000,
                                                               "limit": 100_000}})))
    drv = ReplayDriver(dp)
    sent: list[int] = []
    dp.graph.set_transmit(dp.numbers["g1"], lambda batch, now_ns: sent.extend([now_ns] * len(batch)))
    drv.run([Record(i * 10_000, udp(1000, size=1000), dp.numbers["up"]) for i in range(30)])   # 800 Mbit/s
    assert len(sent) == 30
    assert sent[-1] - sent[2] == pytest.approx(27 * 1_000_000, rel=0.02)      # 1 ms a frame after the burst


# -- the discrete driver: the policy's effect -------------------------------------------------------

SPARSE = 100


def sparse_latency(rx_qdisc: Any) -> tuple[list[float], int, dict]:
    """A flood at twice what the host's poll serves (2 Mpps against 1 us a frame) and a sparse
    flow (one frame every 100 us, ``SPARSE`` of them) to one guest through its pool's RX queue with ``rx_qdisc``
    (None: the ring's FIFO).  Returns the sparse flow's latencies, the flood frames delivered
    and the RX queue's policy figures."""
    dp = build_dataplane(parse_topology(vmdq_doc({"rx_qdisc": rx_qdisc} if rx_qdisc is not None else {})))
    q = pool_queues(dp, "g1")[0]
    plan = Plan({"core0": "core"}, stages={f"nic0.rxq{q}": Cost("core0", frame_ns=1000.0)}, budget=64)
    drv = DiscreteDriver(dp, plan, time_mode="recorded")
    lat: list[float] = []
    flood = [0]

    def seen(port: str, batch: list, t: float) -> None:
        for f in batch:
            if struct.unpack_from("!H", f.data, 34)[0] == 7:
                lat.append(t - f.ts_ns)
            else:
                flood[0] += 1
    drv.on_deliver = seen
    recs = [Record(i * 500, udp(1000 + i % 4), 1) for i in range(20_000)]          # 10 ms of flood
    recs += [Record(i * 100_000 + 50_250, udp(7, size=100), 1) for i in range(SPARSE)]
    recs.sort(key=lambda r: r.ts_ns)
    drv.run(recs)
    view = dp.nic.nic.rx_qdisc_show().get(str(q), {})
    return lat, flood[0], view


def test_fq_codel_on_the_nic_rx_queue_keeps_a_sparse_flow_fast_where_fifo_does_not():
    fifo, fifo_flood, _ = sparse_latency(None)                      # the ring alone (512, FIFO)
    pfifo, _, pview = sparse_latency({"kind": "pfifo", "limit": 1000})
    fq, fq_flood, view = sparse_latency("fq_codel")
    # Behind a FIFO kept full by the flood the sparse flow loses most of its frames (tail drop:
    # the ring's, then pfifo's limit) and what gets through waits for the standing queue.
    assert len(fifo) < SPARSE / 4 and len(pfifo) < SPARSE / 4
    assert max(fifo) > 300_000 and max(pfifo) > 500_000
    # fq_codel serves the new flow first: every frame, after the frame in service and little more.
    assert len(fq) == SPARSE and max(fq) < 20_000
    # The flood still gets the whole poll (work conserving): about 1 frame per us either way.
    assert fq_flood > 0.9 * fifo_flood
    assert view["scheduler"]["kind"] == "fq_codel" and view["sent_packets"] == fq_flood + SPARSE
    assert view["scheduler"]["new_flow_count"] >= SPARSE
    assert pview["drops"]["queue_full"] > 0


# -- at run time, through the control server -------------------------------------------------------

class Running:
    """A LiveSwitch of attach ports that do not exist (pending: no device), in vmdq or sriov mode."""

    def __init__(self, tmp_path: Path, mode: str) -> None:
        from vswitch.drivers.live import LiveSwitch
        p = "vsq" + secrets.token_hex(3)
        self.up, self.g = p + "up", p + "g"
        nic = f'[nic]\nmode = "{mode}"\nuplink = "{self.up}"\n' + ("numvfs = 2\n" if mode == "sriov" else "")
        guest = f'[[port]]\nname = "{self.g}"\ntype = "attach"\nmac = "52:54:00:00:00:10"\n' + \
            ("vf = 0\n" if mode == "sriov" else "")
        self.config = tmp_path / "sw.toml"
        self.config.write_text(nic + f'[[port]]\nname = "{self.up}"\ntype = "attach"\n' + guest)
        self.loop = asyncio.new_event_loop()
        self.sw = LiveSwitch(load_topology(self.config))
        self.server = ControlServer(self.sw, str(tmp_path / "unused.sock"))
        self.loop.run_until_complete(self.sw.start(on_change=lambda: save_topology(self.sw.topo, self.config)))
        self.nic = self.sw.dp.nic.nic

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        return self.loop.run_until_complete(self.server.handle(encode({"cmd": cmd, "args": args})))

    def close(self) -> None:
        self.loop.run_until_complete(self.sw.close())
        self.loop.close()


@pytest.fixture(params=["vmdq", "sriov"])
def running(request, tmp_path):
    r = Running(tmp_path, request.param)
    yield r
    r.close()


def test_set_port_puts_policies_on_the_guests_nic_queues_and_saves_them(running):
    r = running.call("set-port", name=running.g, changes={"rx_qdisc": "fq_codel", "rx_qdisc.target": "2ms",
                                                          "tx_qdisc": "pfifo", "tx_qdisc.limit": "50"})
    assert r["ok"], r
    qs = sorted(running.nic.rx_qdisc)
    assert qs and all(running.nic.rx_qdisc[q].scheduler.config()["target"] == 2_000_000 for q in qs)
    saved = load_topology(running.config).port(running.g)
    assert saved.rx_qdisc == {"kind": "fq_codel", "target": "2ms"}
    assert saved.tx_qdisc == {"kind": "pfifo", "limit": "50"}
    # A parameter alone changes the installed one.
    assert running.call("set-port", name=running.g, changes={"rx_qdisc.target": "3ms"})["ok"]
    assert running.nic.rx_qdisc[qs[0]].scheduler.config()["target"] == 3_000_000
    shown = running.call("qdisc/show", port=running.g)["result"][0]
    assert [x["queue"] for x in shown["nic_rx"]] == qs and shown["nic_tx"]["kind"] == "pfifo"
    text = tc_text([shown])
    assert f"qdisc fq_codel {qs[0] + 0x100:x}: dev {running.g} nic rx queue {qs[0]} limit 10240" in text
    assert f"dev {running.g} nic tx pool {shown['nic_tx']['pool']}" in text
    assert running.call("set-port", name=running.g, changes={"rx_qdisc": "none"})["ok"]
    assert running.nic.rx_qdisc == {} and load_topology(running.config).port(running.g).rx_qdisc is None


@pytest.mark.parametrize("who, changes, says", [
    ("g", {"rx_qdisc": "nosuch"}, "rx_qdisc: unknown qdisc kind 'nosuch'"),
    ("g", {"rx_qdisc": "fq_codel", "rx_qdisc.target": "soon"}, "rx_qdisc"),
    ("g", {"tx_qdisc.rate": "1mbit"}, "tx_qdisc.rate: the port has no tx_qdisc; give tx_qdisc=KIND too"),
    ("g", {"rx_qdisc": "none", "rx_qdisc.limit": "5"}, "rx_qdisc=none takes no rx_qdisc.PARAM settings"),
    ("up", {"rx_qdisc": "fq_codel"}, "rx_qdisc: the uplink is the NIC's wire"),
])
def test_a_refused_nic_queue_policy_says_why_in_one_line_and_changes_nothing(running, who, changes, says):
    name = running.g if who == "g" else running.up
    before = (running.config.read_bytes(), dict(running.nic.rx_qdisc), dict(running.nic.tx_qdisc))
    r = running.call("set-port", name=name, changes=changes)
    assert not r["ok"] and says in r["error"] and "\n" not in r["error"], r
    assert (running.config.read_bytes(), dict(running.nic.rx_qdisc), dict(running.nic.tx_qdisc)) == before


def test_add_port_with_an_rx_qdisc_installs_it_and_del_port_removes_it(running):
    name = running.g + "b"
    port = {"name": name, "type": "attach", "rx_qdisc": "fq_codel", "tx_qdisc": "pfifo"}
    if running.sw.dp.nic.mode == "sriov":
        port["vf"] = 1
    r = running.call("add-port", port=port)
    assert r["ok"], r
    b = running.sw.dp.nic.bindings[name]
    qs = list(running.nic.state.pool_queues(b.pool))
    assert all(running.nic.rx_qdisc[q].scheduler.KIND == "fq_codel" for q in qs)
    assert running.nic.tx_qdisc[b.pool].scheduler.KIND == "pfifo"
    assert load_topology(running.config).port(name).rx_qdisc == "fq_codel"
    assert running.call("del-port", name=name)["ok"]
    assert not set(qs) & set(running.nic.rx_qdisc) and b.pool not in running.nic.tx_qdisc
