"""The PII hashing key: from the environment, or (demo shops only) a key file under home."""

from __future__ import annotations

import os
import secrets

from nightshelf.config import Config

PII_KEY_ENV = "NIGHTSHELF_PII_KEY"


def key_file(cfg: Config):
    return cfg.home / "secrets" / "pii_key"


def pii_key(cfg: Config) -> bytes | None:
    """$NIGHTSHELF_PII_KEY, else the demo key file under the home folder, else None."""
    if os.environ.get(PII_KEY_ENV):
        return os.environ[PII_KEY_ENV].encode()
    path = key_file(cfg)
    return path.read_bytes().strip() or None if path.exists() else None


def ensure_demo_key(cfg: Config) -> None:
    """Create a random key for a synthetic shop (never committed: the home folder is ignored)."""
    path = key_file(cfg)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
