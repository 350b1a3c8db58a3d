"""What the Train tab knows, as plain functions and data (no Qt): the form's values as a
:class:`engine.train.config.TrainConfig`, the config that resumes a checkpoint, a run's curves from its
``metrics.jsonl``, the curves and clock of a live run, free output folders."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from engine.events import EvalResult, StepMetrics
from engine.model.loading import ModelLoadError, read_sidecar
from engine.train.config import TrainConfig
from engine.train.loop import RUN_FILES
from engine.train.presets import preset

# curve name -> StepMetrics.losses key (or "lr")
CURVE_KEYS = {"total": "total", "contrastive": "contrastive_loss",
              "paraphrase": "paraphrase_loss", "negation": "negation_loss",
              "claims": "claim_loss", "lr": "lr"}
CURVE_COLOURS = {"total": (20, 20, 20), "contrastive": (40, 110, 220),
                 "paraphrase": (30, 150, 60), "negation": (210, 40, 40),
                 "claims": (230, 140, 20), "lr": (150, 80, 190)}
OPTIONAL_CURVES = ("claims",)  # terms only some losses have (delta > 0): drawn when present
ZEROSHOT_COLOURS = {"plain": (30, 150, 60), "negated": (210, 40, 40)}  # zeroshot EvalResult keys
METRIC_COLUMNS = {"ono_accuracy": "O>N", "caption_top1": "cap@1", "caption_top5": "cap@5",
                  "paraphrase_top1": "para@1", "paraphrase_top5": "para@5"}  # EvalResult keys
TRIPLES_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")

# A from-scratch tiny model on a small shapes world: about 10 s on two CPU cores.
TINY_DEMO = TrainConfig(name="tiny-demo", model="semclip-shapes-tiny", lock_image=False,
                        shapes_train_size=512, shapes_eval_size=64, batch_size=32, epochs=2,
                        lr=1e-3, warmup_steps=5, out_dir="runs/tiny-demo")


def panel_presets() -> dict[str, TrainConfig]:
    """The preset drop-down: display name -> the config it fills the form with."""
    clip, semclip, clip_same_data = preset("shapes-demo")
    return {"tiny demo (fast)": replace(TINY_DEMO), "shapes-demo: CLIP baseline": clip,
            "shapes-demo: SemCLIP": semclip,
            "shapes-demo: CLIP on SemCLIP's data": clip_same_data}


def ui_threads(cpu_count: Optional[int] = None) -> int:
    """Torch threads for a run started from the app: every core but one, which the UI keeps."""
    return max(1, (cpu_count or os.cpu_count() or 1) - 1)


def config_from_form(values: Mapping[str, Any], base: Optional[TrainConfig] = None,
                     cpu_count: Optional[int] = None) -> TrainConfig:
    """The TrainConfig for the form's ``values`` (keys: TrainConfig field names) over ``base``.

    Raises ValueError with a message for the user when a value cannot work. ``threads`` is set
    (unless ``base`` fixes it) to leave one core to the GUI: with every core busy in torch, the
    event loop stutters.
    """
    base = base or TrainConfig()
    unknown = sorted(set(values) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"unknown training config keys: {unknown}")
    cfg = replace(base, **values)
    cfg.model, cfg.out_dir, cfg.dataset = cfg.model.strip(), cfg.out_dir.strip(), cfg.dataset.strip()
    if not cfg.model:
        raise ValueError("choose a model: a project config, ARCH:PRETRAINED_TAG or a checkpoint")
    if not cfg.dataset:
        raise ValueError("choose a triples file (CSV or JSONL), or the shapes world")
    if cfg.dataset != "shapes":
        path = Path(cfg.dataset)
        if not path.is_file():
            raise ValueError(f"triples file not found: {path}")
        if path.suffix.lower() not in TRIPLES_SUFFIXES:
            raise ValueError(f"{path.name}: a triples file must be .csv, .tsv or .jsonl")
    if min(cfg.alpha, cfg.beta, cfg.gamma) < 0 or cfg.alpha + cfg.beta + cfg.gamma <= 0:
        raise ValueError("loss weights α, β, γ must be ≥ 0 and not all 0")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise ValueError(f"learning rate must be a positive number, got {cfg.lr}")
    if cfg.batch_size < 1 or cfg.epochs < 1 or cfg.n_projections < 1 or cfg.max_steps < 0:
        raise ValueError("batch size, epochs and projections must be ≥ 1 (max steps ≥ 0)")
    if not cfg.out_dir:
        raise ValueError("choose an output folder")
    if cfg.zeroshot_dataset and not Path(cfg.zeroshot_dataset).is_dir():
        raise ValueError(f"zero-shot folder not found: {cfg.zeroshot_dataset}")
    if not base.threads:
        cfg.threads = ui_threads(cpu_count)
    return cfg


def resume_config(checkpoint: Union[str, Path], current: TrainConfig) -> TrainConfig:
    """The config that continues ``checkpoint``'s run: its saved recipe, with ``resume`` set.

    The device and thread count stay this machine's (``current``). A checkpoint without a
    sidecar resumes with ``current``'s recipe.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise ValueError(f"checkpoint to resume from not found: {path}")
    try:
        saved = read_sidecar(path).get("train_config")
    except ModelLoadError as exc:
        raise ValueError(str(exc)) from None
    cfg = TrainConfig.from_dict(saved) if saved else current
    return replace(cfg, resume=str(path), device=current.device, threads=current.threads)


@dataclass
class RunCurves:
    """What the panel draws of a run: per-step curves, epoch evaluations, zero-shot points."""

    history: dict[str, list[float]]  # "step" and each CURVE_KEYS name
    evals: list[EvalResult]
    zeroshot: dict[str, list[float]]  # "step", "plain", "negated"

    def add_step(self, event: StepMetrics) -> None:
        self.history["step"].append(event.step)
        for name, key in CURVE_KEYS.items():
            self.history[name].append(event.lr if key == "lr" else event.losses.get(key, math.nan))

    def add_eval(self, event: EvalResult) -> None:
        """An epoch's held-out metrics, or (split "zeroshot") a zero-shot point."""
        if event.split != "zeroshot":
            self.evals.append(event)
            return
        self.zeroshot["step"].append(event.step)
        for name in ZEROSHOT_COLOURS:
            self.zeroshot[name].append(event.metrics.get(name, math.nan))

    def keep_until(self, step: Optional[int]) -> None:
        """Drop what came after ``step`` (a resumed run goes on from there); None drops all."""
        for series in (self.history, self.zeroshot):
            keep = 0 if step is None else sum(1 for s in series["step"] if s <= step)
            for values in series.values():
                del values[keep:]
        self.evals = [e for e in self.evals if step is not None and e.step <= step]

    def replace_with(self, other: "RunCurves") -> None:
        """Show ``other`` (a past run) in place of what is here; the lists stay the same objects."""
        for mine, theirs in ((self.history, other.history), (self.zeroshot, other.zeroshot)):
            for key, values in theirs.items():
                mine[key][:] = values
        self.evals = list(other.evals)


def empty_curves() -> RunCurves:
    return RunCurves(history={"step": [], **{k: [] for k in CURVE_KEYS}}, evals=[],
                     zeroshot={"step": [], **{k: [] for k in ZEROSHOT_COLOURS}})


@dataclass
class RunClock:
    """A run's timing: elapsed since start, and the ETA from its own steps (not from model
    loading or a resumed run's earlier steps). Times are ``time.perf_counter()`` values."""

    started: float = 0.0
    first_step: int = 0
    first_step_at: float = 0.0
    last: Optional[StepMetrics] = None

    def start(self, now: float) -> None:
        self.started, self.first_step, self.first_step_at, self.last = now, 0, 0.0, None

    def step(self, event: StepMetrics, now: float) -> None:
        if self.last is None:  # the time of this first step is unknown (loading came before it)
            self.first_step, self.first_step_at = event.step, now
        self.last = event

    def text(self, now: float, stopping: bool = False) -> str:
        """The status line beside the progress bar."""
        elapsed = format_duration(now - self.started)
        if stopping:
            return f"stopping… {elapsed}"
        if self.last is None:
            return f"loading… {elapsed}"
        eta = eta_seconds(self.last.step, self.last.total_steps, self.first_step,
                          now - self.first_step_at)
        return (f"epoch {self.last.epoch} · {self.last.samples_per_s:.0f} samples/s · {elapsed} "
                f"elapsed · ETA {format_duration(eta)}")


def curves_from_metrics(records: list[dict[str, Any]]) -> RunCurves:
    """The curves of a finished (or interrupted) run from its ``metrics.jsonl`` records."""
    curves = empty_curves()
    for record in records:
        kind, step, epoch = record.get("type"), record.get("step", 0), record.get("epoch", 0)
        if kind == "step":
            curves.history["step"].append(step)
            for name, key in CURVE_KEYS.items():
                curves.history[name].append(float(record.get(key, math.nan)))
        elif kind == "eval":
            metrics = {k: float(record[k]) for k in METRIC_COLUMNS if k in record}
            curves.evals.append(EvalResult(step=step, epoch=epoch, split="val", metrics=metrics))
        elif kind == "zeroshot":
            curves.zeroshot["step"].append(step)
            for name in ZEROSHOT_COLOURS:
                curves.zeroshot[name].append(float(record.get(name, math.nan)))
    return curves


def run_files_in(out_dir: Union[str, Path]) -> list[str]:
    """The files of an earlier run in ``out_dir`` (what makes the engine refuse a fresh run)."""
    return [name for name in RUN_FILES if (Path(out_dir) / name).exists()]


def fresh_out_dir(out_dir: Union[str, Path]) -> Path:
    """``out_dir`` if it holds no run, else the first free ``out_dir-2``, ``out_dir-3``, ..."""
    path = Path(out_dir)
    candidate, n = path, 1
    while run_files_in(candidate):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def eta_seconds(step: int, total_steps: int, first_step: int, seconds: float) -> Optional[float]:
    """Time left, from ``seconds`` spent on steps ``first_step+1 .. step``; None before a step."""
    done = step - first_step
    if done <= 0 or total_steps <= 0:
        return None
    return seconds / done * max(0, total_steps - step)


def format_duration(seconds: Optional[float]) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour); ``–`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
