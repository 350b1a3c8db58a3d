"""What a free-typed shapes-world query rules out, so the Compare tab can frame what violates it.

A query is read into :class:`Denial` s. A denial names the objects a picture must not show:
``subject`` (the objects it is about) minus ``unless`` (those it still allows):

========================================  =====================================================
"a red circle and no blue square"         blue square
"free of triangles", "lacking any circle" triangles / circle        (no "no/not" needed:
"green is absent", "orange is nowhere"    green / orange             free of, lacking, absent,
"anything but a circle", "except green"   circle / green             without, except, nowhere,
"a star-free scene", "crosses missing"    star / crosses             missing, devoid of, minus,
"crosses don't show up", "skip the stars" crosses / stars            left out, avoid, skip...)
"nothing red", "no circles at all",       red / circles             (pure denials)
"triangles: none", "squares no"           triangles / squares
"nothing non-red"                         non-red (a shape of another colour)
"only squares", "diamonds only",          something other than squares / diamonds / blue
"every shape is blue",                    (exclusives: any other object violates)
"they're all stars", "both are circles"
"exclusively circles and squares"         something other than circles or squares
"no shape is yellow"                      yellow
"nothing that isn't red"                  something other than red   (double negation: red is
"no circle that is not blue"              circle other than blue      required, not denied)
"not without a red shape",                nothing                    (a cancelled denial)
"it is not true that there is no star"
"not every shape is red"                  nothing                    (red ones are allowed)
"every shape is not red"                  red
"a star that is not on the left"          star on the left
"a non-yellow star"                       yellow star
"no red or blue squares"                  red squares / blue squares
========================================  =====================================================

Each denial renders as a short label ("blue square", "something other than squares") that
:func:`objects_match` reads back, so the app can show and check the same strings. A label keeps
only the words the check reads ("I don't want to see any stars" -> "stars"). A misspelt world
word is read as the word ("no yelow stars"): dropped, it would leave "no stars". A relation
between two objects ("no circle left of a square") is not read: it frames nothing rather than
guess which object breaks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Optional, Sequence

from rapidfuzz.distance import OSA

from engine.data.shapes.query import ObjectDesc
from engine.data.shapes.language import SHAPE_WORDS, spoken_colour_words
from engine.data.shapes.world import COLOURS, POSITIONS, SHAPES, SIZES, SYNONYMS, WORDINGS

# ---------------------------------------------------------------------------------------------
# vocabulary: the world's words, its synonyms and everyday words people type
# ---------------------------------------------------------------------------------------------

EVERYDAY_WORDS = {
    "circle": ("ball", "dot", "disc", "round"), "square": ("block", "tile", "cube"),
    "triangle": ("wedge", "pyramid", "three-cornered"), "star": ("starfish",),
    "diamond": ("lozenge", "kite"), "cross": ("plus",),
    "red": ("crimson", "scarlet", "red-hot"), "blue": ("navy", "azure"), "green": ("emerald",),
    "yellow": ("gold", "golden"), "purple": ("violet", "lilac", "lavender"),
    "orange": ("tangerine",), "white": ("snow-white",),
    "large": ("huge", "giant", "enormous", "chunky"), "small": ("mini", "teeny", "petite"),
    "middle": ("centre", "center"),
}
_GENERIC = {"shape", "shapes", "object", "objects", "thing", "things", "figure", "figures",
            "item", "items", "one", "ones", "something", "anything", "everything"}


def _vocabulary() -> dict[str, tuple[str, str]]:
    """word (and plural) -> (attribute, canonical value): the world's words, the everyday ones
    above, and every colour and shape word the models are trained with (the rich language's
    lexicon, the xkcd survey's colour names among them)."""
    vocab: dict[str, tuple[str, str]] = {}
    groups = (("shape", SHAPES), ("colour", tuple(COLOURS)), ("size", SIZES), ("position", POSITIONS))
    for attribute, values in groups:
        for value in values:
            words = {value, *SYNONYMS.get(value, ()), *WORDINGS.get(value, ()), *EVERYDAY_WORDS.get(value, ())}
            if attribute == "colour":  # and the basic colours as nouns: "no reds"
                words |= set(spoken_colour_words()[value]) | {value + "s"}
            if attribute == "shape":  # the world's words get -s; the lexicon lists its plurals
                words |= {w + ("es" if w.endswith(("s", "x")) else "s") for w in words}
                words |= {form for pair in SHAPE_WORDS[value] for form in pair}
            for word in words:
                vocab[word] = (attribute, value)
    return vocab


VOCABULARY = _vocabulary()
# Basic colour names the world does not draw (and no lexicon gives to one it does): "no olive
# pyramids" must not frame every pyramid, as it would with "olive" skipped as an unknown word.
_FOREIGN_COLOURS = frozenset({
    "pink", "brown", "grey", "gray", "black", "teal", "turquoise", "aqua", "cyan", "magenta", "maroon",
    "olive", "khaki", "beige", "tan", "silver", "burgundy", "salmon", "coral", "fuchsia", "taupe",
    "ochre", "periwinkle", "puce", "sage", "seafoam", "slate", "rose", "blush"}) - set(VOCABULARY)
_RELATION = re.compile(r" (?:left|right) of | next to | beside | above | below | than | instead of ")
_PHRASES = sorted((w for w in VOCABULARY if " " in w), key=len, reverse=True)


@lru_cache(maxsize=4096)
def parse_phrase(phrase: str) -> Optional[ObjectDesc]:
    """The object description in a phrase ("large red circle on the left", "boxes"), or None
    when it names no shapes-world attribute and no generic object word ("a dog"). Cached: a
    label is read again for every picture it is checked against."""
    text = " " + re.sub(r"[^a-z\- ]", " ", phrase.lower()) + " "
    if _RELATION.search(text):
        return None  # "shapes left of the circle" is about two objects: we cannot tell
    if _FOREIGN_COLOURS & set(text.split()):
        return None  # "olive pyramids": not the world's green, and no shape is olive
    found: dict[str, str] = {}
    for multi in _PHRASES:  # "round disc", "plus sign", "five-pointed star" before single words
        if f" {multi} " in text:
            attribute, value = VOCABULARY[multi]
            found.setdefault(attribute, value)
            text = text.replace(f" {multi} ", " ")
    generic = False
    excluded: dict[str, str] = {}
    for word in text.split():
        negated = word.startswith("non-")  # "non-red shapes" are the shapes that are not red
        word = word[4:] if negated else word
        known = VOCABULARY.get(word) or VOCABULARY.get(word.rsplit("-", 1)[-1])  # "sea-blue"
        if known:
            (excluded if negated else found).setdefault(*known)
        generic = generic or word in _GENERIC
    if not found and not excluded and not generic:
        return None
    return ObjectDesc(tuple(found.items()), tuple(excluded.items()))


# ---------------------------------------------------------------------------------------------
# denials
# ---------------------------------------------------------------------------------------------

OTHER_THAN = " other than "
ALTERNATIVE = " or "  # "something other than circles or squares"
_SOMETHING = "something"


@dataclass(frozen=True)
class Denial:
    """Objects matching ``subject`` but not ``unless`` must not be in the picture."""

    subject: str  # a phrase; "something" = any object
    unless: str = ""  # phrases the subject may still be, joined by " or " ("" = none)

    @property
    def label(self) -> str:
        return f"{self.subject}{OTHER_THAN}{self.unless}" if self.unless else self.subject

    def violated_by(self, objects: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the picture shows what is denied (an unknown phrase marks nothing)."""
        subject = ObjectDesc() if self.subject == _SOMETHING else parse_phrase(self.subject)
        allowed = [parse_phrase(p) for p in self.unless.split(ALTERNATIVE)] if self.unless else []
        if subject is None or None in allowed:
            return False
        return any(subject.matches(o) and not any(a.matches(o) for a in allowed) for o in objects)

    @classmethod
    def from_label(cls, label: str) -> "Denial":
        subject, sep, unless = label.partition(OTHER_THAN)
        return cls(subject.strip(), unless.strip()) if sep else cls(label.strip())


# A denied phrase runs to the next clause boundary; fillers after it ("at all") close it too.
_END = (r"(?=\s*(?:[,;.!?:]|\band\b|\bbut\b|\bwith\b|\bor\b|\bnor\b|\bthough\b|\bwhile\b"
        r"|\bno\b|\bnot\b|\bwithout\b"
        r"|\bthat\b|\bwhich\b|\banywhere\b|\bat all\b|\bwhatsoever\b|\bhere\b|\bin sight\b"
        r"|\bto be (?:seen|found)\b|\bnearby\b|\baround\b"
        r"|\bin (?:it|this|the (?:picture|image|scene|frame))\b|$))")
# a word that does not open a new clause, and a run of them
_WORD = r"(?:(?!(?:and|but|with|or|nor|that|which|while|though|no|not|without)\b)[a-z][a-z\-]*)"
_PHRASE = rf"(?:{_WORD}(?:\s+{_WORD})*?)"
_FILLER = r"(?:(?:any|a|an|the|one|single|even|of|some|either)\s+)*"
_NO = r"(?:there (?:is|are) )?(?:no|nothing|none|not (?:a single|one|any|a|an))\b"
# "only circles and squares": more things an exclusive allows (never a denial: "and no stars")
_ALTS = (rf"(?P<alts>(?:(?:\s*,)?\s+(?:and|or) (?!(?:no|not|nothing|none|without|they|it|these|those"
         rf"|all|each|every|both)\b){_FILLER}"
         rf"{_PHRASE}{_END})*)")
_GENERIC_NOUN = r"(?:shape|object|thing|figure|item|colou?r)s?"
# "they are mostly red" is no exclusive
_NO_HEDGE = (r"(?!(?:mostly|usually|probably|often|sometimes|maybe|mainly|largely|nearly|almost|kind of"
             r"|sort of)\b)")
_HERE = r"(?:(?:here|in there|in (?:the|this|each|every) (?:picture|pic|image|scene|photo|frame))\s+)?"
# "only one circle" counts and "just left of" places: neither excludes anything
_NOT_EXCLUSIVE = re.compile(r"^(?:one|two|three|a single|single|a couple|a pair|a few|\d"
                            r"|left|right|above|below|next|beside|behind|in front)\b")
# "only show me circles" asks for circles; "just find a star" only asks
_REQUEST = re.compile(r"^(?:find|show|give|get|look for|search for|see|display|pick|bring)"
                      r"(?: me| us)?\s+")
_COUNTED = re.compile(r"^(?:more|fewer|less|other|else)\b")
_PICTURE_OF = re.compile(r"^(?:picture|image|photo|scene|drawing) (?:of|with|showing) ")

_WORLD_WORDS = "|".join(sorted({w for v in (*SHAPES, *COLOURS) for w in (v, v + "s", v + "es")}))
_CONTRACTIONS = [(r"(?<![a-z])w/o\b", "without"),
                 (r"\bwon't\b", "will not"), (r"\bcan't\b", "can not"), (r"\bcannot\b", "can not"),
                 (r"n't\b", " not"), (r"\b(it|there|that|everything|nothing|something)'s\b", r"\1 is"),
                 (r"\bthey're\b", "they are"),
                 (r"\b([a-z]+)'s (nowhere|absent|missing|gone|not)\b", r"\1 is \2"),
                 (r"\b(do|does|did|is|are|was|were|has|have|should|could|would)nt\b", r"\1 not"),
                 (r"\bcant\b", "can not"), (r"(?<![a-z])'em\b", "them"),
                 (r"\bat all (?=(?:on|in|at) the )", ""),  # "no shapes at all in the middle"
                 (r",? but (?:it|they) (?:is|are) not ", " that is not "),
                 # "star-free", "triangle free"; the comma ends the denied phrase
                 (r"\b([a-z]+)-free\b", r"free of \1,"),
                 (rf"\b({_WORLD_WORDS}) free\b(?! (?:of|from|to)\b)", r"free of \1,")]

# (pattern, kind) in the order they are tried; a match is blanked out for later patterns.
_PATTERNS: list[tuple[re.Pattern, str]] = [(re.compile(p), kind) for p, kind in [
    # "it is not true that there is no star": what follows is flipped
    (r"\b(?:it is |that is )?(?:(?:not true|untrue|not the case|not like|not as if|wrong to say"
     r"|incorrect to say)(?: that)?|false that) (?P<rest>[^;,.!?]*)", "flip"),
    # double negation: "nothing that is not red", "no circle that is not blue"
    (rf"\b(?:{_NO}|not (?:(?:want|need|like|see|show(?: me)?|find|have|be) )?(?:anything|any))\s*"
     rf"(?P<subject>(?:{_WORD} )*?){_HERE}(?:that |which )?(?:is|are) not {_FILLER}"
     rf"(?P<unless>{_PHRASE}){_END}{_ALTS}", "only_unless"),
    # a cancelled denial: "not without a red shape", "never lacking yellow"
    (rf"\b(?:not|never) (?:an? (?:picture|pic|image|scene|photo) )?(?:be |being )?"
     rf"(?:without|lacking|lacks?|free of|free from|missing|devoid of) "
     rf"{_FILLER}{_PHRASE}{_END}", "none"),
    # "not only circles" adds, "all but one are red" counts, "not every shape is red" allows
    # red ones: none of them denies a thing
    (r"\bnot (?:only|just|solely|merely|exclusively)\b|\ball (?:but|except) (?:one|two)\b[^;,.!?]*?"
     r"(?=\s+and\b|[;,.!?]|$)|\bnot (?:all|every|everything|each|both)\b[^;,.!?]*?(?=\s+and\b|[;,.!?]|$)"
     r"|\bnot forget\b[^;,.!?]*", "none"),
    # "no shape is yellow", "nothing is green": what no object is
    (rf"\b{_NO}\s*(?P<subject>(?:{_WORD} )*?){_HERE}(?:is|are) {_FILLER}"
     rf"(?P<pred>{_PHRASE}){_END}", "no_is"),
    # exclusives
    (rf"\bthe only {_GENERIC_NOUN} {_HERE}(?:is|are) {_FILLER}"
     rf"(?P<unless>{_PHRASE}){_END}{_ALTS}", "only"),
    (rf"\b(?P<trigger>only|just|solely|exclusively|purely|(?:no|nothing) (?:{_GENERIC_NOUN} )?(?:but|besides|"
     rf"other than|except(?: for)?|apart from)) (?P<unless>{_PHRASE}){_END}{_ALTS}", "only"),
    (rf"\b(?:(?:every|each)(?: single)?|all(?: of)?(?: the)?) (?:shape|object|thing|figure|item)s? "
     rf"{_HERE}"
     rf"(?:is|are) (?:all )?{_FILLER}(?P<unless>{_PHRASE}){_END}{_ALTS}", "only"),
    (rf"\beverything {_HERE}(?:is|are) {_NO_HEDGE}{_FILLER}(?P<unless>{_PHRASE}){_END}{_ALTS}", "only"),
    # "all of them are stars", "they are all red", "each one is blue", "both are circles"
    (rf"(?:^|(?<=[;,:])|\band\b|\bbut\b)\s*(?:(?:(?:all|each|every one|both) of (?:them|these|those)|they"
     rf"|these|those|all|each one|every one|both) {_HERE}(?:is|are) (?:all |both )?{_NO_HEDGE}"
     rf"|it is (?:all|just) ){_FILLER}"
     rf"(?P<unless>{_PHRASE}){_END}{_ALTS}", "only"),
    (rf"\bthe (?:shapes|objects|things|figures) are all {_FILLER}(?P<unless>{_PHRASE}){_END}", "only"),
    # "all circles are red", "every star is big": a circle that is not red breaks it
    (rf"\b(?:every|each|all(?: of)?(?: the)?) (?P<subject>{_PHRASE}) (?:is|are) (?:all )?"
     rf"(?!(?:not|no|never)\b){_NO_HEDGE}{_FILLER}(?P<unless>{_PHRASE}){_END}", "only_unless"),
    # "a red circle, a blue square, that's all": every object named before it is allowed
    (r"^\s*(?P<items>[^;:!?]*?),? (?:and )?(?:nothing (?:else|more)|that is it|that is all)\b", "only_items"),
    (rf"(?:^|(?<=[;,:]))\s*{_FILLER}(?P<unless>{_PHRASE})(?P<alts>(?:,?\s+(?:and|or) {_FILLER}{_PHRASE})*)"
     rf" only\b", "only"),
    (rf"(?:^|(?<=[;,:]))\s*{_FILLER}(?P<unless>{_PHRASE})(?: (?:is|are) the only\b"
     rf"| (?:(?:is|are) )?(?:on its own|(?:all )?alone|by itself)\b"
     rf"|,? (?:with|and|but) (?:no|nothing) other(?P<other> {_GENERIC_NOUN})?\b)", "only"),
    # "a star that is not on the left", "the circle is not red": the subject and what it is not,
    # "a star, not yellow", "a triangle in anything but orange"
    (rf"(?:^|(?<=[;,:])|\band\b|\bwith\b|\bbut\b)\s*{_FILLER}(?P<subject>{_PHRASE})"
     rf"(?: (?:that |which )?(?:is|are) not|,? not| (?:that is |in )?anything but) "
     rf"{_FILLER}(?P<pred>{_PHRASE}){_END}", "merge"),
    # postfix denials: "orange is nowhere", "crosses are missing", "red absent", "blue excepted"
    (rf"(?:^|(?<=[;,:])|\band\b|\bwith\b|\bbut\b|\bwhile\b)\s*{_FILLER}(?P<subject>{_PHRASE}) "
     rf"(?:(?:is|are|appears?|shows? up) )?(?:absent|missing|excluded|excepted|gone|removed|hidden|nowhere"
     rf"|left out|(?:does|do) not(?: appear| show(?: up)?| turn up| exist)?{_END}"
     rf"|never (?:appears?|shows? up|turns? up|exists?|shows?)\b"
     rf"|(?:is|are) not (?:present|there|visible|shown|included|here)\b)",
     "postfix"),
    (r"\bthe (?P<subject>left|right|middle|centre|center)(?: side| third| part)? (?:is|are) empty\b", "postfix"),
    # "triangles: none", "red? none", "circles yes, squares no", "pics missing a star"
    (rf"(?:^|(?<=[;,]))\s*{_FILLER}(?P<subject>{_PHRASE})\s*[:?]\s*(?:none|zero|nil)\b", "postfix"),
    (rf"(?:(?<=yes, )|(?<=yes; ))\s*{_FILLER}(?P<subject>{_PHRASE}) no\b", "postfix"),
    (rf"(?:^|(?<=[;,]))\s*{_FILLER}(?P<subject>{_PHRASE}) no(?=,? {_PHRASE} yes\b)", "postfix"),
    (rf"\b(?:pictures|pics|images|scenes|photos|ones) missing {_FILLER}(?P<subject>{_PHRASE}){_END}",
     "postfix"),
    (rf"\b(?:keep|leave) {_FILLER}(?P<subject>{_PHRASE}) out\b", "postfix"),
    (rf"\b(?:hide|skip|avoid|remove|drop|exclude|without) {_FILLER}"
     rf"(?:ones|pictures|pics|images|scenes|photos) (?:with|that have|that show|showing) "
     rf"{_FILLER}(?P<subject>{_PHRASE}){_END}", "postfix"),
    # prefix denials, with or without "no/not"
    (rf"\b(?:(?:any|every|all)(?: [a-z]+)? (?:but|except(?: for)?|besides|other than)|but not|not|no|"
     rf"nothing|(?:none|neither) of (?:them|the (?P<of>\w+))(?: (?:is|are|can be|could be|should be|"
     rf"may be|will be|must be))?|none|without|free of|free from|"
     rf"lacking|lacks?|lack of|devoid of|(?:in the |complete )?absence of|minus|excluding|except(?: for)?|"
     rf"anything but|everything but|other than|instead of|rather than|never|neither|nor|zero|sans|no sign of|"
     rf"leave out|leaving out|clear of|empty of|avoid|avoiding|exclude|omit|omitting|get rid of|"
     rf"getting rid of|(?:everything|anything|all|any \w+) (?:apart|aside) from|"
     # a verb that also means something else ("drop me a star", "skip to the next one") denies
     # only what follows it with "the", "all" or "any"
     rf"(?:hide|skip|skipping|remove|removing|drop|ditch|take away|taking away)"
     rf"(?= (?:the|all|any|anything)\b))"
     rf"(?: (?:find|see|show|contain|have|include|want)s?(?: me)?)?"
     rf"(?: (?:any |the )?(?:pictures|pics|images|scenes|photos|ones) (?:that (?:have|has|show|contain)s?"
     rf"|with|showing))? {_FILLER}(?P<subject>{_PHRASE}){_END}"
     # more things denied: "or stars", "nor crosses", a list "squares, stars or crosses"
     rf"(?P<more>(?:\s*,\s*(?!(?:a|an|the|and|or|but|with|no|not|nothing)\b){_PHRASE}{_END})+"
     rf"\s*,?\s*(?:(?:or|nor) {_FILLER}|and (?!(?:a|an|the)\b)){_PHRASE}{_END}"
     rf"|(?:\s*,?\s*(?:or|nor) {_FILLER}{_PHRASE}{_END})*)",
     "deny"),
    # "a non-yellow star": a star, but not a yellow one
    (rf"(?:^|(?<=[;,:])|\band\b|\bwith\b|\bbut\b|\ban?\b)\s*non-(?P<pred>[a-z]+) "
     rf"(?P<subject>{_PHRASE}){_END}", "merge"),
    # a bare "all red", "all circles": the whole query is an exclusive
    (rf"^\s*(?:all|everything) (?!.*\b(?:is|are|kinds?|sorts?|types?)\b){_FILLER}(?P<unless>{_PHRASE})"
     rf"\s*[.!]?\s*$", "only"),
]]
_MORE = re.compile(rf"(?:,|\bor\b|\bnor\b|\band\b)\s*(?:(?:or|nor|and)\s+)?{_FILLER}"
                   rf"(?P<phrase>{_PHRASE}){_END}")
_AND_OR = re.compile(rf"(?:and|or) {_FILLER}(?P<phrase>{_PHRASE}){_END}")


def _normalise(query: str) -> str:
    text = " ".join(query.lower().replace("’", "'").split())
    text = re.sub(r"[a-z]+", lambda m: _spelled(m.group()), text)
    for pattern, repl in _CONTRACTIONS:
        text = re.sub(pattern, repl, text)
    return text


# Words a misspelling is read as: the world's single words and the denial words. Dropping
# "yelow" from "no yelow stars" would frame every star.
_SPELLED = frozenset({w for w in VOCABULARY if " " not in w and "-" not in w and len(w) >= 4}
                     | {"nothing", "without", "except", "every", "everything", "anything", "only"})
# Everyday words one letter from a world word, never read as a misspelling of it
_NOT_TYPOS = frozenset({"range", "stare", "stares", "start", "starts", "purely", "bigger", "single",
                        "sorry", "blur", "bleed", "greet", "grease", "creme", "whine", "while",
                        "shaped", "spots", "excepted", "larger", "smaller", "smalt", "lapis"})


@lru_cache(maxsize=4096)
def _spelled(word: str) -> str:
    """A word of the query, or the world word it misspells ("yelow" -> "yellow", "sqaure" ->
    "square", "bleu" -> "blue", "nothign" -> "nothing"): the one word of ``_SPELLED`` with the
    same first letter one edit away (two for words of eight letters or more; for four-letter
    words, two swapped letters only), else the word itself."""
    if (len(word) < 4 or word in _SPELLED or word in VOCABULARY or word in _GENERIC
            or word in _NOT_TYPOS or word in _FOREIGN_COLOURS):
        return word
    allowed = 2 if len(word) >= 8 else 1
    close = {w: _edits(word, w, swaps_only=len(word) == 4) for w in _SPELLED
             if w[0] == word[0] and abs(len(w) - len(word)) <= allowed and (len(word) > 4 or len(w) == 4)}
    best = sorted((d, w) for w, d in close.items() if d <= allowed)
    nearest = [w for d, w in best if d == best[0][0]] if best else []
    # "diamons": "diamond" and "diamonds" are one edit away and mean the same
    meanings = {VOCABULARY.get(w, w) for w in nearest}
    return nearest[0] if len(meanings) == 1 else word


def _edits(a: str, b: str, swaps_only: bool = False) -> int:
    """Edits from ``a`` to ``b``, two neighbouring letters swapped counting one (optimal string
    alignment); with ``swaps_only``, 1 for one such swap and 9 for anything else."""
    if swaps_only:  # "bleu" -> "blue"
        return 1 if a != b and b in {a[:i] + a[i + 1] + a[i] + a[i + 2:] for i in range(len(a) - 1)} else 9
    return OSA.distance(a, b)


def _clean(phrase: str) -> str:
    """Without leading articles and "picture of": "a picture of stars" -> "stars"."""
    phrase = re.sub(rf"^{_FILLER}", "", phrase.strip()).strip()
    return re.sub(rf"^{_FILLER}", "", _PICTURE_OF.sub("", phrase)).strip()


def _subject(phrase: str) -> str:
    phrase = _clean(phrase)
    return phrase if phrase and phrase not in _GENERIC else _SOMETHING


def _merged(subject: str, pred: str) -> Optional[str]:
    """The one object a subject and what it is not describe together: "star" + "on the left"
    -> "star on the left", "cross" + "green" -> "green cross", "red shape" + "circle" -> "red
    circle"; None when they do not combine ("a red circle, not a blue square")."""
    subject = _known_words(_clean(subject))
    # "a star, not a golden one": "one" is the star
    pred = " ".join(w for w in _known_words(_clean(pred)).split() if w not in ("one", "ones"))
    about, denied = parse_phrase(subject), parse_phrase(pred)
    if about is None or denied is None or about.is_empty or denied.is_empty:
        return None
    if about.has("shape") and denied.has("shape"):
        return None
    overridden = {key for key, _ in denied.required}  # "a big blue circle, not small": a small one
    subject = " ".join(w for w in subject.split() if VOCABULARY.get(w, ("",))[0] not in overridden)
    if re.match(r"(?:on|in|at) ", pred):
        return f"{subject} {pred}"
    if denied.has("shape"):
        return " ".join([w for w in subject.split() if w not in _GENERIC] + [pred])
    return _known_words(f"{pred} {subject}")  # "big orange box", not "orange big box"


def parse_denials(query: str) -> list[Denial]:
    """The denials of a query, in the order they occur."""
    return [denial for _, denial in sorted(_scan(_normalise(query)), key=lambda found: found[0])]


def _scan(text: str) -> list[tuple[int, Denial]]:
    found: list[tuple[int, Denial]] = []
    for pattern, kind in _PATTERNS:
        for match in list(pattern.finditer(text)):
            denials = _denials_of(match, kind)
            if denials is None:
                continue  # named nothing we know ("there is not any circle"): left for the rest
            found.extend((match.start(), _tidy(_resolve_one(d, text[:match.start()]))) for d in denials
                         if _readable(d))
            # read: blank it (same length, so positions still order the results)
            start, end = match.span()
            text = text[:start] + ";" + " " * (end - start - 1) + text[end:]
    return found


def _known_words(phrase: str) -> str:
    """The words of a phrase the check reads, size and colour first, so the label the app shows
    reads "stars", not "want to see any stars" ("I don't want to see any stars"), and "big
    orange box", not "orange big box"; "on the" stays before a place ("star on the left"). The
    phrase itself when it names nothing the check knows."""
    words = phrase.split()
    known = {i for i, w in enumerate(words) if w in VOCABULARY or w in _GENERIC
             or w.rsplit("-", 1)[-1] in VOCABULARY}
    for multi in _PHRASES:  # "plus sign": "sign" alone is no word of the world
        size = len(multi.split())
        known |= {i + j for i in range(len(words) - size + 1)
                  if " ".join(words[i:i + size]) == multi for j in range(size)}
    for i in sorted(known):
        if (VOCABULARY.get(words[i], ("",))[0] == "position" and i >= 2 and words[i - 1] == "the"
                and words[i - 2] in ("on", "in", "at")):
            known |= {i - 2, i - 1}
    vague = {i for i in known if words[i] in ("anything", "something", "everything")}
    kept = [words[i] for i in sorted(known - vague if known - vague else known)]
    if not kept:
        return phrase
    order = {"size": 0, "colour": 1}
    return " ".join(sorted(kept, key=lambda w: order.get(VOCABULARY.get(w, ("",))[0], 2)))


def _readable(denial: Denial) -> bool:
    """Whether the check can tell which pictures show the denial's subject: "not sure" and
    "no circle left of a square" (a relation) name no object it can check, so they are left out
    rather than shown as a label that frames nothing."""
    if denial.subject == _SOMETHING:
        return bool(denial.unless)
    if parse_phrase(denial.subject) is None:
        return False
    # "without anything else", "they aren't my favourite shapes": a generic word among words the
    # check cannot read names no object; a plain "no shapes" still does
    known = _known_words(denial.subject)
    vague = known in ("anything", "everything", "something")  # "I don't want anything"
    only_generic = all(w in _GENERIC for w in known.split()) and known != _clean(denial.subject)
    return not vague and not only_generic


def _tidy(denial: Denial) -> Denial:
    """The denial with each of its phrases cut to the words the check reads."""
    def named(phrase: str) -> str:  # "small ones" -> "small shapes"
        return re.sub(r"\bones$", "shapes", re.sub(r"\bone$", "shape", _known_words(phrase)))

    subject = denial.subject if denial.subject == _SOMETHING else named(denial.subject)
    if re.match(r"(?:on|in|at) the ", subject):
        subject = f"a shape {subject}"  # "✗ has a shape in the middle", not "✗ has in the middle"
    unless = ALTERNATIVE.join(named(p) for p in denial.unless.split(ALTERNATIVE)) if denial.unless else ""
    return Denial(subject, unless)


def _resolve_one(denial: Denial, before: str) -> Denial:
    """"a triangle, but not a blue one" denies a blue triangle: "one(s)" takes the last shape named."""
    words = denial.subject.split()
    if not words or words[-1] not in ("one", "ones") or (parse_phrase(denial.subject) or ObjectDesc()).has("shape"):
        return denial
    shapes = [w for w in re.findall(r"[a-z][a-z\-]*", before) if VOCABULARY.get(w, ("",))[0] == "shape"]
    return Denial(" ".join(words[:-1] + [shapes[-1]]), denial.unless) if shapes else denial


def _denials_of(match: re.Match, kind: str) -> Optional[list[Denial]]:
    """What one match denies ([] = nothing: a required or counted thing), or None when the match
    names nothing known and other patterns should still read its words."""
    groups = match.groupdict()
    if kind == "flip":  # a flipped denial is required; a flipped statement is denied
        rest = groups["rest"].strip()
        if _scan(rest):
            return []
        rest = re.sub(r"^there (?:is|are) ", "", rest)
        return [Denial(_clean(rest))] if parse_phrase(rest) else []
    if kind == "none":
        return []
    if kind == "only_items":  # "a red circle, a blue square, that's all"
        items = [_clean(i) for i in re.split(r",\s*|\s+and\s+", groups["items"]) if i.strip()]
        if not items or any(parse_phrase(i) is None or re.search(r"\b(?:no|not|without)\b", i)
                            for i in items):
            return None
        return [Denial(_SOMETHING, ALTERNATIVE.join(items))]
    if kind in ("only", "only_unless"):
        unless = groups["unless"]
        if kind == "only":
            universal_no = re.match(r"(?:not|no|never)\s+(?P<rest>.*)", unless)
            if universal_no:  # "every shape is not red", "they are no circles"
                denied = _clean(universal_no.group("rest"))
                return [Denial(denied)] if parse_phrase(denied) and denied not in _GENERIC else None
            if _REQUEST.match(unless):  # "only show me circles" asks for circles; "just find a star"
                if groups.get("trigger") == "just":
                    return []
                unless = _REQUEST.sub("", unless)
        if _NOT_EXCLUSIVE.match(unless):
            return []  # "only one circle" counts, it does not exclude
        allowed = [_clean(unless)] + [_clean(m.group("phrase")) for m in
                                      _AND_OR.finditer(groups.get("alts") or "")]
        if re.match(r" colou?rs?", groups.get("other") or ""):  # "a red circle with no other colours"
            colours = [v for a in allowed for k, v in (parse_phrase(a) or ObjectDesc()).required if k == "colour"]
            allowed = colours if len(colours) == len(allowed) else allowed
        if all(a in _GENERIC for a in allowed):
            return None  # "stars are the only shapes": "only shapes" allows everything; read on
        if any(parse_phrase(a) is None for a in allowed):
            return None
        return [Denial(_subject(groups.get("subject") or ""), ALTERNATIVE.join(allowed))]
    if kind == "no_is":
        subject, pred = _clean(groups["subject"]), _clean(groups["pred"])
        if parse_phrase(pred) is None:
            return None  # "no circle is there": left to the plain denial
        if not subject or subject in _GENERIC:
            return [Denial(pred)]
        merged = _merged(subject, pred)
        return [Denial(merged)] if merged else None
    if kind == "merge":
        if re.search(r"\bnot (?:a single|any|one single|even one)\b", match.group(0)):
            return None  # "a navy kite, not a single orange shape": a denial of its own
        merged = _merged(groups["subject"], groups["pred"])
        return [Denial(merged)] if merged else None
    if kind == "postfix":
        subject = _clean(groups["subject"])
        return [Denial(subject)] if parse_phrase(subject) and subject not in _GENERIC else None
    subject = _clean(groups["subject"])
    if _COUNTED.match(subject):
        return []  # "no more than two shapes" counts; "no other shapes" needs what it is other than
    of = parse_phrase(groups["of"]) if groups.get("of") else None
    if of is not None and not of.is_empty:  # "none of the boxes are red"
        merged = _merged(groups["of"], groups["subject"])
        if merged:
            return [Denial(merged)]
    phrases = [subject] if subject else []
    phrases += [_clean(m.group("phrase")) for m in _MORE.finditer(groups.get("more") or "")]
    return [Denial(p) for p in _ones_named(_shared_noun(phrases))]


def _shared_noun(phrases: list[str]) -> list[str]:
    """"no red or blue squares" denies red squares and blue squares: the last phrase's noun
    goes to the earlier ones that name none."""
    if len(phrases) < 2:
        return phrases
    noun = _noun_of(phrases[-1], skip_first=True)
    if noun is None:
        return phrases

    def names_a_noun(phrase: str) -> bool:
        desc = parse_phrase(phrase)
        return desc is None or desc.has("shape") or _is_noun(phrase.split()[-1])
    return [p if names_a_noun(p) else f"{p} {noun}" for p in phrases[:-1]] + phrases[-1:]


def _ones_named(phrases: list[str]) -> list[str]:
    """"no red stars or blue ones": "ones" is the noun of the phrase before."""
    named = list(phrases)
    for i in range(1, len(named)):
        words = named[i].split()
        noun = _noun_of(named[i - 1]) if words and words[-1] in ("one", "ones") else None
        if noun:
            named[i] = " ".join(words[:-1] + [noun])
    return named


def _noun_of(phrase: str, skip_first: bool = False) -> Optional[str]:
    """The noun that ends a phrase ("plus signs" of "blue plus signs"), or None."""
    words = phrase.split()
    return next((" ".join(words[i:]) for i in range(int(skip_first), len(words))
                 if _is_noun(" ".join(words[i:]))), None)


def _is_noun(phrase: str) -> bool:
    """A shape word or a generic object word alone: "squares", "plus signs", "shapes"."""
    desc = parse_phrase(phrase)
    return phrase in _GENERIC or (desc is not None and [k for k, _ in desc.required] == ["shape"]
                                  and not desc.excluded)


def negated_terms(query: str) -> list[str]:
    """The labels of what a query denies, in order, lower-cased, without articles.

    >>> negated_terms("a red circle and no blue square")
    ['blue square']
    >>> negated_terms("only squares, free of red")
    ['something other than squares', 'red']
    """
    return [denial.label for denial in parse_denials(query)]


def objects_match(objects: Sequence[Mapping[str, Any]], term: str) -> bool:
    """Whether a scene (shapes-world object dicts) shows a denied term (a :func:`negated_terms` label).

    "blue square" needs a blue square; "triangle" any triangle; "red shape" anything red;
    "large star on the left" a large star in the left third; "something other than squares"
    any object that is not a square. A term that names no known attribute ("a dog") matches
    nothing: we cannot tell, so nothing is marked.
    """
    return Denial.from_label(term).violated_by(objects)
