"""Every metric against values worked out by hand on tiny embeddings (ties included)."""

import math

import pytest
import torch

from engine.eval import metrics as M

E1, E2, E3 = torch.eye(3)


def rows(*vectors):
    return torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in vectors])


def test_ono_accuracy_counts_ties_as_misses_and_ignores_scale():
    img = rows([1, 0], [1, 0], [1, 0], [0, 1])
    cap = rows([1, 0], [0, 1], [1, 1], [0, 1])
    neg = rows([0, 1], [1, 0], [1, 1], [1, 0])
    # row 0: 1 > 0 hit; row 1: 0 > 1 miss; row 2: tie (same text) miss; row 3: 1 > 0 hit
    assert M.original_over_negation_accuracy(img, cap, neg) == 0.5
    assert M.original_over_negation_accuracy(img * 4, cap * 2, neg * 0.5) == 0.5  # exact scales


def test_ono_accuracy_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="rows"):
        M.original_over_negation_accuracy(torch.ones(3, 2), torch.ones(2, 2), torch.ones(3, 2))


def test_topk_retrieval_with_several_texts_per_image():
    images = rows([1, 0], [0, 1], [1, 1])
    texts = rows([1, 0], [1, 0], [1, 1], [1, 0])
    target = [0, 1, 2, 2]
    # scores of [1,0]: (1, 0, .707); of [1,1]: (.707, .707, 1)
    # ranks (other images scoring >= the right one): 0, 2, 0, 1
    assert M.text_to_image_ranks(texts, images, target).tolist() == [0, 2, 0, 1]
    assert M.topk_text_to_image_accuracy(texts, images, 1, target) == 0.5
    assert M.topk_text_to_image_accuracy(texts, images, 2, target) == 0.75
    assert M.topk_text_to_image_accuracy(texts, images, 3, target) == 1.0


def test_topk_ties_rank_the_right_image_below_every_image_it_ties_with():
    images = rows([1, 0], [1, 0], [0, 1], [1, 0])
    texts = rows([1, 0], [1, 0], [0, 1])
    # text 0 and 1 score images 0, 1 and 3 equally (1.0): the right one ranks behind the other
    # two tied ones (rank 2, in whatever gallery order); text 2 -> image 2 is alone at the top
    assert M.text_to_image_ranks(texts, images).tolist() == [2, 2, 0]
    assert M.topk_text_to_image_accuracy(texts, images, 1) == pytest.approx(1 / 3)
    assert M.topk_text_to_image_accuracy(texts, images, 2) == pytest.approx(1 / 3)
    assert M.topk_text_to_image_accuracy(texts, images, 3) == 1.0
    # a tie in score *below* the right image does not matter: [1,1] vs images 2 and 3 tie at .71
    assert M.text_to_image_ranks(rows([1, 1]), rows([1, 1], [1, 0], [0, 1])).tolist() == [0]


def test_topk_collapsed_model_scores_zero_not_one():
    # every embedding equal (or zero, as from a zeroed projection): every image ties
    for texts, images in ((torch.ones(6, 4), torch.ones(6, 4)),
                          (torch.zeros(6, 4), torch.randn(6, 4))):
        assert M.text_to_image_ranks(texts, images).tolist() == [5] * 6
        assert M.topk_text_to_image_accuracy(texts, images, 1) == 0.0
        assert M.topk_text_to_image_accuracy(texts, images, 5) == 0.0
        assert M.topk_text_to_image_accuracy(texts, images, 6) == 1.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_embeddings_are_an_error_in_every_metric(bad):
    clean = rows([1, 0], [0, 1])
    broken = clean.clone()
    broken[1, 0] = bad
    with pytest.raises(M.NonFiniteEmbeddingsError, match="1 of 2 rows"):
        M.topk_text_to_image_accuracy(broken, clean, 1)
    with pytest.raises(M.NonFiniteEmbeddingsError):
        M.text_to_image_ranks(clean, broken)
    with pytest.raises(M.NonFiniteEmbeddingsError):
        M.original_over_negation_accuracy(clean, clean, broken)
    with pytest.raises(M.NonFiniteEmbeddingsError):
        M.multiple_choice_accuracy(clean, torch.stack([clean, broken], 1), [0, 0])
    with pytest.raises(M.NonFiniteEmbeddingsError):
        M.zero_shot_accuracy(broken, clean, [0, 1])
    with pytest.raises(M.NonFiniteEmbeddingsError, match="text embeddings"):
        M.check_finite(torch.full((3, 2), float("nan")), "text embeddings")


def test_topk_is_blockwise_exact(monkeypatch):
    torch.manual_seed(0)
    texts, images = torch.randn(7, 4), torch.randn(7, 4)
    full = M.text_to_image_ranks(texts, images)
    monkeypatch.setattr(M, "RETRIEVAL_CHUNK", 3)
    assert M.text_to_image_ranks(texts, images).tolist() == full.tolist()


def test_topk_validates_mapping_and_k():
    with pytest.raises(ValueError, match="outside"):
        M.topk_text_to_image_accuracy(torch.ones(2, 2), torch.ones(2, 2), 1, [0, 2])
    with pytest.raises(ValueError, match="text_to_image"):
        M.topk_text_to_image_accuracy(torch.ones(3, 2), torch.ones(2, 2), 1)
    with pytest.raises(ValueError, match="k must"):
        M.topk_text_to_image_accuracy(torch.ones(2, 2), torch.ones(2, 2), 0)


def test_scaled_negation_and_composite():
    assert M.scaled_negation_score(0.75) == 0.5
    assert M.scaled_negation_score(0.4) == 0.0
    assert M.scaled_negation_score(1.0) == 1.0
    # (0.6 + 0.3 + (0.8 - 0.5) * 2) / 3 = 1.5 / 3
    assert M.composite_score(0.6, 0.3, 0.8) == pytest.approx(0.5)
    assert M.composite_score(0.6, 0.3, 0.2) == pytest.approx(0.3)


def test_sugarcrepe_pp_scores_by_hand():
    img = rows(E1, E1, E1, E1)
    p1 = rows(E1, E2, E1 + E2, E2)
    p2 = rows(E1 + E2, E1, E1 + E2, E3)
    neg = rows(E2, E3, E3, E1)
    # row 0: img-P1 1>0, img-P2 .71>0 (ITT hit); P1P2 .71 vs P2N .71 tie (TOT miss)
    # row 1: img-P1 0 vs img-N 0 tie (miss), img-P2 1>0; TOT 0 vs 0 tie (miss)
    # row 2: img-P .71 > 0 twice (ITT hit); P1P2 1 > 0, 1 > 0 (TOT hit)
    # row 3: img-P 0 < img-N 1 (misses); P1P2 0 vs 0 (TOT miss)
    assert M.sugarcrepe_pp_scores(img, p1, p2, neg) == {
        "itt_accuracy": 0.5, "tot_accuracy": 0.25,
        "img_p1_n_accuracy": 0.5, "img_p2_n_accuracy": 0.75}


def test_multiple_choice_accuracy_per_group_and_ties():
    img = rows(E1, E1, E1, E1)
    options = torch.stack([rows(E1, E2, E3),          # right 0: scores 1,0,0 -> hit
                           rows(E1, E1, E2),          # right 0: tie with option 1 -> miss
                           rows(E2, E1 + E2, E1),     # right 1: .71 < 1 -> miss
                           rows(E2, E3, E1 + E2)])    # right 2: .71 > 0 -> hit
    result = M.multiple_choice_accuracy(img, options, [0, 0, 1, 2],
                                        groups=["affirmation", "negation", "affirmation", "hybrid"])
    assert result == {"mcq_accuracy": 0.5, "mcq_accuracy_affirmation": 0.5,
                      "mcq_accuracy_negation": 0.0, "mcq_accuracy_hybrid": 1.0}


def test_multiple_choice_collapsed_model_scores_zero_not_one():
    # NegBench puts the right answer first; "first max wins" would give a constant model 100%
    options = torch.ones(5, 4, 3)
    assert M.multiple_choice_accuracy(torch.ones(5, 3), options, [0] * 5)["mcq_accuracy"] == 0.0


def test_zero_shot_affirmative_and_negated():
    img = rows(E1, E2, E1 + E3, E3)
    labels = [0, 1, 2, 0]
    affirmative = rows(E1, E2, E3)  # hit, hit, tie .71/.71 (miss), miss
    negated = rows(E1, E3, E2)      # hit, miss (picks class 2), tie (miss), miss
    assert M.zero_shot_accuracy(img, affirmative, labels) == 0.5
    assert M.zero_shot_negation_scores(img, affirmative, negated, labels) == {
        "affirmative_accuracy": 0.5, "negated_accuracy": 0.25, "negation_gap": 0.25}


def test_empty_input_gives_nan():
    assert math.isnan(M.original_over_negation_accuracy(torch.ones(0, 2), torch.ones(0, 2),
                                                        torch.ones(0, 2)))


# -- several captions per image: image-to-text and paraphrase retrieval (ties are misses) -------

def _retrieval_case():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [1.0, 0.0]])
    return images, texts, [0, 0, 1, 1]  # texts 0, 1 describe image 0; texts 2, 3 image 1


def test_image_to_text_recall_counts_the_best_own_caption_and_ties_as_misses():
    from engine.eval.metrics import topk_image_to_text_accuracy
    images, texts, owner = _retrieval_case()
    # image 0: own best 1.0 (text 0), tied by text 3 of image 1 -> rank 1; image 1: own best
    # 0.8 (text 2), competitors 0.0 and 0.6 -> rank 0
    assert topk_image_to_text_accuracy(images, texts, 1, owner) == 0.5
    assert topk_image_to_text_accuracy(images, texts, 2, owner) == 1.0
    collapsed = torch.ones(4, 2)
    assert topk_image_to_text_accuracy(torch.ones(2, 2), collapsed, 1, owner) == 0.0


def test_paraphrase_recall_retrieves_another_caption_of_the_same_image():
    from engine.eval.metrics import topk_paraphrase_accuracy
    _, texts, owner = _retrieval_case()
    # ranks by hand: text 0 -> 1 (text 3 scores 1.0 > its paraphrase's 0.8); texts 1, 2, 3 -> 2
    assert topk_paraphrase_accuracy(texts, owner, 1) == 0.0
    assert topk_paraphrase_accuracy(texts, owner, 2) == 0.25
    assert topk_paraphrase_accuracy(texts, owner, 3) == 1.0
    # a caption alone in its group has no paraphrase to find: a miss
    assert topk_paraphrase_accuracy(texts[:3], [0, 0, 1], 3) == pytest.approx(2 / 3)


def test_caption_recalls_refuse_nan_embeddings():
    from engine.eval.metrics import (NonFiniteEmbeddingsError, topk_image_to_text_accuracy,
                                     topk_paraphrase_accuracy)
    images, texts, owner = _retrieval_case()
    texts[1, 0] = float("nan")
    with pytest.raises(NonFiniteEmbeddingsError):
        topk_image_to_text_accuracy(images, texts, 1, owner)
    with pytest.raises(NonFiniteEmbeddingsError):
        topk_paraphrase_accuracy(texts, owner, 1)

def test_content_top1_counts_any_image_showing_the_same_content_and_ties_pessimistically():
    images = rows([1, 0], [0, 1], [1, 0.2], [0.6, 0.8])
    content = ["red circle", "blue square", "red circle", "green star"]
    texts = rows([1, 0.2], [1, 0], [0, 1], [0.6, 0.8], [1, 0])
    target = [0, 2, 1, 1, 1]
    # text 0 -> top image 2 (red circle, like its image 0): hit although not its own image
    # text 1 -> top image 0 (red circle, like its image 2): hit
    # text 2 -> top image 1: hit; text 3 -> top image 3 (green star) but its image is 1: miss
    # text 4 -> top image 0 (red circle), its image 1 shows a blue square: miss
    assert M.content_top1_accuracy(texts, images, content, target) == pytest.approx(3 / 5)
    # a tie at the top between a right and a wrong content is a miss; between two right ones a hit
    tied = rows([1, 0], [1, 0], [0, 1])
    assert M.content_top1_accuracy(rows([1, 0]), tied, ["a", "b", "c"], [0]) == 0.0
    assert M.content_top1_accuracy(rows([1, 0]), tied, ["a", "a", "c"], [0]) == 1.0
    assert math.isnan(M.content_top1_accuracy(torch.ones(0, 2), tied, ["a", "a", "c"], []))
    with pytest.raises(ValueError, match="3 images"):
        M.content_top1_accuracy(rows([1, 0]), tied, ["a"], [0])
    with pytest.raises(M.NonFiniteEmbeddingsError):
        M.content_top1_accuracy(rows([float("nan"), 0]), tied, ["a", "a", "c"], [0])
