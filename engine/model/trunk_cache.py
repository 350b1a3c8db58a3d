"""Pooled features of a locked timm image trunk, computed once per image and kept on disk.

A photo model (``semclip-photo-minilm``) trains its image *head* over a locked pretrained
trunk. The trunk is the slow part (about 11 images/s on a laptop CPU) and its output never
changes while it is locked, so its pooled features (1280 numbers for EfficientNet-Lite0) are
computed once per image with :mod:`engine.model.embed_cache`'s on-disk, checksummed shard store and
reused by every run and every model over the same trunk: the CLIP baseline and SemCLIP of a
recipe, later epochs, evaluation. Only the head runs per step.

The cache is keyed by a hash of the trunk's weights (not the whole model's), so a trained
checkpoint whose trunk stayed locked finds the features its base computed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from engine.events import Progress, StopFlag
from engine.model._openclip import has_timm_trunk, timm_head, timm_trunk
from engine.model.embed_cache import (ImageEmbeddingCache, ImageSource, describe_preprocess,
                                      embed_image_sources)


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
    """What :func:`engine.model.embed_cache.embed_image_sources` needs of a model, for a trunk."""

    model: TrunkEncoder
    preprocess: Callable
    identity: str


def trunk_locked(model: torch.nn.Module) -> bool:
    """A timm image trunk none of whose parameters train."""
    return has_timm_trunk(model) and not any(p.requires_grad for p in timm_trunk(model).parameters())


def trunk_view(loaded) -> TrunkView:
    """The trunk of a :class:`engine.model.loading.LoadedModel`, keyed by its own weights."""
    from engine.model.loading import state_digest
    trunk = timm_trunk(loaded.model)
    name = getattr(trunk, "default_cfg", {}).get("architecture", type(trunk).__name__)
    return TrunkView(TrunkEncoder(trunk), loaded.preprocess,
                     f"trunk:{name}@{state_digest(trunk)}")


def trunk_cache_for(loaded, root: Optional[Path] = None) -> ImageEmbeddingCache:
    """The on-disk cache of the trunk features of ``loaded``'s trunk and preprocessing."""
    view = trunk_view(loaded)
    return ImageEmbeddingCache(view.identity, describe_preprocess(view.preprocess), root)


def embed_via_trunk(loaded, sources: Sequence[ImageSource], batch_size: int = 64,
                    cache: Optional[ImageEmbeddingCache] = None,
                    stop: Optional[StopFlag] = None, workers: int = 2) -> Iterator[Progress]:
    """Unit image embeddings of a timm-tower model: the trunk's (cached) features through the
    model's own head. Same generator contract as :func:`engine.model.embed_cache.embed_image_sources`
    (returns :class:`ImageEmbeddings`); rows of failed images stay zero."""
    found = yield from embed_image_sources(trunk_view(loaded), sources, batch_size, cache, stop,
                                           workers, phase="images")
    if not bool(found.ok.any()):  # nothing readable: no trunk width to run the head on
        return replace(found, embeddings=torch.zeros(len(sources), loaded.embed_dim))
    device = next(loaded.model.parameters()).device
    was_training = loaded.model.training
    loaded.model.eval()
    with torch.no_grad():
        rows = [head_embeddings(loaded.model, chunk.to(device)).float().cpu()
                for chunk in found.embeddings.split(1024)]
    loaded.model.train(was_training)
    embeddings = torch.cat(rows) if rows else torch.zeros(0, loaded.embed_dim)
    embeddings[~found.ok] = 0
    return replace(found, embeddings=embeddings)


def trunk_features(loaded, images: Sequence[ImageSource], batch_size: int = 64,
                   stop: Optional[StopFlag] = None, workers: int = 2,
                   cache_root: Optional[Path] = None) -> Iterator[Progress]:
    """Pooled trunk features of image files or drawn pictures, from the disk cache where it
    has them (pictures are keyed by their pixels, so drawn shapes scenes are cached too).

    A generator of :class:`Progress` that *returns* an :class:`ImageEmbeddings` whose rows
    are the raw (unnormalised) features, in the order of ``images``; a path listed several
    times (one photo, five captions) is read and encoded once (``failures`` index the
    distinct paths).
    """
    cache = trunk_cache_for(loaded, cache_root)
    if len(images) and isinstance(images[0], Image.Image):
        return (yield from embed_image_sources(trunk_view(loaded), images, batch_size, cache,
                                               stop, workers, phase="trunk features"))
    unique = list(dict.fromkeys(Path(p) for p in images))
    found = yield from embed_image_sources(trunk_view(loaded), unique, batch_size, cache, stop,
                                           workers, phase="trunk features")
    row = {path: i for i, path in enumerate(unique)}
    order = torch.tensor([row[Path(p)] for p in images], dtype=torch.long)
    return replace(found, embeddings=found.embeddings[order], ok=found.ok[order])


def head_embeddings(model: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Unit image embeddings from pooled trunk features: what ``encode_image`` returns."""
    return F.normalize(timm_head(model)(features), dim=-1)
