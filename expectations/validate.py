"""Run a stage's suites through GX checkpoints, build Data Docs, and stop the night on failure."""

from __future__ import annotations

import json
import logging

from expectations import frames
from expectations import suites as su
from nightshelf import lake
from nightshelf.config import Config, UserError
from nightshelf.records import ScoreRecord, SuiteResult, ValidationRecord
from nightshelf.spark import get_spark

log = logging.getLogger(__name__)

STAGES = ("raw", "clean", "features", "recommendations")


class ValidationFailed(UserError, RuntimeError):
    """A suite failed: the message names the stage, the suite and the failed expectations."""


def _context(cfg: Config):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    root = lake.gx_root(cfg)
    root.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="file", project_root_dir=str(root))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def _batches(spark, cfg: Config, stage: str, ds: str) -> list[tuple[str, object, object]]:
    """(name, suite, Spark DataFrame) for every table the stage is checked on."""
    if stage == "raw":
        return [("raw_events", su.raw_suite(cfg), frames.raw_frame(spark, cfg, ds))]
    if stage == "clean":
        clean = frames.clean_frame(spark, cfg, ds)
        counts = frames.counts_frame(spark, cfg, ds, clean)
        return [("clean_events", su.clean_suite(cfg, ds), clean),
                ("clean_counts", su.clean_counts_suite(cfg), counts)]
    if stage == "features":
        read = lambda t: spark.read.parquet(str(lake.features(cfg, t, ds)))  # noqa: E731
        return [("user_features", su.user_features_suite(cfg), read("users")),
                ("item_features", su.item_features_suite(cfg), read("items")),
                ("user_sequences", su.sequences_suite(cfg), frames.sequences_frame(spark, cfg, ds))]
    if stage == "recommendations":
        path = str(lake.staging_recommendations(cfg, ds))
        recs, users = frames.recommendation_frames(spark, cfg, ds, path)
        out = [("recommendations", su.recommendations_suite(cfg), recs),
               ("recommendations_users", su.eligible_users_suite(cfg), users)]
        score = ScoreRecord.read(cfg, ds)
        # a model's lists must not collapse; a baseline the gate chose (popularity gives
        # everyone the same few items) is served as what it is
        if score.serving.kind == "model":
            out.append(("recommendations_coverage", su.coverage_suite(cfg),
                        frames.coverage_frame(spark, cfg, ds, path, score.top_n)))
        return out
    raise ValueError(f"unknown stage {stage!r}; one of {', '.join(STAGES)}")


def run_suite(ctx, name: str, suite, df) -> SuiteResult:
    """Validate one Spark DataFrame against one suite via a checkpoint that updates Data Docs."""
    import great_expectations as gx

    source = ctx.data_sources.add_or_update_spark(name="nightshelf")
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name=name)
    try:
        batch_def = asset.get_batch_definition("whole")
    except (KeyError, LookupError):
        batch_def = asset.add_batch_definition_whole_dataframe("whole")
    suite = ctx.suites.add_or_update(suite)
    vd = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch_def, suite=suite))
    checkpoint = ctx.checkpoints.add_or_update(gx.Checkpoint(
        name=name, validation_definitions=[vd],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
        result_format={"result_format": "SUMMARY"}))
    try:
        result = checkpoint.run(batch_parameters={"dataframe": df})
    finally:
        df.unpersist()  # GX persists the frame; a later read of the same files must not hit it
    (vr,) = result.run_results.values()
    failed = []
    for r in vr.results:
        if not r.success:
            cfg = r.expectation_config
            failed.append({"expectation": cfg.type,
                           "kwargs": {k: v for k, v in cfg.kwargs.items() if k != "batch_id"},
                           "unexpected_count": r.result.get("unexpected_count"),
                           "observed_value": r.result.get("observed_value"),
                           "partial_unexpected_list": r.result.get("partial_unexpected_list")})
    return SuiteResult(suite=name, success=bool(vr.success),
                       statistics=json.loads(json.dumps(dict(vr.statistics), default=str)),
                       failed=json.loads(json.dumps(failed, default=str)))


def validate(cfg: Config, stage: str, ds: str, spark=None) -> ValidationRecord:
    """Validate a stage of the night `ds`; raise ValidationFailed if any suite fails."""
    own = spark is None
    spark = spark or get_spark(cfg, f"validate-{stage}")
    try:
        ctx = _context(cfg)
        results = [run_suite(ctx, name, suite, df) for name, suite, df in
                   _batches(spark, cfg, stage, ds)]
    finally:
        if own:
            spark.stop()
    record = ValidationRecord(
        ds=ds, stage=stage, success=all(r.success for r in results), suites=results,
        data_docs=str(lake.data_docs_index(cfg)),
        fingerprint=(lake.fingerprint(lake.staging_recommendations(cfg, ds))
                     if stage == "recommendations" else None))
    record.write(cfg)
    for r in results:
        s = r.statistics
        log.info("validate %s ds=%s: suite %s %s (%s/%s expectations)", stage, ds, r.suite,
                 "passed" if r.success else "FAILED", s.get("successful_expectations"),
                 s.get("evaluated_expectations"))
    if not record.success:
        lines = [f"{stage} data for ds={ds} failed validation; nothing is published. "
                 f"See {lake.data_docs_index(cfg)}"]
        for r in results:
            for f in r.failed:
                lines.append(f"  suite {r.suite}: {f['expectation']} {f['kwargs']} "
                             f"unexpected={f['unexpected_count']} observed={f['observed_value']} "
                             f"e.g. {f['partial_unexpected_list']}")
        raise ValidationFailed("\n".join(lines))
    return record
