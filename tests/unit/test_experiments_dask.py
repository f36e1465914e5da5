"""The Dask executor on a real cluster: a ``dask scheduler`` and two ``dask worker`` processes on
127.0.0.1 (random free ports), started here and stopped by PID whatever happens.  The same sweep
gives the rows the local pool gives; a worker killed while it runs points loses none of them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench.experiments.cli import run_experiment
from bench.experiments.spec import load_experiment

pytestmark = [pytest.mark.slow, pytest.mark.once]   # the executors: rows must match whatever the build
ROOT = Path(__file__).parents[2]
DASK = Path(sys.executable).with_name("dask")

EXP = """\
[experiment]
name = "d"
kind = "replay"
seeds = [1, 2]

[topology]
guests = 2
wire_hosts = 1

[topology.nic]
mode = "vmdq"
rx_usecs = 100

[traffic]
gbps = 10
frames = FRAMES
east_west = 0.0
inbound = 1.0
flows = 2

[sweep.axes]
"topology.nic.rx_ring" = [64, 256, 1024]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A scheduler and named workers, each a process group of its own, stopped by PID."""

    def __init__(self, tmp: Path, workers: int = 2) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.tmp = tmp
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.env = env
        self._start("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                  "--no-dashboard"])
        for i in range(1, workers + 1):
            self._start(f"vsw-w{i}", [str(DASK), "worker", self.address, "--name", f"vsw-w{i}", "--nthreads", "1",
                                      "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"])
        self.wait_workers(workers)

    def _start(self, name: str, argv: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the process
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def client(self):
        from distributed import Client
        return Client(self.address, timeout=20, set_as_default=False)

    def wait_workers(self, n: int, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    log = (self.tmp / f'{name}.log').read_text()[-2000:]
                    raise RuntimeError(f"{name} exited {p.returncode}: {log}")
            try:
                with self.client() as c:
                    if len(c.scheduler_info()["workers"]) >= n:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the cluster did not have {n} workers within {timeout} s")

    def kill(self, name: str) -> None:
        p = self.procs[name]
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            p = self.procs[name]
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait(10)


@pytest.fixture
def cluster(tmp_path):
    if not DASK.exists():
        pytest.skip(f"no {DASK}: install the project's dependencies (dask, distributed)")
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def rows(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("wall_s", "worker")}
            for r in pq.read_table(out / "results.parquet").to_pylist()]


def test_a_sweep_on_dask_gives_the_rows_of_the_local_pool(tmp_path, cluster):
    path = tmp_path / "d.toml"
    path.write_text(EXP.replace("FRAMES", "400"))
    exp = load_experiment(path)
    local = run_experiment(exp, tmp_path / "local", jobs=2)
    dask = run_experiment(exp, tmp_path / "dask", executor="dask", scheduler=cluster.address)
    assert local["ran"] == dask["ran"] == 6 and not dask["failed"]
    assert rows(tmp_path / "dask") == rows(tmp_path / "local")
    assert (tmp_path / "dask" / "summary.csv").read_text() == (tmp_path / "local" / "summary.csv").read_text()
    workers = {r["worker"] for r in pq.read_table(tmp_path / "dask" / "results.parquet").to_pylist()}
    pids = {str(p.pid) for n, p in cluster.procs.items() if n.startswith("vsw-w")}
    assert {w.rsplit(":", 1)[1] for w in workers} <= pids           # the points ran on the cluster's workers


def test_a_worker_killed_mid_sweep_loses_no_point(tmp_path, cluster):
    path = tmp_path / "d.toml"
    path.write_text(EXP.replace("FRAMES", "6000"))
    exp = load_experiment(path)
    result: dict = {}

    def sweep() -> None:
        result.update(run_experiment(exp, tmp_path / "dask", executor="dask", scheduler=cluster.address))
    t = threading.Thread(target=sweep)
    t.start()
    killed = None
    try:
        with cluster.client() as c:
            end = time.monotonic() + 120
            while killed is None and time.monotonic() < end and t.is_alive():
                info = c.scheduler_info()["workers"]
                for addr, tasks in c.processing().items():
                    name = info.get(addr, {}).get("name")
                    if name == "vsw-w1" and tasks:
                        cluster.kill("vsw-w1")           # while it holds a point
                        killed = list(tasks)
                        break
                time.sleep(0.05)
    finally:
        t.join(300)
    assert killed, "worker vsw-w1 never held a point"
    assert not result["failed"] and result["ran"] == len(exp.points) == 6
    stored = pq.read_table(tmp_path / "dask" / "results.parquet").to_pylist()
    assert [r["key"] for r in stored] == [p.key for p in exp.points]
    survivor = str(cluster.procs["vsw-w2"].pid)
    lost = [r for r in stored if any(r["key"] in k for k in killed)]
    assert lost and all(r["worker"].endswith(f":{survivor}") for r in lost)   # rerun on the other worker
    run_experiment(exp, tmp_path / "local", jobs=1)
    assert rows(tmp_path / "dask") == rows(tmp_path / "local")
