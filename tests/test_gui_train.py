"""The Train panel as a user drives it: fill the form, Start, Stop, Resume, bad input, a live UI,
past runs and the zero-shot plot."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from engine.events import Done, Error
from engine.model.loading import load_model
from engine.train.config import TrainConfig
from engine.train.loop import train
from engine.train.runs import read_metrics
from semclip_gui.latency import LatencyProbe
from semclip_gui.train_panel import TrainPanel
from semclip_gui.train_state import (config_from_form, eta_seconds, format_duration, fresh_out_dir,
                                     panel_presets, ui_threads)

LOSS_CURVES = ("total", "contrastive", "paraphrase", "negation")


@pytest.fixture
def panel(qtbot, app_state):
    panel = TrainPanel(app_state)
    qtbot.addWidget(panel)
    panel.resize(1200, 720)
    panel.show()  # painted for real (offscreen), so redraws compete with the run as in the app
    qtbot.waitExposed(panel)
    yield panel
    panel.shutdown()


@pytest.fixture(autouse=True)
def no_unexpected_dialogs(monkeypatch):
    """A modal box nobody answers would hang the suite: fail instead."""
    def refuse(box):
        raise AssertionError(f"unexpected dialog: {box.text()}")
    monkeypatch.setattr(QMessageBox, "exec", refuse)


def answer_dialogs(monkeypatch, answer: str) -> list[str]:
    """Answer every QMessageBox by clicking the button whose label starts with ``answer`` (""
    clicks the default one); returns what each box said."""
    said = []

    def click(box):
        said.append(f"{box.text()} {box.informativeText()}")
        button = box.defaultButton() if not answer else next(
            b for b in box.buttons() if b.text().replace("&", "").startswith(answer))
        button.click()
        return 0
    monkeypatch.setattr(QMessageBox, "exec", click)
    return said


def fill(panel: TrainPanel, out_dir: Path, scenes: int = 64, epochs: int = 1, batch: int = 16) -> None:
    """Type a tiny shapes run into the form, as a user would."""
    panel.apply_preset("tiny demo (fast)")
    panel.form.dataset_combo.setCurrentIndex(0)
    panel.form.model_combo.setCurrentText("semclip-shapes-tiny")
    panel.form.scenes_spin.setValue(scenes)
    panel.form.eval_scenes_spin.setValue(16)
    panel.form.batch_spin.setValue(batch)
    panel.form.epochs_spin.setValue(epochs)
    panel.form.lr_spin.setValue(1e-3)
    panel.form.device_combo.setCurrentIndex(panel.form.device_combo.findData("cpu"))
    panel.form.out_dir_edit.setText(str(out_dir))


def click_and_wait(qtbot, panel: TrainPanel, button, timeout: int = 60_000):
    """Click ``button`` and return the run's outcome (Done or Error)."""
    with qtbot.waitSignal(panel.run_finished, timeout=timeout) as blocker:
        qtbot.mouseClick(button, Qt.LeftButton)
    return blocker.args[0]


def test_the_form_builds_the_config_and_presets_fill_it(panel, tmp_path):
    fill(panel, tmp_path / "run", scenes=128, epochs=3)
    panel.form.gamma_spin.setValue(0.5)
    panel.form.projections_spin.setValue(3)
    panel.form.projections_combo.setCurrentText("learnable")
    panel.form.hard_negatives_check.setChecked(True)
    panel.form.max_steps_spin.setValue(5)
    cfg = config_from_form(panel.form.form_values(), panel.form.base, cpu_count=2)
    assert (cfg.model, cfg.dataset, cfg.shapes_train_size, cfg.epochs, cfg.max_steps) == \
        ("semclip-shapes-tiny", "shapes", 128, 3, 5)
    assert (cfg.gamma, cfg.n_projections, cfg.learnable_projections, cfg.hard_negatives) == \
        (0.5, 3, True, True)
    assert (cfg.device, cfg.out_dir, cfg.lr) == ("cpu", str(tmp_path / "run"), 1e-3)
    assert cfg.threads == ui_threads(2) == 1  # one of two cores is left to the UI
    assert cfg.lock_image is False  # not on the form: from the preset

    panel.apply_preset("shapes-demo: CLIP baseline")
    clip = panel.form.form_config()
    assert (clip.model, clip.beta, clip.gamma, clip.text_unlocked_layers) == \
        ("semclip-photo-minilm", 0.0, 0.0, 3)
    semclip = panel_presets()["shapes-demo: SemCLIP"]
    panel.set_form(semclip)
    assert config_from_form(panel.form.form_values(), panel.form.base, cpu_count=8) == \
        TrainConfig(**{**semclip.to_dict(), "threads": 7})

    bad_values = [({"model": " "}, "choose a model"),
                  ({"dataset": str(tmp_path / "x.csv")}, "not found"),
                  ({"alpha": 0.0, "beta": 0.0, "gamma": 0.0}, "not all 0"),
                  ({"lr": 0.0}, "learning rate")]
    for bad, message in bad_values:
        with pytest.raises(ValueError, match=message):
            config_from_form({**panel.form.form_values(), **bad}, panel.form.base)
    tsv = tmp_path / "t.tsv"  # the trainer reads TSV, so the form takes it
    tsv.write_text("image\tcaption\tparaphrase\tnegation\n")
    assert config_from_form({**panel.form.form_values(), "dataset": str(tsv)}).dataset == str(tsv)
    assert eta_seconds(step=15, total_steps=40, first_step=10, seconds=2.0) == pytest.approx(10.0)
    assert eta_seconds(10, 40, 10, 2.0) is None and format_duration(3725) == "1:02:05"


def test_a_tiny_run_draws_every_curve_fills_the_table_and_hands_over_its_checkpoint(
        qtbot, panel, app_state, tmp_path):
    fill(panel, tmp_path / "run", scenes=64, epochs=2)  # 4 steps per epoch
    outcome = click_and_wait(qtbot, panel, panel.start_button)
    assert isinstance(outcome, Done) and not outcome.stopped
    for name in (*LOSS_CURVES, "lr"):
        x, y = panel.plots.curves[name].getData()
        assert list(x) == [1, 2, 3, 4, 5, 6, 7, 8] and len(y) == 8, name
    # the shapes loss has no claim term: its curve stays out of the plot and the legend
    legend = [label.text for _, label in panel.plots.loss_plot.getPlotItem().legend.items]
    assert "claims" not in legend and "negation" in legend
    assert not panel.plots.curves["claims"].isVisible()
    assert panel.metrics_table.rowCount() == 2
    assert [panel.metrics_table.item(1, col).text() for col in (0, 1)] == ["2", "8"]
    assert panel.progress_bar.value() == panel.progress_bar.maximum() == 8
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    assert checkpoint.is_file() and panel.checkpoint_path == str(checkpoint)
    assert "checkpoint saved (step 8)" in panel.log_view.toPlainText()
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()
    assert not panel.error_label.isVisible()

    assert panel.use_buttons["right"].isEnabled()
    with qtbot.waitSignal(app_state.model_changed, timeout=30_000):
        qtbot.mouseClick(panel.use_buttons["right"], Qt.LeftButton)
    assert app_state.model("right").spec == str(checkpoint)
    assert app_state.label("right") == "tiny-demo@8"


def test_stop_midway_keeps_a_loadable_checkpoint_and_resume_continues(qtbot, panel, tmp_path,
                                                                      monkeypatch):
    fill(panel, tmp_path / "long", scenes=4096, epochs=1)  # 256 steps: far more than we wait for
    qtbot.mouseClick(panel.start_button, Qt.LeftButton)
    assert not panel.start_button.isEnabled() and not panel.form.isEnabled()
    qtbot.waitUntil(lambda: len(panel.history["step"]) >= 1, timeout=30_000)
    outcome = click_and_wait(qtbot, panel, panel.stop_button)
    assert isinstance(outcome, Done) and outcome.stopped
    stopped_at = outcome.result.step
    assert 1 <= stopped_at < 256 and panel.checkpoint_step == stopped_at
    checkpoint = tmp_path / "long" / "checkpoint.pt"
    assert load_model(str(checkpoint)).model is not None

    panel.form.model_combo.setCurrentText("")  # a half-edited form: the checkpoint's recipe wins
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(checkpoint), ""))
    qtbot.mouseClick(panel.resume_button, Qt.LeftButton)
    assert panel.config.resume == str(checkpoint)
    assert panel.form.model_combo.currentText() == "semclip-shapes-tiny"
    qtbot.waitUntil(lambda: len(panel.history["step"]) >= stopped_at + 1, timeout=30_000)
    outcome = click_and_wait(qtbot, panel, panel.stop_button)
    assert isinstance(outcome, Done) and outcome.stopped
    steps = panel.history["step"]
    assert steps[:stopped_at + 1] == list(range(1, stopped_at + 2))  # the curve goes on, no restart
    assert panel.progress_bar.maximum() == 256
    assert f"resumed from {checkpoint} at step {stopped_at}" in panel.log_view.toPlainText()


def test_bad_input_is_shown_in_the_panel(qtbot, panel, tmp_path):
    fill(panel, tmp_path / "run")
    panel.form.dataset_combo.setCurrentIndex(1)
    panel.form.triples_edit.setText(str(tmp_path / "missing.csv"))
    qtbot.mouseClick(panel.start_button, Qt.LeftButton)  # refused before any thread starts
    assert not panel.is_running()
    assert panel.error_label.isVisible() and "triples file not found" in panel.error_label.text()

    malformed = tmp_path / "bad.csv"
    malformed.write_text("image,caption\nx.png,a cat\n")
    panel.form.triples_edit.setText(str(malformed))
    outcome = click_and_wait(qtbot, panel, panel.start_button)
    assert isinstance(outcome, Error) and outcome.kind == "input"
    assert "lacks column" in panel.error_label.text() and "bad.csv" in panel.error_label.text()
    assert "training failed" in panel.log_view.toPlainText()

    panel.form.dataset_combo.setCurrentIndex(0)
    panel.form.model_combo.setCurrentText("no-such-architecture")  # raises inside the worker
    outcome = click_and_wait(qtbot, panel, panel.start_button)
    assert isinstance(outcome, Error) and "no-such-architecture" in panel.error_label.text()
    assert "Traceback" not in panel.error_label.text()
    assert panel.start_button.isEnabled()


def ticks_per_second(probe: LatencyProbe, seconds: float) -> float:
    return probe.stats().samples / seconds


def test_the_event_loop_keeps_running_while_training(qtbot, panel, tmp_path):
    """The loop handles a 10 ms timer during a run at a fair share of its idle rate, both
    measured here under whatever load the machine has (the latency figure itself is in
    bench/ui_latency.py). A loop blocked by the run would tick about once."""
    idle = LatencyProbe(parent=panel)
    t0 = time.perf_counter()
    idle.start()
    qtbot.wait(500)
    idle.stop()
    idle_rate = ticks_per_second(idle, time.perf_counter() - t0)

    fill(panel, tmp_path / "run", scenes=512, epochs=1)  # 32 steps, a few seconds
    t0 = time.perf_counter()
    outcome = click_and_wait(qtbot, panel, panel.start_button)
    run_rate = ticks_per_second(panel.latency_probe, time.perf_counter() - t0)
    assert isinstance(outcome, Done)
    print(f"timer ticks/s: idle {idle_rate:.0f}, training {run_rate:.0f}")
    assert panel.latency_probe.stats().samples > 32  # more ticks than training steps
    assert run_rate > 0.1 * idle_rate
    assert "UI latency during the run" in panel.log_view.toPlainText()


def test_closing_mid_run_stops_the_job_and_waits_for_it(qtbot, panel, tmp_path):
    fill(panel, tmp_path / "run", scenes=4096)
    qtbot.mouseClick(panel.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(panel.history["step"]) >= 1, timeout=30_000)
    worker = panel.worker
    panel.shutdown()  # what MainWindow.closeEvent calls
    assert worker.stop_flag.is_set() and worker.wait(0)  # the thread has ended
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_a_used_output_folder_is_not_overwritten_without_asking(qtbot, panel, tmp_path,
                                                                 monkeypatch):
    run = tmp_path / "run"
    fill(panel, run, scenes=64)  # 4 steps
    assert isinstance(click_and_wait(qtbot, panel, panel.start_button), Done)
    first = (run / "checkpoint.pt").read_bytes()

    said = answer_dialogs(monkeypatch, "Cancel")
    qtbot.mouseClick(panel.start_button, Qt.LeftButton)
    assert not panel.is_running() and not (tmp_path / "run-2").exists()
    assert str(run) in said[0] and "checkpoint.pt" in said[0] and "run-2" in said[0]

    answer_dialogs(monkeypatch, "")  # the default: a new folder beside it
    assert isinstance(click_and_wait(qtbot, panel, panel.start_button), Done)
    assert panel.form.out_dir_edit.text() == str(tmp_path / "run-2")
    assert (tmp_path / "run-2" / "checkpoint.pt").is_file()
    assert (run / "checkpoint.pt").read_bytes() == first  # the earlier run untouched
    assert fresh_out_dir(run) == tmp_path / "run-3"

    panel.form.out_dir_edit.setText(str(run))
    answer_dialogs(monkeypatch, "Overwrite")
    assert isinstance(click_and_wait(qtbot, panel, panel.start_button), Done)
    assert panel.config.out_dir == str(run) and not (tmp_path / "run-3").exists()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "step"] == [1, 2, 3, 4]  # this run's only
    assert "overwriting the run in" in panel.log_view.toPlainText()


def test_an_output_folder_that_cannot_be_used_is_shown_before_anything_starts(qtbot, panel,
                                                                              tmp_path):
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    fill(panel, taken)
    qtbot.mouseClick(panel.start_button, Qt.LeftButton)
    assert not panel.is_running()
    assert panel.error_label.isVisible() and "is a file" in panel.error_label.text()
    assert str(taken) in panel.error_label.text()


# --- past runs and the zero-shot plot ---------------------------------------------------------

def zeroshot_points(panel: TrainPanel, name: str) -> list[tuple[float, float]]:
    x, y = panel.plots.zeroshot_curves[name].getData()
    return list(zip(x.tolist(), y.tolist())) if x is not None else []


def logged(run: Path, kind: str) -> list[dict]:
    return [r for r in read_metrics(run / "metrics.jsonl") if r["type"] == kind]


def click_row(qtbot, table, row: int) -> None:
    rect = table.visualItemRect(table.item(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.LeftButton, pos=rect.center())


def test_past_runs_are_listed_and_a_click_shows_that_runs_curves(qtbot, panel, tmp_path,
                                                                two_class_folder):
    root = tmp_path / "runs"
    # run 1 from the panel, with a zero-shot folder: its points appear live
    fill(panel, root / "from-the-panel", scenes=32, epochs=2)  # 2 steps per epoch
    panel.form.zeroshot_edit.setText(str(two_class_folder))
    outcome = click_and_wait(qtbot, panel, panel.start_button)
    assert isinstance(outcome, Done) and not outcome.stopped
    first = root / "from-the-panel"
    expected = [(r["step"], r["plain"]) for r in logged(first, "zeroshot")]
    assert [step for step, _ in expected] == [2, 4]
    assert zeroshot_points(panel, "plain") == expected
    assert zeroshot_points(panel, "negated") == [(r["step"], r["negated"])
                                                 for r in logged(first, "zeroshot")]

    # run 2 from the command line's engine: 3 epochs, a best checkpoint, no zero-shot folder
    second = root / "second"
    cfg = TrainConfig(model="semclip-tiny", lock_image=False, shapes_train_size=32,
                      shapes_eval_size=16, batch_size=16, epochs=3, lr=1e-3, warmup_steps=1,
                      threads=1, out_dir=str(second), best_metric="val/ono_accuracy")
    assert isinstance(list(train(cfg))[-1], Done)

    panel.runs_list.set_root(str(root))
    table = panel.runs_list.table
    assert table.rowCount() == 2
    rows = {table.item(r, 0).text(): r for r in range(2)}
    assert set(rows) == {"from-the-panel", "second"}
    assert table.item(rows["second"], 2).text() == "6"
    best = max(r["ono_accuracy"] for r in logged(second, "eval"))
    assert table.item(rows["second"], 3).text() == f"val/ono_accuracy {best:.3f}"
    assert table.item(rows["from-the-panel"], 3).text() == "–"

    click_row(qtbot, table, rows["second"])
    steps = logged(second, "step")
    for name, key in (("total", "total"), ("lr", "lr")):
        x, y = panel.plots.curves[name].getData()
        assert list(x) == [s["step"] for s in steps]
        assert list(y) == pytest.approx([s[key] for s in steps], rel=1e-12), name
    assert panel.metrics_table.rowCount() == 3
    assert [panel.metrics_table.item(2, col).text() for col in (0, 1)] == ["3", "6"]
    assert zeroshot_points(panel, "plain") == []  # that run had no zero-shot folder
    assert panel.checkpoint_path == str(second / "checkpoint.pt")

    click_row(qtbot, table, rows["from-the-panel"])  # and back: the first run's points again
    assert zeroshot_points(panel, "plain") == expected
    assert list(panel.plots.curves["total"].getData()[0]) == [1, 2, 3, 4]


def test_the_forms_tooltips_are_the_configs_own_help_texts(qtbot):
    from engine.train.config import field_help
    from semclip_gui.train_form import TrainForm
    from semclip_gui.train_state import panel_presets

    form = TrainForm(panel_presets())
    qtbot.addWidget(form)
    widgets = form.field_widgets()
    assert {"alpha", "beta", "gamma", "lr", "model", "dataset", "zeroshot_dataset"} <= set(widgets)
    for name, widget in widgets.items():
        assert widget.toolTip() == f"{name}: {field_help(name)}" and field_help(name)


def test_a_run_with_the_claim_term_draws_its_curve_and_names_it_in_the_legend(qtbot):
    import math

    from semclip_gui.run_views import RunPlots
    from semclip_gui.train_state import CURVE_KEYS

    plots = RunPlots()
    qtbot.addWidget(plots)

    def legend() -> list[str]:
        return [label.text for _, label in plots.loss_plot.getPlotItem().legend.items]

    def history(claims: list[float]) -> dict[str, list[float]]:
        return {"step": [1, 2], **{name: [0.5, 0.4] for name in CURVE_KEYS}, "claims": claims}

    no_zeroshot = {"step": [], "plain": [], "negated": []}
    assert "claims" not in legend()
    plots.draw(history([0.9, 0.7]), no_zeroshot)
    assert "claims" in legend() and plots.curves["claims"].isVisible()
    assert list(plots.curves["claims"].getData()[1]) == [0.9, 0.7]
    plots.draw(history([math.nan, math.nan]), no_zeroshot)  # a run of the paper's loss
    assert "claims" not in legend() and not plots.curves["claims"].isVisible()
