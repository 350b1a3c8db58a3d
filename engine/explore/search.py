"""Text-to-image search over a gallery: cosine scores, the top k, a gallery's embeddings and
its labelled metrics.

Pure torch (no Qt): the app's Compare and Playground panels call these from worker threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Generator, Optional, Union

import torch

from engine.data.galleries import Gallery
from engine.events import Progress, StopFlag
from engine.model.embed_cache import ImageEmbeddingCache, ImageEmbeddings, embed_image_sources
from engine.model.encoding import embed_texts
from engine.model.loading import LoadedModel


def similarities(text_emb: torch.Tensor, image_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarities (T, I) of L2-normalised text (T, d) and image (I, d) embeddings.

    1-D inputs are treated as a single row; the result keeps the 2-D shape.
    """
    text_emb = text_emb.unsqueeze(0) if text_emb.dim() == 1 else text_emb
    image_emb = image_emb.unsqueeze(0) if image_emb.dim() == 1 else image_emb
    if text_emb.shape[-1] != image_emb.shape[-1]:
        raise ValueError(f"embedding widths differ: text {text_emb.shape[-1]}, "
                         f"image {image_emb.shape[-1]}")
    return text_emb.float() @ image_emb.float().T


def top_k(query_emb: torch.Tensor, gallery_emb: torch.Tensor, k: int,
          valid: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and scores of the k gallery rows most similar to the query, best first.

    ``query_emb`` is (d,) -> results (k,), or (Q, d) -> results (Q, k). ``k`` is clipped to the
    gallery size. ``valid`` (N,) bool excludes rows (e.g. images that failed to load).
    """
    single = query_emb.dim() == 1
    scores = similarities(query_emb, gallery_emb)  # (Q, N)
    if valid is not None:
        scores = scores.masked_fill(~valid.to(torch.bool).unsqueeze(0), float("-inf"))
        k = min(k, int(valid.sum()))
    k = max(0, min(int(k), gallery_emb.shape[0]))
    values, indices = torch.topk(scores, k, dim=1)
    return (indices[0], values[0]) if single else (indices, values)


def embed_gallery(loaded: LoadedModel, gallery: Gallery, stop: Optional[StopFlag] = None,
                  batch_size: int = 64, cache_root: Optional[Union[str, Path]] = None,
                  ) -> Generator[Progress, None, ImageEmbeddings]:
    """Embed a gallery with ``loaded``, reusing the on-disk cache of that model.

    A generator of :class:`Progress` that *returns* the :class:`ImageEmbeddings`
    (``result = yield from embed_gallery(...)``).
    """
    cache = ImageEmbeddingCache.for_model(loaded, root=cache_root)
    return (yield from embed_image_sources(loaded, gallery.sources_at(loaded.image_size),
                                           batch_size=batch_size,
                                           cache=cache, stop=stop, phase="gallery"))


@torch.no_grad()
def gallery_metrics(loaded: LoadedModel, gallery: Gallery, image_emb: torch.Tensor) -> dict[str, float]:
    """Original-over-negation accuracy and caption->image top-1 on a labelled gallery.

    ``ono_accuracy``: share of images scored higher with their caption than with its negation.
    ``caption_top1``: share of captions whose own image ranks first among the gallery.
    """
    if not gallery.captions or len(gallery.captions) != len(gallery):
        raise ValueError("gallery_metrics needs a gallery with a caption per image")
    captions = embed_texts(loaded.model, loaded.tokenizer, gallery.captions)
    negations = embed_texts(loaded.model, loaded.tokenizer, gallery.negations)
    image_emb = image_emb.float()
    pos = (captions * image_emb).sum(-1)
    neg = (negations * image_emb).sum(-1)
    ranks = (captions @ image_emb.T).argmax(dim=1)
    target = torch.arange(len(gallery))
    return {"ono_accuracy": float((pos > neg).float().mean()),
            "caption_top1": float((ranks == target).float().mean())}
