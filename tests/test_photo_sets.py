"""``semclip prepare``: triples from captioned photo sets (fixtures, malformed input, real
Flickr8k rows)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from engine.cli.commands import main
from engine.data.photo_sets import (PhotoSetError, make_triples, read_captions_csv,
                                    read_coco_captions, read_splits)
from engine.data.triples import read_triples

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FLICKR = SHARED / "flickr8k"

CAPTIONS = {
    "a.jpg": ["A black dog runs through the grass .", "A dog is running on a lawn ."],
    "b.jpg": ["Two children play on a beach .", "Kids playing near the sea .",
              "Two kids on the sand ."],
    "c.jpg": ["A man climbs a rock wall ."],  # a single caption: no paraphrase to pair
}


@pytest.fixture
def photo_set(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in CAPTIONS:
        Image.new("RGB", (8, 8), "red").save(images / name)
    captions = tmp_path / "captions.csv"
    with open(captions, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption"])
        for name, texts in CAPTIONS.items():
            writer.writerows([name, t] for t in texts)
    splits = tmp_path / "splits.csv"
    splits.write_text("image,split\na.jpg,train\nb.jpg,test\nc.jpg,train\n")
    return tmp_path


def test_each_caption_pairs_with_another_human_caption_and_a_rules_negation(photo_set):
    images = read_captions_csv(photo_set / "captions.csv", photo_set / "images")
    report = make_triples(images, photo_set / "out", read_splits(photo_set / "splits.csv"))
    assert report.written == {"train": 2, "test": 3}
    assert report.single_caption == 1
    test = read_triples(photo_set / "out" / "test.csv")
    b = CAPTIONS["b.jpg"]
    assert [t.caption for t in test] == b
    assert [t.paraphrase for t in test] == [b[1], b[2], b[0]]  # the next caption, cyclically
    assert all(t.image == (photo_set / "images" / "b.jpg").resolve() for t in test)
    for t in test:
        assert t.negation and t.negation not in b
    assert len({t.negation.split()[0] for t in test}) > 1  # the negation frames rotate
    # true negations deny a salient object no caption of the photo mentions
    for t in test:
        assert t.true_negation.startswith(t.caption.rstrip(" ."))
        denied = t.true_negation.split(" no ")[-1].split()[0]
        assert denied not in " ".join(b).lower()
    dog_rows = read_triples(photo_set / "out" / "train.csv")
    for t in dog_rows:  # a.jpg shows a dog: its denial names something else
        assert "dog" not in t.true_negation[len(t.caption.rstrip(" .")):]


def test_cli_prepare_captions_without_splits_writes_one_file(photo_set, capsys):
    code = main(["prepare", "captions", "--captions", str(photo_set / "captions.csv"),
                 "--images", str(photo_set / "images"), "--out", str(photo_set / "out")])
    assert code == 0
    assert len(read_triples(photo_set / "out" / "triples.csv")) == 5
    assert "1 image(s) with a single caption" in capsys.readouterr().out


def test_coco_json(photo_set):
    data = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
            "annotations": [{"image_id": 1, "caption": t} for t in CAPTIONS["a.jpg"]]
                           + [{"image_id": 2, "caption": t} for t in CAPTIONS["b.jpg"]]}
    path = photo_set / "captions.json"
    path.write_text(json.dumps(data))
    images = read_coco_captions(path, photo_set / "images")
    assert [len(c) for c in images.captions.values()] == [2, 3]
    report = make_triples(images, photo_set / "out")
    assert report.written == {"triples": 5}


@pytest.mark.parametrize("text, message", [
    ("image,text\na.jpg,x\n", r"captions.csv:1: header lacks column\(s\) caption"),
    ("image,caption\na.jpg,x\nb.jpg\n", r"captions.csv:3: 1 fields, header has 2"),
    ("image,caption\na.jpg,x\nb.jpg,  \n", r"captions.csv:3: empty caption"),
])
def test_malformed_captions_csv_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "captions.csv"
    path.write_text(text)
    with pytest.raises(PhotoSetError, match=message):
        read_captions_csv(path, tmp_path)


@pytest.mark.parametrize("data, message", [
    ('{"images": [], "annotations": [', r"captions.json:1: not valid JSON"),
    ('{"images": [{"id": 1}], "annotations": []}', r"images\[0\] needs an 'id' and a 'file_name'"),
    ('{"images": [], "annotations": [{"image_id": 3, "caption": "x"}]}',
     r"annotations\[0\] names image_id 3, which 'images' lacks"),
])
def test_malformed_coco_json_names_file_and_entry(tmp_path, data, message):
    path = tmp_path / "captions.json"
    path.write_text(data)
    with pytest.raises(PhotoSetError, match=message):
        read_coco_captions(path, tmp_path)


def test_cli_reports_a_bad_file_and_exits_non_zero(tmp_path, capsys):
    (tmp_path / "c.csv").write_text("img,caption\n")
    code = main(["prepare", "captions", "--captions", str(tmp_path / "c.csv"), "--images",
                 str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 1
    assert "c.csv:1: header lacks column(s) image" in capsys.readouterr().err


@pytest.mark.skipif(not FLICKR.is_dir(), reason=f"{FLICKR} is absent (Flickr8k captions)")
def test_real_flickr8k_rows(tmp_path):
    with open(FLICKR / "captions.csv", newline="", encoding="utf-8") as f:
        rows = [next(csv.reader(f)) for _ in range(21)]  # header + the first 4 images' captions
    small = tmp_path / "captions.csv"
    with open(small, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    images = read_captions_csv(small, FLICKR / "images")
    report = make_triples(images, tmp_path / "out", read_splits(FLICKR / "splits.csv"),
                          skip_splits=(), denial_share=0.4)
    assert sum(report.written.values()) + report.no_negation == 20
    assert report.missing_images == 0
    triples = [t for f in report.files.values() for t in read_triples(f)]
    assert all(t.image.is_file() for t in triples)
    by_image = {}
    for image, caption in rows[1:]:
        by_image.setdefault(image, set()).add(caption.strip())
    for t in triples:  # a real paraphrase: another caption of the same photo
        human = by_image[t.image.name]
        if t.caption in human:
            assert t.paraphrase in human and t.paraphrase != t.caption
        elif not t.caption_claim:  # a training denial after a caption: another one follows
            assert any(t.paraphrase.startswith(c.rstrip(" .")) for c in human)
            assert not t.paraphrase.startswith(t.caption[:30])
    assert any(t.caption not in by_image[t.image.name] for t in triples)  # training denials
