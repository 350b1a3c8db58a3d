"""The Train tab's state without Qt: a live run's curves and clock."""

from __future__ import annotations

import math

from engine.events import EvalResult, StepMetrics
from semclip_gui.train_state import RunClock, curves_from_metrics, empty_curves


def step(n: int, total: int = 10, loss: float = 1.0) -> StepMetrics:
    return StepMetrics(step=n, total_steps=total, epoch=1, lr=1e-3,
                       losses={"total": loss, "contrastive_loss": loss / 2}, samples_per_s=32.0)


def test_curves_grow_by_step_and_evaluation_and_a_resume_drops_what_came_after():
    curves = empty_curves()
    for n in range(1, 5):
        curves.add_step(step(n, loss=float(n)))
    curves.add_eval(EvalResult(step=2, epoch=1, split="val", metrics={"ono_accuracy": 0.5}))
    curves.add_eval(EvalResult(step=4, epoch=2, split="val", metrics={"ono_accuracy": 0.7}))
    curves.add_eval(EvalResult(step=4, epoch=2, split="zeroshot", metrics={"plain": 0.4}))
    assert curves.history["step"] == [1, 2, 3, 4] and curves.history["total"] == [1, 2, 3, 4]
    assert curves.history["contrastive"] == [0.5, 1.0, 1.5, 2.0]
    assert math.isnan(curves.history["negation"][0]) and curves.history["lr"] == [1e-3] * 4
    assert curves.zeroshot["step"] == [4] and math.isnan(curves.zeroshot["negated"][0])
    curves.keep_until(2)  # resumed from the step-2 checkpoint
    assert curves.history["step"] == [1, 2] and [e.step for e in curves.evals] == [2]
    assert curves.zeroshot["step"] == []
    curves.keep_until(None)
    assert curves.history["step"] == [] and curves.evals == []


def test_a_past_run_replaces_the_curves_in_the_same_lists():
    curves = empty_curves()
    history = curves.history
    curves.add_step(step(1))
    past = curves_from_metrics([{"type": "step", "step": 7, "total": 0.3, "lr": 1e-4},
                                {"type": "eval", "step": 7, "epoch": 1, "ono_accuracy": 0.9}])
    curves.replace_with(past)
    assert curves.history is history and history["step"] == [7]
    assert [e.metrics for e in curves.evals] == [{"ono_accuracy": 0.9}]


def test_the_clock_counts_the_eta_from_this_runs_own_first_step():
    clock = RunClock()
    clock.start(100.0)
    assert clock.text(130.0) == "loading… 0:30"
    clock.step(step(5, total=15), now=160.0)  # a resumed run: steps 1-4 came before
    assert clock.text(160.0).endswith("ETA –")  # one step's time is not known yet
    clock.step(step(7, total=15), now=170.0)  # 2 steps in 10 s: 8 left take 40 s
    assert clock.text(170.0) == "epoch 1 · 32 samples/s · 1:10 elapsed · ETA 0:40"
    assert clock.text(171.0, stopping=True) == "stopping… 1:11"
