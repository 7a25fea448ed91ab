"""ALS lists from Spark MLlib's recommendForUserSubset."""

from datetime import datetime

import pytest

from tests.training.shop import sequences

pytestmark = pytest.mark.spark


def test_als_recommends_a_users_own_cluster_to_the_users_who_came_back(spark):
    from jobs.context import steps_of
    from jobs.evaluate import als_lists

    # two groups of users with disjoint items; each user saw two items of their group
    groups = [["a", "b"], ["b", "c"], ["a", "c"], ["x", "y"], ["y", "z"], ["x", "z"]] * 3
    users = [f"u{i}" for i in range(len(groups))]
    days = [[1, 2]] * len(groups)
    # u0 and u3 come back after the split (day 10)
    items = [g + (["a"] if u in ("u0", "u3") else []) for u, g in zip(users, groups)]
    days = [d + ([10] if u in ("u0", "u3") else []) for u, d in zip(users, days)]
    table = sequences(users, items, [["view"] * len(i) for i in items], days, [[]] * len(users))
    steps = steps_of(spark.createDataFrame(table.to_pandas()))
    got = {r.user_id: r.als_items for r in als_lists(
        steps, at=datetime(2026, 11, 9), weights={"view": 1.0}, k=3, seed=13, rank=4).collect()}
    assert set(got) == {"u0", "u3"}
    assert len(got["u0"]) == 3 and set(got["u0"]) == {"a", "b", "c"}
    assert set(got["u3"]) == {"x", "y", "z"}
