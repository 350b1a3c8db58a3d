"""The two worlds the app shows (Qt-free): the shapes world and everyday photos.

A world is a demo model pair plus a gallery. Shapes: the shipped shapes pair over the shapes test
split. Photos: the shipped photo pair (EfficientNet-Lite0 + MiniLM, trained on Flickr8k) over a
folder of photos the user picks once (the Flickr8k test images are the reference; any folder of
everyday photos works). A model knows the world it was trained in; :func:`world_mismatch` says so
when the gallery is of the other world.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from engine.data.galleries import Gallery
from engine.paths import ASSETS_DIR, sidecar_path

SHAPES, PHOTOS = "Shapes", "Photos"
WORLDS = (SHAPES, PHOTOS)
DEMO_DIR = ASSETS_DIR / "demo_models"
# The Photos world opens with CLIP against SemCLIP+claims: of the photo models only the claim term
# teaches "no X" about photos (held-out NegBench negation template 0.755, paper-loss SemCLIP
# 0.024, CLIP 0.078; bench/RESULTS.md sections 10-11); the paper-loss SemCLIP is in the pickers.
PHOTO_DEMO_NAMES = ("photo-clip-baseline", "photo-semclip-claims")  # files in assets/demo_models
PHOTO_RECIPE = "semclip train --preset photo-demo"


# Display names of the shipped models (file stem -> label), for the model pickers.
SHIPPED_LABELS = {"clip-baseline": "CLIP", "semclip": "SemCLIP",
                  "clip-same-data": "CLIP+data", "photo-clip-baseline": "CLIP",
                  "photo-semclip": "SemCLIP", "photo-semclip-claims": "SemCLIP+claims"}


def shipped_models(root: Optional[Path] = None) -> dict[str, str]:
    """Every model in ``root`` (default ``assets/demo_models``) with its sidecar: path -> label.
    The pickers offer them, so a third model (CLIP trained on SemCLIP's data) is one click away."""
    root = root or DEMO_DIR
    found = sorted(p for p in root.glob("*.pt") if sidecar_path(p).is_file()) if root.is_dir() else []
    return {str(p): SHIPPED_LABELS.get(p.stem, p.stem) for p in found}


@dataclass(frozen=True)
class WorldModels:
    """Where a world's demo pair is, or why it is not there."""

    specs: Optional[tuple[str, str]]
    missing: str = ""  # a message naming what is missing and how to make it


def photo_demo_models(root: Optional[Path] = None) -> WorldModels:
    """The shipped photo pair (in ``root``, default ``assets/demo_models``), or a message saying
    how to train it."""
    root = root or DEMO_DIR
    paths = [root / f"{name}.pt" for name in PHOTO_DEMO_NAMES]
    absent = [p.name for p in paths if not (p.is_file() and sidecar_path(p).is_file())]
    if absent:
        return WorldModels(None, f"the photo models ({', '.join(absent)}) are not in {root}: "
                                 f"make them with `{PHOTO_RECIPE}` and `semclip export`")
    return WorldModels((str(paths[0]), str(paths[1])))


def trained_on_shapes(sidecar: dict) -> bool:
    """Whether a checkpoint's sidecar says it was trained on the shapes world."""
    return (sidecar.get("train_config") or {}).get("dataset") == "shapes"


def world_mismatch(sidecars: Sequence[dict], gallery: Gallery) -> str:
    """A warning when a shapes-world model ranks photos (its rankings would mean nothing), else ""."""
    if gallery.has_scene_labels or not any(trained_on_shapes(s) for s in sidecars):
        return ""
    return ("These models only know the shapes world (coloured shapes on grey): on photos their "
            "rankings mean nothing. Switch the world to Photos for the photo models.")
