"""Triples from a captioned photo set (several human captions per image).

Sources: a generic ``image,caption`` CSV (one row per caption, e.g. Flickr8k's ``captions.csv``),
or a COCO-style captions JSON (``images: [{id, file_name}]``, ``annotations: [{image_id,
caption}]``), with an optional ``image,split`` CSV. Each caption becomes one triple:

* paraphrase: another human caption of the same image (the next one, cyclically) -- a real
  paraphrase, not a rewrite by rule;
* negation: a false negation of the caption from the rules backend (``engine.captions.rules``),
  its kind rotating through those the caption allows, so the set holds every frame the rules
  make (determiner, existential, verbal, prepositional, non-verbal). Captions the rules cannot
  negate are dropped and counted;
* true_negation: the caption plus the denial of an object that *no* caption of the image
  mentions ("... and no horse"; :mod:`engine.data.photo_language`). Human captions name what
  stands out, so a dog, horse or boat none of five people mentioned is very likely absent;
  likely, not certain: these are for training and the negation-grounding score, not ground
  truth;
* objects: what the captions mention (``dog;person``); the claim term of the loss reads it.

In training splits a share of the captions (``denial_share``, 0 by default) can instead make
triples that deny an absent object, after the caption or as a whole sentence ("there is no
horse in this photo"), with the affirmation or a denial of a shown object as the negation
(:func:`denial_triple`).

Images are never copied: the triples name them by absolute path. Malformed input raises
:class:`PhotoSetError` naming the file and line (CSV) or entry (JSON).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from engine.data.photo_language import PHOTO_OBJECTS, affirmation, denial, mentioned_objects
from engine.data.triples_io import write_triples

PathLike = Union[str, Path]


class PhotoSetError(ValueError):
    """A captions or splits file is malformed; the message names the file and line."""


@dataclass
class CaptionedImages:
    """Images (absolute paths, in first-seen order) with their captions."""

    captions: dict[Path, list[str]] = field(default_factory=dict)

    def add(self, image: Path, caption: str) -> None:
        self.captions.setdefault(image, []).append(caption)

    def __len__(self) -> int:
        return len(self.captions)


def _csv_rows(path: Path, columns: tuple[str, ...]):
    """(line, row dict) of a CSV with a header holding ``columns``; blank lines skipped."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        absent = [c for c in columns if c not in header]
        if absent:
            raise PhotoSetError(f"{path}:1: header lacks column(s) {', '.join(absent)} "
                                f"(has {', '.join(header) or 'nothing'})")
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise PhotoSetError(f"{path}:{reader.line_num}: {len(values)} fields, header "
                                    f"has {len(header)}")
            row = {k: v.strip() for k, v in zip(header, values)}
            for column in columns:
                if not row[column]:
                    raise PhotoSetError(f"{path}:{reader.line_num}: empty {column}")
            yield reader.line_num, row


def read_captions_csv(path: PathLike, images_dir: PathLike) -> CaptionedImages:
    """An ``image,caption`` CSV; image names are relative to ``images_dir``."""
    path, images_dir = Path(path), Path(images_dir).resolve()
    out = CaptionedImages()
    for _, row in _csv_rows(path, ("image", "caption")):
        out.add(images_dir / row["image"], row["caption"])
    return out


def read_coco_captions(path: PathLike, images_dir: PathLike) -> CaptionedImages:
    """A COCO-style captions JSON (``captions_train2017.json`` layout)."""
    path, images_dir = Path(path), Path(images_dir).resolve()
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise PhotoSetError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or \
            not isinstance(data.get("annotations"), list):
        raise PhotoSetError(f"{path}: expected an object with 'images' and 'annotations' lists")
    names: dict = {}
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or \
                not isinstance(image.get("file_name"), str):
            raise PhotoSetError(f"{path}: images[{i}] needs an 'id' and a 'file_name'")
        names[image["id"]] = image["file_name"]
    out = CaptionedImages()
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not isinstance(ann.get("caption"), str):
            raise PhotoSetError(f"{path}: annotations[{i}] needs a 'caption' text")
        if ann.get("image_id") not in names:
            raise PhotoSetError(f"{path}: annotations[{i}] names image_id "
                                f"{ann.get('image_id')!r}, which 'images' lacks")
        caption = ann["caption"].strip()
        if caption:
            out.add(images_dir / names[ann["image_id"]], caption)
    return out


def read_splits(path: PathLike) -> dict[str, str]:
    """``image,split`` CSV: image file name -> split name."""
    return {row["image"]: row["split"] for _, row in _csv_rows(Path(path), ("image", "split"))}


@dataclass
class PrepareReport:
    """What :func:`make_triples` wrote and left out."""

    written: dict[str, int] = field(default_factory=dict)  # split -> triples
    files: dict[str, Path] = field(default_factory=dict)  # split -> file
    no_negation: int = 0  # captions the rules could not negate
    single_caption: int = 0  # images with one caption: no paraphrase to pair
    missing_images: int = 0  # images named by the captions but absent on disk
    unassigned: int = 0  # images the splits file leaves out or marks unassigned
    negation_kinds: Counter = field(default_factory=Counter)
    denials: Counter = field(default_factory=Counter)  # denial triples: appended / standalone

    def summary(self) -> str:
        parts = [f"{split}: {n} triples -> {self.files[split]}" for split, n in self.written.items()]
        skipped = (f"skipped: {self.no_negation} caption(s) without a rules negation, "
                   f"{self.single_caption} image(s) with a single caption, "
                   f"{self.missing_images} missing image(s), {self.unassigned} unassigned image(s)")
        kinds = ", ".join(f"{k} {n}" for k, n in self.negation_kinds.most_common())
        lines = parts + [skipped, f"negation kinds: {kinds}"]
        if self.denials:
            lines.append("triples denying an object no caption mentions: " +
                         ", ".join(f"{k} {n}" for k, n in sorted(self.denials.items())))
        return "\n".join(lines)


# Share of training triples that deny an object instead of pairing a caption with a rules
# negation (``--denial-share``; off by default). Without them every training caption is
# affirmative and every hard negative says "no"/"not", so a model learns "a negation word makes
# a caption wrong" and prefers "there is a chair" to "there is no chair" under a photo without
# chairs. Measured on Flickr8k (bench/RESULTS.md section 9), 0.4 teaches both CLIP and SemCLIP
# NegBench-style negation (0.02 -> 0.72 on held-out photos) but costs flower zero-shot
# (0.40 -> 0.26): a trade, so the shipped pair is trained without.
DENIAL_SHARE = 0.0
EVAL_SPLITS = ("dev", "val", "validation", "test")  # kept as the human captions alone


def true_negation(caption: str, absent: list[str], index: int) -> str:
    """``caption`` with a denial of one of the ``absent`` objects, frame and object picked by
    ``index`` (so neighbouring captions differ); "" when nothing is known to be absent."""
    if not absent:
        return ""
    return denial(absent[index % len(absent)], index, caption)


def denial_triple(caption: str, other_caption: str, absent: str, shown: list[str],
                  n: int) -> dict[str, str]:
    """A training triple about an object the photo lacks (``absent``), the ``n``-th of its
    kind: the caption denies it, after ``caption`` or (every other one) as a whole sentence;
    the paraphrase denies it in another frame (after ``other_caption``, another human caption
    of the photo); the negation affirms it, or denies one of the objects the photo ``shown``.
    Whole sentences carry claims (``absent:horse``), true of every photo without a horse, so
    training can mask the other photos of a batch they are true of."""
    standalone = n % 2 == 1
    base, other = ("", "") if standalone else (caption, other_caption)
    frame = n // 2
    row = {"caption": denial(absent, frame, base), "paraphrase": denial(absent, frame + 1, other)}
    if shown and (n // 2) % 2 == 1:
        present = shown[(n // 4) % len(shown)]
        row["negation"], claim = denial(present, frame, base), f"absent:{present}"
    else:
        row["negation"], claim = affirmation(absent, frame, base), f"present:{absent}"
    if standalone:
        row.update(caption_claim=f"absent:{absent}", negation_claim=claim)
    return row


def _picked(k: int, share: float) -> bool:
    """Whether item ``k`` of a sequence is among an evenly spread ``share`` of it."""
    return int((k + 1) * share) > int(k * share)


def image_triples(captions: list[str], image: Path, backend, report: PrepareReport,
                  offset: int = 0, denial_share: float = 0.0) -> list[dict[str, str]]:
    """The triples of one image's captions (see the module docstring); ``offset`` (the image's
    position) rotates negation kinds, frames and denied objects, so neighbouring images differ;
    ``denial_share`` of the captions make :func:`denial_triple` ones instead."""
    rows = []
    objects = mentioned_objects(captions)
    absent = [name for name in PHOTO_OBJECTS if name not in objects]
    shown = sorted(objects)
    for i, caption in enumerate(captions):
        common = {"image": str(image), "objects": ";".join(shown),
                  "true_negation": true_negation(caption, absent, offset + i)}
        k = offset * len(captions) + i
        if absent and _picked(k, denial_share):
            row = denial_triple(caption, captions[(i + 1) % len(captions)],
                                absent[(offset * 7 + i) % len(absent)], shown,
                                sum(report.denials.values()))
            report.denials["standalone" if row.get("caption_claim") else "appended"] += 1
            rows.append({**common, **row})
            continue
        negations = [g for g in backend.generate(caption).negations if g.usable]
        if not negations:
            report.no_negation += 1
            continue
        chosen = negations[(offset + i) % len(negations)]
        report.negation_kinds[chosen.kind] += 1
        rows.append({**common, "caption": caption, "paraphrase": captions[(i + 1) % len(captions)],
                     "negation": chosen.text})
    return rows


def make_triples(images: CaptionedImages, out_dir: PathLike,
                 splits: Optional[dict[str, str]] = None, backend=None,
                 default_split: str = "triples", skip_splits: tuple[str, ...] = ("unassigned",),
                 denial_share: float = DENIAL_SHARE) -> PrepareReport:
    """Write ``out_dir/<split>.csv`` triples for every split (one ``default_split`` file when
    ``splits`` is None); returns what was written and skipped. In training splits (all but
    ``EVAL_SPLITS``) ``denial_share`` of the triples deny an object (:func:`denial_triple`);
    evaluation splits keep the human captions alone, so retrieval scores stay comparable."""
    if backend is None:
        from engine.captions.rules import RulesBackend
        backend = RulesBackend()
    out_dir = Path(out_dir)
    report = PrepareReport()
    by_split: dict[str, list[dict[str, str]]] = {}
    for offset, (image, captions) in enumerate(images.captions.items()):
        split = default_split if splits is None else splits.get(image.name, "unassigned")
        if split in skip_splits:
            report.unassigned += 1
            continue
        if len(captions) < 2:
            report.single_caption += 1
            continue
        if not image.is_file():
            report.missing_images += 1
            continue
        share = 0.0 if split in EVAL_SPLITS else denial_share
        by_split.setdefault(split, []).extend(image_triples(captions, image, backend, report,
                                                            offset, share))
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in by_split.items():
        report.files[split] = write_triples(out_dir / f"{split}.csv", rows)
        report.written[split] = len(rows)
    return report


def prepare_flickr8k(root: PathLike, out_dir: PathLike, backend=None,
                     denial_share: float = DENIAL_SHARE) -> PrepareReport:
    """Flickr8k as distributed in ``../shared/data/flickr8k``: ``captions.csv``, ``splits.csv``
    (train/dev/test) and ``images/``."""
    root = Path(root)
    for name in ("captions.csv", "splits.csv", "images"):
        if not (root / name).exists():
            raise FileNotFoundError(f"{root} is not a Flickr8k folder: {root / name} is missing")
    images = read_captions_csv(root / "captions.csv", root / "images")
    return make_triples(images, out_dir, read_splits(root / "splits.csv"), backend,
                        denial_share=denial_share)
