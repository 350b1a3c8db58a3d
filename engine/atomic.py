"""Atomic file writes: a temp file in the target's folder, fsynced, then renamed into place, so
a reader (or a crash) never sees half a file where a good one used to be. Torch-free."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else by a
    quick set-and-restore."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Union[str, Path], writer: Callable[[BinaryIO], object]) -> None:
    """Call ``writer(file_obj)`` on a temp file in ``path``'s folder, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; honour the user's umask
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Union[str, Path], text: str) -> None:
    """Write text atomically (temp file + rename)."""
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))
