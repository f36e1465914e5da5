"""``[nic] tx_qdisc``: a queue policy on each guest pool's TX queue, named in the config (vmdq
mode).  Each guest's pool gets its own policy of that kind; a guest's frames to the wire pass
through it (its counters count them); a bad policy or the software mode is refused with the
section and key, and the setting is written back as given."""

from __future__ import annotations

import pytest

from vswitch.core.frame import Frame
from vswitch.schema import ConfigError
from vswitch.topology import build_dataplane, parse_topology, topology_to_dict


def doc(tx_qdisc, mode: str = "vmdq") -> dict:
    return {"port": [{"name": "up"}, {"name": "g1"}, {"name": "g2"}],
            "nic": {"mode": mode, "uplink": "up", "tx_qdisc": tx_qdisc}}


def eth(dst: str, src: str) -> bytes:
    return bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", "")) + b"\x08\x00" + bytes(46)


def test_each_guest_pool_gets_its_policy_and_guest_frames_pass_through_it():
    topo = parse_topology(doc({"kind": "tbf", "rate": "10mbit", "burst": "10kb", "latency": "50ms"}))
    dp = build_dataplane(topo)
    nic = dp.nic.nic
    pools = {b.port: b.pool for b in dp.nic.bindings.values()}
    assert set(pools) == {"g1", "g2"}
    assert sorted(nic.tx_qdisc) == sorted(pools.values())
    assert nic.tx_qdisc[pools["g1"]] is not nic.tx_qdisc[pools["g2"]]
    sent: list[bytes] = []
    dp.graph.set_transmit(dp.numbers["up"], lambda batch, now: sent.extend(f.data for f in batch))
    frames = [Frame(eth("02:00:00:00:09:99", "02:00:00:00:00:01"), 1) for _ in range(3)]
    dp.graph.push(dp.numbers["g1"], frames, 1)
    dp.graph.run_until(10_000_000)
    q = nic.tx_qdisc_show()[str(pools["g1"])]
    assert q["scheduler"]["kind"] == "tbf" and q["sent_packets"] == 3
    assert len(sent) == 3
    assert topology_to_dict(topo)["nic"]["tx_qdisc"] == {"kind": "tbf", "rate": "10mbit", "burst": "10kb",
                                                          "latency": "50ms"}


@pytest.mark.parametrize("setting, mode, says", [
    ({"kind": "tbf", "rate": "10mbit"}, "vmdq", "tx_qdisc"),
    ("nosuch", "vmdq", "tx_qdisc"),
    ("fq_codel", "software", "only in vmdq mode"),
])
def test_bad_tx_qdisc_is_refused_with_where(setting, mode, says):
    with pytest.raises(ConfigError, match=says) as e:
        parse_topology(doc(setting, mode))
    assert "[nic]" in str(e.value)
