"""Loaders that turn benchmark files in their published formats into one common row list.

Every loader returns a :class:`BenchmarkData`: rows whose image exists (as a file, or an
in-memory PIL image for the shapes world) and a separate list of rows whose image file is
absent. Missing images are never an error and never silently dropped: they are counted and
named in the evaluation's report. Malformed files raise :class:`BenchmarkFormatError` naming
the file, the row and the field.

Formats (see ``../shared/data/README.md``):

* SugarCrepe++ JSON (any of its five subset files): ``id, filename, caption, caption2,
  negative_caption`` + a COCO image folder.
* CC-Neg ``ccneg_preprocessed.pt``: ``image_paths`` and ``annotations[i]["json"]["caption"]`` /
  ``annotations[i]["sop_data"]["negative-prompt"]``; the evaluation split is the last 40,000.
* NegBench MCQ CSV: ``image_path, correct_answer, caption_0..caption_3,
  correct_answer_template``; ``image_path`` carries a foreign prefix mapped onto a local folder.
* NegBench negated retrieval CSV (``COCO_val_negated_retrieval*.csv``): ``filepath`` (or
  ``image_path``) and ``captions``, a Python list literal of the image's captions.
* The project's triples CSV/JSONL (:func:`engine.data.triples.read_triples`) and the shapes world.
* A folder with one sub-folder of images per class, for zero-shot classification.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Optional, Sequence, Union

from PIL import Image

from engine.paths import IMAGE_SUFFIXES

ImageSource = Union[Path, Image.Image]

BENCHMARKS = ("shapes", "ccneg", "sugarcrepe_pp", "negbench_mcq", "negbench_retrieval",
              "zeroshot", "triples", "captions_retrieval")  # what `semclip eval --benchmark` takes
CCNEG_EVAL_SIZE = 40_000
ZEROSHOT_AFFIRMATIVE_TEMPLATE = "this is a photo of a {}"
ZEROSHOT_NEGATED_TEMPLATE = "this is not a photo of a {}"

# NegBench files name their template types differently across releases; report canonical names.
NEGBENCH_TEMPLATE_NAMES = {"positive": "affirmation", "affirmation": "affirmation",
                           "affirmative": "affirmation", "negative": "negation",
                           "negation": "negation", "hybrid": "hybrid"}
NEGBENCH_OPTIONS = 4
NEGBENCH_COLUMNS = ("image_path", "correct_answer",
                    *(f"caption_{i}" for i in range(NEGBENCH_OPTIONS)), "correct_answer_template")


class BenchmarkFormatError(ValueError):
    """A benchmark file does not have the expected format; the message names file/row/field."""


@dataclass
class EvalRow:
    """One scored item: an image, its texts, and (for choice tasks) the right answer."""

    image: ImageSource
    texts: dict[str, str]  # role -> text, e.g. caption / paraphrase / negation, option_0..
    label: int = -1  # right option (MCQ) or class index (zero-shot)
    group: str = ""  # NegBench template type
    source: str = ""  # "file:row" for messages
    content: str = ""  # what the picture shows (shapes: its objects), for content_top1


@dataclass
class MissingImage:
    """A row left out before encoding because its image file does not exist."""

    path: str
    source: str
    reason: str = "image file not found"


@dataclass
class BenchmarkData:
    """A loaded benchmark: rows with an image on hand, and rows whose image is missing."""

    name: str
    source: str
    rows: list[EvalRow]
    missing: list[MissingImage] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)  # zero-shot only
    info: dict[str, Any] = field(default_factory=dict)  # loader details worth reporting

    @property
    def total_rows(self) -> int:
        return len(self.rows) + len(self.missing)


def resolve_image_path(raw: str, images_dir: Optional[Path]) -> Path:
    """Map an image path written on another machine onto a local image folder.

    Tries, in order: the path itself when absolute (and no folder is given), then
    ``images_dir / suffix`` for ever shorter trailing parts of the path, so a foreign prefix
    such as ``data/coco/images/val2017/`` maps onto any folder holding the file (directly or
    under a tail of that prefix). Returns the first existing candidate, else the most direct
    one (``images_dir / filename``), which the caller reports as missing.
    """
    parts = PurePosixPath(raw.replace("\\", "/")).parts
    if images_dir is None:
        return Path(raw)
    images_dir = Path(images_dir)
    candidates = [images_dir.joinpath(*parts[i:]) for i in range(len(parts))
                  if parts[i] not in ("/", "..", ".")]
    if Path(raw).is_absolute():
        candidates.append(Path(raw))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return images_dir / parts[-1] if parts else images_dir


def _split_missing(name: str, source: str, rows: list[EvalRow], **extra: Any) -> BenchmarkData:
    present, missing = [], []
    for row in rows:
        if isinstance(row.image, Path) and not row.image.is_file():
            missing.append(MissingImage(path=str(row.image), source=row.source))
        else:
            present.append(row)
    return BenchmarkData(name=name, source=source, rows=present, missing=missing, **extra)


def _need_file(path: Union[str, Path], what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise BenchmarkFormatError(f"{what} not found: {path}")
    return path


def _need_dir(path: Optional[Union[str, Path]], what: str) -> Path:
    if path is None:
        raise BenchmarkFormatError(f"{what}: give the image folder (--images DIR)")
    path = Path(path)
    if not path.is_dir():
        raise BenchmarkFormatError(f"{what}: image folder not found: {path}")
    return path


def _text_field(item: dict, key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BenchmarkFormatError(f"{where}: field {key!r} is missing or empty")
    return value


# ---------------------------------------------------------------------------------------------
# SugarCrepe++
# ---------------------------------------------------------------------------------------------

def load_sugarcrepe_pp(json_path: Union[str, Path], images_dir: Union[str, Path]) -> BenchmarkData:
    """A SugarCrepe++ subset file (e.g. ``replace_rel.json``) with its COCO image folder.

    Texts: ``p1`` = caption, ``p2`` = caption2 (its paraphrase), ``negative`` = negative_caption.
    """
    path = _need_file(json_path, "SugarCrepe++ file")
    folder = _need_dir(images_dir, f"SugarCrepe++ {path.name}")
    try:
        items = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise BenchmarkFormatError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(items, dict):  # some copies are keyed by id instead of a list
        items = list(items.values())
    if not isinstance(items, list):
        raise BenchmarkFormatError(f"{path}: expected a JSON list of items")
    rows = []
    for index, item in enumerate(items):
        where = f"{path}: item {index}"
        if not isinstance(item, dict):
            raise BenchmarkFormatError(f"{where}: expected an object")
        filename = _text_field(item, "filename", where)
        rows.append(EvalRow(
            image=resolve_image_path(filename, folder),
            texts={"p1": _text_field(item, "caption", where),
                   "p2": _text_field(item, "caption2", where),
                   "negative": _text_field(item, "negative_caption", where)},
            source=f"{path.name}:{item.get('id', index)}"))
    return _split_missing("sugarcrepe_pp", str(path), rows)


# ---------------------------------------------------------------------------------------------
# CC-Neg
# ---------------------------------------------------------------------------------------------

def load_ccneg(pt_path: Union[str, Path], images_dir: Optional[Union[str, Path]] = None,
               eval_size: int = CCNEG_EVAL_SIZE) -> BenchmarkData:
    """CC-Neg's ``ccneg_preprocessed.pt``; keeps the evaluation split (the last ``eval_size``).

    Image paths are mapped onto ``images_dir`` by :func:`resolve_image_path` (as written when
    no folder is given). Texts: ``caption`` (true) and ``negation`` (the negated prompt).
    """
    import torch

    path = _need_file(pt_path, "CC-Neg file")
    folder = Path(images_dir) if images_dir is not None else None
    if folder is not None and not folder.is_dir():
        raise BenchmarkFormatError(f"CC-Neg: image folder not found: {folder}")
    try:  # plain containers of strings: the safe loader suffices
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not this format"
        raise BenchmarkFormatError(f"{path}: cannot read as a CC-Neg .pt file ({exc})") from exc
    if not isinstance(blob, dict) or "image_paths" not in blob or "annotations" not in blob:
        raise BenchmarkFormatError(f"{path}: expected a dict with 'image_paths' and 'annotations'")
    paths, annotations = list(blob["image_paths"]), list(blob["annotations"])
    if len(paths) != len(annotations):
        raise BenchmarkFormatError(f"{path}: {len(paths)} image_paths but "
                                   f"{len(annotations)} annotations")
    if eval_size <= 0:
        raise BenchmarkFormatError(f"CC-Neg eval_size must be positive, got {eval_size}")
    start = max(0, len(paths) - eval_size)
    rows = []
    for index in range(start, len(paths)):
        where = f"{path}: annotations[{index}]"
        ann = annotations[index]
        try:
            caption = ann["json"]["caption"]
            negation = ann["sop_data"]["negative-prompt"]
        except (KeyError, TypeError) as exc:
            raise BenchmarkFormatError(f"{where}: missing field {exc} (expected "
                                       f"['json']['caption'] and ['sop_data']['negative-prompt'])") from exc
        if not isinstance(caption, str) or not isinstance(negation, str):
            raise BenchmarkFormatError(f"{where}: caption and negative-prompt must be strings")
        rows.append(EvalRow(image=resolve_image_path(str(paths[index]), folder),
                            texts={"caption": caption, "negation": negation},
                            source=f"{path.name}:{index}"))
    return _split_missing("ccneg", str(path), rows,
                          info={"items_in_file": len(paths), "eval_start": start})


# ---------------------------------------------------------------------------------------------
# NegBench multiple choice
# ---------------------------------------------------------------------------------------------

def _csv_records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, fields) for each record of a CSV file after its header;
    blank lines skipped. A record may span lines (a quoted newline), hence the first line."""
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel writes a BOM
        reader = csv.reader(f)
        try:
            while True:
                start = reader.line_num + 1
                values = next(reader, None)
                if values is None:
                    return
                if any(v.strip() for v in values):
                    yield start, values
        except csv.Error as exc:
            raise BenchmarkFormatError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None


def load_negbench_mcq(csv_path: Union[str, Path], images_dir: Union[str, Path]) -> BenchmarkData:
    """NegBench's MCQ CSV; ``image_path``'s foreign prefix is mapped onto ``images_dir``.

    Texts ``option_0..option_3`` from ``caption_0..caption_3``; ``label`` = correct_answer;
    ``group`` = the template type, canonicalised to ``affirmation`` / ``negation`` / ``hybrid``
    (files also say ``positive`` / ``negative``). Every row is checked (its field count against
    the header, four non-empty options, the answer, a known template), so a malformed or cut-off
    row is an error naming file:line rather than a silently different score.
    """
    path = _need_file(csv_path, "NegBench CSV")
    folder = _need_dir(images_dir, f"NegBench {path.name}")
    records = _csv_records(path)
    first = next(records, None)
    if first is None:
        raise BenchmarkFormatError(f"{path}: empty file (expected the header "
                                   f"{','.join(NEGBENCH_COLUMNS)})")
    header = [h.strip() for h in first[1]]
    absent = [c for c in NEGBENCH_COLUMNS if c not in header]
    if absent:
        raise BenchmarkFormatError(f"{path}:{first[0]}: no column(s) {', '.join(absent)} "
                                   f"(header: {','.join(header)}; NegBench MCQ has "
                                   f"{','.join(NEGBENCH_COLUMNS)})")
    extra_options = [h for h in header if re.fullmatch(r"caption_\d+", h) and h not in NEGBENCH_COLUMNS]
    if extra_options:
        raise BenchmarkFormatError(f"{path}:{first[0]}: {NEGBENCH_OPTIONS} options expected "
                                   f"(caption_0..caption_{NEGBENCH_OPTIONS - 1}), found also "
                                   f"{', '.join(extra_options)}")
    rows = []
    for line, values in records:
        where = f"{path}:{line}"
        if len(values) != len(header):
            raise BenchmarkFormatError(
                f"{where}: {len(values)} fields, the header has {len(header)}"
                f"{' (a row cut short?)' if len(values) < len(header) else ''}")
        record = dict(zip(header, values))
        try:
            label = int(record["correct_answer"])
        except ValueError:
            raise BenchmarkFormatError(f"{where}: correct_answer {record['correct_answer']!r} "
                                       f"is not an integer") from None
        if not 0 <= label < NEGBENCH_OPTIONS:
            raise BenchmarkFormatError(f"{where}: correct_answer {label} outside "
                                       f"0..{NEGBENCH_OPTIONS - 1}")
        template = record["correct_answer_template"].strip()
        if template.lower() not in NEGBENCH_TEMPLATE_NAMES:
            raise BenchmarkFormatError(f"{where}: unknown correct_answer_template {template!r} "
                                       f"(known: {', '.join(sorted(NEGBENCH_TEMPLATE_NAMES))})")
        rows.append(EvalRow(
            image=resolve_image_path(_text_field(record, "image_path", where), folder),
            texts={f"option_{i}": _text_field(record, f"caption_{i}", where)
                   for i in range(NEGBENCH_OPTIONS)},
            label=label, group=NEGBENCH_TEMPLATE_NAMES[template.lower()],
            source=f"{path.name}:{line}"))
    return _split_missing("negbench_mcq", str(path), rows, info={"options": NEGBENCH_OPTIONS})


# NegBench names the image column either way across its files; ``filepath`` is the retrieval one
NEGBENCH_RETRIEVAL_IMAGE_COLUMNS = ("filepath", "image_path")
NEGBENCH_RETRIEVAL_CAPTIONS = "captions"


def _caption_list(raw: str, where: str) -> list[str]:
    """NegBench's ``captions`` cell: a Python list literal of non-empty strings (read with
    ``ast.literal_eval``, never ``eval``: a data file must not run code)."""
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise BenchmarkFormatError(f"{where}: captions {raw[:60]!r} is not a list literal such "
                                   f"as ['a dog', 'no cat']") from None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or \
            not all(isinstance(c, str) and c.strip() for c in value):
        raise BenchmarkFormatError(f"{where}: captions must be a non-empty list of non-empty "
                                   f"strings, got {raw[:60]!r}")
    return list(value)


def load_negbench_retrieval(csv_path: Union[str, Path], images_dir: Union[str, Path]) -> BenchmarkData:
    """NegBench's negated retrieval CSV (``COCO_val_negated_retrieval*.csv``).

    One row per image: ``filepath`` (``image_path`` in some files; its foreign prefix mapped
    onto ``images_dir``) and ``captions``, a list literal of the captions that retrieve it
    (NegBench's own captions, most with a negated object). Each caption becomes one
    :class:`EvalRow` (``texts={"caption": ...}``), so text-to-image recall counts captions and
    several rows share an image. Other columns are ignored.
    """
    path = _need_file(csv_path, "NegBench CSV")
    folder = _need_dir(images_dir, f"NegBench {path.name}")
    records = _csv_records(path)
    first = next(records, None)
    if first is None:
        raise BenchmarkFormatError(f"{path}: empty file (expected a header with filepath,captions)")
    header = [h.strip() for h in first[1]]
    image_column = next((c for c in NEGBENCH_RETRIEVAL_IMAGE_COLUMNS if c in header), None)
    if image_column is None or NEGBENCH_RETRIEVAL_CAPTIONS not in header:
        raise BenchmarkFormatError(f"{path}:{first[0]}: NegBench retrieval needs the columns "
                                   f"filepath (or image_path) and captions; header: "
                                   f"{','.join(header)}")
    rows, images = [], 0
    for line, values in records:
        where = f"{path}:{line}"
        if len(values) != len(header):
            raise BenchmarkFormatError(f"{where}: {len(values)} fields, the header has "
                                       f"{len(header)}")
        record = dict(zip(header, values))
        image = resolve_image_path(_text_field(record, image_column, where), folder)
        images += 1
        rows += [EvalRow(image=image, texts={"caption": caption}, source=f"{path.name}:{line}")
                 for caption in _caption_list(record[NEGBENCH_RETRIEVAL_CAPTIONS], where)]
    return _split_missing("negbench_retrieval", str(path), rows, info={"images_in_file": images})


# ---------------------------------------------------------------------------------------------
# the project's own data
# ---------------------------------------------------------------------------------------------

def load_triples_file(path: Union[str, Path], images_dir: Optional[Union[str, Path]] = None,
                      columns: Optional[dict[str, str]] = None,
                      split_part: Optional[Any] = None) -> BenchmarkData:
    """The project's triples CSV/TSV/JSONL (image, caption, paraphrase, negation; ``columns``
    maps them to other column names); ``split_part`` (a :class:`.triples_io.SplitPart`) keeps
    one part of a split, e.g. the test rows a training run held out."""
    from engine.data.triples import read_triples

    path = _need_file(path, "triples file")
    try:
        triples = read_triples(path, root=Path(images_dir) if images_dir else None,
                               columns=columns)
        if split_part is not None:
            triples = split_part.select(triples)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a format error of this file
        message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        raise BenchmarkFormatError(message) from exc
    rows = [EvalRow(image=Path(t.image),
                    texts={"caption": t.caption, "paraphrase": t.paraphrase,
                           "negation": t.negation,
                           **({"true_negation": t.true_negation}
                              if getattr(t, "true_negation", "") else {})},
                    source=f"{path.name}:{t.line}") for t in triples if not t.refused]
    data = _split_missing("triples", str(path), rows)
    # a path leaving the data folder is never opened; it is reported with the missing ones
    data.missing += [MissingImage(path=str(t.image), source=f"{path.name}:{t.line}",
                                  reason=t.refused) for t in triples if t.refused]
    return data


def scene_content(objects: Sequence[dict]) -> str:
    """What a shapes scene shows, position aside: "large red circle|small blue square" (sorted),
    the same for every scene a position-free caption describes."""
    return "|".join(sorted(f"{o['size']} {o['colour']} {o['shape']}" for o in objects))


def load_shapes(n: int = 500, seed: int = 0, image_size: int = 64) -> BenchmarkData:
    """``n`` scenes of the shapes world's held-out ``test`` split (in-memory images).

    ``negation`` is the *false* negation (a statement the image contradicts), the one the
    original-over-negation accuracy compares the caption with; ``true_negation`` a true
    statement that uses negation ("... and no triangle"), which negation grounding compares
    with the false one.
    """
    from engine.data.shapes.world import ShapesWorld

    if n <= 0:
        raise BenchmarkFormatError(f"shapes: the number of scenes (--n) must be positive, got {n}")
    world = ShapesWorld(seed=seed, image_size=image_size)
    rows = []
    for index in range(n):
        item = world.item("test", index)
        rows.append(EvalRow(image=item["image"],
                            texts={"caption": item["caption"], "paraphrase": item["paraphrase"],
                                   "negation": item["negation"],
                                   "true_negation": item["true_negation"]},
                            source=f"shapes[seed={seed}]:test:{index}",
                            content=scene_content(item["objects"])))
    return BenchmarkData(name="shapes", source=f"shapes-world seed={seed} test n={n}", rows=rows,
                         info={"seed": seed, "image_size": image_size})


# ---------------------------------------------------------------------------------------------
# zero-shot image folder
# ---------------------------------------------------------------------------------------------

def class_name_from_folder(folder_name: str) -> str:
    """``golden_retriever`` / ``golden-retriever`` -> ``golden retriever``."""
    return re.sub(r"[_\-]+", " ", folder_name).strip()


def load_zeroshot_folder(root: Union[str, Path]) -> BenchmarkData:
    """A folder with one sub-folder of images per class (sorted names = class indices).

    Texts per row are none: the prompts are per class (see :func:`zeroshot_prompts`).
    """
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkFormatError(f"zero-shot: folder not found: {root}")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise BenchmarkFormatError(f"zero-shot: {root} needs at least two class sub-folders, "
                                   f"found {len(class_dirs)}")
    rows = []
    for label, class_dir in enumerate(class_dirs):
        for image in sorted(class_dir.rglob("*")):
            if image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES:
                rows.append(EvalRow(image=image, texts={}, label=label,
                                    source=f"{class_dir.name}/{image.relative_to(class_dir)}"))
    if not rows:
        raise BenchmarkFormatError(f"zero-shot: no images ({', '.join(IMAGE_SUFFIXES)}) "
                                   f"under {root}")
    return BenchmarkData(name="zeroshot", source=str(root), rows=rows,
                         class_names=[class_name_from_folder(d.name) for d in class_dirs])


def zeroshot_prompts(class_names: list[str], template: str) -> list[str]:
    """One prompt per class from a template with a ``{}`` slot."""
    return [template.format(name) for name in class_names]
