"""General ability while training: zero-shot accuracy on a class folder, plain and negated
prompts, each evaluation of a real ``semclip train`` run, equal to the same measurement taken
afterwards on the run's checkpoints; and the measurement itself checked by hand."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import ToTensor

from engine.cli.commands import main
from engine.eval.benchmarks import load_zeroshot_folder
from engine.eval.metrics import NonFiniteEmbeddingsError
from engine.eval.zeroshot import NEGATED_TEMPLATES, PLAIN_TEMPLATES, zeroshot_scores
from engine.model.loading import LoadedModel, load_model
from engine.train.config import TrainConfig
from engine.train.runs import read_metrics


def test_a_run_logs_plain_and_negated_zero_shot_accuracy_each_epoch(tmp_path, two_class_folder,
                                                                    capsys):
    root = tmp_path / "runs"
    TrainConfig(model="semclip-tiny", lock_image=False, shapes_train_size=64, shapes_eval_size=16,
                batch_size=16, epochs=2, lr=1e-3, warmup_steps=1, threads=1, runs_root=str(root),
                run_name="r", save_every_steps=4, zeroshot_dataset=str(two_class_folder),
                best_metric="zeroshot/plain").to_json(tmp_path / "cfg.json")
    assert main(["train", "--config", str(tmp_path / "cfg.json")]) == 0
    out = capsys.readouterr().out
    assert "[epoch 1] zeroshot: plain=" in out and "[epoch 2] zeroshot: plain=" in out
    run = root / "r"
    logged = [r for r in read_metrics(run / "metrics.jsonl") if r["type"] == "zeroshot"]
    assert [(r["step"], r["epoch"]) for r in logged] == [(4, 1), (8, 2)]
    data = load_zeroshot_folder(two_class_folder)
    for record in logged:
        assert 0.0 <= record["plain"] <= 1.0 and 0.0 <= record["negated"] <= 1.0
        # the very weights that were scored, measured again by the benchmark function
        direct = zeroshot_scores(load_model(str(run / f"step_{record['step']}.pt")), data)
        assert direct == {"plain": record["plain"], "negated": record["negated"]}
    best = json.loads((run / "best.json").read_text())["best"]
    assert best["value"] == max(r["plain"] for r in logged)


def test_a_missing_zero_shot_folder_is_refused_before_training(tmp_path, capsys):
    TrainConfig(model="semclip-tiny", runs_root=str(tmp_path / "runs"),
                zeroshot_dataset=str(tmp_path / "nowhere")).to_json(tmp_path / "cfg.json")
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--quiet"]) == 2
    assert f"zeroshot_dataset: folder not found: {tmp_path / 'nowhere'}" in capsys.readouterr().err


# --- the measurement, by hand -------------------------------------------------------------------

class WordTokenizer:
    """Each text becomes its index in ``texts`` (one token), so the model can read it back."""

    def __init__(self):
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> torch.Tensor:
        self.texts += texts
        return torch.arange(len(self.texts) - len(texts), len(self.texts))[:, None]


class ColourWordModel(torch.nn.Module):
    """Images: mostly red -> axis 0, mostly blue -> axis 1 (``nan_blue``: NaN instead).
    Texts: "red ..." -> axis 0, "blue ..." -> axis 1; ``reads_not`` flips the axis of a text
    that starts "this is not"; ``all_same`` maps every text to one vector (all ties)."""

    def __init__(self, tokenizer: WordTokenizer, reads_not=False, all_same=False, nan_blue=False):
        super().__init__()
        self.tokenizer, self.reads_not, self.all_same, self.nan_blue = (
            tokenizer, reads_not, all_same, nan_blue)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # a device for the project's helpers

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        red = images[:, 0].mean((1, 2)) > images[:, 2].mean((1, 2))
        emb = torch.stack([red.float(), (~red).float()], dim=1)
        if self.nan_blue:
            emb[~red] = math.nan
        return emb

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        rows = []
        for index in tokens[:, 0].tolist():
            text = self.tokenizer.texts[index]
            red = "red" in text
            if self.reads_not and text.startswith("this is not"):
                red = not red
            rows.append([1.0, 1.0] if self.all_same else [float(red), float(not red)])
        return F.normalize(torch.tensor(rows), dim=-1)


def fake_loaded(**behaviour) -> LoadedModel:
    tokenizer = WordTokenizer()
    return LoadedModel(model=ColourWordModel(tokenizer, **behaviour), preprocess=ToTensor(),
                       train_preprocess=ToTensor(), tokenizer=tokenizer, model_name="colour-words",
                       spec="colour-words", identity="colour-words")


@pytest.mark.parametrize("behaviour, expected", [
    ({}, {"plain": 1.0, "negated": 1.0}),  # reads "not a red square" as "red square"
    ({"reads_not": True}, {"plain": 1.0, "negated": 0.0}),  # the negated prompt names the other class
    ({"all_same": True}, {"plain": 0.0, "negated": 0.0}),  # every class ties: no hit
])
def test_zero_shot_scores_by_hand(two_class_folder, behaviour, expected):
    assert zeroshot_scores(fake_loaded(**behaviour), load_zeroshot_folder(two_class_folder)) == expected


def test_nan_embeddings_are_an_error_not_a_score(two_class_folder):
    with pytest.raises(NonFiniteEmbeddingsError, match="3 of 6 rows hold NaN"):
        zeroshot_scores(fake_loaded(nan_blue=True), load_zeroshot_folder(two_class_folder))


def test_the_prompts_are_open_clips_templates_and_their_negations():
    assert PLAIN_TEMPLATES[1]("daisy") == "a bad photo of the daisy."
    assert NEGATED_TEMPLATES[1]("daisy") == "this is not a bad photo of the daisy."
    assert len(NEGATED_TEMPLATES) == len(PLAIN_TEMPLATES)

