"""Text-to-image retrieval over a gallery, negation parsing, and the SemCLIP projection of a model.

Pure torch (no Qt): the app's Compare and Playground panels call these from worker threads.

* :func:`top_k`, :func:`similarities` — cosine scores of L2-normalised embeddings.
* :func:`negated_terms`, :func:`objects_match` — what a query denies ("a red circle and no blue
  square" -> ["blue square"], "only squares" -> ["something other than squares"]) and whether a
  shapes-world scene shows it, so the app can mark retrieved images that violate the query
  (defined in :mod:`engine.denials`).
* :func:`projection_for` — the n×d matrix V a model was trained with (or the seeded default).
* :class:`Gallery`, :func:`shapes_gallery`, :func:`folder_gallery`, :func:`embed_gallery` — a
  list of images with optional scene annotations, embedded through :mod:`engine.embed_cache`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Optional, Union

import torch

from .denials import negated_terms, objects_match  # noqa: F401 - the Compare tab's red-frame check
from .embed_cache import ImageEmbeddingCache, ImageEmbeddings, ImageSource, embed_image_sources
from .encoding import embed_texts
from .events import Progress, StopFlag
from .losses import SemClipLoss
from .models import LoadedModel, parse_spec
from .paths import IMAGE_SUFFIXES
from .shapes import ShapesWorld



# ---------------------------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# the SemCLIP projection of a model
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# galleries
# ---------------------------------------------------------------------------------------------

@dataclass
class Gallery:
    """Images to search, with what is known about them (shapes scenes know their objects)."""

    sources: list[ImageSource]
    names: list[str]
    captions: list[str] = field(default_factory=list)  # ground-truth captions, if known
    negations: list[str] = field(default_factory=list)  # false negated captions, if known
    objects: list[list[dict[str, Any]]] = field(default_factory=list)  # shapes scenes only
    description: str = ""

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def has_scene_labels(self) -> bool:
        return len(self.objects) == len(self.sources) > 0


def shapes_gallery(n: int = 200, split: str = "test", seed: int = 0,
                   image_size: int = 64) -> Gallery:
    """The first ``n`` scenes of a shapes-world split, with captions, negations and objects."""
    world = ShapesWorld(seed=seed, image_size=image_size)
    items = [world.item(split, i) for i in range(n)]
    return Gallery(sources=[it["image"] for it in items],
                   names=[f"{split} #{i}" for i in range(n)],
                   captions=[it["caption"] for it in items],
                   negations=[it["negation"] for it in items],
                   objects=[it["objects"] for it in items],
                   description=f"shapes world, {split} split, {n} scenes")


def folder_gallery(folder: Union[str, Path], limit: int = 100_000) -> Gallery:
    """Every image file under ``folder`` (recursively, sorted), up to ``limit``."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"gallery folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    files = files[:limit]
    return Gallery(sources=list(files), names=[str(p.relative_to(root)) for p in files],
                   description=f"{root} ({len(files)} images)")


def embed_gallery(loaded: LoadedModel, gallery: Gallery, stop: Optional[StopFlag] = None,
                  batch_size: int = 64, cache_root: Optional[Union[str, Path]] = None,
                  ) -> Generator[Progress, None, ImageEmbeddings]:
    """Embed a gallery with ``loaded``, reusing the on-disk cache of that model.

    A generator of :class:`Progress` that *returns* the :class:`ImageEmbeddings`
    (``result = yield from embed_gallery(...)``).
    """
    cache = ImageEmbeddingCache.for_model(loaded, root=cache_root)
    return (yield from embed_image_sources(loaded, gallery.sources, batch_size=batch_size,
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
