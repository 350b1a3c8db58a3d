"""Run folders and checkpoint retention, as ``semclip train`` users meet them: one folder per run
under a root, a named or timestamped folder, the last / best / every-N-steps checkpoints, and
``resume=latest``."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from engine.cli.commands import main
from engine.events import Error
from engine.train.config import TrainConfig
from engine.train.loop import train
from engine.train.runs import improves, latest_checkpoint, list_runs, read_metrics

STEPS_PER_EPOCH = 4  # 64 scenes / batch 16
TIMESTAMPED = re.compile(r"^\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}-model_semclip-tiny-lr_0\.001-b_16"
                         r"(-\d+)?$")


def tiny(root: Path, **kw) -> TrainConfig:
    """A 4-step-per-epoch semclip-tiny run in its own folder under ``root``."""
    base = TrainConfig(model="semclip-tiny", lock_image=False, shapes_train_size=64,
                       shapes_eval_size=16, batch_size=16, epochs=1, lr=1e-3, warmup_steps=1,
                       runs_root=str(root), threads=1, eval_every_epochs=0)
    return replace(base, **kw)


def semclip_train(tmp_path: Path, cfg: TrainConfig, *extra: str) -> int:
    path = tmp_path / "cfg.json"
    cfg.to_json(path)
    return main(["train", "--config", str(path), "--quiet", *extra])


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# --- folders ---------------------------------------------------------------------------------

def test_each_run_gets_its_own_timestamped_folder_under_the_root(tmp_path):
    root = tmp_path / "runs"
    assert semclip_train(tmp_path, tiny(root)) == 0
    assert semclip_train(tmp_path, tiny(root)) == 0  # the same config again: a second run
    runs = sorted(root.iterdir())
    assert len(runs) == 2
    for run in runs:
        assert TIMESTAMPED.match(run.name), run.name
        assert {"checkpoint.pt", "checkpoint.json", "metrics.jsonl", "config.json"} <= files(run)
        saved = json.loads((run / "config.json").read_text())
        assert saved["out_dir"] == str(run)  # config.json resumes in this very folder


def test_run_name_names_the_folder_and_a_used_name_is_refused(tmp_path, capsys):
    root = tmp_path / "runs"
    cfg = tiny(root, run_name="first")
    assert semclip_train(tmp_path, cfg) == 0
    assert files(root) == {"first"}
    before = (root / "first" / "checkpoint.pt").read_bytes()
    assert semclip_train(tmp_path, cfg) == 2
    assert f"out_dir {root / 'first'} already holds a run" in capsys.readouterr().err
    assert (root / "first" / "checkpoint.pt").read_bytes() == before
    # an explicit out_dir is used as it is, the root ignored (today's behaviour)
    assert semclip_train(tmp_path, replace(cfg, out_dir=str(tmp_path / "mine"))) == 0
    assert files(root) == {"first"} and (tmp_path / "mine" / "checkpoint.pt").is_file()


# --- which checkpoints are kept ----------------------------------------------------------------

def test_every_n_steps_keeps_the_last_n_step_checkpoints(tmp_path):
    root = tmp_path / "runs"
    cfg = tiny(root, run_name="r", epochs=2, save_every_steps=2, keep_last_n=2)
    assert semclip_train(tmp_path, cfg) == 0
    run = root / "r"
    assert sorted(p.name for p in run.glob("step_*")) == ["step_6.json", "step_6.pt",
                                                           "step_8.json", "step_8.pt"]
    assert json.loads((run / "step_6.json").read_text())["step"] == 6
    assert same_weights(run / "step_8.pt", run / "checkpoint.pt")
    assert "best.pt" not in files(run)  # no best_metric, no best.pt


def test_keep_last_n_0_keeps_every_step_checkpoint(tmp_path):
    root = tmp_path / "runs"
    assert semclip_train(tmp_path, tiny(root, run_name="r", save_every_steps=1)) == 0
    assert sorted(p.name for p in (root / "r").glob("step_*.pt")) == [
        "step_1.pt", "step_2.pt", "step_3.pt", "step_4.pt"]


@pytest.mark.parametrize("mode", ["max", "min"])
def test_best_pt_holds_the_epoch_best_by_the_chosen_metric(tmp_path, mode):
    root = tmp_path / "runs"
    cfg = tiny(root, run_name="r", epochs=3, eval_every_epochs=1, shapes_eval_size=32,
               save_every_steps=STEPS_PER_EPOCH, best_metric="val/ono_accuracy", best_mode=mode)
    assert semclip_train(tmp_path, cfg) == 0
    run = root / "r"
    evals = [r for r in read_metrics(run / "metrics.jsonl") if r["type"] == "eval"]
    assert [e["step"] for e in evals] == [4, 8, 12]
    # by hand: the first epoch whose value beats every earlier one (a tie keeps the earlier)
    best = evals[0]
    for record in evals[1:]:
        if (record["ono_accuracy"] > best["ono_accuracy"]) if mode == "max" else \
                (record["ono_accuracy"] < best["ono_accuracy"]):
            best = record
    sidecar = json.loads((run / "best.json").read_text())
    assert sidecar["best"] == {"metric": "val/ono_accuracy", "mode": mode,
                               "value": best["ono_accuracy"], "step": best["step"],
                               "epoch": best["epoch"]}
    assert sidecar["step"] == best["step"]
    assert same_weights(run / "best.pt", run / f"step_{best['step']}.pt")
    [summary] = list_runs(root)
    assert (summary.name, summary.steps, summary.best_metric, summary.best_value) == (
        "r", 12, "val/ono_accuracy", best["ono_accuracy"])


def test_improves_by_hand_with_ties_and_nan():
    assert improves(0.5, None, "max") and improves(0.5, None, "min")
    assert improves(0.6, 0.5, "max") and not improves(0.4, 0.5, "max")
    assert improves(0.4, 0.5, "min") and not improves(0.6, 0.5, "min")
    assert not improves(0.5, 0.5, "max") and not improves(0.5, 0.5, "min")  # tie: keep earlier
    for bad in (math.nan, math.inf, -math.inf, None):
        assert not improves(bad, 0.5, "max") and not improves(bad, 0.5, "min")
        assert not improves(bad, None, "max")


def test_a_diverged_run_never_overwrites_best_pt(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):  # the real AdamW; its 8th step leaves inf in a weight
        out = real_step(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2 * STEPS_PER_EPOCH:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoned)
    cfg = tiny(root, run_name="r", epochs=2, eval_every_epochs=1,
               best_metric="val/caption_top5", best_mode="min")  # any value beats nothing
    events = list(train(cfg))
    assert isinstance(events[-1], Error) and events[-1].kind == "diverged"
    run = root / "r"
    assert json.loads((run / "best.json").read_text())["best"]["step"] == STEPS_PER_EPOCH
    best = weights(run / "best.pt")
    assert all(torch.isfinite(v).all() for v in best.values() if v.is_floating_point())


@pytest.mark.parametrize("bad, says", [
    ({"best_metric": "val/accuracy"}, "best_metric 'val/accuracy' is not one of"),
    ({"best_metric": "zeroshot/plain"}, "best_metric zeroshot/plain needs a zeroshot_dataset"),
    ({"best_metric": "val/caption_top1", "eval_every_epochs": 0}, "needs eval_every_epochs"),
    ({"best_mode": "highest"}, "best_mode must be max or min"),
    ({"keep_last_n": -1}, "keep_last_n must be 0"),
    ({"out_dir": "", "runs_root": " "}, "out_dir and runs_root are empty"),
])
def test_bad_retention_settings_are_refused_before_training(tmp_path, capsys, bad, says):
    cfg = tiny(tmp_path / "runs", **{"eval_every_epochs": 1, **bad})
    assert semclip_train(tmp_path, cfg) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# --- resume=latest -----------------------------------------------------------------------------

def test_resume_latest_continues_the_newest_run_under_the_root(tmp_path):
    root = tmp_path / "runs"
    for name in ("older", "newer"):
        assert semclip_train(tmp_path, tiny(root, run_name=name)) == 0
        time.sleep(0.01)  # distinct file times, whatever the file system's resolution
    older_log = (root / "older" / "metrics.jsonl").read_text()
    assert latest_checkpoint(root) == root / "newer" / "checkpoint.pt"

    assert semclip_train(tmp_path, tiny(root, epochs=2), "--set", "resume=latest") == 0
    assert files(root) == {"older", "newer"}  # no new folder: the newest run went on
    steps = [r["step"] for r in read_metrics(root / "newer" / "metrics.jsonl")]
    assert steps == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert (root / "older" / "metrics.jsonl").read_text() == older_log

    # with a run_name: that run's newest checkpoint, even when another run is newer
    assert semclip_train(tmp_path, tiny(root, run_name="older", epochs=2),
                         "--set", "resume=latest") == 0
    steps = [r["step"] for r in read_metrics(root / "older" / "metrics.jsonl")]
    assert steps == list(range(1, 2 * STEPS_PER_EPOCH + 1))


def test_resume_latest_picks_the_highest_step_of_a_run(tmp_path):
    run = tmp_path / "runs" / "r"
    assert semclip_train(tmp_path, tiny(tmp_path / "runs", run_name="r", save_every_steps=1,
                                        keep_last_n=2)) == 0
    (run / "checkpoint.pt").unlink()  # a run cut off after its last step checkpoint
    (run / "step_3.pt").touch()  # a newer file time must not beat a higher step
    assert latest_checkpoint(run) == run / "step_4.pt"
    assert latest_checkpoint(tmp_path / "runs") == run / "step_4.pt"


def test_resume_latest_with_nothing_to_resume_starts_a_new_run(tmp_path, capsys):
    root = tmp_path / "runs"
    tiny(root, resume="latest").to_json(tmp_path / "cfg.json")
    assert main(["train", "--config", str(tmp_path / "cfg.json")]) == 0
    assert "resume=latest: no checkpoint yet, starting a new run in" in capsys.readouterr().out
    [run] = root.iterdir()
    assert TIMESTAMPED.match(run.name) and (run / "checkpoint.pt").is_file()


@pytest.mark.parametrize("links", [True, False], ids=["hard link", "copy"])
def test_a_kept_checkpoint_outlives_the_next_save_of_the_last_one(tmp_path, monkeypatch, links):
    import os

    from engine.model.checkpoint import keep_checkpoint_as, save_checkpoint

    if not links:  # a file system without hard links
        monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(OSError("no links")))
    last = tmp_path / "checkpoint.pt"
    save_checkpoint(last, {"state_dict": {"w": torch.ones(3)}}, {"step": 1})
    keep_checkpoint_as(last, tmp_path / "best.pt")
    save_checkpoint(last, {"state_dict": {"w": torch.zeros(3)}}, {"step": 2})
    kept = torch.load(tmp_path / "best.pt", weights_only=True)
    assert torch.equal(kept["state_dict"]["w"], torch.ones(3))
    assert json.loads((tmp_path / "best.json").read_text()) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "best.pt",
                                                          "checkpoint.json", "checkpoint.pt"]
