"""A shapes-world language that covers what people type, grounded in each scene.

Each call of :func:`statement_triple` picks a kind of statement and returns three
:class:`Statement` s about one scene: a true one (the caption), another true wording of the same
meaning (the paraphrase) and a false one in the very wording of the first (the hard negative:
only the picture tells them apart). Kinds: plain descriptions in varied words, pure denials
("nothing orange", "circles are absent"), descriptions with a denial, with and without "no/not"
("free of", "lacking", "absent", "anything but"), exclusives ("only squares"), counts, double
negation ("no shape that is not red"), attributes denied in place ("a circle that is not red"),
and relations (left of, right of, bigger than, leftmost).

Every statement carries its meaning as an :mod:`engine.data.shapes.query` predicate, so its truth is
checked by an evaluator that shares no code with the wording (tests do, on thousands of scenes).
The sentences of ``bench/free_queries.json`` are never produced (a training run can hold them
out); ``bench/free_queries_unseen.json`` is written in words the generator never uses
(lapis, pellet, jonquil...), so that it measures words the models never saw.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from engine.data.shapes.world import COLOURS, POSITIONS, SHAPES, SIZES, ShapeObject

# Words per canonical value: the everyday words a class types (colour names from paint charts,
# fruit and flowers, "navy", "gold"; shape names from geometry and daily life, "ball", "block",
# "wedge"), plus the xkcd survey's colour names (spoken_colour_words()). Taught, not hoped for:
# the pretrained text tower does not place such words near the shape or colour they name
# (its nearest words to "a triangle shape" are "geometry", "abc", "vertices": `python
# bench/minilm_colour_words.py --neighbours`), so a word never seen in training lands about
# at random. Some are words of bench/free_queries.json (its sentences stay held out);
# bench/free_queries_unseen.json is written in words no training sentence uses (tests check
# that) and measures the rest. The first word is the canonical one, said in CANONICAL_SHARE of
# the mentions; the rest share the others. Plurals are listed, not derived: "plus signs", "boxes".
CANONICAL_SHARE = 0.3
COLOUR_WORDS = {
    "red": ("red", "ruby", "cherry-red", "brick-red", "vermilion", "rose-red", "blood-red",
            "cardinal-red", "tomato-red", "strawberry-red", "cranberry", "garnet", "poppy-red",
            "fire-engine red", "raspberry-red", "wine-red", "ketchup-red",
            "crimson", "scarlet", "cherry", "tomato-coloured", "blood-coloured", "strawberry-coloured"),
    "green": ("green", "grass-green", "lime", "forest-green", "olive-green", "mint", "moss-green",
              "pine-green", "bottle-green", "kelly-green", "pea-green", "apple-green",
              "fern-green", "shamrock", "spring-green", "clover-green", "basil-green",
              "emerald", "jade", "leaf-green", "grass-coloured", "leaf-coloured", "frog-green"),
    "blue": ("blue", "cobalt", "sky-blue", "sapphire", "cerulean", "denim", "royal-blue",
             "ultramarine", "cornflower", "baby-blue", "ocean-blue", "electric-blue",
             "powder-blue", "bluebell", "indigo-blue", "marine-blue", "blueberry",
             "navy", "navy-blue", "azure", "sky-coloured", "midnight-blue", "ocean-coloured"),
    "yellow": ("yellow", "lemon", "lemon-yellow", "canary", "mustard", "butter-yellow", "saffron",
               "daffodil", "buttercup", "primrose", "straw-coloured", "corn-yellow", "honey-yellow",
               "sunshine-yellow", "maize", "citrine", "chick-yellow",
               "gold", "golden", "sunflower-yellow", "banana-yellow", "banana-coloured", "lemon-coloured"),
    "purple": ("purple", "mauve", "plum", "amethyst", "grape", "mulberry", "orchid", "heather",
               "aubergine", "eggplant", "royal purple", "iris", "damson", "blackcurrant",
               "wisteria", "purplish", "magenta-purple",
               "violet", "lavender", "lilac", "grape-coloured", "plum-coloured", "violet-purple"),
    "orange": ("orange", "amber", "apricot", "pumpkin", "marigold", "rust-orange", "peach",
               "copper", "ginger", "mandarin", "persimmon", "papaya", "burnt-orange", "clementine",
               "cantaloupe", "traffic-cone orange", "orangey",
               "tangerine", "carrot-orange", "carrot-coloured", "pumpkin-coloured", "tiger-orange",
               "mango-orange"),
    "white": ("white", "ivory", "milky", "chalk-white", "cream", "bone-white", "alabaster",
              "porcelain", "eggshell", "paper-white", "frost-white", "linen", "off-white",
              "whitish", "cotton-white", "lily-white", "milk-white",
              "snow-white", "snowy", "pearl-white", "pearly", "cloud-white", "snow-coloured"),
}
SHAPE_WORDS = {
    "circle": (("circle", "circles"), ("disk", "disks"), ("round shape", "round shapes"),
               ("circular shape", "circular shapes"), ("round", "rounds"), ("orb", "orbs"),
               ("ring-shaped blob", "ring-shaped blobs"), ("coin shape", "coin shapes"),
               ("round spot", "round spots"), ("roundel", "roundels"),
               ("ball", "balls"), ("dot", "dots"), ("disc", "discs"), ("sphere", "spheres"),
               ("round thing", "round things"), ("spot", "spots"), ("coin", "coins")),
    "square": (("square", "squares"), ("box", "boxes"), ("square shape", "square shapes"),
               ("quadrate", "quadrates"), ("four-sided shape", "four-sided shapes"),
               ("checker", "checkers"), ("square patch", "square patches"),
               ("equal-sided rectangle", "equal-sided rectangles"),
               ("block", "blocks"), ("tile", "tiles"), ("cube", "cubes"), ("rectangle", "rectangles"),
               ("square thing", "square things")),
    "triangle": (("triangle", "triangles"), ("triangular shape", "triangular shapes"),
                 ("three-sided shape", "three-sided shapes"), ("pyramid shape", "pyramid shapes"),
                 ("arrowhead", "arrowheads"), ("delta", "deltas"),
                 ("three-pointed shape", "three-pointed shapes"),
                 ("wedge", "wedges"), ("pyramid", "pyramids"),
                 ("three-cornered shape", "three-cornered shapes"),
                 ("triangular thing", "triangular things")),
    "star": (("star", "stars"), ("five-pointed star", "five-pointed stars"),
             ("star shape", "star shapes"), ("starburst", "starbursts"),
             ("pointy star", "pointy stars"), ("star-shaped piece", "star-shaped pieces"),
             ("five-armed star", "five-armed stars"),
             ("starfish", "starfish"), ("five-point star", "five-point stars"),
             ("five-point shape", "five-point shapes"), ("pentagram", "pentagrams"),
             ("star-shaped thing", "star-shaped things")),
    "diamond": (("diamond", "diamonds"), ("rhombus", "rhombi"), ("diamond shape", "diamond shapes"),
                ("rhomboid", "rhomboids"), ("tilted square", "tilted squares"),
                ("diamond-shaped piece", "diamond-shaped pieces"), ("rhomb", "rhombs"),
                ("lozenge", "lozenges"), ("kite", "kites"), ("kite shape", "kite shapes"), ("gem", "gems"),
                ("diamond-shaped thing", "diamond-shaped things")),
    "cross": (("cross", "crosses"), ("plus sign", "plus signs"), ("cross shape", "cross shapes"),
              ("addition sign", "addition signs"), ("swiss cross", "swiss crosses"),
              ("cross-shaped piece", "cross-shaped pieces"), ("greek cross", "greek crosses"),
              ("plus", "pluses"), ("plus shape", "plus shapes"), ("plus mark", "plus marks"),
              ("cross-shaped thing", "cross-shaped things")),
}
SIZE_WORDS = {"large": ("large", "big", "sizeable", "hefty", "oversized", "massive", "jumbo",
                        "great big", "bulky", "king-size", "whopping", "huge", "giant", "enormous",
                        "gigantic", "chunky"),
              "small": ("small", "little", "wee", "minuscule", "compact", "miniature", "diminutive",
                        "pint-sized", "itty-bitty", "undersized", "titchy", "tiny", "teeny", "mini", "petite",
                        "tiny little")}
THING = (("shape", "shapes"), ("object", "objects"), ("thing", "things"), ("item", "items"),
         ("form", "forms"))
NUMBERS = {1: "one", 2: "two", 3: "three"}

# Frames of a denial, each with one slot for what is denied ({x}: a plural noun phrase such as
# "circles" or "orange shapes"). Half use "no/not"; half do not.
PURE_DENIALS = (
    "no {x}", "no {x} at all", "there are no {x}", "not a single one of the {x}", "zero {x}",
    "a scene without {x}", "a picture with no {x} in it", "{x} are absent", "{x}: none",
    "a picture lacking {x}", "free of {x}", "{x} do not appear", "nowhere any {x}",
    "the picture shows no {x}", "an image that has no {x}", "{x} are missing from the picture",
)
CLAUSE_DENIALS = (
    "{d} and no {x}", "{d} but no {x}", "{d}, no {x}", "{d} without any {x}", "{d} with no {x}",
    "{d}, and there are no {x}", "{d}, {x} absent", "{d} lacking {x}", "{d}, free of {x}",
    "{d} and not a single one of the {x}", "{d}, with the {x} missing", "{d}; {x} nowhere",
    "{d} but zero {x}", "{d}, minus any {x}",
)
EXCLUSIVES = (
    "only {x}", "just {x}", "{x} only", "nothing but {x}", "nothing except {x}", "all {x}",
    "exclusively {x}", "every object is one of the {x}", "{x} and nothing else",
    "no shapes other than {x}",
)
COUNTS = ("{n} {x}", "exactly {n} {x}", "{n} {x} in total", "a picture of {n} {x}",
          "{n} {x}, no more, no fewer")
DOUBLE_NEGATIONS = (  # each means all({desc})
    "no {thing} that is not {a}", "not a single {thing} that isn't {a}",
    "there is no {thing} which is not {a}", "nothing that is not {a}",
)
SOME_BY_DOUBLE_NEGATION = ("not without {x}", "it is not true that there are no {x}",
                           "{x} are not absent", "not lacking {x}")
IN_PLACE_DENIALS = ("{s} that is not {c}", "{s} that isn't {c}", "{s}, but not {a_c} one",
                    "{s} of any colour except {c}", "{s}, anything but {c}")
RELATIONS = {
    "left_of": ("{a} to the left of {b}", "{a} left of {b}", "{a}, and to its right {b}"),
    "right_of": ("{a} to the right of {b}", "{a} right of {b}", "{a}, and to its left {b}"),
    "bigger": ("{a} bigger than {b}", "{a} larger than {b}", "{a} that dwarfs {b}"),
    "smaller": ("{a} smaller than {b}", "{a} tinier than {b}", "{a} next to a bigger {b_bare}"),
}
EXTREMES = {"leftmost": ("the leftmost {thing} is {a}", "the first {thing} from the left is {a}",
                         "{a} at the far left"),
            "rightmost": ("the rightmost {thing} is {a}", "the last {thing} on the right is {a}",
                          "{a} at the far right")}


@dataclass(frozen=True)
class Statement:
    """A sentence about a scene and its meaning as an :mod:`engine.data.shapes.query` predicate."""

    text: str
    predicate: str


Triple = tuple[Statement, Statement, Statement]  # true, true paraphrase, false in the same frame


# ---- words -------------------------------------------------------------------------------------

def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _word(words: Sequence, rng: random.Random):
    """The canonical word (the first) in CANONICAL_SHARE of the draws, else another one."""
    return words[0] if rng.random() < CANONICAL_SHARE else rng.choice(words[1:])


def _colour(colour: str, rng: random.Random) -> str:
    return _word(spoken_colour_words()[colour], rng)


@lru_cache(maxsize=1)
def spoken_colour_words() -> dict[str, tuple[str, ...]]:
    """Per world colour, the words the rich language says it with: the hand lexicon
    (``COLOUR_WORDS``) and the names the xkcd colour survey's respondents gave that colour
    (:mod:`.colour_names`), the canonical word first. The survey is what people call colours
    unprompted, so it covers much of what a class types ("scarlet", "emerald")."""
    from engine.data.shapes.colour_names import survey_names

    survey = survey_names()
    return {colour: tuple(dict.fromkeys(words + survey[colour]))
            for colour, words in COLOUR_WORDS.items()}


def _shape(shape: str, rng: random.Random, plural: bool = False) -> str:
    return _word(SHAPE_WORDS[shape], rng)[plural]


def _thing(rng: random.Random, plural: bool = False) -> str:
    return rng.choice(THING)[plural]


def _np(rng: random.Random, colour: Optional[str] = None, shape: Optional[str] = None,
        size: Optional[str] = None, plural: bool = False) -> str:
    """A noun phrase without article: "big ruby disks", "orange shapes", "small things"."""
    words = [_word(SIZE_WORDS[size], rng)] if size else []
    words += [_colour(colour, rng)] if colour else []
    words.append(_shape(shape, rng, plural) if shape else _thing(rng, plural))
    return " ".join(words)


def _desc(colour: Optional[str] = None, shape: Optional[str] = None,
          size: Optional[str] = None) -> str:
    """The predicate language's description of the same noun phrase: "large red circle"."""
    return " ".join(w for w in (size, colour, shape) if w) or "any"


def _and(*predicates: str) -> str:
    return " and ".join(predicates)


# ---- kinds of statements -----------------------------------------------------------------------

Objects = Sequence[ShapeObject]


def _present(objects: Objects, attribute: str) -> list[str]:
    return sorted({getattr(o, attribute) for o in objects})


def _absent(objects: Objects, attribute: str, values: Sequence[str]) -> list[str]:
    present = set(_present(objects, attribute))
    return [v for v in values if v not in present]


def _denied_target(objects: Objects, rng: random.Random) -> Optional[tuple[str, str, dict, dict]]:
    """Something absent and something present to deny, as (desc absent, desc present, noun-phrase
    kwargs absent, kwargs present): a colour, a shape, or a colour and shape."""
    attribute = rng.choice(("colour", "shape", "both"))
    if attribute == "both":
        obj = rng.choice(objects)
        combos = [(c, s) for c in COLOURS for s in SHAPES
                  if not any(o.colour == c and o.shape == s for o in objects)]
        colour, shape = rng.choice(combos)
        return (_desc(colour, shape), _desc(obj.colour, obj.shape),
                {"colour": colour, "shape": shape}, {"colour": obj.colour, "shape": obj.shape})
    values = COLOURS if attribute == "colour" else SHAPES
    absent = _absent(objects, attribute, list(values))
    if not absent:
        return None
    true_value, false_value = rng.choice(absent), rng.choice(_present(objects, attribute))
    return true_value, false_value, {attribute: true_value}, {attribute: false_value}


Described = list[tuple[Optional[str], Optional[str], Optional[str]]]  # (colour, shape, size) per object
DESCRIPTION_FRAMES = ("{}", "a picture showing {}", "an image with {}", "{} on a dark background",
                      "we see {}", "a drawing that has {}")
# People often name an object by one attribute only ("a navy shape and no circles",
# "squares but no triangles"): PARTIAL_SHARE of the described objects lose their colour or their
# shape, and PLURAL_SHARE of those are said as a bare plural ("squares", "green things": some).
# Without them SemCLIP read "squares but no triangles" as a denial of both (p@10 0.1, now 1.0);
# at 0.4 full descriptions lost more than the spread (bench/RESULTS.md sections 14-15).
PARTIAL_SHARE = 0.2
PLURAL_SHARE = 0.5


def _pick_described(objects: Objects, rng: random.Random) -> Described:
    """One to all objects, left to right, each with its size half the time and, for
    PARTIAL_SHARE of them, only its colour or only its shape."""
    chosen = sorted(rng.sample(list(objects), rng.randint(1, len(objects))),
                    key=lambda o: POSITIONS.index(o.position))
    described: Described = []
    for o in chosen:
        colour, shape = o.colour, o.shape
        if rng.random() < PARTIAL_SHARE:
            colour, shape = (None, shape) if rng.random() < 0.5 else (colour, None)
        described.append((colour, shape, o.size if rng.random() < 0.5 else None))
    return described


def _description(described: Described, rng: random.Random, frame: str = "{}") -> Statement:
    """"a big ruby disk and a little box" (or "squares and a navy shape") and its predicate."""
    phrases = [_np(rng, c, s, z, plural=True)
               if (c is None or s is None) and rng.random() < PLURAL_SHARE
               else _article(_np(rng, c, s, z)) for c, s, z in described]
    text = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return Statement(frame.format(text), _and(*(f"some({_desc(c, s, z)})" for c, s, z in described)))


def _describe_objects(objects: Objects, rng: random.Random) -> tuple[str, str]:
    """A description of some of the objects and its predicate."""
    statement = _description(_pick_described(objects, rng), rng)
    return statement.text, statement.predicate


def plain(objects: Objects, rng: random.Random) -> Optional[Triple]:
    """A description; its false twin gives one described object a colour or shape that no
    object of the scene has together with its other attribute."""
    described = _pick_described(objects, rng)
    k = rng.randrange(len(described))
    colour, shape, size = described[k]

    def shown(c: Optional[str], x: Optional[str]) -> bool:
        return any((c is None or o.colour == c) and (x is None or o.shape == x) for o in objects)

    # the false twin changes the colour (or the shape) to one no object has with the rest
    if shape is None or (colour is not None and rng.random() < 0.5):
        changed = [(c, shape) for c in COLOURS if not shown(c, shape)]
    else:
        changed = [(colour, x) for x in SHAPES if not shown(colour, x)]
    if not changed:
        return None
    colour, shape = rng.choice(changed)
    wrong = described[:k] + [(colour, shape, size)] + described[k + 1:]
    frame = rng.choice(DESCRIPTION_FRAMES)
    return (_description(described, rng, frame),
            _description(described, rng, rng.choice(DESCRIPTION_FRAMES)),
            _description(wrong, rng, frame))


def pure_denial(objects: Objects, rng: random.Random) -> Optional[Triple]:
    """"nothing orange" / "circles are absent": true of an absent thing, false of a present one."""
    target = _denied_target(objects, rng)
    if target is None:
        return None
    true_desc, false_desc, true_np, false_np = target
    first, second = rng.sample(PURE_DENIALS, 2)
    return (Statement(first.format(x=_np(rng, plural=True, **true_np)), f"none({true_desc})"),
            Statement(second.format(x=_np(rng, plural=True, **true_np)), f"none({true_desc})"),
            Statement(first.format(x=_np(rng, plural=True, **false_np)), f"none({false_desc})"))


def description_with_denial(objects: Objects, rng: random.Random) -> Optional[Triple]:
    """"a ruby disk and no squares": a true description plus a denial, true or false."""
    target = _denied_target(objects, rng)
    if target is None:
        return None
    true_desc, false_desc, true_np, false_np = target
    described, predicate = _describe_objects(objects, rng)
    first, second = rng.sample(CLAUSE_DENIALS, 2)

    def fill(frame: str, np_kwargs: dict) -> str:
        return frame.format(d=described, x=_np(rng, plural=True, **np_kwargs))

    return (Statement(fill(first, true_np), _and(predicate, f"none({true_desc})")),
            Statement(fill(second, true_np), _and(predicate, f"none({true_desc})")),
            Statement(fill(first, false_np), _and(predicate, f"none({false_desc})")))


def exclusive(objects: Objects, rng: random.Random) -> Optional[Triple]:
    """"only squares": true when every object shares the attribute; its false twin names
    another value (absent, or present but not everywhere)."""
    attribute = rng.choice(("colour", "shape", "size"))
    values = _present(objects, attribute)
    if len(values) != 1:
        return None  # a mixed scene has no true exclusive of this attribute
    shared = values[0]
    wrong = rng.choice([v for v in {"colour": COLOURS, "shape": SHAPES, "size": SIZES}[attribute]
                        if v != shared])
    first, second = rng.sample(EXCLUSIVES, 2)

    def phrase(frame: str, value: str) -> str:
        return frame.format(x=_np(rng, plural=True, **{attribute: value}))

    return (Statement(phrase(first, shared), f"all({shared})"),
            Statement(phrase(second, shared), f"all({shared})"),
            Statement(phrase(first, wrong), f"all({wrong})"))


def count(objects: Objects, rng: random.Random) -> Optional[Triple]:
    """"two shapes", "one orange star": the count of objects (of a colour or shape)."""
    attribute = rng.choice(("any", "any", "colour", "shape"))
    if attribute == "any":
        value, np_kwargs = "any", {}
    else:
        value = rng.choice(_present(objects, attribute))
        np_kwargs = {attribute: value}
    n = sum(1 for o in objects if value == "any" or getattr(o, attribute) == value)
    wrong = rng.choice([m for m in NUMBERS if m != n])
    first, second = rng.sample(COUNTS, 2)

    def phrase(frame: str, number: int) -> str:
        return frame.format(n=NUMBERS[number], x=_np(rng, plural=number > 1, **np_kwargs))

    return (Statement(phrase(first, n), f"count({value}) == {n}"),
            Statement(phrase(second, n), f"count({value}) == {n}"),
            Statement(phrase(first, wrong), f"count({value}) == {wrong}"))


def double_negation(objects: Objects, rng: random.Random) -> Optional[Triple]:
    """"no shape that is not red" (= all red) or "not without stars" (= some star)."""
    if rng.random() < 0.5:
        colours = _present(objects, "colour")
        if len(colours) != 1:
            return None
        colour = colours[0]
        wrong = rng.choice([c for c in COLOURS if c != colour])
        first, second = rng.sample(DOUBLE_NEGATIONS, 2)
        return (Statement(first.format(thing=_thing(rng), a=_colour(colour, rng)),
                          f"all({colour})"),
                Statement(f"only {_np(rng, colour, plural=True)}", f"all({colour})"),
                Statement(first.format(thing=_thing(rng), a=_colour(wrong, rng)),
                          f"all({wrong})"))
    shape = rng.choice(_present(objects, "shape"))
    absent = _absent(objects, "shape", list(SHAPES))
    wrong = rng.choice(absent)
    first = rng.choice(SOME_BY_DOUBLE_NEGATION)
    return (Statement(first.format(x=_shape(shape, rng, True)), f"some({shape})"),
            Statement(f"there is {_article(_shape(shape, rng))}", f"some({shape})"),
            Statement(first.format(x=_shape(wrong, rng, True)), f"some({wrong})"))


def denial_in_place(objects: Objects, rng: random.Random) -> Optional[Triple]:
    """"a circle that is not red": true when some object of that shape has another colour;
    the false twin denies the one colour every object of that shape has."""
    obj = rng.choice(objects)
    if len({o.colour for o in objects if o.shape == obj.shape}) != 1:
        return None
    other = rng.choice([c for c in COLOURS if c != obj.colour])
    first, second = rng.sample(IN_PLACE_DENIALS, 2)

    def phrase(frame: str, colour: str) -> str:
        word = _colour(colour, rng)
        return frame.format(s=_article(_shape(obj.shape, rng)), c=word, a_c=_article(word))

    return (Statement(phrase(first, other), f"some({obj.shape} non-{other})"),
            Statement(phrase(second, other), f"some({obj.shape} non-{other})"),
            Statement(phrase(first, obj.colour), f"some({obj.shape} non-{obj.colour})"))


def relation(objects: Objects, rng: random.Random) -> Optional[Triple]:
    """"a star to the left of a box", "a big disk larger than a star", "the leftmost shape is red"."""
    if len(objects) < 2:
        return None
    if rng.random() < 0.3:
        side = rng.choice(("leftmost", "rightmost"))
        target = (min if side == "leftmost" else max)(objects, key=lambda o: POSITIONS.index(o.position))
        wrong = rng.choice([c for c in COLOURS if c != target.colour])
        first, second = rng.sample(EXTREMES[side], 2)
        return (Statement(first.format(thing=_thing(rng), a=_colour(target.colour, rng)),
                          f"{side}({target.colour})"),
                Statement(second.format(thing=_thing(rng), a=_colour(target.colour, rng)),
                          f"{side}({target.colour})"),
                Statement(first.format(thing=_thing(rng), a=_colour(wrong, rng)),
                          f"{side}({wrong})"))
    a, b = rng.sample(list(objects), 2)
    if a.size != b.size and rng.random() < 0.5:
        name, reverse = ("bigger", "smaller") if a.size == "large" else ("smaller", "bigger")
    else:
        left = POSITIONS.index(a.position) < POSITIONS.index(b.position)
        name, reverse = ("left_of", "right_of") if left else ("right_of", "left_of")
    first, second = rng.sample(RELATIONS[name], 2)

    def phrase(frame: str, x: ShapeObject, y: ShapeObject) -> str:
        return frame.format(a=_article(_np(rng, x.colour, x.shape)),
                            b=_article(_np(rng, y.colour, y.shape)), b_bare=_np(rng, y.colour, y.shape))

    da, db = _desc(a.colour, a.shape), _desc(b.colour, b.shape)
    return (Statement(phrase(first, a, b), f"{name}({da}, {db})"),
            Statement(phrase(RELATIONS[reverse][0], b, a), f"{reverse}({db}, {da})"),
            Statement(phrase(first, b, a), f"{name}({db}, {da})"))


# kind -> (generator, weight): denials weigh most, as they are what the demo is about
KINDS: dict[str, tuple[Callable[[Objects, random.Random], Optional[Triple]], float]] = {
    "plain": (plain, 2.0), "pure_denial": (pure_denial, 2.0),
    "description_with_denial": (description_with_denial, 3.0), "exclusive": (exclusive, 1.0),
    "count": (count, 1.0), "double_negation": (double_negation, 0.5),
    "denial_in_place": (denial_in_place, 1.0), "relation": (relation, 1.5),
}


def normalised(text: str) -> str:
    """A sentence compared as people would: case, spacing and end punctuation ignored."""
    return " ".join(text.lower().split()).rstrip(".!?")


def load_held_out(path: Union[str, Path]) -> frozenset[str]:
    """The :func:`normalised` sentences of a JSON list (strings or objects with a "query", as
    ``bench/free_queries.json``) or of a text file with one sentence a line."""
    text = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix.lower() != ".json":
        return frozenset(normalised(line) for line in text.splitlines() if line.strip())
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of sentences or of {{\"query\": ...}}")
    sentences = []
    for number, row in enumerate(rows, 1):
        sentence = row.get("query") if isinstance(row, dict) else row
        if not isinstance(sentence, str):
            raise ValueError(f"{path}: entry {number}: expected a string or a \"query\" string")
        sentences.append(normalised(sentence))
    return frozenset(sentences)


def statement_triple(objects: Objects, rng: random.Random,
                     kinds: Optional[Sequence[str]] = None,
                     held_out: frozenset[str] = frozenset()) -> tuple[str, Triple]:
    """A kind of statement (drawn by weight among ``kinds``) and its (true, true paraphrase,
    false) triple about the scene ``objects``; kinds that cannot be said of this scene (an
    exclusive of a mixed scene...) are skipped.

    ``held_out``: :func:`normalised` sentences never to produce (an evaluation set's queries,
    so that it measures wordings the model never saw); a triple using one is drawn again.
    """
    names = list(kinds or KINDS)
    weights = [KINDS[n][1] for n in names]
    for _ in range(200):
        name = rng.choices(names, weights=weights)[0]
        triple = KINDS[name][0](objects, rng)
        if triple is not None and not any(normalised(s.text) in held_out for s in triple):
            return name, triple
    raise RuntimeError(f"no statement about {objects} avoids the held-out sentences")
