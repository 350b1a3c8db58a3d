"""Triples in webdataset tar shards (open_clip's layout), for data sets that outgrow a folder.

A sample is the tar members sharing a key (the member's name up to the first dot of its base
name, as webdataset groups them): ``{key}.jpg`` (or ``.png``, ``.jpeg``, ``.webp``) and
``{key}.json`` with ``caption``, ``paraphrase``, ``negation`` (a ``{key}.txt`` may carry the
caption, as open_clip's shards do). ``dataset`` may name one ``.tar`` file or a brace pattern
such as ``shards/train-{000000..000003}.tar``.

The shards are indexed once (member offsets) and images are read by seeking into the tar, so the
training loop keeps its map-style data set: exact resume, DDP shards and the image-embedding
cache work as with a folder. The writer (:func:`write_shards`) uses the ``webdataset`` package
(the optional extra ``semclip-studio[webdataset]``).
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Optional, Union

from engine.data.triples_io import (FIELDS, TEXT_FIELDS, Triple, TriplesFormatError, _check_row,
                                    read_triples)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
TEXT_FIELDS_MAPPING = {f: f for f in FIELDS}


def is_shard_pattern(dataset: str) -> bool:
    """Whether a ``dataset`` value names tar shards (a .tar file or a brace pattern of them)."""
    return dataset.strip().lower().endswith(".tar")


def expand_shards(pattern: str) -> list[Path]:
    """The shard files a pattern names (``a-{000..003}.tar``), each checked to exist."""
    pattern = pattern.strip()
    if "{" in pattern:
        try:
            from braceexpand import braceexpand  # webdataset's own dependency
        except ImportError as exc:
            raise ImportError("shard patterns need the webdataset package: pip install "
                              "'semclip-studio[webdataset]'") from exc
        paths = [Path(p) for p in braceexpand(pattern)]
    else:
        paths = [Path(pattern)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"shard file(s) not found: {', '.join(missing[:5])}"
                                f"{' ...' if len(missing) > 5 else ''} (from {pattern})")
    return paths


def _sample_key(name: str) -> tuple[str, str]:
    """(key, extension) of a tar member name, as webdataset splits it."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


@dataclass
class ShardImages:
    """Images inside tar shards, addressed as ``<shard path>/<member name>``."""

    members: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # -> tar, offset, size

    def exists(self, path: Path) -> bool:
        return str(path) in self.members

    def read(self, path: Path):
        from engine.data.triples import read_image

        tar, offset, size = self.members[str(path)]
        with open(tar, "rb") as f:
            f.seek(offset)
            return read_image(io.BytesIO(f.read(size)))


def _samples(shard: Path) -> Iterator[tuple[int, str, dict[str, tarfile.TarInfo], tarfile.TarFile]]:
    try:
        tar = tarfile.open(shard)
    except (tarfile.TarError, OSError) as exc:
        raise TriplesFormatError(f"{shard}: not a readable tar shard ({exc})") from None
    with tar:
        groups: dict[str, dict[str, tarfile.TarInfo]] = {}
        try:
            for member in tar:
                if member.isfile():
                    key, ext = _sample_key(member.name)
                    groups.setdefault(key, {})[ext] = member
        except tarfile.TarError as exc:
            raise TriplesFormatError(f"{shard}: damaged tar shard ({exc})") from None
        for number, (key, parts) in enumerate(groups.items(), start=1):
            yield number, key, parts, tar


def read_shards(pattern: str) -> tuple[list[Triple], ShardImages]:
    """Triples of every sample in the shards and the store that reads their images. A sample
    without an image or texts raises :class:`TriplesFormatError` naming the shard and sample
    (its position in the shard, reported as the line)."""
    triples: list[Triple] = []
    images = ShardImages()
    for shard in expand_shards(pattern):
        for number, key, parts, tar in _samples(shard):
            where = f"{shard}:{number} (sample {key})"
            ext = next((e for e in IMAGE_EXTENSIONS if e in parts), None)
            if ext is None:
                raise TriplesFormatError(f"{where}: no image member "
                                         f"(.{', .'.join(IMAGE_EXTENSIONS)})")
            texts = _texts(tar, parts, where)
            image = shard / parts[ext].name
            images.members[str(image)] = (str(shard), parts[ext].offset_data, parts[ext].size)
            row = _check_row({**texts, "image": str(image)}, where, TEXT_FIELDS_MAPPING)
            triples.append(Triple(image, row["caption"], row["paraphrase"], row["negation"],
                                  number))
    return triples, images


def _texts(tar: tarfile.TarFile, parts: Mapping[str, tarfile.TarInfo], where: str) -> dict:
    texts: dict = {}
    if "txt" in parts:
        texts["caption"] = tar.extractfile(parts["txt"]).read().decode("utf-8", "replace")
    if "json" in parts:
        try:
            data = json.loads(tar.extractfile(parts["json"]).read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise TriplesFormatError(f"{where}: {parts['json'].name} is not valid JSON "
                                     f"({exc})") from None
        if not isinstance(data, dict):
            raise TriplesFormatError(f"{where}: {parts['json'].name} must hold a JSON object")
        texts.update({k: data[k] for k in TEXT_FIELDS if k in data})
    return texts


def write_shards(source: Union[str, Path], out_dir: Union[str, Path], shard_size: int = 1000,
                 root: Optional[Union[str, Path]] = None,
                 columns: Optional[Mapping[str, str]] = None, prefix: str = "train") -> list[Path]:
    """Write a triples file as tar shards ``<out_dir>/<prefix>-000000.tar`` ... of
    ``shard_size`` samples each (images copied byte for byte); returns the shard paths. Rows
    whose image is missing or refused are an error: a shard set should be complete."""
    try:
        import webdataset as wds
    except ImportError as exc:
        raise ImportError("writing shards needs the webdataset package: "
                          "pip install 'semclip-studio[webdataset]'") from exc
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    triples = read_triples(source, root=root, columns=columns)
    if not triples:
        raise TriplesFormatError(f"{source}: no rows to write")
    for t in triples:
        if t.refused or not t.image.is_file():
            raise FileNotFoundError(f"{source}:{t.line}: {t.refused or 'image file not found'}: "
                                    f"{t.image}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pattern = str(out_dir / f"{prefix}-%06d.tar")
    with wds.ShardWriter(pattern, maxcount=shard_size, verbose=0) as sink:
        for i, t in enumerate(triples):
            ext = t.image.suffix.lower().lstrip(".") or "jpg"
            sink.write({"__key__": f"{i:09d}", ext: t.image.read_bytes(), "txt": t.caption,
                        "json": {"caption": t.caption, "paraphrase": t.paraphrase,
                                 "negation": t.negation}})
        count = sink.shard
    return [Path(pattern % n) for n in range(count)]


def shard_pattern(paths: list[Path]) -> str:
    """The brace pattern naming ``paths`` as written by :func:`write_shards`."""
    if len(paths) == 1:
        return str(paths[0])
    first, last = paths[0].stem.rsplit("-", 1), paths[-1].stem.rsplit("-", 1)
    return str(paths[0].parent / f"{first[0]}-{{{first[1]}..{last[1]}}}.tar")
