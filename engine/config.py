"""Training configuration: one dataclass, every default explained, round-trips to JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Optional, Union


@dataclass
class TrainConfig:
    # --- model -------------------------------------------------------------------------------
    model: str = "semclip-tiny"  # model spec: project config, ARCH:TAG, ARCH:/weights.pt or checkpoint
    lock_image: bool = True  # freeze the image tower (the paper's setting: only text is tuned)
    image_unlocked_groups: int = 0  # with lock_image: leave this many last groups trainable
    text_unlocked_layers: int = -1  # -1: whole text tower trains; k >= 0: only the last k layers

    # --- data --------------------------------------------------------------------------------
    dataset: str = "shapes"  # "shapes" (the embedded world, streamed) or a triples CSV/JSONL file
    data_root: Optional[str] = None  # image root for a triples file (default: the file's folder)
    val_dataset: Optional[str] = None  # held-out triples file; "shapes" datasets use their val split
    shapes_seed: int = 0  # seed of the shapes world (scenes, held-out colour-shape combos)
    shapes_train_size: int = 4096  # scenes per epoch from the shapes world's train split
    shapes_eval_size: int = 256  # scenes of the held-out split evaluated after each epoch
    shapes_true_negation_prob: float = 0.0  # share of training captions that are true negations
    shapes_varied_wording_prob: float = 0.0  # share of training captions in everyday synonyms
    augment: bool = False  # OpenCLIP's training augmentation (turns the image-embedding cache off)

    # --- SemCLIP loss -------------------------------------------------------------------------
    alpha: float = 1.0  # weight of the contrastive (InfoNCE) term
    beta: float = 1.0  # weight of the paraphrase term; beta = gamma = 0 is plain CLIP fine-tuning
    gamma: float = 1.0  # weight of the negation term
    n_projections: int = 2  # rows of the projection matrix V (the paper uses 2)
    learnable_projections: bool = False  # learn V (kept orthonormal) instead of a fixed random V
    hard_negatives: bool = False  # add negations as extra columns of the image-to-text logits
    projection_seed: int = 0  # seed of the random orthonormal V

    # --- optimisation -------------------------------------------------------------------------
    epochs: int = 1  # passes over the training set
    max_steps: int = 0  # stop after this many optimiser steps (0: no limit beyond epochs)
    batch_size: int = 64  # per-process batch (global batch = batch_size * world size)
    accum_steps: int = 1  # micro-batches accumulated per optimiser step
    lr: float = 5e-4  # peak AdamW learning rate
    text_lr_scale: float = 1.0  # lr multiplier for pretrained text-tower weights (HF towers)
    weight_decay: float = 0.1  # AdamW weight decay (not applied to gains, biases, logit scale)
    warmup_steps: int = 50  # linear warm-up before the cosine decay
    grad_clip: float = 1.0  # max global grad norm (0: no clipping)
    init_logit_scale: float = 0.0  # >0: reset the learnable temperature to ln(this) at start

    # --- system -------------------------------------------------------------------------------
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    workers: int = 0  # DataLoader worker processes (0: load in the main process)
    seed: int = 0  # seeds model init, data order and dropout; CPU runs repeat exactly
    threads: int = 0  # torch CPU threads (0: torch's default)

    # --- output -------------------------------------------------------------------------------
    out_dir: str = "runs/semclip"  # checkpoint, sidecar and metrics.jsonl go here
    save_every_steps: int = 0  # extra checkpoint every N steps (0: only at epoch ends and the end)
    eval_every_epochs: int = 1  # evaluate on the held-out split every N epochs (0: never)
    resume: Optional[str] = None  # checkpoint to resume from (continues schedule, data order, RNG)
    name: str = ""  # label shown in tables and the app

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, path: Optional[Union[str, Path]] = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys: {unknown}")
        return cls(**data)

    @classmethod
    def from_json(cls, path: Union[str, Path]) -> "TrainConfig":
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(data)

    def with_overrides(self, assignments: list[str]) -> "TrainConfig":
        """Apply ``key=value`` strings (CLI ``--set``), parsing values by the field's type."""
        data = self.to_dict()
        types = {f.name: f.type for f in fields(self)}
        for item in assignments:
            key, sep, raw = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in types:
                raise ValueError(f"--set expects key=value with a config key, got {item!r}")
            data[key] = _parse_value(raw.strip(), str(types[key]), key)
        return TrainConfig.from_dict(data)


def _parse_value(raw: str, type_name: str, key: str) -> Any:
    if raw.lower() in ("none", "null") and "Optional" in type_name:
        return None
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
