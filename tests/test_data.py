"""The triples format: real-format fixtures, malformed input, missing, refused and corrupt
images, in the loader and through ``semclip train``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from torch.utils.data import DataLoader
from torchvision.transforms.functional import pil_to_tensor

from engine.cli.commands import main
from engine.data.triples import (Problem, TriplesDataset, TriplesFormatError, collate,
                                 overlong_captions, read_triples, write_triples)
from engine.model.loading import load_model

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
    (problem,) = batch["problems"]
    assert problem.line == 3 and problem.reason.startswith("unreadable image")
    assert collate([None]) is None
    only_bad = collate([data[1]])  # the report survives a batch with no readable row
    assert only_bad["caption"] == [] and only_bad["image"] is None and len(only_bad["problems"]) == 1
    # texts-only reads (epochs fed by the image-embedding cache) never open the file
    texts = collate([data.texts(i) for i in range(len(data))])
    assert texts["image"] is None and texts["caption"] == ["c0", "c1"]
    assert texts["index"].tolist() == [0, 1] and "problems" not in texts


def damaged_data_folder(tmp_path: Path) -> Path:
    """12 real shapes scenes written by ``semclip shapes``, plus rows whose image is truncated,
    garbage, missing, or a path leaving the data folder; a BOM in front of the header."""
    data = tmp_path / "data"
    assert main(["shapes", "--out", str(data), "--n", "12", "--size", "32"]) == 0
    csv_path = data / "triples.csv"
    good = sorted(data.rglob("*.png"))[0]
    (data / "truncated.png").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (data / "garbage.png").write_bytes(b"\x89PNG garbage " * 20)
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("image,")
    bad = ["truncated.png", "garbage.png", "../../../../etc/passwd", "gone.png"]
    lines += [f"{name},a bad row,a bad row too,no bad row" for name in bad]
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    return csv_path


def test_every_bad_image_is_refused_or_reported_per_row_even_from_worker_processes(tmp_path):
    csv_path = damaged_data_folder(tmp_path)
    data = TriplesDataset(read_triples(csv_path), transform=pil_to_tensor)
    assert len(data) == 14  # 12 scenes + truncated + garbage: unreadable only once opened
    assert [(Path(p.path).name, p.line, p.reason.split(";")[0]) for p in data.missing] == [
        ("passwd", 16, f"image path leaves the data folder {csv_path.parent}"),
        ("gone.png", 17, "image file not found")]
    loader = DataLoader(data, batch_size=7, num_workers=1, collate_fn=collate)
    batches = list(loader)
    problems = [p for b in batches for p in b.get("problems", ())]
    assert [(Path(p.path).name, p.line) for p in problems] == [("truncated.png", 14),
                                                                ("garbage.png", 15)]
    assert sum(len(b["caption"]) for b in batches) == 12


@pytest.mark.parametrize("lock_image", [True, False], ids=["image-cache", "no-cache"])
def test_semclip_train_goes_on_past_bad_images_and_reports_each(tmp_path, capsys, lock_image):
    csv_path = damaged_data_folder(tmp_path)
    config = tmp_path / "run.json"
    config.write_text(json.dumps({
        "model": "semclip-tiny", "dataset": str(csv_path), "batch_size": 7, "epochs": 1,
        "lock_image": lock_image, "workers": 1, "threads": 1, "eval_every_epochs": 0,
        "out_dir": str(tmp_path / "run")}))
    assert main(["train", "--config", str(config), "--quiet"]) == 0
    out = capsys.readouterr().err  # --quiet keeps warnings, on stderr
    assert "../../../../etc/passwd" in out and "leaves the data folder" in out
    assert f"{csv_path}:17: image file not found" in out
    assert "2 of 16 rows skipped (image missing or refused)" in out
    for line, name in ((14, "truncated.png"), (15, "garbage.png")):
        assert sum(line_text.startswith(f"warning: {csv_path}:{line}: unreadable image")
                   and line_text.endswith(name) for line_text in out.splitlines()) == 1
    if lock_image:
        assert "2 training image(s) could not be read" in out
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_overlong_captions_are_found():
    tiny = load_model("semclip-tiny")  # 32-token context
    long = " ".join(["red circle"] * 40)
    assert overlong_captions(["a red circle", long], tiny.tokenizer, 32) == [1]
    assert tiny.tokenizer([long]).shape == (1, 32)  # truncated, not an error


@pytest.mark.parametrize("name", ["triples.csv", "triples.jsonl"])
def test_a_byte_order_mark_is_read_in_csv_and_jsonl(tmp_path, name):
    text = (FIXTURE / name).read_text(encoding="utf-8")
    (tmp_path / name).write_text(text, encoding="utf-8-sig")  # what Excel and Notepad write
    assert read_triples(tmp_path / name, root=FIXTURE) == read_triples(FIXTURE / name)


def test_paths_leaving_the_data_folder_are_refused_absolute_ones_kept(tmp_path):
    rows = [{"image": image, "caption": "c", "paraphrase": "p", "negation": "n"}
            for image in ("../outside.png", "sub/../inside.png", "/abs/elsewhere.png",
                          "sub/../../x.png")]
    write_triples(tmp_path / "data" / "t.csv", rows)
    triples = read_triples(tmp_path / "data" / "t.csv")
    assert [bool(t.refused) for t in triples] == [True, False, False, True]
    assert f"leaves the data folder {tmp_path / 'data'}" in triples[0].refused
