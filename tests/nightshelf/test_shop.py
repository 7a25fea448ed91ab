"""The synthetic shop: seeded, dirty on purpose, shaped like a shop."""

import filecmp

import pytest

from nightshelf import lake
from nightshelf.config import load_config
from nightshelf.shop import generate

pq = pytest.importorskip("pyarrow.parquet")


def _shop(home, seed=7):
    cfg = load_config(environ={"NIGHTSHELF_HOME": str(home), "NIGHTSHELF__SHOP__USERS": "400",
                               "NIGHTSHELF__SHOP__ITEMS": "120",
                               "NIGHTSHELF__SHOP__SEED": str(seed)})
    return cfg, generate(cfg, days=6)


def test_the_same_seed_writes_the_same_files_and_another_seed_does_not(tmp_path):
    a, _ = _shop(tmp_path / "a")
    b, _ = _shop(tmp_path / "b")
    c, _ = _shop(tmp_path / "c", seed=8)
    for folder in sorted(lake.landing_events(a).glob("ds=*")):
        for f in folder.iterdir():
            other = lake.landing_events(b) / folder.name / f.name
            assert filecmp.cmp(f, other, shallow=False), f
    first = sorted(lake.landing_events(a).glob("ds=*/events.*"))[0]
    assert not filecmp.cmp(first, lake.landing_events(c) / first.parent.name / first.name,
                           shallow=False)


def test_events_follow_a_funnel_carry_dirt_and_new_items_appear(tmp_path):
    cfg, summary = _shop(tmp_path)
    assert [d["format"] for d in summary["days"][:3]] == ["csv", "jsonl", "parquet"]
    table = pq.read_table(lake.landing_events(cfg, summary["days"][2]["ds"]) / "events.parquet")
    df = table.to_pandas()
    types = df.event_type.str.lower().value_counts()
    views = types.get("view", 0) + types.get("page_view", 0) + types.get("product_view", 0)
    carts = types.get("add_to_cart", 0) + types.get("cart", 0) + types.get("addtocart", 0)
    buys = types.get("purchase", 0) + types.get("order", 0)
    assert views > carts > buys > 0
    assert df.user_id.isna().sum() + df.item_id.isna().sum() > 0          # nulls
    assert df.event_type.isin(["hover", "scroll", "impression_v2"]).any()  # unknown types
    assert df.event_id.str.endswith("-b").any()                            # double-fires
    assert df.event_id.duplicated().any()                                  # exact duplicates
    assert df.email.str.contains("@").all()                                # PII lands
    first = pq.read_table(lake.landing_catalog(cfg, summary["days"][0]["ds"]) / "catalog.parquet")
    last = pq.read_table(lake.landing_catalog(cfg, summary["days"][-1]["ds"]) / "catalog.parquet")
    assert last.num_rows == first.num_rows + 5 * cfg.shop.new_items_per_day
