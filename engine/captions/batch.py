"""Batch generation: a captions file in, a triples file out, as a generator of engine events.

Input: CSV (header row; TSV for ``.tsv``) or JSONL with a ``caption`` column and usually an
``image`` column (``image_path``, ``filename`` and ``file_name`` are read as ``image`` too;
``columns`` maps other names); other columns are kept and written after the triples fields.
``paraphrase`` and ``negation`` cells already in the input (or the authors' ``paraphrased``)
are kept: only empty cells are generated, unless ``replace_existing``. Output: the triples format of :mod:`engine.data.triples`
(``image, caption, paraphrase, negation``), one row per input caption with the first usable
paraphrase and negation, written atomically (CSV, or JSONL by extension). Rows that could not be
generated are reported (``Done.result["failures"]``) and written to ``<out>.failed.csv``. A run
with failed rows never replaces an existing output that holds more good rows: that file is kept
and the run's rows go beside it (``<out stem>.partial<suffix>``). After a run of consecutive
failed captions (a server that errs, hangs or babbles) the job stops with an error naming the
server instead of failing every remaining row the same way.

Captions are generated once each (duplicates share), concurrently in a thread pool (useful for
the LLM backend), and cached in SQLite, so a stopped or interrupted run resumes where it was.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from engine.atomic import atomic_write_text
from engine.data.triples_io import (AUTHORS_COLUMNS, FIELDS, TriplesFormatError, _rows_jsonl,
                                    check_columns, delimiter_for)
from engine.events import Done, Error, Event, Log, NeverStop, Progress, StopFlag

from .base import NEGATION, PARAPHRASE, CaptionBackend, CaptionBackendError, Generations
from .cache import GenerationCache

IMAGE_COLUMNS = ("image", "image_path", "filename", "file_name")
PROGRESS_EVERY_S = 0.1  # a 100k-caption run should not flood a GUI with events
MAX_CONSECUTIVE_FAILURES = 5
PathLike = Union[str, Path]


class CaptionInputError(ValueError):
    """The captions file is malformed; the message names the file (and line)."""


@dataclass(frozen=True)
class CaptionRow:
    line: int  # 1-based line in the input (CSV: counting the header)
    caption: str
    image: str
    extra: dict[str, Any] = field(default_factory=dict)
    existing: dict[str, str] = field(default_factory=dict)  # paraphrase / negation in the input


@dataclass(frozen=True)
class Failure:
    line: int
    image: str
    caption: str
    reason: str


# ---- reading ------------------------------------------------------------------------------------

def read_captions(path: PathLike, columns: Optional[dict[str, str]] = None
                  ) -> tuple[list[CaptionRow], list[str]]:
    """Rows of a captions CSV/TSV/JSONL file and the names of its extra columns; ``columns``
    maps fields to the file's column names (``{"caption": "text"}``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"captions file not found: {path}")
    try:
        columns = check_columns(columns or {})
    except ValueError as exc:
        raise CaptionInputError(str(exc)) from None
    if path.suffix.lower() in (".jsonl", ".json"):
        return _read_jsonl(path, columns)
    return _read_csv(path, columns)


def _column_names(names: list[str], columns: dict[str, str]) -> dict[str, Optional[str]]:
    """Which column holds each field (None: absent): the mapping, the field's own name, then
    the usual alternatives (image_path, ..., the SemCLIP authors' paraphrased)."""
    found: dict[str, Optional[str]] = {}
    for name in FIELDS:
        alternatives = IMAGE_COLUMNS if name == "image" else (name, *AUTHORS_COLUMNS.get(name, ()))
        found[name] = columns.get(name) or next((k for k in alternatives if k in names), None)
    return found


def _split(values: dict[str, Any], line: int, names: dict[str, Optional[str]]) -> CaptionRow:
    def cell(name: str) -> str:
        value = values.get(names[name]) if names[name] else None
        return "" if value is None else str(value).strip()  # JSONL may hold numbers

    used = {c for c in names.values() if c}
    extra = {k: v for k, v in values.items() if k not in used and k not in FIELDS}
    return CaptionRow(line, cell("caption"), cell("image"), extra,
                      {name: cell(name) for name in ("paraphrase", "negation") if cell(name)})


def _read_csv(path: Path, columns: dict[str, str]) -> tuple[list[CaptionRow], list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, strict=True, delimiter=delimiter_for(path))
        try:
            header = [h.strip() for h in next(reader, [])]
            if not header:
                raise CaptionInputError(f"{path}: empty file (expected a header with a caption column)")
            names = _column_names(header, columns)
            absent = [f"{k} (as column {c!r})" for k, c in columns.items() if c not in header]
            if absent or names["caption"] not in header:
                raise CaptionInputError(f"{path}:1: no {', '.join(absent) or repr('caption')} "
                                        f"column (columns: {', '.join(header)})")
            rows = []
            for values in reader:
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise CaptionInputError(f"{path}:{reader.line_num}: {len(values)} fields, "
                                            f"the header has {len(header)}")
                rows.append(_split(dict(zip(header, values)), reader.line_num, names))
        except csv.Error as exc:
            raise CaptionInputError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None
        except UnicodeDecodeError as exc:
            raise CaptionInputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    used = {c for c in names.values() if c}
    return rows, [h for h in header if h not in used and h not in FIELDS]


def _read_jsonl(path: Path, columns: dict[str, str]) -> tuple[list[CaptionRow], list[str]]:
    rows, extra_columns = [], {}
    try:
        objects = list(_rows_jsonl(path))
    except TriplesFormatError as exc:  # same line-level checks as the triples reader
        raise CaptionInputError(str(exc)) from None
    keys = list(dict.fromkeys(k for _, obj in objects for k in obj))
    names = _column_names(keys, columns)
    caption_key = names["caption"]
    for line, obj in objects:
        if not isinstance(obj.get(caption_key, ""), str):
            raise CaptionInputError(f"{path}:{line}: {caption_key!r} must be text")
    if objects and caption_key not in keys:
        raise CaptionInputError(f"{path}: no {caption_key!r} field in any row")
    for line, obj in objects:
        rows.append(_split(obj, line, names))
        extra_columns.update(dict.fromkeys(rows[-1].extra))
    return rows, list(extra_columns)


# ---- writing ------------------------------------------------------------------------------------

def _write_rows(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps({k: r.get(k, "") for k in columns}, ensure_ascii=False) + "\n"
                       for r in rows)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    atomic_write_text(path, text)


def failed_report_path(out: PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".failed.csv")


def partial_output_path(out: PathLike) -> Path:
    """Where a run's rows go when they would replace a fuller ``out`` (same format)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.partial{out.suffix}")


def count_good_rows(path: Path) -> int:
    """Rows of an existing triples file with a caption, paraphrase and negation; 0 when it is
    missing or unreadable (then there is nothing worth keeping)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            if path.suffix.lower() == ".jsonl":
                records = [json.loads(line) for line in f if line.strip()]
            else:
                records = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, ValueError, csv.Error):
        return 0
    return sum(isinstance(r, dict) and all(r.get(k) for k in ("caption", "paraphrase", "negation"))
               for r in records)


# ---- the job ------------------------------------------------------------------------------------

def _missing_reason(g: Generations, roles=(PARAPHRASE, NEGATION)) -> Optional[str]:
    for role in roles:
        if g.first(role) is None:
            tried = g.paraphrases if role == PARAPHRASE else g.negations
            if tried:
                return f"no accepted {role}: the validator rejected all {len(tried)} proposals"
            return f"the backend produced no {role}"
    return None


def generate_triples(source: PathLike, out: PathLike, backend: CaptionBackend, *, workers: int = 1,
                     cache_path: Optional[PathLike] = None, use_cache: bool = True,
                     stop: Optional[StopFlag] = None,
                     max_consecutive_failures: int = MAX_CONSECUTIVE_FAILURES,
                     columns: Optional[dict[str, str]] = None,
                     replace_existing: bool = False) -> Iterator[Event]:
    """Generate a triples file from a captions file (see the module docstring).

    ``columns`` maps fields to the input's column names. Paraphrase and negation cells already
    in the input are kept (only empty ones are generated; a warning says how many were kept)
    unless ``replace_existing``.

    Yields Log, Progress (units: distinct captions), then Done (``result``: out, rows, failed,
    failures, failed_csv, kept_existing, cached, generated) or Error (bad input, unusable cache,
    a backend failure that would hit every row such as an unreachable server, or
    ``max_consecutive_failures`` failed captions in a row; 0 = never stop for that). On an Error
    nothing is written. A set ``stop`` flag ends the run after the captions in flight: nothing
    is written, everything done is cached.
    """
    stop = stop or NeverStop()
    out = Path(out)
    if workers < 1:
        yield Error("usage", f"workers must be >= 1, got {workers}")
        return
    if max_consecutive_failures < 0:
        yield Error("usage", f"max_consecutive_failures must be >= 0, got {max_consecutive_failures}")
        return
    try:
        rows, extra_columns = read_captions(source, columns)
    except (CaptionInputError, FileNotFoundError) as exc:
        yield Error("input", str(exc))
        return
    try:
        cache = GenerationCache(cache_path) if use_cache else None
    except ValueError as exc:
        yield Error("cache", str(exc))
        return
    try:
        yield from _run(rows, extra_columns, out, backend, workers, cache, stop, source,
                        max_consecutive_failures, replace_existing)
    finally:
        if cache is not None:
            cache.close()


def _run(rows: list[CaptionRow], extra_columns: list[str], out: Path, backend: CaptionBackend,
         workers: int, cache: Optional[GenerationCache], stop: StopFlag, source: PathLike,
         max_consecutive_failures: int, replace_existing: bool = False) -> Iterator[Event]:
    identity = backend.identity
    needed: dict[str, set[str]] = {}  # caption -> the roles some row of it lacks
    for r in rows:
        if r.caption:
            needed.setdefault(r.caption, set()).update(_roles_to_generate(r, replace_existing))
    yield from _say_existing(rows, replace_existing, source)
    captions = [c for c, roles in needed.items() if roles]
    yield Log(f"{len(rows)} rows, {len(captions)} distinct captions to generate in {source}; "
              f"backend {identity}")
    results: dict[str, Generations] = {}
    if cache is not None:
        for caption in captions:
            hit = cache.get(identity, caption)
            if hit is not None:
                results[caption] = hit
        if results:
            yield Log(f"{len(results)} captions from the cache {cache.path}")
    cached = len(results)
    errors: dict[str, str] = {}
    total = len(captions)
    yield Progress(cached, total, phase="generate")
    pending = iter([c for c in captions if c not in results])
    in_flight: dict[Future, str] = {}
    done = cached
    failed_in_a_row = 0
    last_progress = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="captions")
    try:
        while True:
            while not stop.is_set() and len(in_flight) < 2 * workers:
                caption = next(pending, None)
                if caption is None:
                    break
                in_flight[pool.submit(backend.generate, caption)] = caption
            if not in_flight:
                break
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                caption = in_flight.pop(future)
                try:
                    generations = future.result()
                except CaptionBackendError as exc:
                    if exc.fatal:
                        yield Error("backend", f"{exc} ({done} of {total} captions done and cached; "
                                               f"run again to resume)")
                        return
                    errors[caption] = str(exc)
                except Exception as exc:  # noqa: BLE001 - one bad caption must not lose the run
                    errors[caption] = f"{type(exc).__name__}: {exc}"
                else:
                    results[caption] = generations
                    missing = _missing_reason(generations, sorted(needed[caption]))
                    if missing is not None:
                        errors[caption] = missing
                    if cache is not None and _missing_reason(generations) is None:
                        cache.put(identity, caption, generations)  # failures are retried next run
                done += 1
                failed_in_a_row = failed_in_a_row + 1 if caption in errors else 0
                if max_consecutive_failures and failed_in_a_row >= max_consecutive_failures:
                    yield Error("backend", _streak_message(backend, failed_in_a_row, errors[caption],
                                                           done - len(errors), total))
                    return
                if done == total or time.monotonic() - last_progress >= PROGRESS_EVERY_S:
                    last_progress = time.monotonic()
                    yield Progress(done, total, phase="generate")
    finally:
        # normally nothing is left; after a fatal error or an abandoned run, do not wait for
        # requests still in flight (their threads end on their own, within the timeout)
        pool.shutdown(wait=False, cancel_futures=True)
    if stop.is_set():
        yield Log(f"stopped: {done} of {total} captions done and cached; run again to resume")
        yield Done({"out": None, "rows": 0, "cached": cached, "generated": done - cached}, stopped=True)
        return
    yield from _write(rows, extra_columns, out, results, errors, cached, done - cached,
                      replace_existing)


def _streak_message(backend: CaptionBackend, streak: int, last_reason: str, good: int,
                    total: int) -> str:
    # only the LLM backend has a server; a test double or the rules have none to name
    server = getattr(backend, "server", None)
    where = f"the LLM server {server}" if server else f"the {backend.name} backend"
    return (f"stopped: {streak} captions in a row failed at {where} (last: {last_reason}). "
            f"Check it, or raise --max-consecutive-failures (0 = never stop). Nothing was "
            f"written; {good} of {total} captions succeeded and are cached (unless --no-cache): "
            f"run again to resume.")


def _roles_to_generate(row: CaptionRow, replace_existing: bool) -> list[str]:
    return [role for role in (PARAPHRASE, NEGATION)
            if replace_existing or not row.existing.get(role)]


def _say_existing(rows: list[CaptionRow], replace_existing: bool, source: PathLike
                  ) -> Iterator[Event]:
    """A warning whenever the input already holds paraphrases or negations: kept, or replaced."""
    counts = {role: sum(bool(r.existing.get(role)) for r in rows) for role in (PARAPHRASE, NEGATION)}
    if not any(counts.values()):
        return
    held = " and ".join(f"{n} {role}" for role, n in counts.items() if n)
    if replace_existing:
        yield Log(f"{source} holds {held} cells: replacing them (--replace-existing)",
                  level="warning")
    else:
        yield Log(f"{source} holds {held} cells: kept; only empty cells are generated "
                  f"(--replace-existing regenerates them)", level="warning")


def _write(rows: list[CaptionRow], extra_columns: list[str], out: Path,
           results: dict[str, Generations], errors: dict[str, str], cached: int, generated: int,
           replace_existing: bool = False) -> Iterator[Event]:
    written, failures, no_image = [], [], 0
    for row in rows:
        roles = _roles_to_generate(row, replace_existing)
        g = results.get(row.caption)
        if not row.caption:
            reason = "empty caption"
        elif not roles:
            reason = None
        elif g is None:
            reason = errors.get(row.caption, "not generated")
        else:
            reason = _missing_reason(g, roles)
        if reason is not None:
            failures.append(Failure(row.line, row.image, row.caption, reason))
            continue
        no_image += not row.image
        texts = {role: g.first(role).text if role in roles else row.existing[role]
                 for role in (PARAPHRASE, NEGATION)}
        written.append({**row.extra, "image": row.image, "caption": row.caption, **texts})
    # an incomplete run must not replace a fuller file; a complete one is what the user asked for
    existing_rows = count_good_rows(out) if failures else 0
    kept = existing_rows > len(written)
    target = partial_output_path(out) if kept else out
    _write_rows(target, written, list(FIELDS) + extra_columns)
    if not kept:
        partial_output_path(out).unlink(missing_ok=True)  # a stale one would mislead
    if no_image:
        yield Log(f"{no_image} rows have no image path; engine.data.triples.read_triples rejects such rows "
                  f"(or skips them with on_bad_row='skip')", level="warning")
    report = failed_report_path(out)
    if failures:
        _write_rows(report, [asdict(f) for f in failures], ["line", "image", "caption", "reason"])
        yield Log(f"{len(failures)} rows failed; see {report}. Run the same command again to retry "
                  f"them (finished captions come from the cache).", level="warning")
    elif report.exists():
        os.unlink(report)  # a stale report from an earlier run would mislead
    if kept:
        yield Log(f"kept {out} ({existing_rows} rows): this run made fewer good rows "
                  f"({len(written)}); wrote them aside to {target}", level="warning")
    else:
        yield Log(f"wrote {len(written)} triples to {out}")
    yield Done({"out": str(target), "rows": len(written), "failed": len(failures),
                "failures": [asdict(f) for f in failures],
                "failed_csv": str(report) if failures else None,
                "kept_existing": str(out) if kept else None,
                "cached": cached, "generated": generated})
