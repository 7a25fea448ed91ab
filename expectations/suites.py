"""The expectation suites, one per stage and table, built from the configuration.

Invariants that a single column cannot show (ranks contiguous per user, scores sorted, no
bought item re-recommended, every eligible user present) are computed as boolean columns by
`expectations.frames` and expected to be all true here, so that each shows in Data Docs under
its own name with its unexpected count.
"""

from __future__ import annotations

from datetime import timedelta

import great_expectations as gx
import great_expectations.expectations as gxe

from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config


def _suite(name: str, expectations: list) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name=name)
    for e in expectations:
        suite.add_expectation(e)
    return suite


def _all_true(*columns: str) -> list:
    return [gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[True]) for c in columns]


def raw_suite(cfg: Config) -> gx.ExpectationSuite:
    mostly = cfg.validation.raw_mostly
    return _suite("raw_events", [
        *[gxe.ExpectColumnToExist(column=c) for c in S.REQUIRED_EVENT_COLUMNS],
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c, mostly=mostly)
          for c in S.REQUIRED_EVENT_COLUMNS],
        gxe.ExpectColumnValuesToBeInSet(column="_event_type_norm",
                                        value_set=sorted(cfg.events.type_map), mostly=mostly),
    ])


def clean_suite(cfg: Config, ds: str) -> gx.ExpectationSuite:
    start = lake.cutoff(ds) - timedelta(days=1)
    earliest = start - timedelta(hours=cfg.events.late_tolerance_hours)
    latest = lake.cutoff(ds) + timedelta(minutes=cfg.events.future_tolerance_minutes)
    return _suite("clean_events", [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c)
          for c in (S.EVENT_ID, S.USER, S.ITEM, S.EVENT_TYPE, S.EVENT_TIME, S.WEIGHT)],
        gxe.ExpectColumnValuesToBeUnique(column=S.EVENT_ID),
        gxe.ExpectColumnValuesToBeInSet(column=S.EVENT_TYPE,
                                        value_set=sorted(set(cfg.events.type_map.values()))),
        gxe.ExpectColumnValuesToBeBetween(column=S.WEIGHT, min_value=0, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column=S.PRICE, min_value=0,
                                          max_value=cfg.events.max_price),
        gxe.ExpectColumnValuesToBeBetween(column="_epoch_s", min_value=earliest.timestamp(),
                                          max_value=latest.timestamp()),
    ])


def clean_counts_suite(cfg: Config) -> gx.ExpectationSuite:
    v = cfg.validation
    return _suite("clean_counts", [
        gxe.ExpectColumnPairValuesToBeEqual(column_A="rows_in", column_B="accounted_for"),
        gxe.ExpectColumnValuesToBeBetween(column="quarantine_rate", min_value=0,
                                          max_value=v.max_quarantine_rate),
        gxe.ExpectColumnValuesToBeBetween(column="duplicate_rate", min_value=0,
                                          max_value=v.max_duplicate_rate),
        *_all_true("no_pii_columns"),
    ])


def user_features_suite(cfg: Config) -> gx.ExpectationSuite:
    longest = max(cfg.features.windows_days)
    return _suite("user_features", [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column=S.USER),
        gxe.ExpectColumnValuesToBeUnique(column=S.USER),
        gxe.ExpectColumnValuesToBeBetween(column="recency_days", min_value=0,
                                          max_value=cfg.features.history_days + 1),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="n_view_all", column_B=f"n_view_{longest}d",
            or_equal=True),
        gxe.ExpectColumnValuesToBeBetween(column=f"n_view_{longest}d", min_value=0),
    ])


def item_features_suite(cfg: Config) -> gx.ExpectationSuite:
    longest = max(cfg.features.windows_days)
    return _suite("item_features", [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column=S.ITEM),
        gxe.ExpectColumnValuesToBeUnique(column=S.ITEM),
        gxe.ExpectColumnValuesToBeBetween(column=S.PRICE, min_value=0),
        gxe.ExpectColumnValuesToNotBeNull(column=S.CATEGORY),
        gxe.ExpectColumnValuesToBeBetween(column=f"conversion_{longest}d", min_value=0,
                                          max_value=1, mostly=0.99),
        gxe.ExpectColumnValuesToBeBetween(column=f"pop_view_{longest}d", min_value=0),
    ])


def sequences_suite(cfg: Config) -> gx.ExpectationSuite:
    return _suite("user_sequences", [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeUnique(column=S.USER),
        gxe.ExpectColumnValuesToBeBetween(column="_length", min_value=1,
                                          max_value=cfg.features.sequence_length),
        *_all_true("_times_sorted", "_before_cutoff", "_aligned"),
    ])


def recommendations_suite(cfg: Config) -> gx.ExpectationSuite:
    return _suite("recommendations", [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in S.RECOMMENDATION_COLUMNS],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=[S.USER, S.ITEM]),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=[S.USER, S.RANK]),
        gxe.ExpectColumnValuesToBeBetween(column=S.RANK, min_value=1,
                                          max_value=cfg.scoring.top_n),
        *_all_true("_ranks_contiguous", "_score_sorted", "_item_available",
                   "_not_recently_bought", "_item_in_catalog"),
    ])


def coverage_suite(cfg: Config) -> gx.ExpectationSuite:
    """A model's published lists have not collapsed (the gate's floor, `gate.min_coverage`)."""
    return _suite("recommendations_coverage", [
        gxe.ExpectColumnValuesToBeBetween(column="possible_coverage",
                                          min_value=cfg.gate.min_coverage),
    ])


def eligible_users_suite(cfg: Config) -> gx.ExpectationSuite:
    return _suite("recommendations_users", [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *_all_true("_has_list"),
    ])
