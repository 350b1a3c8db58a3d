"""What the Compare panel computes, as plain functions (no Qt), so tests call them directly.

* :func:`rank_gallery` / :func:`rank_models` — one text encode per model + ``top_k`` over the
  gallery embeddings already in memory, each hit marked when its scene shows what the query
  negates.
* :func:`embed_side` and :func:`blend_job` — generators of :class:`Progress` for the panel's
  worker threads: a side's gallery embeddings (+ metrics), and the blended model θ(λ) with its
  embeddings, metrics and top-k.
* :func:`results_bars` — the grouped-bar data of an evaluation results file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generator, Mapping, NamedTuple, Optional, Sequence

from engine.data.galleries import Gallery
from engine.eval.run import metric_table
from engine.events import Progress, StopFlag
from engine.explore.denials import objects_match
from engine.explore.interpolate import interpolated_model
from engine.explore.minus_terms import denied_terms, query_embedding
from engine.explore.search import embed_gallery, gallery_metrics, top_k
from engine.model.embed_cache import ImageEmbeddings
from engine.model.loading import LoadedModel


class Hit(NamedTuple):
    """One retrieved image: its gallery index, cosine score, and whether it shows a negated term."""

    index: int
    score: float
    violates: bool


def violated_terms(gallery: Gallery, index: int, terms: Sequence[str]) -> list[str]:
    """The negated ``terms`` that gallery image ``index`` shows (none for unlabelled galleries)."""
    if not terms or not gallery.has_scene_labels:
        return []
    return [term for term in terms if objects_match(gallery.objects[index], term)]


def count_violations(hits: Sequence[Hit]) -> int:
    """How many hits show something the query negates."""
    return sum(1 for hit in hits if hit.violates)


def rank_gallery(loaded: LoadedModel, embeddings: ImageEmbeddings, gallery: Gallery,
                 query: str, k: int, subtract_minus_terms: bool = False) -> list[Hit]:
    """The top ``k`` readable gallery images for ``query`` under ``loaded``, best first.

    ``subtract_minus_terms``: score with rclip's "dog -cat" arithmetic
    (:func:`engine.explore.minus_terms.query_embedding`) instead of the whole query's embedding.
    """
    query = query.strip()
    if not query or len(gallery) == 0:
        return []
    text = query_embedding(loaded, query, subtract_minus_terms)
    indices, scores = top_k(text, embeddings.embeddings, k, valid=embeddings.ok)
    terms = denied_terms(query)  # "-cat" denies a cat as "no cat" does
    return [Hit(int(i), float(s), bool(violated_terms(gallery, int(i), terms)))
            for i, s in zip(indices.tolist(), scores.tolist())]


def rank_models(models: Mapping[str, LoadedModel], embeddings: Mapping[str, ImageEmbeddings],
                gallery: Gallery, query: str, k: int,
                subtract_minus_terms: bool = False) -> dict[str, list[Hit]]:
    """:func:`rank_gallery` for every key (side) that has both a model and embeddings."""
    return {key: rank_gallery(models[key], embeddings[key], gallery, query, k,
                              subtract_minus_terms)
            for key in models if key in embeddings}


def side_metrics(loaded: LoadedModel, gallery: Gallery,
                 embeddings: ImageEmbeddings) -> Optional[dict[str, float]]:
    """ONO accuracy and caption top-1 on a labelled shapes gallery; None for other galleries."""
    if not gallery.has_scene_labels or len(gallery.captions) != len(gallery):
        return None
    return gallery_metrics(loaded, gallery, embeddings.embeddings)


@dataclass
class SideEmbedding:
    """A model's gallery embeddings, kept in memory for the query path, and its gallery metrics."""

    embeddings: ImageEmbeddings
    metrics: Optional[dict[str, float]]



@dataclass(frozen=True)
class Origin:
    """What a column's results were computed from: a model (its identity) over one gallery."""

    model: str
    gallery: int


class Comparison:
    """What the Compare tab shows, each result kept with the model and gallery it came from.

    Jobs end late and out of order (a gallery embedding outlives a model switch; a query ranks
    the gallery of a moment ago). A column accepts only results whose :class:`Origin` is the one
    it shows now, so no column ever shows another model's or another gallery's results.
    """

    def __init__(self) -> None:
        self.gallery = 0  # generation of the gallery on screen
        self._origins: dict[str, Optional[Origin]] = {}
        self.embedded: dict[str, SideEmbedding] = {}
        self.hits: dict[str, list[Hit]] = {}

    def new_gallery(self) -> None:
        """Another gallery: everything computed over the old one is stale."""
        self.gallery += 1
        self._origins.clear()
        self.embedded.clear()
        self.hits.clear()

    def show(self, column: str, model: Optional[LoadedModel]) -> Optional[Origin]:
        """The column now shows ``model`` (None: nothing) over the current gallery; returns the
        origin its jobs carry. What the column held before is dropped."""
        origin = Origin(model.identity, self.gallery) if model is not None else None
        self._origins[column] = origin
        self.embedded.pop(column, None)
        self.hits[column] = []
        return origin

    def is_current(self, column: str, origin: Optional[Origin]) -> bool:
        return origin is not None and self._origins.get(column) == origin

    def accept_embedding(self, column: str, origin: Origin,
                         embedding: Optional[SideEmbedding]) -> bool:
        """Keep a finished gallery embedding if it is still the column's (a stopped job's None
        never is)."""
        if embedding is None or not self.is_current(column, origin):
            return False
        self.embedded[column] = embedding
        return True

    def accept_hits(self, column: str, origin: Origin, hits: list[Hit]) -> bool:
        """Keep a ranking if it came from what the column shows now."""
        if not self.is_current(column, origin):
            return False
        self.hits[column] = list(hits)
        return True

    def origin(self, column: str) -> Optional[Origin]:
        return self._origins.get(column)

def embed_side(loaded: LoadedModel, gallery: Gallery, stop: StopFlag
               ) -> Generator[Progress, None, Optional[SideEmbedding]]:
    """Embed the gallery (through the on-disk cache) and score it; None when stopped."""
    embeddings = yield from embed_gallery(loaded, gallery, stop=stop)
    if stop.is_set():
        return None  # partial embeddings would rank as if the rest were missing
    return SideEmbedding(embeddings, side_metrics(loaded, gallery, embeddings))


def blend_unavailable_reason(left: Optional[LoadedModel], right: Optional[LoadedModel]) -> str:
    """Why the two models cannot be blended, or "" when they can."""
    if left is None or right is None:
        return "Load a model on each side to blend them."
    if left.model_name != right.model_name:
        return (f"Blending needs one architecture on both sides: left is {left.model_name}, "
                f"right is {right.model_name}.")
    return ""


@dataclass
class BlendResult:
    """The blended model θ(λ) = (1 − λ)·θ_left + λ·θ_right, evaluated on the gallery."""

    lam: float
    query: str
    model: LoadedModel
    side: SideEmbedding
    hits: list[Hit]

    def as_dict(self) -> dict[str, Any]:
        """λ, the gallery metrics (None on unlabelled galleries), the query and its hits."""
        metrics = self.side.metrics or {}
        return {"lam": self.lam, "ono_accuracy": metrics.get("ono_accuracy"),
                "caption_top1": metrics.get("caption_top1"), "query": self.query,
                "hits": list(self.hits)}


def blend_job(left: LoadedModel, right: LoadedModel, lam: float, gallery: Gallery, query: str,
              k: int, stop: StopFlag, subtract_minus_terms: bool = False
              ) -> Generator[Progress, None, Optional[BlendResult]]:
    """Build θ(λ), embed the gallery with it (cached per λ), score it and rank ``query``."""
    yield Progress(done=0, total=len(gallery), phase="blend", message=f"blending at λ={lam:.2f}")
    model = interpolated_model(left, right, lam)
    side = yield from embed_side(model, gallery, stop)
    if side is None:
        return None
    return BlendResult(lam, query, model, side, rank_gallery(model, side.embeddings, gallery,
                                                             query, k, subtract_minus_terms))


# ---------------------------------------------------------------------------------------------
# evaluation results files
# ---------------------------------------------------------------------------------------------

@dataclass
class BarData:
    """Grouped bars: ``values[m][j]`` is model m's value of metric j (None: not measured)."""

    metrics: list[str]
    models: list[str]
    values: list[list[Optional[float]]]

    def bars(self, model: int, group_width: float = 0.8) -> tuple[list[float], list[float], float]:
        """x positions, heights and bar width of one model's bars (missing values left out)."""
        width = group_width / max(1, len(self.models))
        offset = -group_width / 2 + width * (model + 0.5)
        pairs = [(j + offset, v) for j, v in enumerate(self.values[model]) if v is not None]
        return [x for x, _ in pairs], [v for _, v in pairs], width


def results_bars(results: dict) -> BarData:
    """The bars of a results dict from ``load_results``; ValueError on a non-numeric metric."""
    table = metric_table(results)
    models = list(next(iter(table.values())).keys()) if table else []
    values: list[list[Optional[float]]] = [[] for _ in models]
    for metric, row in table.items():
        for m, label in enumerate(models):
            values[m].append(_number(row.get(label), metric, label))
    return BarData(list(table), models, values)


def _number(value: Any, metric: str, model: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"metric {metric!r} of {model} is not a number: {value!r}")
    return float(value) if math.isfinite(value) else None
