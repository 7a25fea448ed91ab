"""Item text as vectors from a pretrained language model: WordLlama (`wordllama`, 256-d
token embeddings distilled from an LLM's, average-pooled), loaded from the weights its wheel
ships, never downloaded. Each item's title (and description, where the catalog has one) is
embedded once: vectors are cached by the hash of the text and the encoder's name, so a night
encodes only the items whose text is new or changed.

    encoder = TextEncoder()                     # about 0.2 s to load
    vectors = TextCache(cfg).vectors(texts)     # [n, 256] float32, unit length
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import sparse

from nightshelf import lake, storage
from nightshelf.config import Config

log = logging.getLogger(__name__)

CONFIG, DIM = "l2_supercat", 256


def item_text(title: str | None, description: str | None = None) -> str:
    """What is embedded for an item: its title, then its description when it has one."""
    return " ".join(t.strip() for t in (title, description) if t and t.strip())


def encoder_name(dim: int = DIM) -> str:
    """The encoder's name, which keys its cache: the package's version, config and size."""
    import wordllama

    return f"wordllama-{wordllama.__version__}-{CONFIG}-{dim}"


class TextEncoder:
    """WordLlama from the installed wheel alone (its weights and tokenizer sit inside the
    package): a missing file is an error, not a download."""

    def __init__(self, dim: int = DIM):
        import wordllama
        from wordllama import WordLlama

        self.name = encoder_name(dim)
        self.dim = dim
        self._model = WordLlama.load(config=CONFIG, dim=dim, disable_download=True,
                                     cache_dir=Path(wordllama.__file__).parent)

    def encode(self, texts: Sequence[str], batch_size: int = 512) -> np.ndarray:
        """[n, dim] float32 of unit length (an empty text: zeros)."""
        if not len(texts):
            return np.zeros((0, self.dim), np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):  # an empty text: 0 / 0
            out = np.asarray(self._model.embed(list(texts), norm=True, batch_size=batch_size),
                             np.float32).reshape(len(texts), self.dim)
        out[np.array([not t for t in texts])] = 0.0
        return out


def text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


class TextCache:
    """Vectors by text hash, in `<lake>/text/<encoder>.npz` (written atomically)."""

    def __init__(self, cfg: Config, encoder: TextEncoder | None = None):
        self.encoder = encoder or TextEncoder()
        self.path = lake.lake(cfg, "text", f"{self.encoder.name}.npz")

    def _load(self) -> dict[bytes, np.ndarray]:
        if not self.path.exists():
            return {}
        with self.path.open("rb") as fh, np.load(fh) as z:
            return dict(zip((bytes(k) for k in z["keys"]), z["vectors"]))

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """[n, dim] vectors of `texts`, encoding only the texts the cache has not seen."""
        known = self._load()
        keys = [text_hash(t) for t in texts]
        new = {k: t for k, t in zip(keys, texts) if k not in known}
        if new:
            encoded = self.encoder.encode(list(new.values()))
            known.update(zip(new, encoded))
            self._save(known)
        log.info("text: %d texts, %d newly encoded with %s", len(texts), len(new),
                 self.encoder.name)
        if not keys:
            return np.zeros((0, self.encoder.dim), np.float32)
        return np.stack([known[k] for k in keys])

    def _save(self, known: dict[bytes, np.ndarray]) -> None:
        keys = np.array([np.frombuffer(k, np.uint8) for k in known], np.uint8)
        buf = io.BytesIO()
        np.savez(buf, keys=keys, vectors=np.stack(list(known.values())))
        storage.write_bytes(self.path, buf.getvalue())


def nearest(vectors: np.ndarray, k: int, block: int = 1024):
    """Each row's `k` most similar other rows by cosine (rows of unit length; a zero row,
    an empty text, has no neighbours and is nobody's), as a sparse [n, n] matrix of
    similarities above zero. Blocks of `block` rows at a time: memory block x n."""
    n = len(vectors)
    k = min(k, n - 1)
    rows, cols, sims = [], [], []
    if k <= 0:
        return sparse.csr_matrix((n, n), dtype=np.float32)
    v = np.ascontiguousarray(vectors, np.float32)
    for start in range(0, n, block):
        s = v[start:start + block] @ v.T
        s[np.arange(len(s)), np.arange(start, start + len(s))] = -np.inf  # not itself
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        val = np.take_along_axis(s, top, axis=1)
        keep = val > 0
        rows.append(np.repeat(np.arange(start, start + len(s)), k)[keep.ravel()])
        cols.append(top[keep])
        sims.append(val[keep])
    return sparse.csr_matrix((np.concatenate(sims), (np.concatenate(rows),
                                                     np.concatenate(cols))), shape=(n, n))


@dataclass
class ItemText:
    """The night's item text over its vocabulary: unit vectors ([V, dim], zeros where an
    item has no title) and each item's `neighbours` nearest items by text."""
    encoder: str
    vectors: np.ndarray
    sim: sparse.csr_matrix

    def save(self, path: Path) -> None:
        coo = self.sim.tocoo()
        buf = io.BytesIO()
        np.savez(buf, encoder=np.array(self.encoder), vectors=self.vectors.astype(np.float16),
                 rows=coo.row.astype(np.int32), cols=coo.col.astype(np.int32),
                 sims=coo.data.astype(np.float32))
        storage.write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> "ItemText | None":
        if not path.exists():
            return None
        with path.open("rb") as fh, np.load(fh) as z:
            n = len(z["vectors"])
            sim = sparse.csr_matrix((z["sims"], (z["rows"], z["cols"])), shape=(n, n))
            return cls(str(z["encoder"]), z["vectors"].astype(np.float32), sim)


def item_text_of(cfg: Config, titles: Sequence[str]) -> ItemText:
    """Encode (through the cache) the titles laid out over a vocabulary, and their text
    neighbours (`text.neighbours`)."""
    cache = TextCache(cfg)
    texts = [item_text(t) for t in titles]
    vectors = cache.vectors(texts)
    sim = nearest(vectors, cfg.text.neighbours)
    log.info("text: %d items, %d text-neighbour pairs (%s)", len(texts), sim.nnz,
             cache.encoder.name)
    return ItemText(cache.encoder.name, vectors, sim)
