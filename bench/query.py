"""Latency of the app's query path: one typed caption -> similarities and top-10 for both models.

    python bench/query.py [--left SPEC] [--right SPEC] [--repeats 30]

For each gallery size (10,000 and 100,000 cached image embeddings, random unit vectors of the
models' width), one query = encode the caption with the left and the right model (exact
truncated text encoding), similarities against the whole gallery, top-10 for each model.
Reports median and p95 milliseconds over ``--repeats`` different captions, on this machine.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from engine.data.shapes.world import ShapesWorld
from engine.explore.search import top_k
from engine.model.encoding import embed_texts
from engine.model.loading import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--left", default="semclip-shapes-minilm")
    parser.add_argument("--right", default="semclip-shapes-minilm")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()

    models = [load_model(args.left), load_model(args.right, seed=1)]
    world = ShapesWorld(seed=0)
    queries = [world.item("test", i)["caption"] for i in range(args.repeats + 3)]
    print(f"host={platform.node()} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"models={args.left} | {args.right}")
    for size in (int(s) for s in args.sizes.split(",")):
        g = torch.Generator().manual_seed(0)
        galleries = [torch.nn.functional.normalize(torch.randn(size, m.embed_dim, generator=g), dim=-1)
                     for m in models]
        times = []
        for i, query in enumerate(queries):
            start = time.perf_counter()
            for loaded, gallery in zip(models, galleries):
                text = embed_texts(loaded.model, loaded.tokenizer, [query])
                top_k(text, gallery, 10)  # similarities over the whole gallery + top-10
            if i >= 3:  # first queries warm up allocators and kernels
                times.append((time.perf_counter() - start) * 1e3)
        times.sort()
        p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
        print(f"gallery {size:>7,}: median {statistics.median(times):6.1f} ms, p95 {p95:6.1f} ms "
              f"per typed caption (both models: encode + similarities + top-10)")


if __name__ == "__main__":
    main()
