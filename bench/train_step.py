"""Stock open_clip fine-tuning step vs the SemCLIP step, same model, batch and precision.

    python bench/train_step.py                                   # CPU: small config
    python bench/train_step.py --model ViT-B-32 --batch 256      # GPU (random weights)

Stock step: image tower locked (``lock_image_tower``) but still run every step, one caption per
image through ``model.encode_text`` at the full context, open_clip's ``ClipLoss``.
SemCLIP step: three captions per image (t, t+, t-) in one truncated text call, the locked image
tower's embeddings taken from the run's cache (filled once, reported separately), ``SemClipLoss``.
Prints samples/s (images per second) of each, their ratio, step time, peak memory and model FLOP
utilisation (FLOPs counted by torch's FlopCounterMode; peak = the GPU's datasheet bf16/fp32 dense
peak, or on CPU the measured fp32 matmul throughput of this machine).
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from contextlib import nullcontext

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
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ a
    return 2 * 1024 ** 3 * reps / (time.perf_counter() - start), "measured fp32 matmul on this CPU"


def captions(n: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    world = ShapesWorld(seed=seed)
    items = [world.item("train", i) for i in range(n)]
    return ([it["caption"] for it in items], [it["paraphrase"] for it in items],
            [it["negation"] for it in items])


def timed(step, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def count_flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="semclip-shapes-tiny")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" else nullcontext

    caps, paras, negs = captions(args.batch)
    runs = {}
    for variant in ("stock", "semclip"):
        loaded = load_model(args.model, device=device, seed=0)
        model = loaded.model.train()
        model.lock_image_tower()
        size = model.visual.image_size
        images = torch.randn(args.batch, 3, size[0], size[1], device=device)
        params = [p for p in model.parameters() if p.requires_grad]
        if variant == "stock":
            loss_fn = ClipLoss()
            tokens = loaded.tokenizer(caps).to(device)

            def step():
                with autocast():
                    img = model.encode_image(images, normalize=True)
                    txt = model.encode_text(tokens, normalize=True)
                    loss = loss_fn(img, txt, model.logit_scale.exp())
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            cache_s = 0.0
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

            def step():
                with autocast():
                    txt = encode_text(model, tokens).float()
                    t, tp, tn = txt.split(args.batch)
                    loss = loss_fn(cached, t, tp, tn, model.logit_scale.exp())
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
        opt = torch.optim.AdamW(params, lr=1e-5)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        flops = count_flops(step)
        seconds = timed(step, args.steps, args.warmup, device)
        peak_mem = (torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda"
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        runs[variant] = dict(seconds=seconds, flops=flops, mem=peak_mem, cache_s=cache_s)
        del model, opt

    peak, peak_source = peak_flops(device, precision)
    print(f"model={args.model} batch={args.batch} device={device} precision={precision} "
          f"torch={torch.__version__} host={platform.node()} threads={torch.get_num_threads()}")
    print(f"peak FLOP/s reference: {peak / 1e12:.2f} TFLOP/s ({peak_source})")
    print(f"{'step':8} {'samples/s':>10} {'step ms':>9} {'GFLOP/step':>11} {'MFU':>7} {'peak MiB':>9}")
    for name, r in runs.items():
        mfu = r["flops"] / r["seconds"] / peak
        print(f"{name:8} {args.batch / r['seconds']:10.1f} {r['seconds'] * 1e3:9.1f} "
              f"{r['flops'] / 1e9:11.2f} {mfu:7.1%} {r['mem']:9.0f}")
    ratio = runs["stock"]["seconds"] / runs["semclip"]["seconds"]
    print(f"semclip / stock samples/s: {ratio:.2f}x  (image-embedding cache filled once in "
          f"{runs['semclip']['cache_s'] * 1e3:.0f} ms, {args.batch} images)")
    print("CPU peak memory is the process's max RSS (cumulative)" if device.type == "cpu" else "")


if __name__ == "__main__":
    main()
