"""Colour names people use, from the xkcd colour survey, sorted onto the shapes world's colours.

The survey's 949 most-named colours (``xkcd_colours.tsv``, public domain) are what people call
colours when nobody gives them a list: "scarlet", "kelly green", "tangerine", "yellowish". A
name joins a world colour when

* its last word is that colour ("lipstick red", "royal blue", "purply": "-ish"/"-y" forms
  count), and no word of it is a colour the world lacks or a shade it does not draw
  ("pinkish red", "dark yellow" stay out: not clearly the world's red or yellow); or
* it names no basic colour at all ("scarlet", "tangerine") and its RGB value lies within
  ``MAX_DISTANCE`` CIELAB units (``MAX_DISTANCE_WHITE`` for white) of the world colour's
  drawn value and ``MIN_MARGIN`` closer to it than to any other, so only clear cases count.

Names mixing colours ("blue/purple", "green yellow") are left out.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path

from engine.data.shapes.world import COLOURS

SURVEY = Path(__file__).with_name("xkcd_colours.tsv")
# Basic colour terms the world does not draw: a name with one of them is not a world colour.
# (The hand lexicon still says a bare shade, "navy", for the colour the world draws it as;
# here the word keeps survey compounds such as "navy green" out.)
OTHER_COLOURS = frozenset({
    "pink", "brown", "grey", "gray", "black", "teal", "turquoise", "aqua", "cyan", "magenta",
    "violet", "lavender", "lilac", "tan", "beige", "maroon", "navy", "olive", "khaki", "mauve",
    "periwinkle", "burgundy", "rose", "salmon", "gold", "silver", "taupe", "fuchsia", "azure",
    "blush", "ochre", "sand", "sandy", "slate", "seafoam", "sage", "puce", "coral", "greyish",
    "grayish", "brownish", "pinkish", "pinky", "browny",
    # lightness and mood words: the world draws one shade of each colour
    "dark", "darkish", "deep", "pale", "light", "lightish", "dusty", "muted", "dull", "faded",
    "pastel", "dirty", "ugly", "nasty", "puke", "vomit", "baby", "sickly", "piss", "poop", "poo",
    "shit", "barf", "booger", "snot", "bile", "weird", "boring",
})
MAX_DISTANCE = 30.0
MAX_DISTANCE_WHITE = 20.0  # off-whites and light greys differ from white in lightness alone
MIN_MARGIN = 15.0


def _lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """sRGB (0-255) -> CIELAB (D65)."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(c / 255) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116
    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def _family(word: str) -> str:
    """The world colour a word names ("reddish", "purply", "orangey" included), else ""."""
    for colour in COLOURS:
        stem = colour[:-1] if colour.endswith("e") else colour
        if word == colour or re.fullmatch(rf"{stem}(e?ish|dish|e?y)", word):
            return colour
    return ""


def read_survey(path: Path = SURVEY) -> dict[str, tuple[int, int, int]]:
    """The survey's names and RGB values."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, hex_value = line.split("\t")
            out[name] = tuple(int(hex_value[i:i + 2], 16) for i in (1, 3, 5))
    return out


def world_colour(name: str, rgb: tuple[int, int, int]) -> str:
    """The world colour the survey name ``name`` (drawn as ``rgb``) clearly is, else ""."""
    if "/" in name:
        return ""
    words = re.split(r"[ -]+", name.lower())
    families = {f for f in map(_family, words) if f}
    if len(families) > 1 or any(w in OTHER_COLOURS for w in words):
        return ""
    if families:
        family = families.pop()
        return family if _family(words[-1]) == family else ""
    lab = _lab(rgb)
    (near, colour), (runner_up, _) = sorted(
        (math.dist(lab, _lab(value)), colour) for colour, value in COLOURS.items())[:2]
    limit = MAX_DISTANCE_WHITE if colour == "white" else MAX_DISTANCE
    return colour if near <= limit and runner_up - near >= MIN_MARGIN else ""


@lru_cache(maxsize=1)
def survey_names() -> dict[str, tuple[str, ...]]:
    """World colour -> the survey names that clearly are it (the colour's own name left out)."""
    out: dict[str, list[str]] = {colour: [] for colour in COLOURS}
    for name, rgb in read_survey().items():
        colour = world_colour(name, rgb)
        if colour and name != colour:
            out[colour].append(name)
    return {colour: tuple(names) for colour, names in out.items()}
