"""Where the project's shipped assets and per-user caches live."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
MODEL_CONFIG_DIR = ASSETS_DIR / "model_configs"


def cache_dir() -> Path:
    """Root of on-disk caches (embeddings, caption generations); override with SEMCLIP_CACHE."""
    root = Path(os.environ.get("SEMCLIP_CACHE", Path.home() / ".cache" / "semclip"))
    root.mkdir(parents=True, exist_ok=True)
    return root
