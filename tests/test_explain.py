"""engine.explore.explain: the Playground's numbers against values computed by hand from the embeddings."""

from __future__ import annotations

import pytest
import torch

from engine.data.shapes.world import ShapesWorld
from engine.explore.explain import explain
from engine.model.encoding import embed_images, embed_texts
from engine.model.losses import SemClipLoss


@pytest.mark.parametrize("n", [1, 2, 3])
def test_similarities_and_projections_match_a_hand_computation(tiny_models, n):
    loaded = tiny_models[0]
    item = ShapesWorld(seed=0).item("test", 0)
    paraphrases, negations = [item["paraphrase"]], [item["negation"], "no shapes at all"]
    V = SemClipLoss(loaded.embed_dim, n_projections=n, projection_seed=3).projection.detach()

    out = explain(loaded, item["caption"], paraphrases, negations, image=item["image"], projection=V)

    texts = [item["caption"]] + paraphrases + negations
    t = embed_texts(loaded.model, loaded.tokenizer, texts)
    img = embed_images(loaded.model, loaded.preprocess(item["image"]).unsqueeze(0))[0]
    assert out.texts == texts
    assert out.roles == ["caption", "paraphrase", "negation", "negation"]
    assert torch.allclose(out.image_similarity, torch.stack([(row * img).sum() for row in t]), atol=1e-6)
    expected = torch.stack([torch.stack([(row * v).sum() for v in V]) for row in t])
    assert out.projected.shape == (4, n)
    assert torch.allclose(out.projected, expected, atol=1e-6)
    assert torch.allclose(out.projected_unit.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert out.text_similarity[0] == pytest.approx(1.0, abs=1e-5)


def test_without_an_image_there_are_no_image_similarities(tiny_models):
    out = explain(tiny_models[0], "a red circle", negations=["no red circle"])
    assert out.image_similarity is None
    assert out.projected.shape == (2, 2)  # the seeded default V has n = 2


def test_an_empty_caption_is_refused(tiny_models):
    with pytest.raises(ValueError, match="empty"):
        explain(tiny_models[0], "   ")
