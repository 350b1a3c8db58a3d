"""Object claims for the claim term of the SemCLIP loss: short sentences that affirm or deny an
object ("there is a horse in this photo", "no horse can be seen here"), and which images of a
batch each one is true of.

A triples file that knows what each photo shows (the ``objects`` column) says which claims hold:
"no horse" holds of every photo without a horse, "a dog" of every photo with a dog. Each step
draws a few objects, half of them shown by some photo of the batch (so affirmations hold of
someone) and the rest from the whole vocabulary (so most denials hold), each in one standalone
frame of :mod:`engine.data.photo_language`, as its denial and its affirmation. The draw is a
pure function of the seed and the step, so a resumed run draws what an uninterrupted one does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from engine.data.photo_language import STANDALONE_FRAMES, affirmation, denial

CLAIMED_OBJECTS_PER_STEP = 16  # 32 short sentences a step: a few per cent of a step's text work


@dataclass(frozen=True)
class ClaimBatch:
    """The claims of one step: ``texts`` (a denial, then the affirmation, of each drawn object)
    and ``truth[i, k]``, whether claim k holds of row i's image. Of each object's two claims
    exactly one holds, so every row ranks as many true claims as any other: the mean over
    DDP ranks of each rank's mean is the mean over the whole batch."""

    texts: list[str]
    truth: torch.Tensor


class ClaimSampler:
    """Draws each step's claims from ``vocabulary`` (every object the training set names).

    Args:
        vocabulary: object names (``with_article`` renders any English noun).
        per_step: objects drawn a step (each gives a denial and an affirmation).
        seed: the run's seed.
    """

    def __init__(self, vocabulary: Iterable[str], per_step: int = CLAIMED_OBJECTS_PER_STEP,
                 seed: int = 0):
        self.vocabulary = sorted(set(vocabulary))
        if not self.vocabulary:
            raise ValueError("no object vocabulary: the claim term needs a triples file whose "
                             "'objects' column names what the photos show")
        if per_step < 1:
            raise ValueError(f"per_step must be at least 1, got {per_step}")
        self.per_step, self.seed = min(per_step, len(self.vocabulary)), seed

    def objects_for_step(self, step: int, shown: Iterable[str]) -> list[tuple[str, int]]:
        """The step's (object, frame) pairs: up to half of them among the ``shown`` objects."""
        rng = random.Random(self.seed * 1_000_003 + step)
        shown_here = sorted(set(shown) & set(self.vocabulary))
        picked = rng.sample(shown_here, min(len(shown_here), self.per_step // 2))
        rest = [name for name in self.vocabulary if name not in picked]
        picked += rng.sample(rest, self.per_step - len(picked))
        return [(name, rng.randrange(len(STANDALONE_FRAMES))) for name in picked]

    def draw(self, step: int, batch_objects: Sequence[frozenset]) -> ClaimBatch:
        """Claims of ``step`` for a batch whose rows show ``batch_objects`` (one set per row,
        every rank's and micro-batch's rows in gathering order)."""
        drawn = self.objects_for_step(step, set().union(*batch_objects))
        texts = [text for name, frame in drawn
                 for text in (denial(name, frame), affirmation(name, frame))]
        truth = torch.tensor([[holds for name, _ in drawn
                               for holds in (name not in shown, name in shown)]
                              for shown in batch_objects], dtype=torch.bool)
        return ClaimBatch(texts, truth.reshape(len(batch_objects), len(texts)))
