"""Exact predicates over a shapes-world scene, written in a small readable language.

A scene is a sequence of objects, each a mapping with ``shape``, ``colour``, ``size`` and
``position`` (``engine.data.shapes.world.ShapeObject`` as a dict, as in ``Gallery.objects``).

An *object description* is a run of canonical words, each an attribute value the object must
have ("red", "circle", "large", "left") or, with a ``non-`` prefix, must not have
("non-square"); ``any`` matches every object. A *predicate* combines descriptions:

=========================  ===============================================================
``some(red circle)``       at least one object fits the description
``none(orange)``           no object fits it
``all(square)``            every object fits it
``count(red) >= 2``        how many objects fit (``count(any)`` counts them all);
                           ``==  !=  >=  <=  >  <``
``left_of(star, square)``  some star lies in a third left of some square (``right_of`` too)
``leftmost(blue)``         the leftmost object fits the description (``rightmost`` too)
``bigger(circle, star)``   some circle is large and some other object, a star, is small
                           (``smaller`` the other way round)
``not P``, ``P and Q``, ``P or Q``, ``( P )``   as usual; ``and`` binds tighter than ``or``
=========================  ===============================================================

Parsing never evaluates Python code; an unknown word or a malformed expression raises
:class:`PredicateError` naming the offending token.
"""

from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from engine.data.shapes.world import COLOURS, POSITIONS, SHAPES, SIZES

SceneObjects = Sequence[Mapping[str, Any]]

# canonical word -> the attribute it constrains
ATTRIBUTE_OF: dict[str, str] = {
    **{s: "shape" for s in SHAPES}, **{c: "colour" for c in COLOURS},
    **{s: "size" for s in SIZES}, **{p: "position" for p in POSITIONS},
}
ANY_WORD = "any"
COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "==": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le,
    ">": operator.gt, "<": operator.lt,
}


class PredicateError(ValueError):
    """A predicate expression that does not parse; the message names the token and its place."""


@dataclass(frozen=True)
class ObjectDesc:
    """Attribute values an object must have (``required``) and must not have (``excluded``)."""

    required: tuple[tuple[str, str], ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether one object fits the description."""
        return (all(obj.get(key) == value for key, value in self.required)
                and not any(obj.get(key) == value for key, value in self.excluded))

    def any_in(self, objects: SceneObjects) -> bool:
        """Whether some object of the scene fits the description."""
        return any(self.matches(obj) for obj in objects)

    def has(self, attribute: str) -> bool:
        """Whether the description requires a value of ``attribute`` ("shape", "colour"...)."""
        return any(key == attribute for key, _ in self.required)

    @property
    def is_empty(self) -> bool:
        return not self.required and not self.excluded

    def __str__(self) -> str:
        words = [value for _, value in self.required] + [f"non-{value}" for _, value in self.excluded]
        return " ".join(words) or ANY_WORD


def parse_desc(words: Sequence[str]) -> ObjectDesc:
    """An :class:`ObjectDesc` from canonical words ("large", "red", "non-square", "any")."""
    required: dict[str, str] = {}
    excluded: list[tuple[str, str]] = []
    for word in words:
        negated = word.startswith("non-")
        value = word[4:] if negated else word
        if word == ANY_WORD:
            continue
        if value not in ATTRIBUTE_OF:
            raise PredicateError(f"unknown word {word!r}: use a shape, colour, size or position "
                                 f"({', '.join(ATTRIBUTE_OF)}), optionally as non-WORD, or 'any'")
        key = ATTRIBUTE_OF[value]
        if negated:
            excluded.append((key, value))
        elif required.setdefault(key, value) != value:
            raise PredicateError(f"{' '.join(words)!r} asks for two {key}s at once")
    return ObjectDesc(tuple(required.items()), tuple(excluded))


# ---------------------------------------------------------------------------------------------
# predicates
# ---------------------------------------------------------------------------------------------

class Predicate:
    """A yes/no question about a scene; call it with the scene's objects."""

    def __call__(self, objects: SceneObjects) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Quantified(Predicate):
    """``some``/``none``/``all`` objects fit a description."""

    quantifier: str
    desc: ObjectDesc

    def __call__(self, objects: SceneObjects) -> bool:
        fits = [self.desc.matches(obj) for obj in objects]
        if self.quantifier == "some":
            return any(fits)
        if self.quantifier == "none":
            return not any(fits)
        return bool(fits) and all(fits)

    def __str__(self) -> str:
        return f"{self.quantifier}({self.desc})"


@dataclass(frozen=True)
class Count(Predicate):
    """How many objects fit a description, compared with a number."""

    desc: ObjectDesc
    op: str
    number: int

    def __call__(self, objects: SceneObjects) -> bool:
        return COMPARISONS[self.op](sum(self.desc.matches(obj) for obj in objects), self.number)

    def __str__(self) -> str:
        return f"count({self.desc}) {self.op} {self.number}"


def _column(obj: Mapping[str, Any]) -> int:
    return POSITIONS.index(obj["position"])


def _larger(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return SIZES.index(a["size"]) > SIZES.index(b["size"])


# relation name -> whether object a stands in it to a different object b
RELATIONS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], bool]] = {
    "left_of": lambda a, b: _column(a) < _column(b),
    "right_of": lambda a, b: _column(a) > _column(b),
    "bigger": _larger,
    "smaller": lambda a, b: _larger(b, a),
}


@dataclass(frozen=True)
class Relation(Predicate):
    """Two different objects, one fitting each description, in a relation (left_of, bigger...)."""

    name: str
    first: ObjectDesc
    second: ObjectDesc

    def __call__(self, objects: SceneObjects) -> bool:
        holds = RELATIONS[self.name]
        return any(self.first.matches(a) and self.second.matches(b) and holds(a, b)
                   for i, a in enumerate(objects) for j, b in enumerate(objects) if i != j)

    def __str__(self) -> str:
        return f"{self.name}({self.first}, {self.second})"


@dataclass(frozen=True)
class Extreme(Predicate):
    """The leftmost or rightmost object fits a description."""

    side: str  # "leftmost" | "rightmost"
    desc: ObjectDesc

    def __call__(self, objects: SceneObjects) -> bool:
        if not objects:
            return False
        pick = min if self.side == "leftmost" else max
        return self.desc.matches(pick(objects, key=_column))

    def __str__(self) -> str:
        return f"{self.side}({self.desc})"


@dataclass(frozen=True)
class Not(Predicate):
    inner: Predicate

    def __call__(self, objects: SceneObjects) -> bool:
        return not self.inner(objects)

    def __str__(self) -> str:
        return f"not {self.inner}"


@dataclass(frozen=True)
class Junction(Predicate):
    """``and`` / ``or`` of two or more predicates."""

    op: str
    parts: tuple[Predicate, ...]

    def __call__(self, objects: SceneObjects) -> bool:
        results = (part(objects) for part in self.parts)
        return all(results) if self.op == "and" else any(results)

    def __str__(self) -> str:
        return "(" + f" {self.op} ".join(map(str, self.parts)) + ")"


# ---------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<op>==|!=|>=|<=|>|<)|(?P<punct>[(),])|(?P<number>\d+)"
                    r"|(?P<word>[a-z][a-z_-]*))", re.IGNORECASE)
QUANTIFIERS = ("some", "none", "all")
EXTREMES = ("leftmost", "rightmost")


def _tokenize(text: str) -> list[tuple[str, int]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise PredicateError(f"unexpected character {text[pos:].lstrip()[:1]!r} at column "
                                 f"{pos + 1} of {text!r}")
        tokens.append((match.group(match.lastgroup).lower(), match.start(match.lastgroup)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text, self.tokens, self.i = text, _tokenize(text), 0

    def peek(self) -> str:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else ""

    def take(self, expected: str = "") -> str:
        token = self.peek()
        if not token or (expected and token != expected):
            where = (f"at column {self.tokens[self.i][1] + 1}" if token else "at the end")
            want = f"expected {expected!r}" if expected else "expected more"
            raise PredicateError(f"{want} but found {token or 'nothing'!r} {where} of {self.text!r}")
        self.i += 1
        return token

    def expr(self) -> Predicate:
        parts = [self.conjunction()]
        while self.peek() == "or":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Junction("or", tuple(parts))

    def conjunction(self) -> Predicate:
        parts = [self.factor()]
        while self.peek() == "and":
            self.take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else Junction("and", tuple(parts))

    def factor(self) -> Predicate:
        token = self.peek()
        if token == "not":
            self.take()
            return Not(self.factor())
        if token == "(":
            self.take()
            inner = self.expr()
            self.take(")")
            return inner
        name = self.take()
        descs = self.arguments(name)
        if name in QUANTIFIERS:
            return Quantified(name, *descs)
        if name in EXTREMES:
            return Extreme(name, *descs)
        if name in RELATIONS:
            return Relation(name, *descs)
        op = self.take()
        if op not in COMPARISONS:
            raise PredicateError(f"count(...) needs a comparison ({' '.join(COMPARISONS)}), "
                                 f"found {op!r} in {self.text!r}")
        number = self.take()
        if not number.isdigit():
            raise PredicateError(f"count(...) {op} needs a whole number, found {number!r} in {self.text!r}")
        return Count(descs[0], op, int(number))

    def arguments(self, name: str) -> list[ObjectDesc]:
        arity = 2 if name in RELATIONS else 1
        if name not in (*QUANTIFIERS, *EXTREMES, *RELATIONS, "count"):
            raise PredicateError(f"unknown function {name!r} in {self.text!r}; use one of "
                                 f"{', '.join((*QUANTIFIERS, *EXTREMES, *RELATIONS, 'count'))}")
        self.take("(")
        descs = []
        for k in range(arity):
            words = []
            while self.peek() not in ("", ",", ")", "(") and self.peek() not in COMPARISONS:
                words.append(self.take())
            descs.append(parse_desc(words))
            self.take("," if k < arity - 1 else ")")
        return descs


def parse_predicate(text: str) -> Predicate:
    """Parse a predicate expression (see the module docstring); :class:`PredicateError` if bad."""
    parser = _Parser(text)
    if not parser.tokens:
        raise PredicateError("empty predicate")
    predicate = parser.expr()
    if parser.peek():
        raise PredicateError(f"unexpected {parser.peek()!r} at column "
                             f"{parser.tokens[parser.i][1] + 1} of {text!r}")
    return predicate


@functools.lru_cache(maxsize=4096)
def parse_predicate_cached(text: str) -> Predicate:
    """:func:`parse_predicate`, remembered: training evaluates the same few thousand predicates
    on every batch (predicates are immutable, so sharing them is safe)."""
    return parse_predicate(text)
