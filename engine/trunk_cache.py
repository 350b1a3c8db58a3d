"""Pooled features of a locked timm image trunk, computed once per image and kept on disk.

A photo model (``semclip-photo-minilm``) trains its image *head* over a locked pretrained
trunk. The trunk is the slow part (about 11 images/s on a laptop CPU) and its output never
changes while it is locked, so its pooled features (1280 numbers for EfficientNet-Lite0) are
computed once per image with :mod:`engine.embed_cache`'s on-disk, checksummed shard store and
reused by every run and every model over the same trunk: the CLIP baseline and SemCLIP of a
recipe, later epochs, evaluation. Only the head runs per step.

The cache is keyed by a hash of the trunk's weights (not the whole model's), so a trained
checkpoint whose trunk stayed locked finds the features its base computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F

from .embed_cache import (ImageEmbeddingCache, ImageEmbeddings, describe_preprocess,
                          embed_image_sources)
from .events import Progress, StopFlag


class TrunkEncoder(torch.nn.Module):
    """A trunk seen through the ``encode_image`` interface the embedding cache calls."""

    def __init__(self, trunk: torch.nn.Module):
        super().__init__()
        self.trunk = trunk

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        # The head's input, so never normalised: the head was trained on the raw pooled features.
        return self.trunk(images)


@dataclass
class TrunkView:
    """What :func:`engine.embed_cache.embed_image_sources` needs of a model, for a trunk."""

    model: TrunkEncoder
    preprocess: Callable
    identity: str


def has_trunk(model: torch.nn.Module) -> bool:
    """Whether ``model``'s image tower is open_clip's timm adapter (a trunk and a head)."""
    visual = getattr(model, "visual", None)
    return hasattr(visual, "trunk") and hasattr(visual, "head")


def trunk_locked(model: torch.nn.Module) -> bool:
    """A timm image trunk none of whose parameters train."""
    return has_trunk(model) and not any(p.requires_grad for p in model.visual.trunk.parameters())


def trunk_view(loaded) -> TrunkView:
    """The trunk of a :class:`engine.models.LoadedModel`, keyed by its own weights."""
    from .models import state_digest
    trunk = loaded.model.visual.trunk
    name = getattr(trunk, "default_cfg", {}).get("architecture", type(trunk).__name__)
    return TrunkView(TrunkEncoder(trunk), loaded.preprocess,
                     f"trunk:{name}@{state_digest(trunk)}")


def trunk_features(loaded, images: Sequence[Path], batch_size: int = 64,
                   stop: Optional[StopFlag] = None, workers: int = 2,
                   cache_root: Optional[Path] = None) -> Iterator[Progress]:
    """Pooled trunk features of image files, from the disk cache where it has them.

    A generator of :class:`Progress` that *returns* an :class:`ImageEmbeddings` whose rows
    are the raw (unnormalised) features, in the order of ``images``; a path listed several
    times (one photo, five captions) is read and encoded once.
    """
    unique = list(dict.fromkeys(Path(p) for p in images))
    view = trunk_view(loaded)
    cache = ImageEmbeddingCache(view.identity, describe_preprocess(view.preprocess), cache_root)
    found = yield from embed_image_sources(view, unique, batch_size, cache, stop, workers,
                                           phase="trunk features")
    row = {path: i for i, path in enumerate(unique)}
    order = torch.tensor([row[Path(p)] for p in images], dtype=torch.long)
    return ImageEmbeddings(embeddings=found.embeddings[order], ok=found.ok[order],
                           failures=found.failures, cache_hits=found.cache_hits,
                           encoded=found.encoded)


def head_embeddings(model: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Unit image embeddings from pooled trunk features: what ``encode_image`` returns."""
    return F.normalize(model.visual.head(features), dim=-1)
