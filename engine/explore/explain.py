"""What one model makes of an image and a handful of captions: the Playground's numbers.

For a caption, its paraphrases and its negations, :func:`explain` returns each text's cosine
similarity to the image and its coordinates in the SemCLIP projection subspace, p(t) = V t
(the picture a teacher shows: paraphrases land next to their caption, negations are pushed
away). Pure torch; the app calls it from a worker thread, once per model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from PIL import Image

from engine.explore.projection import projection_for
from engine.model.encoding import embed_images, embed_texts
from engine.model.loading import LoadedModel

ROLES = ("caption", "paraphrase", "negation")


@dataclass
class Explanation:
    """Per text (in the order given): role, image similarity and projected coordinates."""

    texts: list[str]
    roles: list[str]  # "caption" | "paraphrase" | "negation"
    image_similarity: Optional[torch.Tensor]  # (T,) cosine to the image; None without an image
    projected: torch.Tensor  # (T, n) = V t for L2-normalised t
    projected_unit: torch.Tensor  # (T, n) p(t) / |p(t)|: the directions the SemCLIP loss compares
    text_similarity: torch.Tensor  # (T,) cosine of each text to the caption (row 0) in full space

    @property
    def n_projections(self) -> int:
        return int(self.projected.shape[1])


def explain(loaded: LoadedModel, caption: str, paraphrases: Sequence[str] = (),
            negations: Sequence[str] = (), image: Optional[Image.Image] = None,
            projection: Optional[torch.Tensor] = None) -> Explanation:
    """Similarities and projections of ``caption`` + ``paraphrases`` + ``negations`` under a model.

    ``projection`` (n × d) defaults to the model's own V (:func:`engine.explore.projection.projection_for`:
    the trained one for a SemCLIP checkpoint, the seeded default otherwise).
    """
    if not caption.strip():
        raise ValueError("the caption is empty")
    texts = [caption] + [p for p in paraphrases] + [n for n in negations]
    roles = ["caption"] + ["paraphrase"] * len(paraphrases) + ["negation"] * len(negations)
    text_emb = embed_texts(loaded.model, loaded.tokenizer, texts)
    V = projection if projection is not None else projection_for(loaded)
    projected = text_emb @ V.T.to(text_emb.dtype)
    unit = projected / projected.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    similarity = None
    if image is not None:
        pixels = loaded.preprocess(image.convert("RGB")).unsqueeze(0)
        image_emb = embed_images(loaded.model, pixels)[0]
        similarity = text_emb @ image_emb
    return Explanation(texts=texts, roles=roles, image_similarity=similarity, projected=projected,
                       projected_unit=unit, text_similarity=text_emb @ text_emb[0])
