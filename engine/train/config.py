"""Training configuration: one dataclass, every default explained, round-trips to JSON."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional, Union

from engine.train.tracking import report_to_problem


def option(default: Any, help: str) -> Any:
    """A config field with its default and the help text ``semclip train --help`` shows."""
    return field(default=default, metadata={"help": help})


def option_dict(help: str) -> Any:
    """An empty-dict config field (mutable defaults need a factory)."""
    return field(default_factory=dict, metadata={"help": help})


def option_list(default: list, help: str) -> Any:
    """A list config field with its default (copied for each config)."""
    return field(default_factory=lambda: list(default), metadata={"help": help})


@dataclass
class TrainConfig:
    """Every setting of a training run. Each field's help text lives in its metadata."""

    # --- model -------------------------------------------------------------------------------
    model: str = option(
        "semclip-tiny", "model spec: project config, ARCH:TAG, ARCH:/weights.pt or checkpoint")
    lock_image: bool = option(
        True, "freeze the image tower (the paper's setting: only text is tuned)")
    image_unlocked_groups: int = option(0, "with lock_image: leave this many last groups trainable")
    text_unlocked_layers: int = option(
        -1, "-1: whole text tower trains; k >= 0: only the last k layers")

    # --- data --------------------------------------------------------------------------------
    dataset: str = option(
        "shapes", '"shapes" (the embedded world, streamed), a triples CSV/TSV/JSONL file, or '
                  "webdataset tar shards (a .tar or a pattern like shards/train-{000000..000003}.tar)")
    data_root: Optional[str] = option(
        None, "image root for a triples file (default: the file's folder)")
    val_dataset: Optional[str] = option(
        None, 'held-out triples file; "shapes" datasets use their val split')
    columns: dict[str, str] = option_dict(
        "the triples file's column of each field when not named image, caption, paraphrase, "
        'negation, e.g. {"caption": "text"} (--set columns=caption=text,negation=neg)')
    split: str = option(
        "", 'split one triples file "train,val,test" e.g. "0.8,0.1,0.1" (the SemCLIP authors\' '
            "80/10/10): train on the first part, evaluate on the second, hold the third out; "
            "empty: no split")
    split_seed: int = option(42, "seed of the split's shuffle (42: the authors' rows)")
    shapes_seed: int = option(0, "seed of the shapes world (scenes, held-out colour-shape combos)")
    shapes_train_size: int = option(4096, "scenes per epoch from the shapes world's train split")
    shapes_eval_size: int = option(256, "scenes of the held-out split evaluated after each epoch")
    shapes_true_negation_prob: float = option(
        0.0, "share of training captions that are true negations")
    shapes_varied_wording_prob: float = option(
        0.0, "share of training captions in everyday synonyms")
    shapes_rich_language_prob: float = option(
        0.0, "share of training triples in the rich scene language (engine/data/shapes/language.py): "
             "denials with and without no/not, exclusives, counts, relations, double negation")
    shapes_held_out_queries: Optional[str] = option(
        None, "JSON list of {query: ...} (bench/free_queries.json) or a text file of sentences "
              "the rich scene language must never produce, so an evaluation on them measures "
              "wordings the model never saw")
    augment: bool = option(
        False, "OpenCLIP's training augmentation (turns the image-embedding cache off)")
    zeroshot_dataset: Optional[str] = option(
        None, "class-folder data set (one sub-folder per class) scored zero-shot with open_clip's "
              "prompt templates, plain and negated, at each evaluation: zeroshot/plain, "
              "zeroshot/negated")

    # --- SemCLIP loss -------------------------------------------------------------------------
    alpha: float = option(1.0, "weight of the contrastive (InfoNCE) term")
    beta: float = option(
        1.0, "weight of the paraphrase term; beta = gamma = 0 is plain CLIP fine-tuning")
    gamma: float = option(1.0, "weight of the negation term")
    delta: float = option(
        0.0, "weight of the claim term (0: the paper's loss): each image ranks the object "
             "claims that hold of it (\"no horse can be seen here\" under a photo without "
             "horses) above those that do not; needs a triples file with an objects column")
    n_projections: int = option(2, "rows of the projection matrix V (the paper uses 2)")
    learnable_projections: bool = option(
        False, "learn V (kept orthonormal) instead of a fixed random V")
    hard_negatives: bool = option(
        False, "add negations as extra columns of the image-to-text logits")
    paraphrase_positives: bool = option(
        False, "the contrastive term also ties each paraphrase to its image (the mean of InfoNCE "
               "over captions and over paraphrases), so that both wordings are learnt; off in "
               "the paper's loss, where paraphrases feed the paraphrase term only")
    mask_false_negatives: bool = option(
        False, "leave out of the contrastive softmaxes the other images of the batch a caption "
               "(or a negation) is also true of: \"nothing orange\" fits most scenes, and "
               "scoring them as wrong answers teaches the opposite (the shapes world's captions "
               "carry predicates; a triples file knows a photo's own captions and its claim "
               "columns)")
    projection_seed: int = option(0, "seed of the random orthonormal V")

    # --- optimisation -------------------------------------------------------------------------
    epochs: int = option(1, "passes over the training set")
    max_steps: int = option(0, "stop after this many optimiser steps (0: no limit beyond epochs)")
    batch_size: int = option(64, "per-process batch (global batch = batch_size * world size)")
    accum_steps: int = option(1, "micro-batches accumulated per optimiser step")
    lr: float = option(5e-4, "peak AdamW learning rate")
    text_lr_scale: float = option(
        1.0, "lr multiplier for pretrained text-tower weights (HF towers)")
    weight_decay: float = option(
        0.1, "AdamW weight decay (not applied to gains, biases, logit scale)")
    warmup_steps: int = option(50, "linear warm-up before the cosine decay")
    grad_clip: float = option(1.0, "max global grad norm (0: no clipping)")
    init_logit_scale: float = option(
        0.0, ">0: reset the learnable temperature to ln(this) at start")

    # --- system -------------------------------------------------------------------------------
    device: str = option("auto", "auto | cpu | cuda | cuda:N")
    precision: str = option(
        "auto", "auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16 | fp16 (CUDA)")
    workers: int = option(0, "DataLoader worker processes (0: load in the main process)")
    seed: int = option(0, "seeds model init, data order and dropout; CPU runs repeat exactly")
    threads: int = option(0, "torch CPU threads (0: torch's default)")

    # --- output -------------------------------------------------------------------------------
    out_dir: str = option(
        "", "this run's folder (checkpoint, sidecar, metrics.jsonl); empty: a new folder under "
            "runs_root")
    runs_root: str = option("runs", "where each run gets its own folder when out_dir is empty")
    run_name: str = option(
        "", "the run's folder under runs_root (empty: YYYY_MM_DD-HH_MM_SS-model_..., as open_clip)")
    save_every_steps: int = option(
        0, "also keep step_<N>.pt every N steps (0: checkpoint.pt at epoch ends and the end only)")
    keep_last_n: int = option(
        0, "step_<N>.pt files kept, the oldest deleted first (0: keep all)")
    best_metric: str = option(
        "", "keep best.pt, the checkpoint best by this epoch metric: val/<metric> (e.g. "
            "val/caption_top1) or zeroshot/plain, zeroshot/negated; empty: off")
    best_mode: str = option("max", "max | min: which way best_metric improves")
    retrieval_k: list[int] = option_list(
        [1, 5], "k of the top-k text-to-image retrieval the evaluation reports (caption_topK, "
                "paraphrase_topK)")
    eval_every_epochs: int = option(
        1, "evaluate on the held-out split (and zeroshot_dataset) every N epochs (0: never)")
    resume: Optional[str] = option(
        None, "checkpoint to resume from (continues schedule, data order, RNG); latest: the "
              "newest checkpoint in out_dir, runs_root/run_name, or the newest run under runs_root")
    name: str = option("", "label shown in tables and the app")
    overwrite: bool = option(
        False, "start afresh in an out_dir that holds an earlier run (else refused)")
    report_to: Union[str, list[str]] = option(
        "",
        'experiment trackers: tensorboard, mlflow, wandb (a list or "a,b"); MLflow logs to '
        "MLFLOW_TRACKING_URI, else <out_dir>/mlruns")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, path: Optional[Union[str, Path]] = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_nested_dict(self) -> dict[str, dict[str, Any]]:
        """The config in its parts (model, data, loss, optimisation, system, output), the shape
        a hand-written JSON config may take too; :meth:`from_dict` reads both shapes."""
        flat, nested = self.to_dict(), {part: {} for part in PARTS.values()}
        for name, value in flat.items():
            nested[FIELD_PART[name]][name] = value
        return nested

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "training config") -> "TrainConfig":
        """Build a config from plain values, flat (``{"beta": 0}``) or in parts
        (``{"loss": {"beta": 0}}``), checking each one's type (``source`` names the file in
        error messages)."""
        data = _flatten_parts(data, source)
        types = {f.name: str(f.type) for f in fields(cls)}
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise ConfigError(f"{source}: unknown training config keys: {unknown}")
        for key, value in data.items():
            if not _has_type(value, types[key]):
                raise ConfigError(f"{source}: {key} must be {_type_words(types[key])}, "
                                  f"got {value!r}")
        return cls(**data)

    def validate(self, check_model: bool = True) -> "TrainConfig":
        """Reject settings that cannot train, before any model or data is loaded.

        Raises :class:`ConfigError` with one message naming every bad field. ``check_model``
        also resolves the model spec (unknown architecture, missing checkpoint, a hub tag that
        cannot be had offline) without building the model.
        """
        problems = [p for p in (rule(self) for rule in _RULES) if p]
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))
        if check_model:
            from engine.model.loading import ModelLoadError, check_spec
            try:
                check_spec(self.model)
            except (ModelLoadError, FileNotFoundError) as exc:
                raise ConfigError(f"model {self.model!r}: {exc}") from None
            if self.resume and self.resume != RESUME_LATEST and not Path(self.resume).is_file():
                raise ConfigError(f"checkpoint to resume from not found: {self.resume}")
            if self.shapes_held_out_queries and not Path(self.shapes_held_out_queries).is_file():
                raise ConfigError(f"shapes_held_out_queries: file not found: "
                                  f"{self.shapes_held_out_queries}")
            if self.zeroshot_dataset and not Path(self.zeroshot_dataset).is_dir():
                raise ConfigError(f"zeroshot_dataset: folder not found: {self.zeroshot_dataset}")
        return self

    @classmethod
    def from_json(cls, path: Union[str, Path]) -> "TrainConfig":
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object of config fields")
        return cls.from_dict(data, source=str(path))

    def with_overrides(self, assignments: list[str]) -> "TrainConfig":
        """Apply ``key=value`` strings (CLI ``--set``), parsing values by the field's type; a
        key may name its part (``loss.beta=0``)."""
        data = self.to_dict()
        types = {f.name: f.type for f in fields(self)}
        for item in assignments:
            key, sep, raw = item.partition("=")
            key = _field_of(key.strip().replace("-", "_"), "--set")
            if not sep or key not in types:
                raise ValueError(f"--set expects key=value with a config key, got {item!r}")
            data[key] = _parse_value(raw.strip(), str(types[key]), key)
        return TrainConfig.from_dict(data, source="--set")


# The config's parts: the field that opens each part of TrainConfig, and the part's name (the
# prefix of ``--set loss.beta=0`` and a key of a config written in parts).
PARTS = {"model": "model", "dataset": "data", "alpha": "loss", "epochs": "optimisation",
         "device": "system", "out_dir": "output"}


def _field_parts() -> dict[str, str]:
    part, found = "", {}
    for f in fields(TrainConfig):
        part = PARTS.get(f.name, part)
        found[f.name] = part
    return found


FIELD_PART = _field_parts()  # every field's part


def _field_of(key: str, source: str) -> str:
    """``loss.beta`` -> ``beta`` (checking that beta is a loss setting); ``beta`` as is."""
    part, dot, name = key.partition(".")
    if not dot:
        return key
    if part not in PARTS.values():
        raise ConfigError(f"{source}: {key}: no config part {part!r} "
                          f"(parts: {', '.join(PARTS.values())})")
    if FIELD_PART.get(name, part) != part:
        raise ConfigError(f"{source}: {key}: {name} belongs to the {FIELD_PART[name]} part "
                          f"({FIELD_PART[name]}.{name})")
    return name


def _flatten_parts(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Accept a config in parts ({"loss": {"beta": 0}}) beside flat keys; a part is a JSON
    object under a part's name (the model *field* is a string, so ``model`` stays clear)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in PARTS.values() and isinstance(value, dict):
            for name, inner in value.items():
                _field_of(f"{key}.{name}", source)
                if name in flat:
                    raise ConfigError(f"{source}: {name} is given twice")
                flat[name] = inner
        elif key in flat:
            raise ConfigError(f"{source}: {key} is given twice")
        else:
            flat[key] = value
    return flat


def field_help(name: str) -> str:
    """A config field's help text, the one source for ``semclip train --help`` and the Train
    form's tooltips."""
    found = {f.name: f for f in fields(TrainConfig)}.get(name)
    if found is None:
        raise KeyError(f"no training config field {name!r}")
    return found.metadata.get("help", "")

def fields_help(width: int = 100) -> str:
    """Every config field with its type, default and help text, grouped as in the class (the
    listing ``semclip train --help`` ends with)."""
    import textwrap

    lines: list[str] = []
    for f in fields(TrainConfig):
        if f.name in PARTS:
            lines.append(f"{PARTS[f.name]} (--set {PARTS[f.name]}.KEY=VALUE or KEY=VALUE):")
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        shown = "null" if default is None else json.dumps(default)
        lines.append(f"  {f.name} = {shown}  ({_type_words(str(f.type))})")
        lines += textwrap.wrap(f.metadata.get("help", ""), width, initial_indent=" " * 6,
                               subsequent_indent=" " * 6)
    return "\n".join(lines)


class ConfigError(ValueError):
    """A training config that cannot run; the message names the field(s) and the file."""


def _has_type(value: Any, type_name: str) -> bool:
    if type_name.startswith("dict"):
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in value.items())
    if type_name == "list[int]":
        return isinstance(value, list) and all(
            isinstance(item, int) and not isinstance(item, bool) for item in value)
    if "list" in type_name and isinstance(value, list):
        return all(isinstance(item, str) for item in value)
    if value is None:
        return "Optional" in type_name
    if "bool" in type_name:
        return isinstance(value, bool)
    if "int" in type_name:
        return isinstance(value, int) and not isinstance(value, bool)
    if "float" in type_name:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def _type_words(type_name: str) -> str:
    if type_name.startswith("dict"):
        return "an object of text (FIELD=COLUMN,... with --set)"
    if type_name == "list[int]":
        return "a list of whole numbers (1,3,5 with --set)"
    base = next((t for t in ("bool", "int", "float") if t in type_name), "str")
    words = {"bool": "true or false", "int": "a whole number", "float": "a number",
             "str": "text"}[base]
    if "list" in type_name:
        words += " or a list of text"
    return words + (" or null" if "Optional" in type_name else "")


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
RESUME_LATEST = "latest"
# What evaluate_triples reports (logged as val/<name>) and the zero-shot monitor's two scores.
EVAL_METRICS = ("ono_accuracy", "caption_top1", "caption_top5", "paraphrase_top1",
                "paraphrase_top5")


def eval_metrics(retrieval_k: list[int]) -> tuple[str, ...]:
    """What evaluate_triples reports for these retrieval depths."""
    return ("ono_accuracy", *(f"{role}_top{k}" for role in ("caption", "paraphrase")
                              for k in retrieval_k))


def best_metrics(retrieval_k: list[int]) -> tuple[str, ...]:
    """The metrics best_metric may name for these retrieval depths."""
    names = dict.fromkeys((*EVAL_METRICS, *eval_metrics(retrieval_k)))
    return (*(f"val/{name}" for name in names), "zeroshot/plain", "zeroshot/negated")


BEST_METRICS = best_metrics([1, 5])  # those of the default retrieval_k
MAX_LR = 1.0  # AdamW steps above this blow any CLIP model up; almost surely a typo


def _finite(x: float) -> bool:
    return math.isfinite(x)


# One rule a line: each returns a message naming the field, or "" when the value is fine.
_RULES: tuple[Callable[["TrainConfig"], str], ...] = (
    lambda c: "" if c.model.strip() else "model is empty",
    lambda c: "" if c.dataset.strip() else "dataset is empty",
    lambda c: "" if c.out_dir.strip() or c.runs_root.strip() else "out_dir and runs_root are empty",
    lambda c: "" if c.batch_size >= 1 else f"batch_size must be at least 1, got {c.batch_size}",
    lambda c: "" if c.accum_steps >= 1 else f"accum_steps must be at least 1, got {c.accum_steps}",
    lambda c: "" if c.epochs >= 1 else f"epochs must be at least 1, got {c.epochs}",
    lambda c: "" if c.max_steps >= 0 else f"max_steps must be 0 (no limit) or more, got {c.max_steps}",
    lambda c: "" if c.warmup_steps >= 0 else f"warmup_steps must be 0 or more, got {c.warmup_steps}",
    lambda c: "" if _finite(c.lr) and 0 < c.lr <= MAX_LR else
    f"lr must be a number in (0, {MAX_LR}], got {c.lr}",
    lambda c: "" if _finite(c.text_lr_scale) and c.text_lr_scale >= 0 else
    f"text_lr_scale must be 0 or more, got {c.text_lr_scale}",
    lambda c: "" if _finite(c.weight_decay) and c.weight_decay >= 0 else
    f"weight_decay must be 0 or more, got {c.weight_decay}",
    lambda c: "" if _finite(c.grad_clip) and c.grad_clip >= 0 else
    f"grad_clip must be 0 (off) or more, got {c.grad_clip}",
    lambda c: "" if _finite(c.init_logit_scale) and c.init_logit_scale >= 0 else
    f"init_logit_scale must be 0 (keep) or more, got {c.init_logit_scale}",
    lambda c: "" if all(_finite(w) and w >= 0 for w in (c.alpha, c.beta, c.gamma, c.delta)) else
    f"alpha, beta, gamma and delta must be non-negative numbers, got {c.alpha}, {c.beta}, "
    f"{c.gamma}, {c.delta}",
    lambda c: "" if c.alpha + c.beta + c.gamma + c.delta > 0 else
    "alpha, beta, gamma and delta are all 0",
    lambda c: "" if not c.delta or c.dataset != "shapes" else
    "delta > 0 (the claim term) needs a triples file with an objects column, not the shapes world",
    lambda c: "" if c.n_projections >= 1 else f"n_projections must be at least 1, got {c.n_projections}",
    lambda c: "" if c.image_unlocked_groups >= 0 else
    f"image_unlocked_groups must be 0 or more, got {c.image_unlocked_groups}",
    lambda c: "" if c.text_unlocked_layers >= -1 else
    f"text_unlocked_layers must be -1 (all) or more, got {c.text_unlocked_layers}",
    lambda c: "" if c.shapes_train_size >= 1 and c.shapes_eval_size >= 0 else
    "shapes_train_size must be at least 1 and shapes_eval_size 0 or more",
    lambda c: "" if all(0 <= p <= 1 for p in (c.shapes_true_negation_prob,
                                              c.shapes_varied_wording_prob,
                                              c.shapes_rich_language_prob)) else
    "shapes_true_negation_prob, shapes_varied_wording_prob and shapes_rich_language_prob must "
    "lie in [0, 1]",
    lambda c: "" if c.precision in PRECISIONS else
    f"precision must be one of {', '.join(PRECISIONS)}, got {c.precision!r}",
    lambda c: "" if c.device == "auto" or c.device == "cpu" or c.device == "mps" or
    c.device.split(":")[0] == "cuda" else f"device must be auto, cpu, cuda or cuda:N, got {c.device!r}",
    lambda c: "" if c.workers >= 0 and c.threads >= 0 else "workers and threads must be 0 or more",
    lambda c: "" if c.save_every_steps >= 0 and c.eval_every_epochs >= 0 else
    "save_every_steps and eval_every_epochs must be 0 (off) or more",
    lambda c: report_to_problem(c.report_to),
    lambda c: "" if c.keep_last_n >= 0 else f"keep_last_n must be 0 (all) or more, got {c.keep_last_n}",
    lambda c: "" if c.best_mode in ("max", "min") else f"best_mode must be max or min, got {c.best_mode!r}",
    lambda c: _best_metric_problem(c),
    lambda c: _placeholder_problem(c),
    lambda c: split_problem(c.split) or ("split and val_dataset are both set: give one" if
                                         c.split and c.val_dataset else ""),
    lambda c: "" if c.retrieval_k and all(k >= 1 for k in c.retrieval_k) else
    f"retrieval_k must list whole numbers of 1 or more, got {c.retrieval_k}",
    lambda c: _columns_problem(c.columns),
)

# A preset's path the user must set; any field that still holds one stops the run before work.
PLACEHOLDER_START = "<set:"


def _placeholder_problem(c: "TrainConfig") -> str:
    unset = [(f.name, getattr(c, f.name)[len(PLACEHOLDER_START):].strip(" >"))
             for f in fields(c) if isinstance(getattr(c, f.name), str)
             and getattr(c, f.name).startswith(PLACEHOLDER_START)]
    return "; ".join(f"{name} is not set ({what}): give --set {name}=PATH" for name, what in unset)


def _problem_of(check: Callable[[Any], Any], value: Any) -> str:
    """The message of the ValueError ``check(value)`` raises, or "" when it passes."""
    try:
        check(value)
    except ValueError as exc:
        return str(exc)
    return ""


def split_problem(text: str) -> str:
    from engine.data.triples_io import parse_split
    return _problem_of(parse_split, text) if text else ""


def _columns_problem(columns: dict[str, str]) -> str:
    from engine.data.triples_io import check_columns
    return _problem_of(check_columns, columns)


def _best_metric_problem(c: "TrainConfig") -> str:
    """best_metric must name a metric this run will compute."""
    if not c.best_metric:
        return ""
    known = best_metrics(c.retrieval_k)
    if c.best_metric not in known:
        return f"best_metric {c.best_metric!r} is not one of {', '.join(known)}"
    if not c.eval_every_epochs:
        return f"best_metric {c.best_metric} needs eval_every_epochs of 1 or more"
    if c.best_metric.startswith("zeroshot/") and not c.zeroshot_dataset:
        return f"best_metric {c.best_metric} needs a zeroshot_dataset"
    if c.best_metric.startswith("val/") and c.dataset != "shapes" and not c.val_dataset \
            and not c.split:
        return f"best_metric {c.best_metric} needs a val_dataset or a split"
    return ""


def _parse_value(raw: str, type_name: str, key: str) -> Any:
    if raw.lower() in ("none", "null") and "Optional" in type_name:
        return None
    if type_name.startswith("dict"):
        from engine.data.triples_io import parse_columns
        return parse_columns(raw)
    if type_name == "list[int]":
        try:
            return [int(part) for part in raw.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"--set {key}: cannot read {raw!r} as whole numbers like 1,3,5") from None
    try:
        if "bool" in type_name:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if "int" in type_name:
            return int(raw)
        if "float" in type_name:
            return float(raw)
    except ValueError:
        raise ValueError(f"--set {key}: cannot read {raw!r} as {type_name}") from None
    return raw
