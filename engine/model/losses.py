"""The SemCLIP loss, in the style of open_clip's ``loss.py``.

    L = (α·L_contrastive + β·L_paraphrase + γ·L_negation + δ·L_claims) / (α + β + γ + δ)
    L_paraphrase = mean(1 − cos(p(t), p(t+)))
    L_negation   = mean(max(0, cos(p(t), p(t−))))
    p(x) = V x, V an n×d matrix with orthonormal rows (frozen or learnable)

δ = 0 is the paper's loss. The claim term (this project's, off by default) is the image side of
negation: each image ranks the object claims that hold of it ("no horse can be seen here" under
a photo without horses) above those that do not ("no dog can be seen here" under a dog photo).

The contrastive term is open_clip's ``ClipLoss`` (so gathering across DDP ranks works the same
way), optionally with the negated captions as hard negatives in the image-to-text logits.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.loss import ClipLoss, gather_features

EPS = 1e-8
_GATHER_DEPRECATION = r"torch\.distributed\.nn\.functional\.all_gather is deprecated"


def random_orthonormal(n: int, d: int, seed: int) -> torch.Tensor:
    """An n×d matrix with orthonormal rows, a pure function of ``seed`` (QR of a Gaussian)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, n, generator=g))
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # make the factorisation unique
    return q.T.contiguous()


@contextlib.contextmanager
def _quiet_gather(world_size: int) -> Iterator[None]:
    """Drop torch's FutureWarning for the ``torch.distributed.nn.all_gather`` that open_clip's
    ``gather_features`` calls: every DDP run would print it, and it is not the user's to act on."""
    if world_size <= 1:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _GATHER_DEPRECATION, FutureWarning)
        yield


@dataclass
class BatchTruth:
    """What a (gathered) batch's texts say truly of its images, for false-negative masking.

    ``captions[i, j]``: caption i is true of image j (always of its own image, i = j);
    ``negations[k, j]``: negation k, false of image k by construction, is true of image j.
    Rows and columns follow the gathered batch (rank order, then micro-batch order). A caption
    such as "nothing orange" is true of most scenes: counting the other scenes it fits as wrong
    answers would teach the model that it fits none of them.
    """

    captions: torch.Tensor
    negations: Optional[torch.Tensor] = None

    def to(self, device: torch.device) -> "BatchTruth":
        return BatchTruth(self.captions.to(device),
                          None if self.negations is None else self.negations.to(device))


def _drop_other_right_answers(logits: torch.Tensor, right: torch.Tensor,
                              labels: torch.Tensor) -> torch.Tensor:
    """Logits with every column that is right for its row, but is not the row's label, removed
    from the softmax (-inf): another right answer is not a wrong one."""
    mask = right.clone()
    mask[torch.arange(len(labels), device=labels.device), labels] = False
    return logits.masked_fill(mask, float("-inf"))


class HardNegativeClipLoss(ClipLoss):
    """ClipLoss whose image-to-text logits may also hold every negated caption as a wrong column,
    and whose softmaxes may leave out the other right answers of a row (:class:`BatchTruth`).

    logits_per_image = s · I [T; T−]ᵀ (N × 2N, the right caption at column i), so each image has
    to prefer its caption over all captions and all negations of the (gathered) batch — the
    CoN-CLIP / NegCLIP idea. The text-to-image direction is ClipLoss's. Without negations and
    truth it computes exactly ClipLoss. With paraphrases it is the mean of that loss over the
    captions and over the paraphrases (each the right text of its image, under the same truth).
    """

    def forward(self, image_features, text_features, negation_features, logit_scale,
                truth: Optional[BatchTruth] = None, paraphrase_features=None):
        texts = [text_features] if paraphrase_features is None else [text_features, paraphrase_features]
        stacked = torch.cat(texts + ([] if negation_features is None else [negation_features]), dim=1)
        if self.world_size > 1:
            # gather captions, paraphrases and negations in one call, stacked along the feature axis
            all_image, all_stacked = gather_features(
                image_features, stacked, local_loss=self.local_loss,
                gather_with_grad=self.gather_with_grad, rank=self.rank,
                world_size=self.world_size, use_horovod=self.use_horovod)
            query_image = image_features if self.local_loss else all_image
            query_stacked = stacked if self.local_loss else all_stacked
        else:
            all_image, all_stacked = image_features, stacked
            query_image, query_stacked = image_features, stacked
        dim = text_features.shape[1]
        gathered, queries = all_stacked.split(dim, dim=1), query_stacked.split(dim, dim=1)
        all_negations = None if negation_features is None else gathered[len(texts)]
        labels = self.get_ground_truth(image_features.device, query_image.shape[0])
        right_texts = right_images = None
        if truth is not None:
            rows = slice(None)
            if self.world_size > 1 and self.local_loss:
                n = image_features.shape[0]
                rows = slice(self.rank * n, (self.rank + 1) * n)
            right_texts = truth.captions.T  # image j: the captions true of it
            if negation_features is not None:
                negations = truth.negations if truth.negations is not None else \
                    torch.zeros_like(truth.captions)
                right_texts = torch.cat([right_texts, negations.T], dim=1)
            right_texts, right_images = right_texts[rows], truth.captions[rows]
        losses = []
        for k in range(len(texts)):
            columns = gathered[k] if all_negations is None else torch.cat([gathered[k], all_negations])
            logits_per_image = logit_scale * query_image @ columns.T
            logits_per_text = logit_scale * queries[k] @ all_image.T
            if truth is not None:
                logits_per_image = _drop_other_right_answers(logits_per_image, right_texts, labels)
                logits_per_text = _drop_other_right_answers(logits_per_text, right_images, labels)
            losses.append((F.cross_entropy(logits_per_image, labels) +
                           F.cross_entropy(logits_per_text, labels)) / 2)
        return sum(losses) / len(losses)


def claim_loss(image_features: torch.Tensor, claim_features: torch.Tensor, truth: torch.Tensor,
               logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean over (image, true claim) pairs of −log softmax of the true claim against the image's
    false claims: ``softplus(logsumexp(false logits) − true logit)``. The other true claims of a
    row stay out of its softmax (another right answer is not a wrong one).

    Args:
        image_features: (N, d) unit image embeddings.
        claim_features: (C, d) unit claim embeddings, or (N, C, d): each row's own.
        truth: (N, C) bool, claim k holds of image i.
        logit_scale: the CLIP temperature s (logits are s·cos).
    Rows with no false claim add nothing; no true pair at all gives 0 (with a gradient path).
    """
    if claim_features.dim() == 2:
        logits = logit_scale * image_features @ claim_features.T
    else:
        logits = logit_scale * torch.einsum("nd,ncd->nc", image_features, claim_features)
    has_false = (~truth).any(dim=1, keepdim=True)
    # a row without false claims gets finite stand-in logits: logsumexp of only -inf has a NaN
    # gradient; its pairs are left out below
    wrong = logits.masked_fill(truth, float("-inf")).masked_fill(~has_false, 0.0)
    rankable = truth & has_false
    if not bool(rankable.any()):
        return logits.sum() * 0.0
    margins = F.softplus(torch.logsumexp(wrong, dim=1, keepdim=True) - logits)[rankable]
    return margins.mean()


class SemClipLoss(nn.Module):
    """Contrastive + paraphrase + negation loss over a projection subspace.

    Args:
        embed_dim: width d of the joint embedding space.
        n_projections: number n of orthonormal projection directions (rows of V), 1 ≤ n ≤ d.
        learnable_projections: learn V; it is kept orthonormal at every step by torch's
            orthogonal parametrisation (a differentiable map onto the Stiefel manifold), which
            starts from the same seeded V a frozen loss uses.
        alpha, beta, gamma: non-negative weights of the three terms (positive sum); the total
            is their weighted mean, so α = 1, β = γ = 0 is plain CLIP fine-tuning.
        delta: weight of the claim term (:func:`claim_loss`; 0, the paper's loss, by default).
        hard_negatives: add the negated captions as extra text columns of the image-to-text
            logits (see :class:`HardNegativeClipLoss`).
        paraphrase_positives: the contrastive term is the mean of InfoNCE over the captions and
            over their paraphrases (each the right text of its image), so that every wording a
            data set holds is tied to its picture, not only the caption's (LaCLIP's rewrites as
            extra captions); False, the paper's loss, reads paraphrases in the paraphrase term only.
        projection_seed: seed of the initial V.
        local_loss, gather_with_grad, cache_labels, rank, world_size, use_horovod: as in
            open_clip's ``ClipLoss`` (DDP feature gathering).

    With n = 1, normalising the 1-D projection v·x leaves only its sign, whose gradient is zero.
    For n = 1 each unit vector x is therefore represented by its *angle to v*: the 2-D unit vector
    q(x) = (v·x, √(1 − (v·x)²)), its component along v and the norm of its residual orthogonal
    to v. Then cos(q(a), q(b)) = cos(θ_a − θ_b) with θ the angle between x and v: the paraphrase
    term asks t and t+ to make the same angle with v, the negation term asks t and t− to make
    angles at least 90° apart. Both are smooth, with non-zero gradients except at v·x = ±1.
    For n ≥ 2 the terms use the plain cosine of the n-dimensional projections.
    """

    def __init__(self, embed_dim: int, n_projections: int = 2, learnable_projections: bool = False,
                 alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0, delta: float = 0.0,
                 hard_negatives: bool = False, paraphrase_positives: bool = False,
                 projection_seed: int = 0, local_loss: bool = False,
                 gather_with_grad: bool = False, cache_labels: bool = True, rank: int = 0,
                 world_size: int = 1, use_horovod: bool = False):
        super().__init__()
        if not 1 <= n_projections <= embed_dim:
            raise ValueError(f"n_projections must be between 1 and embed_dim={embed_dim}, "
                             f"got {n_projections}")
        weights = {"alpha": alpha, "beta": beta, "gamma": gamma, "delta": delta}
        for name, w in weights.items():
            if not isinstance(w, (int, float)) or w < 0 or w != w:
                raise ValueError(f"{name} must be a non-negative number, got {w!r}")
        if alpha + beta + gamma + delta <= 0:
            raise ValueError("alpha + beta + gamma + delta must be positive (all weights are 0)")
        self.embed_dim, self.n_projections = embed_dim, n_projections
        self.learnable_projections, self.hard_negatives = learnable_projections, hard_negatives
        self.paraphrase_positives = paraphrase_positives
        self.projection_seed = projection_seed
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.delta = float(delta)
        self._dist = dict(local_loss=local_loss, gather_with_grad=gather_with_grad,
                          cache_labels=cache_labels, rank=rank, world_size=world_size,
                          use_horovod=use_horovod)
        self.clip_loss = ClipLoss(**self._dist)
        self._masked_loss = HardNegativeClipLoss(**self._dist)  # hard negatives, masking

        initial = random_orthonormal(n_projections, embed_dim, projection_seed)
        if learnable_projections:
            self.projector = nn.Linear(embed_dim, n_projections, bias=False)
            with torch.no_grad():
                self.projector.weight.copy_(initial)
            nn.utils.parametrizations.orthogonal(self.projector)
        else:
            self.register_buffer("projection_matrix", initial)

    def no_weight_decay(self) -> set[str]:
        """Every parameter of the loss (a learnable V): V is orthonormal by construction, and
        decay would pull the orthogonal parametrisation's stored tensors towards 0, whose ±1
        diagonal torch reads back with an integer cast as signs: -0.99997 becomes 0, and V = 0."""
        return {name for name, _ in self.named_parameters()}

    @property
    def projection(self) -> torch.Tensor:
        """The current V (n × d, orthonormal rows)."""
        if self.learnable_projections:
            return self.projector.weight
        return self.projection_matrix

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """p(x) = V x for each row of ``features`` (B × n); what the app plots."""
        return features @ self.projection.T.to(features.dtype)

    def _subspace_cosine(self, a: torch.Tensor, b: torch.Tensor,
                         detach_projection: bool = False) -> torch.Tensor:
        v = self.projection.detach() if detach_projection else self.projection
        pa, pb = a @ v.T.to(a.dtype), b @ v.T.to(b.dtype)
        if self.n_projections == 1:
            pa, pb = pa[:, 0], pb[:, 0]
            residual_a = torch.sqrt(torch.clamp(1 - pa * pa, min=EPS))
            residual_b = torch.sqrt(torch.clamp(1 - pb * pb, min=EPS))
            return pa * pb + residual_a * residual_b
        return F.cosine_similarity(pa, pb, dim=-1, eps=EPS)

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor,
                paraphrase_features: Optional[torch.Tensor],
                negation_features: Optional[torch.Tensor], logit_scale: torch.Tensor, output_dict: bool = False,
                detach_projection: bool = False, truth: Optional[BatchTruth] = None,
                claim_features: Optional[torch.Tensor] = None,
                claim_truth: Optional[torch.Tensor] = None
                ) -> Union[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss, or with ``output_dict`` the weighted terms (they sum to the total).

        Paraphrases (negations) may be None when no term reads them: beta = 0 (gamma = 0 and
        no hard negatives).

        ``detach_projection`` keeps a learnable V out of this call's gradient: gradient
        accumulation recomputes the whole batch's loss once per micro-batch, and V's gradient
        must be counted once, not once per micro-batch.

        ``truth`` (which texts of the gathered batch are true of which images) leaves the other
        right answers of each row out of the contrastive softmaxes (false-negative masking).

        ``claim_features`` ((C, d), or (N, C, d) per image) and ``claim_truth`` ((N, C)) feed
        the claim term; with delta > 0 and no claims it is 0.
        """
        norm = self.alpha + self.beta + self.gamma + self.delta
        zero = text_features.new_zeros(())
        if self.alpha:
            negations = negation_features if self.hard_negatives else None
            paraphrases = paraphrase_features if self.paraphrase_positives else None
            with _quiet_gather(self._dist["world_size"]):
                if negations is None and truth is None and paraphrases is None:
                    # open_clip's own loss, untouched
                    contrastive = self.clip_loss(image_features, text_features, logit_scale)
                else:
                    contrastive = self._masked_loss(image_features, text_features, negations,
                                                    logit_scale, truth=truth,
                                                    paraphrase_features=paraphrases)
            contrastive = contrastive * (self.alpha / norm)
        else:
            contrastive = zero
        paraphrase = zero
        if self.beta:
            paraphrase = (1 - self._subspace_cosine(text_features, paraphrase_features,
                                                        detach_projection)).mean()
            paraphrase = paraphrase * (self.beta / norm)
        negation = zero
        if self.gamma:
            negation = self._subspace_cosine(text_features, negation_features,
                                              detach_projection).clamp(min=0).mean()
            negation = negation * (self.gamma / norm)
        terms = {"contrastive_loss": contrastive, "paraphrase_loss": paraphrase,
                 "negation_loss": negation}
        if self.delta:  # the paper's three terms alone otherwise, as logs and exports expect
            claims = zero
            if claim_features is not None and claim_truth is not None:
                claims = claim_loss(image_features, claim_features, claim_truth, logit_scale)
            terms["claim_loss"] = claims * (self.delta / norm)
        return terms if output_dict else sum(terms.values())

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready) that rebuild this loss, e.g. from a sidecar."""
        return {"embed_dim": self.embed_dim, "n_projections": self.n_projections,
                "learnable_projections": self.learnable_projections, "alpha": self.alpha,
                "beta": self.beta, "gamma": self.gamma, "delta": self.delta,
                "hard_negatives": self.hard_negatives,
                "paraphrase_positives": self.paraphrase_positives,
                "projection_seed": self.projection_seed}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())
