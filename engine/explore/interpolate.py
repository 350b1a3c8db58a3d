"""Weight-space interpolation between two models of the same architecture.

    θ(λ) = (1 − λ)·θ_left + λ·θ_right

λ = 0 is the left model, λ = 1 the right one; the app's blend slider walks the line between a
CLIP baseline and its SemCLIP fine-tune (the "model soup" / WiSE-FT picture).
"""

from __future__ import annotations

import copy
from typing import Mapping

import torch

from engine.model.loading import LoadedModel


class InterpolationError(ValueError):
    """Two state dicts cannot be blended; the message names the first mismatch."""


def interpolate_state_dicts(sd_left: Mapping[str, torch.Tensor], sd_right: Mapping[str, torch.Tensor],
                            lam: float) -> dict[str, torch.Tensor]:
    """(1 − lam)·left + lam·right for every floating tensor; other tensors are taken from left.

    Both dicts must have identical keys and shapes, else :class:`InterpolationError` names the
    first key that differs. Integer buffers (e.g. token ids, counters) cannot be averaged; they
    are copied from the left dict.
    """
    if not 0.0 <= float(lam) <= 1.0:
        raise InterpolationError(f"lambda must lie in [0, 1], got {lam}")
    left_keys, right_keys = list(sd_left), set(sd_right)
    for key in left_keys:
        if key not in right_keys:
            raise InterpolationError(f"tensor {key!r} is in the left model but not the right one")
    for key in sd_right:
        if key not in sd_left:
            raise InterpolationError(f"tensor {key!r} is in the right model but not the left one")
    out: dict[str, torch.Tensor] = {}
    for key in left_keys:
        a, b = sd_left[key], sd_right[key]
        if a.shape != b.shape:
            raise InterpolationError(f"tensor {key!r} has shape {tuple(a.shape)} on the left and "
                                     f"{tuple(b.shape)} on the right")
        if a.is_floating_point() and b.is_floating_point():
            out[key] = torch.lerp(a.float(), b.to(a.device).float(), float(lam)).to(a.dtype)
        else:
            out[key] = a.clone()
    return out


def interpolated_model(left: LoadedModel, right: LoadedModel, lam: float) -> LoadedModel:
    """A new LoadedModel whose weights are θ(λ); transforms and tokenizer are the left model's.

    The two models must share an architecture. The result's ``identity`` names both parents and
    λ, so on-disk embedding caches stay distinct per blend.
    """
    if left.model_name != right.model_name:
        raise InterpolationError(f"cannot blend different architectures: {left.model_name!r} "
                                 f"and {right.model_name!r}")
    blended = interpolate_state_dicts(left.model.state_dict(), right.model.state_dict(), lam)
    model = copy.deepcopy(left.model)
    model.load_state_dict(blended)
    model.eval()
    return LoadedModel(model=model, preprocess=left.preprocess,
                       train_preprocess=left.train_preprocess, tokenizer=left.tokenizer,
                       model_name=left.model_name,
                       spec=f"blend({left.spec}, {right.spec}, {float(lam):.3f})",
                       identity=f"blend({left.identity},{right.identity},{float(lam):.4f})",
                       sidecar={})
