"""Item text vectors from the installed WordLlama wheel, cached by content hash."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("wordllama")


@pytest.fixture(scope="module")
def encoder():
    from training.text import TextEncoder

    return TextEncoder()


def test_the_encoder_loads_from_the_wheel_with_no_network():
    """Any download would go through a proxy that refuses: the load must not need one."""
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "HF_HUB_OFFLINE": "1"}
    code = ("from training.text import TextEncoder; e = TextEncoder(); "
            "print(e.name, e.encode(['cotton shirt']).shape)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0].startswith("wordllama-") and "(1, 256)" in out.stdout


def test_similar_titles_are_nearer_than_unrelated_ones(encoder):
    v = encoder.encode(["red cotton shirt", "blue cotton t-shirt", "stainless steel frying pan",
                        ""])
    assert v.shape == (4, 256) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    assert not v[3].any()  # an item with no text has no direction


def test_the_cache_encodes_each_text_once(cfg, encoder, monkeypatch):
    from training.text import TextCache, item_text

    cache = TextCache(cfg, encoder)
    texts = [item_text("Lumo Pure Serum", "a light serum"), item_text("Oak Desk Lamp"),
             item_text("Lumo Pure Serum", "a light serum")]
    assert texts[0] == "Lumo Pure Serum a light serum" and texts[1] == "Oak Desk Lamp"
    first = cache.vectors(texts)
    assert np.array_equal(first[0], first[2])
    calls = []
    monkeypatch.setattr(encoder, "encode", lambda t: calls.append(t) or np.zeros((len(t), 256)))
    again = TextCache(cfg, encoder).vectors(texts[:2] + ["Walnut Shelf"])
    assert calls == [["Walnut Shelf"]]  # the two known texts came from the cache file
    assert np.array_equal(again[:2], first[:2])


def test_text_neighbours_are_each_items_nearest_others():
    from training.text import nearest

    v = np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]], np.float32)
    sim = nearest(v, 2, block=2).toarray()
    assert sim[0, 1] == pytest.approx(0.8) and sim[0, 0] == 0  # never itself
    assert sim[2, 1] == pytest.approx(0.6) and (sim[2, [0, 3, 4]] == 0).all()
    assert not sim[3].any() and not sim[:, 3].any()  # no text: nobody's neighbour
    assert not sim[4].any()  # orthogonal to everything: no neighbour above zero
    assert ((sim > 0).sum(axis=1) <= 2).all()


def test_the_nights_item_text_is_saved_and_loaded_whole(cfg, encoder):
    from nightshelf import lake
    from training.text import ItemText, item_text_of

    text = item_text_of(cfg, ["", "", "Blue ceramic mug", "Red ceramic mug", "Trail shoe"])
    path = lake.context(cfg, "2026-11-22", "text.npz")
    text.save(path)
    again = ItemText.load(path)
    assert again.encoder == encoder.name and again.vectors.shape == (5, 256)
    assert np.allclose(again.vectors, text.vectors, atol=1e-3)  # kept as float16
    assert (again.sim != text.sim).nnz == 0
    assert again.sim[2].argmax() == 3  # the other mug, not the shoe


def _shop_with_a_new_item():
    """The toy shop plus `f`, in the catalog and available but touched by nobody, with a
    title like `a`'s and unlike every other."""
    import dataclasses

    from tests.training.shop import AT, CATALOG, VOCAB, WEIGHTS, steps
    from training import context

    vocab = np.array(list(VOCAB) + ["f"], dtype=object)
    catalog = dataclasses.replace(CATALOG, item_ids=CATALOG.item_ids + ["f"],
                                  available=CATALOG.available | {"f"})
    seqs = steps(["u1", "u2", "u3"], [["a", "b", "a"], ["a", "c"], ["d", "b"]],
                 [["view", "purchase", "view"], ["view", "purchase"], ["view", "view"]],
                 [[1, 2, 9], [3, 4], [5, 6]], [["b"], ["c"], []], vocab=vocab)
    ctx = context.build(seqs, AT, vocab, catalog, WEIGHTS, 7,
                        __import__("scipy").sparse.csr_matrix((len(vocab), len(vocab))))
    vec = np.zeros((len(vocab), 4), np.float32)
    vec[2] = vec[7] = [1, 0, 0, 0]            # a and f
    vec[3], vec[4], vec[5], vec[6] = np.eye(4)[1], np.eye(4)[2], np.eye(4)[3], np.eye(4)[3]
    return ctx, seqs, vocab, vec


def test_the_text_source_reaches_an_item_nobody_touched():
    from training import candidate_set as CS
    from training import candidates as C
    from training.text import nearest

    ctx, seqs, vocab, vec = _shop_with_a_new_item()
    col = {n: j for j, n in enumerate(CS.NUMERIC)}
    without = C.generate(ctx, seqs, None, {"repeat": 5, "text": 5})
    assert "f" not in {vocab[i] for i in without.items}
    assert not without.numeric[:, [col[c] for c in CS.NUMERIC if c.startswith("text_")]].any()

    ctx.text_vec, ctx.text_sim = vec, nearest(vec, 2)
    cands = C.generate(ctx, seqs, None, {"repeat": 5, "text": 5})
    row = {(int(r), vocab[i]): k for k, (r, i) in enumerate(zip(cands.rows, cands.items))}
    assert (0, "f") in row and (1, "f") in row and (2, "f") not in row  # u3 never saw a
    u1f = cands.numeric[row[(0, "f")]]
    assert u1f[col["item_untouched"]] == 1.0
    assert u1f[col["text_score"]] == pytest.approx(1.0) and u1f[col["text_log_rank"]] == 0.0
    assert u1f[col["text_sim_last"]] == pytest.approx(1.0)  # u1's last item is a
    # u2's recent items a and c, mean direction (1, 0, 1)/sqrt(2): cosine to f 0.707
    assert cands.numeric[row[(1, "f")], col["text_sim_recent"]] == pytest.approx(0.5 ** 0.5)
    assert cands.numeric[row[(1, "f")], col["text_sim_last"]] == 0.0  # last was c


def test_sasrec_places_items_training_never_showed_among_their_text_neighbours():
    pytest.importorskip("keras")
    from scipy import sparse

    from training.model import build_sasrec
    from training.train import place_by_text

    model = build_sasrec(7, 4, dim=8, blocks=1, heads=1, dropout=0.0)
    before = model.item_embedding.embeddings.numpy().copy()
    y = np.array([[2, 3, 4, 0], [3, 4, 5, 0]])      # 6 is never a target
    w = (y > 1).astype(np.float32)
    sim = sparse.csr_matrix(([0.9, 0.3, 0.5], ([6, 6, 5], [2, 3, 6])), shape=(7, 7))
    assert place_by_text(model, y, w, sim) == 1
    emb = model.item_embedding.embeddings.numpy()
    expected = (0.9 * before[2] + 0.3 * before[3]) / 1.2
    norm = (0.9 * np.linalg.norm(before[2]) + 0.3 * np.linalg.norm(before[3])) / 1.2
    assert np.allclose(emb[6], expected / np.linalg.norm(expected) * norm, atol=1e-5)
    assert np.array_equal(emb[:6], before[:6])  # trained items untouched
