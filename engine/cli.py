"""``semclip``: the headless command line over the engine (a thin client of its generators)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from .config import TrainConfig
from .events import CheckpointSaved, Done, Error, EvalResult, Log, StepMetrics


def run_training(cfg: TrainConfig, quiet: bool = False) -> Optional[dict]:
    """Drain the training generator with a tqdm bar; returns Done.result or None on error."""
    from tqdm import tqdm

    from .train import train

    bar = None
    result = None
    for event in train(cfg):
        if isinstance(event, StepMetrics):
            if bar is None:
                bar = tqdm(total=event.total_steps, desc=cfg.name or cfg.model, disable=quiet,
                           initial=event.step - 1)
            bar.update(1)
            bar.set_postfix(loss=f"{event.losses['total']:.3f}", lr=f"{event.lr:.1e}",
                            sps=f"{event.samples_per_s:.0f}")
        elif isinstance(event, EvalResult):
            text = " ".join(f"{k}={v:.3f}" for k, v in event.metrics.items())
            (bar.write if bar else print)(f"[epoch {event.epoch}] {event.split}: {text}")
        elif isinstance(event, Log):
            (bar.write if bar else print)(f"{event.level}: {event.message}")
        elif isinstance(event, CheckpointSaved) and not quiet:
            (bar.write if bar else print)(f"checkpoint: {event.path} (step {event.step})")
        elif isinstance(event, Error):
            if bar:
                bar.close()
            print(f"error ({event.kind}): {event.message}", file=sys.stderr)
            return None
        elif isinstance(event, Done):
            result = event.result
    if bar:
        bar.close()
    return result


def cmd_train(args: argparse.Namespace) -> int:
    from .presets import preset

    if bool(args.preset) == bool(args.config):
        print("give exactly one of --preset NAME or --config FILE", file=sys.stderr)
        return 2
    try:
        configs = preset(args.preset) if args.preset else [TrainConfig.from_json(args.config)]
        configs = [c.with_overrides(args.set or []) for c in configs]
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        configs = [replace(c, out_dir=str(Path(args.out) / (c.name or f"run{i}")))
                   for i, c in enumerate(configs)]
    results: dict[str, dict] = {}
    for cfg in configs:
        done = run_training(cfg, quiet=args.quiet)
        if done is None:
            return 1
        results[cfg.name or cfg.model] = done
    if all(c.dataset == "shapes" for c in configs):
        from .eval_cli import format_table
        from .evaluate import run_evaluation, save_results
        from .models import load_model

        models = [load_model(r["checkpoint"]) for r in results.values()]
        table = run_evaluation("shapes", str(configs[0].shapes_seed), None, models,
                               n=args.test_size, use_cache=False)
        print(f"\nshapes world, held-out test split ({args.test_size} scenes): "
              f"{' vs '.join(results)}")
        print(format_table(table))
        if args.json:
            save_results(args.json, table)
    return 0


def cmd_shapes(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .shapes import ShapesWorld, write_shapes

    world = ShapesWorld(seed=args.seed, image_size=args.size)
    with tqdm(total=args.n, desc=f"shapes {args.split}") as bar:
        for event in write_shapes(args.out, args.n, split=args.split, world=world):
            if isinstance(event, Done):
                print(f"wrote {event.result.get('n', args.n)} scenes and {event.result.get('csv')}")
            elif isinstance(event, Error):
                print(f"error: {event.message}", file=sys.stderr)
                return 1
            elif hasattr(event, "done"):
                bar.n = event.done
                bar.refresh()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import delta_summary, export_delta

    try:
        path = export_delta(args.checkpoint, args.out)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(delta_summary(path))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semclip", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune CLIP / SemCLIP")
    p.add_argument("--preset", help="named recipe, e.g. shapes-demo (trains CLIP and SemCLIP)")
    p.add_argument("--config", help="training config JSON (see engine/config.py)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--out", help="output folder (one sub-folder per run)")
    p.add_argument("--test-size", type=int, default=500, help="held-out scenes for the final table")
    p.add_argument("--json", help="write the final table as an evaluation results file")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("shapes", help="write shapes-world scenes and a triples CSV")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--split", default="train", choices=["train", "val", "test"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="image size in pixels")
    p.set_defaults(func=cmd_shapes)

    p = sub.add_parser("export", help="write a checkpoint as a small delta over its base model")
    p.add_argument("--checkpoint", required=True, help="checkpoint written by semclip train")
    p.add_argument("--out", required=True, help="delta file to write (.pt, with a .json sidecar)")
    p.set_defaults(func=cmd_export)

    for module, adder in (("eval_cli", "add_eval_parser"), ("captions.cli", "add_generate_parser")):
        try:
            mod = __import__(f"engine.{module}", fromlist=[adder])
        except ImportError:
            continue
        getattr(mod, adder)(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
