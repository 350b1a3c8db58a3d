"""The SemCLIP projection V of a model: the subspace the Playground plots p(t) = V t in."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from engine.model.loading import LoadedModel, parse_spec
from engine.model.losses import SemClipLoss


def _checkpoint_file(loaded: LoadedModel) -> Optional[Path]:
    try:
        arch, _ = parse_spec(loaded.spec)
    except Exception:  # noqa: BLE001 - a blend or odd spec simply has no checkpoint
        return None
    path = Path(arch)
    return path if path.suffix in (".pt", ".pth") and path.is_file() else None


def projection_for(loaded: LoadedModel, default_n: int = 2) -> torch.Tensor:
    """The projection V (n × d, orthonormal rows, float32, CPU) to plot p(t) = V t with.

    For a SemCLIP checkpoint: the V it was trained with (frozen or learned), rebuilt from the
    sidecar's ``loss_config`` and the checkpoint's ``loss_state``. For any other model: the
    seeded default V of ``SemClipLoss(embed_dim, n_projections=default_n)``, the one training
    would start from.
    """
    path = _checkpoint_file(loaded)
    loss_config = loaded.sidecar.get("loss_config") if loaded.sidecar else None
    if path is not None and loss_config:
        state = torch.load(path, map_location="cpu", weights_only=True).get("loss_state")
        if state:
            loss = SemClipLoss(**loss_config)
            loss.load_state_dict(state)
            return loss.projection.detach().float().clone()
    return SemClipLoss(loaded.embed_dim, n_projections=default_n).projection.detach().float().clone()
