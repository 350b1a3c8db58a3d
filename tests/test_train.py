"""Training: events, checkpoints open_clip can load, stop, resume, NaN and OOM handling."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import open_clip
import pytest
import torch

from engine.events import CheckpointSaved, Done, Error, EvalResult, Log, StepMetrics
from engine.model.loading import load_model, register_project_configs
from engine.train.config import TrainConfig
from engine.train.loop import DistInfo, EpochSampler, lr_at, train

LOSS_KEYS = {"contrastive_loss", "paraphrase_loss", "negation_loss", "total"}


def tiny(tmp_path, **kw) -> TrainConfig:
    base = TrainConfig(model="semclip-tiny", lock_image=False, shapes_train_size=64,
                       shapes_eval_size=32, batch_size=16, epochs=2, lr=1e-3, warmup_steps=2,
                       out_dir=str(tmp_path / "run"), threads=1)
    return replace(base, **kw)


def run(cfg, stop=None):
    return list(train(cfg, stop=stop))


def final_weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_config_round_trips_and_overrides(tmp_path):
    cfg = TrainConfig(alpha=0.5, n_projections=3, resume=None)
    path = tmp_path / "cfg.json"
    cfg.to_json(path)
    assert TrainConfig.from_json(path) == cfg
    over = cfg.with_overrides(["beta=0", "learnable_projections=true", "lr=2e-4", "resume=none"])
    assert (over.beta, over.learnable_projections, over.lr, over.resume) == (0.0, True, 2e-4, None)
    with pytest.raises(ValueError, match="unknown training config keys"):
        TrainConfig.from_dict({"alpah": 1})
    with pytest.raises(ValueError, match="batch_size"):
        cfg.with_overrides(["batch_size=lots"])


def test_schedule_warms_up_then_decays_to_zero():
    cfg = TrainConfig(lr=1.0, warmup_steps=4)
    assert [lr_at(s, cfg, 12) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(8, cfg, 12) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_at(12, cfg, 12) == pytest.approx(0.0)


def test_sampler_shards_one_global_order_over_ranks():
    single = EpochSampler(10, seed=3, epoch=1, dist_info=DistInfo()).indices
    r0 = EpochSampler(10, seed=3, epoch=1, dist_info=DistInfo(0, 2)).indices
    r1 = EpochSampler(10, seed=3, epoch=1, dist_info=DistInfo(1, 2)).indices
    assert sorted(single) == list(range(10))
    assert r0 == single[0::2] and r1 == single[1::2]
    assert EpochSampler(10, 3, 1, DistInfo(), skip=4).indices == single[4:]
    assert EpochSampler(10, 3, 2, DistInfo()).indices != single


def test_training_yields_every_event_and_an_open_clip_checkpoint(tmp_path):
    cfg = tiny(tmp_path)
    events = run(cfg)
    steps = [e for e in events if isinstance(e, StepMetrics)]
    evals = [e for e in events if isinstance(e, EvalResult)]
    assert len(steps) == 8  # 64 scenes / 16 per batch * 2 epochs
    assert set(steps[0].losses) == LOSS_KEYS
    assert steps[-1].total_steps == 8 and steps[-1].samples_per_s > 0
    assert [e.epoch for e in evals] == [1, 2]
    assert set(evals[0].metrics) == {"ono_accuracy", "caption_top1", "caption_top5",
                                     "paraphrase_top1", "paraphrase_top5"}
    assert any(isinstance(e, CheckpointSaved) for e in events)
    assert isinstance(events[-1], Done) and not events[-1].stopped

    ckpt = tmp_path / "run" / "checkpoint.pt"
    # open_clip's own loader accepts it for the same architecture
    register_project_configs()
    fresh = open_clip.create_model("semclip-tiny")
    open_clip.load_checkpoint(fresh, str(ckpt))
    assert torch.equal(fresh.logit_scale, final_weights(ckpt)["logit_scale"])
    sidecar = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert sidecar["model_name"] == "semclip-tiny" and sidecar["step"] == 8
    assert sidecar["loss_config"]["n_projections"] == 2
    assert sidecar["train_config"] == cfg.to_dict()
    assert set(sidecar["metrics"]) == set(evals[-1].metrics)
    # and our own loader reads it back through the sidecar
    assert load_model(str(ckpt)).model_name == "semclip-tiny"
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["type"] for l in lines].count("step") == 8
    assert [l["type"] for l in lines].count("eval") == 2


def test_beta_gamma_zero_is_plain_clip(tmp_path):
    events = run(tiny(tmp_path, beta=0.0, gamma=0.0, epochs=1, eval_every_epochs=0))
    step = next(e for e in events if isinstance(e, StepMetrics))
    assert step.losses["paraphrase_loss"] == 0.0 and step.losses["negation_loss"] == 0.0
    assert step.losses["total"] == pytest.approx(step.losses["contrastive_loss"])


def test_stop_flag_ends_cleanly_with_a_checkpoint(tmp_path):
    stop = threading.Event()
    events = []
    for event in train(tiny(tmp_path), stop=stop):
        events.append(event)
        if isinstance(event, StepMetrics) and event.step == 3:
            stop.set()
    assert isinstance(events[-1], Done) and events[-1].stopped
    assert max(e.step for e in events if isinstance(e, StepMetrics)) == 3
    sidecar = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert sidecar["step"] == 3


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    whole = tiny(tmp_path, out_dir=str(tmp_path / "whole"), lock_image=True)
    run(whole)
    stop = threading.Event()
    part = replace(whole, out_dir=str(tmp_path / "part"))
    for event in train(part, stop=stop):
        if isinstance(event, StepMetrics) and event.step == 3:  # mid-epoch 1
            stop.set()
    resumed = replace(part, out_dir=str(tmp_path / "resumed"),
                      resume=str(tmp_path / "part" / "checkpoint.pt"))
    events = run(resumed)
    assert [e.step for e in events if isinstance(e, StepMetrics)] == [4, 5, 6, 7, 8]
    a = final_weights(tmp_path / "whole" / "checkpoint.pt")
    b = final_weights(tmp_path / "resumed" / "checkpoint.pt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import engine.train.loop as train_mod

    real_forward = train_mod.SemClipLoss.forward
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        out = real_forward(self, *args, **kwargs)
        if calls["n"] == 3:
            out["contrastive_loss"] = out["contrastive_loss"] * float("nan")
        return out

    monkeypatch.setattr(train_mod.SemClipLoss, "forward", flaky)
    events = run(tiny(tmp_path, save_every_steps=1))
    assert isinstance(events[-1], Error) and events[-1].kind == "nan_loss"
    assert "step 3" in events[-1].message and "step 2" in events[-1].message
    sidecar = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert sidecar["step"] == 2
    weights = final_weights(tmp_path / "run" / "checkpoint.pt")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_out_of_memory_names_the_batch_size_and_a_smaller_one(tmp_path, monkeypatch):
    import engine.train.loop as train_mod

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(train_mod.SemClipLoss, "forward", oom)
    events = run(tiny(tmp_path, batch_size=32))
    assert isinstance(events[-1], Error) and events[-1].kind == "oom"
    assert "batch size 32" in events[-1].message and "batch_size=16" in events[-1].message


def test_out_of_memory_names_the_device_that_ran_out_not_auto(tmp_path, monkeypatch):
    import engine.train.loop as train_mod

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(train_mod.SemClipLoss, "forward", oom)
    events = run(tiny(tmp_path, device="auto"))
    expected = "cuda:0 (" if torch.cuda.is_available() else "on cpu."
    assert expected in events[-1].message and "auto" not in events[-1].message


def test_resume_from_the_wrong_model_is_a_clear_error(tmp_path):
    run(tiny(tmp_path, epochs=1, eval_every_epochs=0))
    wrong = tiny(tmp_path, model="semclip-shapes-tiny", out_dir=str(tmp_path / "other"),
                 resume=str(tmp_path / "run" / "checkpoint.pt"))
    events = run(wrong)
    assert isinstance(events[-1], Error) and events[-1].kind == "input"
    assert "does not fit model semclip-shapes-tiny" in events[-1].message


def test_dataset_smaller_than_a_batch_is_reported(tmp_path):
    events = run(tiny(tmp_path, shapes_train_size=8, batch_size=16))
    assert isinstance(events[-1], Error) and "smaller than one global batch" in events[-1].message


def test_locked_image_tower_is_run_once_per_image_and_the_cache_is_off_with_augmentation(
        tmp_path, monkeypatch):
    import engine.train.loop as train_mod

    seen: dict[str, list[torch.Tensor]] = {"tower": [], "loss": []}

    def counting_load_model(*args, **kwargs):
        loaded = load_model(*args, **kwargs)
        real = loaded.model.encode_image

        def encode_image(images, normalize=False):
            out = real(images, normalize=normalize)
            seen["tower"].append(out.detach().float())
            return out
        loaded.model.encode_image = encode_image
        return loaded

    real_loss = train_mod.SemClipLoss.forward

    def recording_loss(self, image_features, *args, **kwargs):
        seen["loss"].append(image_features.detach())
        return real_loss(self, image_features, *args, **kwargs)

    from engine.data.shapes.world import ShapesWorld

    real_render, renders = ShapesWorld.render, []

    def counting_render(self, scene):
        renders.append(scene)
        return real_render(self, scene)

    monkeypatch.setattr(train_mod, "load_model", counting_load_model)
    monkeypatch.setattr(train_mod.SemClipLoss, "forward", recording_loss)
    monkeypatch.setattr(ShapesWorld, "render", counting_render)
    cfg = tiny(tmp_path, lock_image=True, eval_every_epochs=0)  # 64 scenes, 2 epochs
    events = run(cfg)
    assert isinstance(events[-1], Done)
    logs = [e.message for e in events if isinstance(e, Log)]
    assert any("caching image embeddings (64 images" in m for m in logs)
    tower = torch.cat(seen["tower"])
    assert tower.shape[0] == 64  # the cache is filled once, before epoch 1; no epoch runs the tower
    assert len(renders) == 64  # ... nor draws a scene: epochs read texts only
    # every image feature the loss saw, in both epochs, is one the tower computed up front
    trained_on = torch.cat(seen["loss"])
    assert trained_on.shape[0] == 128
    assert (trained_on[:, None] == tower[None]).all(dim=-1).any(dim=1).all()

    for key in seen:
        seen[key].clear()
    events = run(replace(cfg, augment=True, out_dir=str(tmp_path / "augmented")))
    assert any("cache off: augmentation" in e.message for e in events if isinstance(e, Log))
    assert torch.cat(seen["tower"]).shape[0] == 128  # every view of every image, each epoch
    for key in seen:
        seen[key].clear()
    run(replace(cfg, image_unlocked_groups=1, out_dir=str(tmp_path / "unlocked")))
    assert torch.cat(seen["tower"]).shape[0] == 128  # a trainable image tower is never cached
