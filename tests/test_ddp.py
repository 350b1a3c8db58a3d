"""Two CPU processes (gloo, as torchrun would start them) match one process on the same global batch."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace

import pytest
import torch.multiprocessing as mp

from engine.config import TrainConfig
from engine.events import StepMetrics
from engine.train import train


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
def test_two_gloo_processes_give_the_loss_of_one_process(tmp_path):
    base = TrainConfig(model="semclip-tiny", lock_image=False, shapes_train_size=48,
                       shapes_eval_size=16, epochs=1, lr=1e-3, warmup_steps=1, threads=1,
                       eval_every_epochs=0, hard_negatives=True)
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
