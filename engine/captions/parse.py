"""A light analysis of one English caption: tokens, first noun phrase, main verb, lists, PPs.

There is no tagger. Word classes come from closed lists (determiners, prepositions, auxiliaries)
and the lexicon (verbs, adjectives); a few positional rules tell a participle ("a man *riding* a
wave") from a modifier ("a *sleeping* dog"): a verb form follows its noun and is followed by a
determiner or a preposition, a modifier follows a determiner or adjective and precedes its noun.
That is enough for short declarative captions (COCO, the shapes world); a rule that cannot place
what it needs simply produces nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from .lexicon import Lexicon

DETERMINERS = frozenset(
    "a an the this that these those some several many few each every another various multiple "
    "both numerous his her their its my our your one two three four five six seven eight nine ten "
    "eleven twelve no any".split())
PLURAL_DETERMINERS = frozenset(
    "these those several many few various multiple both numerous two three four five six seven "
    "eight nine ten eleven twelve".split())
AUXILIARIES = frozenset(
    "is are was were am has have had can could will would may might should must does do did "
    "cannot".split())
PREPOSITIONS = frozenset(
    "in on at by with without near under over behind beside between beneath above below inside "
    "outside into onto through across along around against toward towards from of for to down up "
    "off past among during atop underneath via like".split())
LOCATION_PREPOSITIONS = frozenset(
    "in on at near under over behind beside beneath above below inside outside along across "
    "around against atop underneath by through down past toward towards".split())
COMPOUND_PREPOSITIONS = (("in", "front", "of"), ("on", "top", "of"), ("next", "to"),
                         ("close", "to"), ("in", "the", "middle", "of"))
PLURAL_QUANTIFIERS = frozenset(("a few", "a few of", "a couple", "a couple of", "a lot of",
                                "lots of", "a number of", "some of"))
# after a verb these introduce its complement ("looking at", "surrounded by"), not a place
VERB_COMPLEMENT_PREPOSITIONS = frozenset("at by to into for of from".split())
OBJECT_PRONOUNS = frozenset("it them him me us you there here".split())
RELATIVES = frozenset("that who which whose where".split())
CLAUSE_BREAKS = frozenset("but while whereas although though as ;".split())
# words that end a noun phrase besides prepositions and verbs
PHRASE_BREAKS = frozenset("when because so then if until than".split())
PARTICLE_NEXT = frozenset("and to up down out off away together around back , or".split())
META_NOUNS = frozenset("image picture photo photograph pic scene view shot snapshot".split())
# "a picture of X" framing: the description proper starts after it
PICTURE_PREFIXES = tuple(tuple(p.split()) for p in (
    "a picture of", "a photo of", "an image of", "a photograph of", "a close up of",
    "a closeup of", "a view of", "a shot of", "an image showing", "a picture showing",
    "a photo showing", "an image that shows"))
CLOSE_UP_PREFIXES = (("a", "close", "up", "of"), ("a", "closeup", "of"))
NEGATION_WORDS = frozenset(
    "no not never none nothing nobody nowhere neither nor without lacking lacks lack absent "
    "missing cannot".split())
CONTRACTIONS = {
    "isn't": "is not", "aren't": "are not", "wasn't": "was not", "weren't": "were not",
    "doesn't": "does not", "don't": "do not", "didn't": "did not", "can't": "cannot",
    "won't": "will not", "hasn't": "has not", "haven't": "have not", "couldn't": "could not",
    "shouldn't": "should not", "there's": "there is", "it's": "it is", "that's": "that is",
}
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*|[,;]")


def tokenize(text: str) -> list[str]:
    """Words (case kept, contractions expanded) and the commas/semicolons between them."""
    out: list[str] = []
    for tok in _TOKEN.findall(text):
        tok = tok.replace("’", "'")
        expanded = CONTRACTIONS.get(tok.lower())
        if expanded:
            words = expanded.split()
            if tok[0].isupper():
                words[0] = words[0].capitalize()
            out.extend(words)
        elif tok.lower().endswith("'s") and tok.lower()[:-2] in ("he", "she", "it", "there"):
            out.extend([tok[:-2], "is"])
        else:
            out.append(tok)
    return out


@dataclass(frozen=True)
class Style:
    """Surface style of the original: restored on every generated text."""

    capital: bool
    period: bool

    def apply(self, tokens: list[str]) -> str:
        text = " ".join(tokens).replace(" ,", ",").replace(" ;", ";")
        text = re.sub(r"[,;]\s*$", "", text).strip()
        if self.capital and text:
            text = text[0].upper() + text[1:]
        return text + "." if self.period and text else text


@dataclass(frozen=True)
class Chunk:
    """A base noun phrase ``[start, end)``: determiner tokens ``[start, det_end)``, head last."""

    start: int
    det_end: int
    end: int

    @property
    def has_det(self) -> bool:
        return self.det_end > self.start

    @property
    def head(self) -> Optional[int]:
        return self.end - 1 if self.end > self.det_end else None


class Caption:
    """One analysed caption. ``low`` is the lowercase token list every rule inspects."""

    def __init__(self, text: str, lex: Lexicon):
        self.text, self.lex = text, lex
        stripped = text.strip()
        self.style = Style(capital=stripped[:1].isupper(), period=stripped.endswith("."))
        toks = tokenize(stripped)
        if stripped.upper() == stripped:  # ALL-CAPS captions: write them back in lower case
            toks = [t.lower() for t in toks]
        elif toks and toks[0][:1].isupper() and (len(toks[0]) == 1 or not toks[0].isupper()):
            toks[0] = toks[0].lower()  # sentence-initial capital ("A", "The"); Style restores it
        self.toks = toks
        self.low = [t.lower() for t in toks]
        self.n = len(toks)
        self.clause_end = self._clause_end()
        self.existential = self.n > 2 and self.low[0] == "there" and self.low[1] in ("is", "are", "was", "were")
        # "a picture of a dog on a bench" is framed; "a picture of a dog is on a wall" is not
        self.body = self._prefix_len()
        self.verb, self.vtype = self._main_verb()
        if self.body and self.vtype in ("aux", "finite"):
            self.body = 0
        self.subject = self.chunk(2 if self.existential else self.body)

    # ---- word classes ----------------------------------------------------------------------
    def word(self, i: int) -> Optional[str]:
        return self.low[i] if 0 <= i < self.n else None

    def is_plural_word(self, i: int) -> bool:
        w = self.word(i)
        return w is not None and w not in DETERMINERS and self.lex.is_plural(w)

    def verb_type(self, i: int) -> Optional[str]:
        """'aux', 'finite' or 'participle' when token ``i`` is used as a verb, else None."""
        w, prev, nxt = self.low[i], self.word(i - 1), self.word(i + 1)
        if w in AUXILIARIES:
            return None if w == "can" and prev in DETERMINERS else "aux"  # "a can of soda"
        lemma = self.lex.lemma(w)
        if lemma is None or prev is None or prev in DETERMINERS or prev in PREPOSITIONS:
            return None
        telling_next = (nxt is None or nxt in DETERMINERS or nxt in PREPOSITIONS
                        or nxt in PARTICLE_NEXT or nxt.endswith("ly"))
        if w == lemma:  # a base form is a verb only after a plural subject: "people watch"
            plural_subject = self.is_plural_word(i - 1) and prev not in self.lex.adjectives
            return "finite" if plural_subject and telling_next else None
        if w.endswith("ing") or w == self.lex.participle(lemma):
            if w in self.lex.ing_nouns and nxt not in DETERMINERS:
                return None
            if prev in self.lex.adjectives or prev == "and":
                return "participle" if telling_next else None
            return "participle" if w.endswith("ing") or telling_next else None
        if w == self.lex.third(lemma):
            if prev == ",":
                return None  # "a burger, fries"
            # "signs", "stands" are nouns too: a verb only right after a determined subject
            return "finite" if lemma not in self.lex.noun_like or self._subject_before(i) else None
        if w == self.lex.past(lemma):
            return "finite"
        return None

    def _subject_before(self, i: int) -> bool:
        """Whether tokens before ``i`` are one determined noun phrase ("a person" stands)."""
        words = self.low[self.body:i]
        return (len(words) >= 2 and words[0] in DETERMINERS
                and not any(w in PREPOSITIONS or w in (",", "and", "or") for w in words))

    def _clause_end(self) -> int:
        for i, w in enumerate(self.low):
            if i and w in CLAUSE_BREAKS:
                return i - 1 if self.low[i - 1] == "," else i
            if i and w == "," and self.word(i + 1) in ("with", "without"):
                return i  # "a bowl is on a table, with no cup in sight"
        return self.n

    def _prefix_len(self) -> int:
        for prefix in PICTURE_PREFIXES:
            if tuple(self.low[:len(prefix)]) == prefix and self.n > len(prefix):
                return len(prefix)
        return 0

    def _main_verb(self) -> tuple[Optional[int], Optional[str]]:
        if self.existential:
            return 1, "existential"
        first_participle = None
        for i in range(self.body + 1, self.clause_end):
            kind = self.verb_type(i)
            if kind in ("aux", "finite"):
                return i, kind
            if kind == "participle" and first_participle is None:
                first_participle = i
        return (first_participle, "participle") if first_participle is not None else (None, None)

    # ---- phrases ---------------------------------------------------------------------------
    def determiner_end(self, i: int) -> int:
        """End of a (possibly multi-word) determiner starting at ``i`` (``i`` if none)."""
        for q in self.lex.quantifiers:
            if tuple(self.low[i:i + len(q)]) == q:
                return i + len(q)
        if self.word(i) in DETERMINERS:
            return i + 1
        return i

    def chunk(self, start: int) -> Chunk:
        """The base noun phrase at ``start``: determiner, modifiers, head (no PPs)."""
        det_end = self.determiner_end(start)
        j = det_end
        while j < self.n:
            w = self.low[j]
            if w == "and" and self._between_adjectives(j):
                j += 1  # "a red and white room"
                continue
            if (self.preposition_at(j) or w in AUXILIARIES or w in RELATIVES or w in CLAUSE_BREAKS
                    or w in PHRASE_BREAKS or w in (",", "and", "or")
                    or (j > det_end and self.verb_type(j))):
                break
            j += 1
        return Chunk(start, det_end, j)

    def _between_adjectives(self, j: int) -> bool:
        adjectives = self.lex.adjectives
        return self.word(j - 1) in adjectives and self.word(j + 1) in adjectives and \
            self.word(j + 2) not in (None, ",", "and") and self.word(j + 2) not in PREPOSITIONS

    def is_plural_chunk(self, chunk: Chunk) -> bool:
        det = " ".join(self.low[chunk.start:chunk.det_end])
        if det in PLURAL_DETERMINERS or det in PLURAL_QUANTIFIERS:
            return True  # "two dogs", "lots of people" (but "a group of people" is singular)
        return chunk.head is not None and self.is_plural_word(chunk.head)

    def is_pronoun(self, i: int) -> bool:
        """'it', 'them', or a bare 'this'/'that' (not 'this image')."""
        return self.word(i) in OBJECT_PRONOUNS or (self.word(i) in ("this", "that")
                                                   and self.chunk(i).head is None)

    def tail_is_predicate(self) -> bool:
        """Whether the second clause lacks its own subject ("..., but lacks a bottle"): then
        rules that rebuild the first clause would leave it dangling."""
        k = self.clause_end + (1 if self.word(self.clause_end) == "," else 0)
        nxt = self.word(k + 1) if self.word(k) in CLAUSE_BREAKS else None
        return nxt is not None and self.lex.lemma(nxt) is not None

    def has_verb(self, start: int, end: int) -> bool:
        return any(self.verb_type(i) for i in range(start, end))

    def has_cue(self, start: int = 0, end: Optional[int] = None) -> bool:
        """Whether tokens ``[start, end)`` contain a negation word."""
        words = self.low[start:self.n if end is None else end]
        return any(w in NEGATION_WORDS for w in words) or "free of" in " ".join(words)

    def preposition_at(self, i: int) -> int:
        """Length of the (compound) preposition starting at ``i``; 0 if none."""
        for comp in COMPOUND_PREPOSITIONS:
            if tuple(self.low[i:i + len(comp)]) == comp:
                return len(comp)
        return 1 if self.word(i) in PREPOSITIONS else 0

    def after_verb(self) -> int:
        """Index after the main verb group ("is not standing"), or after the subject."""
        if self.verb is None or self.vtype == "existential":
            return self.subject.end
        i = self.verb
        while i < self.clause_end and (self.verb_type(i) or self.low[i] == "not"):
            i += 1
        return i

    def final_location_pp(self) -> Optional[tuple[int, int]]:
        """``(pp_start, object_start)`` of the place phrase that ends the first clause, when it
        clearly belongs to the main verb (or, verbless, the subject): its object is one noun
        phrase (an ``of`` attachment allowed) and no other verb or ``with`` comes between."""
        start = self.after_verb()
        for i in range(self.clause_end - 2, start - 1, -1):
            size = self.preposition_at(i)
            if not size or (size == 1 and self.low[i] not in LOCATION_PREPOSITIONS):
                continue
            if i > 0 and self.preposition_at(i - 1) > 1:
                continue  # inside a compound: "in front of" is found at "in"
            if self.low[i] in VERB_COMPLEMENT_PREPOSITIONS and i and self.verb_type(i - 1):
                return None
            obj = i + size
            tail = range(obj, self.clause_end)
            if obj >= self.clause_end or self.is_pronoun(obj) or any(
                    self.low[k] in (",", "and", "or") or self.verb_type(k)
                    or (self.low[k] in PREPOSITIONS and self.low[k] != "of") for k in tail):
                return None
            if "with" in self.low[start:i] or self.has_verb(start, i):
                return None  # "a bird with a bear on the other side": whose side?
            return i, obj
        return None

    def conjuncts(self) -> list[tuple[int, int]]:
        """Spans of a verbless caption that is a list of noun phrases ("a red circle on the left
        and a blue square"), each with a determiner; [] otherwise."""
        if self.verb is not None or self.clause_end != self.n:
            return []
        spans, start = [], 0
        for i, w in enumerate(self.low + [","]):
            if w in (",", "and"):
                if i > start:
                    spans.append((start, i))
                start = i + 1
        if len(spans) < 2:
            return []
        for s, e in spans:
            if self.determiner_end(s) == s:
                return []
            pp = [k for k in range(s, e) if self.low[k] in PREPOSITIONS]
            if pp and not (self.low[pp[0]] in LOCATION_PREPOSITIONS and e - pp[0] <= 4):
                return []  # only short position PPs ("on the left"): others may attach elsewhere
        return spans
