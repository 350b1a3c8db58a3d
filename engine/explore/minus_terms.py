"""Queries with explicit negative terms, scored the way rclip does: ``"dog -cat"``.

rclip (a command-line photo search) lets a query subtract concepts: the query's embedding is
the positive text's embedding minus the embedding of each ``-term``, renormalised, so images
that look like a cat lose score. It is *parsing* a negation, not understanding one: the model
never reads "no cat", the syntax tells the program what to subtract. The Compare tab offers it
as a third way of scoring, beside the plain embedding of the whole query (which a model that
understands negation, SemCLIP, gets right without the syntax).

Pure torch, no Qt: :func:`split_minus_terms` and :func:`subtract_terms` are plain functions on
strings and embeddings; :func:`query_embedding` encodes with a model.
"""

from __future__ import annotations

import re
from typing import Optional

import torch
import torch.nn.functional as F

from engine.explore.denials import negated_terms
from engine.model.encoding import embed_texts
from engine.model.loading import LoadedModel

# a "-" that starts a word ("-cat", "- cat"); the term runs to the next "-term" or the end.
# A hyphen inside a word ("five-pointed") starts nothing.
_MINUS = re.compile(r"(?:^|\s)-(?=\s*[^\s-])")


def split_minus_terms(query: str) -> tuple[str, list[str]]:
    """(the positive text, the ``-terms`` in order), each stripped; terms lower-cased.

    >>> split_minus_terms("a red circle -blue square -triangle")
    ('a red circle', ['blue square', 'triangle'])
    >>> split_minus_terms("a five-pointed star")
    ('a five-pointed star', [])
    """
    positive, *terms = _MINUS.split(query)
    return positive.strip(), [t.strip().lower() for t in terms if t.strip()]


def denied_terms(query: str) -> list[str]:
    """Everything a query denies: the ``-terms`` and what its positive text negates in words
    (:func:`engine.explore.denials.negated_terms`), so both spellings mark the same images."""
    positive, minus = split_minus_terms(query)
    return negated_terms(positive) + minus


def subtract_terms(positive: Optional[torch.Tensor], negatives: torch.Tensor,
                   weight: float = 1.0) -> torch.Tensor:
    """unit(unit(positive) − weight · Σ unit(negative_i)): rclip's query arithmetic.

    ``positive`` (d,) may be None (a query of ``-terms`` only: move away from them);
    ``negatives`` is (m, d). A result of all zeros (the positive text equals its one negative
    term) scores every image 0: a tie, which ranks nothing above anything.
    """
    if negatives.ndim != 2:
        raise ValueError(f"negatives must be (m, d), got {tuple(negatives.shape)}")
    query = -weight * F.normalize(negatives.float(), dim=-1).sum(0)
    if positive is not None:
        if positive.shape != query.shape:
            raise ValueError(f"positive {tuple(positive.shape)} and negatives "
                             f"{tuple(negatives.shape)} disagree on the width")
        query = query + F.normalize(positive.float(), dim=-1)
    return F.normalize(query, dim=-1)


def query_embedding(loaded: LoadedModel, query: str, subtract_minus_terms: bool = False,
                    weight: float = 1.0) -> torch.Tensor:
    """The (d,) unit embedding a gallery is ranked with.

    Plain (default): the model's embedding of the whole query, ``-terms`` included as text.
    ``subtract_minus_terms``: :func:`subtract_terms` of the positive text and each ``-term``
    (plain when the query has no ``-term``).
    """
    positive, minus = split_minus_terms(query)
    if not subtract_minus_terms or not minus:
        return embed_texts(loaded.model, loaded.tokenizer, [query])[0]
    emb = embed_texts(loaded.model, loaded.tokenizer, ([positive] if positive else []) + minus)
    return subtract_terms(emb[0] if positive else None, emb[-len(minus):], weight)
