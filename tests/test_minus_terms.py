"""rclip-style queries with explicit negative terms ("dog -cat"): parsing, the embedding
arithmetic by hand on tiny embeddings, and the ranking it gives."""

from __future__ import annotations

import math

import pytest
import torch

from engine.explore.minus_terms import (denied_terms, query_embedding, split_minus_terms,
                                        subtract_terms)
from engine.explore.search import top_k
from engine.model.encoding import embed_texts
from engine.model.loading import load_model


@pytest.mark.parametrize("query, split", [
    ("dog -cat", ("dog", ["cat"])),
    ("a red circle -blue square -Triangle", ("a red circle", ["blue square", "triangle"])),
    ("dog - cat", ("dog", ["cat"])),
    ("-cat", ("", ["cat"])),
    ("a five-pointed star", ("a five-pointed star", [])),  # a hyphen inside a word
    ("dog -", ("dog -", [])),  # a dash with nothing after it is text
    ("  ", ("", [])),
])
def test_split_minus_terms(query, split):
    assert split_minus_terms(query) == split


def test_denied_terms_joins_words_and_minus_terms():
    assert denied_terms("a red circle and no blue square -triangle") == ["blue square", "triangle"]
    assert denied_terms("a red circle -blue square") == ["blue square"]


def test_subtraction_by_hand():
    # unit(p) = (1, 0, 0); unit(n) = (0.6, 0.8, 0)
    # p - n = (0.4, -0.8, 0), |.| = sqrt(0.8) -> (0.4, -0.8, 0) / 0.894427...
    q = subtract_terms(torch.tensor([2.0, 0, 0]), torch.tensor([[3.0, 4.0, 0]]))
    norm = math.sqrt(0.4 ** 2 + 0.8 ** 2)
    assert q.tolist() == pytest.approx([0.4 / norm, -0.8 / norm, 0.0])
    # two terms and a weight: (1,0,0) - 0.5 * ((0,1,0) + (0,0,1)) = (1, -0.5, -0.5)
    q = subtract_terms(torch.tensor([1.0, 0, 0]), torch.tensor([[0, 1.0, 0], [0, 0, 5.0]]), 0.5)
    assert q.tolist() == pytest.approx([1 / math.sqrt(1.5), -0.5 / math.sqrt(1.5),
                                        -0.5 / math.sqrt(1.5)])
    # only -terms: move away from them
    assert subtract_terms(None, torch.tensor([[0, 2.0, 0]])).tolist() == [0.0, -1.0, 0.0]
    # "dog -dog": nothing left, every image scores 0 (a tie), nothing NaN
    q = subtract_terms(torch.tensor([1.0, 1.0, 0]), torch.tensor([[1.0, 1.0, 0]]))
    assert q.tolist() == [0.0, 0.0, 0.0]


def test_subtraction_reorders_a_tiny_gallery():
    """Images: a dog (1,0,0), a dog with a cat (0.8,0.6,0), a cat (0,1,0). The plain query
    "dog" ranks dog > dog+cat > cat; "dog -cat" pushes the image with the cat down below
    the plain dog and the cat image last: scores 1/√2, (0.8-0.6)/√2, -1/√2."""
    gallery = torch.tensor([[1.0, 0, 0], [0.8, 0.6, 0], [0, 1.0, 0]])
    dog, cat = torch.tensor([1.0, 0, 0]), torch.tensor([[0, 1.0, 0]])
    order, scores = top_k(subtract_terms(dog, cat), gallery, 3)
    assert order.tolist() == [0, 1, 2]
    assert scores.tolist() == pytest.approx([1 / math.sqrt(2), 0.2 / math.sqrt(2),
                                             -1 / math.sqrt(2)])
    with pytest.raises(ValueError, match="disagree on the width"):
        subtract_terms(torch.ones(4), cat)


def test_query_embedding_with_a_real_model():
    loaded = load_model("semclip-tiny", seed=0)
    plain = query_embedding(loaded, "a red circle -blue square")
    whole = embed_texts(loaded.model, loaded.tokenizer, ["a red circle -blue square"])[0]
    assert torch.equal(plain, whole)  # off: the text as typed, "-" and all
    both = embed_texts(loaded.model, loaded.tokenizer, ["a red circle", "blue square"])
    subtracted = query_embedding(loaded, "a red circle -blue square", subtract_minus_terms=True)
    assert torch.allclose(subtracted, subtract_terms(both[0], both[1:]), atol=1e-6)
    assert float(subtracted.norm()) == pytest.approx(1.0)
    # no -term: the same as plain
    assert torch.equal(query_embedding(loaded, "a red circle", subtract_minus_terms=True),
                       query_embedding(loaded, "a red circle"))
