"""The `nightshelf` command line's arguments and help (`nightshelf.cli` runs them)."""

from __future__ import annotations

import argparse

from nightshelf import lake

HELP = {
    "generate": "land a synthetic shop (shop.* in the config; shop.profile its shape)",
    "bootstrap": "clean the landed days before a night (a shop's history), in one Spark session",
    "land": "check that the night's raw events and catalog have landed",
    "train": "fit SASRec on the night's sequences and register it in MLflow",
    "train-ranker": "fit the DCN ranker on the rows jobs/ranker_rows.py wrote, register it",
    "gate": "promote the night's ranker to champion only if it beats the champion and baselines",
    "drift": "compare the night with the one before; past a fail threshold, stop it",
    "publish": "swap the validated lists into place with their manifest (atomic)",
    "report": "write the night's report (lake/runs/ds=.../report.md)",
    "night": "run the whole DAG for one night (airflow dags test recsys_nightly DS)",
    "where": "print where a night's outputs and UIs are",
    "task": "run one task of a night again, as the DAG runs it (airflow tasks test "
            "recsys_nightly TASK DS); its upstream tasks must have run",
    "backfill": "run consecutive nights in order, each through the DAG",
    "validate": "run a stage's Great Expectations suites; a failed suite stops the night",
    "airflow": "Airflow's UI and scheduler on this home (airflow standalone): the grid, task "
               "logs and durations of the nights run here",
    "trigger": "trigger a night on a running Airflow through its REST API and follow it task "
               "by task (the docker stack, a production deployment)",
}


def _date(text: str) -> str:
    """argparse type: a logical date, YYYY-MM-DD."""
    try:
        lake.parse_ds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nightshelf", description="Nightly batch recommendations: "
                                "the command every DAG task and Makefile target calls")
    p.add_argument("--config", help="YAML config (default: $NIGHTSHELF_CONFIG or built-in)")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def command(name: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=HELP[name], description=HELP[name])

    g = command("generate")
    g.add_argument("--days", type=int, help="days to land (default: shop.days)")
    g.add_argument("--end", type=_date, help="the last landed day (default: shop.end)")
    b = command("bootstrap")
    b.add_argument("--until", required=True, type=_date, help="clean the days before this one")
    b.add_argument("--only-new", action="store_true",
                   help="only the days never cleaned (go on with a bootstrap that stopped)")
    for name in ("land", "train", "train-ranker", "gate", "drift", "publish", "report", "night",
                 "where"):
        sp = command(name)
        sp.add_argument("--ds", required=True, type=_date, help="the night, YYYY-MM-DD")
        if name in ("train", "train-ranker", "gate"):
            sp.add_argument("--force", action="store_true",
                            help="redo it even if this night already did it on the same inputs")
    tk = command("task")
    tk.add_argument("--ds", required=True, type=_date, help="the night, YYYY-MM-DD")
    tk.add_argument("--task", required=True, help="the DAG task's id, e.g. score")
    bf = command("backfill")
    bf.add_argument("--from", dest="first", required=True, type=_date, help="the first night")
    bf.add_argument("--to", dest="last", required=True, type=_date, help="the last night")
    v = command("validate")
    v.add_argument("--stage", required=True, help="the stage whose output is checked",
                   choices=["raw", "clean", "features", "recommendations"])
    v.add_argument("--ds", required=True, type=_date, help="the night, YYYY-MM-DD")
    af = command("airflow")
    af.add_argument("--port", type=int, default=8080, help="the UI's port (default 8080)")
    t = command("trigger")
    t.add_argument("--ds", required=True, type=_date, help="the night, YYYY-MM-DD")
    t.add_argument("--api", default="http://127.0.0.1:8080",
                   help="Airflow's api-server (default http://127.0.0.1:8080); a token from "
                        "$AIRFLOW_API_TOKEN or $AIRFLOW_API_USERNAME/PASSWORD")
    t.add_argument("--run-id", help="the run's id (default manual__DS__<now>)")
    t.add_argument("--conf", help='the run\'s Params as JSON, e.g. \'{"force_retrain": true}\'')
    t.add_argument("--timeout-minutes", type=int, default=240, help="give up after (240)")
    t.add_argument("--wait-seconds", type=int, default=300,
                   help="how long to wait for the API and the parsed DAG (300)")
    t.add_argument("--no-wait", action="store_true", help="trigger, do not follow")
    return p
