"""``vswitch-bench compare`` and ``calibrate``, and cost tables: the bottleneck named is the one the
costs make saturate; bad arguments and cost files are refused with one line; calibration round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.calibrate import main as calibrate_main
from bench.cli import main as bench_main
from bench.compare import run_point
from bench.costmodel import CostTable, from_perf, load_costs, parse_costs
from bench.gen import main as gen_main
from bench.gen_sidecar import load_port_map
from vswitch.drivers.live_port import PortPerf, perf_dict
from vswitch.schema import ConfigError
from vswitch.topology import load_topology


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cmp")
    t = d / "t.pcap"
    # Guests only receive: a guest that also sends is held back by its own busy vCPU (the sender
    # blocks), which lowers the load it offers instead of overflowing a queue.
    assert gen_main([str(t), "--guests", "3", "--frames", "1500", "--pps", "200000", "--size", "imix",
                     "--east-west", "0", "--inbound", "1", "--bcast-pps", "2000", "--nic", "vmdq", "-q"]) == 0
    return t


def costs_file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_compare_names_the_resource_the_costs_saturate(trace: Path, tmp_path: Path, capsys) -> None:
    # A slow guest stack: the guests' vCPUs saturate in every design.
    slow_guest = costs_file(tmp_path, "[guest]\nrx_frame_ns = 40000\n")
    out = tmp_path / "r.json"
    assert bench_main(["compare", str(trace), "--guests", "3", "--costs", str(slow_guest), "--json", str(out),
                       "-q"]) == 0
    results = json.loads(out.read_text())["results"]
    assert [r["mode"] for r in results] == ["software", "vmdq", "sriov"]
    for r in results:
        assert r["bottleneck"]["resource"].endswith(".vcpu") and r["bottleneck"]["saturated"], r["mode"]
        assert r["assumed"]["costs"]["guest"]["rx_frame_ns"] == 40000
    # A slow switch: only the software design, where the switch sees every frame, saturates core0.
    slow_switch = costs_file(tmp_path, "[host]\nswitch_frame_ns = 20000\n[guest]\nrx_frame_ns = 0\n")
    assert bench_main(["compare", str(trace), "--costs", str(slow_switch), "--json", str(out), "-q"]) == 0
    by = {r["mode"]: r for r in json.loads(out.read_text())["results"]}
    assert by["software"]["bottleneck"]["resource"] == "core0" and by["software"]["bottleneck"]["saturated"]
    assert by["software"]["drops_total"] > 0
    assert not by["sriov"]["bottleneck"]["saturated"] and by["sriov"]["drops_total"] == 0
    # Latency orders SR-IOV < VMDq < software for guest-bound frames.
    p50 = {m: by[m]["ports"]["g1"]["latency_ns"]["p50"] for m in by}
    assert p50["sriov"] < p50["vmdq"] < p50["software"]


def test_compare_prints_a_table_and_plots(trace: Path, tmp_path: Path, capsys) -> None:
    plots = tmp_path / "plots"
    assert bench_main(["compare", str(trace), "--modes", "software,sriov", "--cores", "2",
                       "--plot", str(plots)]) == 0
    out = capsys.readouterr().out
    assert "BOTTLENECK" in out and "software" in out and "sriov" in out and "util core1" in out
    for name in ("throughput.png", "latency_cdf.png", "utilisation.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,match", [
    (["--modes", "software,warp"], "'warp' is not a design"),
    (["--modes", "vmdq,vmdq"], "name each design once"),
    (["--guests", "5"], "--guests 5: .* has 3 guest"),
    (["--cores", "0"], "--cores 0: must be 1-256"),
    (["--pps", "-3"], "--pps -3.0: must be above 0"),
])
def test_bad_arguments_are_refused_in_one_line(trace: Path, capsys, args, match) -> None:
    assert bench_main(["compare", str(trace), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    import re
    assert re.search(match, err), err


@pytest.mark.parametrize("text,match", [
    ("[host]\nswitch_ns = 3\n", r"c.toml: \[host\]: unknown key 'switch_ns'"),
    ("[hots]\n", r"c.toml: unknown table\(s\) 'hots'"),
    ("[host]\nirq_ns = -1\n", r"c.toml: \[host\] irq_ns: -1: a cost must be >= 0"),
    ("[queues]\nvirtio_ring = 0\n", r"c.toml: \[queues\] virtio_ring: 0: must be 1-32768"),
    ("[queues]\nbacklog = 10.5\n", r"c.toml: \[queues\] backlog: expected an integer"),
    ("[link]\nwire_gbps = 0\n", r"c.toml: \[link\] wire_gbps: 0: a rate must be above 0"),
    ("[host]\nirq_ns = true\n", r"c.toml: \[host\] irq_ns: expected a number"),
    ("[host\n", r"c.toml: not valid TOML"),
])
def test_bad_cost_files_are_refused_in_one_line(trace: Path, tmp_path: Path, capsys, text, match) -> None:
    p = costs_file(tmp_path, text)
    with pytest.raises(ConfigError, match=match):
        load_costs(p)
    assert bench_main(["compare", str(trace), "--costs", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_cost_table_round_trips_through_toml(tmp_path: Path) -> None:
    from bench.costmodel import save_costs
    t = parse_costs({"host": {"switch_frame_ns": 900}, "queues": {"backlog": 300}}, "x")
    save_costs(t, tmp_path / "x.toml", "a comment")
    back = load_costs(tmp_path / "x.toml")
    assert back.to_dict() == t.to_dict() and back.host.switch_frame_ns == 900.0 and back.queues.backlog == 300


def test_calibration_round_trip_predicts_the_measured_ceiling(trace: Path, tmp_path: Path, capsys) -> None:
    """perf-show's ns per stage -> a cost table -> the model's one-core software ceiling is the
    measured 1 / (read + graph - NIC model + write)."""
    perf = {"total": perf_dict(PortPerf(frames=100_000, batches=2000, rx_ns=30_000_000, dp_ns=45_000_000,
                                        tx_ns=25_000_000)),
            "nic": {"mode": "software", "nic_model_ns_per_frame": 150.0}, "elements": {}}
    pj = tmp_path / "perf.json"
    pj.write_text(json.dumps(perf))
    out = tmp_path / "cal.toml"
    assert calibrate_main(["--perf-json", str(pj), "--out", str(out)]) == 0
    table = load_costs(out)
    assert table.host.switch_frame_ns == pytest.approx(300 + 450 - 150)
    assert table.host.vhost_frame_ns == pytest.approx(250) and table.host.copy_byte_ns == 0
    assert table.to_dict() == from_perf(perf)[0].to_dict()
    # Everything but the calibrated software path free: one core forwards 1 / 850 ns.
    table.host.irq_ns = 0
    table.guest.rx_frame_ns = table.guest.vm_exit_ns = 0
    d = tmp_path / "lr"
    d.mkdir()
    t64 = d / "t.pcap"
    assert gen_main([str(t64), "--guests", "1", "--east-west", "0", "--inbound", "1", "--frames", "3000",
                     "--gbps", "10", "--nic", "software", "--no-announce", "-q"]) == 0
    r = run_point(load_topology(d / "t.toml"), t64, table, "software", port_map=load_port_map(d / "t.json"))
    assert r["delivered"]["pps"] == pytest.approx(1e9 / 850, rel=0.02)
    assert r["bottleneck"]["resource"] == "core0"
    # --emulation: vswitchd's own ceiling, its NIC model too (150 ns x 100,000 over the 100,000
    # frames that crossed it: every frame of an inbound trace)
    perf["nic"]["frames"] = 100_000
    pj.write_text(json.dumps(perf))
    assert calibrate_main(["--perf-json", str(pj), "--out", str(out), "--emulation"]) == 0
    assert "nic_emulation_ns 150.0" in capsys.readouterr().out
    emu = load_costs(out)
    assert emu.host.nic_emulation_ns == pytest.approx(150) and "nic_emulation_ns" in out.read_text()
    emu.host.irq_ns = 0
    emu.guest.rx_frame_ns = emu.guest.vm_exit_ns = 0
    r = run_point(load_topology(d / "t.toml"), t64, emu, "software", port_map=load_port_map(d / "t.json"))
    assert r["delivered"]["pps"] == pytest.approx(1e9 / 1000, rel=0.02)


def test_calibrate_refuses_what_is_not_perf_show(tmp_path: Path, capsys) -> None:
    pj = tmp_path / "p.json"
    pj.write_text('{"ports": {}}')
    assert calibrate_main(["--perf-json", str(pj), "--out", str(tmp_path / "o.toml")]) == 2
    assert "not `vswitchctl perf-show --json` output" in capsys.readouterr().err
    pj.write_text(json.dumps({"total": perf_dict(PortPerf())}))
    assert calibrate_main(["--perf-json", str(pj), "--out", str(tmp_path / "o.toml")]) == 2
    assert "counted no frames" in capsys.readouterr().err
    assert not (tmp_path / "o.toml").exists()


def test_default_costs_are_the_documented_ones() -> None:
    c = CostTable()
    assert c.host.switch_frame_ns == 532.0          # 1 / 1.88 Mpps (experiments.md B.8)
    text = (Path(__file__).parents[2] / "docs" / "costmodel.md").read_text()
    for section, obj in c.to_dict().items():
        for key in obj:
            assert f"`{key}`" in text, f"docs/costmodel.md does not describe {section}.{key}"
