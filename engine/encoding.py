"""Encoding text and images fast, with results identical to OpenCLIP's own ``encode_*``.

The main trick is *exact text truncation*: captions are short (COCO: ~12 tokens) but OpenCLIP
pads every caption to the full context (77). The built-in text tower is causal and pools at
the end token, so positions after the longest caption's end token can never influence the
pooled embedding; running the transformer only up to there gives the same embedding for a
fraction of the compute. Hugging Face towers mask padding, so the same slicing is exact too.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from open_clip.model import CLIP, CustomTextCLIP
from open_clip.transformer import text_global_pool


def _builtin_text_tower(model: torch.nn.Module) -> bool:
    return isinstance(model, CLIP)


def used_length(model: torch.nn.Module, tokens: torch.Tensor) -> int:
    """Number of leading token positions that can influence any caption's embedding."""
    if _builtin_text_tower(model):
        pool = getattr(model, "text_pool_type", "argmax")
        if pool == "argmax":
            return int(tokens.argmax(dim=-1).max().item()) + 1
        if pool == "eos" and getattr(model, "text_eos_id", None) is not None:
            return int((tokens == model.text_eos_id).int().argmax(dim=-1).max().item()) + 1
        return tokens.shape[1]  # 'last' / 'first' pooling and others: no safe truncation
    text = getattr(model, "text", None)
    pad_id = getattr(getattr(text, "config", None), "pad_token_id", None)
    if pad_id is None:
        return tokens.shape[1]
    nonpad = (tokens != pad_id).any(dim=0).nonzero()
    return int(nonpad.max().item()) + 1 if len(nonpad) else 1


def encode_text(model: torch.nn.Module, tokens: torch.Tensor, normalize: bool = True,
                truncate: bool = True) -> torch.Tensor:
    """Text embeddings of token ids, running the tower only up to the longest caption.

    Equals ``model.encode_text(tokens, normalize)`` (to float rounding) for OpenCLIP's causal
    text tower and for Hugging Face towers with a padding mask.
    """
    if not truncate:
        return model.encode_text(tokens, normalize=normalize)
    length = used_length(model, tokens)
    tokens = tokens[:, :length]
    if _builtin_text_tower(model):
        cast_dtype = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast_dtype)
        x = x + model.positional_embedding[:length].to(cast_dtype)
        mask = model.attn_mask[:length, :length] if model.attn_mask is not None else None
        x = model.transformer(x, attn_mask=mask)
        x = model.ln_final(x)
        x = text_global_pool(x, tokens, model.text_pool_type,
                             eos_token_id=getattr(model, "text_eos_id", None))
        proj = model.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    elif isinstance(model, CustomTextCLIP):
        x = model.text(tokens)
    else:
        return model.encode_text(tokens, normalize=normalize)
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
