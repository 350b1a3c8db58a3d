"""The triples data set shared by the trainer and the evaluator.

Files are read by :mod:`.triples_io` (CSV, TSV, JSONL, column mappings, the SemCLIP authors'
CSVs; malformed input raises :class:`TriplesFormatError` naming the file and line) or
:mod:`.shards` (webdataset tar shards). Missing, refused and unreadable images are counted,
reported and skipped, never a crash.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Protocol, Sequence, Union

import torch
from PIL import Image

# The torch-free reader lives in .triples_io; its names stay importable from here.
from engine.data.triples_io import (FIELDS, TEXT_FIELDS, Problem, Triple, TriplesFormatError,
                                    _rows_jsonl, claim_holds, read_triples, write_triples)

__all__ = ["FIELDS", "TEXT_FIELDS", "IMAGE_DECODE_ERRORS", "ImageStore", "Problem", "Triple",
           "TriplesDataset", "TriplesFormatError", "collate", "overlong_captions", "read_image",
           "read_triples", "write_triples", "_rows_jsonl"]


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


class ImageStore(Protocol):
    """Where images live when they are not plain files (e.g. inside tar shards)."""

    def exists(self, path: Path) -> bool: ...

    def read(self, path: Path) -> Image.Image: ...


@dataclass
class TriplesDataset:
    """Map-style dataset over triples. Rows whose image is missing or refused (a path leaving the
    data folder) are left out at construction, in ``missing``; an unreadable image (truncated,
    not an image) is found at read time: ``__getitem__`` returns ``{"problem": Problem}`` and
    :func:`collate` moves it to the batch's ``problems``, so the report reaches the training loop
    even from a DataLoader worker process. ``images`` reads images that are not plain files
    (tar shards); None: the file system."""

    triples: list[Triple]
    transform: Optional[Callable] = None
    missing: list[Problem] = field(default_factory=list)
    images: Optional[ImageStore] = None

    def __post_init__(self):
        present = []
        for t in self.triples:
            if t.refused:
                self.missing.append(Problem(str(t.image), t.refused, t.line))
            elif self.images.exists(t.image) if self.images else t.image.is_file():
                present.append(t)
            else:
                self.missing.append(Problem(str(t.image), "image file not found", t.line))
        self.triples = present

    def __len__(self) -> int:
        return len(self.triples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        t = self.triples[index]
        try:
            image = self.images.read(t.image) if self.images else read_image(t.image)
        except IMAGE_DECODE_ERRORS as exc:
            return {"problem": Problem(str(t.image), f"unreadable image ({exc})", t.line)}
        return {"image": self.transform(image) if self.transform else image, **self.texts(index)}

    def texts(self, index: int) -> dict[str, Any]:
        """Item ``index`` without reading its image (for epochs fed by the embedding cache)."""
        t = self.triples[index]
        return {"caption": t.caption, "paraphrase": t.paraphrase, "negation": t.negation,
                "index": index}

    def objects_of(self, indices: Iterable[int]) -> list[frozenset]:
        """What the images of items ``indices`` are known to show (the ``objects`` column)."""
        return [self.triples[i].objects for i in indices]

    def truth(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Which texts of the items ``indices`` are true of which of their images, as two bool
        matrices (captions[i, j]: caption i is true of image j; negations[k, j]: negation k is
        true of image j), for false-negative masking in the contrastive loss.

        Every caption of a photo is true of it (two captions of one photo in a batch are not
        each other's wrong answers); a text with a claim ("there is no horse":
        ``absent:horse``) is true of every image whose known objects agree. A negation without
        a claim is false of its own image and not known of others: they stay wrong answers.
        """
        rows = [self.triples[i] for i in indices]
        captions = torch.tensor([[a.image == b.image or claim_holds(a.caption_claim, b.objects)
                                  for b in rows] for a in rows], dtype=torch.bool)
        negations = torch.tensor([[claim_holds(a.negation_claim, b.objects) for b in rows]
                                  for a in rows], dtype=torch.bool)
        return captions, negations


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
