"""Retrieval, negation parsing and weight-space blending, against hand-computed expectations."""

from __future__ import annotations

import pytest
import torch

from engine.data.galleries import folder_gallery, shapes_gallery
from engine.explore.denials import negated_terms, objects_match
from engine.explore.interpolate import (InterpolationError, interpolate_state_dicts,
                                        interpolated_model)
from engine.explore.search import gallery_metrics, similarities, top_k
from engine.model.encoding import embed_texts


def test_top_k_ranks_by_cosine_and_respects_the_valid_mask():
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]])
    query = torch.tensor([0.8, 0.6])
    # cosines by hand: 0.8, 0.6, 0.48 + 0.48 = 0.96, -0.8
    idx, scores = top_k(query, gallery, 3)
    assert idx.tolist() == [2, 0, 1]
    assert torch.allclose(scores, torch.tensor([0.96, 0.8, 0.6]))
    idx, _ = top_k(query, gallery, 3, valid=torch.tensor([False, True, True, True]))
    assert idx.tolist() == [2, 1, 3]
    idx, _ = top_k(query, gallery, 10, valid=torch.tensor([True, False, False, True]))
    assert idx.tolist() == [0, 3]  # k clipped to the usable rows
    batch_idx, _ = top_k(torch.stack([query, -query]), gallery, 1)
    assert batch_idx.tolist() == [[2], [3]]


def test_similarities_refuses_mismatched_widths():
    assert similarities(torch.ones(3), torch.ones(2, 3)).shape == (1, 2)
    with pytest.raises(ValueError, match="widths differ"):
        similarities(torch.ones(3), torch.ones(2, 4))


@pytest.mark.parametrize("query, terms", [
    ("a red circle and no blue square", ["blue square"]),
    ("a star but not a triangle, without any green shape", ["triangle", "green shape"]),
    ("there is no large red circle", ["large red circle"]),
    ("a dog with a ball", []),
    ("not a single star or a cross", ["star", "cross"]),  # "or" continues the denial
    # the shapes world's denial frames
    ("a red circle and a blue square and no square", ["square"]),
    ("a red circle with no triangle anywhere", ["triangle"]),
    ("a red circle and nothing green", ["green"]),
    ("a red circle without any blue shape", ["blue shape"]),
])
def test_negated_terms(query, terms):
    assert negated_terms(query) == terms


SCENE = [{"shape": "circle", "colour": "red", "size": "large", "position": "left"},
         {"shape": "square", "colour": "blue", "size": "small", "position": "right"}]


@pytest.mark.parametrize("term, expected", [
    ("blue square", True), ("red square", False), ("square", True), ("box", True),
    ("big red disk", True), ("small red circle", False), ("red shape", True),
    ("green shape", False), ("square on the right", True), ("square on the left", False),
    ("dog", False),
])
def test_objects_match_uses_every_named_attribute(term, expected):
    assert objects_match(SCENE, term) is expected


def test_interpolation_is_the_weighted_mean_of_floats_and_copies_integers():
    left = {"w": torch.tensor([0.0, 2.0]), "ids": torch.tensor([1, 2])}
    right = {"w": torch.tensor([4.0, 6.0]), "ids": torch.tensor([7, 8])}
    mid = interpolate_state_dicts(left, right, 0.25)
    assert torch.equal(mid["w"], torch.tensor([1.0, 3.0]))
    assert torch.equal(mid["ids"], torch.tensor([1, 2]))
    with pytest.raises(InterpolationError, match="'w' has shape"):
        interpolate_state_dicts(left, {**right, "w": torch.zeros(3)}, 0.5)
    with pytest.raises(InterpolationError, match="not the right one"):
        interpolate_state_dicts(left, {"w": right["w"]}, 0.5)
    with pytest.raises(InterpolationError, match=r"\[0, 1\]"):
        interpolate_state_dicts(left, right, 1.5)


def test_blended_model_ends_are_the_two_models(tiny_models):
    left, right = tiny_models
    texts = ["a red circle", "no blue square"]
    for lam, ref in ((0.0, left), (1.0, right)):
        blend = interpolated_model(left, right, lam)
        assert torch.allclose(embed_texts(blend.model, blend.tokenizer, texts),
                              embed_texts(ref.model, ref.tokenizer, texts), atol=1e-6)
    half = interpolated_model(left, right, 0.5)
    assert half.identity != left.identity and "0.5000" in half.identity


def test_gallery_metrics_by_hand(tiny_models):
    loaded = tiny_models[0]
    gallery = shapes_gallery(n=6, split="test")
    image_emb = torch.nn.functional.normalize(torch.randn(6, loaded.embed_dim), dim=-1)
    got = gallery_metrics(loaded, gallery, image_emb)
    cap = embed_texts(loaded.model, loaded.tokenizer, gallery.captions)
    neg = embed_texts(loaded.model, loaded.tokenizer, gallery.negations)
    ono = sum(float(cap[i] @ image_emb[i]) > float(neg[i] @ image_emb[i]) for i in range(6)) / 6
    top1 = sum(int((cap[i] @ image_emb.T).argmax()) == i for i in range(6)) / 6
    assert got == {"ono_accuracy": pytest.approx(ono), "caption_top1": pytest.approx(top1)}


def test_folder_gallery_finds_images_recursively_and_refuses_an_empty_folder(tmp_path):
    gallery = shapes_gallery(n=3)
    (tmp_path / "sub").mkdir()
    for i, image in enumerate(gallery.sources):
        image.save(tmp_path / ("sub" if i else ".") / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    found = folder_gallery(tmp_path)
    assert found.names == ["img0.png", "sub/img1.png", "sub/img2.png"]
    assert not found.has_scene_labels
    with pytest.raises(ValueError, match="no images"):
        folder_gallery(_empty(tmp_path))
    with pytest.raises(FileNotFoundError):
        folder_gallery(tmp_path / "missing")


def _empty(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty


def test_a_comparison_keeps_only_results_from_what_each_column_shows_now(tiny_models):
    from engine.explore.compare import Comparison, Hit, SideEmbedding

    clip, semclip = tiny_models
    comparison = Comparison()
    embedding = SideEmbedding(embeddings=None, metrics=None)
    first = comparison.show("left", clip)
    assert comparison.accept_embedding("left", first, embedding)
    assert not comparison.accept_embedding("left", first, None)  # a stopped job's None
    second = comparison.show("left", semclip)  # the user switched models: the old job is late
    assert "left" not in comparison.embedded
    assert not comparison.accept_embedding("left", first, embedding)
    assert not comparison.accept_hits("left", first, [Hit(0, 0.9, False)])
    assert comparison.accept_hits("left", second, [Hit(3, 0.5, False)])
    assert comparison.hits["left"] == [Hit(3, 0.5, False)]
    comparison.new_gallery()  # another gallery: even the current model's results are stale
    assert not comparison.accept_hits("left", second, [Hit(1, 0.4, False)])
    assert comparison.hits == {} and comparison.embedded == {}
    assert comparison.show("right", None) is None
    assert not comparison.accept_hits("right", None, [])


def test_a_shapes_gallery_is_drawn_at_each_models_own_input_size(tmp_path):
    # The Compare tab and bench/free_queries.py embed one gallery with two models; a 224 px model
    # must see its scenes drawn at 224 px, as in training, not a 64 px drawing upscaled.
    from engine.events import run_to_end
    from engine.explore.search import embed_gallery
    from engine.model.loading import load_model

    gallery = shapes_gallery(n=4)
    small, large = load_model("semclip-tiny", seed=0), load_model("semclip-shapes-tiny", seed=0)
    assert (small.image_size, large.image_size, gallery.drawn_size) == (32, 64, 64)
    fed: dict[str, set] = {}
    for loaded in (small, large):
        seen, inner = fed.setdefault(loaded.spec, set()), loaded.preprocess
        loaded.preprocess = lambda image, seen=seen, inner=inner: (seen.add(image.size), inner(image))[1]
    got = {m.spec: run_to_end(embed_gallery(m, gallery, cache_root=tmp_path)).embeddings
           for m in (small, large)}
    assert fed == {"semclip-tiny": {(32, 32)}, "semclip-shapes-tiny": {(64, 64)}}
    native = run_to_end(embed_gallery(small, shapes_gallery(n=4, image_size=32),
                                      cache_root=tmp_path / "other")).embeddings
    assert torch.allclose(got["semclip-tiny"], native)
    assert gallery.sources_at(32) is gallery.sources_at(32)  # drawn once per size
    assert len(gallery.sources) == 4 and gallery.sources[0].size == (64, 64)  # thumbnails unchanged


def test_a_photo_gallery_is_never_redrawn(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30), "red").save(tmp_path / "a.png")
    gallery = folder_gallery(tmp_path)
    assert gallery.sources_at(224) is gallery.sources
