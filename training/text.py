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
from pathlib import Path
from typing import Sequence

import numpy as np

from nightshelf import lake, storage
from nightshelf.config import Config

log = logging.getLogger(__name__)

CONFIG, DIM = "l2_supercat", 256


def item_text(title: str | None, description: str | None = None) -> str:
    """What is embedded for an item: its title, then its description when it has one."""
    return " ".join(t.strip() for t in (title, description) if t and t.strip())


class TextEncoder:
    """WordLlama from the installed wheel alone (its weights and tokenizer sit inside the
    package): a missing file is an error, not a download."""

    def __init__(self, dim: int = DIM):
        import wordllama
        from wordllama import WordLlama

        self.name = f"wordllama-{wordllama.__version__}-{CONFIG}-{dim}"
        self.dim = dim
        self._model = WordLlama.load(config=CONFIG, dim=dim, disable_download=True,
                                     cache_dir=Path(wordllama.__file__).parent)

    def encode(self, texts: Sequence[str], batch_size: int = 512) -> np.ndarray:
        """[n, dim] float32 of unit length (an empty text: zeros)."""
        if not len(texts):
            return np.zeros((0, self.dim), np.float32)
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
