"""The failure callback's records: the failed task, its try and error, in the night's report."""

from nightshelf import failures, lake


class _TI:
    task_id, try_number = "features", 2


def test_a_failed_task_lands_in_the_nights_records_and_report(cfg, monkeypatch):
    ds = "2026-11-22"
    failures.record(cfg, ds, "clean", 1, "Traceback ...\nInputError: column user_id missing")
    monkeypatch.setenv("NIGHTSHELF_HOME", str(cfg.home))
    failures.airflow_callback({"task_instance": _TI(), "ds": ds,
                               "exception": RuntimeError("spark-submit exited 1")})
    entries = failures.read(cfg, ds)
    assert [(e["task"], e["try"]) for e in entries] == [("clean", 1), ("features", 2)]
    report = (lake.run_dir(cfg, ds) / "report.md").read_text()
    assert "`clean` (try 1): InputError: column user_id missing" in report
    assert "`features` (try 2): spark-submit exited 1" in report
    assert report.count("## Failed tasks") == 1
    assert failures.read(cfg, "2026-11-21") == []
