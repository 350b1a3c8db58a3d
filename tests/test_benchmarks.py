"""Benchmark loaders on the real file formats (shared samples) and on small built fixtures."""

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from engine.eval import benchmarks as bm

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COCO = SHARED / "coco_val2017_sample"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(),
                                  reason=f"real benchmark samples not found at {SHARED}")


def _coco_files() -> set[str]:
    return set(os.listdir(COCO))


@needs_shared
@pytest.mark.parametrize("name, total", [("replace_rel.json", 1406), ("swap_att.json", 666)])
def test_sugarcrepe_pp_counts_missing_images_exactly(name, total):
    path = SHARED / "sugarcrepe_pp" / name
    data = bm.load_sugarcrepe_pp(path, COCO)
    items = json.loads(path.read_text())
    expected_present = sum(item["filename"] in _coco_files() for item in items)
    assert data.total_rows == total == len(items)
    assert len(data.rows) == expected_present
    assert len(data.missing) == total - expected_present
    assert {"replace_rel.json": 43, "swap_att.json": 24}[name] == expected_present
    first = items[0]
    entry = next(r for r in data.rows + data.missing if r.source == f"{name}:{first['id']}")
    if isinstance(entry, bm.EvalRow):
        assert entry.texts == {"p1": first["caption"], "p2": first["caption2"],
                               "negative": first["negative_caption"]}
    else:
        assert entry.path == str(COCO / first["filename"])
    assert all(r.image.is_file() for r in data.rows)


@needs_shared
def test_negbench_maps_the_foreign_prefix_and_canonicalises_templates():
    path = SHARED / "negbench" / "COCO_val_mcq_sample.csv"
    data = bm.load_negbench_mcq(path, COCO)
    assert data.total_rows == 68 and len(data.rows) == 68 and not data.missing
    first = data.rows[0]
    assert first.image == COCO / "000000397133.jpg"  # from data/coco/images/val2017/...
    assert first.texts["option_0"] == "This image features a knife, but no car is present."
    assert list(first.texts) == ["option_0", "option_1", "option_2", "option_3"]
    assert first.label == 0 and first.group == "hybrid" and first.source.endswith(":2")
    # the file says positive / negative; reports use affirmation / negation
    assert Counter(r.group for r in data.rows) == {"affirmation": 24, "negation": 20, "hybrid": 24}


def test_resolve_image_path_tries_every_tail_of_a_foreign_path(tmp_path):
    (tmp_path / "flat.jpg").write_bytes(b"x")
    (tmp_path / "val2017").mkdir()
    (tmp_path / "val2017" / "nested.jpg").write_bytes(b"x")
    prefix = "data/coco/images/val2017/"
    assert bm.resolve_image_path(prefix + "flat.jpg", tmp_path) == tmp_path / "flat.jpg"
    assert bm.resolve_image_path(prefix + "nested.jpg", tmp_path) == tmp_path / "val2017" / "nested.jpg"
    assert bm.resolve_image_path("/abs/val2017/nested.jpg", tmp_path) == tmp_path / "val2017" / "nested.jpg"
    assert bm.resolve_image_path(prefix + "gone.jpg", tmp_path) == tmp_path / "gone.jpg"
    assert bm.resolve_image_path("rel/a.jpg", None) == Path("rel/a.jpg")


# Three rows copied verbatim from NegBench's COCO_val_mcq.csv (the real format: quoted captions
# with commas, the foreign image prefix, the file's own template words).
NEGBENCH_HEADER = "image_path,correct_answer,caption_0,caption_1,caption_2,caption_3,correct_answer_template"
NEGBENCH_ROWS = [
    'data/coco/images/val2017/000000397133.jpg,0,"This image features a knife, but no car is '
    'present.","A car is present in this image, but there is no knife.",This image features a '
    'car,This image does not feature a knife.,hybrid',
    'data/coco/images/val2017/000000397133.jpg,0,A chair is not present in this image.,"This '
    'image shows a chair, but no spoon is present.",A chair is present in this image.,A spoon is '
    'not included in this image.,negative',
    'data/coco/images/val2017/000000397133.jpg,0,A sink and a spoon are included in this image.,'
    '"A car is present in this image, but a sink is not.",This image features a car.,A sink is '
    'not present in this image.,positive',
]


def write_negbench(tmp_path: Path, header: str = NEGBENCH_HEADER, rows=NEGBENCH_ROWS,
                   end: str = "\n", name: str = "mcq.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + end, encoding=encoding)
    return path


def test_negbench_real_format_copy_loads_with_or_without_a_byte_order_mark(tmp_path):
    for encoding in ("utf-8", "utf-8-sig"):
        data = bm.load_negbench_mcq(write_negbench(tmp_path, encoding=encoding), tmp_path)
        assert data.total_rows == 3 and [m.source for m in data.missing] == [
            "mcq.csv:2", "mcq.csv:3", "mcq.csv:4"]
        assert data.info == {"options": 4}
    # a quoted caption spanning two lines: errors below still name the row's first line
    two_line = NEGBENCH_ROWS[1].replace("but no spoon", "but\nno spoon")
    data = bm.load_negbench_mcq(write_negbench(tmp_path, rows=[two_line, NEGBENCH_ROWS[2]]), tmp_path)
    assert [m.source for m in data.missing] == ["mcq.csv:2", "mcq.csv:4"]


def drop_field(row: str, index: int) -> str:
    """The row without its ``index``-th field (quoted commas respected)."""
    import csv
    import io
    fields = next(csv.reader([row]))
    del fields[index]
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


@pytest.mark.parametrize("header,rows,end,message", [
    # a row with 3 options: the template word would become option 3
    (NEGBENCH_HEADER, [NEGBENCH_ROWS[0], drop_field(NEGBENCH_ROWS[1], 5), NEGBENCH_ROWS[2]], "\n",
     r"mcq\.csv:3: 6 fields, the header has 7 \(a row cut short\?\)"),
    # an extra field: it would become the template
    (NEGBENCH_HEADER, [NEGBENCH_ROWS[0], NEGBENCH_ROWS[1] + ",extra"], "\n",
     r"mcq\.csv:3: 8 fields, the header has 7$"),
    # no template column: a metric named mcq_accuracy_ would appear
    (NEGBENCH_HEADER.rsplit(",", 1)[0], [r.rsplit(",", 1)[0] for r in NEGBENCH_ROWS], "\n",
     r"mcq\.csv:1: no column\(s\) correct_answer_template"),
    # no caption_3 column: it would be scored as a 3-option test
    (NEGBENCH_HEADER.replace(",caption_3", ""), [drop_field(r, 5) for r in NEGBENCH_ROWS], "\n",
     r"mcq\.csv:1: no column\(s\) caption_3"),
    # a fifth option column
    (NEGBENCH_HEADER.replace(",caption_3", ",caption_3,caption_4"),
     [r.replace(",hybrid", ",x,hybrid").replace(",negative", ",x,negative").replace(
         ",positive", ",x,positive") for r in NEGBENCH_ROWS], "\n", r"found also caption_4"),
    # a file cut inside its last row, inside a quoted caption
    (NEGBENCH_HEADER, [NEGBENCH_ROWS[0], NEGBENCH_ROWS[1][:120]], "",
     r"mcq\.csv:3: 4 fields, the header has 7 \(a row cut short\?\)"),
    # ... or inside its template word
    (NEGBENCH_HEADER, [NEGBENCH_ROWS[0], NEGBENCH_ROWS[1][:-3]], "",
     r"mcq\.csv:3: unknown correct_answer_template 'negat'"),
    (NEGBENCH_HEADER, [NEGBENCH_ROWS[0], NEGBENCH_ROWS[1].replace(",negative", ",")], "\n",
     r"mcq\.csv:3: unknown correct_answer_template ''"),
    (NEGBENCH_HEADER, [NEGBENCH_ROWS[0].replace("jpg,0,", "jpg,4,")], "\n",
     r"mcq\.csv:2: correct_answer 4 outside 0\.\.3"),
    (NEGBENCH_HEADER, [NEGBENCH_ROWS[0].replace("jpg,0,", "jpg,first,")], "\n",
     r"mcq\.csv:2: correct_answer 'first' is not an integer"),
    (NEGBENCH_HEADER, [NEGBENCH_ROWS[0].replace("This image features a car,", ",")], "\n",
     r"mcq\.csv:2: field 'caption_2' is missing or empty"),
    ("", [], "", r"mcq\.csv: empty file"),
], ids=["three-options", "extra-field", "no-template-column", "no-caption_3-column",
        "five-options", "cut-inside-a-caption", "cut-inside-the-template", "empty-template",
        "answer-outside", "answer-not-a-number", "empty-option", "empty-file"])
def test_negbench_rejects_malformed_copies_naming_file_and_line(tmp_path, header, rows, end, message):
    path = write_negbench(tmp_path, header=header, rows=rows, end=end)
    with pytest.raises(bm.BenchmarkFormatError, match=message):
        bm.load_negbench_mcq(path, tmp_path)


def test_sugarcrepe_pp_names_the_item_and_field_of_bad_input(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"id": 0, "filename": "a.jpg", "caption": "c", "caption2": "d"}]))
    with pytest.raises(bm.BenchmarkFormatError, match=r"item 0: field 'negative_caption'"):
        bm.load_sugarcrepe_pp(path, tmp_path)
    with pytest.raises(bm.BenchmarkFormatError, match="--images"):
        bm.load_sugarcrepe_pp(path, None)


def write_ccneg(path: Path, n: int, images: Path) -> None:
    """A small file in CC-Neg's real nested format (foreign absolute image paths)."""
    annotations = [{"json": {"caption": f"caption {i}", "key": f"{i:05d}"},
                    "sop_data": {"negative-prompt": f"not caption {i}", "subject": "s"}}
                   for i in range(n)]
    torch.save({"image_paths": [f"/datasets/cc3m/training/{i:05d}.jpg" for i in range(n)],
                "annotations": annotations}, path)
    for i in range(n):
        if i != n - 2:  # one image of the evaluation split is missing
            Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(images / f"{i:05d}.jpg")


def test_ccneg_keeps_the_last_items_as_the_evaluation_split(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    write_ccneg(tmp_path / "ccneg_preprocessed.pt", 10, images)
    data = bm.load_ccneg(tmp_path / "ccneg_preprocessed.pt", images, eval_size=4)
    assert data.total_rows == 4 and data.info == {"items_in_file": 10, "eval_start": 6}
    assert [r.source for r in data.rows] == ["ccneg_preprocessed.pt:6", "ccneg_preprocessed.pt:7",
                                             "ccneg_preprocessed.pt:9"]
    assert data.rows[0].texts == {"caption": "caption 6", "negation": "not caption 6"}
    assert data.rows[0].image == images / "00006.jpg"
    assert [m.path for m in data.missing] == [str(images / "00008.jpg")]
    everything = bm.load_ccneg(tmp_path / "ccneg_preprocessed.pt", images, eval_size=40_000)
    assert everything.total_rows == 10 and everything.info["eval_start"] == 0


def test_ccneg_names_the_broken_annotation(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"image_paths": ["a.jpg", "b.jpg"],
                "annotations": [{"json": {"caption": "x"}, "sop_data": {"negative-prompt": "y"}},
                                {"json": {"caption": "x"}}]}, path)
    with pytest.raises(bm.BenchmarkFormatError, match=r"annotations\[1\].*sop_data"):
        bm.load_ccneg(path)
    torch.save({"paths": []}, path)
    with pytest.raises(bm.BenchmarkFormatError, match="image_paths"):
        bm.load_ccneg(path)


def draw_shape(kind: str, colour: str, size: int = 32) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    box = (6, 6, size - 6, size - 6)
    (draw.ellipse if kind == "circle" else draw.rectangle)(box, fill=colour)
    return image


def make_zeroshot_folder(root: Path, per_class: int = 3) -> Path:
    for kind, colour in (("circle", "red"), ("square", "blue")):
        folder = root / f"{colour}_{kind}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            draw_shape(kind, colour, 32 + 2 * i).save(folder / f"{i}.png")
    (root / "red_circle" / "notes.txt").write_text("not an image")
    return root


def test_zeroshot_folder_classes_and_labels(tmp_path):
    data = bm.load_zeroshot_folder(make_zeroshot_folder(tmp_path / "zs"))
    assert data.class_names == ["blue square", "red circle"]
    assert [r.label for r in data.rows] == [0, 0, 0, 1, 1, 1]
    assert data.rows[3].source == "red_circle/0.png"
    assert bm.zeroshot_prompts(data.class_names, bm.ZEROSHOT_NEGATED_TEMPLATE) == [
        "this is not a photo of a blue square", "this is not a photo of a red circle"]
    with pytest.raises(bm.BenchmarkFormatError, match="two class"):
        bm.load_zeroshot_folder(tmp_path / "zs" / "red_circle")


def test_shapes_test_split():
    pytest.importorskip("engine.data.shapes.world", reason="engine/data/shapes/world.py not written yet")
    data = bm.load_shapes(n=4, seed=0, image_size=32)
    assert len(data.rows) == 4 and not data.missing
    assert all(isinstance(r.image, Image.Image) for r in data.rows)
    assert set(data.rows[0].texts) == {"caption", "paraphrase", "negation", "true_negation"}


def test_triples_file_counts_missing_images(tmp_path):
    data_module = pytest.importorskip("engine.data.triples", reason="engine/data/triples.py not written yet")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    csv_path = tmp_path / "triples.csv"
    csv_path.write_text("image,caption,paraphrase,negation\n"
                        "a.png,a red circle,a circle that is red,no red circle\n"
                        "b.png,a blue square,a square that is blue,no blue square\n")
    if len(data_module.read_triples(csv_path, root=tmp_path)) != 2:
        pytest.skip("engine.data.triples.read_triples reads another CSV layout")
    data = bm.load_triples_file(csv_path, tmp_path)
    assert data.total_rows == 2 and len(data.rows) == 1 and len(data.missing) == 1
    assert data.rows[0].texts["negation"] == "no red circle"


def test_triples_eval_never_opens_a_path_leaving_the_data_folder(tmp_path):
    from engine.data.triples import write_triples

    (tmp_path / "secret.png").write_bytes(b"outside the data folder")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    write_triples(tmp_path / "data" / "t.csv", [
        {"image": "../a.png", "caption": "c", "paraphrase": "p", "negation": "n"},
        {"image": "../secret.png", "caption": "c", "paraphrase": "p", "negation": "n"}])
    data = bm.load_triples_file(tmp_path / "data" / "t.csv", tmp_path / "data")
    assert data.rows == [] and [m.source for m in data.missing] == ["t.csv:2", "t.csv:3"]
    assert all("leaves the data folder" in m.reason for m in data.missing)
