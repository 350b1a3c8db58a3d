"""What every caption backend returns, and the one protocol they share.

A backend turns one caption into several paraphrases (c+) and several negations (c−). Each
generated text carries how it was made (``kind``), which backend made it, which stage of that
backend produced it and whether a validator accepted it (``None`` = no validator looked at it,
as for the offline rules). ``generate`` is for batch work; ``agenerate`` is its asyncio twin for
the app, and must never block the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Protocol, runtime_checkable

PARAPHRASE, NEGATION = "paraphrase", "negation"


class CaptionBackendError(RuntimeError):
    """A backend could not produce generations; the message says where and what to do.

    ``fatal`` is True when retrying other captions is pointless (server unreachable, not an
    OpenAI-compatible reply): a batch job stops instead of failing every row the same way.
    """

    def __init__(self, message: str, fatal: bool = False):
        super().__init__(message)
        self.fatal = fatal


@dataclass(frozen=True)
class Generation:
    """One generated paraphrase or negation of a caption."""

    text: str
    role: str  # PARAPHRASE or NEGATION
    kind: str  # e.g. "synonym", "template", "verbal", "existential", "llm"
    backend: str  # e.g. "rules", "llm:phi4"
    accepted: Optional[bool] = None  # the validator's verdict; None = not validated
    stage: str = "rules"  # which stage produced it: "rules", "generator", "regenerator"
    attempt: int = 1  # 1 = first proposal, >1 = produced by a regeneration after a rejection

    @property
    def usable(self) -> bool:
        """Not rejected by a validator (an unvalidated text counts as usable)."""
        return self.accepted is not False


@dataclass
class Generations:
    """All paraphrases and negations a backend produced for one caption."""

    caption: str
    paraphrases: list[Generation] = field(default_factory=list)
    negations: list[Generation] = field(default_factory=list)

    def first(self, role: str) -> Optional[Generation]:
        """The first usable paraphrase or negation (what a batch job writes), or None."""
        items = self.paraphrases if role == PARAPHRASE else self.negations
        return next((g for g in items if g.usable), None)

    def kinds(self, role: str) -> set[str]:
        """Distinct kinds of usable generations of one role."""
        items = self.paraphrases if role == PARAPHRASE else self.negations
        return {g.kind for g in items if g.usable}

    def to_dict(self) -> dict[str, Any]:
        return {"caption": self.caption,
                "paraphrases": [asdict(g) for g in self.paraphrases],
                "negations": [asdict(g) for g in self.negations]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Generations":
        return cls(data["caption"], [Generation(**g) for g in data["paraphrases"]],
                   [Generation(**g) for g in data["negations"]])


@runtime_checkable
class CaptionBackend(Protocol):
    """The protocol of the rules and LLM backends (and of test doubles)."""

    name: str

    @property
    def identity(self) -> str:
        """What makes outputs of this backend differ: name, models, prompt/rules version.

        Batch caches key on it, so a changed model or prompt never serves stale results.
        """
        ...

    def generate(self, caption: str) -> Generations: ...

    async def agenerate(self, caption: str) -> Generations: ...


class ThreadedAsyncMixin:
    """``agenerate`` = ``generate`` in a worker thread, so the event loop stays free."""

    def generate(self, caption: str) -> Generations:  # pragma: no cover - provided by the class
        raise NotImplementedError

    async def agenerate(self, caption: str) -> Generations:
        return await asyncio.to_thread(self.generate, caption)
