"""Cheap, backend-independent checks of generated texts (used by the quality benchmark).

* a negation *negates* when it differs from the caption and adds a negation cue — or, for a
  caption that already negates, removes one ("no car is present" -> "a car is present");
* a paraphrase *keeps the content* when it differs from the caption and keeps every content
  word of it, or a lexicon synonym of it, or another form of the same word ("riding" ->
  "ridden", "dogs" -> "dog").

These are surface checks: they catch a rule that drops words or forgets the negation, not a
subtle change of meaning.
"""

from __future__ import annotations

import re
from typing import Optional

from .lexicon import Lexicon, load_lexicon
from .parse import AUXILIARIES, DETERMINERS, META_NOUNS, NEGATION_WORDS, PREPOSITIONS, RELATIVES, tokenize

NEGATION_CUES = NEGATION_WORDS  # plus the phrase "free of", counted by cue_count
# words a paraphrase may drop or add freely: function words and the framing of templates
FUNCTION_WORDS = (DETERMINERS | AUXILIARIES | PREPOSITIONS | RELATIVES | META_NOUNS | frozenset(
    "and or but there it its they them he she while being been be as , ; in which side "
    # the framing verbs of "this image shows/features/contains X" and their forms
    "show shows shown showing feature features featured featuring depict depicts depicted "
    "depicting contain contains contained containing include includes included including "
    "display displays displayed displaying".split()))


def words(text: str) -> list[str]:
    return [w.lower() for w in tokenize(text) if w not in (",", ";")]


def cue_count(text: str) -> int:
    """Number of negation cues in ``text`` ('free of' counts as one)."""
    ws = words(text)
    return sum(w in NEGATION_CUES for w in ws) + len(re.findall(r"\bfree of\b", " ".join(ws)))


def same_text(a: str, b: str) -> bool:
    return words(a) == words(b)


def negates(caption: str, negation: str) -> bool:
    """Differs from ``caption`` and adds a negation cue, or removes one from a negated caption."""
    if same_text(caption, negation):
        return False
    before, after = cue_count(caption), cue_count(negation)
    return after > before or (before > 0 and after < before)


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in FUNCTION_WORDS and w not in NEGATION_CUES]


def _forms(word: str, lex: Lexicon) -> set[str]:
    """The word, its noun singular and its verb lemma: what counts as "the same word"."""
    forms = {word, lex.singular(word)}
    lemma = lex.lemma(word)
    if lemma:
        forms.add(lemma)
    return forms


def missing_content(caption: str, paraphrase: str, lex: Optional[Lexicon] = None) -> list[str]:
    """Content words of ``caption`` that ``paraphrase`` lost (no form and no synonym kept)."""
    lex = lex or load_lexicon()
    para_words = words(paraphrase)
    para_text = " " + " ".join(para_words) + " "
    para_forms = set().union(*(_forms(w, lex) for w in para_words)) if para_words else set()
    lost = []
    for w in content_words(caption):
        if _forms(w, lex) & para_forms:
            continue
        synonyms = [s for f in _forms(w, lex) for s in lex.synonyms.get(f, ())]
        # a phrase synonym ("looking at" -> "watching") covers each of its words
        synonyms += [s for phrase, subs in lex.synonyms.items() if " " in phrase
                     and w in phrase.split() for s in subs]
        if any(f" {s} " in para_text or _forms(s, lex) & para_forms for s in synonyms):
            continue
        lost.append(w)
    return lost


def keeps_content(caption: str, paraphrase: str, lex: Optional[Lexicon] = None) -> bool:
    """Differs from ``caption`` and loses none of its content words (see module docstring)."""
    return not same_text(caption, paraphrase) and not missing_content(caption, paraphrase, lex)
