"""Where the project's shipped assets and per-user caches live."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import platformdirs

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
MODEL_CONFIG_DIR = ASSETS_DIR / "model_configs"

SIDECAR_SUFFIX = ".json"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")  # a model spec naming weights
# image files a folder gallery, a zero-shot class folder and the app's file dialogs take
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

APP_NAME = "semclip"
CACHE_ENV = "SEMCLIP_CACHE"
# What the project writes under the cache root (engine.model.embed_cache, engine.captions.cache and
# its SQLite side files, semclip_gui.demo): ``semclip cache --clear`` removes these and nothing
# else, so a cache root pointed at a shared folder never loses a file that is not ours.
CACHE_ENTRIES = ("embeddings", "captions.sqlite", "captions.sqlite-wal", "captions.sqlite-shm",
                 "captions.sqlite-journal", "demo_models")


def cache_root() -> Path:
    """The cache folder, not created: ``$SEMCLIP_CACHE`` if set, else the platform's user cache
    folder (``$XDG_CACHE_HOME/semclip``, by default ``~/.cache/semclip``, on Linux)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    """Root of on-disk caches (embeddings, caption generations), created on first use; see
    :func:`cache_root` for where it is."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


def sidecar_path(checkpoint: Union[str, Path]) -> Path:
    """The JSON sidecar next to a checkpoint (``run/ckpt.pt`` -> ``run/ckpt.json``)."""
    return Path(checkpoint).with_suffix(SIDECAR_SUFFIX)
