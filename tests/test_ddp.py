"""Two CPU processes (gloo, as torchrun would start them) match one process on the same global batch."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace

import pytest
import torch.multiprocessing as mp

from engine.events import StepMetrics
from engine.train.config import TrainConfig
from engine.train.loop import train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(cfg: TrainConfig) -> list[dict]:
    out = []
    for event in train(cfg):
        if isinstance(event, StepMetrics):
            out.append(event.losses)
        assert not type(event).__name__ == "Error", event
    return out


def _worker(rank: int, world: int, port: int, cfg_json: str, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    cfg = TrainConfig.from_dict(json.loads(cfg_json))
    losses = _losses(cfg)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(losses, f)
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("masked", [False, True])
def test_two_gloo_processes_give_the_loss_of_one_process(tmp_path, masked):
    # masked: each rank's truth must cover the gathered global batch, in the gathered order;
    # with the shapes demo's paraphrases as positives, gathered the same way
    base = TrainConfig(model="semclip-tiny", lock_image=False, shapes_train_size=48,
                       shapes_eval_size=16, epochs=1, lr=1e-3, warmup_steps=1, threads=1,
                       eval_every_epochs=0, hard_negatives=True, mask_false_negatives=masked,
                       paraphrase_positives=masked, shapes_rich_language_prob=0.7 if masked else 0.0)
    single = _losses(replace(base, batch_size=8, out_dir=str(tmp_path / "single")))
    two = replace(base, batch_size=4, out_dir=str(tmp_path / "ddp"))
    mp.start_processes(_worker, args=(2, _free_port(), json.dumps(two.to_dict()), str(tmp_path)),
                       nprocs=2, join=True, start_method="spawn")
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert len(single) == len(rank0) == len(rank1) == 6
    for one, a, b in zip(single, rank0, rank1):
        for key in one:
            assert a[key] == pytest.approx(one[key], rel=1e-4, abs=1e-5), key
            assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-7), key


def _photos_with_objects(root) -> str:
    """24 generated photos, each with what it shows (none, one or two of 20 objects: more than
    a step draws, so which objects the batch shows decides the draw), one caption each."""
    import csv

    import torch
    from PIL import Image

    names = [f"object{k}" for k in range(20)]
    shows = ["", *names[:8], *(f"{a};{b}" for a, b in zip(names[8:], names[14:]))]
    rows = []
    for i in range(24):
        pixels = torch.randint(0, 255, (32, 32, 3), generator=torch.Generator().manual_seed(i))
        Image.fromarray(pixels.to(torch.uint8).numpy()).save(root / f"{i}.png")
        rows.append([f"{i}.png", f"photo {i}", f"picture {i}", f"no photo {i}",
                     shows[i % len(shows)]])
    with open(root / "photos.csv", "w", newline="") as f:
        csv.writer(f).writerows([["image", "caption", "paraphrase", "negation", "objects"], *rows])
    return str(root / "photos.csv")


@pytest.mark.slow
def test_two_gloo_processes_give_the_claim_term_of_one_process(tmp_path):
    # every rank draws the claims of the whole batch and normalises by its pairs
    base = TrainConfig(model="semclip-tiny", lock_image=False, dataset=_photos_with_objects(tmp_path),
                       epochs=1, lr=1e-3, warmup_steps=1, threads=1, eval_every_epochs=0,
                       hard_negatives=True, delta=1.0)
    single = _losses(replace(base, batch_size=8, out_dir=str(tmp_path / "single")))
    two = replace(base, batch_size=4, out_dir=str(tmp_path / "ddp"))
    mp.start_processes(_worker, args=(2, _free_port(), json.dumps(two.to_dict()), str(tmp_path)),
                       nprocs=2, join=True, start_method="spawn")
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    assert len(single) == len(rank0) == 3
    for one, a in zip(single, rank0):
        assert one["claim_loss"] > 0
        for key in one:
            assert a[key] == pytest.approx(one[key], rel=1e-4, abs=1e-5), key


def _projection_worker(rank: int, world: int, port: int, cfg_json: str, out_dir: str) -> None:
    """Train under DDP, recording V as every forward pass of this rank sees it."""
    from engine.model.losses import SemClipLoss

    seen: list[list] = []
    real_forward = SemClipLoss.forward

    def recording(self, *args, **kwargs):
        seen.append(self.projection.detach().tolist())
        return real_forward(self, *args, **kwargs)

    SemClipLoss.forward = recording
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    _losses(TrainConfig.from_dict(json.loads(cfg_json)))
    with open(os.path.join(out_dir, f"v{rank}.json"), "w") as f:
        json.dump(seen, f)
    dist.destroy_process_group()


@pytest.mark.slow
def test_a_learnable_projection_stays_identical_on_every_rank(tmp_path):
    cfg = TrainConfig(model="semclip-tiny", lock_image=False, shapes_train_size=48, batch_size=4,
                      epochs=1, lr=1e-2, warmup_steps=1, threads=1, eval_every_epochs=0,
                      learnable_projections=True, out_dir=str(tmp_path / "ddp"),
                      weight_decay=0.0)  # isolates the sync (decay once collapsed V on both)
    mp.start_processes(_projection_worker,
                       args=(2, _free_port(), json.dumps(cfg.to_dict()), str(tmp_path)),
                       nprocs=2, join=True, start_method="spawn")
    v0 = json.loads((tmp_path / "v0.json").read_text())
    v1 = json.loads((tmp_path / "v1.json").read_text())
    assert len(v0) == len(v1) == 6
    assert v0[-1] != v0[0]  # V learned ...
    assert v0 == v1  # ... in step on both ranks ...
    import torch
    last = torch.tensor(v0[-1])
    torch.testing.assert_close(last @ last.T, torch.eye(2), atol=1e-5, rtol=0)  # ... orthonormal


@pytest.mark.slow
def test_torchrun_trains_the_shapes_world_through_the_cli(tmp_path):
    """Two processes under torchrun: training, the checkpoint and one final table, exit 0."""
    import importlib.util
    import subprocess
    import sys
    from pathlib import Path
    tensorboard = importlib.util.find_spec("tensorboard") is not None
    cfg = TrainConfig(model="semclip-tiny", lock_image=False, shapes_train_size=32,
                      shapes_eval_size=8, batch_size=4, epochs=1, warmup_steps=1, threads=1,
                      out_dir=str(tmp_path / "run"), name="tiny",
                      report_to="tensorboard" if tensorboard else "")
    cfg.to_json(tmp_path / "cfg.json")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={_free_port()}", "-m", "engine.cli.commands", "train",
                           "--config", str(tmp_path / "cfg.json"), "--test-size", "16",
                           "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("held-out test split") == 1  # rank 0 alone prints the table
    assert "deprecated" not in proc.stderr  # torch's note on open_clip's gather is not for users
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["step"] == 4
    if tensorboard:  # rank 0 alone reports: one event file, each step once
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        [events_file] = (tmp_path / "run" / "tensorboard").iterdir()
        events = EventAccumulator(str(events_file))
        events.Reload()
        assert [e.step for e in events.Scalars("train/total")] == [1, 2, 3, 4]
