"""How fast the shapes world makes training items (scenes rendered + captions), per core.

    python bench/shapes_throughput.py [--n 5000] [--size 64]
"""

from __future__ import annotations

import argparse
import time

from engine.models import load_model
from engine.shapes import ShapesDataset, ShapesWorld


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    world = ShapesWorld(seed=0, image_size=args.size)
    start = time.perf_counter()
    for i in range(args.n):
        world.item("train", i)
    raw = args.n / (time.perf_counter() - start)
    transform = load_model("semclip-shapes-tiny").preprocess
    data = ShapesDataset(world, "train", args.n, transform=transform)
    start = time.perf_counter()
    for i in range(args.n):
        data[i]
    with_transform = args.n / (time.perf_counter() - start)
    print(f"{args.size}px scenes: {raw:,.0f} items/s (PIL + captions), "
          f"{with_transform:,.0f} items/s with the model's preprocessing, one process")


if __name__ == "__main__":
    main()
