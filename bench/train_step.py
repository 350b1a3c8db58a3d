"""Stock open_clip fine-tuning step vs the SemCLIP step, same model, batch and precision.

    python bench/train_step.py                                   # CPU: semclip-small, batch 128
    python bench/train_step.py --model semclip-shapes-tiny       # the tiny shapes config
    python bench/train_step.py --model ViT-B-32 --batch 256      # GPU (random weights)

The CPU default, ``semclip-small``, is the honest ViT-B-32 stand-in for a 2-core CPU: the same
shape of work (224 px images in 32 px patches, i.e. 49 patch tokens; a causal text tower over
the 77-token context pooled at the end token; the same open_clip classes) scaled down from
width 768/512 and 12 layers to width 256 and 6 layers per tower, so a step takes about a second
rather than a minute. The tiny config (64 px, 32-token context, width 96) stays runnable with
``--model semclip-shapes-tiny``.

Stock step: image tower locked (``lock_image_tower``) but still run every step, one caption per
image through ``model.encode_text`` at the full context, open_clip's ``ClipLoss``.
SemCLIP step: three captions per image (t, t+, t-) in one text call (exact truncation, split
into length buckets on CPU: ``engine.encoding.encode_text``; ``--max-buckets 1`` truncates to
the longest caption only), the locked image tower's embeddings taken from the run's cache
(filled once, reported separately), ``SemClipLoss``.

The two steps are timed *interleaved* (stock, SemCLIP, stock, ...) and each is reported as its
median step time, so load from other processes on a shared machine hits both alike. Prints
samples/s (images per second) of each, their ratio, step time (median, min-max), peak memory
and model FLOP utilisation (FLOPs counted by torch's FlopCounterMode; peak = the GPU's
datasheet bf16/fp32 dense peak, or on CPU the best of several fp32 matmul timings here).
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time
from contextlib import nullcontext
from typing import Callable

import torch
from open_clip.loss import ClipLoss
from torch.utils.flop_counter import FlopCounterMode

from engine.encoding import encode_text
from engine.losses import SemClipLoss
from engine.models import load_model
from engine.shapes import ShapesWorld

GPU_PEAK_TFLOPS = {"H100": {"bf16": 989.0, "fp32": 67.0}, "H200": {"bf16": 989.0, "fp32": 67.0},
                   "A100": {"bf16": 312.0, "fp32": 19.5}}


def peak_flops(device: torch.device, precision: str) -> tuple[float, str]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, table in GPU_PEAK_TFLOPS.items():
            if key in name:
                return table[precision] * 1e12, f"{name} datasheet {precision} dense"
        return float("nan"), f"{name} (peak unknown)"
    a = torch.randn(1024, 1024)
    a @ a
    best, reps = 0.0, 10
    for _ in range(5):  # the best of 5 timings: other processes only ever slow a timing down
        start = time.perf_counter()
        for _ in range(reps):
            a @ a
        best = max(best, 2 * 1024 ** 3 * reps / (time.perf_counter() - start))
    return best, "best measured fp32 1024x1024 matmul on this CPU"


def captions(n: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    world = ShapesWorld(seed=seed)
    items = [world.item("train", i) for i in range(n)]
    return ([it["caption"] for it in items], [it["paraphrase"] for it in items],
            [it["negation"] for it in items])


def count_flops(step: Callable[[], None]) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def build_step(variant: str, args, device: torch.device, autocast, texts) -> tuple[Callable[[], None], float]:
    """A closure running one optimiser step of ``variant``, and the image-cache fill time (s)."""
    caps, paras, negs = texts
    loaded = load_model(args.model, device=device, seed=0)
    model = loaded.model.train()
    model.lock_image_tower()
    size = model.visual.image_size
    images = torch.randn(args.batch, 3, size[0], size[1], device=device,
                         generator=torch.Generator(device).manual_seed(0))
    params = [p for p in model.parameters() if p.requires_grad]
    cache_s = 0.0
    if variant == "stock":
        loss_fn = ClipLoss()
        tokens = loaded.tokenizer(caps).to(device)

        def forward() -> torch.Tensor:
            img = model.encode_image(images, normalize=True)
            txt = model.encode_text(tokens, normalize=True)
            return loss_fn(img, txt, model.logit_scale.exp())
    else:
        loss_fn = SemClipLoss(loaded.embed_dim).to(device)
        params += list(loss_fn.parameters())
        tokens = loaded.tokenizer(caps + paras + negs).to(device)
        start = time.perf_counter()
        with torch.no_grad(), autocast():  # the cache: one image-tower pass per image per run
            cached = model.encode_image(images, normalize=True).float()
        if device.type == "cuda":
            torch.cuda.synchronize()
        cache_s = time.perf_counter() - start

        def forward() -> torch.Tensor:
            txt = encode_text(model, tokens, max_buckets=args.max_buckets).float()
            t, tp, tn = txt.split(args.batch)
            return loss_fn(cached, t, tp, tn, model.logit_scale.exp())
    opt = torch.optim.AdamW(params, lr=1e-5)

    def step() -> None:
        with autocast():
            loss = forward()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, cache_s


def timed_once(step: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="semclip-small")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--max-buckets", type=int, default=None,
                        help="length buckets of the SemCLIP text call (default: engine's choice "
                             "for the device; 1 = truncate to the longest caption only)")
    args = parser.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" else nullcontext

    texts = captions(args.batch)
    variants = ("stock", "semclip")
    steps: dict[str, Callable[[], None]] = {}
    info: dict[str, dict] = {}
    for name in variants:  # each variant warmed up alone, so its peak memory is its own
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        step, cache_s = build_step(name, args, device, autocast, texts)
        flops = count_flops(step)
        for _ in range(args.warmup):
            step()
        steps[name] = step
        info[name] = dict(flops=flops, cache_s=cache_s, mem=peak_memory_mib(device), times=[])
    for _ in range(args.steps):  # interleaved: a burst of outside load slows both alike
        for name in variants:
            info[name]["times"].append(timed_once(steps[name], device))

    peak, peak_source = peak_flops(device, precision)
    print(f"model={args.model} batch={args.batch} device={device} precision={precision} "
          f"torch={torch.__version__} host={platform.node()} threads={torch.get_num_threads()} "
          f"steps={args.steps} (interleaved) max_buckets={args.max_buckets or 'auto'}")
    print(f"peak FLOP/s reference: {peak / 1e12:.2f} TFLOP/s ({peak_source})")
    print(f"{'step':8} {'samples/s':>10} {'step ms':>9} {'(min-max)':>15} {'GFLOP/step':>11} "
          f"{'MFU':>7} {'peak MiB':>9}")
    median: dict[str, float] = {}
    for name, r in info.items():
        median[name] = statistics.median(r["times"])
        mfu = r["flops"] / median[name] / peak
        spread = f"({min(r['times']) * 1e3:.0f}-{max(r['times']) * 1e3:.0f})"
        print(f"{name:8} {args.batch / median[name]:10.1f} {median[name] * 1e3:9.1f} {spread:>15} "
              f"{r['flops'] / 1e9:11.2f} {mfu:7.1%} {r['mem']:9.0f}")
    ratio = median["stock"] / median["semclip"]
    print(f"semclip / stock samples/s: {ratio:.2f}x  (image-embedding cache filled once in "
          f"{info['semclip']['cache_s'] * 1e3:.0f} ms, {args.batch} images)")
    if device.type == "cpu":
        print("CPU peak memory is the process's max RSS so far (stock measured first; semclip's "
              "figure includes the stock model still held)")


if __name__ == "__main__":
    main()
