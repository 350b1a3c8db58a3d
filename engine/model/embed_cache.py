"""On-disk cache of image embeddings, so each image meets the image tower once per model.

Key of one embedding: (model identity, preprocessing description, content hash of the image).
The first two pick a folder ``cache_dir()/embeddings/<hash>/``; inside, every encoded batch is
one shard file (``shard-<sha256>.pt``: content keys + float32 embeddings), written atomically, so
an interrupted run keeps what it finished. A shard's name is the sha256 of its bytes: a shard
whose bytes no longer match (flipped bits, a truncated copy), that cannot be read, or that has an
old name without a checksum is deleted with a :class:`CacheWarning`, and its images are encoded
again. Processes that share a cache folder take its lock file (``filelock``) to write a shard,
merge shards or merge the hash index, so concurrent runs neither lose nor corrupt entries.
File contents are hashed (sha1 of the bytes); a path+size+mtime index (``file_hashes.json``)
lets a second run skip re-reading unchanged files. In-memory PIL images (the shapes world) are
keyed by a hash of their pixels.

Images that cannot be read or decoded are reported with their path and the reason, never
raised: one broken JPEG among 40,000 must not end an evaluation.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import torch
from filelock import FileLock
from PIL import Image

from engine.atomic import atomic_write_bytes
from engine.events import NeverStop, Progress, StopFlag
from engine.model.encoding import embed_images
from engine.paths import cache_dir

ImageSource = Union[Path, Image.Image]
HASH_INDEX = "file_hashes.json"
META_FILE = "meta.json"
LOCK_FILE = ".lock"
MAX_SHARDS = 64  # more shard files than this are merged into one when a cache is opened
SHARD_NAME = re.compile(r"shard-([0-9a-f]{64})\.pt")


class CacheWarning(UserWarning):
    """A cache file was corrupt, unreadable or of an old format; it was deleted and its
    entries are computed again."""


class _BadShard(Exception):
    """Why a shard file cannot be trusted."""


def describe_preprocess(preprocess: Callable) -> str:
    """A stable text description of a transform (memory addresses removed)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(preprocess))


def pixel_key(image: Image.Image) -> str:
    """Content key of an in-memory image: sha1 of its mode, size and pixels."""
    h = hashlib.sha1()
    h.update(f"{image.mode}:{image.size}".encode())
    h.update(image.tobytes())
    return "px-" + h.hexdigest()


def file_key(data: bytes) -> str:
    """Content key of an image file: sha1 of its bytes."""
    return "file-" + hashlib.sha1(data).hexdigest()


def _read_shard(path: Path) -> tuple[list[str], torch.Tensor]:
    """Keys and embeddings of a shard whose bytes still hash to its name; else :class:`_BadShard`."""
    match = SHARD_NAME.fullmatch(path.name)
    if match is None:
        raise _BadShard("old format without a checksum")
    data = path.read_bytes()  # FileNotFoundError: another process merged it away; not an error
    if hashlib.sha256(data).hexdigest() != match.group(1):
        raise _BadShard("sha256 mismatch: its bytes changed after it was written")
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        keys, embeddings = blob["keys"], blob["embeddings"]
        if embeddings.ndim != 2 or len(keys) != embeddings.shape[0]:
            raise ValueError(f"{len(keys)} keys for embeddings of shape {tuple(embeddings.shape)}")
    except Exception as exc:  # noqa: BLE001 - any unreadable shard only costs re-encoding
        raise _BadShard(f"unreadable ({type(exc).__name__}: {exc})") from None
    return keys, embeddings


@dataclass
class ImageFailure:
    """An image that could not be embedded."""

    index: int  # position in the requested list
    path: str
    reason: str


@dataclass
class ImageEmbeddings:
    """Embeddings of a list of images; rows of failed images are zero and ``ok`` is False."""

    embeddings: torch.Tensor  # (N, d) float32, L2-normalised where ok
    ok: torch.Tensor  # (N,) bool
    failures: list[ImageFailure] = field(default_factory=list)
    cache_hits: int = 0
    encoded: int = 0


class ImageEmbeddingCache:
    """Image embeddings of one model + preprocessing, persisted under ``root``."""

    def __init__(self, identity: str, preprocess_description: str,
                 root: Optional[Union[str, Path]] = None):
        self.identity = identity
        self.preprocess_description = preprocess_description
        digest = hashlib.sha1(f"{identity}\n{preprocess_description}".encode()).hexdigest()[:20]
        base = Path(root) if root is not None else cache_dir() / "embeddings"
        self.folder = base / digest
        self.folder.mkdir(parents=True, exist_ok=True)
        # blocks while another process writes; the OS frees it if that process dies
        self._lock = FileLock(self.folder / LOCK_FILE)
        self._store: dict[str, torch.Tensor] = {}
        with self._lock:
            meta = self.folder / META_FILE
            if not meta.exists():
                text = json.dumps({"identity": identity, "preprocess": preprocess_description},
                                  indent=2)
                atomic_write_bytes(meta, lambda f: f.write(text.encode()))
            self._load_shards()
            self._hash_index: dict[str, list] = self._read_hash_index()
        self._hash_index_dirty = False

    @classmethod
    def for_model(cls, loaded, root: Optional[Union[str, Path]] = None) -> "ImageEmbeddingCache":
        """The cache of a :class:`engine.model.loading.LoadedModel`."""
        return cls(loaded.identity, describe_preprocess(loaded.preprocess), root)

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: str) -> bool:
        return key in self._store

    def get(self, key: str) -> Optional[torch.Tensor]:
        return self._store.get(key)

    # -- persistence ----------------------------------------------------------------------------

    def _load_shards(self) -> None:
        """Read every trustworthy shard; delete the others (see the module docstring). The
        caller holds the lock."""
        loaded, bad = [], []
        for shard in sorted(self.folder.glob("shard-*.pt")):
            try:
                keys, emb = _read_shard(shard)
            except FileNotFoundError:
                continue
            except (_BadShard, OSError) as exc:
                bad.append(f"{shard.name}: {exc}")
                shard.unlink(missing_ok=True)
                continue
            loaded.append(shard)
            for key, row in zip(keys, emb):
                self._store[key] = row
        if bad:
            warnings.warn(CacheWarning(
                f"image-embedding cache {self.folder}: deleted {len(bad)} bad shard file(s), their "
                f"images will be encoded again: {'; '.join(bad[:5])}"
                + (f"; ... and {len(bad) - 5} more" if len(bad) > 5 else "")), stacklevel=3)
        if len(loaded) > MAX_SHARDS:
            self._compact(loaded)

    def _compact(self, shards: list[Path]) -> None:
        """Merge many small shards (one per encoded batch) into one, so opening stays fast.
        The caller holds the lock, so no other process merges or deletes these meanwhile."""
        keys = list(self._store)
        merged = self._write_shard(keys, torch.stack([self._store[k] for k in keys]))
        for shard in shards:  # only the files merged above
            if shard != merged:
                shard.unlink(missing_ok=True)

    def _write_shard(self, keys: list[str], embeddings: torch.Tensor) -> Path:
        """Write one shard named by the sha256 of its bytes; the caller holds the lock."""
        buffer = io.BytesIO()
        torch.save({"keys": keys, "embeddings": embeddings}, buffer)
        data = buffer.getvalue()
        shard = self.folder / f"shard-{hashlib.sha256(data).hexdigest()}.pt"
        atomic_write_bytes(shard, lambda f: f.write(data))
        return shard

    def put_many(self, keys: Sequence[str], embeddings: torch.Tensor) -> None:
        """Store a batch of embeddings (in memory and as one new shard on disk)."""
        if not keys:
            return
        embeddings = embeddings.detach().float().cpu().contiguous()
        with self._lock:
            self._write_shard(list(keys), embeddings)
        for key, row in zip(keys, embeddings):
            self._store[key] = row

    def _read_hash_index(self) -> dict[str, list]:
        path = self.folder / HASH_INDEX
        try:
            index = json.loads(path.read_text())
        except (OSError, ValueError):  # missing or damaged: files are hashed again
            return {}
        return index if isinstance(index, dict) else {}

    def flush_hash_index(self) -> None:
        """Merge this object's new file hashes into the index on disk (another process may have
        added its own since this one read it)."""
        if self._hash_index_dirty:
            with self._lock:
                merged = {**self._read_hash_index(), **self._hash_index}
                data = json.dumps(merged).encode()
                atomic_write_bytes(self.folder / HASH_INDEX, lambda f: f.write(data))
            self._hash_index = merged
            self._hash_index_dirty = False

    # -- keys -----------------------------------------------------------------------------------

    def file_key(self, path: Path) -> tuple[str, Optional[bytes]]:
        """Content key of a file, plus its bytes when they had to be read (None if cached)."""
        stat = path.stat()
        name = str(path.resolve())
        known = self._hash_index.get(name)
        if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            return known[2], None
        data = path.read_bytes()
        key = file_key(data)
        self._hash_index[name] = [stat.st_size, stat.st_mtime_ns, key]
        self._hash_index_dirty = True
        return key, data


def _open_image(source: ImageSource, data: Optional[bytes]) -> Image.Image:
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    with Image.open(io.BytesIO(data) if data is not None else source) as image:
        return image.convert("RGB")


def _source_name(source: ImageSource) -> str:
    return str(source) if isinstance(source, Path) else "<in-memory image>"


def embed_image_sources(loaded, sources: Sequence[ImageSource], batch_size: int = 64,
                        cache: Optional[ImageEmbeddingCache] = None,
                        stop: Optional[StopFlag] = None, workers: int = 4,
                        phase: str = "images") -> Iterator[Progress]:
    """Embed image files / PIL images with ``loaded`` (a LoadedModel), reusing the cache.

    A generator: yields :class:`Progress` events and *returns* an :class:`ImageEmbeddings`
    (use ``result = yield from embed_image_sources(...)``, or :func:`embed_images_cached`).
    Only images absent from the cache are decoded, preprocessed (``workers`` threads) and
    encoded, in batches of ``batch_size``; each batch becomes a cache shard. On stop, returns
    what it has with the rest marked not ok.
    """
    stop = stop or NeverStop()
    n = len(sources)
    dim = None
    keys: list[Optional[str]] = [None] * n
    failures: list[ImageFailure] = []
    todo: list[tuple[int, Optional[bytes]]] = []  # (index, bytes if already read)
    found: dict[int, torch.Tensor] = {}

    for index, source in enumerate(sources):  # hashing pass: cheap for files seen before
        try:
            if isinstance(source, Image.Image):
                key, data = pixel_key(source), None
            elif cache is not None:
                key, data = cache.file_key(Path(source))
            else:
                key, data = "", None
        except OSError as exc:
            failures.append(ImageFailure(index, _source_name(source), f"cannot read: {exc}"))
            continue
        keys[index] = key
        hit = cache.get(key) if cache is not None and key else None
        if hit is not None:
            found[index] = hit
        else:
            todo.append((index, data))
    if cache is not None:
        cache.flush_hash_index()
    hits = len(found)
    yield Progress(done=hits, total=n, phase=phase,
                   message=f"{hits} of {n} images from the cache")

    def prepare(item: tuple[int, Optional[bytes]]):
        index, data = item
        try:
            return index, loaded.preprocess(_open_image(sources[index], data)), None
        except Exception as exc:  # noqa: BLE001 - any decode/transform failure is reported
            return index, None, f"cannot decode: {type(exc).__name__}: {exc}"

    encoded = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(todo), batch_size):
            if stop.is_set():
                break
            prepared = list(pool.map(prepare, todo[start:start + batch_size]))
            good = [(i, t) for i, t, err in prepared if err is None]
            for i, _, err in prepared:
                if err is not None:
                    failures.append(ImageFailure(i, _source_name(sources[i]), err))
            if good:
                batch = torch.stack([t for _, t in good])
                emb = embed_images(loaded.model, batch, batch_size=batch_size)
                for (i, _), row in zip(good, emb):
                    found[i] = row
                encoded += len(good)
                if cache is not None and all(keys[i] for i, _ in good):
                    cache.put_many([keys[i] for i, _ in good], emb)
            yield Progress(done=hits + start + len(prepared), total=n, phase=phase)

    if found:
        dim = next(iter(found.values())).shape[-1]
    else:
        from engine.model.encoding import embed_width
        dim = embed_width(loaded.model)
    embeddings = torch.zeros(n, dim)
    ok = torch.zeros(n, dtype=torch.bool)
    for i, row in found.items():
        embeddings[i] = row
        ok[i] = True
    failures.sort(key=lambda f: f.index)
    return ImageEmbeddings(embeddings=embeddings, ok=ok, failures=failures, cache_hits=hits,
                           encoded=encoded)


def embed_images_cached(loaded, sources: Sequence[ImageSource], batch_size: int = 64,
                        cache: Optional[ImageEmbeddingCache] = None,
                        stop: Optional[StopFlag] = None, workers: int = 4) -> ImageEmbeddings:
    """:func:`embed_image_sources` without the progress events."""
    gen = embed_image_sources(loaded, sources, batch_size, cache, stop, workers)
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value
