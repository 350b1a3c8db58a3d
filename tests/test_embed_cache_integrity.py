"""The image-embedding cache never serves damaged shards, and two processes can share it
(issue 11, item 11)."""

from __future__ import annotations

import hashlib
import multiprocessing
import uuid
import warnings
from pathlib import Path

import pytest
import torch
from file_faults import flip_bits
from PIL import Image

import engine.model.embed_cache as ec
from engine.model.embed_cache import CacheWarning, ImageEmbeddingCache, embed_images_cached
from engine.model.loading import load_model

IDENTITY, PREPROCESS = "test-model", "test-preprocess"
DIM = 16


@pytest.fixture(scope="module")
def tiny():
    return load_model("semclip-tiny", seed=0)


def write_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        paths.append(folder / f"img{i}.png")
        Image.new("RGB", (40, 40), (20 * i, 255 - 20 * i, 9 * i)).save(paths[-1])
    return paths


def first_run(tiny, paths: list[Path], root: Path):
    """Embed through a fresh cache; the one shard it writes and the result."""
    truth = embed_images_cached(tiny, paths, batch_size=len(paths),
                                cache=ImageEmbeddingCache.for_model(tiny, root))
    (shard,) = root.glob("*/shard-*.pt")
    return shard, truth


def reopen_and_embed(tiny, paths: list[Path], root: Path, warning_match: str):
    with pytest.warns(CacheWarning, match=warning_match):
        cache = ImageEmbeddingCache.for_model(tiny, root)
    return embed_images_cached(tiny, paths, batch_size=len(paths), cache=cache)


def test_a_shard_with_200_flipped_bits_is_deleted_with_a_warning_and_recomputed(tiny, tmp_path):
    paths = write_images(tmp_path / "imgs", 8)
    shard, truth = first_run(tiny, paths, tmp_path / "c")
    flip_bits(shard, 200, seed=0, region=truth.embeddings.numpy().tobytes())  # in the embeddings
    again = reopen_and_embed(tiny, paths, tmp_path / "c", f"deleted 1 bad shard.*{shard.name}: sha256 mismatch")
    assert again.cache_hits == 0 and again.encoded == 8
    assert torch.allclose(again.embeddings, truth.embeddings, atol=1e-6)
    (fresh,) = shard.parent.glob("shard-*.pt")  # the damaged file is gone (or overwritten)
    assert hashlib.sha256(fresh.read_bytes()).hexdigest() in fresh.name
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # the recomputed shard is trusted again
        third = embed_images_cached(tiny, paths, cache=ImageEmbeddingCache.for_model(tiny, tmp_path / "c"))
    assert third.cache_hits == 8 and torch.equal(third.embeddings, again.embeddings)


@pytest.mark.parametrize("damage, reason", [
    (lambda shard: shard.write_bytes(shard.read_bytes()[:-100]), "sha256 mismatch"),  # truncated
    (lambda shard: shard.write_bytes(b""), "sha256 mismatch"),  # zero bytes
    (lambda shard: shard.rename(shard.with_name(f"shard-{uuid.uuid4().hex}.pt")), "old format"),
], ids=["truncated", "zero-bytes", "old-name-without-checksum"])
def test_truncated_empty_and_old_format_shards_are_replaced(tiny, tmp_path, damage, reason):
    paths = write_images(tmp_path / "imgs", 3)
    shard, truth = first_run(tiny, paths, tmp_path / "c")
    damage(shard)
    again = reopen_and_embed(tiny, paths, tmp_path / "c", reason)
    assert again.cache_hits == 0 and torch.allclose(again.embeddings, truth.embeddings, atol=1e-6)
    assert len(list((tmp_path / "c").glob("*/shard-*.pt"))) == 1  # only the recomputed one


def test_a_well_named_shard_that_is_not_a_shard_is_unreadable(tmp_path):
    data = b"not a torch file"
    folder = ImageEmbeddingCache(IDENTITY, PREPROCESS, tmp_path).folder
    (folder / f"shard-{hashlib.sha256(data).hexdigest()}.pt").write_bytes(data)
    with pytest.warns(CacheWarning, match="unreadable"):
        assert len(ImageEmbeddingCache(IDENTITY, PREPROCESS, tmp_path)) == 0
    assert not list(folder.glob("shard-*.pt"))


# ---- two processes, one cache -------------------------------------------------------------------

def expected(key: str) -> torch.Tensor:
    """The embedding every writer stores under ``key`` (so shared keys agree)."""
    seed = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
    return torch.randn(DIM, generator=torch.Generator().manual_seed(seed))


def _writer(root: str, name: str, barrier, rounds: int) -> None:
    """One process: many small shards, reopening (so merging) while the other writes, then
    new file hashes flushed at the same time as the other's."""
    torch.set_num_threads(1)
    ec.MAX_SHARDS = 3  # every reopen merges, racing the other process's writes
    cache = ImageEmbeddingCache(IDENTITY, PREPROCESS, root)
    barrier.wait(timeout=120)  # a crashed partner fails this one instead of hanging it
    for r in range(rounds):
        keys = [f"{name}-{r}-{k}" for k in range(4)] + [f"shared-{r}"]
        cache.put_many(keys, torch.stack([expected(k) for k in keys]))
        if r % 3 == 2:
            cache = ImageEmbeddingCache(IDENTITY, PREPROCESS, root)
    files = write_images(Path(root) / f"files-{name}", 4)
    barrier.wait(timeout=120)  # both read the index above; both add to it now
    for path in files:
        cache.file_key(path)
    cache.flush_hash_index()


@pytest.mark.slow
def test_two_processes_writing_one_cache_lose_and_corrupt_nothing(tmp_path):
    rounds = 12
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [context.Process(target=_writer, args=(str(tmp_path), name, barrier, rounds))
                 for name in ("a", "b")]
    try:
        for p in processes:
            p.start()
        for p in processes:
            p.join(timeout=300)
    finally:
        for p in processes:
            if p.is_alive():
                p.terminate()
    assert [p.exitcode for p in processes] == [0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        cache = ImageEmbeddingCache(IDENTITY, PREPROCESS, tmp_path)
    keys = [f"{n}-{r}-{k}" for n in "ab" for r in range(rounds) for k in range(4)] + \
           [f"shared-{r}" for r in range(rounds)]
    assert len(cache) == len(keys)
    for key in keys:
        assert torch.equal(cache.get(key), expected(key)), key
    index = ec.json.loads((cache.folder / ec.HASH_INDEX).read_text())
    assert sorted(Path(p).parent.name for p in index) == ["files-a"] * 4 + ["files-b"] * 4
    assert not list(cache.folder.glob(".*.tmp"))
