"""The two demo models (CLIP baseline and SemCLIP) the app opens with.

Shipped in ``assets/demo_models/`` when the project has them; otherwise trained on first launch
into ``cache_dir()/demo_models/`` — a small shapes-world model pair, each run capped by steps and
wall-clock time so the whole thing finishes within a minute on a 2-core CPU — behind a progress
dialog that can be cancelled.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Optional

from engine.events import Done, Error, Event, Log, Progress, StepMetrics
from engine.paths import ASSETS_DIR, cache_dir, sidecar_path
from engine.train.config import TrainConfig
from engine.train.loop import train

SHIPPED_DIR = ASSETS_DIR / "demo_models"
DEMO_NAMES = ("clip-baseline", "semclip")

# First-launch recipe: small enough to train in the time budget, big enough to show the effect.
DEMO_MODEL = "semclip-shapes-tiny"
DEMO_MAX_STEPS = 300
DEMO_SECONDS_PER_MODEL = 25.0  # wall-clock cap per model (2 models: < 60 s in all)


class DemoModelsCancelled(RuntimeError):
    """The user cancelled first-launch training of the demo models."""


def shipped_demo_specs() -> Optional[tuple[str, str]]:
    """Paths of the demo models in ``assets/demo_models`` if both (with sidecars) are there."""
    paths = [SHIPPED_DIR / f"{name}.pt" for name in DEMO_NAMES]
    if all(p.is_file() and sidecar_path(p).is_file() for p in paths):
        return str(paths[0]), str(paths[1])
    return None


def trained_demo_dir() -> Path:
    return cache_dir() / "demo_models"


def cached_demo_specs() -> Optional[tuple[str, str]]:
    """Demo models trained on an earlier launch, if both finished."""
    paths = [trained_demo_dir() / name / "checkpoint.pt" for name in DEMO_NAMES]
    done = [trained_demo_dir() / name / "DONE" for name in DEMO_NAMES]
    if all(p.is_file() for p in paths) and all(d.is_file() for d in done):
        return str(paths[0]), str(paths[1])
    return None


def demo_train_configs() -> list[TrainConfig]:
    """The first-launch pair: identical but for the loss weights (β = γ = 0 is plain CLIP)."""
    base = TrainConfig(model=DEMO_MODEL, lock_image=False, dataset="shapes",
                       shapes_train_size=DEMO_MAX_STEPS * 32, shapes_eval_size=64,
                       batch_size=32, epochs=1, max_steps=DEMO_MAX_STEPS, lr=1e-3,
                       warmup_steps=20, eval_every_epochs=1, seed=0, n_projections=2)
    root = trained_demo_dir()
    return [replace(base, name="clip-baseline", beta=0.0, gamma=0.0,
                    out_dir=str(root / "clip-baseline")),
            replace(base, name="semclip", beta=1.0, gamma=1.0, out_dir=str(root / "semclip"))]


class _Deadline:
    """A stop flag that is set by the user's cancel or when the time budget is spent."""

    def __init__(self, cancel: threading.Event, seconds: float):
        self.cancel, self.end = cancel, time.monotonic() + seconds

    def is_set(self) -> bool:
        return self.cancel.is_set() or time.monotonic() > self.end


def train_demo_models(stop: threading.Event) -> Iterator[Event]:
    """Train both demo models one after the other; Progress covers both, Done carries the specs."""
    configs = demo_train_configs()
    for i, cfg in enumerate(configs):
        yield Log(f"training demo model {cfg.name} ({cfg.model}, ≤ {cfg.max_steps} steps)")
        flag = _Deadline(stop, DEMO_SECONDS_PER_MODEL)
        started = time.monotonic()
        for event in train(cfg, flag):
            if isinstance(event, StepMetrics):
                share = min(1.0, max(event.step / max(event.total_steps, 1),
                                     (time.monotonic() - started) / DEMO_SECONDS_PER_MODEL))
                yield Progress(done=int(1000 * (i + share)), total=1000 * len(configs),
                               phase="demo", message=f"{cfg.name}: step {event.step}")
            elif isinstance(event, Error):
                yield event
                return
            elif isinstance(event, Done):
                if stop.is_set():
                    yield Done(stopped=True)
                    return
                (Path(cfg.out_dir) / "DONE").write_text(str(event.result.step))
    specs = cached_demo_specs()
    yield Done(result=list(specs) if specs else [])


def demo_model_specs(parent=None) -> tuple[str, str]:
    """(left, right) specs of the demo CLIP and SemCLIP models, training them if needed.

    Shipped models win; then models trained on an earlier launch; otherwise both are trained now
    behind a modal, cancellable ``QProgressDialog`` (needs a QApplication). Raises
    :class:`DemoModelsCancelled` on cancel and ``RuntimeError`` if training fails.
    """
    specs = shipped_demo_specs() or cached_demo_specs()
    if specs is not None:
        return specs

    from PySide6.QtCore import QEventLoop, Qt
    from PySide6.QtWidgets import QProgressDialog

    from .workers import EventWorker

    dialog = QProgressDialog("Training the demo CLIP and SemCLIP models (first launch, < 1 min)…",
                             "Cancel", 0, 1000, parent)
    dialog.setWindowTitle("SemCLIP Studio — first launch")
    dialog.setWindowModality(Qt.WindowModal)
    dialog.setMinimumDuration(0)
    dialog.setValue(0)
    outcome: dict = {}
    worker = EventWorker(train_demo_models, name="demo")
    loop = QEventLoop()
    worker.progress.connect(lambda p: (dialog.setMaximum(p.total), dialog.setValue(p.done),
                                       dialog.setLabelText(f"Training demo models… {p.message}")))
    worker.finished.connect(lambda d: outcome.update(done=d))
    worker.failed.connect(lambda e: outcome.update(error=e))
    worker.done.connect(loop.quit)
    dialog.canceled.connect(worker.cancel)
    worker.start()
    loop.exec()
    worker.wait()
    dialog.close()
    if "error" in outcome:
        raise RuntimeError(f"training the demo models failed: {outcome['error'].message}")
    done = outcome.get("done")
    if done is None or done.stopped or worker.stop_flag.is_set():
        raise DemoModelsCancelled("demo model training was cancelled")
    specs = cached_demo_specs()
    if specs is None:
        raise RuntimeError("demo model training ended without both checkpoints")
    return specs
