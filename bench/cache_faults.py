"""The image-embedding cache after a shard lost bits: served as hits, or caught and recomputed?

    python bench/cache_faults.py [--images 64] [--bits 200] [--seeds 5]

For each seed: embed ``--images`` in-memory images with semclip-tiny through a fresh cache (one
shard), flip ``--bits`` random bits of the embeddings stored in that shard file (``--anywhere``:
of the whole file), embed again through a new cache object and report the cache hits, the
largest difference from the true embeddings (NaN counts as infinite) and any CacheWarning.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from file_faults import flip_bits  # noqa: E402

from engine.model.embed_cache import ImageEmbeddingCache, embed_images_cached  # noqa: E402
from engine.model.loading import load_model  # noqa: E402


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    diff = (a - b).abs()
    return float("inf") if not torch.isfinite(diff).all() else diff.max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--bits", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--anywhere", action="store_true", help="flip bits anywhere in the file")
    args = parser.parse_args()
    loaded = load_model("semclip-tiny", seed=0)
    images = [Image.new("RGB", (32, 32), (k * 3 % 256, k * 7 % 256, k * 11 % 256))
              for k in range(args.images)]
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as root:
            truth = embed_images_cached(loaded, images, batch_size=args.images,
                                        cache=ImageEmbeddingCache.for_model(loaded, root))
            (shard,) = Path(root).glob("*/shard-*.pt")
            region = b"" if args.anywhere else truth.embeddings.numpy().tobytes()
            flip_bits(shard, args.bits, seed, region)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                again = embed_images_cached(loaded, images, batch_size=args.images,
                                            cache=ImageEmbeddingCache.for_model(loaded, root))
            said = [str(w.message)[-70:] for w in caught if "Cache" in type(w.message).__name__]
            print(f"seed {seed}: {again.cache_hits} of {args.images} hits, max |diff| "
                  f"{max_diff(again.embeddings, truth.embeddings):.3g}, warnings {said}")


if __name__ == "__main__":
    main()
