"""SemClipLoss against values worked out by hand on 2-4 dimensional vectors."""

from __future__ import annotations

import math

import pytest
import torch
from open_clip.loss import ClipLoss

from engine.model.losses import SemClipLoss, random_orthonormal

S = math.sqrt(0.5)


def loss_with_v(v: list[list[float]], **kw) -> SemClipLoss:
    """A loss whose frozen V is set to the given (orthonormal) rows."""
    v = torch.tensor(v)
    loss = SemClipLoss(v.shape[1], n_projections=v.shape[0], **kw)
    loss.projection_matrix.copy_(v)
    return loss


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# Three unit captions in R^3 with V = the first two axes (n = 2):
#   t  = (1, 0, 0)        p(t)  = (1, 0)
#   t+ = (S, S, 0)        p(t+) = (S, S)   cos = S          -> L_para = 1 - S
#   t- = (S, 0, S)        p(t-) = (S, 0)   cos = 1          -> L_neg  = 1
# a second row where everything is already right:
#   t  = (0, 1, 0), t+ = (0, 1, 0) (cos 1 -> 0), t- = (-1, 0, 0) (cos 0 -> hinge 0)
TEXT = t([[1, 0, 0], [0, 1, 0]])
PARA = t([[S, S, 0], [0, 1, 0]])
NEG = t([[S, 0, S], [-1, 0, 0]])
IMG = t([[1, 0, 0], [0, 1, 0]])
V2 = [[1, 0, 0], [0, 1, 0]]


def test_paraphrase_and_negation_terms_n2():
    para_only = loss_with_v(V2, alpha=0, beta=1, gamma=0)
    assert para_only(IMG, TEXT, PARA, NEG, torch.tensor(1.0)).item() == pytest.approx((1 - S + 0) / 2)
    neg_only = loss_with_v(V2, alpha=0, beta=0, gamma=1)
    assert neg_only(IMG, TEXT, PARA, NEG, torch.tensor(1.0)).item() == pytest.approx((1 + 0) / 2)


def test_negation_hinge_is_zero_for_opposite_projections():
    loss = loss_with_v(V2, alpha=0, beta=0, gamma=1)
    # p(t) = (1, 0), p(t-) = (-S, S): cos = -S < 0 -> max(0, -S) = 0
    out = loss(t([[1, 0, 0]]), t([[1, 0, 0]]), t([[1, 0, 0]]), t([[-S, S, 0]]), torch.tensor(1.0))
    assert out.item() == 0.0


def test_contrastive_term_by_hand_and_equal_to_open_clip():
    # logits = s * I T^T with s = 2: [[2, 0], [0, 2]]; CE per row = log(1 + e^-2)
    expected = math.log(1 + math.exp(-2))
    contrastive = loss_with_v(V2, alpha=1, beta=0, gamma=0)
    assert contrastive(IMG, TEXT, PARA, NEG, torch.tensor(2.0)).item() == pytest.approx(expected)
    assert contrastive(IMG, TEXT, PARA, NEG, torch.tensor(2.0)).item() == pytest.approx(
        ClipLoss()(IMG, TEXT, torch.tensor(2.0)).item())


def test_paraphrase_positives_average_infonce_over_captions_and_paraphrases_by_hand():
    # captions: as above, log(1 + e^-2). Paraphrases PARA with s = 2: image->text logits
    # [[2S, 0], [2S, 2]], text->image logits (their transpose) [[2S, 2S], [0, 2]].
    x = 2 * S
    image_to_text = ((math.log(math.exp(x) + 1) - x) + (math.log(math.exp(x) + math.exp(2)) - 2)) / 2
    text_to_image = (math.log(2) + (math.log(1 + math.exp(2)) - 2)) / 2
    expected = (math.log(1 + math.exp(-2)) + (image_to_text + text_to_image) / 2) / 2
    loss = loss_with_v(V2, alpha=1, beta=0, gamma=0, paraphrase_positives=True)
    assert loss(IMG, TEXT, PARA, NEG, torch.tensor(2.0)).item() == pytest.approx(expected)
    # paraphrases worded as their captions change nothing; without paraphrases the term is CLIP's
    assert loss(IMG, TEXT, TEXT, NEG, torch.tensor(2.0)).item() == pytest.approx(math.log(1 + math.exp(-2)))
    assert loss(IMG, TEXT, None, NEG, torch.tensor(2.0)).item() == pytest.approx(math.log(1 + math.exp(-2)))
    assert SemClipLoss(**loss.config()).paraphrase_positives


def test_weighted_total_is_normalised_by_the_weight_sum_and_the_dict_sums_to_it():
    a, b, g = 0.5, 2.0, 1.5
    loss = loss_with_v(V2, alpha=a, beta=b, gamma=g)
    out = loss(IMG, TEXT, PARA, NEG, torch.tensor(2.0), output_dict=True)
    lc, lp, ln = math.log(1 + math.exp(-2)), (1 - S) / 2, 0.5
    assert set(out) == {"contrastive_loss", "paraphrase_loss", "negation_loss"}
    assert out["contrastive_loss"].item() == pytest.approx(a * lc / 4)
    assert out["paraphrase_loss"].item() == pytest.approx(b * lp / 4)
    assert out["negation_loss"].item() == pytest.approx(g * ln / 4)
    total = loss(IMG, TEXT, PARA, NEG, torch.tensor(2.0))
    assert total.item() == pytest.approx(sum(v.item() for v in out.values()))
    assert total.item() == pytest.approx((a * lc + b * lp + g * ln) / (a + b + g))


def test_n3_uses_the_full_projection():
    # V = identity in R^3 -> plain cosine of the vectors themselves
    loss = loss_with_v([[1, 0, 0], [0, 1, 0], [0, 0, 1]], alpha=0, beta=1, gamma=1)
    out = loss(IMG, TEXT, PARA, NEG, torch.tensor(1.0), output_dict=True)
    # row 1: cos(t, t+) = S, cos(t, t-) = S; row 2: 1 and 0
    assert out["paraphrase_loss"].item() == pytest.approx(((1 - S) + 0) / 2 / 2)
    assert out["negation_loss"].item() == pytest.approx((S + 0) / 2 / 2)


def test_n1_compares_angles_to_v_and_has_gradients():
    # v = x-axis. t at 0 deg, t+ at 60 deg (v.t+ = 0.5), t- at 120 deg (v.t- = -0.5)
    loss = loss_with_v([[1, 0]], alpha=0, beta=1, gamma=1)
    h = math.sqrt(3) / 2
    text = t([[1, 0]]).requires_grad_()
    para, neg = t([[0.5, h]]), t([[-0.5, h]])
    out = loss(t([[1, 0]]), text, para, neg, torch.tensor(1.0), output_dict=True)
    # cos(0 - 60 deg) = 0.5 -> L_para = 0.5; cos(0 - 120 deg) = -0.5 -> hinge 0
    assert out["paraphrase_loss"].item() == pytest.approx(0.5 / 2, abs=1e-4)
    assert out["negation_loss"].item() == pytest.approx(0.0)
    # t- at 60 deg instead: cos = 0.5 -> L_neg = 0.5 and a real gradient on the captions
    text2 = t([[S, S]]).requires_grad_()  # 45 deg
    neg2 = t([[0.5, h]])  # 60 deg: cos(15 deg)
    value = loss_with_v([[1, 0]], alpha=0, beta=0, gamma=1)(t([[1, 0]]), text2, text2, neg2, torch.tensor(1.0))
    assert value.item() == pytest.approx(math.cos(math.radians(15)), abs=1e-5)
    value.backward()
    assert torch.isfinite(text2.grad).all() and text2.grad.abs().sum() > 0


def test_hard_negatives_by_hand():
    # B = 2, s = 1. Image 0 = (1,0), image 1 = (0,1); captions = images; negations:
    # n0 = (1,0) (identical to caption 0), n1 = (0,-1)
    img = t([[1, 0], [0, 1]])
    neg = t([[1, 0], [0, -1]])
    loss = SemClipLoss(2, n_projections=1, alpha=1, beta=0, gamma=0, hard_negatives=True)
    # image->text logits rows: [1, 0, 1, 0] and [0, 1, 0, -1]
    ce_i0 = -1 + math.log(2 * math.e + 2)
    ce_i1 = -1 + math.log(math.e + 2 + math.exp(-1))
    ce_t = math.log(math.e + 1) - 1  # text->image rows [1, 0] and [0, 1]
    expected = ((ce_i0 + ce_i1) / 2 + ce_t) / 2
    assert loss(img, img, img, neg, torch.tensor(1.0)).item() == pytest.approx(expected, rel=1e-5)
    plain = SemClipLoss(2, n_projections=1, alpha=1, beta=0, gamma=0)
    assert plain(img, img, img, neg, torch.tensor(1.0)).item() == pytest.approx(
        ClipLoss()(img, img, torch.tensor(1.0)).item())


def test_projection_is_orthonormal_frozen_and_learnable():
    frozen_a, frozen_b = SemClipLoss(16, 3, projection_seed=7), SemClipLoss(16, 3, projection_seed=7)
    assert torch.equal(frozen_a.projection, frozen_b.projection)
    assert "projection_matrix" in frozen_a.state_dict()
    v = frozen_a.projection
    torch.testing.assert_close(v @ v.T, torch.eye(3), atol=1e-5, rtol=0)
    assert torch.equal(v, random_orthonormal(3, 16, 7))

    learn = SemClipLoss(16, 3, learnable_projections=True, alpha=0, projection_seed=7)
    torch.testing.assert_close(learn.projection, v, atol=1e-5, rtol=0)  # starts from the same V
    opt = torch.optim.SGD(learn.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        feats = [torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=-1) for _ in range(4)]
        loss = learn(*feats, torch.tensor(1.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    moved = learn.projection.detach()
    assert not torch.allclose(moved, v, atol=1e-3)
    torch.testing.assert_close(moved @ moved.T, torch.eye(3), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_projections": 0}, "n_projections"),
    ({"n_projections": 9}, "n_projections"),
    ({"alpha": -1.0}, "alpha"),
    ({"alpha": 0, "beta": 0, "gamma": 0}, "positive"),
    ({"delta": -0.5}, "delta"),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SemClipLoss(8, **kwargs)


def test_config_rebuilds_an_identical_loss():
    loss = SemClipLoss(8, 2, alpha=0.5, beta=2, gamma=1.5, hard_negatives=True, projection_seed=4)
    again = SemClipLoss(**loss.config())
    assert again.config() == loss.config()
    assert torch.equal(again.projection, loss.projection)


# --- false-negative masking ---------------------------------------------------------------------

def test_masking_drops_the_other_right_answers_by_hand():
    # B = 3, s = 1, unit images = captions e0, e1, e2 in R^3; caption 0 ("nothing orange") is
    # also true of image 2. Text->image row 0 loses column 2; image->text row 2 loses column 0.
    from engine.model.losses import BatchTruth

    img = t([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    captions = torch.eye(3, dtype=torch.bool)
    captions[0, 2] = True
    loss = SemClipLoss(3, n_projections=1, alpha=1, beta=0, gamma=0)
    full = math.log(math.e + 2) - 1  # a row [1, 0, 0]
    two = math.log(math.e + 1) - 1  # a row [1, 0] (one column masked)
    expected = ((full + full + two) / 3 + (two + full + full) / 3) / 2
    masked = loss(img, img, img, img, torch.tensor(1.0), truth=BatchTruth(captions))
    assert masked.item() == pytest.approx(expected, rel=1e-6)
    # the identity truth (each caption true of its own image only) changes nothing
    unmasked = loss(img, img, img, img, torch.tensor(1.0))
    assert unmasked.item() == pytest.approx(ClipLoss()(img, img, torch.tensor(1.0)).item())
    same = loss(img, img, img, img, torch.tensor(1.0), truth=BatchTruth(torch.eye(3, dtype=torch.bool)))
    assert same.item() == pytest.approx(unmasked.item(), rel=1e-6)


def test_paraphrases_meet_the_same_masks_and_hard_negatives_as_their_captions():
    # one gathered call over captions and paraphrases = the mean of one call over each
    from engine.model.losses import BatchTruth, HardNegativeClipLoss

    unit = [torch.nn.functional.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(k)),
                                          dim=-1) for k in range(4)]
    image, caption, paraphrase, negation = unit
    captions = torch.eye(6, dtype=torch.bool)
    captions[0, 3] = captions[2, 5] = True
    negations = torch.zeros(6, 6, dtype=torch.bool)
    negations[1, 4] = True
    truth, scale, loss = BatchTruth(captions, negations), torch.tensor(3.0), HardNegativeClipLoss()
    each = (loss(image, caption, negation, scale, truth=truth) +
            loss(image, paraphrase, negation, scale, truth=truth)) / 2
    both = loss(image, caption, negation, scale, truth=truth, paraphrase_features=paraphrase)
    assert both.item() == pytest.approx(each.item(), rel=1e-6)


def test_masking_leaves_out_a_negation_that_is_true_of_another_image():
    # Hard negatives as in test_hard_negatives_by_hand; negation 1 = (0,-1) is true of image 0,
    # so image 0's row [1, 0 | 1, 0] loses its last column: [1, 0, 1].
    from engine.model.losses import BatchTruth

    img = t([[1, 0], [0, 1]])
    neg = t([[1, 0], [0, -1]])
    negations = torch.tensor([[False, False], [True, False]])  # negations[k, j]
    loss = SemClipLoss(2, n_projections=1, alpha=1, beta=0, gamma=0, hard_negatives=True)
    ce_i0 = -1 + math.log(2 * math.e + 1)
    ce_i1 = -1 + math.log(math.e + 2 + math.exp(-1))
    ce_t = math.log(math.e + 1) - 1
    expected = ((ce_i0 + ce_i1) / 2 + ce_t) / 2
    truth = BatchTruth(torch.eye(2, dtype=torch.bool), negations)
    value = loss(img, img, img, neg, torch.tensor(1.0), truth=truth)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    # the masked logits carry no gradient (they are out of the softmax), the rest does
    img_grad = img.clone().requires_grad_()
    loss(img_grad, img, img, neg, torch.tensor(1.0), truth=truth).backward()
    assert torch.isfinite(img_grad.grad).all()


# --- the claim term -------------------------------------------------------------------------------

def test_claim_term_by_hand_ranks_each_true_claim_above_the_false_ones():
    # s = 1; images e0, e1 and a third e0 of which every claim holds; claims c0 = e0, c1 = e1,
    # c2 = -e0. Image 0 ([1, 0, -1]): c0 true -> softplus(log(1 + 1/e) - 1). Image 1
    # ([0, 1, 0]): c1 and c2 true, c0 false -> softplus(0 - 1) and softplus(0 - 0); the other
    # true claim stays out of each softmax. Image 2: nothing false, so nothing to rank.
    from engine.model.losses import claim_loss

    images = t([[1, 0], [0, 1], [1, 0]])
    claims = t([[1, 0], [0, 1], [-1, 0]])
    truth = torch.tensor([[True, False, False], [False, True, True], [True, True, True]])

    def softplus(x: float) -> float:
        return math.log1p(math.exp(x))

    expected = (softplus(math.log(1 + math.exp(-1)) - 1) + softplus(-1) + softplus(0)) / 3
    value = claim_loss(images, claims, truth, torch.tensor(1.0))
    assert value.item() == pytest.approx(expected, rel=1e-6)
    # each row's own claims (N, C, d) give the same as shared ones (C, d)
    per_row = claim_loss(images, claims.expand(3, -1, -1), truth, torch.tensor(1.0))
    assert per_row.item() == pytest.approx(expected, rel=1e-6)
    # the temperature multiplies the logits
    hot = claim_loss(images, claims, truth, torch.tensor(2.0))
    assert hot.item() == pytest.approx(
        (softplus(math.log(1 + math.exp(-2)) - 2) + softplus(-2) + softplus(0)) / 3, rel=1e-6)


def test_claim_term_without_a_rankable_pair_is_zero_with_finite_gradients():
    from engine.model.losses import claim_loss

    images = t([[1, 0], [0, 1]]).requires_grad_()
    claims = t([[1, 0], [0, 1]])
    for truth in (torch.zeros(2, 2, dtype=torch.bool), torch.ones(2, 2, dtype=torch.bool)):
        value = claim_loss(images, claims, truth, torch.tensor(1.0))
        value.backward()
        assert value.item() == 0.0 and torch.isfinite(images.grad).all()


def test_claim_term_joins_the_weighted_mean_only_when_delta_is_set():
    from engine.model.losses import claim_loss

    claims, truth = t([[1, 0, 0], [-1, 0, 0]]), torch.tensor([[True, False], [False, True]])
    lc, lclaim = math.log(1 + math.exp(-2)), claim_loss(IMG, claims, truth, torch.tensor(2.0))
    loss = loss_with_v(V2, alpha=1, beta=0, gamma=0, delta=3)
    out = loss(IMG, TEXT, PARA, NEG, torch.tensor(2.0), output_dict=True,
               claim_features=claims, claim_truth=truth)
    assert out["contrastive_loss"].item() == pytest.approx(lc / 4)
    assert out["claim_loss"].item() == pytest.approx(3 * lclaim.item() / 4)
    assert lclaim.item() > 0
    # without claims for the batch, the term is present and 0; delta = 0 leaves the paper's loss
    assert loss(IMG, TEXT, PARA, NEG, torch.tensor(2.0), output_dict=True)["claim_loss"] == 0
    plain = loss_with_v(V2, alpha=1, beta=0, gamma=0)(IMG, TEXT, PARA, NEG, torch.tensor(2.0),
                                                      output_dict=True, claim_features=claims,
                                                      claim_truth=truth)
    assert "claim_loss" not in plain and plain["contrastive_loss"].item() == pytest.approx(lc)
    assert SemClipLoss(**loss.config()).delta == 3.0
