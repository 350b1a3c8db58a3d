"""Galleries: the images a user searches, with what is known about them (a shapes scene knows
its objects, captions and negations; a folder of photos knows only its file names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from engine.data.shapes.world import ShapesWorld
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

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def has_scene_labels(self) -> bool:
        return len(self.objects) == len(self.sources) > 0


def shapes_gallery(n: int = 200, split: str = "test", seed: int = 0,
                   image_size: int = 64) -> Gallery:
    """The first ``n`` scenes of a shapes-world split, with captions, negations and objects."""
    world = ShapesWorld(seed=seed, image_size=image_size)
    items = [world.item(split, i) for i in range(n)]
    return Gallery(sources=[it["image"] for it in items],
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
