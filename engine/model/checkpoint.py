"""Atomic checkpoints that OpenCLIP can load, with a JSON sidecar describing the run.

``ckpt.pt`` holds ``{"state_dict": <model weights>, ...training state}`` — the layout
``open_clip.load_checkpoint`` reads — and ``ckpt.json`` beside it holds the model config, the
loss config (its projection matrix is in ``loss_state``), the training config, step and metrics.
Both are written to a temporary file and renamed, so a crash never leaves a half-written file
where a good one used to be.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Union

import torch

from engine.atomic import atomic_write_bytes, atomic_write_text
from engine.paths import sidecar_path


def _atomic_second_name(src: Path, dst: Path) -> None:
    """Give the file ``src`` the name ``dst`` too, atomically: a hard link where the file system
    has them (no second copy of the bytes), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        with open(src, "rb") as source:
            atomic_write_bytes(dst, lambda f: shutil.copyfileobj(source, f))
        return
    try:
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def keep_checkpoint_as(src: Union[str, Path], dst: Union[str, Path]) -> Path:
    """Keep the checkpoint ``src`` (weights, then sidecar) under the name ``dst`` as well,
    without serialising it again. Checkpoints are only ever replaced by an atomic rename, so a
    later save to ``src`` leaves ``dst`` as it is."""
    src, dst = Path(src), Path(dst)
    _atomic_second_name(src, dst)
    _atomic_second_name(sidecar_path(src), sidecar_path(dst))
    return dst


def save_checkpoint(path: Union[str, Path], payload: dict[str, Any], sidecar: dict[str, Any]) -> Path:
    """Write ``payload`` (must contain ``state_dict``) and its sidecar, each atomically.

    The weights go first: a sidecar never describes weights that are not on disk yet.
    """
    if "state_dict" not in payload:
        raise ValueError("checkpoint payload needs a 'state_dict'")
    path = Path(path)
    atomic_write_bytes(path, lambda f: torch.save(payload, f))
    atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=2, default=str))
    return path


def load_training_state(path: Union[str, Path]) -> dict[str, Any]:
    """Everything a resumed run needs (weights, optimiser, scheduler, RNG, step)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint to resume from not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file
        raise ValueError(f"{path} is not a readable semclip checkpoint: {exc}") from exc
