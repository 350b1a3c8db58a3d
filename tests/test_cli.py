"""The ``semclip`` command line: shapes, train (config and preset), bad input."""

from __future__ import annotations

import json
from pathlib import Path

from engine.cli.commands import main
from engine.train.config import TrainConfig
from engine.train.presets import preset

FIXTURE = Path(__file__).parent / "data" / "triples" / "triples.csv"


def test_shapes_writes_images_and_triples(tmp_path, capsys):
    assert main(["shapes", "--out", str(tmp_path), "--n", "4", "--size", "32"]) == 0
    assert len(list((tmp_path / "images").glob("*.png"))) == 4
    assert (tmp_path / "triples.csv").read_text().startswith("image,caption,paraphrase,negation")
    assert "wrote 4 scenes" in capsys.readouterr().out


def test_train_from_a_config_file_on_a_triples_file(tmp_path, capsys):
    cfg = TrainConfig(model="semclip-tiny", dataset=str(FIXTURE), val_dataset=str(FIXTURE),
                      batch_size=2, epochs=2, warmup_steps=1, out_dir=str(tmp_path / "run"))
    cfg.to_json(tmp_path / "cfg.json")
    args = ["train", "--config", str(tmp_path / "cfg.json"), "--set", "lr=2e-4",
            "--set", "n_projections=1"]
    assert main(args) == 0
    sidecar = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert sidecar["train_config"]["lr"] == 2e-4 and sidecar["loss_config"]["n_projections"] == 1
    assert sidecar["step"] == 2 and "ono_accuracy" in sidecar["metrics"]
    assert "[epoch 2] val: ono_accuracy=" in capsys.readouterr().out
    # --quiet is quiet: the same run again prints nothing on stdout
    assert main(args + ["--overwrite", "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_train_reports_bad_usage_and_bad_input(tmp_path, capsys):
    assert main(["train"]) == 2
    assert main(["train", "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["train", "--preset", "shapes-demo", "--set", "lr=fast"]) == 2
    assert main(["train", "--preset", "shapes-demo", "--only", "semclip,nope"]) == 2
    assert "no run named nope in this preset (its runs: clip-baseline, semclip, " \
           "clip-same-data)" in capsys.readouterr().err
    assert main(["train", "--config", "x.json", "--only", "semclip"]) == 2
    assert "--only picks runs of a --preset" in capsys.readouterr().err
    cfg = TrainConfig(model="semclip-tiny", dataset=str(tmp_path / "missing.csv"),
                      out_dir=str(tmp_path / "run"))
    cfg.to_json(tmp_path / "cfg.json")
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--quiet"]) == 1
    assert "triples file not found" in capsys.readouterr().err


def test_only_trains_the_named_runs_of_a_preset(capsys):
    assert main(["train", "--preset", "shapes-demo", "--only", "clip-same-data,semclip",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "semclip" in out and "clip-same-data" in out and "clip-baseline" not in out


def test_the_demo_preset_is_clip_versus_semclip_on_the_same_recipe():
    baseline, semclip, same_data = preset("shapes-demo")
    assert (baseline.alpha, baseline.beta, baseline.gamma) == (1.0, 0.0, 0.0)
    assert (same_data.alpha, same_data.beta, same_data.gamma) == (1.0, 0.0, 0.0)
    assert (semclip.alpha, semclip.beta, semclip.gamma) == (1.0, 1.0, 1.0)
    assert semclip.hard_negatives and not baseline.hard_negatives and not same_data.hard_negatives
    # CLIP+data sees SemCLIP's very data (the rich language, the bench held out) and
    # optimisation: only the loss differs
    assert semclip.shapes_rich_language_prob > 0 and semclip.shapes_held_out_queries
    assert semclip.shapes_true_negation_prob > 0 and semclip.shapes_varied_wording_prob > 0
    strip = lambda c: {k: v for k, v in c.to_dict().items()
                       if k not in ("alpha", "beta", "gamma", "hard_negatives", "name", "out_dir")}
    assert strip(same_data) == strip(semclip)
    # the baseline the app opens with: the same recipe on captions as ordinary corpora have them
    # (no rich language, and no paraphrase as a second caption: such corpora have one)
    assert baseline.shapes_rich_language_prob == 0 and not baseline.paraphrase_positives
    assert semclip.paraphrase_positives and same_data.paraphrase_positives
    rich = ("shapes_rich_language_prob", "shapes_held_out_queries", "paraphrase_positives")
    assert {k: v for k, v in strip(baseline).items() if k not in rich} == \
        {k: v for k, v in strip(semclip).items() if k not in rich}
    assert [c.name for c in (baseline, semclip, same_data)] == \
        ["clip-baseline", "semclip", "clip-same-data"]
    TrainConfig.from_dict(semclip.to_dict()).validate(check_model=True)  # the bench file is found
