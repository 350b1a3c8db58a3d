"""``semclip train --dry-run``: check configs and their data without training.

For each config: validate the fields, resolve the model spec without downloading anything (which
weights it needs, and whether they are in the local cache), open the data (rows counted, columns
checked, a sample of image paths looked up, the split's sizes), and print a summary. The first
problem ends the check with a message naming the file and line. Only the model check imports
open_clip (and so torch); the data checks do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.data.triples_io import Triple, open_triples, split_rows
from engine.train.config import ConfigError, TrainConfig

IMAGE_SAMPLE = 32  # image paths looked up per data file: enough to catch a wrong root


class DryRunError(ValueError):
    """A config that would fail; the message names the field, or the file and line."""


@dataclass
class DryRunReport:
    """What one config would do: summary lines, and warnings that do not stop a run."""

    name: str
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join([f"{self.name}:"] + [f"  {line}" for line in self.lines]
                         + [f"  warning: {w}" for w in self.warnings])


def describe_weights(spec: str) -> str:
    """Which weights ``spec`` needs and whether they are at hand, resolved without a download;
    raises DryRunError when the spec cannot load at all (unknown tag or architecture, a
    missing file)."""
    from engine.model.loading import CHECKPOINT_SUFFIXES, ModelLoadError, check_spec, parse_spec

    try:
        arch, pretrained = parse_spec(spec)
        hub_tag = (pretrained is not None and Path(pretrained).suffix not in CHECKPOINT_SUFFIXES
                   and Path(arch).suffix not in CHECKPOINT_SUFFIXES)
        if not hub_tag:
            check_spec(spec)
            return f"{spec}: local (no download)"
    except (ModelLoadError, FileNotFoundError) as exc:
        raise DryRunError(f"model {spec!r}: {exc}") from None
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not cfg:
        raise DryRunError(f"model {spec!r}: {pretrained!r} is not a pretrained tag of {arch} "
                          f"(known: {open_clip.list_pretrained_tags_by_model(arch) or 'none'})")
    source = cfg.get("hf_hub", "").rstrip("/") or cfg.get("url", "")
    return (f"{spec}: needs open_clip's pretrained weights {pretrained} ({source}); "
            f"{'in the local cache' if _weights_cached(cfg) else 'not in the local cache: downloaded on first use (offline: pass ARCH:/path/to/weights.pt)'}")


def _weights_cached(cfg: dict) -> bool:
    hf_id = cfg.get("hf_hub", "").rstrip("/")
    if not hf_id:
        return False
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(hf_id, name), str)
               for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))


def _sample(triples: list[Triple]) -> list[Triple]:
    step = max(1, len(triples) // IMAGE_SAMPLE)
    return triples[::step][:IMAGE_SAMPLE]


def check_data(path: str, cfg: TrainConfig, report: DryRunReport, role: str) -> list[Triple]:
    """Open one data file (or shard set), count it and look up a sample of its images."""
    try:
        triples, images = open_triples(path, root=cfg.data_root, columns=cfg.columns)
    except (FileNotFoundError, ValueError) as exc:  # TriplesFormatError is a ValueError
        raise DryRunError(str(exc)) from None
    if not triples:
        raise DryRunError(f"{path}: no rows")
    sample = _sample(triples)
    refused = [t for t in sample if t.refused]
    found = [t for t in sample if not t.refused and
             (images.exists(t.image) if images else t.image.is_file())]
    report.lines.append(f"{role}: {path}: {len(triples)} rows; {len(found)} of {len(sample)} "
                        f"sampled images found")
    if not found:
        where = cfg.data_root or Path(path).parent
        first = sample[0]
        raise DryRunError(f"{path}:{first.line}: none of {len(sample)} sampled images exist "
                          f"(e.g. {first.image}); are the images under {where}? (set data_root)")
    for t in refused[:3]:
        report.warnings.append(f"{path}:{t.line}: {t.refused}: {t.image}")
    if len(found) + len(refused) < len(sample):
        missing = next(t for t in sample if t not in found and t not in refused)
        report.warnings.append(f"{len(sample) - len(found) - len(refused)} of {len(sample)} "
                               f"sampled images missing (e.g. {path}:{missing.line}: "
                               f"{missing.image}); such rows are skipped")
    return triples


def dry_run(cfg: TrainConfig) -> DryRunReport:
    """Check one config as described in the module docstring; raises DryRunError."""
    report = DryRunReport(cfg.name or cfg.model)
    try:
        cfg.validate(check_model=False)
    except ConfigError as exc:
        raise DryRunError(str(exc)) from None
    report.lines.append("config: valid")
    report.lines.append(f"model: {describe_weights(cfg.model)}")
    if cfg.zeroshot_dataset and not Path(cfg.zeroshot_dataset).is_dir():
        raise DryRunError(f"zeroshot_dataset: folder not found: {cfg.zeroshot_dataset}")
    if cfg.dataset == "shapes":
        train_rows = cfg.shapes_train_size
        report.lines.append(f"data: the shapes world (seed {cfg.shapes_seed}), {train_rows} "
                            f"scenes per epoch, {cfg.shapes_eval_size} held out")
    else:
        train_rows = len(check_data(cfg.dataset, cfg, report, "data"))
        if cfg.split:
            parts = split_rows(range(train_rows), cfg.split, cfg.split_seed)
            train_rows = len(parts[0])
            report.lines.append(f"split {cfg.split} (seed {cfg.split_seed}): {len(parts[0])} "
                                f"train, {len(parts[1])} val, {len(parts[2])} test rows")
            if not parts[1]:
                report.warnings.append("the split's val part is empty: no evaluation")
        if cfg.val_dataset:
            check_data(cfg.val_dataset, cfg, report, "val")
    global_batch = cfg.batch_size * cfg.accum_steps
    steps = train_rows // global_batch
    if steps == 0:
        raise DryRunError(f"{cfg.dataset}: {train_rows} training rows are fewer than one batch "
                          f"of {global_batch} (batch_size x accum_steps)")
    total = steps * cfg.epochs if not cfg.max_steps else min(cfg.max_steps, steps * cfg.epochs)
    report.lines.append(
        f"loss: alpha={cfg.alpha} beta={cfg.beta} gamma={cfg.gamma}, n_projections="
        f"{cfg.n_projections} ({'learnable' if cfg.learnable_projections else 'frozen'})")
    report.lines.append(
        f"optimisation: lr={cfg.lr:g}, batch {cfg.batch_size} x {cfg.accum_steps}, "
        f"{cfg.epochs} epochs = {total} steps on one process; image tower "
        f"{'locked' if cfg.lock_image else 'trained'}; retrieval top-"
        f"{'/'.join(map(str, cfg.retrieval_k))}")
    report.lines.append(f"output: {cfg.out_dir or Path(cfg.runs_root) / (cfg.run_name or '<new run folder>')}")
    return report


def dry_run_all(configs: list[TrainConfig], say=print) -> int:
    """Check every config, printing a summary each; 0 when all would start, 1 at the first
    problem (printed to stderr)."""
    import sys

    for cfg in configs:
        try:
            report = dry_run(cfg)
        except DryRunError as exc:
            print(f"error: {cfg.name or cfg.model}: {exc}", file=sys.stderr)
            return 1
        say(report.text())
    say(f"dry run: {len(configs)} config(s) would start; nothing was trained")
    return 0

