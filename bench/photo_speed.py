"""Where a photo-demo training step spends its time, on this machine, now.

    python bench/photo_speed.py --triples triples/flickr8k/train.csv [--steps 3] [--threads 1]

Prints: the locked EfficientNet trunk's cold speed (images/s, what the disk cache saves), the
image head on cached trunk features (images/s), and seconds per optimiser step at batch 128
for the CLIP baseline and SemCLIP of the ``photo-demo`` preset, each also with every text of a
triple encoded (as before the CLIP baseline learnt to encode captions alone). The load average
is printed beside the figures: the CPU is shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data.triples import read_image, read_triples  # noqa: E402
from engine.train.loop import DistInfo, _build_task, train_step  # noqa: E402
from engine.train.presets import preset  # noqa: E402
from engine.train.task import ImageFeatureCache, SemClipTask, build_optimizer  # noqa: E402

ALL_TEXTS = ("caption", "paraphrase", "negation")


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def step_seconds(cfg, triples, steps: int, all_texts: bool) -> float:
    loaded, task = _build_task(cfg, torch.device("cpu"), DistInfo())
    if all_texts:  # the old behaviour: every text of a triple through the tower
        task.__class__ = type("AllTexts", (SemClipTask,), {"text_fields": ALL_TEXTS})
    width = loaded.model.visual.trunk.num_features
    task.image_cache = ImageFeatureCache(len(triples), width, torch.device("cpu"))
    task.image_cache.store(torch.arange(len(triples)), torch.randn(len(triples), width))
    task.cache_holds_trunk = True
    optimizer = build_optimizer(task, cfg.lr, cfg.weight_decay, cfg.text_lr_scale)
    rows = triples[:cfg.batch_size]
    batch = {"image": None, "caption": [t.caption for t in rows],
             "paraphrase": [t.paraphrase for t in rows], "negation": [t.negation for t in rows],
             "index": torch.arange(len(rows))}
    scaler = torch.amp.GradScaler("cpu", enabled=False)

    def one_step():
        train_step(task, task, [batch], loaded.tokenizer, torch.device("cpu"), nullcontext, scaler)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return timed(one_step, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triples", required=True, help="photo triples (e.g. Flickr8k train)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--images", type=int, default=64, help="photos for the trunk's speed")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default; on a CPU shared with other "
                             "jobs, 1 can be several times faster than oversubscribing)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    triples = read_triples(args.triples)
    clip_cfg, semclip_cfg = preset("photo-demo")
    print(f"torch threads {torch.get_num_threads()}; {load()}")

    loaded, _ = _build_task(clip_cfg, torch.device("cpu"), DistInfo())
    paths = list(dict.fromkeys(t.image for t in triples))[:args.images]
    images = torch.stack([loaded.preprocess(read_image(p)) for p in paths])
    trunk, head = loaded.model.visual.trunk, loaded.model.visual.head
    with torch.no_grad():
        s = timed(lambda: [trunk(chunk) for chunk in images.split(32)], 1)
        print(f"trunk (cold, no cache): {len(paths) / s:.1f} images/s; {load()}")
        features = torch.randn(6000, trunk.num_features)
        s = timed(lambda: head(features), 3)
        print(f"image head on cached trunk features: {6000 / s:.0f} images/s; {load()}")

    for cfg in (clip_cfg, semclip_cfg):
        for all_texts in (True, False):
            if cfg.name == "semclip" and not all_texts:
                continue  # SemCLIP reads all three texts either way
            s = step_seconds(cfg, triples, args.steps, all_texts)
            texts = "caption+paraphrase+negation" if all_texts else "captions only"
            print(f"{cfg.name}: {s:.2f} s/step at batch {cfg.batch_size} ({texts}); {load()}")


if __name__ == "__main__":
    main()
