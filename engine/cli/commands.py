"""``semclip``: the headless command line over the engine (a thin client of its generators)."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from engine.cli.cache import add_cache_parser
from engine.data.triples_io import add_columns_argument
from engine.train.config import TrainConfig, fields_help

if TYPE_CHECKING:  # imported lazily at run time: `semclip --help` stays fast
    from engine.train.loop import TrainResult

EXIT_INTERRUPTED = 130  # the shell's code for a run ended by Ctrl-C


def _rank() -> int:
    """This process's rank under torchrun (0 in a plain run)."""
    return int(os.environ.get("RANK", "0"))


@contextmanager
def _ctrl_c_stops(stop: threading.Event, say: Callable[[str], None]):
    """First Ctrl-C: ask the run to stop after the current step and save a checkpoint.
    Second Ctrl-C: abort at once (KeyboardInterrupt), for a run that hangs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        say("stopping after this step and saving a checkpoint (Ctrl-C again to abort "
            "without saving)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_training(cfg: TrainConfig, quiet: bool = False,
                 stop: Optional[threading.Event] = None) -> tuple[int, Optional[TrainResult]]:
    """Drain the training generator with a tqdm bar; returns (exit code, its TrainResult or None).

    Exit code 0 when the run finished, 1 on an error, 130 when Ctrl-C stopped it (after the
    checkpoint was saved and the way to resume was printed). Only rank 0 prints under torchrun.
    """
    from engine.cli.console import Console, drain
    from engine.train.loop import train

    main_rank = _rank() == 0
    console = Console(label=cfg.name or cfg.model, quiet=quiet or not main_rank,
                      warnings=main_rank)  # warnings reach a --quiet user too
    stop = stop or threading.Event()
    with _ctrl_c_stops(stop, console.note):
        code, done = drain(train(cfg, stop=stop), console)
    if done is None:
        return code, None
    if done.stopped:
        result = done.result
        print(f"stopped at step {result.step}; checkpoint saved to {result.checkpoint}\n"
              f"resume with: semclip train --config {Path(result.out_dir) / 'config.json'} "
              f"--set resume={result.checkpoint}", file=sys.stderr)
        return EXIT_INTERRUPTED, done.result
    return 0, done.result


def cmd_train(args: argparse.Namespace) -> int:
    from engine.data.triples_io import parse_columns
    from engine.train.loop import TrainingError, check_out_dir
    from engine.train.presets import preset
    from engine.train.runs import resolve_run

    if bool(args.preset) == bool(args.config):
        print("give exactly one of --preset NAME or --config FILE", file=sys.stderr)
        return 2
    if args.only and not args.preset:
        print("error: --only picks runs of a --preset", file=sys.stderr)
        return 2
    try:
        configs = preset(args.preset) if args.preset else [TrainConfig.from_json(args.config)]
        if args.only:
            configs = only_runs(configs, args.only)
        configs = [c.with_overrides(args.set or []) for c in configs]
        if args.columns:
            configs = [replace(c, columns={**c.columns, **parse_columns(args.columns)})
                       for c in configs]
        if args.out:
            configs = [replace(c, out_dir=str(Path(args.out) / (c.name or f"run{i}")))
                       for i, c in enumerate(configs)]
        if args.overwrite:
            configs = [replace(c, overwrite=True) for c in configs]
        if args.dry_run:
            from engine.train.dryrun import dry_run_all
            return dry_run_all(configs)
        for c in configs:  # every run of a preset, before the first one starts
            check_out_dir(resolve_run(c.validate()))
    except (ValueError, FileNotFoundError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _train_and_compare(configs, args)
    except KeyboardInterrupt:  # the second Ctrl-C
        print("aborted: nothing was saved since the last checkpoint", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _held_out_benchmark(configs: list[TrainConfig], args: argparse.Namespace
                        ) -> Optional[tuple[str, str, dict, str]]:
    """What to test a preset's models on after training: (benchmark, data, options, title) for
    the shapes world's test split, or a triples training set's sibling ``test.csv`` (as
    ``semclip prepare`` writes them) scored by ``captions_retrieval``; None otherwise."""
    if all(c.dataset == "shapes" for c in configs):
        return ("shapes", str(configs[0].shapes_seed), {"n": args.test_size, "use_cache": False},
                f"shapes world, held-out test split ({args.test_size} scenes)")
    datasets = {c.dataset for c in configs}
    if len(datasets) == 1 and configs[0].dataset != "shapes":
        test = Path(configs[0].dataset).with_name("test.csv")
        if test.is_file() and test != Path(configs[0].dataset):
            return "captions_retrieval", str(test), {}, f"held-out split {test}"
    return None


def _train_and_compare(configs: list[TrainConfig], args: argparse.Namespace) -> int:
    """Train each config in turn, then print one held-out test table (shapes world, or the
    test split beside the training triples)."""
    results: dict[str, TrainResult] = {}
    stop = threading.Event()
    for cfg in configs:
        code, done = run_training(cfg, quiet=args.quiet, stop=stop)
        if code:
            return code
        results[cfg.name or cfg.model] = done
    held_out = _held_out_benchmark(configs, args)
    if held_out is None:
        return 0
    benchmark, data, options, title = held_out
    import torch.distributed as dist
    distributed = dist.is_available() and dist.is_initialized()
    if _rank() == 0:  # one process evaluates and prints; the others wait for it
        from engine.cli.eval import format_table
        from engine.eval.run import run_evaluation, save_results
        from engine.model.loading import load_model

        models = [load_model(r.checkpoint) for r in results.values()]
        table = run_evaluation(benchmark, data, configs[0].data_root, models, **options)
        print(f"\n{title}: {' vs '.join(results)}")
        print(format_table(table))
        if args.json:
            save_results(args.json, table)
    if distributed:
        dist.barrier()
    return 0


def cmd_shapes(args: argparse.Namespace) -> int:
    from engine.cli.console import Console, drain
    from engine.data.shapes.world import ShapesWorld, write_shapes

    world = ShapesWorld(seed=args.seed, image_size=args.size)
    job = write_shapes(args.out, args.n, split=args.split, world=world)
    code, done = drain(job, Console(bar_desc=f"shapes {args.split}"))
    if done is not None and done.result is not None:
        print(f"wrote {done.result.n} scenes and {done.result.csv}")
    return code


def cmd_export(args: argparse.Namespace) -> int:
    from engine.model.export import delta_summary, export_delta
    from engine.model.loading import ModelLoadError
    from engine.model.openclip_export import export_open_clip, open_clip_summary

    export, summary = ((export_open_clip, open_clip_summary) if args.format == "open_clip"
                       else (export_delta, delta_summary))
    try:
        path = export(args.checkpoint, args.out)
    except (ValueError, FileNotFoundError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the output cannot be written: a file in the way, no space, no rights
        print(f"error: cannot write {args.out}: {exc.strerror or exc}"
              f"{f' ({exc.filename})' if exc.filename else ''}", file=sys.stderr)
        return 1
    print(summary(path))
    return 0


def cmd_shards(args: argparse.Namespace) -> int:
    from engine.data.shards import shard_pattern, write_shards
    from engine.data.triples_io import parse_columns, read_triples

    try:
        columns = parse_columns(args.columns) if args.columns else None
        paths = write_shards(args.source, args.out, args.shard_size, root=args.root,
                             columns=columns)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    samples = len(read_triples(args.source, root=args.root, columns=columns))
    print(f"wrote {samples} samples in {len(paths)} shard(s): {shard_pattern(paths)}")
    return 0


# Sub-commands whose modules import torch and open_clip (seconds): their parsers are built only
# when they run, so `semclip --help` and `semclip train --help` answer at once.
LAZY_COMMANDS = {
    "eval": ("engine.cli.eval", "add_eval_parser",
             "evaluate models on a benchmark (CLIP vs SemCLIP table)"),
    "generate": ("engine.cli.generate", "add_generate_parser",
                 "add paraphrases and negations to a captions file (triples)"),
    "prepare": ("engine.cli.prepare", "add_prepare_parser",
                "turn a published data set (ccneg, flickr8k, captions, coco) into triples"),
}


def only_runs(configs: list[TrainConfig], names: str) -> list[TrainConfig]:
    """The runs of a preset named in ``names`` (comma-separated), in the preset's order;
    ValueError for a name the preset lacks."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = sorted(set(wanted) - {c.name for c in configs})
    if unknown or not wanted:
        raise ValueError(f"--only: no run named {', '.join(unknown) or repr(names)} in this "
                         f"preset (its runs: {', '.join(c.name for c in configs)})")
    return [c for c in configs if c.name in wanted]


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``semclip`` parser. ``command`` names the sub-command about to run: the other lazy
    sub-commands get a one-line stand-in for the overview (None builds every one in full)."""
    parser = argparse.ArgumentParser(prog="semclip", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune CLIP / SemCLIP",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="config fields (keys of the --config JSON; override with --set "
                              "KEY=VALUE):\n" + fields_help())
    p.add_argument("--preset", help="named recipe: shapes-demo (the app's three shapes models), "
                                    "photo-demo (the photo pair), paper-ccneg, paper-sugarcrepe, "
                                    "paper-ccneg-ablations, paper-sugarcrepe-ablations")
    p.add_argument("--only", metavar="NAME[,NAME]",
                   help="with --preset: train only these of its runs (e.g. semclip)")
    p.add_argument("--config", help="training config JSON (its fields are listed below)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--out", help="output folder (one sub-folder per run)")
    p.add_argument("--test-size", type=int, default=500, help="held-out scenes for the final table")
    p.add_argument("--json", help="write the final table as an evaluation results file")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an output folder that holds an earlier run")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar or info lines (warnings and errors still print)")
    add_columns_argument(p)  # the config field columns
    p.add_argument("--dry-run", action="store_true",
                   help="check each config, its model spec (no download) and its data, print "
                        "a summary and exit: 0 when all would start, 1 naming the problem")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("shapes", help="write shapes-world scenes and a triples CSV")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--split", default="train", choices=["train", "val", "test"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="image size in pixels")
    p.set_defaults(func=cmd_shapes)

    p = sub.add_parser("export", help="write a checkpoint as a small delta over its base model, "
                                      "or as a folder stock open_clip loads")
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint written by semclip train (open_clip format: any model spec)")
    p.add_argument("--out", required=True, help="delta: file to write (.pt, with a .json "
                                                "sidecar); open_clip: folder to write")
    p.add_argument("--format", choices=["delta", "open_clip"], default="delta",
                   help="delta (default): the weights that differ from the base, for shipping "
                        "demo models; open_clip: open_clip_config.json + "
                        "open_clip_model.safetensors, loaded by "
                        "open_clip.create_model_and_transforms('local-dir:OUT')")
    p.set_defaults(func=cmd_export)
    add_cache_parser(sub)

    p = sub.add_parser("shards", help="write a triples file as webdataset tar shards",
                       description="Write a triples file as webdataset tar shards (open_clip's "
                                   "layout: {key}.png/.jpg, {key}.txt, {key}.json); train on them "
                                   "with --set dataset='DIR/train-{000000..NNNNNN}.tar'.")
    p.add_argument("--in", dest="source", required=True, metavar="FILE",
                   help="triples CSV/TSV/JSONL")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for train-NNNNNN.tar")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    p.add_argument("--root", help="image root (default: the file's folder)")
    add_columns_argument(p)
    p.set_defaults(func=cmd_shards)

    for name, (module, adder, summary) in LAZY_COMMANDS.items():
        if command is not None and command != name:
            sub.add_parser(name, help=summary, add_help=False)
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        getattr(mod, adder)(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    args = build_parser(command).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
