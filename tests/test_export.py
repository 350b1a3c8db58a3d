"""Delta checkpoints: only what differs from the base model, and the same model back."""

from __future__ import annotations

import json

import pytest
import torch

from engine.events import Done
from engine.model.encoding import embed_texts
from engine.model.export import delta_summary, export_delta
from engine.model.loading import ModelLoadError, load_model
from engine.train.config import TrainConfig
from engine.train.loop import train


@pytest.fixture(scope="module")
def minilm_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(model="semclip-shapes-minilm", lock_image=False, text_unlocked_layers=1,
                      shapes_train_size=8, batch_size=4, epochs=1, eval_every_epochs=0,
                      warmup_steps=1, out_dir=str(out), threads=2)
    events = list(train(cfg))
    assert isinstance(events[-1], Done), events[-1]
    return out / "checkpoint.pt"


def test_delta_keeps_only_trained_tensors_and_loads_back(minilm_checkpoint, tmp_path):
    delta = export_delta(minilm_checkpoint, tmp_path / "demo.pt")
    meta = json.loads((tmp_path / "demo.json").read_text())
    assert meta["base_spec"] == "semclip-shapes-minilm" and meta["format"] == "semclip-delta/1"
    # frozen MiniLM layers 0-4 and embeddings are not stored again
    stored = torch.load(delta, weights_only=True)["state_dict"]
    assert not any(k.startswith("text.transformer.encoder.layer.0.") for k in stored)
    assert any(k.startswith("text.transformer.encoder.layer.5.") for k in stored)
    assert delta.stat().st_size < minilm_checkpoint.stat().st_size / 5
    assert "tensors over base semclip-shapes-minilm" in delta_summary(delta)

    full, small = load_model(str(minilm_checkpoint)), load_model(str(delta))
    texts = ["a big red ball", "no small blue square"]
    a = embed_texts(full.model, full.tokenizer, texts)
    b = embed_texts(small.model, small.tokenizer, texts)
    torch.testing.assert_close(a, b, atol=5e-3, rtol=0)  # float16 storage
    assert small.sidecar["loss_config"] == full.sidecar["loss_config"]


def test_delta_for_another_base_is_rejected(minilm_checkpoint, tmp_path):
    delta = export_delta(minilm_checkpoint, tmp_path / "demo.pt")
    meta = json.loads((tmp_path / "demo.json").read_text())
    meta["base_spec"] = "semclip-tiny"
    (tmp_path / "demo.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="does not fit its base semclip-tiny"):
        load_model(str(delta))


def test_cli_export_writes_the_delta_and_says_what_it_kept(minilm_checkpoint, tmp_path, capsys):
    from engine.cli.commands import main

    assert main(["export", "--checkpoint", str(minilm_checkpoint), "--out", str(tmp_path / "d.pt")]) == 0
    assert "tensors over base semclip-shapes-minilm" in capsys.readouterr().out
    assert (tmp_path / "d.json").is_file()
    assert main(["export", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "e.pt")]) == 1


def test_cli_export_to_a_path_under_a_file_says_so(minilm_checkpoint, tmp_path, capsys):
    from engine.cli.commands import main

    (tmp_path / "blocker").write_text("x")
    out = tmp_path / "blocker" / "d.pt"
    assert main(["export", "--checkpoint", str(minilm_checkpoint), "--out", str(out)]) == 1
    assert f"error: cannot write {out}" in capsys.readouterr().err
    assert (tmp_path / "blocker").read_text() == "x"
