"""The triples format shared by the caption generator, the trainer and the evaluator.

CSV (header row) or JSONL (one object per line) with the fields ``image, caption, paraphrase,
negation``; a UTF-8 byte-order mark (as Excel writes) is allowed. Image paths are relative to the
file's folder unless a ``root`` is given; absolute paths are kept; a relative path that leaves
that folder (``../../etc/passwd``) is refused and never opened. Malformed input raises
:class:`TriplesFormatError` naming the file and line; missing, refused and unreadable images are
counted, reported and skipped, never a crash.
"""

from __future__ import annotations

import csv
import io
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import torch
from PIL import Image

from .atomic import atomic_write_text

FIELDS = ("image", "caption", "paraphrase", "negation")
TEXT_FIELDS = FIELDS[1:]
# Optional columns: a true statement that uses negation (it denies something absent), which
# evaluation compares with the false negation ("negation grounding").
OPTIONAL_FIELDS = ("true_negation",)


class TriplesFormatError(ValueError):
    """A triples file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Triple:
    image: Path
    caption: str
    paraphrase: str
    negation: str
    line: int  # 1-based line in the source file (CSV: counting the header)
    refused: str = ""  # why the image must not be read (its path leaves the data folder)
    true_negation: str = ""  # the optional column of that name ("" when absent)


@dataclass
class Problem:
    """A row left out: its image ``path``, why, and its line in the triples file."""

    path: str
    reason: str
    line: int = 0

    def report(self, source: Union[str, Path]) -> str:
        """One log line naming the triples file ``source`` and line, the reason and the image."""
        return f"{source}:{self.line}: {self.reason}, row skipped: {self.path}"


def _check_row(values: dict[str, Any], where: str) -> dict[str, str]:
    missing = [k for k in FIELDS if k not in values or values[k] is None]
    if missing:
        raise TriplesFormatError(f"{where}: missing field(s) {', '.join(missing)}")
    out = {}
    for key in FIELDS:
        value = values[key]
        if not isinstance(value, str):
            raise TriplesFormatError(f"{where}: field {key!r} must be text, got {type(value).__name__}")
        value = value.strip()
        if not value:
            what = "image path" if key == "image" else key
            raise TriplesFormatError(f"{where}: empty {what}")
        out[key] = value
    return out


def _rows_csv(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel writes a BOM
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise TriplesFormatError(f"{path}: empty file (expected a header {','.join(FIELDS)})")
        header = [h.strip() for h in header]
        absent = [k for k in FIELDS if k not in header]
        if absent:
            raise TriplesFormatError(f"{path}:1: header lacks column(s) {', '.join(absent)} "
                                     f"(has {', '.join(header)})")
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue  # blank line
            if len(values) != len(header):
                raise TriplesFormatError(f"{path}:{line}: {len(values)} fields, header has {len(header)}")
            yield line, dict(zip(header, values))


def _rows_jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise TriplesFormatError(f"{path}:{line}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise TriplesFormatError(f"{path}:{line}: expected a JSON object")
            yield line, obj


def read_triples(path: Union[str, Path], root: Optional[Union[str, Path]] = None,
                 on_bad_row: str = "raise", problems: Optional[list[Problem]] = None) -> list[Triple]:
    """Read a triples CSV/JSONL file.

    ``on_bad_row="skip"`` skips malformed rows instead of raising, appending each to
    ``problems`` (a list the caller passes) so nothing goes unreported.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"triples file not found: {path}")
    if on_bad_row not in ("raise", "skip"):
        raise ValueError("on_bad_row must be 'raise' or 'skip'")
    base = Path(root) if root is not None else path.parent
    rows = _rows_jsonl(path) if path.suffix.lower() in (".jsonl", ".json") else _rows_csv(path)
    triples = []
    for line, values in rows:
        try:
            row = _check_row(values, f"{path}:{line}")
        except TriplesFormatError as exc:
            if on_bad_row == "raise":
                raise
            if problems is not None:
                problems.append(Problem(str(path), str(exc), line))
            continue
        image = Path(row["image"])
        refused = ""
        if not image.is_absolute():
            image = base / image
            if not _inside(image, base):
                refused = f"image path leaves the data folder {base}; refused"
        true_negation = values.get("true_negation")
        true_negation = true_negation.strip() if isinstance(true_negation, str) else ""
        triples.append(Triple(image, row["caption"], row["paraphrase"], row["negation"], line,
                              refused, true_negation))
    return triples


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` stays in ``folder`` once ``..`` parts are resolved (lexically, so a
    data folder reached through a symlink still works)."""
    path_abs, folder_abs = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(folder))
    return os.path.commonpath([path_abs, folder_abs]) == folder_abs


def write_triples(path: Union[str, Path], rows: Sequence[dict[str, str]]) -> Path:
    """Write rows (dicts with the four fields) atomically as CSV, or JSONL by extension. An
    optional field (``true_negation``) is written when every row has it."""
    path = Path(path)
    fields = list(FIELDS) + [k for k in OPTIONAL_FIELDS if rows and all(r.get(k) for r in rows)]
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps({k: r[k] for k in fields}, ensure_ascii=False) + "\n" for r in rows)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    atomic_write_text(path, text)
    return path


def overlong_captions(texts: Sequence[str], tokenizer: Callable, context_length: int) -> list[int]:
    """Indices of texts the tokenizer will truncate at ``context_length`` tokens.

    Callers log these: the tokenizer keeps the first tokens (and the end token), so the tail of
    an over-long caption does not reach the model.
    """
    tokens = tokenizer(list(texts))
    last = tokens[:, -1]
    pad = getattr(tokenizer, "pad_token_id", 0) or 0
    return [i for i, t in enumerate(last.tolist()) if t != pad]


# What PIL raises on damaged files, depending on format and where the damage sits.
IMAGE_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error,
                       Image.DecompressionBombError)


def read_image(path: Union[str, Path]) -> Image.Image:
    """Decode an image file fully as RGB (so a truncated file fails here, not later)."""
    with Image.open(path) as im:
        return im.convert("RGB")


@dataclass
class TriplesDataset:
    """Map-style dataset over triples. Rows whose image is missing or refused (a path leaving the
    data folder) are left out at construction, in ``missing``; an unreadable image (truncated,
    not an image) is found at read time: ``__getitem__`` returns ``{"problem": Problem}`` and
    :func:`collate` moves it to the batch's ``problems``, so the report reaches the training loop
    even from a DataLoader worker process."""

    triples: list[Triple]
    transform: Optional[Callable] = None
    missing: list[Problem] = field(default_factory=list)

    def __post_init__(self):
        present = []
        for t in self.triples:
            if t.refused:
                self.missing.append(Problem(str(t.image), t.refused, t.line))
            elif t.image.is_file():
                present.append(t)
            else:
                self.missing.append(Problem(str(t.image), "image file not found", t.line))
        self.triples = present

    def __len__(self) -> int:
        return len(self.triples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        t = self.triples[index]
        try:
            image = read_image(t.image)
        except IMAGE_DECODE_ERRORS as exc:
            return {"problem": Problem(str(t.image), f"unreadable image ({exc})", t.line)}
        return {"image": self.transform(image) if self.transform else image, **self.texts(index)}

    def texts(self, index: int) -> dict[str, Any]:
        """Item ``index`` without reading its image (for epochs fed by the embedding cache)."""
        t = self.triples[index]
        return {"caption": t.caption, "paraphrase": t.paraphrase, "negation": t.negation,
                "index": index}


def collate(batch: list[Optional[dict]]) -> Optional[dict]:
    """Stack images, keep captions as lists. Unreadable items (``{"problem": ...}``) are dropped
    from the rows and listed under ``problems``; None when nothing at all is left. A batch can
    thus hold problems and no rows (``caption == []``). Items read without their image
    (:meth:`TriplesDataset.texts`) give ``image`` None."""
    problems = [b["problem"] for b in batch if b is not None and "problem" in b]
    items = [b for b in batch if b is not None and "problem" not in b]
    if not items and not problems:
        return None
    has_images = bool(items) and "image" in items[0]
    out: dict[str, Any] = {"image": torch.stack([b["image"] for b in items]) if has_images else None}
    for key in ("caption", "paraphrase", "negation"):
        out[key] = [b[key] for b in items]
    if items and "index" in items[0]:
        out["index"] = torch.tensor([b["index"] for b in items])
    if problems:
        out["problems"] = problems
    return out
