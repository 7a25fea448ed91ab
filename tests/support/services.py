"""Real services on loopback for the integration tests, each started as its own processes and
stopped afterwards: PostgreSQL (Debian's server, `initdb` in a temporary folder), an MLflow
tracking server on it with proxied artifacts, Airflow 3 on it with LocalExecutor (its
api-server, scheduler and dag-processor as separate processes), and an S3 API (moto's
server: buckets and objects over HTTP, with S3's semantics: no rename, one PUT per object)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from nightshelf.airflow_api import AirflowAPI
from tests.support.spark_cluster import free_port

REPO = Path(__file__).resolve().parents[2]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        raise RuntimeError(f"no PostgreSQL {name}: install Debian's `postgresql` package")
    return found[-1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and the server refuse to run as root: run them as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _stop(procs: list[subprocess.Popen], seconds: float = 30) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextmanager
def postgres(databases: tuple[str, ...]):
    """Yields {database: SQLAlchemy URL} of a fresh PostgreSQL server on 127.0.0.1 (trust
    authentication on loopback), its data folder removed afterwards."""
    import tempfile

    data = Path(tempfile.mkdtemp(prefix="nightshelf-pg-"))  # outside pytest's 0700 tmp
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    log = data.parent / f"{data.name}.log"
    try:
        subprocess.run(_as_postgres([_pg_bin("initdb"), "-D", str(data), "-U", "postgres",
                                     "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True)
        subprocess.run(_as_postgres([
            _pg_bin("pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w", "start",
            "-o", f"-h 127.0.0.1 -p {port} -k {data} -c max_connections=200"]),
            check=True, capture_output=True)
        for db in databases:
            subprocess.run([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port),
                            "-U", "postgres", db], check=True, capture_output=True)
        # SQLAlchemy 2.1 reads a plain postgresql:// as psycopg 3: name the driver installed
        yield {db: f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{db}" for db in databases}
    finally:
        subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast",
                                     "-w", "stop"]), capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
        log.unlink(missing_ok=True)


def wait_http(url: str, proc: subprocess.Popen, what: str, log: Path, seconds: float = 180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}): {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status < 500:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    raise TimeoutError(f"{what} did not answer {url} within {seconds}s: {log.read_text()[-3000:]}")


@contextmanager
def s3_server(workdir: Path, bucket: str = "shop"):
    """Yields the fsspec options of an S3 endpoint on 127.0.0.1 with `bucket` created."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "s3-server.log"
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "python"), "-m", "moto.server",
                             "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/moto-api/", proc, "the S3 server", log, seconds=60)
        options = {"key": "nightshelf", "secret": "nightshelf", "endpoint_url": url}
        import boto3

        boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                     aws_access_key_id=options["key"],
                     aws_secret_access_key=options["secret"]).create_bucket(Bucket=bucket)
        yield options
    finally:
        _stop([proc])


@contextmanager
def mlflow_server(workdir: Path, store: str):
    """Yields the URL of `mlflow server` on a PostgreSQL store, artifacts proxied by the
    server (`--serve-artifacts`) into workdir/artifacts."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "mlflow-server.log"
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "mlflow"), "server", "--backend-store-uri", store,
         "--serve-artifacts", "--artifacts-destination", (workdir / "artifacts").as_uri(),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", proc, "mlflow server", log)
        yield url
    finally:
        _stop([proc])


class Airflow(AirflowAPI):
    """A running Airflow: its environment (for the CLI) and its REST API (all users admins,
    so a token needs no credentials)."""

    def __init__(self, env: dict[str, str], url: str, logs: Path):
        super().__init__(url, environ={})
        self.env, self.logs = env, logs

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        airflow = REPO / ".venv-airflow" / "bin" / "airflow"
        proc = subprocess.run([str(airflow), *args], env=self.env, text=True,
                              capture_output=True)
        if check and proc.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} exited {proc.returncode}:\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc


@contextmanager
def airflow(workdir: Path, database: str, extra_env: dict[str, str]):
    """Yields an `Airflow` on `database` (PostgreSQL) with LocalExecutor: `airflow db
    migrate`, then the api-server, scheduler and dag-processor as separate processes,
    reading this repository's dags/."""
    home = workdir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        **extra_env,
    })
    af = Airflow(env, url, home / "logs")
    af.cli("db", "migrate")
    procs = []
    try:
        for name, args in (("api-server", ["api-server", "--port", str(port), "--host",
                                           "127.0.0.1"]),
                           ("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"])):
            log = workdir / f"airflow-{name}.log"
            procs.append(subprocess.Popen(
                [str(REPO / ".venv-airflow" / "bin" / "airflow"), *args], env=env,
                stdout=log.open("w"), stderr=subprocess.STDOUT))
        wait_http(f"{url}/api/v2/monitor/health", procs[0], "airflow api-server",
                  workdir / "airflow-api-server.log")
        yield af
    finally:
        _stop(procs, seconds=60)


def screenshot(url: str, png: Path, seconds: int = 20) -> str:
    """Headless Chromium (Debian's `chromium`): a screenshot of the page after `seconds` of
    its scripts running, and the DOM they left (returned)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise RuntimeError("no chromium: install Debian's `chromium` package")
    png.parent.mkdir(parents=True, exist_ok=True)
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", "--window-size=1600,1000",
             f"--virtual-time-budget={seconds * 1000}"]
    profile = png.parent / f".chromium-{png.stem}"
    subprocess.run([chromium, *flags, f"--user-data-dir={profile}-shot",
                    f"--screenshot={png}", url], check=True, capture_output=True, timeout=180)
    dom = subprocess.run([chromium, *flags, f"--user-data-dir={profile}-dom", "--dump-dom",
                          url], check=True, capture_output=True, text=True, timeout=180).stdout
    shutil.rmtree(f"{profile}-shot", ignore_errors=True)
    shutil.rmtree(f"{profile}-dom", ignore_errors=True)
    return dom
