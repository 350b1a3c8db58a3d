"""Run folders: where a run writes, which checkpoints it keeps, and what earlier runs hold.

Each run gets its own folder under ``runs_root`` (``run_name``, else a timestamped name like
open_clip's ``YYYY_MM_DD-HH_MM_SS-model_...``) unless the config names an ``out_dir``. In a run
folder ``checkpoint.pt`` is the last checkpoint, ``best.pt`` the best by ``best_metric`` and
``step_<N>.pt`` the periodic ones (``save_every_steps``, ``keep_last_n`` of them kept). Pure
file-system code: no torch, no Qt, so the app can list runs cheaply.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from engine.paths import sidecar_path
from engine.train.config import RESUME_LATEST, TrainConfig

LAST_CHECKPOINT = "checkpoint.pt"
BEST_CHECKPOINT = "best.pt"
STEP_CHECKPOINT = re.compile(r"^step_(\d+)\.pt$")


def step_checkpoint_name(step: int) -> str:
    return f"step_{step}.pt"


def auto_run_name(cfg: TrainConfig, now: Optional[datetime] = None) -> str:
    """``2026_12_05-19_04_10-<name>-model_semclip-tiny-lr_0.0005-b_64``: sorts by start time
    and says what ran (the config's ``name`` only when set)."""
    stamp = (now or datetime.now()).strftime("%Y_%m_%d-%H_%M_%S")
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", cfg.model.rstrip("/").split("/")[-1]).strip("-")
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", cfg.name).strip("-")
    return "-".join(p for p in (stamp, label, f"model_{model}", f"lr_{cfg.lr:g}",
                                f"b_{cfg.batch_size}") if p)


def resolve_run(cfg: TrainConfig, now: Optional[datetime] = None) -> TrainConfig:
    """``cfg`` with its run folder and checkpoint to resume spelled out (idempotent).

    ``resume=latest`` becomes the newest checkpoint in ``out_dir``, in ``runs_root/run_name``,
    or of the newest run under ``runs_root``; with none there, the run starts afresh (as
    open_clip's ``--resume latest``). An empty ``out_dir`` becomes the resumed checkpoint's
    folder, or a new folder under ``runs_root``.
    """
    if cfg.resume == RESUME_LATEST:
        where = Path(cfg.out_dir or Path(cfg.runs_root) / cfg.run_name)
        cfg = replace(cfg, resume=str(latest_checkpoint(where) or "") or None)
    if cfg.out_dir:
        return cfg
    if cfg.resume:
        return replace(cfg, out_dir=str(Path(cfg.resume).parent))
    root = Path(cfg.runs_root)
    if cfg.run_name:
        return replace(cfg, out_dir=str(root / cfg.run_name))
    name = auto_run_name(cfg, now)
    folder, n = root / name, 1
    while folder.exists():  # a run started in the same second: the user chose no name
        n += 1
        folder = root / f"{name}-{n}"
    return replace(cfg, out_dir=str(folder))


def _sidecar(checkpoint: Path) -> dict[str, Any]:
    try:
        data = json.loads(sidecar_path(checkpoint).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def step_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """The run's ``step_<N>.pt`` files as (N, path), oldest step first."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob("step_*.pt")
             if (m := STEP_CHECKPOINT.match(p.name))]
    return sorted(found)


def resumable_checkpoints(run_dir: Path) -> list[Path]:
    """``checkpoint.pt`` and the ``step_<N>.pt`` files of a run folder (``best.pt`` is not
    where a run left off)."""
    last = Path(run_dir) / LAST_CHECKPOINT
    return ([last] if last.is_file() else []) + [p for _, p in step_checkpoints(run_dir)]


def newest_checkpoint(run_dir: Path) -> Optional[Path]:
    """The run's checkpoint with the highest step (its sidecar's), the newest file on a tie."""
    candidates = resumable_checkpoints(run_dir)
    if not candidates:
        return None
    return max(candidates, key=lambda p: (int(_sidecar(p).get("step", -1)), p.stat().st_mtime_ns))


def latest_checkpoint(where: Path) -> Optional[Path]:
    """The newest checkpoint of ``where`` if it is a run folder, else of the newest run in it
    (the run whose newest checkpoint was written last)."""
    where = Path(where)
    if not where.is_dir():
        return None
    own = newest_checkpoint(where)
    if own is not None:
        return own
    runs = [c for c in (newest_checkpoint(d) for d in where.iterdir() if d.is_dir()) if c]
    return max(runs, key=lambda p: p.stat().st_mtime_ns) if runs else None


def prune_step_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` ``step_<N>.pt`` files (and sidecars); returns the
    deleted checkpoints. ``keep`` 0 keeps every one."""
    if keep <= 0:
        return []
    doomed = [p for _, p in step_checkpoints(run_dir)][:-keep]
    for path in doomed:
        path.unlink(missing_ok=True)
        sidecar_path(path).unlink(missing_ok=True)
    return doomed


def improves(value: Optional[float], best: Optional[float], mode: str) -> bool:
    """Whether ``value`` beats ``best`` (None: nothing yet) in ``mode`` max or min; a
    non-finite value never does, a tie does not either (the earlier checkpoint stays)."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (lines cut by a crash are skipped)."""
    records = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


@dataclass
class RunSummary:
    """One run folder as the app's run list shows it."""

    path: Path
    name: str
    started: datetime  # when it last started or resumed (its config.json is written then)
    steps: int  # the last step logged
    best_metric: str = ""
    best_value: Optional[float] = None


def list_runs(root: Path) -> list[RunSummary]:
    """The run folders directly under ``root`` (those with a ``config.json``), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    for folder in root.iterdir():
        config = folder / "config.json"
        if not config.is_file():
            continue
        steps = [int(r.get("step", 0)) for r in read_metrics(folder / "metrics.jsonl")]
        best = _sidecar(folder / BEST_CHECKPOINT).get("best") or {}
        runs.append(RunSummary(path=folder, name=folder.name,
                               started=datetime.fromtimestamp(config.stat().st_mtime),
                               steps=max(steps, default=0), best_metric=best.get("metric", ""),
                               best_value=best.get("value")))
    return sorted(runs, key=lambda r: r.started, reverse=True)
