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
