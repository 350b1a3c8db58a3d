"""Train: fill a form, watch SemCLIP fine-tune live, then put the checkpoint on either side.

* The form maps one-to-one onto :class:`engine.train.config.TrainConfig` fields;
  :func:`config_from_form` turns its values into a config (a plain function, testable without
  Qt). Fields the form does not show (tower locking, warm-up...) come from the chosen preset.
* Training runs in an :class:`EventWorker` over :func:`engine.train.loop.train`. Step events only
  append to lists; a 10 Hz timer redraws the curves, so a fast run cannot flood the GUI thread.
* A :class:`LatencyProbe` measures how late the GUI event loop handles a 10 ms timer while a run
  is going on; the figure goes to the log when the run ends (``bench/ui_latency.py`` measures it
  on its own, since it depends on the machine's load).
* Stop is cooperative: the engine finishes its step, saves a checkpoint and ends with
  ``Done(stopped=True)``; Resume continues a checkpoint's run with the recipe saved beside it.
* The engine refuses a fresh run into a folder that holds another run; Start asks first
  (a new folder beside it, the default, or overwrite) and shows any other folder problem
  (a file, read-only) in the panel before a thread starts.
* Past runs under a root folder are listed (:class:`RunsList`); a click draws that run's
  curves, metrics and zero-shot points from its ``metrics.jsonl`` (:func:`curves_from_metrics`).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Union

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QMessageBox,
                               QWidget)

from engine.events import CheckpointSaved, Done, Error, EvalResult, Log, StepMetrics
from engine.model.loading import ModelLoadError, read_sidecar
from engine.train.config import TrainConfig
from engine.train.loop import TrainingError, check_out_dir, train
from engine.train.runs import LAST_CHECKPOINT, read_metrics

from .latency import LatencyProbe
from .run_views import RunMonitor
from .state import AppState
from .train_controls import TrainControls
from .train_state import (RunClock, curves_from_metrics, empty_curves,
                          format_duration, fresh_out_dir, panel_presets, resume_config,
                          run_files_in, ui_threads)
from .workers import EventWorker

log = logging.getLogger(__name__)

REDRAW_MS = 100  # curves, progress and ETA refresh at most 10x per second
# While a run is on, the GIL changes hands every 0.5 ms instead of 5: the GUI thread gives it up
# at each Qt call, and with the default a CPU-bound trainer keeps it 5 ms every time.
RUN_SWITCH_INTERVAL_S = 0.0005


class TrainPanel(QWidget):
    """The training form, live curves and metrics, and the checkpoint hand-off to the app."""

    run_started = Signal(object)  # the TrainConfig of the run
    run_finished = Signal(object)  # Done or Error, once the worker thread has ended
    checkpoint_saved = Signal(str)  # path

    def __init__(self, state: AppState, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.state = state
        self.worker: Optional[EventWorker] = None
        self.config: Optional[TrainConfig] = None  # of the current (or last) run
        self.outcome: Optional[Union[Done, Error]] = None  # of the last finished run
        self.checkpoint_path: Optional[str] = None
        self.checkpoint_step = 0
        self.curves = empty_curves()
        self.history: dict[str, list[float]] = self.curves.history  # the per-step curves
        self.clock = RunClock()
        self.latency_probe = LatencyProbe(parent=self)
        self._presets = panel_presets()
        self._dirty = False
        self._closed = False
        self._x_span: Optional[tuple[int, int]] = None
        self._switch_interval = sys.getswitchinterval()

        self._build()
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self._refresh)
        self.runs_list.run_chosen.connect(self.open_run)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.resume_button.clicked.connect(self._browse_resume)
        for side, button in self.use_buttons.items():
            button.clicked.connect(lambda _=False, s=side: self.use_checkpoint(s))
        self.form.preset_combo.textActivated.connect(self.apply_preset)
        self.apply_preset(self.form.preset_combo.currentText())
        self._set_running(False)

    # -- layout ------------------------------------------------------------------------------------

    def _build(self) -> None:
        self.controls = TrainControls(self._presets)
        c = self.controls
        self.form, self.runs_list, self.use_buttons = c.form, c.runs_list, c.use_buttons
        self.start_button, self.stop_button = c.start_button, c.stop_button
        self.resume_button, self.checkpoint_label = c.resume_button, c.checkpoint_label

        self.monitor = RunMonitor()
        m = self.monitor
        self.progress_bar, self.eta_label, self.error_label = m.progress_bar, m.eta_label, m.error_label
        self.plots, self.metrics_table, self.log_view = m.plots, m.metrics_table, m.log_view
        outer = QHBoxLayout(self)
        outer.addWidget(self.controls)
        outer.addWidget(self.monitor, 1)

    # -- the form ----------------------------------------------------------------------------------

    def set_form(self, cfg: TrainConfig) -> None:
        """Show ``cfg`` in the form (its other fields become the base of the next run) and list
        the runs beside its output folder."""
        self.form.set_form(cfg)
        if not self.runs_list.root_edit.text():
            self.runs_list.set_root(str(Path(cfg.out_dir).parent) if cfg.out_dir else cfg.runs_root)

    def apply_preset(self, name: str) -> None:
        """Fill the form from a named preset (one of ``panel_presets()``)."""
        self.form.preset_combo.setCurrentText(name)
        self.set_form(self._presets[name])

    def _browse_resume(self) -> None:
        start = self.checkpoint_path or self.form.out_dir_edit.text()
        path, _ = QFileDialog.getOpenFileName(self, "Resume from checkpoint", start,
                                              "Checkpoints (*.pt *.pth)")
        if path:
            self.resume_from(path)

    # -- running -----------------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self.worker is not None

    def start(self) -> bool:
        """Start a fresh run from the form; False (and the reason shown) if it cannot start.

        An output folder that holds another run is not overwritten without asking.
        """
        try:
            cfg = self.form.form_config()
        except ValueError as exc:
            self._show_error(str(exc))
            return False
        cfg = self._settle_used_out_dir(cfg)
        if cfg is None:
            self._log("not started: the output folder holds another run")
            return False
        try:
            check_out_dir(cfg)  # a file, a read-only folder: say so before a thread starts
        except TrainingError as exc:
            self._show_error(str(exc))
            return False
        self._clear_views()
        self._launch(cfg)
        return True

    def _settle_used_out_dir(self, cfg: TrainConfig) -> Optional[TrainConfig]:
        """``cfg`` as the user wants it when its out_dir holds a run: in a new folder beside
        it (the default), overwriting it, or None (cancelled)."""
        used = run_files_in(cfg.out_dir)
        if not used or cfg.overwrite:
            return cfg
        fresh = fresh_out_dir(cfg.out_dir)
        box = QMessageBox(QMessageBox.Question, "Output folder in use",
                          f"{cfg.out_dir} already holds a run ({', '.join(used)}).", parent=self)
        box.setInformativeText(f"Start this run in a new folder, {fresh}, or overwrite the "
                               "earlier run? (To continue it, use Resume from checkpoint.)")
        new_button = box.addButton(f"New folder: {fresh.name}", QMessageBox.AcceptRole)
        overwrite_button = box.addButton("Overwrite", QMessageBox.DestructiveRole)
        box.addButton(QMessageBox.Cancel)
        box.setDefaultButton(new_button)
        box.exec()
        if box.clickedButton() is new_button:
            self.form.out_dir_edit.setText(str(fresh))
            return replace(cfg, out_dir=str(fresh))
        if box.clickedButton() is overwrite_button:
            self._log(f"overwriting the run in {cfg.out_dir}", "warning")
            return replace(cfg, overwrite=True)
        return None

    def resume_from(self, checkpoint: Union[str, Path]) -> bool:
        """Continue the run saved in ``checkpoint`` (its recipe fills the form)."""
        # Unvalidated on purpose: the sidecar's recipe wins, only the device and threads are
        # taken from here, so a half-edited form does not block a resume.
        base = self.form.base
        current = replace(base, **self.form.form_values(), threads=base.threads or ui_threads())
        try:
            cfg = resume_config(checkpoint, current)
        except ValueError as exc:
            self._show_error(str(exc))
            return False
        # The panel's own last checkpoint: keep the curves up to it, the new steps extend them.
        continuing = self.checkpoint_path is not None and \
            Path(self.checkpoint_path).resolve() == Path(checkpoint).resolve()
        self._clear_views(keep_until=self.checkpoint_step if continuing else None)
        self.set_form(cfg)
        self._launch(cfg)
        return True

    def stop(self) -> None:
        """Ask the run to stop after its current step (it saves a checkpoint first)."""
        if self.worker is not None:
            self.worker.cancel()
            self.stop_button.setEnabled(False)

    def shutdown(self) -> None:
        """Stop a running job and wait for its thread (the window is closing)."""
        self._closed = True
        self._redraw_timer.stop()
        self.latency_probe.stop()
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait()
            sys.setswitchinterval(self._switch_interval)

    def _launch(self, cfg: TrainConfig) -> None:
        self.config, self.outcome = cfg, None
        self.clock.start(time.perf_counter())
        self.error_label.hide()
        worker = EventWorker(lambda stop: train(cfg, stop), name="train")
        worker.step.connect(self._on_step)
        worker.evaluated.connect(self._on_eval)
        worker.checkpoint.connect(self._on_checkpoint)
        worker.log.connect(self._on_log)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.done.connect(self._on_worker_done)
        self.worker = worker
        self._set_running(True)
        what = f"resuming {cfg.resume}" if cfg.resume else "started"
        self._log(f"— {what}: {cfg.model} on {cfg.dataset}, α={cfg.alpha:g} β={cfg.beta:g} "
                  f"γ={cfg.gamma:g}, n={cfg.n_projections}, batch {cfg.batch_size}, lr {cfg.lr:g}, "
                  f"{cfg.epochs} epoch(s), {cfg.threads} torch thread(s) → {cfg.out_dir}")
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(RUN_SWITCH_INTERVAL_S)
        self.latency_probe.start()
        self._redraw_timer.start()
        worker.start()
        self.run_started.emit(cfg)

    def _set_running(self, running: bool) -> None:
        self.form.setEnabled(not running)
        self.start_button.setEnabled(not running)
        self.resume_button.setEnabled(not running)
        self.runs_list.setEnabled(not running)  # opening a run would mix its curves with this one's
        self.stop_button.setEnabled(running)
        has_checkpoint = self.checkpoint_path is not None and Path(self.checkpoint_path).is_file()
        for button in self.use_buttons.values():
            button.setEnabled(has_checkpoint)

    def _clear_views(self, keep_until: Optional[int] = None) -> None:
        """Empty curves and metrics, or (continuing a run) drop what came after ``keep_until``."""
        self.curves.keep_until(keep_until)
        self.metrics_table.setRowCount(0)
        for result in self.curves.evals:
            self.metrics_table.add_row(result)
        if keep_until is None:
            self.checkpoint_path, self.checkpoint_step = None, 0
            self.checkpoint_label.setText("no checkpoint yet")
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self._x_span = None
        self._dirty = True
        self._refresh()

    # -- events (GUI thread) -----------------------------------------------------------------------

    def _on_step(self, event: StepMetrics) -> None:
        self.clock.step(event, time.perf_counter())
        self.curves.add_step(event)
        self._dirty = True  # drawn by the next _refresh tick, however many steps arrive before it

    def _on_eval(self, event: EvalResult) -> None:
        self.curves.add_eval(event)
        if event.split == "zeroshot":
            self._dirty = True
            self._log(f"epoch {event.epoch} (step {event.step}) zero-shot accuracy: plain "
                      f"{event.metrics.get('plain', math.nan):.3f}, negated "
                      f"{event.metrics.get('negated', math.nan):.3f}")
            return
        self.metrics_table.add_row(event)
        summary = ", ".join(f"{k} {v:.3f}" for k, v in event.metrics.items())
        self._log(f"epoch {event.epoch} (step {event.step}) {event.split}: {summary}")

    def _on_checkpoint(self, event: CheckpointSaved) -> None:
        self.checkpoint_path, self.checkpoint_step = event.path, event.step
        self.checkpoint_label.setText(f"step {event.step}: {event.path}")
        self._log(f"checkpoint saved (step {event.step}): {event.path}")
        for button in self.use_buttons.values():
            button.setEnabled(True)
        self.checkpoint_saved.emit(event.path)

    def _on_log(self, event: Log) -> None:
        self._log(event.message, event.level)

    def _on_finished(self, done: Done) -> None:
        self.outcome = done
        self._refresh()
        step = done.result.step if done.result is not None else "?"
        if done.stopped:
            self._log(f"stopped at step {step}")
        else:
            self.progress_bar.setValue(self.progress_bar.maximum())
            self._log(f"finished: step {step}")

    def _on_failed(self, error: Error) -> None:
        self.outcome = error
        self._show_error(f"training failed ({error.kind}): {error.message}")

    def _on_worker_done(self) -> None:
        self.worker = None
        sys.setswitchinterval(self._switch_interval)
        self.latency_probe.stop()
        self._redraw_timer.stop()
        self._refresh()
        stats = self.latency_probe.stats()
        self._log(f"UI latency during the run: {stats} ({stats.samples} samples)")
        log.info("training run ended; UI latency %s", stats)
        elapsed = format_duration(time.perf_counter() - self.clock.started)
        ending = "stopped" if isinstance(self.outcome, Done) and self.outcome.stopped else (
            "failed" if isinstance(self.outcome, Error) else "done")
        self.eta_label.setText(f"{ending} after {elapsed}")
        if not self._closed:
            self._set_running(False)
            self.runs_list.refresh()
        self.run_finished.emit(self.outcome)

    # -- display -----------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Redraw curves, progress and ETA (timer-driven while a run is going on)."""
        if self.worker is not None:
            self.eta_label.setText(self.clock.text(time.perf_counter(),
                                                   stopping=self.worker.stop_flag.is_set()))
        if not self._dirty:
            return
        self._dirty = False
        last = self.clock.last
        if last is not None:
            # A fixed x span (the whole run) spares re-laying the step axis out every frame,
            # and the curve growing across it shows the progress too.
            span = (self.history["step"][0] - 1 if self.history["step"] else 0,
                    max(last.total_steps, last.step))
            if span != self._x_span:
                self._x_span = span
                self._set_x_span(span)
        self.plots.draw(self.history, self.curves.zeroshot)
        if last is not None:
            self.progress_bar.setRange(0, max(1, last.total_steps))
            self.progress_bar.setValue(last.step)

    def _set_x_span(self, span: tuple[int, int]) -> None:
        self._x_span = span
        self.plots.set_x_span(span)

    def open_run(self, run_dir: Union[str, Path]) -> None:
        """Draw a past run's curves, metrics and zero-shot points from its ``metrics.jsonl``;
        its last checkpoint becomes the one the Use buttons load."""
        if self.is_running():
            return
        run_dir = Path(run_dir)
        self._clear_views()
        self.clock.last = None
        self.curves.replace_with(curves_from_metrics(read_metrics(run_dir / "metrics.jsonl")))
        for result in self.curves.evals:
            self.metrics_table.add_row(result)
        if self.history["step"]:
            self._set_x_span((self.history["step"][0] - 1, self.history["step"][-1]))
        checkpoint = run_dir / LAST_CHECKPOINT
        if checkpoint.is_file():
            self.checkpoint_path = str(checkpoint)
            try:
                self.checkpoint_step = int(read_sidecar(checkpoint).get("step", 0))
            except ModelLoadError:  # no sidecar: the step is unknown
                self.checkpoint_step = 0
            self.checkpoint_label.setText(f"step {self.checkpoint_step}: {checkpoint}")
        self._set_running(False)
        self._dirty = True
        self._refresh()
        self._log(f"opened run {run_dir}: {len(self.history['step'])} steps, "
                  f"{len(self.curves.evals)} evaluations, "
                  f"{len(self.curves.zeroshot['step'])} zero-shot points")

    def _show_error(self, message: str) -> None:
        self.monitor.show_error(message)

    def _log(self, message: str, level: str = "info") -> None:
        self.monitor.log(message, level)

    # -- hand-off --------------------------------------------------------------------------------

    def use_checkpoint(self, side: str) -> None:
        """Load the latest checkpoint on ``side`` of the app (in the background)."""
        if not self.checkpoint_path:
            return
        cfg = self.config or self.form.base
        label = f"{cfg.name or Path(cfg.out_dir).name}@{self.checkpoint_step}"
        self._log(f"loading {self.checkpoint_path} as the {side} model ({label})")
        self.state.load_model_async(side, self.checkpoint_path, label=label)
