"""Candidates, their features and labels, and the DCN-v2 ranker built from parts."""

import numpy as np
import pytest

from tests.training.shop import AT, CATALOG, SEQS, VOCAB, WEIGHTS, context_of, steps
from training import candidate_set as CS
from training import candidates as C
from training import context
from training.baselines import ItemKNN
from training.steps import OOV

keras = pytest.importorskip("keras")


def test_candidates_respect_the_masks_and_carry_the_users_past():
    ctx = context_of()
    cands = C.generate(ctx, SEQS.take(np.array([0, 1])), None,
                       {"covisit": 5, "popularity": 5, "repeat": 5})
    got = {(int(r), VOCAB[i]) for r, i in zip(cands.rows, cands.items)}
    # "e" is unavailable; u2 bought "c" (not repurchasable); u1 bought "b" (repurchasable)
    assert got == {(0, "a"), (0, "b"), (0, "c"), (0, "d"), (1, "a"), (1, "b"), (1, "d")}
    col = {n: j for j, n in enumerate(CS.NUMERIC)}
    row = {(int(r), VOCAB[i]): k for k, (r, i) in enumerate(zip(cands.rows, cands.items))}
    u1a = cands.numeric[row[(0, "a")]]
    assert u1a[col["user_item_events"]] == pytest.approx(np.log1p(2))
    assert u1a[col["user_item_days_since"]] == pytest.approx(0.5)  # day 9, noon
    assert cands.numeric[row[(0, "b")], col["user_item_bought"]] == 1.0
    # u1's weighted history: a 1+1, b 5 -> all Home; d is Sports
    assert cands.numeric[row[(0, "d")], col["user_category_share"]] == 0.0
    assert u1a[col["user_category_share"]] == pytest.approx(1.0)
    # popularity over the 7 days before AT (from Nov 3): a (days 3, 9) 2 views
    assert u1a[col["item_log_pop_7d"]] == pytest.approx(np.log1p(2.0))
    # a's first step is Nov 1 at noon: 8.5 days before AT
    assert u1a[col["item_age_days"]] == pytest.approx(8.5)
    # u1's own items by decayed weight (half-life 3 days): a 0.5^(8.5/3) + 0.5^(.5/3) = 1.03
    # beats b's purchase 5 * 0.5^(7.5/3) = 0.88
    assert u1a[col["repeat_score"]] == pytest.approx(0.5 ** (8.5 / 3) + 0.5 ** (0.5 / 3))
    assert u1a[col["repeat_log_rank"]] == 0.0
    assert cands.numeric[row[(0, "b")], col["repeat_log_rank"]] == pytest.approx(np.log1p(1))
    # d is not u1's own: its repeat rank sits just past u1's 2 own items
    assert cands.numeric[row[(0, "d")], col["repeat_log_rank"]] == pytest.approx(np.log1p(2))
    assert cands.title[row[(0, "a")]] == "Blue mug a"


def test_candidates_never_build_a_users_by_catalog_array():
    """A batch's memory grows with its users' candidates, not with the catalog: the
    feature kernel on a 200k-item vocabulary allocates far less than one users x catalog
    float array would."""
    import tracemalloc

    big = np.array(list(VOCAB) + [f"x{i}" for i in range(200_000)], dtype=object)
    users = [f"u{i}" for i in range(256)]
    seqs = steps(users, [["a", "b", "c"]] * 256, [["view"] * 3] * 256, [[7, 8, 9]] * 256,
                 [[]] * 256, vocab=big)
    valid = seqs.items > OOV
    knn = ItemKNN(len(big)).fit_pairs(seqs.step_rows()[valid],
                                      seqs.items[valid].astype(np.int64), len(seqs))
    ctx = context.build(seqs, AT, big, CATALOG, WEIGHTS, 7, knn.sim)
    tracemalloc.start()
    cands = C.generate(ctx, seqs, None, {"covisit": 5, "popularity": 5, "repeat": 5})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(cands) == 256 * 3  # a, b, c: own, co-visited and popular; d was never touched
    assert peak < 256 * len(big) * 4 / 10, peak


def test_labels_weight_positives_by_their_strongest_event_type():
    ctx = context_of()
    cands = C.generate(ctx, SEQS.take(np.array([0, 1])), None, {"popularity": 5})
    after = steps(["u1", "u2"], [["d", "d"], ["zz"]], [["view", "purchase"], ["view"]],
                  [[10, 10], [10]], [[], []])
    y, w = C.labels(cands, after, len(VOCAB), WEIGHTS)
    pos = [(int(r), VOCAB[i]) for r, i, lab in zip(cands.rows, cands.items, y) if lab]
    assert pos == [(0, "d")]
    assert w[y == 1].tolist() == [5.0] and set(w[y == 0].tolist()) == {1.0}


def test_cross_layer_is_x0_times_wx_plus_b_plus_x():
    from training.ranker import CrossLayer

    layer = CrossLayer()
    x0 = np.array([[1.0, 2.0]], np.float32)
    x = np.array([[0.5, -1.0]], np.float32)
    layer([x0, x])
    w = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    b = np.array([0.1, 0.2], np.float32)
    layer.set_weights([w, b])
    # x @ w = [0.5 - 3, 1 - 4] = [-2.5, -3]; + b = [-2.4, -2.8]; * x0 = [-2.4, -5.6]; + x
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([x0, x])), [[-1.9, -6.6]],
                               rtol=1e-6)


def _toy_set(n, seed):
    """Candidates whose label is a cross of two of 24 numeric features and the category."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(n, 24)).astype(np.float32)
    cat = rng.choice(["Home", "Sports"], size=n)
    logit = 2.5 * numeric[:, 0] * numeric[:, 1] + 1.5 * (cat == "Home") - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    cands = CS.CandidateSet(rows=np.arange(n) // 10, items=np.zeros(n, np.int64),
                            numeric=numeric, category=cat, brand=np.full(n, "Acme"),
                            title=np.where(cat == "Home", "blue mug", "red ball"))
    return cands, y


def test_the_ranker_learns_a_feature_cross_and_survives_a_save(tmp_path):
    from nightshelf.config import load_config
    from training import ranker

    cfg = load_config(environ={}).ranker
    keras.utils.set_random_seed(3)
    train, y = _toy_set(6000, 1)
    model, history = ranker.fit(train, y, np.ones_like(y), cfg, seed=3)
    test, y_test = _toy_set(2000, 2)
    p = ranker.predict(model, test)
    auc = float(keras.ops.convert_to_numpy(keras.metrics.AUC()(y_test, 1 / (1 + np.exp(-p)))))
    assert auc > 0.8, auc
    assert history["val_loss"][-1] < history["val_loss"][0]
    path = tmp_path / "ranker.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(ranker.predict(again, test), p, rtol=1e-5, atol=1e-5)


def test_a_feature_constant_in_training_keeps_unit_scale_at_serving():
    from nightshelf.config import load_config
    from training import ranker

    train, _ = _toy_set(200, 4)
    train.numeric[:, 5] = 0.0  # a flag no training row sets
    inputs, encoders, *_ = ranker.default_parts(train, load_config(environ={}).ranker)
    row = np.zeros((1, train.numeric.shape[1]), np.float32)
    row[0, 5] = 1.0
    out = np.asarray(encoders["numeric"](row))
    assert abs(out[0, 5] - 1.0) < 1e-6 and np.abs(out).max() < 10


def test_an_averaged_ranker_is_the_mean_of_its_members_served_and_saved_as_one(tmp_path):
    import dataclasses
    from types import SimpleNamespace

    from nightshelf.config import load_config
    from training import ranker
    from training.serve import ItemCachedScorer

    cfg = dataclasses.replace(load_config(environ={}).ranker, members=2, epochs=2)
    keras.utils.set_random_seed(5)
    train, y = _toy_set(3000, 1)
    epochs = []
    model, history = ranker.fit(train, y, np.ones_like(y), cfg, seed=5,
                                on_epoch=lambda e, logs: epochs.append((e, logs["member"])))
    assert epochs == [(1, 0), (2, 0), (3, 1), (4, 1)]  # one count over both members
    assert history["member"] == [0.0, 0.0, 1.0, 1.0] and len(history["val_loss"]) == 4
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert [m.name for m in members] == ["dcn_member_0", "dcn_member_1"]
    test, _ = _toy_set(500, 2)
    p = ranker.predict(model, test)
    each = [np.asarray(m.predict_on_batch(test.inputs()), np.float32).reshape(-1)
            for m in members]
    assert np.abs(each[0] - each[1]).max() > 1e-3  # two different rankers
    np.testing.assert_allclose(p, (each[0] + each[1]) / 2, rtol=1e-5, atol=1e-5)
    # the serving split (item encoders once per item) gives the same logits
    ctx = SimpleNamespace(size=len(test), category=test.category, brand=test.brand,
                          title=test.title)
    cands = dataclasses.replace(test, items=np.arange(len(test)))
    np.testing.assert_allclose(ItemCachedScorer(model)(ctx, cands), p, rtol=1e-4, atol=1e-4)
    path = tmp_path / "ranker.keras"
    model.save(path)
    np.testing.assert_allclose(ranker.predict(keras.saving.load_model(path), test), p,
                               rtol=1e-5, atol=1e-5)


def test_a_first_member_that_needs_the_whole_budget_trains_alone():
    import dataclasses

    from nightshelf.config import load_config
    from training import ranker

    cfg = dataclasses.replace(load_config(environ={}).ranker, members=3, epochs=5,
                              max_train_minutes=1e-4)
    keras.utils.set_random_seed(5)
    train, y = _toy_set(1000, 1)
    model, history = ranker.fit(train, y, np.ones_like(y), cfg, seed=5)
    assert history["member"] == [0.0]  # out of time after its first epoch: no other member
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)


@pytest.mark.parametrize("shuffled", [False, True])
def test_text_similarities_are_the_cosines_to_the_profile_and_the_last_item(shuffled):
    """Per candidate: its text vector against the normalised mean of the user's recent
    items' and against the user's last item's, whatever the candidates' order; a user
    with no candidates is skipped."""
    from types import SimpleNamespace

    rng = np.random.default_rng(3)
    n, size, dim = 6, 40, 16
    vec = rng.normal(size=(size, dim)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    ctx = SimpleNamespace(text_vec=vec, size=size)
    rr = np.repeat(np.arange(n), 3)
    ri = rng.integers(2, size, len(rr))
    last = ri.reshape(n, 3)[:, -1]
    cr = np.sort(rng.choice([0, 1, 2, 4, 5], 50))          # user 3 has no candidates
    ci = rng.integers(2, size, len(cr))
    if shuffled:
        p = rng.permutation(len(cr))
        cr, ci = cr[p], ci[p]
    recent, to_last = C.text_similarities(ctx, rr, ri, last, cr, ci, n)
    profile = np.zeros((n, dim), np.float32)
    np.add.at(profile, rr, vec[ri])
    profile /= np.linalg.norm(profile, axis=1, keepdims=True)
    np.testing.assert_allclose(recent, np.einsum("nd,nd->n", profile[cr], vec[ci]), atol=1e-6)
    np.testing.assert_allclose(to_last, np.einsum("nd,nd->n", vec[last[cr]], vec[ci]),
                               atol=1e-6)
    none = C.text_similarities(SimpleNamespace(text_vec=None, size=size), rr, ri, last, cr,
                               ci, n)
    assert not none[0].any() and not none[1].any()
