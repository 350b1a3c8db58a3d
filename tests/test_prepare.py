"""``semclip prepare ccneg``: CC-Neg's release file plus its images become a triples file whose
negations are CC-Neg's own and whose paraphrases come from the caption backends."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from engine.cli.commands import main
from engine.data.triples import read_triples

CAPTIONS = ["a dog on a bench", "a red circle", "a man riding a horse on the beach",
            "two children playing with a ball in a park", "a woman holding an umbrella"]


def write_ccneg(folder: Path, missing: tuple[int, ...] = ()) -> tuple[Path, Path]:
    """A ccneg_preprocessed.pt in the release's layout (foreign absolute image paths, nested
    annotations) and an image folder lacking the images numbered in ``missing``."""
    images = folder / "images"
    images.mkdir()
    annotations = [{"json": {"caption": c, "key": f"{i:09d}"},
                    "sop_data": {"negative-prompt": f"CC-Neg's own negation {i}", "subject": "s"}}
                   for i, c in enumerate(CAPTIONS)]
    pt = folder / "ccneg_preprocessed.pt"
    torch.save({"image_paths": [f"/data/cc3m/training/{i:09d}.jpg" for i in range(len(CAPTIONS))],
                "annotations": annotations}, pt)
    for i in range(len(CAPTIONS)):
        if i not in missing:
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(images / f"{i:09d}.jpg")
    return pt, images


def test_prepare_ccneg_writes_triples_with_ccneg_negations_and_generated_paraphrases(tmp_path, capsys):
    pt, images = write_ccneg(tmp_path, missing=(3,))
    out = tmp_path / "ccneg_triples.csv"
    assert main(["prepare", "ccneg", "--pt", str(pt), "--images", str(images), "--out", str(out),
                 "--quiet", "--no-cache"]) == 0
    said = capsys.readouterr()
    assert f"wrote 4 CC-Neg triples to {out}" in said.out
    assert "1 CC-Neg rows left out: image not found" in said.err and "cells: kept" not in said.err
    triples = read_triples(out)  # image paths relative to the file: it moves with its images
    assert [t.image for t in triples] == [images / f"{i:09d}.jpg" for i in (0, 1, 2, 4)]
    assert out.read_text().splitlines()[1].startswith("images/000000000.jpg,a dog on a bench,")
    assert [t.negation for t in triples] == [f"CC-Neg's own negation {i}" for i in (0, 1, 2, 4)]
    assert triples[0].paraphrase == "on a bench, a dog"  # the rules backend's paraphrase
    assert not list(tmp_path.glob(".*captions.csv"))  # the intermediate file is gone


def test_prepare_ccneg_parts_limit_and_errors(tmp_path, capsys):
    pt, images = write_ccneg(tmp_path)
    out = tmp_path / "eval.jsonl"
    common = ["prepare", "ccneg", "--pt", str(pt), "--images", str(images), "--quiet",
              "--no-cache"]
    assert main([*common, "--out", str(out), "--part", "eval", "--eval-size", "2"]) == 0
    assert [t.caption for t in read_triples(out)] == CAPTIONS[3:]
    assert main([*common, "--out", str(out), "--part", "train", "--eval-size", "2",
                 "--limit", "2"]) == 0
    assert [t.caption for t in read_triples(out)] == CAPTIONS[:2]
    capsys.readouterr()
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    assert main(["prepare", "ccneg", "--pt", str(tmp_path / "bad.pt"), "--images", str(images),
                 "--out", str(out)]) == 1
    assert "cannot read as a CC-Neg .pt file" in capsys.readouterr().err
    assert main([*common, "--out", str(out), "--images", str(tmp_path / "nowhere")]) == 1
    assert "image folder not found" in capsys.readouterr().err


def test_prepare_lists_its_sources(capsys):
    try:
        main(["prepare", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "ccneg" in capsys.readouterr().out
