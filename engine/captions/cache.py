"""A SQLite cache of generations, so an interrupted batch run resumes without repeating work.

Keyed by the backend's ``identity`` (backend, models, prompt or rules version) and the caption:
changing the model or a prompt never serves stale results. One table, one row per key, the
generations as JSON. Use it from one thread (the batch job's).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Optional, Union

from engine.paths import cache_dir

from .base import Generations

SCHEMA = """CREATE TABLE IF NOT EXISTS generations (
    identity TEXT NOT NULL, caption TEXT NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (identity, caption))"""


def default_cache_path() -> Path:
    return cache_dir() / "captions.sqlite"


class GenerationCache:
    """``get``/``put`` generations by (identity, caption); a context manager that closes."""

    def __init__(self, path: Optional[Union[str, Path]] = None):
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"caption cache {self.path} is not usable ({exc}); delete it or choose "
                             f"another cache file") from None

    def get(self, identity: str, caption: str) -> Optional[Generations]:
        row = self._db.execute("SELECT payload FROM generations WHERE identity = ? AND caption = ?",
                               (identity, caption)).fetchone()
        if row is None:
            return None
        try:
            return Generations.from_dict(json.loads(row[0]))
        except (ValueError, KeyError, TypeError):
            return None  # written by an incompatible version: generate again

    def put(self, identity: str, caption: str, generations: Generations) -> None:
        self._db.execute("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?)",
                         (identity, caption, json.dumps(generations.to_dict()), time.time()))
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "GenerationCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
