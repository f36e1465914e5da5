"""The project's tbf against the kernel's (issue 13 item 6): the same offered UDP stream through
the kernel's tbf on a veth between two namespaces and, as recorded, through the project's tbf
with the same rate, burst and limit.  Neither delivers faster than the rate, the project not
more than 2 % slower than the kernel (the kernel's tbf loses tokens when a loaded machine runs
its dequeue late; the project's departures are on time), they drop about as many frames, pass
the same bytes in the first window, and neither exceeds burst + rate*T in any window (the
kernel's receive timestamps with 5 % slack).  bench/tbf_kernel.py makes and removes the
namespaces (pyroute2, ``vqp`` names)."""

from __future__ import annotations

import errno
import os

import pytest

from bench.tbf_kernel import compare

pytestmark = [pytest.mark.netns, pytest.mark.slow]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, veth, tc)")
@pytest.mark.parametrize("rate, burst, limit", [(10_000_000, 50_000, 100_000), (20_000_000, 8_000, 100_000)])
def test_project_tbf_delivers_and_bursts_as_the_kernels_on_the_same_traffic(rate, burst, limit):
    frame, window_ms = 1000, 50.0
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        r = compare(rate, burst, limit, offered=3 * rate, frame=frame, seconds=2.0, window_ms=window_ms)
    except NetlinkError as e:
        if e.code in (errno.ENOENT, errno.EOPNOTSUPP):
            pytest.skip(f"this kernel has no tbf qdisc (sch_tbf): {e}")
        raise
    k, p = r["kernel"], r["project"]
    assert k["frames"] > 0 and k["dropped"] > 0, r       # the shaper was overloaded and shaped
    # Neither is faster than the rate (either is slower if the sender, on a loaded machine,
    # stalled long enough to empty the queue: the project sees the same stalls in the trace).
    assert k["rate_bps"] <= 1.02 * rate and p["rate_bps"] <= 1.02 * rate, r
    # The project is never slower than the kernel by more than 2 %.  It may be faster: its
    # departures are exactly on time, while the kernel's tbf dequeues when its watchdog timer
    # and the veth's softirq get the CPU; a dequeue late by more than burst/rate (3.2 ms for
    # 8,000 bytes at 20 Mbit/s) finds the bucket full and loses the tokens past it.  One CI run
    # on a loaded machine: kernel 19.22 Mbit/s, project 19.68 on the same send trace.
    assert p["rate_bps"] >= 0.98 * k["rate_bps"], r
    assert abs(p["dropped"] - k["dropped"]) <= max(2, 0.02 * k["dropped"]), r
    assert abs(p["first_window_bytes"] - k["first_window_bytes"]) <= frame + 0.01 * k["first_window_bytes"], r
    envelope = r["envelope_first_window"]
    # The project's departures are its token bucket's own times: never over the envelope.
    assert p["max_window_bytes"] <= envelope + frame, r
    # The kernel's are receive timestamps, taken when the receiving namespace's softirq drains
    # the veth backlog: on a loaded machine frames that left tbf on time can be stamped
    # together (one CI run saw 139,000 bytes in a window against 134,000), so 5 % more.
    assert k["max_window_bytes"] <= 1.05 * envelope + frame, r
