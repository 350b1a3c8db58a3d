"""Encoding text and images fast, with results identical to OpenCLIP's own ``encode_*``.

The main trick is *exact text truncation*: captions are short (COCO: ~12 tokens) but OpenCLIP
pads every caption to the full context (77). The built-in text tower is causal and pools at
the end token, so positions after a caption's end token can never influence its pooled
embedding; running the transformer only up to there gives the same embedding for a fraction of
the compute. Hugging Face towers mask padding, so the same slicing is exact too.

*Length buckets* push this further for batches of mixed lengths (SemCLIP's one text call holds
t, t+ and t−, from 6 to 26+ tokens): the captions are sorted by their own used length, split
into a few buckets at the points that minimise Σ bucket_rows × bucket_length, each bucket runs
truncated to its own length, and the embeddings are put back in the input order. Every row
still sees exactly the positions it needs, so the result is the same (to float rounding) and
gradients flow as through one call. On CPU this pays (cost ∝ tokens); on CUDA one bucket is
kept by default (several small launches are rarely faster there; measure before changing).
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from engine.model._openclip import CLIP, CustomTextCLIP, builtin_text_features

# Most buckets one text call is split into on CPU (auto), and the fixed cost of one more bucket
# in padded-token units (the per-op overhead of another pass through the tower). Chosen from
# measurements on a 2-core CPU (t, t+, t- of 128 shapes scenes; see bench/RESULTS.md): 6 buckets
# at 96 tokens each beat 4 by ~5% on semclip-small and tie on semclip-shapes-tiny.
CPU_MAX_BUCKETS = 6
BUCKET_OVERHEAD_TOKENS = 96


def _builtin_text_tower(model: torch.nn.Module) -> bool:
    return isinstance(model, CLIP)


def token_lengths(model: torch.nn.Module, tokens: torch.Tensor) -> Optional[torch.Tensor]:
    """Per caption, how many leading positions can influence its embedding (a (B,) tensor).

    None where no truncation is known to be exact (pooling at the last or first position,
    towers without a padding id); then every caption needs the full context.
    """
    if _builtin_text_tower(model):
        pool = getattr(model, "text_pool_type", "argmax")
        if pool == "argmax":  # open_clip pools at the first maximal id (the end token)
            return tokens.argmax(dim=-1) + 1
        eos = getattr(model, "text_eos_id", None)
        if pool == "eos" and eos is not None:
            return (tokens == eos).int().argmax(dim=-1) + 1
        return None
    pad_id = getattr(getattr(getattr(model, "text", None), "config", None), "pad_token_id", None)
    if pad_id is None:
        return None
    positions = torch.arange(1, tokens.shape[1] + 1, device=tokens.device)
    return ((tokens != pad_id) * positions).amax(dim=-1).clamp(min=1)


def used_length(model: torch.nn.Module, tokens: torch.Tensor) -> int:
    """Number of leading token positions that can influence any caption's embedding."""
    lengths = token_lengths(model, tokens)
    if lengths is None or lengths.numel() == 0:
        return tokens.shape[1]
    return int(lengths.max().item())


def plan_buckets(lengths: Sequence[int], max_buckets: int,
                 overhead: float = BUCKET_OVERHEAD_TOKENS) -> list[int]:
    """Bucket bounds (ascending lengths) minimising Σ rows × bound + ``overhead`` per bucket.

    A caption goes to the first bucket whose bound is at least its length; the last bound is
    the longest length. Exact dynamic programme over the distinct lengths (at most the context,
    77), so the split is only made where it saves more padded tokens than it costs.
    """
    counts: dict[int, int] = {}
    for n in lengths:
        counts[int(n)] = counts.get(int(n), 0) + 1
    values = sorted(counts)
    if not values:
        return []
    m = len(values)
    below = [0]  # below[j]: how many captions have one of the first j distinct lengths
    for v in values:
        below.append(below[-1] + counts[v])
    inf = float("inf")
    # best[j]: (cost, bounds) covering the first j distinct lengths with the buckets so far
    best: list[tuple[float, list[int]]] = [(0.0, [])] + [(inf, [])] * m
    answer = (inf, [])
    for _ in range(max(1, max_buckets)):
        step: list[tuple[float, list[int]]] = [(inf, [])] * (m + 1)
        for j in range(1, m + 1):
            for i in range(j):
                if best[i][0] == inf:
                    continue
                cost = best[i][0] + (below[j] - below[i]) * values[j - 1] + overhead
                if cost < step[j][0]:
                    step[j] = (cost, best[i][1] + [values[j - 1]])
        best = step
        if best[m][0] < answer[0]:
            answer = best[m]
    return answer[1]


def _encode_truncated(model: torch.nn.Module, tokens: torch.Tensor, length: int,
                      embedded: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Unnormalised embeddings of captions that all fit in ``length`` positions.

    ``embedded``: the built-in tower's token embeddings of these rows, already looked up (at
    least ``length`` positions), so that buckets share one lookup and one dense gradient of the
    (vocab x width) embedding table instead of one each.
    """
    tokens = tokens[:, :length]
    if isinstance(model, CustomTextCLIP):
        return model.text(tokens)
    x = model.token_embedding(tokens) if embedded is None else embedded[:, :length]
    return builtin_text_features(model, tokens, x, length)


def encode_text(model: torch.nn.Module, tokens: torch.Tensor, normalize: bool = True,
                truncate: bool = True, max_buckets: Optional[int] = None) -> torch.Tensor:
    """Text embeddings of token ids, each caption run only as far as it needs.

    Equals ``model.encode_text(tokens, normalize)`` (to float rounding, in the same row order,
    differentiably) for OpenCLIP's causal text tower and for Hugging Face towers with a padding
    mask. ``max_buckets``: how many length buckets the batch may be split into; None picks
    :data:`CPU_MAX_BUCKETS` on CPU and 1 (truncation to the longest caption) elsewhere.
    """
    if not truncate or not isinstance(model, (CLIP, CustomTextCLIP)):
        return model.encode_text(tokens, normalize=normalize)
    lengths = token_lengths(model, tokens)
    if lengths is None or tokens.shape[0] == 0:
        x = _encode_truncated(model, tokens, tokens.shape[1])
        return F.normalize(x, dim=-1) if normalize else x
    if max_buckets is None:
        max_buckets = CPU_MAX_BUCKETS if tokens.device.type == "cpu" else 1
    if max_buckets <= 1:
        bounds = [int(lengths.max().item())]
    else:
        bounds = plan_buckets(lengths.tolist(), max_buckets)
    if len(bounds) == 1:
        x = _encode_truncated(model, tokens, bounds[0])
    else:
        order = torch.argsort(lengths, stable=True)  # shortest first, bucket by bucket
        sizes = torch.bucketize(lengths, torch.tensor(bounds, device=lengths.device)).bincount(
            minlength=len(bounds)).tolist()
        ordered = tokens[order, :bounds[-1]]
        embedded = model.token_embedding(ordered) if _builtin_text_tower(model) else None
        parts, start = [], 0
        for size, bound in zip(sizes, bounds):
            rows = slice(start, start + size)
            parts.append(_encode_truncated(model, ordered[rows], bound,
                                           None if embedded is None else embedded[rows]))
            start += size
        x = torch.cat(parts).index_select(0, torch.argsort(order))  # back to the input order
    return F.normalize(x, dim=-1) if normalize else x


def _batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@torch.no_grad()
def embed_texts(model: torch.nn.Module, tokenizer: Callable, texts: Sequence[str],
                batch_size: int = 512, device: Optional[torch.device] = None) -> torch.Tensor:
    """L2-normalised float32 embeddings (N, d) of a list of strings, encoded in batches."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for chunk in _batches(list(texts), batch_size):
        tokens = tokenizer(list(chunk)).to(device)
        out.append(encode_text(model, tokens).float().cpu())
    model.train(was_training)
    if not out:
        return torch.empty(0, embed_width(model))
    return torch.cat(out)


@torch.no_grad()
def embed_images(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """L2-normalised float32 embeddings (N, d) of preprocessed image tensors, in batches."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model.encode_image(chunk.to(device), normalize=True).float().cpu()
           for chunk in images.split(batch_size)]
    model.train(was_training)
    if not out:
        return torch.empty(0, embed_width(model))
    return torch.cat(out)


def embed_width(model: torch.nn.Module) -> int:
    """Output width of a CLIP model's joint embedding space."""
    proj = getattr(model, "text_projection", None)
    if isinstance(proj, torch.nn.Linear):
        return proj.out_features
    if isinstance(proj, torch.Tensor):
        return proj.shape[1]
    return int(getattr(getattr(model, "visual", None), "output_dim", 0))
