"""``semclip eval`` / ``semclip export`` on broken models and empty data: a clear error, a
non-zero exit, never a table of made-up numbers (issue 11, items 5, 15 and 16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.cli.commands import main
from engine.data.shapes.world import ShapesDataset, ShapesWorld
from engine.model.checkpoint import save_checkpoint
from engine.model.loading import load_model
from engine.train.loop import evaluate_triples


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMCLIP_CACHE", str(tmp_path / "cache"))


def write_checkpoint(path: Path, edit=None) -> Path:
    """A semclip-tiny checkpoint as ``semclip train`` writes it, optionally with edited weights."""
    loaded = load_model("semclip-tiny", seed=0)
    if edit is not None:
        with torch.no_grad():
            edit(loaded.model)
    return save_checkpoint(path, {"state_dict": loaded.model.state_dict(), "loss_state": {}},
                           {"model_name": "semclip-tiny"})


def collapse(model: torch.nn.Module) -> None:
    model.text_projection.zero_()  # every text embedding is 0: every image ties for every text


def shapes_eval(model: str, tmp_path: Path) -> list[str]:
    return ["eval", "--benchmark", "shapes", "--n", "12", "--model", model, "--quiet",
            "--json", str(tmp_path / "results.json")]


def test_a_collapsed_model_scores_zero_in_semclip_eval(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "collapsed.pt", collapse)
    assert main(shapes_eval(str(checkpoint), tmp_path)) == 0
    metrics = json.loads((tmp_path / "results.json").read_text())["models"][0]["metrics"]
    for name in ("caption_top1", "caption_top5", "paraphrase_top1", "paraphrase_top5",
                 "ono_accuracy"):
        assert metrics[name] == 0.0, name
    printed = capsys.readouterr().out.splitlines()
    assert next(line for line in printed if line.startswith("caption_top1")).split() == [
        "caption_top1", "0.0000"]


def test_a_collapsed_model_scores_zero_in_the_per_epoch_evaluation():
    loaded = load_model("semclip-tiny", seed=0)
    collapse(loaded.model.requires_grad_(False))
    val = ShapesDataset(ShapesWorld(seed=0, image_size=32), "val", 12, transform=loaded.preprocess)
    metrics = evaluate_triples(loaded.model, loaded.tokenizer, val, torch.device("cpu"))
    assert metrics == {"ono_accuracy": 0.0, "caption_top1": 0.0, "caption_top5": 0.0,
                       "paraphrase_top1": 0.0, "paraphrase_top5": 0.0}


def test_a_model_with_nan_weights_fails_semclip_eval_naming_the_model(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "diverged.pt",
                                  lambda m: m.text_projection.fill_(float("nan")))
    assert main(shapes_eval(str(checkpoint), tmp_path)) == 1
    err = capsys.readouterr().err
    assert f"model {checkpoint}: text embeddings" in err and "NaN" in err
    assert not (tmp_path / "results.json").exists()  # no results file of meaningless numbers


# ---- damaged checkpoints (item 15) ------------------------------------------------------------

def damaged_copies(tmp_path: Path) -> dict[str, Path]:
    good = write_checkpoint(tmp_path / "good.pt")
    data, sidecar = good.read_bytes(), good.with_suffix(".json").read_text()
    copies = {}
    for name, blob in (("empty", b""), ("half", data[:len(data) // 2]), ("tail", data[:-64])):
        path = tmp_path / f"{name}.pt"
        path.write_bytes(blob)
        path.with_suffix(".json").write_text(sidecar)  # the sidecar survived, the weights not
        copies[name] = path
    return copies


def test_semclip_eval_names_a_truncated_or_empty_checkpoint(tmp_path, capsys):
    for name, path in damaged_copies(tmp_path).items():
        assert main(shapes_eval(str(path), tmp_path)) == 2, name
        err = capsys.readouterr().err
        assert str(path) in err and "Traceback" not in err, err
        assert ("empty" if name == "empty" else "truncated") in err, err


def test_semclip_export_names_a_truncated_or_empty_checkpoint(tmp_path, capsys):
    for name, path in damaged_copies(tmp_path).items():
        out = tmp_path / f"{name}-delta.pt"
        assert main(["export", "--checkpoint", str(path), "--out", str(out)]) == 1, name
        err = capsys.readouterr().err
        assert str(path) in err and "Traceback" not in err, err
        assert not out.exists()


# ---- nothing to evaluate (item 16) --------------------------------------------------------------

@pytest.mark.parametrize("name,text", [
    ("empty.jsonl", ""),
    ("blank.jsonl", "\n\n"),
    ("header-only.csv", "image,caption,paraphrase,negation\n"),
])
def test_semclip_eval_with_no_rows_fails_with_a_message(tmp_path, capsys, name, text):
    data = tmp_path / name
    data.write_text(text)
    code = main(["eval", "--benchmark", "triples", "--data", str(data), "--model",
                 "semclip-tiny", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"{data}: no rows to evaluate" in captured.err
    assert "caption_top1" not in captured.out  # no table at all


def test_semclip_eval_with_no_readable_image_fails_with_a_message(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(b"garbage, not a png")
    data = tmp_path / "t.jsonl"
    rows = [{"image": image, "caption": "c", "paraphrase": "p", "negation": "n"}
            for image in ("a.png", "gone.png")]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["eval", "--benchmark", "triples", "--data", str(data), "--model",
                 "semclip-tiny", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1 and "no row has a readable image" in captured.err
    assert "caption_top1" not in captured.out

    data.write_text(json.dumps(rows[1]) + "\n")  # every image missing
    assert main(["eval", "--benchmark", "triples", "--data", str(data), "--model",
                 "semclip-tiny", "--quiet"]) == 1
    assert "no row has an image on hand" in capsys.readouterr().err
