"""NegBench's negated retrieval (``COCO_val_negated_retrieval*.csv``): loader, recall@1/5/10 by
hand (ties are misses, NaN an error), malformed files, and the real ``semclip eval`` on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.cli.commands import main
from engine.eval import benchmarks as bm
from engine.eval.metrics import NonFiniteEmbeddingsError
from engine.eval.run import score_rows

FIXTURE = Path(__file__).parent / "data" / "negbench" / "COCO_val_negated_retrieval_sample.csv"


def coco_folder(root: Path, names=("000000000139.jpg", "000000000285.jpg", "000000000632.jpg")) -> Path:
    """A stand-in val2017 folder holding the fixture's images (small solid colours)."""
    folder = root / "val2017"
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (32, 32), (80 * i, 200 - 60 * i, 40)).save(folder / name)
    return folder


def test_loader_reads_one_row_per_caption_with_the_foreign_prefix_mapped(tmp_path):
    folder = coco_folder(tmp_path)
    data = bm.load_negbench_retrieval(FIXTURE, folder)
    assert [row.texts["caption"] for row in data.rows][:2] == [
        "A living room with a television but no people in it.",
        "A room with chairs and a tv, and there's no dog."]  # a quote inside the list literal
    assert [row.image.name for row in data.rows] == ["000000000139.jpg"] * 2 + \
        ["000000000285.jpg"] + ["000000000632.jpg"] * 3
    assert data.info == {"images_in_file": 3} and not data.missing
    assert data.rows[2].source == f"{FIXTURE.name}:3"


def test_missing_images_are_counted_per_caption(tmp_path):
    folder = coco_folder(tmp_path, names=("000000000139.jpg",))
    data = bm.load_negbench_retrieval(FIXTURE, folder)
    assert len(data.rows) == 2 and len(data.missing) == 4
    assert data.missing[0].path.endswith("000000000285.jpg")


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ("image,caption\na.jpg,x\n", "needs the columns filepath"),
    ("filepath,captions\na.jpg,\"['a', \"\n", r"bad.csv:2: captions .* not a list literal"),
    ("filepath,captions\na.jpg,\"__import__('os')\"\n", r"bad.csv:2: captions .* not a list"),
    ("filepath,captions\na.jpg,\"[]\"\n", r"bad.csv:2: captions must be a non-empty list"),
    ("filepath,captions\na.jpg,\"['ok', 3]\"\n", r"bad.csv:2: captions must be a non-empty"),
    ("filepath,captions\na.jpg\n", r"bad.csv:2: 1 fields, the header has 2"),
    ("filepath,captions\n,\"['a']\"\n", r"bad.csv:2: field 'filepath' is missing or empty"),
])
def test_malformed_files_name_file_and_line(tmp_path, text, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    with pytest.raises(bm.BenchmarkFormatError, match=message):
        bm.load_negbench_retrieval(bad, tmp_path)


def test_image_path_column_is_accepted(tmp_path):
    folder = coco_folder(tmp_path, names=("a.jpg",))
    path = tmp_path / "alt.csv"
    path.write_text("image_path,captions,negative_objects\nx/a.jpg,\"['a cat, no dog']\",\"['dog']\"\n")
    rows = bm.load_negbench_retrieval(path, folder).rows
    assert [(r.image, r.texts) for r in rows] == [(folder / "a.jpg", {"caption": "a cat, no dog"})]


def hand_case():
    """12 images = the unit vectors, so a text's scores are its own components; 4 captions.

    caption 0 -> image 0: only image 0 scores 1                     -> rank 0 (hit at 1, 5, 10)
    caption 1 -> image 1: image 2 ties with it                        -> rank 1 (miss at 1)
    caption 2 -> image 3: 7 other images score 2, image 3 scores 1    -> rank 7 (miss at 5)
    caption 3 -> image 11: all 12 images tie (a collapsed model)      -> rank 11 (miss at 10)
    """
    images = torch.eye(12)
    texts = torch.zeros(4, 12)
    texts[0, 0] = 1
    texts[1, 1] = texts[1, 2] = 1
    texts[2, :8] = 2
    texts[2, 3] = 1
    texts[3, :] = 1
    rows = [bm.EvalRow(image=Path(f"{i}.jpg"), texts={"caption": f"t{i}"}) for i in range(4)]
    return rows, [0, 1, 3, 11], images, {f"t{i}": i for i in range(4)}, texts


def test_recall_at_1_5_10_by_hand_with_ties_as_misses():
    rows, row_image, images, index, texts = hand_case()
    assert score_rows("negbench_retrieval", rows, row_image, images, index, texts) == {
        "image_retrieval_recall@1": 1 / 4, "image_retrieval_recall@5": 2 / 4,
        "image_retrieval_recall@10": 3 / 4}


def test_nan_embeddings_are_an_error_not_a_score():
    rows, row_image, images, index, texts = hand_case()
    texts[2, 5] = float("nan")
    with pytest.raises(NonFiniteEmbeddingsError, match="1 of 4 rows"):
        score_rows("negbench_retrieval", rows, row_image, images, index, texts)


def test_semclip_eval_runs_negbench_retrieval(tmp_path, capsys):
    folder = coco_folder(tmp_path)
    out = tmp_path / "results.json"
    assert main(["eval", "--benchmark", "negbench_retrieval", "--data", str(FIXTURE),
                 "--images", str(folder), "--model", "semclip-tiny", "--json", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "image_retrieval_recall@1 " in printed
    entry = json.loads(out.read_text())["models"][0]
    assert entry["counts"] == {"rows": 6, "evaluated": 6, "missing_images": 0,
                               "unreadable_images": 0}
    recalls = [entry["metrics"][f"image_retrieval_recall@{k}"] for k in (1, 5, 10)]
    assert recalls[2] == 1.0  # three images: every caption's image is in the top 10
    assert recalls[0] <= recalls[1] <= recalls[2]
