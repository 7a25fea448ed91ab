"""Model tests: the loss goes down on a small table, scoring takes strings, the split is by time."""

import json
from datetime import datetime, timezone

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tests.training.shop import steps  # noqa: E402
from training import fit, inputs  # noqa: E402
from training.model import (  # noqa: E402
    build_sasrec,
    item_embeddings,
    item_vocabulary,
    scoring_model,
)


def _cyclic_sequences(n_users=500, n_items=30, length=12, seed=0):
    """Each user walks the items in order from a random start: next item = current + 1."""
    rng = np.random.default_rng(seed)
    items = [f"I{i}" for i in range(n_items)]
    walks = [[items[(int(s) + k) % n_items] for k in range(length)]
             for s in rng.integers(n_items, size=n_users)]
    vocab = np.array([inputs.PAD, inputs.OOV] + items, dtype=object)
    seqs = steps([f"U{u}" for u in range(n_users)], walks, [["view"] * length] * n_users,
                 [list(range(1, length + 1))] * n_users, [[]] * n_users, vocab=vocab)
    return seqs, items, vocab


def test_loss_goes_down_and_the_pattern_is_learned():
    seqs, items, vocab = _cyclic_sequences()
    x, y, w = inputs.next_item_arrays(seqs, max_len=10, weights={"view": 1.0})
    assert x.shape == (500, 10) and (w[y <= 1] == 0).all()
    # the last 11 steps of a 12-step walk: inputs are steps 2..11, targets 3..12
    assert (y[:, :-1] == x[:, 1:]).all() and (w > 0).all()
    model = build_sasrec(len(vocab), 10, dim=32, blocks=1, heads=2, dropout=0.0)
    hist = fit.train(model, x, y, w, epochs=8, batch_size=64, learning_rate=0.01, seed=0)
    losses = hist["loss"]
    assert losses[-1] < 0.5 * losses[0]
    scorer = scoring_model(model, items)
    logits = np.asarray(scorer.predict_on_batch(np.array([[""] * 8 + ["I3", "I4"]])))
    assert [str(v) for v in item_vocabulary(scorer)][int(logits.argmax())] == "I5"


def test_short_histories_are_left_padded_and_weighted_by_event_type():
    vocab = np.array([inputs.PAD, inputs.OOV, "a", "b", "c"], dtype=object)
    types = [["view", "purchase", "view"], ["view"]]
    seqs = steps(["u1", "u2"], [["a", "b", "zz"], ["c"]], types, [[1, 2, 3], [1]], [[], []],
                 vocab=vocab)
    x, y, w = inputs.next_item_arrays(seqs, max_len=4, weights={"view": 1.0, "purchase": 5.0})
    assert x.tolist() == [[0, 0, 2, 3]] and y.tolist() == [[0, 0, 3, 1]]
    assert w.tolist() == [[0, 0, 5.0, 0]]  # the unknown item "zz" is never a target


def test_holdout_cuts_at_the_split_and_remembers_recent_purchases():
    vocab = np.array([inputs.PAD, inputs.OOV, "a", "b", "c", "z"], dtype=object)
    seqs = steps(["u1", "u2", "u3"], [["a", "b", "c"], ["a"], ["z"]],
                 [["purchase", "view", "view"], ["view"], ["view"]],
                 [[20, 21, 22], [20], [22]], [[], [], []], vocab=vocab)
    split = datetime(2026, 11, 22, tzinfo=timezone.utc)
    before, after = seqs.cut(split, exclusion_days=30)
    assert before.users.tolist() == ["u1", "u2"]  # u3 has no history before the split
    assert vocab[before.items[before.ptr[0]:before.ptr[1]]].tolist() == ["a", "b"]
    assert after.lengths.tolist() == [1, 0] and vocab[after.items].tolist() == ["c"]
    assert vocab[before.bought[before.bought_ptr[0]:before.bought_ptr[1]]].tolist() == ["a"]
    assert before.bought_ptr.tolist() == [0, 1, 1]


def test_two_row_loss_matches_a_hand_worked_value():
    """Two positions, vocabulary of three, embeddings the identity-like rows below."""
    import math

    import tensorflow as tf

    hidden = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    emb = tf.constant([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # logits: row 1 = [0, 1, 0], row 2 = [0, 0, 2]; targets 1 and 0; weights 1 and 3
    loss = fit.weighted_softmax_loss(hidden, emb, tf.constant([1, 0]), tf.constant([1.0, 3.0]))
    ce1 = -math.log(math.e / (2 + math.e))
    ce2 = -math.log(1 / (2 + math.e ** 2))
    assert float(loss) == pytest.approx((1 * ce1 + 3 * ce2) / 4, rel=1e-6)


def test_sampled_loss_with_every_item_as_negative_equals_the_full_loss():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    hidden = tf.constant(rng.normal(size=(4, 3)), tf.float32)
    emb = tf.constant(rng.normal(size=(5, 3)), tf.float32)
    targets, weights = tf.constant([1, 4, 2, 4]), tf.constant([1.0, 2.0, 1.0, 5.0])
    full = fit.weighted_softmax_loss(hidden, emb, targets, weights)
    # a constant log q shifts every logit alike; the target among the negatives is masked
    sampled = fit.sampled_softmax_loss(hidden, emb, targets, weights, tf.range(5),
                                       tf.fill([5], 0.7))
    assert float(sampled) == pytest.approx(float(full), rel=1e-5)


def test_negative_sampler_never_draws_padding_and_follows_popularity():
    y = np.array([[0, 2, 2, 2, 3], [0, 0, 2, 3, 4]])
    sampler = fit.NegativeSampler(y, vocab_size=6, count=2000, alpha=1.0, seed=0)
    draws = sampler.draw()
    assert set(draws) <= {2, 3, 4}
    assert (draws == 2).mean() > (draws == 4).mean()
    assert sampler.log_q[2] == pytest.approx(np.log(2000 * 4 / 7))


def test_warm_start_keeps_known_items_and_starts_new_ones_at_the_mean():
    from training.train import warm_start

    old_items = ["a", "b", "c"]
    champion = scoring_model(build_sasrec(5, 6, dim=8, blocks=1, heads=1, dropout=0.0),
                             old_items)
    old = np.asarray(item_embeddings(champion))
    vocab = np.array([inputs.PAD, inputs.OOV, "b", "c", "new"], dtype=object)
    model = build_sasrec(len(vocab), 6, dim=8, blocks=1, heads=1, dropout=0.0)
    assert warm_start(model, vocab, champion)
    emb = model.item_embedding.embeddings.numpy()
    np.testing.assert_allclose(emb[2], old[3])  # b was row 3 of ["", "[UNK]", a, b, c]
    np.testing.assert_allclose(emb[3], old[4])
    np.testing.assert_allclose(emb[4], old[2:].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(model.pos_embedding.embeddings.numpy(),
                               champion.get_layer("sasrec").pos_embedding.embeddings.numpy())
    other = build_sasrec(len(vocab), 6, dim=16, blocks=1, heads=1, dropout=0.0)
    assert not warm_start(other, vocab, champion)  # another architecture: left as it is


def test_item_attributes_are_fused_into_the_input_and_output_representations():
    """With an attribute table, an item's representation is its embedding plus the mean of
    its attributes' (padding ids ignored); the attribute embeddings learn with the rest, and
    an item that has none is represented by its own embedding alone."""
    seqs, items, vocab = _cyclic_sequences(n_users=200)
    table = np.zeros((len(vocab), 2), np.int32)
    table[2:, 0] = 1 + np.arange(len(items)) % 3          # 3 "brands"
    table[2::2, 1] = 4                                    # every other item: a category
    table[5] = 0                                          # one item with no attributes
    model = build_sasrec(len(vocab), 10, dim=16, blocks=1, heads=1, dropout=0.0,
                         item_attributes=table)
    emb = model.item_embedding.embeddings.numpy()
    attr = model.attribute_embedding.embeddings.numpy()
    got = np.asarray(model.item_table())
    np.testing.assert_allclose(got[2], emb[2] + (attr[table[2, 0]] + attr[4]) / 2, rtol=1e-5)
    np.testing.assert_allclose(got[3], emb[3] + attr[table[3, 0]], rtol=1e-5)
    np.testing.assert_allclose(got[5], emb[5], rtol=1e-6)
    x, y, w = inputs.next_item_arrays(seqs, max_len=10, weights={"view": 1.0})
    hist = fit.train(model, x, y, w, epochs=3, batch_size=64, learning_rate=0.01, seed=0)
    assert hist["loss"][-1] < hist["loss"][0]
    assert not np.allclose(model.attribute_embedding.embeddings.numpy(), attr)
    logits = np.asarray(model(x[:4], last_only=True))
    want = np.asarray(model.encode(x[:4]))[:, -1] @ np.asarray(model.item_table()).T
    np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-4)


def test_the_benchmark_reads_an_attribute_file_onto_its_vocabulary(tmp_path):
    from training.bench import read_attributes, read_sequences

    data = tmp_path / "shop.txt"
    data.write_text("1 10 11 12\n2 11 12 13\n")
    seqs, vocab = read_sequences(data)
    attrs = tmp_path / "attrs.json"
    attrs.write_text('{"10": [7, 9], "12": [9], "99": [1], "13": []}')
    table, used = read_attributes(attrs, vocab)
    assert table.shape == (len(vocab), 2)
    assert table[vocab.index("10")].tolist() == [1, 2]   # attribute ids re-indexed from 1
    assert table[vocab.index("12")].tolist() == [2, 0]
    assert table[vocab.index("11")].tolist() == [0, 0]
    assert used == {"file": str(attrs), "attribute_ids": 2, "items_with_attributes": 2,
                    "items": 4, "per_item_max": 2}
    attrs.write_text('{"10": 7}')
    with pytest.raises(ValueError, match="item '10': expected a list"):
        read_attributes(attrs, vocab)


def test_a_wider_feed_forward_survives_saving_and_a_plateau_lowers_the_learning_rate(tmp_path):
    """`ff_mult` widens each block's feed-forward and is part of the saved config; with
    `plateau_decay`, every validation that does not improve multiplies the step by it."""
    import keras

    seqs, items, vocab = _cyclic_sequences(n_users=100)
    model = build_sasrec(len(vocab), 10, dim=8, blocks=1, heads=1, dropout=0.0, ff_mult=4)
    assert model.blocks[0].ff1.kernel.shape == (8, 32)
    x, y, w = inputs.next_item_arrays(seqs, max_len=10, weights={"view": 1.0})
    seen = []
    scores = iter([0.5, 0.4, 0.3, 0.6])  # better, worse, worse, better
    fit.train(model, x, y, w, epochs=4, batch_size=64, learning_rate=0.01, seed=0,
              validate=lambda epoch: next(scores), patience=5, plateau_decay=0.5,
              on_epoch=lambda epoch, logs: seen.append(logs.get("learning_rate")))
    assert seen == [None, pytest.approx(0.005), pytest.approx(0.0025), None]
    path = tmp_path / "m.keras"
    scorer = scoring_model(model, items)
    scorer.save(path)
    again = keras.saving.load_model(path)
    assert again.get_layer("sasrec").ff_mult == 4
    assert again.get_layer("sasrec").blocks[0].ff1.kernel.shape == (8, 32)
    ids = np.array([[""] * 7 + ["I1", "I2", "I3"]])
    np.testing.assert_allclose(np.asarray(again.predict_on_batch(ids)),
                               np.asarray(scorer.predict_on_batch(ids)), rtol=1e-5, atol=1e-5)


def test_checkpoint_averaging_keeps_the_mean_weights_when_they_validate_better():
    seqs, items, vocab = _cyclic_sequences(n_users=100)
    model = build_sasrec(len(vocab), 10, dim=8, blocks=1, heads=1, dropout=0.0)
    x, y, w = inputs.next_item_arrays(seqs, max_len=10, weights={"view": 1.0})
    seen, scores = [], iter([0.1, 0.2, 0.9])  # epoch 1, epoch 2, the mean of the two

    def validate(epoch):
        seen.append(model.get_weights())
        return next(scores)

    logs = []
    fit.train(model, x, y, w, epochs=2, batch_size=64, learning_rate=0.01, seed=0,
              validate=validate, average_last=2, on_epoch=lambda e, lg: logs.append(lg))
    assert len(seen) == 3 and logs[1]["val_averaged"] == 0.9 and "val_averaged" not in logs[0]
    for w1, w2, mean, kept in zip(seen[0], seen[1], seen[2], model.get_weights()):
        np.testing.assert_allclose(mean, (w1 + w2) / 2, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(kept, mean)
    assert not np.allclose(seen[0][0], seen[1][0])  # it did train between the two


def test_per_seed_benchmark_results_combine_into_one_summary(tmp_path):
    from training.bench import combine

    def result(seed, ndcg, **config):
        run = {"seed": seed, "hr@10": 2 * ndcg, "ndcg@10": ndcg, "hr@20": 3 * ndcg,
               "ndcg@20": ndcg, "mrr": ndcg, "train_seconds": 100.0 * seed}
        path = tmp_path / f"seed{seed}.json"
        path.write_text(json.dumps({"dataset": "Beauty", "data": "b.txt", "model": "sasrec",
                                    "attributes": None, "config": {"dim": 64, **config},
                                    "runs": [run], "peak_rss_mb": 1000.0 + seed}))
        return path

    got = combine([result(1, 0.05), result(2, 0.07, plateau_decay=0.5)])
    assert [r["seed"] for r in got["runs"]] == [1, 2] and got["peak_rss_mb"] == 1002.0
    assert got["ndcg@10"] == pytest.approx(0.06) and got["std"]["ndcg@10"] == pytest.approx(0.01)
    with pytest.raises(SystemExit, match="config differ"):
        combine([result(1, 0.05), result(3, 0.05, dim=32)])
    with pytest.raises(SystemExit, match="appears twice"):
        combine([result(1, 0.05), result(1, 0.05)])


def test_the_benchmark_blends_item_knn_only_where_validation_says_so():
    from training.bench import full_ranking, knn_blended, leave_one_out

    # every user walks a chain of 4 items from a random start: co-occurrence knows the next
    rng = np.random.default_rng(0)
    n_items = 41
    seqs = [[1 + (s + k) % 40 for k in range(4)] for s in rng.integers(0, 40, size=400)]
    train, val, test, _ = leave_one_out(seqs)

    def noise(chunk):
        return np.random.default_rng(len(chunk)).normal(size=(len(chunk), n_items))

    scorer, record = knn_blended(noise, n_items, train, val, test, [1.0, 100.0], seed=0)
    blend = record["knn_blend"]
    assert blend["weights"] == [0.0, 1.0, 100.0] and blend["chosen"] > 0
    assert blend["val_ndcg@10"][0] < max(blend["val_ndcg@10"])
    assert full_ranking(scorer, *test)["ndcg@10"] > blend["sasrec_alone"]["ndcg@10"] + 0.2

    def oracle(chunk):  # already right: no weight on item-kNN beats it, and a tie keeps 0
        out = np.zeros((len(chunk), n_items))
        out[np.arange(len(chunk)), [1 + h[-1] % 40 for h in chunk]] = 1e6
        return out

    _, record = knn_blended(oracle, n_items, train, val, test, [0.5], seed=0)
    assert record["knn_blend"]["chosen"] == 0.0


def test_repeated_padding_fills_the_left_with_copies_and_takes_no_loss_on_the_gaps():
    from training.bench import training_arrays

    x, y, w = training_arrays([[5, 6, 7], [2, 3, 4, 5, 6, 7, 8]], max_len=6, repeat_pad=True)
    # ... 5 6 7 0 5 6 7 0 5 6 7 -> its last 7 steps, as input and target shifted by one
    seq = [5, 6, 7, 0, 5, 6, 7]
    assert x[0].tolist() == seq[:-1] and y[0].tolist() == seq[1:]
    assert w[0].tolist() == [float(t > 0) for t in seq[1:]]
    # long enough already: the plain rows
    assert x[1].tolist() == [2, 3, 4, 5, 6, 7] and y[1].tolist() == [3, 4, 5, 6, 7, 8]
    plain_x, _, plain_w = training_arrays([[5, 6, 7]], max_len=6)
    assert plain_x[0].tolist() == [0, 0, 0, 0, 5, 6] and plain_w[0].sum() == 2


def test_the_benchmark_ensemble_trains_each_member_and_scores_by_the_mean_of_their_logits(
        monkeypatch):
    from training import bench

    rng = np.random.default_rng(0)
    seqs = [[1 + (s + k) % 30 for k in range(5)] for s in rng.integers(0, 30, size=120)]
    cfg = bench.BenchConfig(max_len=6, dim=8, blocks=1, epochs=2, eval_every=1,
                            batch_size=32, members=2, max_minutes=5.0)
    logits = {}
    real = bench.train_member

    def recording(*args, **kw):  # each member's latest logits for each input
        scorer, seed = real(*args, **kw), args[5]

        def score(chunk):
            logits[seed, str(chunk)] = scorer(chunk)
            return logits[seed, str(chunk)]
        return score
    monkeypatch.setattr(bench, "train_member", recording)
    out = bench.run_once(seqs, 31, cfg, seed=13)
    assert [m["seed"] for m in out["members"]] == [13, 13001]
    _, _, (test_in, test_t), _ = bench.leave_one_out(seqs)
    first, second = logits[13, str(test_in)], logits[13001, str(test_in)]
    assert not np.allclose(first, second)
    assert out["ndcg@10"] == bench.full_ranking(lambda chunk: (first + second) / 2, test_in,
                                                test_t)["ndcg@10"]


def test_the_benchmark_cli_runs_another_file_of_the_format_with_and_without_attributes(
        tmp_path):
    """`python -m training.bench` on a file other than Beauty's, ids that are not integers
    (`user item item ...`), with and without an attribute file: no code change, the same
    JSON keys, the attributes recorded, and SASRec learning the file's pattern."""
    import json

    from training import bench

    rng = np.random.default_rng(3)
    lines = []
    for u, start in enumerate(rng.integers(0, 24, size=200)):
        seq = [f"sku-{(start + k) % 24:02d}" for k in range(int(rng.integers(4, 9)))]
        lines.append(" ".join([f"shopper{u}"] + seq))
    data = tmp_path / "shop.txt"
    data.write_text("\n".join(lines) + "\n")
    attrs = tmp_path / "shop_attrs.json"
    attrs.write_text(json.dumps({f"sku-{i:02d}": [f"brand{i % 4}", "cat"] for i in range(24)}
                                | {"sku-unknown": ["brand9"]}))
    common = ["--data", str(data), "--seeds", "13", "--max-len", "8", "--dim", "16",
              "--blocks", "1", "--epochs", "12", "--eval-every", "2", "--batch-size", "32",
              "--max-minutes", "5"]
    results = {}
    for name, extra in (("ids", []), ("attrs", ["--attrs", str(attrs)])):
        out = tmp_path / f"{name}.json"
        bench.main(common + extra + ["--out", str(out)])
        results[name] = json.loads(out.read_text())
    keys = {"dataset", "protocol", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr",
            "train_seconds", "peak_rss_mb", "runs", "baselines", "config", "attributes",
            "text_encoder", "pipeline_text_encoder"}
    for r in results.values():
        assert keys <= set(r) and r["dataset"] == "shop" and r["runs"][0]["users"] == 200
        # the next item follows from the last one: SASRec must beat popularity by far
        assert r["hr@10"] > 2 * r["baselines"]["popularity"]["hr@10"]
    assert results["ids"]["attributes"] is None
    assert results["attrs"]["attributes"] == {
        "file": str(attrs), "attribute_ids": 5, "items_with_attributes": 24, "items": 24,
        "per_item_max": 2}
    assert "item attributes fused" in results["attrs"]["model"]
