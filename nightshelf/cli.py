"""`nightshelf`: the command line every DAG task and Makefile target calls (`nightshelf
--help` lists the commands, `nightshelf COMMAND --help` their arguments)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from nightshelf import cli_args, lake, package
from nightshelf.config import USER_ERROR_EXIT, Config, UserError, load_config
from nightshelf.logs import setup_logging

log = logging.getLogger("nightshelf")

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "recsys_nightly"


def _job_bin() -> Path:
    return Path(sys.executable).parent


def spark_submit(cfg: Config, job: str, args: list[str]) -> None:
    """Run jobs/<job>.py with this environment's spark-submit (as the DAG does through Airflow)."""
    conf = cfg.spark.submit_conf(sys.executable)
    cmd = [str(_job_bin() / "spark-submit"), "--master", cfg.spark.master,
           *(arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")),
           "--py-files", str(package.job_zip(cfg.home / "dist")), str(REPO / "jobs" / f"{job}.py"),
           *args]
    env = {**os.environ, "PATH": f"{_job_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYSPARK_PYTHON": sys.executable}
    log.info("running %s", " ".join(cmd))
    subprocess.run(cmd, check=True, env=env)


def cmd_generate(cfg: Config, a) -> None:
    from nightshelf.secrets import ensure_demo_key
    from nightshelf.shop import generate

    ensure_demo_key(cfg)
    summary = generate(cfg, days=a.days, end=a.end)
    rows = sum(d["rows"] for d in summary["days"])
    print(f"landed {len(summary['days'])} days ({summary['days'][0]['ds']} .. "
          f"{summary['days'][-1]['ds']}), {rows} raw events, {summary['items']} items, "
          f"{summary['users']} users under {lake.landing_events(cfg)}")


def clean_history(cfg: Config, until: str, only_new: bool = False) -> list[str]:
    """Clean the landed days before `until` in one Spark session (a shop's history); with
    `only_new`, only the days never cleaned. Returns the days cleaned."""
    days = sorted(p.name[3:] for p in lake.landing_events(cfg).glob("ds=*")
                  if p.name < lake.part(until))
    if only_new:
        days = [d for d in days if not lake.clean_counts(cfg, d).exists()]
    if days:
        log.info("cleaning %d landed day(s) before %s (%s .. %s)", len(days), until, days[0],
                 days[-1])
        spark_submit(cfg, "clean", [x for d in days for x in ("--ds", d)])
    return days


def cmd_bootstrap(cfg: Config, a) -> None:
    """Clean every landed day before `--until` in one Spark session (a shop's history); with
    `--only-new`, the days never cleaned (a bootstrap that was stopped goes on)."""
    if not clean_history(cfg, a.until, only_new=a.only_new):
        print(f"nothing {'new ' if a.only_new else ''}landed before {a.until}")


def cmd_land(cfg: Config, a) -> None:
    """Check the night's landed files are there, and say what they are."""
    from nightshelf.landing import landed_files

    files = landed_files(lake.landing_events(cfg, a.ds), f"raw events for ds={a.ds}")
    for f in files:
        log.info("landed: %s (%d bytes)", f, f.stat().st_size)


def cmd_validate(cfg: Config, a) -> None:
    from expectations.validate import validate

    validate(cfg, a.stage, a.ds)


def cmd_train(cfg: Config, a) -> None:
    from training.train import run

    run(cfg, a.ds, force=a.force)


def cmd_gate(cfg: Config, a) -> None:
    from training.gate import run

    run(cfg, a.ds, force=a.force)


def cmd_train_ranker(cfg: Config, a) -> None:
    from training.train_ranker import run

    run(cfg, a.ds, force=a.force)


def cmd_drift(cfg: Config, a) -> None:
    from nightshelf.drift import run

    run(cfg, a.ds)


def cmd_publish(cfg: Config, a) -> None:
    from nightshelf.publish import publish

    publish(cfg, a.ds)


def cmd_report(cfg: Config, a) -> None:
    from nightshelf.report import write_report

    write_report(cfg, a.ds)


def airflow_env(cfg: Config) -> dict[str, str]:
    """The environment an embedded Airflow (SQLite, local Spark) runs the DAG with."""
    home = cfg.home / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark",
                                                  "host": cfg.spark.master}),
        "NIGHTSHELF_HOME": str(cfg.home),
        "NIGHTSHELF_JOB_VENV": str(_job_bin().parent),
    })
    env.setdefault("NIGHTSHELF_AIRFLOW_VENV", str(REPO / ".venv-airflow"))
    return env


def _embedded_airflow(cfg: Config) -> tuple[Path, dict[str, str]]:
    """(the airflow command, its environment) on this home's database, migrated."""
    env = airflow_env(cfg)
    airflow = Path(env["NIGHTSHELF_AIRFLOW_VENV"]) / "bin" / "airflow"
    if not airflow.exists():
        sys.exit(f"no Airflow at {airflow}: run `make install` (or set NIGHTSHELF_AIRFLOW_VENV)")
    subprocess.run([str(airflow), "db", "migrate"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return airflow, env


def cmd_night(cfg: Config, a) -> None:
    """Run the whole DAG for one logical date in-process (`airflow dags test`)."""
    airflow, env = _embedded_airflow(cfg)
    proc = subprocess.run([str(airflow), "dags", "test", DAG_ID, a.ds], env=env)
    if proc.returncode != 0 or not lake.manifest(cfg, a.ds).exists():
        sys.exit(f"night {a.ds} failed (airflow exit {proc.returncode}): "
                 f"{what_ran(airflow, env, a.ds)}; nothing new was published")
    cmd_where(cfg, a)


def cmd_task(cfg: Config, a) -> None:
    """One task of the night again, in-process (`airflow tasks test`): what it reads must
    be there from an earlier run of the night; it overwrites only its own output."""
    airflow, env = _embedded_airflow(cfg)
    proc = subprocess.run([str(airflow), "tasks", "test", DAG_ID, a.task, a.ds], env=env)
    if proc.returncode != 0:
        sys.exit(f"task {a.task} of night {a.ds} failed (airflow exit {proc.returncode})")


def cmd_airflow(cfg: Config, a) -> None:
    """`airflow standalone` (api-server, scheduler, dag-processor, triggerer) on the embedded
    home's database, where `make night` records its runs. The DAG is paused first, so the
    scheduler starts no night of its own until it is unpaused in the UI."""
    env = airflow_env(cfg)
    env["AIRFLOW__API__PORT"] = str(a.port)
    env["AIRFLOW__API__HOST"] = "127.0.0.1"
    env["AIRFLOW__API__BASE_URL"] = f"http://127.0.0.1:{a.port}"
    airflow = Path(env["NIGHTSHELF_AIRFLOW_VENV"]) / "bin" / "airflow"
    if not airflow.exists():
        raise UserError(f"no Airflow at {airflow}: run `make install`")
    env["PATH"] = f"{airflow.parent}{os.pathsep}{env.get('PATH', '')}"  # its own processes
    subprocess.run([str(airflow), "db", "migrate"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    subprocess.run([str(airflow), "dags", "reserialize"], env=env, capture_output=True)
    subprocess.run([str(airflow), "dags", "pause", DAG_ID], env=env, capture_output=True)
    home = Path(env["AIRFLOW_HOME"])
    print(f"Airflow on http://127.0.0.1:{a.port} (user admin; its password is printed below "
          f"and kept in {home}/simple_auth_manager_passwords.json.generated); Ctrl-C stops it",
          flush=True)
    os.execve(str(airflow), [str(airflow), "standalone"], env)


def _airflow_json(airflow: Path, env: dict, *args: str) -> list[dict]:
    out = subprocess.run([str(airflow), *args, "-o", "json"], env=env, capture_output=True,
                         text=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("[")]
    return json.loads(rows[-1]) if rows else []


def what_ran(airflow: Path, env: dict, ds: str) -> str:
    """What Airflow's records say of night `ds`'s latest run: the tasks that failed, or that
    none ran at all."""
    runs = [r for r in _airflow_json(airflow, env, "dags", "list-runs", DAG_ID)
            if str(r.get("logical_date", "")).startswith(ds)]
    if not runs:
        return f"Airflow has no run of {DAG_ID} for {ds}"
    run = max(runs, key=lambda r: r.get("run_after") or "")
    tasks = _airflow_json(airflow, env, "tasks", "states-for-dag-run", DAG_ID, run["run_id"])
    ran = [t for t in tasks if t.get("state") not in (None, "", "none", "scheduled", "queued")]
    if not ran:
        return (f"run {run['run_id']} ({run.get('state')}) ran no task at all: none of its "
                f"{len(tasks)} tasks was started")
    failed = [t["task_id"] for t in tasks if t.get("state") in ("failed", "up_for_retry")]
    blocked = sum(t.get("state") == "upstream_failed" for t in tasks)
    return (f"run {run['run_id']} ({run.get('state')}): " +
            (f"task {', '.join(failed)} failed (the task logs above say why), {blocked} "
             f"task(s) after it did not run" if failed else
             f"{len(ran)} of {len(tasks)} tasks ran and none failed, yet nothing was published"))


def cmd_backfill(cfg: Config, a) -> None:
    """Run the nights `--from` .. `--to` in order, each through the real DAG, each seeing only
    what had landed up to its own cutoff. Days before `--from` that were never cleaned are
    cleaned first (one Spark session). Stops at the first night that fails."""
    first, last = lake.parse_ds(a.first), lake.parse_ds(a.last)
    if last < first:
        sys.exit(f"backfill: --to {a.last} is before --from {a.first}")
    nights = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    clean_history(cfg, a.first, only_new=True)
    done = []
    for i, ds in enumerate(nights, start=1):
        log.info("backfill: night %d/%d, ds=%s", i, len(nights), ds)
        t0 = time.monotonic()
        try:
            cmd_night(cfg, argparse.Namespace(ds=ds))
        except SystemExit as exc:
            sys.exit(f"backfill stopped at {ds} ({exc}); published before it: "
                     f"{', '.join(done) or 'none'}. Fix the cause, then rerun "
                     f"`nightshelf backfill --from {ds} --to {a.last}`")
        done.append(ds)
        log.info("backfill: night %s published in %.0fs", ds, time.monotonic() - t0)
    print(f"backfill: {len(done)} night(s) published, {done[0]} .. {done[-1]}")


def cmd_trigger(cfg: Config, a) -> None:
    """Trigger night `--ds` on a running Airflow through its REST API (`--api`), then follow
    it task by task until it ends; a failed night exits 1 naming its failed tasks."""
    from nightshelf.airflow_api import AirflowAPI, AirflowAPIError

    try:
        conf = json.loads(a.conf) if a.conf else None
    except json.JSONDecodeError as exc:
        raise UserError(f"--conf is not JSON ({exc}): e.g. '{{\"force_retrain\": true}}'")
    af = AirflowAPI(a.api)
    try:
        af.wait_for_dag(DAG_ID, seconds=a.wait_seconds)
    except (AirflowAPIError, OSError) as exc:
        raise UserError(f"no {DAG_ID} on an Airflow API at {a.api} after {a.wait_seconds}s "
                        f"({exc}): is the api-server up, and is --api its address?") from None
    run_id = a.run_id or f"manual__{a.ds}__{time.strftime('%Y%m%dT%H%M%S')}"
    af.trigger(DAG_ID, a.ds, run_id, conf=conf)
    print(f"triggered {DAG_ID} {run_id} on {a.api}", flush=True)
    if a.no_wait:
        return
    run = af.wait_for_run(DAG_ID, run_id, seconds=a.timeout_minutes * 60,
                          progress=lambda line: print(line, flush=True))
    if run["state"] != "success":
        failed = [t for t, s in af.task_states(DAG_ID, run_id).items()
                  if s in ("failed", "upstream_failed")]
        sys.exit(f"night {a.ds} ({run_id}) {run['state']}: {', '.join(failed) or 'no task'} "
                 f"did not succeed; the task logs in Airflow's UI say why")
    print(f"night {a.ds} ({run_id}) succeeded")


def cmd_where(cfg: Config, a) -> None:
    target = lake.recommendations(cfg, a.ds)
    print(f"""
Night {a.ds}:
  published lists : {target}/  (_manifest.json, _SUCCESS)
  night report    : {lake.run_dir(cfg, a.ds) / 'report.md'}
  quarantine      : {lake.quarantine(cfg, a.ds)}
  Data Docs       : {lake.data_docs_index(cfg)}
  MLflow UI       : make ui   (then open http://127.0.0.1:5000)
""")


COMMANDS = {
    "generate": cmd_generate, "bootstrap": cmd_bootstrap, "land": cmd_land,
    "validate": cmd_validate, "train": cmd_train, "train-ranker": cmd_train_ranker,
    "gate": cmd_gate,
    "publish": cmd_publish, "report": cmd_report, "night": cmd_night, "where": cmd_where,
    "backfill": cmd_backfill, "drift": cmd_drift, "airflow": cmd_airflow,
    "trigger": cmd_trigger, "task": cmd_task,
}


def main(argv: list[str] | None = None) -> None:
    """Run one command. An error the user fixes from its message (`UserError`: a bad date,
    an unknown config key, a missing or unreadable landed day, a step run before its inputs
    exist, a failed suite or drift check) prints that message and exits USER_ERROR_EXIT (3)
    without a traceback (NIGHTSHELF_TRACEBACK=1 shows it); anything else keeps its
    traceback (exit 1)."""
    a = cli_args.parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ chatter
    setup_logging()
    try:
        cfg = load_config(a.config)
        COMMANDS[a.cmd](cfg, a)
    except UserError as exc:
        if os.environ.get("NIGHTSHELF_TRACEBACK") == "1":
            raise
        print(f"nightshelf {a.cmd}: {exc}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)


if __name__ == "__main__":
    main()
