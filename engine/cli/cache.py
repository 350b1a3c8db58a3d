"""``semclip cache``: where the on-disk cache is and how big; ``--clear`` empties it."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from engine.paths import CACHE_ENTRIES, CACHE_ENV, cache_root


def add_cache_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``cache`` sub-command on a ``subparsers`` object of argparse."""
    p = subparsers.add_parser(
        "cache", help="show where the cache is and its size; --clear empties it",
        description=f"The cache holds image embeddings, caption generations and the app's demo "
                    f"models. It lives in the platform's user cache folder ($XDG_CACHE_HOME/"
                    f"semclip on Linux); set {CACHE_ENV} to move it.")
    p.add_argument("--clear", action="store_true",
                   help="delete what the project cached (other files in the folder are kept)")
    p.set_defaults(func=cmd_cache)
    return p


def tree_size(path: Path) -> int:
    """Bytes in a file, or in every file under a folder (links not followed)."""
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    return sum(os.lstat(os.path.join(folder, name)).st_size
               for folder, _, names in os.walk(path) for name in names)


def human_size(n_bytes: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def cmd_cache(args: argparse.Namespace) -> int:
    """Print the cache's location, what it holds and its size; with ``--clear`` delete it."""
    root = cache_root()
    source = f"from {CACHE_ENV}" if os.environ.get(CACHE_ENV) else "set SEMCLIP_CACHE to move it"
    print(f"cache: {root} ({source})")
    entries = [root / name for name in CACHE_ENTRIES if (root / name).exists()]
    if not entries:
        print("empty")
        return 0
    sizes = {entry: tree_size(entry) for entry in entries}
    for entry, size in sizes.items():
        print(f"  {entry.name:<24} {human_size(size)}")
    print(f"total: {human_size(sum(sizes.values()))}")
    if not getattr(args, "clear", False):
        return 0
    failed = []
    for entry in entries:
        try:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        except OSError as exc:
            failed.append(f"{entry}: {exc.strerror or exc}")
    if failed:
        print("error: could not delete " + "; ".join(failed), file=sys.stderr)
        return 1
    print(f"cleared {human_size(sum(sizes.values()))}")
    return 0
