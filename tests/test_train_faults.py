"""Training faults a user meets: decay on a learnable V, accumulation, divergence, Ctrl-C, used
or unwritable folders, bad configs, resume with other settings, file modes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from engine.cli.commands import main
from engine.events import Done, Error, StepMetrics
from engine.model.losses import SemClipLoss, random_orthonormal
from engine.train.config import ConfigError, TrainConfig
from engine.train.loop import train

ROOT = Path(__file__).resolve().parents[1]


def tiny(tmp_path, **kw) -> TrainConfig:
    base = TrainConfig(model="semclip-tiny", lock_image=False, shapes_train_size=64,
                       shapes_eval_size=16, batch_size=16, epochs=1, lr=1e-3, warmup_steps=1,
                       out_dir=str(tmp_path / "run"), threads=1, eval_every_epochs=0)
    return replace(base, **kw)


def run(cfg, stop=None):
    return list(train(cfg, stop=stop))


def write_config(tmp_path, cfg: TrainConfig, name: str = "cfg.json") -> str:
    path = tmp_path / name
    cfg.to_json(path)
    return str(path)


def steps_logged(out_dir) -> list[dict]:
    lines = (Path(out_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "step"]


# --- a learnable V under the real optimiser -------------------------------------------------

def test_a_learnable_v_stays_orthonormal_and_learns_through_semclip_train(tmp_path):
    cfg = tiny(tmp_path, learnable_projections=True, weight_decay=0.1, epochs=2)
    assert main(["train", "--config", write_config(tmp_path, cfg), "--quiet"]) == 0
    run_dir = tmp_path / "run"
    sidecar = json.loads((run_dir / "checkpoint.json").read_text())
    loss = SemClipLoss(**sidecar["loss_config"])
    loss.load_state_dict(torch.load(run_dir / "checkpoint.pt", weights_only=True)["loss_state"])
    v = loss.projection.detach()
    torch.testing.assert_close(v @ v.T, torch.eye(2), atol=1e-5, rtol=0)
    initial = random_orthonormal(2, v.shape[1], cfg.projection_seed)
    assert (v - initial).abs().max() > 1e-4  # it learned
    steps = steps_logged(run_dir)
    # a collapsed V (= 0) makes the paraphrase term exactly beta/(a+b+g) and negation 0
    assert any(s["negation_loss"] > 0 for s in steps)
    assert any(abs(s["paraphrase_loss"] - 1 / 3) > 1e-3 for s in steps)


def test_weight_decay_skips_what_modules_declare(tmp_path):
    from engine.model.loading import load_model
    from engine.train.task import SemClipTask, build_optimizer

    loaded = load_model("semclip-tiny")
    loss = SemClipLoss(embed_dim=loaded.embed_dim, n_projections=2, learnable_projections=True)
    task = SemClipTask(loaded.model, loss)
    optimizer = build_optimizer(task, lr=1e-3, weight_decay=0.1)
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] for p in g["params"]}
    assert all(id(p) not in decayed for p in loss.parameters())
    assert id(task.clip.logit_scale) not in decayed
    assert decayed  # the towers' matrices still decay


# --- accumulation equals one big batch ------------------------------------------------------

def _shapes_data(preprocess, rich: float = 0.0):
    from engine.data.shapes.world import ShapesDataset, ShapesWorld

    return ShapesDataset(ShapesWorld(seed=0, image_size=32, rich_language_prob=rich), "train", 64,
                         transform=preprocess)


def _batches(preprocess, sizes: list[int], rich: float = 0.0) -> list[dict]:
    """Consecutive shapes-world items, collated in batches of ``sizes``."""
    from engine.train.loop import collate

    data = _shapes_data(preprocess, rich)
    out, start = [], 0
    for n in sizes:
        out.append(collate([data[i] for i in range(start, start + n)]))
        start += n
    return out


@pytest.mark.parametrize("hard_negatives,masked,claims", [
    (False, False, False), (True, False, False), (False, True, False), (True, True, False),
    (True, False, True)])
def test_two_accumulated_halves_give_the_loss_and_gradients_of_one_batch(hard_negatives, masked,
                                                                         claims):
    from contextlib import nullcontext

    from engine.model.loading import load_model
    from engine.train.loop import train_step
    from engine.train.task import SemClipTask

    loaded = load_model("semclip-tiny")
    loss = SemClipLoss(embed_dim=loaded.embed_dim, n_projections=2, learnable_projections=True,
                       hard_negatives=hard_negatives, delta=1.0 if claims else 0.0)
    task = SemClipTask(loaded.model, loss).train()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    # masked: rich statements, some true of several of the 8 scenes, and the batch's truth
    rich = 0.7 if masked else 0.0
    whole = _batches(loaded.preprocess, [8], rich)
    halves = _batches(loaded.preprocess, [4, 4], rich)
    truth_of = _shapes_data(loaded.preprocess, rich).truth if masked else None
    if masked:
        captions, _ = truth_of(list(range(8)))
        assert int(captions.sum()) > 8  # something is masked across the two halves

    # claims: object claims for the 8 rows, each micro-batch meeting them through its own encoding
    step_claims = None
    if claims:
        from engine.data.claims import ClaimSampler
        shown = [frozenset({"dog"}), frozenset(), frozenset({"horse", "dog"}), frozenset({"cat"})] * 2
        step_claims = ClaimSampler(["cat", "dog", "horse", "bird"], per_step=3).draw(0, shown)

    def grads(group):
        task.zero_grad()
        terms = train_step(task, task, group, loaded.tokenizer, torch.device("cpu"),
                           nullcontext, scaler, truth_of, step_claims)
        return ({k: float(v.detach()) for k, v in terms.items()},
                {n: p.grad.clone() for n, p in task.named_parameters() if p.grad is not None})

    one_terms, one_grads = grads(whole)
    acc_terms, acc_grads = grads(halves)
    assert ("claim_loss" in one_terms) == claims and one_terms.get("claim_loss", 1) > 0
    for key in one_terms:
        assert acc_terms[key] == pytest.approx(one_terms[key], abs=1e-5), key
    assert one_grads.keys() == acc_grads.keys() and "loss.projector.parametrizations.weight.original" in one_grads
    for name in one_grads:
        torch.testing.assert_close(acc_grads[name], one_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_accumulated_training_matches_one_big_batch_end_to_end(tmp_path):
    big = run(tiny(tmp_path, batch_size=8, out_dir=str(tmp_path / "big")))
    acc = run(tiny(tmp_path, batch_size=4, accum_steps=2, out_dir=str(tmp_path / "acc")))
    big_steps = [e.losses for e in big if isinstance(e, StepMetrics)]
    acc_steps = [e.losses for e in acc if isinstance(e, StepMetrics)]
    assert len(big_steps) == len(acc_steps) == 8
    for a, b in zip(big_steps, acc_steps):
        assert b["total"] == pytest.approx(a["total"], abs=1e-4)


# --- divergence -----------------------------------------------------------------------------

def poison_optimizer_step(monkeypatch, at_step: int, value: float) -> None:
    """The real AdamW, whose ``at_step``-th step leaves ``value`` in a weight matrix."""
    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == at_step:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(value)
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoned)


def test_weights_that_diverge_on_the_last_step_never_reach_the_checkpoint(tmp_path, monkeypatch):
    # the run's last step: no loss ever sees these weights, only the final save
    poison_optimizer_step(monkeypatch, at_step=4, value=float("inf"))
    cfg = tiny(tmp_path, save_every_steps=1)
    assert main(["train", "--config", write_config(tmp_path, cfg), "--quiet"]) == 1
    sidecar = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert sidecar["step"] == 3
    weights = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_divergence_names_the_checkpoint_that_really_is_good(tmp_path, monkeypatch):
    poison_optimizer_step(monkeypatch, at_step=2, value=float("nan"))
    events = run(tiny(tmp_path, save_every_steps=1))
    error = events[-1]
    assert isinstance(error, Error) and error.kind in ("diverged", "nan_loss")
    ckpt = tmp_path / "run" / "checkpoint.pt"
    assert f"(step 1) is kept at {ckpt}" in error.message
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["step"] == 1


def test_fp16_on_cpu_is_refused_instead_of_running_fp32(tmp_path):
    events = run(tiny(tmp_path, precision="fp16", device="cpu"))
    assert isinstance(events[-1], Error) and events[-1].kind == "config"
    assert "fp16 needs a CUDA GPU" in events[-1].message
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# --- Ctrl-C ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_prints_how_to_resume_and_exits_130(tmp_path):
    cfg = tiny(tmp_path, shapes_train_size=4096, batch_size=8)  # 512 steps: minutes
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli.commands", "train", "--config",
                             write_config(tmp_path, cfg)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    sidecar = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert sidecar["step"] >= 3
    assert f"resume={tmp_path / 'run' / 'checkpoint.pt'}" in err
    resumed = replace(cfg, max_steps=sidecar["step"] + 2, resume=str(tmp_path / "run" / "checkpoint.pt"))
    assert main(["train", "--config", write_config(tmp_path, resumed, "resume.json"), "--quiet"]) == 0
    assert [s["step"] for s in steps_logged(tmp_path / "run")] == list(range(1, sidecar["step"] + 3))


# --- run folders ----------------------------------------------------------------------------

def test_a_used_folder_is_refused_unless_resumed_or_overwritten(tmp_path, capsys):
    cfg = tiny(tmp_path)
    assert main(["train", "--config", write_config(tmp_path, cfg), "--quiet"]) == 0
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    assert main(["train", "--config", write_config(tmp_path, cfg), "--quiet"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    assert main(["train", "--config", write_config(tmp_path, cfg), "--quiet", "--overwrite"]) == 0
    assert [s["step"] for s in steps_logged(tmp_path / "run")] == [1, 2, 3, 4]


def test_resume_keeps_metrics_up_to_its_step_and_is_exact(tmp_path):
    import threading

    whole = tiny(tmp_path, lock_image=True, epochs=2, out_dir=str(tmp_path / "whole"))
    run(whole)
    part = replace(whole, out_dir=str(tmp_path / "part"))
    stop = threading.Event()
    for event in train(part, stop=stop):
        if isinstance(event, StepMetrics) and event.step == 5:  # mid-epoch 2
            stop.set()
    # a crash after the checkpoint leaves later lines behind: the resumed run drops them
    with open(tmp_path / "part" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"type": "step", "step": 6, "total": 9.9}) + "\n")
    events = run(replace(part, resume=str(tmp_path / "part" / "checkpoint.pt")))
    assert isinstance(events[-1], Done)
    assert [s["step"] for s in steps_logged(tmp_path / "part")] == list(range(1, 9))
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["state_dict"]
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) == 0.0


@pytest.mark.parametrize("change", [{"n_projections": 3}, {"batch_size": 8}])
def test_resume_with_other_settings_is_a_clear_error(tmp_path, change):
    cfg = tiny(tmp_path)
    run(cfg)
    events = run(replace(cfg, resume=str(tmp_path / "run" / "checkpoint.pt"), **change))
    assert isinstance(events[-1], Error) and events[-1].kind == "config"
    key = next(iter(change))
    assert "cannot resume" in events[-1].message and key in events[-1].message


def test_unwritable_out_dirs_are_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out_dir, words in ((blocker, "is a file"), (blocker / "sub", "lies under a file")):
        cfg = tiny(tmp_path, out_dir=str(out_dir))
        assert main(["train", "--config", write_config(tmp_path, cfg), "--quiet"]) == 2
        assert words in capsys.readouterr().err


def unprivileged(command: list[str]) -> list[str]:
    """``command`` as a user whom file modes bind: root writes into read-only folders."""
    if os.geteuid() != 0:
        return command
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv (util-linux) to drop privileges")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]


def test_a_read_only_out_dir_is_refused(tmp_path):
    scratch = Path(tempfile.mkdtemp(prefix="semclip-ro-"))  # not tmp_path: its parent is 0700
    try:
        scratch.chmod(0o755)
        locked = scratch / "locked"
        locked.mkdir(mode=0o555)
        config = Path(write_config(scratch, tiny(scratch, out_dir=str(locked / "run"))))
        config.chmod(0o644)
        env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(scratch),
                   SEMCLIP_CACHE=str(scratch / "cache"), OMP_NUM_THREADS="1")
        ran = subprocess.run(unprivileged([sys.executable, "-m", "engine.cli.commands", "train", "--config",
                                           str(config), "--quiet"]),
                             cwd=scratch, env=env, capture_output=True, text=True, timeout=300)
        assert ran.returncode == 2, ran.stderr
        assert f"cannot write to out_dir {locked / 'run'}" in ran.stderr
        assert "Traceback" not in ran.stderr and not (locked / "run").exists()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_a_full_disk_at_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import engine.model.checkpoint as ckpt_mod

    real_save = torch.save
    calls = {"n": 0}

    def disk_fills(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # step 3's checkpoint.pt (step_<N>.pt is a link, not a save)
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt_mod.torch, "save", disk_fills)
    events = run(tiny(tmp_path, save_every_steps=1))
    assert isinstance(events[-1], Error) and events[-1].kind == "output"
    assert "No space left on device" in events[-1].message and "(step 2)" in events[-1].message
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


# --- configs that cannot train --------------------------------------------------------------

@pytest.mark.parametrize("field, value, words", [
    ("batch_size", 0, "batch_size must be at least 1"),
    ("accum_steps", 0, "accum_steps must be at least 1"),
    ("epochs", 0, "epochs must be at least 1"),
    ("max_steps", -1, "max_steps must be 0"),
    ("lr", 1e39, "lr must be a number in"),
    ("lr", "fast", "lr must be a number, got 'fast'"),
    ("batch_size", "64", "batch_size must be a whole number"),
    ("model", "no-such-model", "unknown model architecture"),
    ("precision", "fp8", "precision must be one of"),
])
def test_bad_configs_are_refused_before_any_model_loads(tmp_path, capsys, monkeypatch,
                                                        field, value, words):
    import engine.train.loop as train_mod

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded for a config that cannot train")

    monkeypatch.setattr(train_mod, "load_model", no_loading)
    data = tiny(tmp_path).to_dict()
    data[field] = value
    (tmp_path / "cfg.json").write_text(json.dumps(data))
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_an_offline_hub_tag_fails_at_once_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = TrainConfig(model="ViT-B-32:laion2b_s34b_b79k")
    with pytest.raises(ConfigError, match="cannot be reached"):
        cfg.validate()


# --- file modes -----------------------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_checkpoints_follow_the_umask(tmp_path, umask, mode):
    from engine.model.export import export_delta

    previous = os.umask(umask)
    try:
        run(tiny(tmp_path, max_steps=1))
        ckpt = tmp_path / "run" / "checkpoint.pt"
        exported = export_delta(ckpt, tmp_path / "delta.pt")
    finally:
        os.umask(previous)
    for path in (ckpt, ckpt.with_suffix(".json"), Path(exported)):
        assert path.stat().st_mode & 0o777 == mode, path
