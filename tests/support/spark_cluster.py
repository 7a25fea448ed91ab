"""A Spark standalone cluster on loopback for tests: a master and one worker, started with
`spark-class` from the pyspark package and stopped afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, proc: subprocess.Popen, what: str, log: Path, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {seconds}s")


@contextmanager
def standalone(workdir: Path, cores: int = 2, memory: str = "3g"):
    """Yields the master URL (spark://127.0.0.1:PORT) of a running master with one worker."""
    import pyspark

    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_WORKER_DIR": str(workdir / "work")}
    procs = []
    try:
        master_log = workdir / "master.log"
        master = subprocess.Popen(
            [str(spark_class), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(free_port())], env=env,
            stdout=master_log.open("w"), stderr=subprocess.STDOUT)
        procs.append(master)
        _wait_for(port, master, "spark master", master_log)
        worker_port = free_port()
        worker_log = workdir / "worker.log"
        worker = subprocess.Popen(
            [str(spark_class), "org.apache.spark.deploy.worker.Worker", url,
             "--host", "127.0.0.1", "--port", str(worker_port), "--webui-port",
             str(free_port()), "--cores", str(cores), "--memory", memory], env=env,
            stdout=worker_log.open("w"), stderr=subprocess.STDOUT)
        procs.append(worker)
        _wait_for(worker_port, worker, "spark worker", worker_log)
        deadline = time.monotonic() + 60  # the worker registers with the master
        while "Successfully registered with master" not in worker_log.read_text():
            if time.monotonic() > deadline:
                raise TimeoutError(f"spark worker never registered: {worker_log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
