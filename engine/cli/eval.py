"""``semclip eval``: run a benchmark on one or more models and print one comparison table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from engine.data.triples_io import (SPLIT_PARTS, SplitPart, add_columns_argument, parse_columns,
                                    parse_split)

# torch-free at import, so `semclip eval --help` answers at once; engine.eval.run (torch,
# open_clip) is imported when an evaluation runs
from engine.eval.benchmarks import BENCHMARKS, CCNEG_EVAL_SIZE
from engine.eval.clip_benchmark_output import DEFAULT_TEMPLATE, TEMPLATE_FIELDS
from engine.events import EvalResult


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``eval`` sub-command on a ``subparsers`` object of argparse."""
    p = subparsers.add_parser(
        "eval", help="evaluate models on a benchmark (CLIP vs SemCLIP table)",
        description="Evaluate one or more models on a benchmark. With two models the table has "
                    "a diff column (second minus first).")
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    p.add_argument("--data", help="benchmark file or folder (shapes: a world seed, default 0; "
                                  "zeroshot: a folder with one sub-folder per class)")
    p.add_argument("--images", help="image folder (SugarCrepe++/NegBench: COCO val2017; CC-Neg, "
                                    "triples: root of relative image paths)")
    p.add_argument("--model", action="append", required=True, metavar="SPEC", dest="models",
                   help="checkpoint file, project config name, or ARCH:PRETRAINED_TAG; repeat "
                        "to compare")
    p.add_argument("--json", metavar="OUT", help="write every number to this results file")
    p.add_argument("--format", choices=["semclip", "clip_benchmark"], default="semclip",
                   help="semclip (default): the table, plus --json; clip_benchmark: also one "
                        "CLIP_benchmark JSON per model (named by --output), which "
                        "'clip_benchmark build' aggregates")
    p.add_argument("--output", metavar="TEMPLATE",
                   help=f"clip_benchmark: file name template with the fields "
                        f"{', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)} "
                        f"(default {DEFAULT_TEMPLATE})")
    p.add_argument("--skip-existing", action="store_true",
                   help="skip a model whose clip_benchmark file (or the --json file) exists")
    add_columns_argument(p, "triples: the file's")
    p.add_argument("--retrieval-k", default="1,5", metavar="K,...",
                   help="triples: depths of the text-to-image top-k retrieval, e.g. 1,3,5 (the "
                        "paper's; default 1,5)")
    p.add_argument("--split", metavar="TRAIN,VAL,TEST",
                   help="triples: score one part of this split, e.g. 0.8,0.1,0.1 (a training "
                        "config's split)")
    p.add_argument("--split-seed", type=int, default=42, help="triples: the split's seed")
    p.add_argument("--part", choices=SPLIT_PARTS, default="test",
                   help="triples with --split: which part (default test: the rows training "
                        "held out)")
    p.add_argument("--n", type=int, default=500, help="shapes: scenes of the test split")
    p.add_argument("--eval-size", type=int, default=CCNEG_EVAL_SIZE,
                   help="CC-Neg: size of the evaluation split (the last items)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--text-batch-size", type=int, default=256, help="texts per forward pass")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    p.add_argument("--workers", type=int, default=4, help="image decoding threads")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the "
                                                           "embedding cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_eval)
    return p


def format_table(results: dict) -> str:
    """Metrics as rows, models as columns, plus ``diff`` (second minus first) for two models."""
    from engine.eval.run import metric_table, model_labels

    labels = model_labels(results)
    table = metric_table(results)
    two = len(labels) == 2
    lines = [["metric"] + labels + (["diff"] if two else [])]
    for metric, values in table.items():
        cells = [values[label] for label in labels]
        line = [metric] + [f"{v:.4f}" if v is not None else "-" for v in cells]
        if two:
            line.append(f"{cells[1] - cells[0]:+.4f}" if None not in cells else "-")
        lines.append(line)
    count_keys = ("rows", "evaluated", "missing_images", "unreadable_images")
    for key in count_keys:
        cells = [str(m["counts"].get(key, "-")) for m in results["models"]]
        lines.append([key] + cells + ([""] if two else []))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if i == 0 or i == len(table):
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def run_eval(args: argparse.Namespace) -> int:
    """Load the models, run the benchmark with progress bars, print the table; exit code."""
    from engine.cli.console import Console, drain
    from engine.eval.run import evaluate, save_results
    from engine.model.loading import ModelLoadError, load_model

    quiet = getattr(args, "quiet", False)
    try:
        planned = _planned_outputs(args)
        columns = parse_columns(args.columns) if getattr(args, "columns", None) else None
        retrieval_k = _retrieval_k(getattr(args, "retrieval_k", "1,5"))
        split = getattr(args, "split", None)
        split_part = split and SplitPart(split, args.split_seed, args.part)
        if split:
            parse_split(split)  # a bad spec is a usage error, before any model loads
    except (ValueError, ModelLoadError) as exc:  # a bad template, or a spec's bad sidecar
        print(f"error: {exc}", file=sys.stderr)
        return 2
    specs = list(args.models)
    if getattr(args, "skip_existing", False):
        json_path = getattr(args, "json", None)
        done = [i for i, path in enumerate(planned or []) if path.exists()]
        if planned is None and json_path and Path(json_path).exists():
            done = list(range(len(specs)))
        for i in done:
            print(f"skip {specs[i]}: {planned[i] if planned else json_path} exists already")
        specs = [spec for i, spec in enumerate(specs) if i not in done]
        planned = planned and [path for i, path in enumerate(planned) if i not in done]
        if not specs:
            return 0
    try:
        models = [load_model(spec, device=getattr(args, "device", "cpu")) for spec in specs]
    except (ModelLoadError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    console = Console(label=specs[0], quiet=quiet, info_stream=sys.stderr, info_prefix="info: ",
                      leave=False)
    events = evaluate(args.benchmark, args.data, args.images, models,
                      batch_size=getattr(args, "batch_size", 64),
                      text_batch_size=getattr(args, "text_batch_size", 256),
                      n=getattr(args, "n", 500),
                      eval_size=getattr(args, "eval_size", CCNEG_EVAL_SIZE),
                      use_cache=not getattr(args, "no_cache", False),
                      workers=getattr(args, "workers", 4), columns=columns,
                      retrieval_k=retrieval_k, split_part=split_part)

    def next_model(event) -> bool:  # a model is scored: the bars that follow are the next one's
        if isinstance(event, EvalResult):
            console.label = specs[min(event.step + 1, len(specs) - 1)]
            return True
        return False

    code, done = drain(events, console, handle=next_model)
    if done is not None and done.stopped:
        print("stopped before the end", file=sys.stderr)
        return 1
    results = done.result if done is not None else None
    if results is None:
        return 1
    print(f"\n{results['benchmark']} ({results['data']}):")
    print(format_table(results))
    if getattr(args, "json", None):
        path = save_results(args.json, results)
        print(f"results written to {path}")
    if planned is not None:
        from engine.eval.clip_benchmark_output import write_clip_benchmark

        for path in write_clip_benchmark(results, planned, args.data):
            print(f"CLIP_benchmark results written to {path}")
    return 0


def _retrieval_k(text: str) -> list[int]:
    """``"1,3,5"`` as depths; ValueError naming the option otherwise."""
    try:
        depths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        depths = []
    if not depths or min(depths) < 1:
        raise ValueError(f"--retrieval-k expects whole numbers of 1 or more like 1,3,5, got {text!r}")
    return depths


def _planned_outputs(args: argparse.Namespace) -> Optional[list[Path]]:
    """The CLIP_benchmark file of each model (None for ``--format semclip``), checked before any
    model loads: a bad template must not cost an evaluation."""
    from engine.eval.clip_benchmark_output import output_paths

    output = getattr(args, "output", None)
    if getattr(args, "format", "semclip") != "clip_benchmark":
        if output is not None:
            raise ValueError("--output is the file name template of --format clip_benchmark "
                             "(the semclip results file is --json)")
        return None
    return output_paths(output or DEFAULT_TEMPLATE, args.benchmark, getattr(args, "data", None),
                        list(args.models))
