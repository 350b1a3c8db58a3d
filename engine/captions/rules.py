"""The offline default backend: deterministic rules, no network, well under 5 ms a caption.

Negations of several kinds (``determiner``, ``existential``, ``verbal``, ``prepositional``,
``non_verbal``, and ``affirmation`` for captions that already negate) and paraphrases of several
kinds (``synonym``, ``voice``, ``reorder``, ``template``); see :mod:`.negate` and
:mod:`.paraphrase`. Nothing validates them, so their ``accepted`` is None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from .base import NEGATION, PARAPHRASE, Generation, Generations, ThreadedAsyncMixin
from .lexicon import load_lexicon
from .negate import NEGATORS
from .paraphrase import PARAPHRASERS
from .parse import Caption

RULES_VERSION = "2"  # bump when a rule changes its output: batch caches key on it
_AN_EXCEPTIONS = ("one", "uni", "use", "usu", "eu", "ewe", "u-")
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")


@dataclass(frozen=True)
class RulesConfig:
    """Settings of the rules backend."""

    max_paraphrases: int = 6
    max_negations: int = 6
    lexicon: Optional[Union[str, Path]] = None  # None = the shipped engine/captions/lexicon.json


def fix_articles(tokens: list[str]) -> list[str]:
    """'a' / 'an' agree with the next word ('a image' -> 'an image', 'an big' -> 'a big')."""
    out = list(tokens)
    for i, tok in enumerate(out[:-1]):
        if tok.lower() not in ("a", "an"):
            continue
        nxt = out[i + 1].lower()
        vowel = (nxt[:1] in "aeiou" and not nxt.startswith(_AN_EXCEPTIONS)) or nxt.startswith(_SILENT_H)
        word = "an" if vowel else "a"
        out[i] = word.capitalize() if tok[0].isupper() else word
    return out


def _normal(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", "", text.lower()).strip()


class RulesBackend(ThreadedAsyncMixin):
    """Paraphrases and negations by rule (see the module docstring)."""

    name = "rules"

    def __init__(self, config: Optional[RulesConfig] = None, **overrides):
        self.config = config or RulesConfig(**overrides)
        self.lexicon = load_lexicon(self.config.lexicon)

    @property
    def identity(self) -> str:
        return f"rules/{RULES_VERSION}/lexicon-{self.lexicon.version}"

    def generate(self, caption: str) -> Generations:
        """All rule outputs for ``caption``, deduplicated, in the preferred order of kinds."""
        result = Generations(caption)
        if not caption or not caption.strip():
            return result
        c = Caption(caption, self.lexicon)
        if not c.n:
            return result
        for role, rules, limit, items in (
                (PARAPHRASE, PARAPHRASERS, self.config.max_paraphrases, result.paraphrases),
                (NEGATION, NEGATORS, self.config.max_negations, result.negations)):
            seen = {_normal(caption)}
            for kind, rule in rules:
                for tokens in rule(c):
                    text = c.style.apply(fix_articles(tokens))
                    key = _normal(text)
                    if key and key not in seen and len(items) < limit:
                        seen.add(key)
                        items.append(Generation(text, role, kind, self.name))
        return result
