"""Galleries: the images a user searches, with what is known about them (a shapes scene knows
its objects, captions and negations; a folder of photos knows only its file names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from engine.data.shapes.world import SceneDrawings, ShapesWorld
from engine.model.embed_cache import ImageSource
from engine.paths import IMAGE_SUFFIXES


@dataclass
class Gallery:
    """Images to search, with what is known about them (shapes scenes know their objects)."""

    sources: list[ImageSource]
    names: list[str]
    captions: list[str] = field(default_factory=list)  # ground-truth captions, if known
    negations: list[str] = field(default_factory=list)  # false negated captions, if known
    objects: list[list[dict[str, Any]]] = field(default_factory=list)  # shapes scenes only
    description: str = ""
    # Drawn scenes (shapes) can be drawn again at any size: ``redraw(size)`` gives the same
    # scenes ``drawn_size`` px wide; photos have no ``redraw``.
    redraw: Optional[Callable[[int], list[ImageSource]]] = field(default=None, repr=False,
                                                                 compare=False)
    drawn_size: int = 0
    _redrawn: dict[int, list[ImageSource]] = field(default_factory=dict, init=False, repr=False,
                                                   compare=False)

    def __len__(self) -> int:
        return len(self.sources)

    def sources_at(self, size: int) -> list[ImageSource]:
        """The images as a model with a ``size`` px input should see them: drawn scenes are drawn
        again at that size (a model trained on 224 px drawings does not know upscaled 64 px ones);
        photos are what they are."""
        if self.redraw is None or size == self.drawn_size:
            return self.sources
        if size not in self._redrawn:  # two sides may race here: both draw the same scenes
            self._redrawn[size] = self.redraw(size)
        return self._redrawn[size]

    @property
    def has_scene_labels(self) -> bool:
        return len(self.objects) == len(self.sources) > 0


def shapes_gallery(n: int = 200, split: str = "test", seed: int = 0,
                   image_size: int = 64) -> Gallery:
    """The first ``n`` scenes of a shapes-world split, with captions, negations and objects."""
    world = ShapesWorld(seed=seed, image_size=image_size)
    items = [world.item(split, i) for i in range(n)]

    def redraw(size: int) -> list[ImageSource]:
        return list(SceneDrawings(ShapesWorld(seed=seed, image_size=size), split, n))

    return Gallery(sources=[it["image"] for it in items], redraw=redraw, drawn_size=image_size,
                   names=[f"{split} #{i}" for i in range(n)],
                   captions=[it["caption"] for it in items],
                   negations=[it["negation"] for it in items],
                   objects=[it["objects"] for it in items],
                   description=f"shapes world, {split} split, {n} scenes")


def folder_gallery(folder: Union[str, Path], limit: int = 100_000) -> Gallery:
    """Every image file under ``folder`` (recursively, sorted), up to ``limit``."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"gallery folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    files = files[:limit]
    return Gallery(sources=list(files), names=[str(p.relative_to(root)) for p in files],
                   description=f"{root} ({len(files)} images)")
