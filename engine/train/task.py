"""The SemCLIP training task: the CLIP model, the SemCLIP loss and the locked-tower feature cache
in one ``nn.Module`` (open_clip's ``task/`` idea).

Everything that trains lives inside this module, so ``DistributedDataParallel(task)`` wraps
every trainable parameter, the learnable projection V included, and keeps it identical on all
ranks. Each sub-module declares what it exempts from weight decay (``no_weight_decay()``, the
open_clip/timm convention), and :func:`build_optimizer` only reads those declarations.

One forward pass computes the loss terms of one micro-batch. With gradient accumulation the
features of every micro-batch are first computed without gradients, then each micro-batch is
recomputed with gradients and put back among the others (open_clip's ``--accum-freq``), so
the loss and its gradients equal those of one big batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.model._openclip import timm_head
from engine.model.encoding import encode_text
from engine.model.losses import BatchTruth, SemClipLoss

LOGIT_SCALE_MAX = math.log(100.0)  # OpenCLIP clamps the learnable temperature at 100


@dataclass
class Features:
    """Embeddings of one micro-batch: images (B, d), captions, paraphrases and negations, and
    the step's object claims (C, d). Each is None when no loss term reads it (not encoded)."""

    image: torch.Tensor
    caption: torch.Tensor
    paraphrase: Optional[torch.Tensor]
    negation: Optional[torch.Tensor]
    logit_scale: torch.Tensor
    claims: Optional[torch.Tensor] = None


class ImageFeatureCache:
    """Embeddings of a locked image tower, one row per training item, kept on ``device``.

    Filled once per run in a fixed order (:meth:`missing_chunks`), so an interrupted and
    resumed run computes exactly the same embeddings as an uninterrupted one.
    """

    def __init__(self, size: int, dim: int, device: torch.device):
        self.features = torch.zeros(size, dim, device=device)
        self.filled = torch.zeros(size, dtype=torch.bool, device=device)

    def __len__(self) -> int:
        return self.features.shape[0]

    def store(self, index: torch.Tensor, features: torch.Tensor) -> None:
        index = index.to(self.features.device)
        self.features[index] = features.to(self.features.dtype)
        self.filled[index] = True

    def complete(self) -> bool:
        return bool(self.filled.all())

    def shard(self, rank: int, world_size: int) -> list[int]:
        """The indices this rank embeds; the ranks then share their rows (:meth:`merge`)."""
        return list(range(rank, len(self), world_size))

    def merge(self) -> None:
        """Sum the rows every rank embedded into every rank's cache (each row is filled on one)."""
        import torch.distributed as dist
        filled = self.filled.to(torch.float32)
        features = self.features * self.filled[:, None]
        dist.all_reduce(features)
        dist.all_reduce(filled)
        self.features.copy_(features)
        self.filled.copy_(filled > 0)


class SemClipTask(nn.Module):
    """CLIP + SemCLIP loss; ``forward`` returns the named, weighted loss terms of a batch.

    Args:
        clip: an open_clip CLIP model (towers already locked as wanted).
        loss: the :class:`SemClipLoss` (holds V).
        max_buckets: text length buckets for :func:`engine.model.encoding.encode_text` (None: auto).
    """

    def __init__(self, clip: nn.Module, loss: SemClipLoss, max_buckets: Optional[int] = None):
        super().__init__()
        self.clip = clip
        self.loss = loss
        self.max_buckets = max_buckets
        self.image_cache: Optional[ImageFeatureCache] = None  # not a buffer: never broadcast
        # True when the cache holds a locked timm trunk's pooled features: the image head
        # (trainable) then runs on them each step (engine.model.trunk_cache).
        self.cache_holds_trunk = False

    @property
    def text_fields(self) -> tuple[str, ...]:
        """The texts of a triple that some loss term reads; only these are encoded. A CLIP
        baseline (no paraphrase or negation term, no hard negatives) encodes captions alone,
        a third of SemCLIP's text work."""
        fields = ["caption"]
        if self.loss.beta or (self.loss.alpha and self.loss.paraphrase_positives):
            fields.append("paraphrase")
        if self.loss.gamma or (self.loss.alpha and self.loss.hard_negatives):
            fields.append("negation")
        return tuple(fields)

    def train(self, mode: bool = True) -> "SemClipTask":
        """Train mode, except for frozen BatchNorm layers (a locked CNN trunk): their running
        statistics must not drift, or cached trunk features would disagree with live ones."""
        super().train(mode)
        for module in self.clip.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and \
                    not any(p.requires_grad for p in module.parameters()):
                module.eval()
        return self

    def no_weight_decay(self) -> set[str]:
        """Parameter names (relative to this module) that weight decay must not touch."""
        names = {"clip.logit_scale"}
        names |= {f"loss.{n}" for n in self.loss.no_weight_decay()}
        return names

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """What the image cache holds for a locked tower: unit embeddings. (A locked timm
        trunk's pooled features come from :mod:`engine.model.trunk_cache` instead.)"""
        return self.clip.encode_image(images, normalize=True).float()

    def features(self, images: Optional[torch.Tensor], tokens: torch.Tensor,
                 index: Optional[torch.Tensor] = None,
                 claim_tokens: Optional[torch.Tensor] = None) -> Features:
        """Embeddings of a micro-batch; images come from the cache when there is one.
        ``claim_tokens``: the step's object claims (the claim term), encoded on their own:
        they are few and short, and every micro-batch shares them."""
        if self.image_cache is not None:
            if index is None:
                raise ValueError("a cached image tower needs the items' indices")
            image = self.image_cache.features[index.to(self.image_cache.features.device)]
            if self.cache_holds_trunk:
                image = F.normalize(timm_head(self.clip)(image), dim=-1)
        else:
            image = self.clip.encode_image(images, normalize=True)
        text = encode_text(self.clip, tokens, max_buckets=self.max_buckets)
        fields = self.text_fields
        parts = dict(zip(fields, text.float().split(text.shape[0] // len(fields))))
        claims = None
        if claim_tokens is not None:
            claims = encode_text(self.clip, claim_tokens, max_buckets=self.max_buckets).float()
        return Features(image.float(), parts["caption"], parts.get("paraphrase"),
                        parts.get("negation"), self.clip.logit_scale.exp().float(), claims)

    def forward(self, images: Optional[torch.Tensor], tokens: torch.Tensor,
                index: Optional[torch.Tensor] = None,
                context: Optional[Sequence[Features]] = None, slot: int = 0,
                truth: Optional[BatchTruth] = None, claim_tokens: Optional[torch.Tensor] = None,
                claim_truth: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """Loss terms of a micro-batch. With ``context`` (the gradient-free features of every
        micro-batch of an accumulated step), this micro-batch's fresh features replace
        ``context[slot]`` and the loss covers all of them. ``truth`` covers the whole gathered
        batch (false-negative masking, :class:`BatchTruth`); ``claim_truth`` (rows: this
        process's items of the step, micro-batch order) says which of the step's claims
        (``claim_tokens``) hold of which image."""
        own = self.features(images, tokens, index, claim_tokens)
        parts = list(context) if context is not None else [own]
        parts[slot] = own
        joined = {key: None if getattr(own, key) is None else
                  torch.cat([getattr(p, key) for p in parts])
                  for key in ("image", "caption", "paraphrase", "negation")}
        # The temperature and V are shared by every micro-batch's recomputation of the whole
        # batch's loss: only the last one carries their gradient, or it would count k times.
        last = slot == len(parts) - 1
        logit_scale = own.logit_scale if last else own.logit_scale.detach()
        # each micro-batch's images meet the claims as that micro-batch encoded them, so the
        # claim encoder's gradient comes from the fresh micro-batch's rows alone
        claims = None if own.claims is None else \
            torch.cat([p.claims.expand(len(p.image), -1, -1) for p in parts])
        return self.loss(joined["image"], joined["caption"], joined["paraphrase"],
                         joined["negation"], logit_scale, output_dict=True,
                         detach_projection=not last, truth=truth, claim_features=claims,
                         claim_truth=claim_truth)

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        self.clip.logit_scale.clamp_(0, LOGIT_SCALE_MAX)


def weight_decay_exempt(module: nn.Module) -> set[str]:
    """Full names of the parameters ``module`` and its sub-modules declare exempt from decay."""
    exempt: set[str] = set()
    for prefix, sub in module.named_modules():
        declare = getattr(sub, "no_weight_decay", None)
        if callable(declare):
            exempt |= {f"{prefix}.{n}" if prefix else n for n in declare()}
    return exempt


def build_optimizer(task: SemClipTask, lr: float, weight_decay: float,
                    text_lr_scale: float = 1.0, fused: Optional[bool] = None
                    ) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``task`` (nanoGPT's ``configure_optimizers``).

    Decay applies to matrices only: vectors (gains, biases, the temperature) and whatever a
    module declares in ``no_weight_decay()`` (e.g. the orthogonal parametrisation of a learnable
    V, whose ±1 diagonal encodes signs and must never shrink) are exempt. Pretrained Hugging Face
    text weights get ``lr * text_lr_scale``.
    """
    exempt = weight_decay_exempt(task)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in task.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or name in exempt
        pretrained_text = name.startswith("clip.text.transformer.")
        groups.setdefault((no_decay, pretrained_text), []).append(p)
    param_groups = [
        {"params": ps, "weight_decay": 0.0 if no_decay else weight_decay,
         "lr_scale": text_lr_scale if pretrained_text else 1.0}
        for (no_decay, pretrained_text), ps in sorted(groups.items())
    ]
    extra = {"fused": True} if fused else {}
    return torch.optim.AdamW(param_groups, lr=lr, betas=(0.9, 0.98), eps=1e-6, **extra)


def weights_finite(module: nn.Module) -> bool:
    """True when every floating-point parameter of ``module`` is finite (buffers are not
    weights: attention masks legitimately hold -inf)."""
    flags = [torch.isfinite(p).all() for p in module.parameters() if p.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True
