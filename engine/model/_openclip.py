"""Every touch of open_clip's internals, in one place.

The rest of the engine uses open_clip's public API (``create_model_and_transforms``,
``get_tokenizer``, ``add_model_config``, ``ClipLoss``, the zero-shot helpers); what reaches into
its modules' private names or its models' inner structure lives here, written against the major
version ``pyproject.toml`` pins. A new open_clip that moves them breaks this module and no other
(``tests/test_project.py`` keeps it that way).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from open_clip import factory as _factory
from open_clip.model import CLIP, CustomTextCLIP
from open_clip.transformer import text_global_pool

__all__ = ["CLIP", "CustomTextCLIP", "registered_configs", "get_model_config",
           "builtin_text_features", "has_timm_trunk", "timm_trunk", "timm_head",
           "save_config_for_hf"]


def registered_configs() -> dict[str, dict[str, Any]]:
    """open_clip's registry of model configs, by name (mutable: the project resolves its
    text-tower aliases in place after registering its configs)."""
    return _factory._MODEL_CONFIGS


def get_model_config(name: str) -> Optional[dict[str, Any]]:
    return _factory.get_model_config(name)


def builtin_text_features(model: CLIP, tokens: torch.Tensor, x: torch.Tensor,
                          length: int) -> torch.Tensor:
    """The rest of open_clip's built-in (causal) text tower after the token embedding ``x``,
    over the first ``length`` positions: exactly ``CLIP.encode_text`` on that prefix."""
    cast_dtype = model.transformer.get_cast_dtype()
    x = x.to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    mask = model.attn_mask[:length, :length] if model.attn_mask is not None else None
    x = model.transformer(x, attn_mask=mask)
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type,
                         eos_token_id=getattr(model, "text_eos_id", None))
    proj = model.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return x


def has_timm_trunk(model: torch.nn.Module) -> bool:
    """Whether ``model``'s image tower is open_clip's timm adapter (a trunk and a head)."""
    visual = getattr(model, "visual", None)
    return hasattr(visual, "trunk") and hasattr(visual, "head")


def timm_trunk(model: torch.nn.Module) -> torch.nn.Module:
    """The timm network inside open_clip's timm image tower (pooled features out)."""
    return model.visual.trunk


def timm_head(model: torch.nn.Module) -> torch.nn.Module:
    """The projection from the trunk's pooled features into the joint space."""
    return model.visual.head


def save_config_for_hf(*args: Any, **kwargs: Any) -> None:
    from open_clip.push_to_hf_hub import save_config_for_hf as save

    save(*args, **kwargs)
