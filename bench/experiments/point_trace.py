"""What the trace kinds (``replay``, ``discrete``) share: a point's trace, its NIC settings, its drops.

* `point_trace`: the trace a point runs (the one ``[traffic]`` names, or one the
  generator makes from the point's parameters and seed into a temporary
  directory, removed when the block ends) and its port map (the generated
  guests' MACs with the uplink for the rest, or the manifest's; None for a
  given trace with no manifest).
* `with_nic`: a topology with ``[topology.nic]``'s rings and coalescing set on
  its ``[nic]``.
* `drop_metrics`: the ``drops_<reason>`` metrics, each reason summed over the
  elements, zero reasons left out.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def point_trace(spec: Any, traffic: Any) -> Iterator[tuple[Path, Any]]:
    """(trace path, `bench.gen_sidecar.PortMap` or None) for the point; ``spec`` the generator's
    spec (`bench.experiments.spec.gen_spec`), None when ``traffic.trace`` names the trace."""
    from bench.gen_sidecar import PortMap, load_port_map
    from bench.tracegen import UPLINK, generate

    if spec is None:
        yield Path(traffic.trace or ""), load_port_map(traffic.manifest) if traffic.manifest is not None else None
        return
    tmp = Path(tempfile.mkdtemp(prefix="vsw-exp-"))
    try:
        trace = tmp / "trace.pcap"
        res = generate(spec, trace)
        yield trace, PortMap({g.mac: g.port for g in res.guests}, UPLINK, None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def with_nic(t: Any, nic: Any, mode: str) -> Any:
    """Topology ``t`` with its ``[nic]`` in ``mode`` and ``nic``'s profile, rings and coalescing
    (``t`` as it is when it has no NIC)."""
    if t.nic is not None:
        t.nic = dataclasses.replace(t.nic, mode=mode, profile=nic.profile, rx_ring=nic.rx_ring, tx_ring=nic.tx_ring,
                                    rx_usecs=nic.rx_usecs, rx_frames=nic.rx_frames)
    return t


def drop_metrics(by_element: Iterable[dict[str, int]]) -> dict[str, int]:
    """``drops_<reason>``: each reason's drops summed over ``by_element`` (reason -> count per
    element), sorted by reason, zero reasons left out."""
    reasons: dict[str, int] = {}
    for by_reason in by_element:
        for why, n in by_reason.items():
            reasons[why] = reasons.get(why, 0) + n
    return {f"drops_{why}": n for why, n in sorted(reasons.items()) if n}
