"""vswitch-bench sriov: the measurement itself (what is timed, how samples are taken), not speed."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from bench import sriov


def test_every_kind_is_sampled_per_pass_with_the_gc_off(tmp_path: Path, monkeypatch) -> None:
    seen: list[bool] = []
    real = sriov.rx_pass

    def spy(*args, **kw):   # the collector is off while a kind runs, back on afterwards
        seen.append(gc.isenabled())
        return real(*args, **kw)
    monkeypatch.setattr(sriov, "rx_pass", spy)
    out = tmp_path / "r.json"
    assert sriov.main(["--vfs", "3", "--frames", "1024", "--batch", "16", "--rounds", "2", "--repeat", "2",
                       "--json", str(out)]) == 0
    # 2 repeats x 2 passes x 4 RX kinds
    assert gc.isenabled() and len(seen) >= 2 * 2 * 4 and not any(seen[-2 * 2 * 4:])
    r = json.loads(out.read_text())
    assert r["settings"]["clock"] == "cpu"
    for kind in ("base", "vf_rx", "same", "vf_rx2", "vf_tx", "vm_tx"):
        assert len(r["runs"][kind]) == 2 * 2                            # repeat x rounds samples
    assert all(s["frames"] == 1024 for s in r["runs"]["vf_rx"] + r["runs"]["base"])
    best = min(s["rx_us"] + s["dma_us"] for s in r["runs"]["vf_rx"])
    assert r["vf_rx_us"] == best and r["vmdq_sorter_us"] == min(s["rx_us"] for s in r["runs"]["base"])
    assert r["vf_rx2_us"] == min(s["rx_us"] + s["dma_us"] for s in r["runs"]["vf_rx2"])
    assert r["vf_rx2_ratio_same_layout"] == r["vf_rx2_us"] / r["vmdq_sorter_same_layout_us"]


@pytest.mark.parametrize("cpus, opened", [(1, 1), (2, 2), (4, 2)])
def test_rx_pass_times_rx_poll_and_dma_apart(cpus: int, opened: int) -> None:
    pf = sriov.build_pf(2, 4096, 64, cpus=cpus)
    frames = sriov.frames_to([sriov.vf_mac(k) for k in range(2)], 256)
    ticks = iter(range(0, 10**9, 1000))
    (s,) = sriov.rx_sriov(pf, frames, 32, 1, clock=lambda: next(ticks))
    # a fake clock that moves 1 us per read; 8 batches are one drain cycle (rings of 512, 2 VFs):
    # one stretch of Nic.rx (1 us over the 256 frames); each queue a guest opened (0xA has 4 per
    # VF; ixgbevf opens min(cpus, 2)) polled and its frames DMAed right after, a stretch of each
    # per queue (1 us of each per queue)
    assert pf.nic.rings.queues[pf.vfs[0].nic_queues[0]].size == 512
    assert sum(len(vf.nic_queues) for vf in pf.vfs) == 8
    assert [vf.guest.driver.num_rx_queues for vf in pf.vfs] == [opened, opened]
    assert s["frames"] == 256
    assert s["rx_us"] == 1.0 / 256
    assert s["poll_us"] == s["dma_us"] == 2 * opened / 256
    assert sum(vf.dma.counters["rx_delivered"] for vf in pf.vfs) == 256


def test_each_queue_is_dmaed_right_after_its_poll(monkeypatch) -> None:
    """As VirtualFunction.receive does it: poll a queue, DMA what it got, then the next queue
    (a DMA pass after every poll would work on frames long out of the cache).  Seen from the
    VFs' counters: when a queue is polled, every frame the polls before it got is DMAed."""
    pf = sriov.build_pf(2, 4096, 64, cpus=2)
    frames = sriov.frames_to([sriov.vf_mac(k) for k in range(2)], 256)
    nic = pf.nic
    real_poll = nic.poll
    polled = [0]
    seen: list[tuple[int, int]] = []              # (frames polled before, frames DMAed by then)

    def poll(q: int, budget: int, now: int):
        seen.append((polled[0], sum(vf.dma.counters["rx_delivered"] for vf in pf.vfs)))
        got = real_poll(q, budget, now)
        polled[0] += len(got)
        return got
    monkeypatch.setattr(nic, "poll", poll)
    sriov.rx_sriov(pf, frames, 32, 1)
    assert len(seen) == 4 and polled[0] == 256          # 2 VFs x 2 queues, one drain cycle
    assert all(before == dmaed for before, dmaed in seen)
    assert sum(vf.dma.counters["rx_delivered"] for vf in pf.vfs) == 256


def test_sriov_regions_marks_only_its_region_and_delivers_every_frame(monkeypatch) -> None:
    from bench import sriov_regions
    calls: list[str] = []
    monkeypatch.setattr(sriov_regions, "toggle", lambda: lambda: calls.append("x"))
    # one queue per VF (1-vCPU guests: 63) or two (vf2: 126), each queue's DMA a stretch per drain
    # cycle (one cycle a pass): two marks each
    for kind, queues in (("vf", 63), ("vf2", 126)):
        assert sriov_regions.main([kind, "dma", "--frames", "512", "--batch", "64", "--passes", "2"]) == 0
        assert len(calls) == 2 * 2 * queues
        calls.clear()
    assert sriov_regions.main(["base", "rx", "--frames", "512", "--passes", "1"]) == 0
    assert len(calls) == 2                 # one Nic.rx stretch in the pass's one drain cycle


def test_sriov_regions_tx_marks_each_round_of_its_region_and_refuses_other_kinds(monkeypatch, capsys) -> None:
    from bench import sriov_regions
    calls: list[str] = []
    fetched: list[int] = []                       # the VFs' TX fetches at each mark
    pfs: list = []
    build = sriov_regions.S.build_pf

    def built(*a, **kw):
        pfs.append(build(*a, **kw))
        return pfs[-1]
    monkeypatch.setattr(sriov_regions.S, "build_pf", built)

    def mark() -> None:
        fetched.append(sum(vf.dma.counters["tx_fetched"] for vf in pfs[0].vfs))
        calls.append("x")
    monkeypatch.setattr(sriov_regions, "toggle", lambda: mark)
    # two rounds of 32 frames from each of 63 VFs a pass, two passes: a stretch a round, every
    # TX DMA inside one (the two warm-up rounds before the first)
    assert sriov_regions.main(["vf", "txdma", "--frames", str(2 * 32 * 63), "--passes", "2"]) == 0
    assert len(calls) == 2 * 2 * 2
    assert fetched[0] == 2 * 32 * 63
    inside = [b - a for a, b in zip(fetched[0::2], fetched[1::2], strict=True)]
    between = [b - a for a, b in zip(fetched[1::2], fetched[2::2], strict=False)]
    assert inside == [32 * 63] * 4 and not any(between)
    assert "2 rounds of 32 frames from each of 63 pools" in capsys.readouterr().out
    calls.clear()
    assert sriov_regions.main(["vmdq", "service", "--frames", str(32 * 63), "--passes", "1"]) == 0
    assert len(calls) == 2
    for bad in (["vmdq", "txdma"], ["base", "tx"], ["vmdq", "rx"]):
        with pytest.raises(SystemExit) as e:
            sriov_regions.main(bad)
        assert e.value.code == 2
    assert "TX region" in capsys.readouterr().err
