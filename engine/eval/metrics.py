"""Benchmark metrics as pure functions on embeddings (no I/O, no models).

Every function takes embeddings of shape (N, d) (or (N, C, d) for several options per row) and
compares them by cosine similarity; inputs need not be normalised. Comparisons run in float64 so
that equal embeddings give exactly equal scores.

Tie rules (chosen so that a collapsed model, whose embeddings are all equal, never scores above
chance by accident):

* Pairwise ">" metrics (original-over-negation, SugarCrepe++): a tie is a miss.
* Top-k retrieval: ranks are pessimistic. The right image ranks below every other image that
  scores at least as high, so a text is a hit when *fewer than k* other images score >= its
  right image. The rule is deterministic and independent of the gallery's order, and a gallery
  of equal embeddings scores 0 instead of 1.
* Argmax choices (NegBench multiple choice, zero-shot classification): a hit only when the right
  option scores strictly higher than every other option. Taking "the first maximum" instead would
  reward ties, and NegBench files put the right answer first in every row.

Non-finite embeddings (NaN or inf, from a diverged model) raise :class:`NonFiniteEmbeddingsError`:
NaN compares false both ways, so no tie rule can score it honestly.
"""

from __future__ import annotations

from typing import Callable, Hashable, Optional, Sequence

import torch
import torch.nn.functional as F

RETRIEVAL_CHUNK = 1024  # texts scored per block, so 40k x 40k retrieval never holds a full matrix


class NonFiniteEmbeddingsError(ValueError):
    """Embeddings hold NaN or inf (a diverged model): there is nothing honest to score."""


def check_finite(x: torch.Tensor, what: str = "embeddings") -> None:
    """Raise :class:`NonFiniteEmbeddingsError` if ``x`` holds NaN or inf; ``what`` names it."""
    bad = ~torch.isfinite(x.detach())
    if bool(bad.any()):
        rows = bad.reshape(x.shape[0], -1).any(1) if x.ndim > 1 else bad
        raise NonFiniteEmbeddingsError(f"{what}: {int(rows.sum())} of {x.shape[0]} rows hold NaN "
                                       f"or inf (did the model diverge?)")


def _unit(x: torch.Tensor) -> torch.Tensor:
    check_finite(x)
    return F.normalize(x.detach().to(torch.float64), dim=-1)


def _check_rows(name: str, *tensors: torch.Tensor) -> int:
    n = tensors[0].shape[0]
    for t in tensors[1:]:
        if t.shape[0] != n:
            raise ValueError(f"{name}: inputs disagree on the number of rows "
                             f"({[tuple(x.shape) for x in tensors]})")
    return n


def _mean(hits: torch.Tensor) -> float:
    return float(hits.double().mean()) if hits.numel() else float("nan")


def rowwise_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos(a[i], b[i]) for every row i, as float64 (N,)."""
    _check_rows("rowwise_cosine", a, b)
    return (_unit(a) * _unit(b)).sum(-1)


def original_over_negation_accuracy(image_emb: torch.Tensor, caption_emb: torch.Tensor,
                                    negation_emb: torch.Tensor) -> float:
    """Share of rows where cos(image, caption) > cos(image, negation) (CC-Neg; chance is 0.5).

    Ties count as misses. NaN for zero rows.
    """
    _check_rows("original_over_negation_accuracy", image_emb, caption_emb, negation_emb)
    return _mean(rowwise_cosine(image_emb, caption_emb) > rowwise_cosine(image_emb, negation_emb))


def text_to_image_ranks(text_emb: torch.Tensor, image_emb: torch.Tensor,
                        text_to_image: Optional[Sequence[int] | torch.Tensor] = None) -> torch.Tensor:
    """For each text, how many *other* images score at least as high as its right image (0 = top).

    Pessimistic: an image tied with the right one ranks above it, so ties never count as hits.
    ``text_to_image[i]`` is the index of text i's image (default i), so several texts may share
    one image. Scored in blocks of texts to bound memory on large galleries.
    """
    n_text = text_emb.shape[0]
    if text_to_image is None:
        if n_text > image_emb.shape[0]:
            raise ValueError(f"text_to_image_ranks: {n_text} texts but only {image_emb.shape[0]} "
                             f"images; pass text_to_image to say which image each text belongs to")
        target = torch.arange(n_text)
    else:
        target = torch.as_tensor(text_to_image, dtype=torch.long)
        if target.shape != (n_text,):
            raise ValueError(f"text_to_image has shape {tuple(target.shape)}, expected ({n_text},)")
        if n_text and (target.min() < 0 or target.max() >= image_emb.shape[0]):
            raise ValueError(f"text_to_image points outside the {image_emb.shape[0]} images")
    texts, images = _unit(text_emb), _unit(image_emb)
    ranks = torch.empty(n_text, dtype=torch.long)
    for start in range(0, n_text, RETRIEVAL_CHUNK):
        stop = min(start + RETRIEVAL_CHUNK, n_text)
        scores = texts[start:stop] @ images.T  # (chunk, n_images)
        right = scores.gather(1, target[start:stop, None])
        ranks[start:stop] = (scores >= right).sum(1) - 1  # minus the right image itself
    return ranks


def topk_text_to_image_accuracy(text_emb: torch.Tensor, image_emb: torch.Tensor, k: int,
                                text_to_image: Optional[Sequence[int] | torch.Tensor] = None) -> float:
    """Text-to-image recall@k: share of texts whose right image is among the top k.

    A hit when fewer than ``k`` other images score at least as high as the right one (ties are
    misses). ``text_to_image`` as in :func:`text_to_image_ranks`.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return _mean(text_to_image_ranks(text_emb, image_emb, text_to_image) < k)


def _best_own_ranks(query_emb: torch.Tensor, gallery_emb: torch.Tensor,
                    masks: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """For each query, how many competing gallery items score at least as high as its best own
    item (0 = an own item is on top; ties with competitors are misses). ``masks(start, stop)``
    gives the (stop - start, n_gallery) masks of the queries' own items and of their
    competitors; a query with no own item gets the gallery's size (a miss at every k)."""
    queries, gallery = _unit(query_emb), _unit(gallery_emb)
    ranks = torch.empty(queries.shape[0], dtype=torch.long)
    for start in range(0, queries.shape[0], RETRIEVAL_CHUNK):
        stop = min(start + RETRIEVAL_CHUNK, queries.shape[0])
        scores = queries[start:stop] @ gallery.T
        mine, competitors = masks(start, stop)
        best = scores.masked_fill(~mine, float("-inf")).max(1, keepdim=True).values
        rank = ((scores >= best) & competitors).sum(1)
        ranks[start:stop] = rank.masked_fill(~mine.any(1), gallery.shape[0])  # nothing of its own
    return ranks


def topk_image_to_text_accuracy(image_emb: torch.Tensor, text_emb: torch.Tensor, k: int,
                                text_to_image: Sequence[int] | torch.Tensor) -> float:
    """Image-to-text recall@k with several captions per image (Flickr8k, COCO): an image is a
    hit when fewer than ``k`` captions of *other* images score at least as high as its best
    own caption (ties are misses). ``text_to_image[j]`` is caption j's image."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    target = torch.as_tensor(text_to_image, dtype=torch.long)
    if target.shape != (text_emb.shape[0],):
        raise ValueError(f"text_to_image has shape {tuple(target.shape)}, expected "
                         f"({text_emb.shape[0]},)")
    def masks(a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        mine = target[None, :] == torch.arange(a, b)[:, None]
        return mine, ~mine

    return _mean(_best_own_ranks(image_emb, text_emb, masks) < k)


def topk_paraphrase_accuracy(text_emb: torch.Tensor, groups: Sequence[int] | torch.Tensor,
                             k: int) -> float:
    """Paraphrase retrieval (text to text) recall@k: a caption is a hit when fewer than ``k``
    captions of *other* groups (images) score at least as high as its most similar paraphrase
    (another caption of its group; itself excluded). Ties are misses; a caption alone in its
    group is a miss."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    group = torch.as_tensor(groups, dtype=torch.long)
    if group.shape != (text_emb.shape[0],):
        raise ValueError(f"groups has shape {tuple(group.shape)}, expected ({text_emb.shape[0]},)")
    index = torch.arange(group.shape[0])

    def masks(a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        same = group[None, :] == group[a:b, None]
        return same & (index[None, :] != index[a:b, None]), ~same  # itself: neither

    return _mean(_best_own_ranks(text_emb, text_emb, masks) < k)

def content_top1_accuracy(text_emb: torch.Tensor, image_emb: torch.Tensor,
                          image_content: Sequence[Hashable],
                          text_to_image: Optional[Sequence[int] | torch.Tensor] = None) -> float:
    """Share of texts whose top-ranked image shows what their own image shows.

    ``image_content[j]`` says what image j shows (images with equal content are equally right:
    a caption that fits several scenes is judged by content, not by which file it came from).
    Ties are misses unless every image tied at the top shows the right content. NaN for no texts.
    """
    n_text, n_image = text_emb.shape[0], image_emb.shape[0]
    if len(image_content) != n_image:
        raise ValueError(f"image_content has {len(image_content)} entries for {n_image} images")
    target = (torch.arange(n_text) if text_to_image is None
              else torch.as_tensor(text_to_image, dtype=torch.long))
    keys = {key: i for i, key in enumerate(dict.fromkeys(image_content))}
    content = torch.tensor([keys[key] for key in image_content], dtype=torch.long)
    texts, images = _unit(text_emb), _unit(image_emb)
    hits = torch.empty(n_text, dtype=torch.bool)
    for start in range(0, n_text, RETRIEVAL_CHUNK):
        stop = min(start + RETRIEVAL_CHUNK, n_text)
        scores = texts[start:stop] @ images.T
        top = scores == scores.max(dim=1, keepdim=True).values  # every image tied at the top
        right = content[None, :] == content[target[start:stop]][:, None]
        hits[start:stop] = (top & ~right).sum(1) == 0
    return _mean(hits)


def scaled_negation_score(accuracy: float) -> float:
    """max(0, (accuracy - 0.5) * 2): a pairwise accuracy rescaled so chance is 0, perfect is 1."""
    return max(0.0, (accuracy - 0.5) * 2.0)


def composite_score(caption_top1: float, paraphrase_top1: float, negation_accuracy: float) -> float:
    """The paper's combined score: (top1_caption + top1_paraphrase + scaled_negation) / 3.

    ``negation_accuracy`` is the raw original-over-negation accuracy; it is rescaled here with
    :func:`scaled_negation_score`.
    """
    return (caption_top1 + paraphrase_top1 + scaled_negation_score(negation_accuracy)) / 3.0


def sugarcrepe_pp_scores(image_emb: torch.Tensor, p1_emb: torch.Tensor, p2_emb: torch.Tensor,
                         negative_emb: torch.Tensor) -> dict[str, float]:
    """SugarCrepe++ accuracies (ties are misses).

    * ``itt_accuracy``: cos(img, P1) > cos(img, N) and cos(img, P2) > cos(img, N)
    * ``tot_accuracy``: cos(P1, P2) > cos(P1, N) and cos(P1, P2) > cos(P2, N)
    * ``img_p1_n_accuracy`` / ``img_p2_n_accuracy``: each image-text half of ITT alone.
    """
    _check_rows("sugarcrepe_pp_scores", image_emb, p1_emb, p2_emb, negative_emb)
    img_p1 = rowwise_cosine(image_emb, p1_emb)
    img_p2 = rowwise_cosine(image_emb, p2_emb)
    img_n = rowwise_cosine(image_emb, negative_emb)
    p1_p2 = rowwise_cosine(p1_emb, p2_emb)
    p1_n = rowwise_cosine(p1_emb, negative_emb)
    p2_n = rowwise_cosine(p2_emb, negative_emb)
    return {
        "itt_accuracy": _mean((img_p1 > img_n) & (img_p2 > img_n)),
        "tot_accuracy": _mean((p1_p2 > p1_n) & (p1_p2 > p2_n)),
        "img_p1_n_accuracy": _mean(img_p1 > img_n),
        "img_p2_n_accuracy": _mean(img_p2 > img_n),
    }


def strict_argmax_hits(scores: torch.Tensor, correct: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Bool (N,): row i's ``correct[i]`` column is strictly greater than every other column."""
    correct = torch.as_tensor(correct, dtype=torch.long)
    if scores.ndim != 2 or correct.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (N, C) and correct (N,); got {tuple(scores.shape)} "
                         f"and {tuple(correct.shape)}")
    if correct.numel() and (correct.min() < 0 or correct.max() >= scores.shape[1]):
        raise ValueError(f"correct index outside the {scores.shape[1]} options")
    right = scores.gather(1, correct[:, None])
    return (scores >= right).sum(1) == 1  # only the right option itself reaches its score


def multiple_choice_accuracy(image_emb: torch.Tensor, option_emb: torch.Tensor,
                             correct: Sequence[int] | torch.Tensor,
                             groups: Optional[Sequence[str]] = None) -> dict[str, float]:
    """NegBench multiple choice: pick the option most similar to the image.

    ``option_emb`` is (N, C, d): C caption options per image; ``correct`` the right option's
    index. A hit only when the right option is the unique maximum (ties are misses). Returns
    ``mcq_accuracy`` and, if ``groups`` (e.g. template types) are given,
    ``mcq_accuracy_<group>`` for each group present.
    """
    if option_emb.ndim != 3:
        raise ValueError(f"option_emb must be (N, C, d), got {tuple(option_emb.shape)}")
    _check_rows("multiple_choice_accuracy", image_emb, option_emb)
    scores = torch.einsum("nd,ncd->nc", _unit(image_emb), _unit(option_emb))
    hits = strict_argmax_hits(scores, correct)
    result = {"mcq_accuracy": _mean(hits)}
    if groups is not None:
        if len(groups) != len(hits):
            raise ValueError(f"{len(groups)} group labels for {len(hits)} rows")
        for group in sorted(set(groups)):
            mask = torch.tensor([g == group for g in groups])
            result[f"mcq_accuracy_{group}"] = _mean(hits[mask])
    return result


def zero_shot_accuracy(image_emb: torch.Tensor, class_emb: torch.Tensor,
                       labels: Sequence[int] | torch.Tensor) -> float:
    """Share of images whose own class prompt scores strictly highest among all class prompts."""
    scores = _unit(image_emb) @ _unit(class_emb).T
    return _mean(strict_argmax_hits(scores, labels))


def zero_shot_negation_scores(image_emb: torch.Tensor, affirmative_class_emb: torch.Tensor,
                              negated_class_emb: torch.Tensor,
                              labels: Sequence[int] | torch.Tensor) -> dict[str, float]:
    """Zero-shot classification with affirmative and negated prompts.

    ``affirmative_accuracy`` classifies with "this is a photo of a {class}" prompts;
    ``negated_accuracy`` runs the same classifier with "this is not a photo of a {class}"
    prompts (how often the best-matching *negated* prompt names the image's own class). A model
    that understands negation keeps the first high and drives the second down, so
    ``negation_gap = affirmative_accuracy - negated_accuracy`` grows.
    """
    affirmative = zero_shot_accuracy(image_emb, affirmative_class_emb, labels)
    negated = zero_shot_accuracy(image_emb, negated_class_emb, labels)
    return {"affirmative_accuracy": affirmative, "negated_accuracy": negated,
            "negation_gap": affirmative - negated}
