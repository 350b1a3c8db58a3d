"""Stock open_clip fine-tuning step vs the SemCLIP step, same model, batch and precision.

    python bench/train_step.py                                   # CPU: semclip-small, batch 128
    python bench/train_step.py --model semclip-shapes-tiny       # the tiny shapes config
    python bench/train_step.py --model ViT-B-32 --batch 256      # GPU (random weights)
    python bench/train_step.py --model ViT-B-32 --batch 256 --max-buckets 1 3 6 \
        --fused-adamw --compile default --json out.json          # variants in one run, figures as JSON

The CPU default, ``semclip-small``, is the honest ViT-B-32 stand-in for a 2-core CPU: the same
shape of work (224 px images in 32 px patches, i.e. 49 patch tokens; a causal text tower over
the 77-token context pooled at the end token; the same open_clip classes) scaled down from
width 768/512 and 12 layers to width 256 and 6 layers per tower, so a step takes about a second
rather than a minute. The tiny config (64 px, 32-token context, width 96) stays runnable with
``--model semclip-shapes-tiny``.

Stock step: image tower locked (``lock_image_tower``) but still run every step, one caption per
image through ``model.encode_text`` at the full context, open_clip's ``ClipLoss``.
SemCLIP step: three captions per image (t, t+, t-) in one text call (exact truncation, split
into length buckets on CPU: ``engine.model.encoding.encode_text``; ``--max-buckets 1`` truncates to
the longest caption only), the locked image tower's embeddings taken from the run's cache
(filled once, reported separately), ``SemClipLoss``.

Several ``--max-buckets`` values give one SemCLIP variant each (``semclip-b1``, ``semclip-b3``,
...), all in the same run. ``--fused-adamw`` uses torch's fused AdamW kernel for every variant;
``--compile MODE`` wraps each variant's forward in ``torch.compile`` (``reduce-overhead``: CUDA
graphs too), compiled during the warm-up steps.

The steps are timed *interleaved* (stock, SemCLIP, stock, ...) and each is reported as its
median step time, so load from other processes on a shared machine hits all alike. Prints
samples/s (images per second) of each, its ratio to stock, step time (median, min-max), the
memory it adds and model FLOP utilisation (FLOPs counted by torch's FlopCounterMode on the
uncompiled step; peak = the GPU's datasheet bf16/fp32 dense peak, stated in the output, or on
CPU the best of several fp32 matmul timings here). ``--json PATH`` writes the same figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import resource
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import open_clip
import torch
from open_clip.loss import ClipLoss
from torch.utils.flop_counter import FlopCounterMode

from engine.data.shapes.world import ShapesWorld
from engine.model.encoding import encode_text
from engine.model.loading import load_model
from engine.model.losses import SemClipLoss

# Datasheet dense (no sparsity) peaks in TFLOP/s; the first key found in the device name wins,
# so the PCIe H100 (lower clocks, 114 SMs) comes before the SXM one. H200 = H100 SXM's chip.
GPU_PEAK_TFLOPS = {"H100 PCIe": {"bf16": 756.0, "fp32": 51.0},
                   "H100": {"bf16": 989.4, "fp32": 66.9}, "H200": {"bf16": 989.4, "fp32": 66.9},
                   "A100": {"bf16": 312.0, "fp32": 19.5}}


def peak_flops(device: torch.device, precision: str) -> tuple[float, str]:
    """The FLOP/s that MFU is measured against, and where the number comes from."""
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
    items = [world.item("train", i, render=False) for i in range(n)]
    return ([it["caption"] for it in items], [it["paraphrase"] for it in items],
            [it["negation"] for it in items])


def count_flops(step: Callable[[], None]) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


@dataclass
class Variant:
    """One step to time: ``stock`` or a SemCLIP step with its own bucket limit."""

    name: str
    max_buckets: Optional[int] = None  # SemCLIP only; None: the engine's default for the device
    times: list[float] = field(default_factory=list)
    flops: int = 0
    cache_s: float = 0.0
    mem_mib: float = 0.0


def variants_for(max_buckets: Optional[Sequence[int]]) -> list[Variant]:
    """Stock first, then one SemCLIP variant per bucket limit (one with the engine's default
    when none is given)."""
    if not max_buckets:
        return [Variant("stock"), Variant("semclip")]
    return [Variant("stock")] + [Variant(f"semclip-b{k}", k) for k in dict.fromkeys(max_buckets)]


def build_step(variant: Variant, args, device: torch.device, autocast, texts
               ) -> tuple[Callable[[], None], Callable[[Callable], None]]:
    """A closure running one optimiser step of ``variant`` (filling ``variant.cache_s``), and
    a function that swaps the step's forward for a wrapped one (``torch.compile``)."""
    caps, paras, negs = texts
    loaded = load_model(args.model, device=device, seed=0)
    model = loaded.model.train()
    model.lock_image_tower()
    size = model.visual.image_size
    images = torch.randn(args.batch, 3, size[0], size[1], device=device,
                         generator=torch.Generator(device).manual_seed(0))
    params = [p for p in model.parameters() if p.requires_grad]
    if variant.name == "stock":
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
        variant.cache_s = time.perf_counter() - start

        def forward() -> torch.Tensor:
            txt = encode_text(model, tokens, max_buckets=variant.max_buckets).float()
            t, tp, tn = txt.split(args.batch)
            return loss_fn(cached, t, tp, tn, model.logit_scale.exp())
    opt = torch.optim.AdamW(params, lr=1e-5, fused=True if args.fused_adamw else None)
    run_forward = [forward]

    def step() -> None:
        with autocast():
            loss = run_forward[0]()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def wrap(wrapper: Callable) -> None:
        run_forward[0] = wrapper(forward)
    return step, wrap


def timed_once(step: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def memory_mib(device: torch.device, peak: bool = True) -> float:
    """GPU: peak (or current) memory allocated by torch; CPU: the process's max RSS so far."""
    if device.type == "cuda":
        used = torch.cuda.max_memory_allocated(device) if peak else torch.cuda.memory_allocated(device)
        return used / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def figures(variants: Sequence[Variant], batch: int, peak: float) -> dict[str, dict]:
    """Per variant: samples/s from the median step time, the step time's median, min and max
    (ms), GFLOP per step, MFU (NaN when the peak is unknown) and the speed-up over stock."""
    out: dict[str, dict] = {}
    for v in variants:
        median = statistics.median(v.times)
        out[v.name] = {"max_buckets": v.max_buckets, "samples_per_s": batch / median,
                       "step_ms": median * 1e3, "step_ms_min": min(v.times) * 1e3,
                       "step_ms_max": max(v.times) * 1e3, "gflop_per_step": v.flops / 1e9,
                       "mfu": v.flops / median / peak if peak > 0 else float("nan"),
                       "memory_mib": v.mem_mib, "cache_fill_ms": v.cache_s * 1e3}
    stock = out.get("stock")
    for row in out.values():
        row["speedup_vs_stock"] = (row["samples_per_s"] / stock["samples_per_s"]
                                   if stock else float("nan"))
    return out


def best_max_buckets(rows: dict[str, dict]) -> Optional[int]:
    """The bucket limit of the fastest SemCLIP variant; on a tie, the fewer buckets."""
    timed = [(-r["samples_per_s"], r["max_buckets"]) for r in rows.values()
             if r["max_buckets"] is not None and not math.isnan(r["samples_per_s"])]
    return min(timed)[1] if timed else None


def _json_safe(value):
    """NaN and inf become null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="semclip-small")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--max-buckets", type=int, nargs="+", default=None,
                        help="length buckets of the SemCLIP text call, one variant per value "
                             "(default: engine's choice for the device; 1 = truncate to the "
                             "longest caption only)")
    parser.add_argument("--fused-adamw", action="store_true", help="torch's fused AdamW kernel")
    parser.add_argument("--compile", default="off",
                        choices=["off", "default", "reduce-overhead", "max-autotune"],
                        help="torch.compile each variant's forward with this mode")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" else nullcontext

    texts = captions(args.batch)
    variants = variants_for(args.max_buckets)
    steps: dict[str, Callable[[], None]] = {}
    for v in variants:  # each variant warmed up alone, so its memory is its own
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        before = memory_mib(device, peak=False) if device.type == "cuda" else 0.0
        step, wrap = build_step(v, args, device, autocast, texts)
        v.flops = count_flops(step)  # uncompiled: FlopCounterMode cannot see into compiled code
        if args.compile != "off":
            wrap(lambda f: torch.compile(f, mode=None if args.compile == "default" else args.compile))
        for _ in range(args.warmup):
            step()
        steps[v.name] = step
        v.mem_mib = memory_mib(device) - before
    for _ in range(args.steps):  # interleaved: a burst of outside load slows all alike
        for v in variants:
            v.times.append(timed_once(steps[v.name], device))

    peak, peak_source = peak_flops(device, precision)
    rows = figures(variants, args.batch, peak)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"model={args.model} batch={args.batch} device={device} ({device_name}) "
          f"precision={precision} torch={torch.__version__} host={platform.node()} "
          f"threads={torch.get_num_threads()} steps={args.steps} (interleaved) "
          f"fused_adamw={args.fused_adamw} compile={args.compile}")
    print(f"peak FLOP/s reference for MFU: {peak / 1e12:.2f} TFLOP/s ({peak_source})")
    print(f"{'step':12} {'samples/s':>10} {'x stock':>8} {'step ms':>9} {'(min-max)':>15} "
          f"{'GFLOP/step':>11} {'MFU':>7} {'+MiB':>8}")
    for name, r in rows.items():
        spread = f"({r['step_ms_min']:.0f}-{r['step_ms_max']:.0f})"
        print(f"{name:12} {r['samples_per_s']:10.1f} {r['speedup_vs_stock']:8.2f} "
              f"{r['step_ms']:9.1f} {spread:>15} {r['gflop_per_step']:11.2f} {r['mfu']:7.1%} "
              f"{r['memory_mib']:8.0f}")
    best = best_max_buckets(rows)
    semclip = [v for v in variants if v.name != "stock"]
    print(f"image-embedding cache filled once in {semclip[0].cache_s * 1e3:.0f} ms "
          f"({args.batch} images); fastest bucket limit: {best if best is not None else 'auto'}")
    if device.type == "cpu":
        print("CPU memory is the process's max RSS so far (variants measured in turn; later "
              "ones include the earlier models still held)")
    result = {
        "model": args.model, "batch": args.batch, "device": str(device),
        "device_name": device_name, "precision": precision, "steps": args.steps,
        "warmup": args.warmup, "fused_adamw": args.fused_adamw, "compile": args.compile,
        "torch": torch.__version__, "open_clip": open_clip.__version__,
        "host": platform.node(), "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/train_step.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "peak_flops": peak, "peak_source": peak_source, "variants": rows,
        "best_max_buckets": best,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_json_safe(result), indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
