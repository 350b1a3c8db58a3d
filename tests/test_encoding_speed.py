"""Length-bucketed exact text encoding: the plan, exactness, restored order and gradients."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from engine.model.encoding import encode_text, plan_buckets, token_lengths, used_length
from engine.model.loading import load_model

WORDS = "a the red blue large small circle square triangle star on left of and no not without".split()


def mixed_captions(n: int, seed: int = 0) -> list[str]:
    """Captions of 0 to 40 words (beyond the 32-token context), shuffled lengths."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 40))) for _ in range(n)]


def padded_cost(lengths: list[int], bounds: list[int], overhead: float) -> float:
    return sum(min(b for b in bounds if b >= n) for n in lengths) + overhead * len(bounds)


@pytest.fixture(scope="module")
def models():
    builtin, hf = load_model("semclip-tiny", seed=0), load_model("semclip-shapes-minilm", seed=0)
    for loaded in (builtin, hf):
        loaded.model.eval()  # no dropout: rows must be comparable across calls
    return {"builtin": builtin, "hf": hf}


def test_plan_is_optimal_and_splits_only_when_it_pays():
    rng = random.Random(0)
    for _ in range(30):
        lengths = [rng.randint(1, 12) for _ in range(rng.randint(1, 25))]
        overhead = rng.choice([0, 3, 20])
        for k in (1, 2, 3):
            plan = plan_buckets(lengths, k, overhead)
            assert plan == sorted(set(plan)) and plan[-1] == max(lengths) and len(plan) <= k
            values = sorted(set(lengths))  # brute force over every choice of inner bounds
            best = min(padded_cost(lengths, list(inner) + [values[-1]], overhead)
                       for r in range(k) for inner in itertools.combinations(values[:-1], r))
            assert padded_cost(lengths, plan, overhead) == best
    assert plan_buckets([7] * 50, 6) == [7]  # one length: one bucket
    assert plan_buckets([5] * 40 + [6], 6, overhead=96) == [6]  # saving 40 tokens < overhead
    assert plan_buckets([4] * 100 + [30] * 100, 6, overhead=96) == [4, 30]
    assert plan_buckets([], 4) == []


@pytest.mark.parametrize("kind", ["builtin", "hf"])
def test_bucketed_encoding_equals_open_clip_in_the_input_order(models, kind):
    loaded = models[kind]
    captions = mixed_captions(60) + ["", "a", " ".join(["star"] * 50)]
    tokens = loaded.tokenizer(captions)
    lengths = token_lengths(loaded.model, tokens)
    assert lengths is not None and len(set(lengths.tolist())) > 10  # many lengths
    assert used_length(loaded.model, tokens) == int(lengths.max())
    assert len(plan_buckets(lengths.tolist(), 6)) > 1  # really split into buckets
    with torch.no_grad():
        full = loaded.model.encode_text(tokens, normalize=True)
        for k in (1, 2, 6, None):
            torch.testing.assert_close(encode_text(loaded.model, tokens, max_buckets=k), full,
                                       atol=1e-5, rtol=0, msg=f"max_buckets={k}")
        raw = loaded.model.encode_text(tokens, normalize=False)
        torch.testing.assert_close(encode_text(loaded.model, tokens, normalize=False, max_buckets=6),
                                   raw, atol=1e-5, rtol=1e-5)
        perm = torch.randperm(len(captions), generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(encode_text(loaded.model, tokens[perm], max_buckets=6),
                                   full[perm], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["builtin", "hf"])
def test_gradients_through_buckets_equal_one_full_call(models, kind):
    model = models[kind].model
    tokens = models[kind].tokenizer(mixed_captions(24, seed=2))
    target = torch.randn(len(tokens), model.text_projection.shape[1] if kind == "builtin"
                         else model.text.proj.out_features, generator=torch.Generator().manual_seed(3))
    params = [p for p in model.text.parameters()] if kind == "hf" else \
        [model.token_embedding.weight, model.positional_embedding, model.text_projection,
         *model.transformer.parameters()]

    def grads(fn):
        model.zero_grad(set_to_none=True)
        (fn(tokens) * target).sum().backward()
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]

    reference = grads(lambda t: model.encode_text(t, normalize=True))
    bucketed = grads(lambda t: encode_text(model, t, max_buckets=6))
    model.zero_grad(set_to_none=True)
    assert any(g.abs().sum() > 0 for g in bucketed)
    for a, b in zip(bucketed, reference):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_pooling_without_a_safe_truncation_runs_the_full_context(models):
    model = models["builtin"].model
    tokens = models["builtin"].tokenizer(mixed_captions(8))
    model.text_pool_type = "last"
    try:
        assert token_lengths(model, tokens) is None
        assert used_length(model, tokens) == tokens.shape[1]
        with torch.no_grad():
            torch.testing.assert_close(encode_text(model, tokens, max_buckets=6),
                                       model.encode_text(tokens, normalize=True), atol=1e-5, rtol=0)
    finally:
        model.text_pool_type = "argmax"
