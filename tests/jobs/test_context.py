"""The context job's co-visitation and item statistics equal the NumPy reference."""

from datetime import datetime

import numpy as np
import pytest

from tests.training.shop import AT, CATALOG, SEQS, VOCAB, WEIGHTS, sequences
from training import context
from training.baselines import ItemKNN

pytestmark = pytest.mark.spark

USERS = ["u1", "u2", "u3", "u4"]
ITEMS = [["a", "b", "a", "c"], ["a", "c"], ["d", "b", "a"], ["b", "c", "d"]]
TYPES = [["view", "purchase", "view", "view"], ["view", "purchase"], ["view"] * 3,
         ["view", "view", "purchase"]]
DAYS = [[1, 2, 9, 12], [3, 4], [5, 6, 8], [2, 7, 9]]


def test_covisitation_equals_the_item_knn_reference(spark):
    from jobs.context import covisitation, steps_of
    from tests.training.shop import steps

    table = sequences(USERS, ITEMS, TYPES, DAYS, [[]] * 4)
    df = spark.createDataFrame(table.to_pandas())
    got = {(r.item_id, r.neighbour_id): r.sim
           for r in covisitation(steps_of(df), at=AT, neighbours=2, shrink=1.0).collect()}
    seqs = steps(USERS, ITEMS, TYPES, DAYS, [[]] * 4)
    early = seqs.cut(AT, 30)[0]
    knn = ItemKNN(len(VOCAB), neighbours=2, shrink=1.0).fit_pairs(
        early.step_rows(), early.items.astype(np.int64), len(early))
    coo = knn.sim.tocoo()
    want = {(VOCAB[i], VOCAB[j]): v for i, j, v in zip(coo.row, coo.col, coo.data)}
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-6)
    # by hand: a and b are shared by u1, u3 (2 users); a by 3 users, b by 3 -> 2 / (3 + 1)
    assert got[("a", "b")] == pytest.approx(0.5)


def test_item_stats_equal_the_context_reference(spark):
    from jobs.context import item_stats, steps_of

    table = sequences(["u1", "u2", "u3"], [["a", "b", "a"], ["a", "c"], ["d", "b"]],
                      [["view", "purchase", "view"], ["view", "purchase"], ["view", "view"]],
                      [[1, 2, 9], [3, 4], [5, 6]], [["b"], ["c"], []])
    df = spark.createDataFrame(table.to_pandas())
    stats = item_stats(steps_of(df), at=AT, popularity_days=7, weights=WEIGHTS)
    got = {r.item_id: r for r in stats.collect()}
    ctx = context.build(SEQS, AT, VOCAB, CATALOG, WEIGHTS, 7, ItemKNN(len(VOCAB)).fit([]).sim)
    for i, item in enumerate(VOCAB):
        if item not in got:
            assert ctx.item_users[i] == 0 and ctx.pop_7d[i] == 0
            continue
        assert got[item].pop_window == pytest.approx(ctx.pop_7d[i])
        assert got[item].pop_1d == pytest.approx(ctx.pop_1d[i])
        assert got[item].n_users == ctx.item_users[i]
    assert got["a"].first_seen == datetime(2026, 11, 1, 12)


def test_the_context_read_from_the_jobs_tables_equals_the_reference(spark):
    from jobs.context import covisitation, item_stats, steps_of
    from tests.training.shop import steps

    table = sequences(USERS, ITEMS, TYPES, DAYS, [[]] * 4)
    df = steps_of(spark.createDataFrame(table.to_pandas()))
    items = item_stats(df, at=AT, popularity_days=7, weights=WEIGHTS).toArrow()
    neighbours = covisitation(df, at=AT).toArrow()
    early = steps(USERS, ITEMS, TYPES, DAYS, [[]] * 4).cut(AT, 30)[0]
    got = context.from_tables(items, neighbours, AT, VOCAB, CATALOG, WEIGHTS, len(early))
    knn = ItemKNN(len(VOCAB)).fit_pairs(early.step_rows(), early.items.astype(np.int64),
                                        len(early))
    want = context.build(early, AT, VOCAB, CATALOG, WEIGHTS, 7, knn.sim)
    for name in ("pop_1d", "pop_7d", "item_users", "first_seen_days", "never", "pop_rank"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(got.sim.toarray(), want.sim.toarray(), rtol=1e-6)
    # the items on sale at AT (the context job's `listed`): the others are never recommended
    import pyarrow as pa

    then = context.from_tables(items, neighbours, AT, VOCAB, CATALOG, WEIGHTS, len(early),
                               pa.table({"item_id": ["a", "c", "e", "zz"]}))
    np.testing.assert_array_equal(then.never, want.never | np.isin(VOCAB, ["b", "d"]))


def test_covisitation_of_several_points_equals_each_point_alone(spark):
    from jobs.context import POINT, covisitation, covisitation_at, steps_of

    table = sequences(USERS, ITEMS, TYPES, DAYS, [[]] * 4)
    df = steps_of(spark.createDataFrame(table.to_pandas())).cache()
    points = {f"day{d}": datetime(2026, 11, d, 12, tzinfo=AT.tzinfo) for d in (3, 6, 9, 13)}
    together = covisitation_at(df, points, neighbours=2, shrink=1.0).collect()
    assert {r[POINT] for r in together} == set(points)
    for name, at in points.items():
        alone = {(r.item_id, r.neighbour_id): r.sim
                 for r in covisitation(df, at=at, neighbours=2, shrink=1.0).collect()}
        got = {(r.item_id, r.neighbour_id): r.sim for r in together if r[POINT] == name}
        assert got == alone and got, name


def test_covisitation_in_many_blocks_equals_the_reference_at_every_point(spark):
    """A shop of 300 users over 90 items, split into blocks of 16 items (several per task
    point, the last one short): each point's neighbours equal the NumPy reference fitted on
    the steps before it, ties included."""
    from jobs.context import POINT, covisitation_at, steps_of
    from tests.training.shop import steps

    rng = np.random.default_rng(7)
    items = [f"i{k:02d}" for k in range(90)]
    vocab = np.array(["<pad>", "<oov>"] + items, dtype=object)
    users, seqs, days = [], [], []
    for u in range(300):
        n = int(rng.integers(1, 12))
        users.append(f"u{u:03d}")
        seqs.append(list(rng.choice(items, n, p=np.linspace(2, 1, 90) / np.linspace(2, 1, 90)
                                    .sum())))
        days.append(sorted(int(d) for d in rng.integers(1, 20, n)))
    types = [["view"] * len(s) for s in seqs]
    df = steps_of(spark.createDataFrame(sequences(users, seqs, types, days,
                                                  [[]] * 300).to_pandas())).cache()
    points = {f"day{d}": datetime(2026, 11, d, 0) for d in (6, 12, 20)}
    together = covisitation_at(df, points, neighbours=5, shrink=2.0, block=16).collect()
    every = steps(users, seqs, types, days, [[]] * 300, vocab=vocab)
    for name, at in points.items():
        early = every.cut(at, 30)[0]
        knn = ItemKNN(len(vocab), neighbours=5, shrink=2.0).fit_pairs(
            early.step_rows(), early.items.astype(np.int64), len(early))
        coo = knn.sim.tocoo()
        want = {(vocab[i], vocab[j]): v for i, j, v in zip(coo.row, coo.col, coo.data)}
        got = {(r.item_id, r.neighbour_id): r.sim for r in together if r[POINT] == name}
        assert got.keys() == want.keys(), name
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-6)


def test_repurchase_stats_equal_the_reference_and_learn_what_is_rebought(spark):
    from jobs.context import item_stats, steps_of
    from tests.training.shop import steps

    # a: bought on days 1 and 3 by u1, twice on day 2 by u2 (one day), on days 4, 8 and 9
    # by u3: 3 buyers, 2 rebuyers, mean interval (2 / 1 + 5 / 2) / 2 = 2.25 days;
    # b: one buyer, never rebought; c: viewed only
    users = ["u1", "u2", "u3"]
    items = [["a", "b", "a"], ["a", "c", "a"], ["a", "b", "a", "c", "a"]]
    types = [["purchase", "purchase", "purchase"], ["purchase", "view", "purchase"],
             ["purchase", "view", "purchase", "view", "purchase"]]
    days = [[1, 3, 3], [2, 2, 2], [4, 5, 8, 8, 9]]
    table = sequences(users, items, types, days, [[]] * 3)
    stats = item_stats(steps_of(spark.createDataFrame(table.to_pandas())), at=AT,
                       popularity_days=7, weights=WEIGHTS,
                       rule=context.Repurchase(min_share=0.5, min_buyers=3))
    got = {r.item_id: r for r in stats.collect()}
    assert (got["a"].buyers, got["a"].rebuyers) == (3, 2)
    assert got["a"].rebuy_days == pytest.approx(2.25)
    assert (got["b"].buyers, got["b"].rebuyers, got["b"].rebuy_days) == (1, 0, None)
    assert (got["c"].buyers, got["c"].rebuyers) == (0, 0)
    assert [got[i].learned_repurchasable for i in "abc"] == [True, False, False]
    buyers, rebuyers, gap = context.repurchase_stats(
        steps(users, items, types, days, [[]] * 3), len(VOCAB))
    for k, item in enumerate(VOCAB[2:], start=2):
        if item in got:
            assert (buyers[k], rebuyers[k]) == (got[item].buyers, got[item].rebuyers)
            assert gap[k] == pytest.approx(got[item].rebuy_days or 0.0)
    # the catalog's flag wins where it has one: b is flagged, a is flagged "no"
    catalog = context.Catalog(item_ids=list("abc"), title={}, category={}, available=set("abc"),
                              repurchasable={"b"}, brand={}, price={}, not_repurchasable={"a"})
    ctx = context.from_tables(stats.toArrow(), _no_neighbours(), AT, VOCAB, catalog, WEIGHTS, 3)
    flags = dict(zip(VOCAB, ctx.repurchasable))
    assert (flags["a"], flags["b"], flags["c"]) == (False, True, False)
    silent = context.Catalog(item_ids=list("abc"), title={}, category={}, available=set("abc"),
                             repurchasable=set(), brand={}, price={})
    ctx = context.from_tables(stats.toArrow(), _no_neighbours(), AT, VOCAB, silent, WEIGHTS, 3)
    assert dict(zip(VOCAB, ctx.repurchasable))["a"]
    assert ctx.rebuy_share[list(VOCAB).index("a")] == pytest.approx(2 / 3)


def _no_neighbours():
    import pyarrow as pa

    return pa.table({"item_id": pa.array([], pa.string()),
                     "neighbour_id": pa.array([], pa.string()), "sim": pa.array([], pa.float32())})


def test_a_point_recommends_only_what_was_on_sale_then(spark, cfg):
    """A label window's start sees the catalog snapshot of its own day (items launched later
    are not candidates nobody could have touched), the split and the cutoff the night's; with
    no snapshot that early, the night's catalog less what it says was first seen later."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.context import listed
    from jobs.storage import partition_days
    from nightshelf import lake

    def write(folder, items, available, first_seen=None):
        folder.mkdir(parents=True)
        cols = {"item_id": items, "available": available}
        if first_seen:
            cols["first_seen"] = pa.array(first_seen, pa.date32())
        pq.write_table(pa.table(cols), folder / "part-0.parquet")

    write(lake.clean_catalog(cfg, "2026-11-20"), ["a", "b"], [True, True])
    write(lake.clean_catalog(cfg, "2026-11-22"), ["a", "b", "c", "d"], [True, False, True, True])
    day = [dt.date(2026, 11, 1) + dt.timedelta(days=d) for d in (0, 20, 21, 21)]
    write(lake.features(cfg, "items", "2026-11-22"), ["a", "b", "c", "d"], [True] * 4, day)
    days = partition_days(spark, lake.clean_catalog(cfg))
    assert days == ["2026-11-20", "2026-11-22"]

    def at(d):
        return dt.datetime(2026, 11, d, tzinfo=dt.timezone.utc)

    def on_sale(when):
        df, source = listed(spark, cfg, "2026-11-22", when, days)
        return sorted(r.item_id for r in df.collect()), source

    assert on_sale(at(21)) == (["a", "b"], "clean catalog ds=2026-11-20")
    assert on_sale(at(22)) == (["a", "c", "d"], "clean catalog ds=2026-11-22")
    assert on_sale(at(23))[0] == ["a", "c", "d"]  # the cutoff: the night's own snapshot
    items, source = on_sale(at(19))
    assert items == ["a"] and "first seen later" in source
