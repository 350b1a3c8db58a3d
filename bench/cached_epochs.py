"""Epochs after the first with a locked image tower: texts-only reads vs reading every image.

    python bench/cached_epochs.py [--model semclip-shapes-tiny] [--scenes 2048] [--batch 64]
    python bench/cached_epochs.py --model semclip-small --scenes 512 --batch 64

With the image tower locked (the paper's setting) every image embedding is cached in epoch 1.
From then on the training loop reads items without their image (``TextsOnly``). This bench
trains the same config twice, interleaved ``--repeats`` times: as shipped, and with the
texts-only path switched off (images drawn and preprocessed every epoch, then ignored, as
before). It prints the median samples/s of epochs 2+ of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import contextmanager

from engine.data.shapes.world import ShapesDataset
from engine.events import Done, Error, StepMetrics
from engine.train.config import TrainConfig
from engine.train.loop import train


@contextmanager
def images_every_epoch():
    """Hide ``ShapesDataset.texts``: the loop then reads images as it did before."""
    texts = ShapesDataset.texts
    del ShapesDataset.texts
    try:
        yield
    finally:
        ShapesDataset.texts = texts


def later_epochs_rate(cfg: TrainConfig) -> float:
    """Samples/s over the steps of epochs 2+ (wall clock from the first to the last of them)."""
    stamps: list[tuple[int, float]] = []
    for event in train(cfg):
        if isinstance(event, StepMetrics) and event.epoch >= 2:
            stamps.append((event.step, time.perf_counter()))
        elif isinstance(event, Error):
            raise SystemExit(f"training failed: {event.message}")
        elif isinstance(event, Done):
            break
    (first_step, t0), (last_step, t1) = stamps[0], stamps[-1]
    return (last_step - first_step) * cfg.batch_size / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="semclip-shapes-tiny")
    parser.add_argument("--scenes", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rates: dict[str, list[float]] = {"images every epoch": [], "texts only (shipped)": []}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model=args.model, lock_image=True, dataset="shapes",
                          shapes_train_size=args.scenes, batch_size=args.batch, epochs=args.epochs,
                          eval_every_epochs=0, warmup_steps=5, out_dir=tmp, seed=0)
        for _ in range(args.repeats):
            with images_every_epoch():
                rates["images every epoch"].append(later_epochs_rate(cfg))
            rates["texts only (shipped)"].append(later_epochs_rate(cfg))
    print(f"{args.model}, locked image tower, {args.scenes} scenes, batch {args.batch}, "
          f"epochs 2-{args.epochs}, {args.repeats} interleaved repeats")
    for name, values in rates.items():
        print(f"  {name:22s} {statistics.median(values):8.1f} samples/s "
              f"({min(values):.1f}-{max(values):.1f})")
    ratio = statistics.median(rates["texts only (shipped)"]) / statistics.median(rates["images every epoch"])
    print(f"  ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
