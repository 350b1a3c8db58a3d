"""The training config in parts: `--set loss.beta=0`, configs written in parts, flat keys still
read, and every field in exactly one part."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from engine.train.config import FIELD_PART, PARTS, ConfigError, TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_field_is_in_one_of_the_six_parts():
    assert set(PARTS.values()) == {"model", "data", "loss", "optimisation", "system", "output"}
    assert set(FIELD_PART) == {f.name for f in fields(TrainConfig)}
    assert FIELD_PART["beta"] == "loss" and FIELD_PART["lr"] == "optimisation"
    assert FIELD_PART["model"] == "model" and FIELD_PART["out_dir"] == "output"


def test_set_takes_a_part_prefix_and_checks_it():
    cfg = TrainConfig().with_overrides(["loss.beta=0", "optimisation.lr=1e-4", "gamma=0.5",
                                        "model.model=semclip-shapes-tiny"])
    assert (cfg.beta, cfg.lr, cfg.gamma, cfg.model) == (0.0, 1e-4, 0.5, "semclip-shapes-tiny")
    with pytest.raises(ConfigError, match=r"loss\.lr: lr belongs to the optimisation part \(optimisation\.lr\)"):
        TrainConfig().with_overrides(["loss.lr=1"])
    with pytest.raises(ConfigError, match="no config part 'optim'"):
        TrainConfig().with_overrides(["optim.lr=1"])


def test_a_config_in_parts_round_trips_and_reads_like_the_flat_one(tmp_path):
    cfg = TrainConfig(beta=0.0, lr=2e-4, dataset="triples.csv", out_dir="runs/x")
    nested = cfg.to_nested_dict()
    assert nested["loss"]["beta"] == 0.0 and nested["data"]["dataset"] == "triples.csv"
    assert TrainConfig.from_dict(nested) == cfg == TrainConfig.from_dict(cfg.to_dict())
    path = tmp_path / "parts.json"
    path.write_text(json.dumps({"loss": {"beta": 0}, "epochs": 3}))
    assert (TrainConfig.from_json(path).beta, TrainConfig.from_json(path).epochs) == (0, 3)


@pytest.mark.parametrize("data, message", [
    ({"loss": {"lr": 1.0}}, "lr belongs to the optimisation part"),
    ({"loss": {"beta": 0.0}, "beta": 1.0}, "beta is given twice"),
    ({"loss": {"nope": 1}}, "unknown training config keys: \\['nope'\\]"),
])
def test_a_config_in_parts_with_mistakes_says_which(data, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(data, source="my.json")


def test_the_cli_reads_a_config_in_parts_and_part_prefixed_overrides(tmp_path):
    config = tmp_path / "parts.json"
    config.write_text(json.dumps({"model": {"model": "semclip-tiny"},
                                  "data": {"dataset": "shapes", "shapes_train_size": 128},
                                  "output": {"out_dir": str(tmp_path / "run")}}))

    def dry_run(*overrides):
        args = [arg for o in overrides for arg in ("--set", o)]
        return subprocess.run([sys.executable, "-m", "engine.cli", "train", "--config", str(config),
                               "--dry-run", *args], capture_output=True, text=True, cwd=ROOT,
                              timeout=300)

    ok = dry_run("loss.beta=0", "optimisation.epochs=2")
    assert ok.returncode == 0, ok.stderr[-2000:]
    wrong = dry_run("loss.lr=1")
    assert wrong.returncode != 0
    assert "lr belongs to the optimisation part" in wrong.stderr + wrong.stdout
