"""The embedded shapes world: procedural scenes with captions, paraphrases and grounded negations.

The offline default for demos and tests. A scene holds 1–3 objects (shape, colour, size) in
distinct horizontal thirds of a dark-grey canvas. Everything is a pure function of
(seed, split, index), so datasets are map-style, worker-safe and resumable.

Captions describe the scene left to right ("a large red circle and a small blue square").
Paraphrases rewrite it (synonyms, templates, reordering, spatial phrasing). Negations are
grounded in the picture:

* ``negation`` — a *false* negated caption: it denies something that is there. This is c− for
  training and the wrong option of the original-over-negation test. Half deny an object in place
  ("a large red circle and no small blue square", "... but not ..."); half append a denial of a
  shape or colour in the picture to the caption ("... and no square"), in the very frames true
  negations use.
* ``true_negation`` — a *true* caption that uses negation: it denies something absent ("a red
  circle and no triangle").

A true and a false appended denial read alike; only the picture tells which is true. A model
that reads "no square" as one more mention of a square (the affirmation bias of CLIP models
trained on captions that contain negation, cf. NegBench) prefers the false one.

Some (colour, shape) combinations never appear in the train split; val and test scenes use them
about half the time, so evaluation measures composition rather than memorisation.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, Union

from PIL import Image, ImageDraw

from engine.events import Done, Event, NeverStop, Progress, StopFlag

if TYPE_CHECKING:
    import torch

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
COLOURS = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 230),
    "yellow": (235, 215, 40), "purple": (150, 60, 200), "orange": (245, 140, 30),
    "white": (240, 240, 240),
}
SIZES = ("small", "large")
POSITIONS = ("left", "middle", "right")
BACKGROUND = (60, 60, 60)
SPLITS = ("train", "val", "test")

# Only true synonyms: a paraphrase must keep the meaning.
SYNONYMS = {
    "large": ("big",), "small": ("little", "tiny"), "circle": ("disk", "round disc"),
    "square": ("box",), "diamond": ("rhombus",), "cross": ("plus sign",),
    "star": ("five-pointed star",), "triangle": ("triangle",),
}
# Everyday wordings for training captions (``varied_wording_prob``), colours included, so models
# meet more than one word per attribute. Kept apart from the words bench/unseen_phrasings.py
# tests with, so that bench still measures words never seen in training.
WORDINGS = {
    **SYNONYMS,
    "circle": ("disk", "round disc", "round shape"), "square": ("box", "square shape"),
    "red": ("ruby", "cherry-red"), "blue": ("cobalt", "sky-blue"), "green": ("jade", "grass-green"),
    "yellow": ("lemon", "lemon-yellow"), "purple": ("mauve", "plum"), "orange": ("amber", "apricot"),
    "white": ("ivory", "milky"),
}
POSITION_PHRASES = {"left": "on the left", "middle": "in the middle", "right": "on the right"}

# Frames that deny a shape or a colour after a description: (caption frame, paraphrase frame).
# True negations fill them with something absent, false negations with something present.
SHAPE_DENIALS = ("{} and no {}", "{} with no {} anywhere")
COLOUR_DENIALS = ("{} without any {} shape", "{} and nothing {}")
APPENDED_NEGATION_SHARE = 0.5  # of false negations; the rest deny an object in place


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    colour: str
    size: str
    position: str
    dx: float = 0.0  # jitter in [-1, 1], as a share of the free room in the cell
    dy: float = 0.0

    def phrase(self, synonyms: Optional[random.Random] = None, with_size: bool = True,
               lexicon: dict[str, tuple[str, ...]] = SYNONYMS) -> str:
        """'a large red circle' (optionally with words from ``lexicon`` drawn by the given rng)."""
        size, colour, shape = self.size, self.colour, self.shape
        if synonyms is not None:
            size, colour, shape = (synonyms.choice((word,) + lexicon.get(word, ()))
                                   for word in (size, colour, shape))
        words = [size] if with_size else []
        return _article(" ".join(words + [colour, shape]))


@dataclass(frozen=True)
class Scene:
    objects: tuple[ShapeObject, ...]  # left to right

    def has(self, colour: Optional[str] = None, shape: Optional[str] = None) -> bool:
        return any((colour is None or o.colour == colour) and (shape is None or o.shape == shape)
                   for o in self.objects)


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _seed_for(*parts: Any) -> int:
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class ShapesWorld:
    """A deterministic world of shape scenes; ``item(split, index)`` is a pure function."""

    def __init__(self, seed: int = 0, image_size: int = 64, heldout_fraction: float = 0.15,
                 true_negation_prob: float = 0.0, max_objects: int = 3,
                 varied_wording_prob: float = 0.0, rich_language_prob: float = 0.0,
                 held_out_sentences: frozenset[str] = frozenset()):
        self.seed, self.image_size = seed, image_size
        self.true_negation_prob, self.max_objects = true_negation_prob, max_objects
        self.varied_wording_prob = varied_wording_prob
        self.rich_language_prob = rich_language_prob
        self.held_out_sentences = held_out_sentences  # the rich language never says these
        self.heldout_combos = self._choose_heldout(heldout_fraction)
        combos = [(c, s) for c in COLOURS for s in SHAPES]
        self.train_combos = [c for c in combos if c not in self.heldout_combos]
        self.all_combos = combos

    def _choose_heldout(self, fraction: float) -> frozenset[tuple[str, str]]:
        """Held-out (colour, shape) pairs; every colour and shape keeps other training partners."""
        rng = random.Random(_seed_for(self.seed, "heldout"))
        target = round(fraction * len(COLOURS) * len(SHAPES))
        chosen: set[tuple[str, str]] = set()
        colours, shapes = list(COLOURS), list(SHAPES)
        rng.shuffle(colours)
        for i, colour in enumerate(colours):  # a cyclic pattern: at most ~1 per colour and shape
            if len(chosen) >= target:
                break
            chosen.add((colour, shapes[(i * 2 + rng.randrange(2)) % len(shapes)]))
        while len(chosen) < target:
            chosen.add((rng.choice(colours), rng.choice(shapes)))
        return frozenset(chosen)

    # ---- scenes ----------------------------------------------------------------------------
    def scene(self, split: str, index: int) -> Scene:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
        rng = random.Random(_seed_for(self.seed, split, index))
        count = rng.randint(1, self.max_objects)
        if split == "train":
            pool = self.train_combos
        else:  # about half the held-out scenes contain at least one unseen combination
            pool = self.all_combos
        combos = rng.sample(pool, count)
        if split != "train" and rng.random() < 0.5 and not any(c in self.heldout_combos for c in combos):
            combos[0] = rng.choice(sorted(self.heldout_combos))
            if len(set(combos)) < len(combos):
                combos = list(dict.fromkeys(combos))
        positions = sorted(rng.sample(POSITIONS, len(combos)), key=POSITIONS.index)
        objects = tuple(
            ShapeObject(shape=s, colour=c, size=rng.choice(SIZES), position=p,
                        dx=rng.uniform(-1, 1), dy=rng.uniform(-1, 1))
            for (c, s), p in zip(combos, positions))
        return Scene(objects)

    def render(self, scene: Scene) -> Image.Image:
        size = self.image_size
        image = Image.new("RGB", (size, size), BACKGROUND)
        draw = ImageDraw.Draw(image)
        cell = size / 3
        for obj in scene.objects:
            radius = cell * (0.42 if obj.size == "large" else 0.22)
            room = cell / 2 - radius
            cx = cell * (POSITIONS.index(obj.position) + 0.5) + obj.dx * room * 0.8
            cy = size / 2 + obj.dy * (size / 2 - radius) * 0.8
            _draw_shape(draw, obj.shape, cx, cy, radius, COLOURS[obj.colour])
        return image

    # ---- language --------------------------------------------------------------------------
    def caption_parts(self, scene: Scene, rng: random.Random) -> list[str]:
        """One noun phrase per object, left to right, sometimes with its position, sometimes
        (``varied_wording_prob``) in everyday words from ``WORDINGS``."""
        # draw only when enabled, so a world without varied wording keeps its captions
        varied = bool(self.varied_wording_prob) and rng.random() < self.varied_wording_prob
        phrases = [o.phrase(rng, lexicon=WORDINGS) if varied else o.phrase() for o in scene.objects]
        if len(scene.objects) > 1 and rng.random() < 0.3:
            return [f"{p} {POSITION_PHRASES[o.position]}" for p, o in zip(phrases, scene.objects)]
        return phrases

    def caption(self, scene: Scene, rng: random.Random) -> str:
        return _join(self.caption_parts(scene, rng))

    def paraphrase(self, scene: Scene, rng: random.Random) -> str:
        objs = list(scene.objects)
        kind = rng.choice(("synonym", "template", "reorder", "there_is") if len(objs) > 1
                          else ("synonym", "template", "there_is"))
        if kind == "reorder":
            rng.shuffle(objs)
            if objs == list(scene.objects):
                objs.reverse()
            return _join([o.phrase(rng) for o in objs])
        body = _join([o.phrase(rng if kind == "synonym" else None) for o in objs])
        if kind == "there_is":
            return f"there is {body}" if len(objs) == 1 else f"there are {body}"
        template = rng.choice(("a picture of {}", "an image showing {}", "{} on a grey background",
                               "a drawing of {}"))
        return template.format(body)

    def negation(self, scene: Scene, parts: list[str],
                 rng: random.Random) -> tuple[str, dict[str, Optional[str]]]:
        """A false caption and what it denies (``{"colour": .., "shape": ..}``, None = any).

        Either the caption's own words with one present object denied in place, or the whole
        caption followed by a denial of a shape or colour that is present (``SHAPE_DENIALS`` /
        ``COLOUR_DENIALS``). Both keep every content word of the caption, so only the negation
        tells them from it.
        """
        if rng.random() < APPENDED_NEGATION_SHARE:
            obj = rng.choice(scene.objects)
            frame = rng.choice(SHAPE_DENIALS + COLOUR_DENIALS)
            if frame in SHAPE_DENIALS:
                return frame.format(_join(parts), obj.shape), {"colour": None, "shape": obj.shape}
            return frame.format(_join(parts), obj.colour), {"colour": obj.colour, "shape": None}
        k = rng.randrange(len(parts))
        denied = {"colour": scene.objects[k].colour, "shape": scene.objects[k].shape}
        bare = parts[k].split(" ", 1)[1]  # drop the article: "a large red circle" -> "large red circle"
        others = parts[:k] + parts[k + 1:]
        if not others:
            return rng.choice((f"there is no {bare}", f"no {bare}", f"a picture without {parts[k]}",
                               f"an empty picture with no {bare}")), denied
        in_place = parts[:k] + [f"no {bare}"] + parts[k + 1:]
        return rng.choice((_join(in_place), f"{_join(others)} but not {parts[k]}",
                           f"{_join(others)} without {parts[k]}")), denied

    def true_negation(self, scene: Scene, rng: random.Random) -> tuple[str, str, str]:
        """A true caption that uses negation, a paraphrase of it, and its (false) negation."""
        absent_shapes = [s for s in SHAPES if not scene.has(shape=s)]
        base = _join([o.phrase() for o in scene.objects])
        if absent_shapes and rng.random() < 0.5:
            shape = rng.choice(absent_shapes)
            caption, paraphrase = (frame.format(base, shape) for frame in SHAPE_DENIALS)
            return caption, paraphrase, f"{base} and {_article(shape)}"
        colour = rng.choice([c for c in COLOURS if not scene.has(colour=c)])
        caption, paraphrase = (frame.format(base, colour) for frame in COLOUR_DENIALS)
        return caption, paraphrase, f"{base} and {_article(colour)} shape"

    def item(self, split: str, index: int, render: bool = True) -> dict[str, Any]:
        """Image, caption, paraphrase, false negation (and what it denies), true negation and
        the scene's objects. ``render=False`` skips drawing (``image`` is None); the texts are
        the same either way."""
        scene = self.scene(split, index)
        rng = random.Random(_seed_for(self.seed, split, index, "text"))
        parts = self.caption_parts(scene, rng)
        caption, paraphrase = _join(parts), self.paraphrase(scene, rng)
        negation, denied = self.negation(scene, parts, rng)
        true_neg, true_neg_paraphrase, true_neg_negated = self.true_negation(scene, rng)
        if rng.random() < self.true_negation_prob:
            # the caption itself uses negation; its negation is then the false affirmative
            caption, paraphrase, negation = true_neg, true_neg_paraphrase, true_neg_negated
            denied = None  # the false affirmative denies nothing
        predicates: tuple[Optional[str], Optional[str]] = (None, None)  # templates: none
        # draw only when enabled, so a world without the rich language keeps its captions
        if self.rich_language_prob and rng.random() < self.rich_language_prob:
            from engine.data.shapes.language import statement_triple  # it imports this module

            _kind, statements = statement_triple(scene.objects, rng,
                                                 held_out=self.held_out_sentences)
            caption, paraphrase, negation = (s.text for s in statements)
            predicates = (statements[0].predicate, statements[2].predicate)
            denied = None  # the false statement may deny nothing ("two shapes" for three)
        return {"image": self.render(scene) if render else None, "caption": caption,
                "paraphrase": paraphrase, "negation": negation, "denied": denied, "true_negation": true_neg,
                "objects": [asdict(o) for o in scene.objects],
                "caption_predicate": predicates[0], "negation_predicate": predicates[1]}


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float,
                colour: tuple[int, int, int]) -> None:
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "square":
        s = r * 0.85
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r * 0.95, cy + r * 0.8), (cx - r * 0.95, cy + r * 0.8)],
                     fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r * 0.75, cy), (cx, cy + r), (cx - r * 0.75, cy)], fill=colour)
    elif shape == "star":
        points = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + rad * math.cos(angle), cy + rad * math.sin(angle)))
        draw.polygon(points, fill=colour)
    elif shape == "cross":
        w = r * 0.35
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
    else:
        raise ValueError(f"unknown shape {shape!r}")


class ShapesDataset:
    """Map-style dataset streaming scenes of one split (nothing is written to disk)."""

    def __init__(self, world: ShapesWorld, split: str, length: int,
                 transform: Optional[Callable] = None):
        self.world, self.split, self.length, self.transform = world, split, length, transform

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._read(index, render=True)

    def texts(self, index: int) -> dict[str, Any]:
        """Item ``index`` without drawing its image (for epochs fed by the embedding cache)."""
        return self._read(index, render=False)

    def drawings(self) -> "SceneDrawings":
        """Every scene of this set as a picture (untransformed), drawn when asked for."""
        return SceneDrawings(self.world, self.split, self.length)

    def truth(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Which texts of the items ``indices`` are true of which of their scenes, as two bool
        matrices (captions[i, j]: caption i is true of scene j; negations[k, j]: negation k
        is true of scene j), for false-negative masking in the contrastive loss.

        A rich-language statement carries its predicate and is evaluated on every scene; a
        template caption is known true of its own scene and of scenes with the very same
        caption, a template negation of none (it is false of its own scene; of others it is
        not known, so they stay wrong answers as before).
        """
        import torch

        from engine.data.shapes.query import parse_predicate_cached

        items = [self.world.item(self.split, i, render=False) for i in indices]
        scenes = [item["objects"] for item in items]
        captions, negations = [], []
        for i, item in enumerate(items):
            rule = item["caption_predicate"]
            if rule is None:  # a template: true of scenes captioned the very same way
                captions.append([j == i or other["caption"] == item["caption"]
                                 for j, other in enumerate(items)])
            else:
                captions.append(list(map(parse_predicate_cached(rule), scenes)))
            rule = item["negation_predicate"]
            negations.append([False] * len(items) if rule is None else
                             list(map(parse_predicate_cached(rule), scenes)))
        captions_true = torch.tensor(captions, dtype=torch.bool)
        captions_true.fill_diagonal_(True)  # a caption is true of its own scene, always
        return captions_true, torch.tensor(negations, dtype=torch.bool)

    def _read(self, index: int, render: bool) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        item = self.world.item(self.split, index, render=render)
        out = {"caption": item["caption"], "paraphrase": item["paraphrase"],
               "negation": item["negation"], "index": index}
        if render:
            out["image"] = self.transform(item["image"]) if self.transform else item["image"]
        return out


class SceneDrawings(Sequence[Image.Image]):
    """The scenes of one split drawn on demand, so that thousands of 224 px pictures never sit
    in memory at once (what the on-disk image caches read, keyed by their pixels)."""

    def __init__(self, world: ShapesWorld, split: str, length: int):
        self.world, self.split, self.length = world, split, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.length))]
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self.world.render(self.world.scene(self.split, index))


def write_shapes(out_dir: Union[str, Path], n: int, split: str = "train",
                 world: Optional[ShapesWorld] = None, stop: Optional[StopFlag] = None
                 ) -> Iterator[Event]:
    """Write ``n`` scenes as PNGs plus ``triples.csv`` (paths relative to the CSV)."""
    from engine.data.triples import write_triples

    world = world or ShapesWorld()
    stop = stop or NeverStop()
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        if stop.is_set():
            break
        item = world.item(split, i)
        rel = f"images/{split}_{i:06d}.png"
        item["image"].save(out / rel)
        rows.append({"image": rel, "caption": item["caption"], "paraphrase": item["paraphrase"],
                     "negation": item["negation"]})
        if i % 100 == 0 or i == n - 1:
            yield Progress(done=i + 1, total=n, phase="write")
    csv_path = write_triples(out / "triples.csv", rows)
    yield Done(ShapesWritten(csv=str(csv_path), n=len(rows)), stopped=stop.is_set())


@dataclass(frozen=True)
class ShapesWritten:
    """The result of :func:`write_shapes`: the triples file and how many scenes it lists."""

    csv: str
    n: int
