"""How fast the shapes world makes training items (scenes rendered + captions), per core.

    python bench/shapes_throughput.py [--n 5000] [--size 64] [--model semclip-shapes-tiny]
    python bench/shapes_throughput.py --size 224 --model semclip-small --n 2000

Times ``--repeats`` passes over ``--n`` items and prints the median (and min-max) items/s of
one process: raw items (scene, PIL render, caption, paraphrase, negation) and items through the
model's preprocessing (what one DataLoader worker delivers). A training run with N workers gets
about N times the second figure, CPU cores permitting.
"""

from __future__ import annotations

import argparse
import statistics
import time

from engine.data.shapes.world import ShapesDataset, ShapesWorld
from engine.model.loading import load_model


def rate(fetch, n: int, repeats: int) -> tuple[float, float, float]:
    """Median, min and max items/s of ``repeats`` passes of ``fetch(i)`` for i < n."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fetch(i)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), min(rates), max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--model", default="semclip-shapes-tiny", help="whose preprocessing to apply")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    world = ShapesWorld(seed=0, image_size=args.size)
    raw = rate(lambda i: world.item("train", i), args.n, args.repeats)
    data = ShapesDataset(world, "train", args.n, transform=load_model(args.model).preprocess)
    with_transform = rate(data.__getitem__, args.n, args.repeats)
    for label, (median, low, high) in (("PIL + captions", raw),
                                       (f"with {args.model}'s preprocessing", with_transform)):
        print(f"{args.size}px scenes, {label}: {median:,.0f} items/s "
              f"(min-max {low:,.0f}-{high:,.0f} over {args.repeats} x {args.n}), one process")


if __name__ == "__main__":
    main()
