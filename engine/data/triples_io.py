"""Reading and writing triples files without torch (the dry run and the CLI use it directly).

Layouts accepted (the fields are ``image, caption, paraphrase, negation``):

* CSV with a header row; TSV when the file name ends in ``.tsv``; JSONL (one object a line).
* Other column names through a mapping ``{field: column}`` (``--columns caption=text``).
* The SemCLIP authors' CSVs, recognised by their header: ``filename, caption, paraphrased,
  negation`` (``data/sugarcrepe_pp_paraphrased.csv``) and ``image_number, caption, paraphrased,
  negation`` (their ``ccneg_paraphrased.csv``; image ``2`` is the file ``000000002.jpg``, as
  their ``src/dataset.py`` builds it).

A UTF-8 byte-order mark (as Excel writes) is allowed. Image paths are relative to the file's
folder unless a ``root`` is given; absolute paths are kept; a relative path that leaves that
folder (``../../etc/passwd``) is refused and never opened. Malformed input raises
:class:`TriplesFormatError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from engine.atomic import atomic_write_text

FIELDS = ("image", "caption", "paraphrase", "negation")
TEXT_FIELDS = FIELDS[1:]
# Optional columns. ``true_negation``: a true statement that uses negation (it denies something
# absent), which evaluation compares with the false negation ("negation grounding"). ``objects``:
# the objects the image is known to show (";"-separated); ``caption_claim`` and ``negation_claim``:
# what a text says about any image, as ``absent:NAME`` or ``present:NAME`` ("there is no horse"
# is true of every photo without a horse). Training reads these three to tell which texts of a
# batch are true of which of its images (false-negative masking).
OPTIONAL_FIELDS = ("true_negation", "objects", "caption_claim", "negation_claim")
CLAIM_KINDS = ("absent", "present")
# Columns of the SemCLIP authors' CSVs, tried when a field's own column is absent.
AUTHORS_COLUMNS = {"image": ("filename", "image_number"), "paraphrase": ("paraphrased",)}
IMAGE_NUMBER = "image_number"  # their CC-Neg CSV: 9-digit zero-padded number + .jpg
DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}


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
    objects: frozenset = frozenset()  # what the image is known to show
    caption_claim: str = ""  # "absent:NAME" / "present:NAME": the caption holds of any image that ...
    negation_claim: str = ""  # ... lacks / shows NAME; "" when it only speaks of its own image


@dataclass
class Problem:
    """A row left out: its image ``path``, why, and its line in the triples file."""

    path: str
    reason: str
    line: int = 0

    def report(self, source: Union[str, Path]) -> str:
        """One log line naming the triples file ``source`` and line, the reason and the image."""
        return f"{source}:{self.line}: {self.reason}, row skipped: {self.path}"


def parse_columns(text: str) -> dict[str, str]:
    """``"caption=text,negation=neg"`` as ``{"caption": "text", "negation": "neg"}``; raises
    ValueError naming a bad item or an unknown field."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        field_name, sep, column = (s.strip() for s in item.partition("="))
        if not sep or not field_name or not column:
            raise ValueError(f"columns: expected FIELD=COLUMN, got {item!r}")
        mapping[field_name] = column
    return check_columns(mapping)


def add_columns_argument(parser: Any, what: str = "the triples file's") -> None:
    """The ``--columns FIELD=COLUMN,...`` option (read with :func:`parse_columns`), shared by
    every command that reads triples or captions."""
    parser.add_argument("--columns", metavar="FIELD=COLUMN,...",
                        help=f"{what} column names when not image, caption, paraphrase, "
                             f"negation, e.g. caption=text,negation=neg")


def check_columns(mapping: Mapping[str, str]) -> dict[str, str]:
    """The mapping, if every key is a triples field; ValueError naming the others."""
    unknown = sorted(set(mapping) - set(FIELDS))
    if unknown:
        raise ValueError(f"columns: unknown field(s) {', '.join(unknown)} (fields: "
                         f"{', '.join(FIELDS)})")
    return dict(mapping)


def resolve_columns(names: Iterable[str], columns: Optional[Mapping[str, str]] = None
                    ) -> dict[str, str]:
    """Which column holds each field, given the names a file has: the user's mapping first,
    then the field's own name, then the authors' names."""
    names = set(names)
    mapping = {f: f for f in FIELDS}
    for field_name in FIELDS:
        if columns and field_name in columns:
            mapping[field_name] = columns[field_name]
        elif field_name not in names:
            mapping[field_name] = next((alt for alt in AUTHORS_COLUMNS.get(field_name, ())
                                        if alt in names), field_name)
    return mapping


def _missing_columns(mapping: dict[str, str], names: Iterable[str]) -> list[str]:
    names = set(names)
    return [f if mapping[f] == f else f"{f} (as column {mapping[f]!r})"
            for f in FIELDS if mapping[f] not in names]


def _check_row(values: dict[str, Any], where: str, mapping: dict[str, str]) -> dict[str, str]:
    missing = [f for f in _missing_columns(mapping, (k for k, v in values.items() if v is not None))]
    if missing:
        raise TriplesFormatError(f"{where}: missing field(s) {', '.join(missing)}")
    out = {}
    for key in FIELDS:
        value = values[mapping[key]]
        if key == "image" and mapping[key] == IMAGE_NUMBER and isinstance(value, (int, str)) \
                and not isinstance(value, bool):
            number = str(value).strip()
            if not number.isdigit():
                raise TriplesFormatError(f"{where}: image_number must be a whole number, "
                                         f"got {value!r}")
            value = number.zfill(9) + ".jpg"
        if not isinstance(value, str):
            raise TriplesFormatError(f"{where}: field {key!r} must be text, got {type(value).__name__}")
        value = value.strip()
        if not value:
            what = "image path" if key == "image" else key
            raise TriplesFormatError(f"{where}: empty {what}")
        out[key] = value
    return out


def delimiter_for(path: Path) -> str:
    """Tab for ``.tsv`` files, comma otherwise."""
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _wrong_delimiter(path: Path, header_line: str, expected: str) -> Optional[str]:
    """A message when a one-column header looks separated by another character."""
    try:
        found = csv.Sniffer().sniff(header_line, delimiters="".join(DELIMITER_NAMES)).delimiter
    except csv.Error:
        return None
    if found == expected:
        return None
    fix = "name it .tsv" if found == "\t" else f"write it with {DELIMITER_NAMES[expected]}s"
    return (f"{path}:1: the header is one column ({header_line.strip()[:60]!r}); the file looks "
            f"{DELIMITER_NAMES[found]}-separated, not {DELIMITER_NAMES[expected]}-separated: "
            f"{fix}")


def csv_rows(path: Path, columns: Optional[Mapping[str, str]] = None
             ) -> tuple[dict[str, str], Iterable[tuple[int, dict[str, Any]]]]:
    """(field -> column mapping, rows as (line, values)) of a CSV/TSV triples file; the
    header is checked at once, the rows as they are read."""
    delimiter = delimiter_for(path)
    f = open(path, newline="", encoding="utf-8-sig")  # -sig: Excel writes a BOM
    try:
        first = f.readline()
        f.seek(0)
        reader = csv.reader(f, delimiter=delimiter, strict=True)
        header = next(reader, None)
    except (UnicodeDecodeError, csv.Error) as exc:
        f.close()
        raise TriplesFormatError(f"{path}:1: unreadable header ({exc})") from None
    if header is None:
        f.close()
        raise TriplesFormatError(f"{path}: empty file (expected a header "
                                 f"{delimiter.join(FIELDS)})")
    header = [h.strip() for h in header]
    mapping = resolve_columns(header, columns)
    absent = _missing_columns(mapping, header)
    if absent:
        f.close()
        problem = _wrong_delimiter(path, first, delimiter) if len(header) == 1 else None
        raise TriplesFormatError(problem or f"{path}:1: header lacks column(s) "
                                            f"{', '.join(absent)} (has {', '.join(header)})")

    def rows() -> Iterable[tuple[int, dict[str, Any]]]:
        with f:
            try:
                for values in reader:
                    line = reader.line_num
                    if not any(v.strip() for v in values):
                        continue  # blank line
                    if len(values) != len(header):
                        raise TriplesFormatError(f"{path}:{line}: {len(values)} fields, header "
                                                 f"has {len(header)}")
                    yield line, dict(zip(header, values))
            except csv.Error as exc:
                kind = "TSV" if delimiter == "\t" else "CSV"
                raise TriplesFormatError(f"{path}:{reader.line_num}: malformed {kind} "
                                         f"({exc})") from None
            except UnicodeDecodeError as exc:
                raise TriplesFormatError(f"{path}:{reader.line_num + 1}: not UTF-8 text "
                                         f"({exc.reason})") from None
    return mapping, rows()


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


def is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".json")


def read_triples(path: Union[str, Path], root: Optional[Union[str, Path]] = None,
                 on_bad_row: str = "raise", problems: Optional[list[Problem]] = None,
                 columns: Optional[Mapping[str, str]] = None) -> list[Triple]:
    """Read a triples CSV/TSV/JSONL file (see the module docstring for the layouts).

    ``columns`` maps fields to the file's column names. ``on_bad_row="skip"`` skips malformed
    rows instead of raising, appending each to ``problems`` (a list the caller passes) so
    nothing goes unreported.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"triples file not found: {path}")
    if on_bad_row not in ("raise", "skip"):
        raise ValueError("on_bad_row must be 'raise' or 'skip'")
    columns = check_columns(columns or {})
    base = Path(root) if root is not None else path.parent
    if is_jsonl(path):
        rows, fixed = _rows_jsonl(path), None
    else:
        fixed, rows = csv_rows(path, columns)
    triples = []
    for line, values in rows:
        try:
            row = _check_row(values, f"{path}:{line}", fixed or resolve_columns(values, columns))
        except TriplesFormatError as exc:
            if on_bad_row == "raise":
                raise
            if problems is not None:
                problems.append(Problem(str(path), str(exc), line))
            continue
        triples.append(make_triple(row, base, line, **_optional_values(values, f"{path}:{line}")))
    return triples


def parse_claim(text: str, where: str = "") -> tuple[str, str]:
    """``"absent:horse"`` as ``("absent", "horse")``; ``("", "")`` for no claim. Raises
    TriplesFormatError (prefixed with ``where``, a file:line) for anything else."""
    if not text:
        return "", ""
    kind, sep, name = (part.strip() for part in text.partition(":"))
    if not sep or kind not in CLAIM_KINDS or not name:
        raise TriplesFormatError(f"{where}: claim {text!r} is not absent:NAME or present:NAME")
    return kind, name


def claim_holds(claim: str, objects: frozenset) -> bool:
    """Whether ``claim`` holds of an image known to show ``objects`` (no claim: False)."""
    kind, name = parse_claim(claim)
    return bool(kind) and (name in objects) == (kind == "present")


def _optional_values(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The optional columns of a row, checked: texts stripped, objects as a set."""
    def text(key: str) -> str:
        value = values.get(key)
        return value.strip() if isinstance(value, str) else ""
    out: dict[str, Any] = {"true_negation": text("true_negation"),
                           "objects": frozenset(filter(None, (o.strip() for o in
                                                              text("objects").split(";"))))}
    for key in ("caption_claim", "negation_claim"):
        parse_claim(text(key), f"{where}: {key}")
        out[key] = text(key)
    return out


def make_triple(row: dict[str, str], base: Path, line: int, **optional: Any) -> Triple:
    """A Triple of checked ``row`` values, its image resolved against ``base``; ``optional``
    holds the optional fields (see ``OPTIONAL_FIELDS``)."""
    image = Path(row["image"])
    refused = ""
    if not image.is_absolute():
        image = base / image
        if not _inside(image, base):
            refused = f"image path leaves the data folder {base}; refused"
    return Triple(image, row["caption"], row["paraphrase"], row["negation"], line, refused,
                  **optional)


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` stays in ``folder`` once ``..`` parts are resolved (lexically, so a
    data folder reached through a symlink still works)."""
    path_abs, folder_abs = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(folder))
    return os.path.commonpath([path_abs, folder_abs]) == folder_abs


def write_triples(path: Union[str, Path], rows: Sequence[dict[str, str]]) -> Path:
    """Write rows (dicts with the four fields) atomically as CSV, TSV or JSONL by extension. An
    optional field (``OPTIONAL_FIELDS``) is written when some row has it, empty in the others."""
    path = Path(path)
    fields = list(FIELDS) + [k for k in OPTIONAL_FIELDS if any(r.get(k) for r in rows)]
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps({k: r.get(k, "") for k in fields}, ensure_ascii=False) + "\n" for r in rows)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore",
                                lineterminator="\n", delimiter=delimiter_for(path))
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    atomic_write_text(path, text)
    return path


def open_triples(dataset: str, root: Optional[Union[str, Path]] = None,
                 columns: Optional[Mapping[str, str]] = None) -> tuple[list[Triple], Any]:
    """Triples of a file or of tar shards, and the image store that reads shard images (None
    for files: images are read from the file system)."""
    from engine.data.shards import is_shard_pattern, read_shards

    if is_shard_pattern(dataset):
        if columns:
            raise ValueError("columns apply to triples files; shards carry the fields by name")
        return read_shards(dataset)
    return read_triples(dataset, root=root, columns=columns), None


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` as three fractions; ValueError when they are not three numbers in
    [0, 1] summing to 1 with a training part."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"split must be three numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(parts) != 3 or not all(0 <= p <= 1 for p in parts) or abs(sum(parts) - 1) > 1e-6 \
            or parts[0] <= 0:
        raise ValueError(f"split must be three fractions train,val,test summing to 1 with a "
                         f"training part, got {text!r}")
    return parts  # type: ignore[return-value]


SPLIT_PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitPart:
    """One part of a split spec, e.g. the test rows of ``"0.8,0.1,0.1"`` with seed 42 (the
    rows a training run with that ``split`` held out)."""

    split: str
    seed: int = 42
    part: str = "test"

    def select(self, rows: Sequence[Any]) -> list:
        if self.part not in SPLIT_PARTS:
            raise ValueError(f"split part must be one of {', '.join(SPLIT_PARTS)}, got {self.part!r}")
        return split_rows(rows, self.split, self.seed)[SPLIT_PARTS.index(self.part)]


def split_rows(rows: Sequence[Any], split: str, seed: int) -> tuple[list, list, list]:
    """The train, val and test rows of a split spec like ``"0.8,0.1,0.1"`` (see
    :func:`split_indices`)."""
    parts = split_indices(len(rows), parse_split(split), seed)
    return tuple([rows[i] for i in part] for part in parts)  # type: ignore[return-value]


def split_indices(n: int, fractions: Sequence[float], seed: int
                  ) -> tuple[list[int], list[int], list[int]]:
    """Row indices of the train, val and test parts of ``n`` rows, as the SemCLIP authors split
    them: shuffle with ``seed`` (numpy's RandomState permutation, which pandas'
    ``df.sample(frac=1, random_state=seed)`` uses), then test = int(n * test), val =
    int(n * val), train = the rest, in that order."""
    import numpy as np

    order = np.random.RandomState(seed).permutation(n).tolist()
    n_test, n_val = int(n * fractions[2]), int(n * fractions[1])
    n_train = n - n_test - n_val
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
