"""Paraphrase and negation generation for captions (GitHub issue 4).

Two backends behind one protocol (:class:`CaptionBackend`: ``generate`` / ``agenerate``):

* ``rules`` — offline, deterministic, the default (:mod:`.rules`);
* ``llm`` — the paper's two-stage pipeline (generator + validator) over any OpenAI-compatible
  chat server: Ollama, llama.cpp's server, vLLM (:mod:`.llm`).

:func:`generate_triples` (in :mod:`.batch`) turns a captions file into a triples file;
``semclip generate`` is its command line.
"""

from __future__ import annotations

from typing import Any

from .base import (NEGATION, PARAPHRASE, CaptionBackend, CaptionBackendError, Generation,
                   Generations)

BACKENDS = ("rules", "llm")

__all__ = ["BACKENDS", "NEGATION", "PARAPHRASE", "CaptionBackend", "CaptionBackendError",
           "Generation", "Generations", "make_backend"]


def make_backend(name: str, **cfg: Any) -> CaptionBackend:
    """A backend by name: ``make_backend("rules")`` or ``make_backend("llm", base_url=...,
    generator_model=..., validator_model=...)``; ``cfg`` are fields of its config dataclass."""
    if name == "rules":
        from .rules import RulesBackend, RulesConfig
        return RulesBackend(_config(RulesConfig, name, cfg))
    if name == "llm":
        from .llm import LLMBackend, LLMConfig
        return LLMBackend(_config(LLMConfig, name, cfg))
    raise ValueError(f"unknown caption backend {name!r}; use one of {', '.join(BACKENDS)}")


def _config(cls, name: str, cfg: dict[str, Any]):
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) for the {name} backend: {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    return cls(**cfg)
