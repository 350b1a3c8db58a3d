"""The shipped word lists (``lexicon.json``) and the English morphology the rules need.

Plurals, verb forms (third person, -ing, past participle) and lemmas come from small rules plus
the lexicon's exception tables; only verbs the lexicon lists are recognised as verbs, which keeps
noun/verb guesses conservative.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

DEFAULT_LEXICON = Path(__file__).with_name("lexicon.json")
VOWELS = "aeiou"


def _third(base: str) -> str:
    if base in ("have", "be"):
        return {"have": "has", "be": "is"}[base]
    if base.endswith(("s", "x", "z", "ch", "sh", "o")):
        return base + "es"
    if base.endswith("y") and base[-2:-1] not in VOWELS:
        return base[:-1] + "ies"
    return base + "s"


@dataclass(frozen=True)
class Lexicon:
    """Synonyms, plurals and verb tables, with the morphology built on them."""

    version: str
    synonyms: dict[str, tuple[str, ...]]  # word or phrase -> synonyms, preferred first
    noun_synonyms: frozenset[str]  # keys of ``synonyms`` that are nouns (not to swap in "to cross")
    plurals: dict[str, str]
    uncountable: frozenset[str]
    quantifiers: tuple[tuple[str, ...], ...]  # multi-word plural determiners, longest first
    verb_bases: frozenset[str]
    irregular: dict[str, tuple[str, str]]  # base -> (past, past participle)
    doubling: frozenset[str]
    transitive: frozenset[str]
    noun_like: frozenset[str]
    ing_nouns: frozenset[str]
    adjectives: frozenset[str]  # modifiers that precede a noun: "red", "tennis", "parked"
    predicative: frozenset[str]  # true adjectives: "the circle is red" ("is tennis" is not)
    lemmas: dict[str, str]  # any known verb form -> base
    plural_forms: frozenset[str]  # "men", "people", "glasses": plural however they are used

    # ---- verbs ---------------------------------------------------------------------------
    def third(self, base: str) -> str:
        """'sit' -> 'sits', 'watch' -> 'watches', 'carry' -> 'carries'."""
        return _third(base)

    def gerund(self, base: str) -> str:
        """'sit' -> 'sitting', 'ride' -> 'riding', 'lie' -> 'lying'."""
        if base in self.doubling:
            return base + base[-1] + "ing"
        if base.endswith("ie"):
            return base[:-2] + "ying"
        if base.endswith("e") and not base.endswith(("ee", "ye", "oe")) and base != "be":
            return base[:-1] + "ing"
        return base + "ing"

    def past(self, base: str) -> str:
        return self.irregular[base][0] if base in self.irregular else self._regular_ed(base)

    def participle(self, base: str) -> str:
        """'ride' -> 'ridden', 'carry' -> 'carried', 'hold' -> 'held'."""
        return self.irregular[base][1] if base in self.irregular else self._regular_ed(base)

    def _regular_ed(self, base: str) -> str:
        if base in self.doubling:
            return base + base[-1] + "ed"
        if base.endswith("e"):
            return base + "d"
        if base.endswith("y") and base[-2:-1] not in VOWELS:
            return base[:-1] + "ied"
        return base + "ed"

    def lemma(self, word: str) -> Optional[str]:
        """Base form of a known verb form ('riding' -> 'ride'), or None for non-verbs."""
        return self.lemmas.get(word)

    # ---- nouns ---------------------------------------------------------------------------
    def plural(self, noun: str) -> str:
        """'dog' -> 'dogs', 'man' -> 'men', 'box' -> 'boxes'; uncountables and plurals stay."""
        if noun in self.plurals:
            return self.plurals[noun]
        if noun in self.uncountable or self.is_plural(noun):
            return noun
        if noun.endswith("woman"):
            return noun[:-5] + "women"
        if noun.endswith("man") and noun not in ("human", "german", "roman"):
            return noun[:-3] + "men"
        if noun.endswith(("s", "x", "z", "ch", "sh")):
            return noun + "es"
        if noun.endswith("y") and noun[-2:-1] not in VOWELS:
            return noun[:-1] + "ies"
        return noun + "s"

    def is_plural(self, noun: str) -> bool:
        """A plural noun form ('dogs', 'people', 'men'), by the lists and the -s ending."""
        if noun in self.plural_forms:
            return True
        if noun in self.plurals or noun in self.uncountable:
            return False  # incl. "sheep", "fish": singular unless a determiner says otherwise
        return (len(noun) > 3 and noun.endswith("s")
                and not noun.endswith(("ss", "us", "is", "ous", "ics")))

    def singular(self, noun: str) -> str:
        """Inverse of :meth:`plural` for the common cases ('dogs' -> 'dog', 'men' -> 'man')."""
        for single, many in self.plurals.items():
            if many == noun:
                return single
        if not self.is_plural(noun):
            return noun
        if noun.endswith("ies"):
            return noun[:-3] + "y"
        if noun.endswith(("ses", "xes", "zes", "ches", "shes")):
            return noun[:-2]
        return noun[:-1]


def _build(data: dict, version: str) -> Lexicon:
    synonyms: dict[str, list[str]] = {}
    for group in data["synonyms"]["words"]:
        synonyms.setdefault(group[0], []).extend(group[1:])
    plurals = dict(data["plurals"])
    uncountable = frozenset(data["uncountable"])
    noun_groups = data["synonyms"]["nouns"]
    for group in noun_groups:
        synonyms.setdefault(group[0], []).extend(group[1:])
    irregular = {b: (p, pp) for b, (p, pp) in data["irregular_verbs"].items()}
    lex = Lexicon(
        version=version, synonyms={}, noun_synonyms=frozenset(), plurals=plurals, uncountable=uncountable,
        quantifiers=tuple(sorted((tuple(q.split()) for q in set(data["quantifiers"])),
                                 key=len, reverse=True)),
        verb_bases=frozenset(data["verbs"]) | frozenset(irregular),
        irregular=irregular, doubling=frozenset(data["double_final_consonant"]),
        transitive=frozenset(data["transitive_verbs"]), noun_like=frozenset(data["noun_like_verbs"]),
        ing_nouns=frozenset(data["ing_nouns"]),
        adjectives=frozenset(data["adjectives"]) | frozenset(data["noun_modifiers"]),
        predicative=frozenset(data["adjectives"]),
        lemmas={}, plural_forms=frozenset(data["plural_only"])
        | frozenset(v for k, v in plurals.items() if v != k))
    # plural noun synonyms: "bikes" -> "bicycles" (the phrase's last word is the noun)
    for group in noun_groups:
        head, rest = group[0], group[1:]
        many = _pluralise_phrase(lex, head)
        if many != head:
            synonyms.setdefault(many, []).extend(_pluralise_phrase(lex, r) for r in rest)
    lex.synonyms.update({k: tuple(dict.fromkeys(v)) for k, v in synonyms.items()})
    nouns = {g[0] for g in noun_groups} | {_pluralise_phrase(lex, g[0]) for g in noun_groups}
    object.__setattr__(lex, "noun_synonyms", frozenset(nouns))
    # every form of every known verb -> its base (bases win over derived forms: "lay")
    for base in sorted(lex.verb_bases):
        for form in (lex.third(base), lex.gerund(base), lex.past(base), lex.participle(base)):
            lex.lemmas.setdefault(form, base)
    for base in lex.verb_bases:
        lex.lemmas[base] = base
    return lex


def _pluralise_phrase(lex: Lexicon, phrase: str) -> str:
    words = phrase.split()
    return " ".join(words[:-1] + [lex.plural(words[-1])])


@functools.lru_cache(maxsize=4)
def load_lexicon(path: Optional[Union[str, Path]] = None) -> Lexicon:
    """Load (and cache) the lexicon; ``path`` defaults to the shipped ``lexicon.json``."""
    path = Path(path) if path is not None else DEFAULT_LEXICON
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except FileNotFoundError:
        raise FileNotFoundError(f"caption lexicon not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: caption lexicon is not valid JSON ({exc.msg})") from None
    try:
        version = f"{data['version']}-{hashlib.blake2b(raw, digest_size=4).hexdigest()}"
        return _build(data, version)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: malformed caption lexicon ({exc!r})") from None
