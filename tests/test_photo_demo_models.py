"""The shipped photo pair (photo-demo preset, exported as deltas over the two PyPI towers)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from engine.paths import ASSETS_DIR

SHIPPED = {name: ASSETS_DIR / "demo_models" / f"photo-{name}.pt"
           for name in ("clip-baseline", "semclip")}
FLICKR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "flickr8k"
MAX_SHIPPED_MB = 20


def test_photo_pair_ships_as_small_deltas_over_the_photo_towers():
    for name, path in SHIPPED.items():
        assert path.stat().st_size < MAX_SHIPPED_MB * 2 ** 20
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["format"] == "semclip-delta/1"
        assert meta["base_spec"] == "semclip-photo-minilm"
        assert meta["train_config"]["name"] == name


@pytest.mark.skipif(not FLICKR.is_dir(), reason=f"{FLICKR} is absent (Flickr8k test photos)")
def test_semclip_photo_model_prefers_captions_over_their_negations_more_than_clip(tmp_path):
    from engine.data.photo_sets import make_triples, read_captions_csv, read_splits
    from engine.eval.run import run_evaluation
    from engine.model.loading import load_model

    splits = read_splits(FLICKR / "splits.csv")
    test_images = [name for name, split in splits.items() if split == "test"][:40]
    with open(FLICKR / "captions.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["image"] in set(test_images)]
    small = tmp_path / "captions.csv"
    with open(small, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    report = make_triples(read_captions_csv(small, FLICKR / "images"), tmp_path, splits)
    models = [load_model(str(SHIPPED["clip-baseline"])), load_model(str(SHIPPED["semclip"]))]
    results = run_evaluation("captions_retrieval", report.files["test"], None, models)
    clip, semclip = (m["metrics"] for m in results["models"])
    assert semclip["ono_accuracy"] > clip["ono_accuracy"] + 0.1
    assert clip["t2i_recall@10"] > 0.5 and semclip["t2i_recall@10"] > 0.5  # of 40 photos
