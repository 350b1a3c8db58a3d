"""The triples format: real-format fixtures, malformed input, missing and corrupt images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.data import (Problem, TriplesDataset, TriplesFormatError, overlong_captions,
                         read_triples, write_triples)
from engine.models import load_model
from engine.train import collate

FIXTURE = Path(__file__).parent / "data" / "triples"


@pytest.mark.parametrize("name", ["triples.csv", "triples.jsonl"])
def test_reads_the_shipped_fixture_with_paths_relative_to_the_file(name):
    triples = read_triples(FIXTURE / name)
    assert len(triples) == 3
    assert triples[0].image == FIXTURE / "img0.png" and triples[0].image.is_file()
    assert triples[1].negation == "a small green square without an orange cross"
    assert [t.line for t in triples] == ([2, 3, 4] if name.endswith("csv") else [1, 2, 3])


def test_root_overrides_the_base_folder_and_round_trip(tmp_path):
    rows = [{"image": "a.png", "caption": "a, \"quoted\" cap", "paraphrase": "p", "negation": "n"}]
    for name in ("t.csv", "t.jsonl"):
        write_triples(tmp_path / name, rows)
        (t,) = read_triples(tmp_path / name, root="/data/images")
        assert t.image == Path("/data/images/a.png") and t.caption == 'a, "quoted" cap'
    assert not list(tmp_path.glob("*.tmp"))  # atomic: no temp files left behind


def write(tmp_path, name, text) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_malformed_files_name_the_file_and_line(tmp_path):
    no_col = write(tmp_path, "a.csv", "image,caption,paraphrase\nx.png,c,p\n")
    with pytest.raises(TriplesFormatError, match=r"a\.csv:1: header lacks column\(s\) negation"):
        read_triples(no_col)
    ragged = write(tmp_path, "b.csv", "image,caption,paraphrase,negation\nx.png,c,p,n\ny.png,c,p\n")
    with pytest.raises(TriplesFormatError, match=r"b\.csv:3: 3 fields, header has 4"):
        read_triples(ragged)
    bad_json = write(tmp_path, "c.jsonl", '{"image": "x", "caption": "c", "paraphrase": "p", "negation": "n"}\n{oops\n')
    with pytest.raises(TriplesFormatError, match=r"c\.jsonl:2: not valid JSON"):
        read_triples(bad_json)
    wrong_type = write(tmp_path, "d.jsonl", '{"image": "x", "caption": 3, "paraphrase": "p", "negation": "n"}\n')
    with pytest.raises(TriplesFormatError, match=r"d\.jsonl:1: field 'caption' must be text"):
        read_triples(wrong_type)
    with pytest.raises(TriplesFormatError, match="empty file"):
        read_triples(write(tmp_path, "e.csv", ""))
    with pytest.raises(FileNotFoundError, match="not found"):
        read_triples(tmp_path / "nope.csv")


def test_empty_captions_raise_or_are_skipped_and_reported(tmp_path):
    path = write(tmp_path, "f.csv", "image,caption,paraphrase,negation\nx.png,  ,p,n\ny.png,c,p,n\n")
    with pytest.raises(TriplesFormatError, match=r"f\.csv:2: empty caption"):
        read_triples(path)
    problems: list[Problem] = []
    triples = read_triples(path, on_bad_row="skip", problems=problems)
    assert [t.caption for t in triples] == ["c"]
    assert problems[0].line == 2 and "empty caption" in problems[0].reason


def test_missing_and_corrupt_images_are_counted_reported_and_skipped(tmp_path):
    for name in ("img0.png", "img1.png"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    (tmp_path / "img1.png").write_bytes(b"not a png at all")  # corrupt
    rows = [{"image": f"img{i}.png", "caption": f"c{i}", "paraphrase": "p", "negation": "n"} for i in range(3)]
    write_triples(tmp_path / "t.csv", rows)  # img2.png is missing
    tiny = load_model("semclip-tiny")
    data = TriplesDataset(read_triples(tmp_path / "t.csv"), transform=tiny.preprocess)
    assert len(data) == 2
    assert [(Path(p.path).name, p.line) for p in data.missing] == [("img2.png", 4)]
    batch = collate([data[i] for i in range(len(data))])
    assert batch["caption"] == ["c0"] and batch["image"].shape == (1, 3, 32, 32)
    assert len(data.problems) == 1 and "unreadable image" in data.problems[0].reason
    assert collate([None]) is None
    # texts-only reads (epochs fed by the image-embedding cache) never open the file
    texts = collate([data.texts(i) for i in range(len(data))])
    assert texts["image"] is None and texts["caption"] == ["c0", "c1"]
    assert texts["index"].tolist() == [0, 1] and len(data.problems) == 1


def test_overlong_captions_are_found():
    tiny = load_model("semclip-tiny")  # 32-token context
    long = " ".join(["red circle"] * 40)
    assert overlong_captions(["a red circle", long], tiny.tokenizer, 32) == [1]
    assert tiny.tokenizer([long]).shape == (1, 32)  # truncated, not an error
