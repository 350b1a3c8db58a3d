"""Every prompt of the LLM backend, in one versioned place, with the parsers of the replies.

The pipeline follows SemCLIP (arXiv 2511.16527): a generator model proposes a paraphrase and a
negation of the caption as JSON; a validator model answers yes/no whether the paraphrase keeps
the meaning and whether the negation contradicts the caption. Change any text here and bump
:data:`PROMPT_VERSION`: batch caches key on it, so old generations are not served for new
prompts.
"""

from __future__ import annotations

import json
import re
from typing import Optional, Sequence

from .base import NEGATION, PARAPHRASE

PROMPT_VERSION = "1"

Messages = list[dict[str, str]]

GENERATOR_SYSTEM = (
    "You rewrite image captions for training a vision-language model.\n"
    "Given a caption, write:\n"
    "- \"paraphrase\": the same content in different words or word order. It must be true of "
    "exactly the same images: keep every object, attribute, count and relation.\n"
    "- \"negation\": a caption that contradicts the original by negating it (for example with "
    "\"no\", \"not\", \"without\"), so that it cannot be true of the same image. Keep the other "
    "words.\n"
    "Answer with one JSON object and nothing else: "
    "{\"paraphrase\": \"...\", \"negation\": \"...\"}")

VALIDATOR_QUESTIONS = {
    PARAPHRASE: ("Do these two captions have the same meaning, so that every image described by "
                 "caption A is described by caption B and the other way round?"),
    NEGATION: ("Does caption B contradict caption A, so that no image can be described by both "
               "of them?"),
}
VALIDATOR_SYSTEM = "You check pairs of image captions. Answer with one word: yes or no."

_REJECTION_NOTES = {
    PARAPHRASE: "Your paraphrase {text!r} was rejected: it does not keep the meaning of the caption.",
    NEGATION: "Your negation {text!r} was rejected: it does not contradict the caption.",
}
INVALID_JSON_NOTE = ("Your previous answer was not a JSON object with the keys \"paraphrase\" and "
                     "\"negation\". Answer with that JSON object only.")


def generator_messages(caption: str, feedback: Sequence[str] = ()) -> Messages:
    """Chat messages asking the generator for one paraphrase and one negation of ``caption``;
    ``feedback`` holds notes on rejected earlier proposals (for a regeneration)."""
    user = f"Caption: {json.dumps(caption)}"
    if feedback:
        user += "\n\n" + "\n".join(feedback) + "\nWrite a new, different answer."
    return [{"role": "system", "content": GENERATOR_SYSTEM}, {"role": "user", "content": user}]


def validator_messages(role: str, caption: str, candidate: str) -> Messages:
    """Chat messages asking the validator whether ``candidate`` is a good ``role`` of ``caption``."""
    user = (f"{VALIDATOR_QUESTIONS[role]}\n"
            f"Caption A: {json.dumps(caption)}\n"
            f"Caption B: {json.dumps(candidate)}\n"
            "Answer yes or no.")
    return [{"role": "system", "content": VALIDATOR_SYSTEM}, {"role": "user", "content": user}]


def rejection_note(role: str, text: str) -> str:
    return _REJECTION_NOTES[role].format(text=text)


def parse_proposal(content: str) -> Optional[dict[str, str]]:
    """``{"paraphrase": ..., "negation": ...}`` from a generator reply, or None if unusable.

    Tolerates code fences and prose around the object (small models add them).
    """
    match = re.search(r"\{.*\}", content or "", flags=re.DOTALL)
    if not match:
        return None
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    out = {}
    for key in (PARAPHRASE, NEGATION):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            return None
        out[key] = " ".join(value.split())
    return out


def parse_verdict(content: str) -> Optional[bool]:
    """True for a reply starting with yes, False for no, None for anything else."""
    word = re.match(r"[^a-z]*([a-z]+)", (content or "").lower())
    if word is None:
        return None
    return {"yes": True, "no": False}.get(word.group(1))
