"""The claim term's data: each step's object claims and which images of the batch they hold of."""

from __future__ import annotations

import pytest

from engine.data.claims import ClaimSampler
from engine.data.photo_language import affirmation, denial

VOCABULARY = ["bicycle", "dog", "horse", "person", "snow", "umbrella"]


def test_each_drawn_object_gives_its_denial_then_its_affirmation_with_the_truth_by_hand():
    sampler = ClaimSampler(VOCABULARY, per_step=4, seed=3)
    rows = [frozenset({"dog", "person"}), frozenset(), frozenset({"snow"})]
    batch = sampler.draw(7, rows)
    drawn = sampler.objects_for_step(7, {"dog", "person", "snow"})
    assert len(drawn) == 4 and len({name for name, _ in drawn}) == 4
    assert batch.texts == [text for name, frame in drawn
                           for text in (denial(name, frame), affirmation(name, frame))]
    assert batch.truth.shape == (3, 8)
    for k, (name, _) in enumerate(drawn):
        for i, shown in enumerate(rows):
            # "no <name>" holds of a photo without one, "a <name>" of a photo with one
            assert bool(batch.truth[i, 2 * k]) == (name not in shown)
            assert bool(batch.truth[i, 2 * k + 1]) == (name in shown)
    # at least half the draw is among what the batch shows: some affirmations hold
    for step in range(30):
        shown_drawn = [name for name, _ in sampler.objects_for_step(step, {"dog", "snow"})]
        assert {"dog", "snow"} <= set(shown_drawn)


def test_the_draw_is_a_pure_function_of_seed_and_step():
    rows = [frozenset({"dog"}), frozenset({"horse", "person"})]
    a, b = ClaimSampler(VOCABULARY, per_step=3, seed=1), ClaimSampler(VOCABULARY, per_step=3, seed=1)
    assert a.draw(5, rows).texts == b.draw(5, rows).texts
    steps = {tuple(a.draw(step, rows).texts) for step in range(20)}
    assert len(steps) > 10  # objects and frames vary from step to step
    assert ClaimSampler(VOCABULARY, per_step=99).per_step == len(VOCABULARY)


def test_no_vocabulary_is_a_clear_error():
    with pytest.raises(ValueError, match="objects"):
        ClaimSampler([])
    with pytest.raises(ValueError, match="per_step"):
        ClaimSampler(VOCABULARY, per_step=0)
