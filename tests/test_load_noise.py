"""Building our models prints no alarming noise; real load problems still show (issue 11, 21)."""

from __future__ import annotations

import copy
import logging
import threading

import pytest
from open_clip import factory as oc_factory

from engine import cli
from engine.model.load_noise import TRANSFORMERS_LOGGER, quiet_model_construction
from engine.model.loading import ModelLoadError, load_model, model_config
from engine.paths import ASSETS_DIR
from engine.train.config import TrainConfig

DEMO_SEMCLIP = ASSETS_DIR / "demo_models" / "semclip.pt"
# What users saw on every start of the app and every checkpoint load.
NOISE = ("LOAD REPORT", "UNEXPECTED", "Loading weights", "initialized randomly",
         "initialized partially")
RANDOM_INIT = "No pretrained weights loaded for model 'x'. Model initialized randomly."


def noise_in(*outputs: str) -> list[str]:
    return [line for text in outputs for line in text.splitlines()
            if any(word in line for word in NOISE)]


def test_loading_a_demo_model_prints_none_of_the_expected_noise(capfd, caplog):
    caplog.set_level(logging.INFO)
    loaded = load_model(str(DEMO_SEMCLIP))  # a delta over semclip-photo-minilm (HF text tower)
    assert loaded.model_name == "semclip-photo-minilm"
    out, err = capfd.readouterr()
    assert noise_in(out, err, caplog.text) == []


def test_training_and_loading_a_checkpoint_print_none_of_it(tmp_path, capfd, caplog):
    caplog.set_level(logging.INFO)
    config = tmp_path / "minilm.json"
    TrainConfig(model="semclip-shapes-minilm", shapes_train_size=8, shapes_eval_size=0,
                eval_every_epochs=0, batch_size=4, max_steps=1, warmup_steps=0, threads=1,
                device="cpu", out_dir=str(tmp_path / "run")).to_json(config)
    assert cli.main(["train", "--config", str(config)]) == 0
    loaded = load_model(str(tmp_path / "run" / "checkpoint.pt"))
    assert loaded.model_name == "semclip-shapes-minilm"
    out, err = capfd.readouterr()
    assert noise_in(out, err, caplog.text) == []


def test_a_missing_weights_file_is_still_an_error_that_names_it(tmp_path):
    missing = tmp_path / "gone.pt"
    with pytest.raises(ModelLoadError, match="gone.pt"):
        load_model(f"semclip-shapes-tiny:{missing}")
    with pytest.raises(ModelLoadError, match="gone.pt"):
        load_model(str(missing))


def test_a_random_model_of_a_bare_architecture_is_still_reported(monkeypatch, caplog):
    """Not a project config: random weights there are likely a forgotten tag, so say so."""
    # Registered in place: open_clip.add_model_config would re-read every config file and
    # undo the project's resolved text-tower aliases for the tests that follow.
    monkeypatch.setitem(oc_factory._MODEL_CONFIGS, "bare-tiny",
                        copy.deepcopy(model_config("semclip-shapes-tiny")))
    load_model("bare-tiny")
    assert "No pretrained weights loaded for model 'bare-tiny'" in caplog.text


def test_a_text_tower_load_with_missing_keys_stays_visible(caplog):
    report = ("BertModel LOAD REPORT from: /models/x\nKey | Status\n"
              "encoder.layer.0.attention.self.query.weight | MISSING\npooler.dense.bias | UNEXPECTED")
    with quiet_model_construction(random_init_expected=True):
        logging.getLogger(TRANSFORMERS_LOGGER).warning(report)
        logging.getLogger(TRANSFORMERS_LOGGER).warning("BertModel LOAD REPORT\n"
                                                       "pooler.dense.bias | UNEXPECTED")
    assert "MISSING" in caplog.text and caplog.text.count("LOAD REPORT") == 1


def test_only_the_thread_that_builds_the_model_is_quiet(caplog):
    def other_thread() -> None:
        logging.warning(RANDOM_INIT)

    with quiet_model_construction(random_init_expected=True):
        logging.warning(RANDOM_INIT)  # this thread's: expected, dropped
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    logging.warning(RANDOM_INIT)  # outside the scope: shown
    assert caplog.text.count("initialized randomly") == 2
    assert logging.getLogger().filters == []  # the filter left with the scope
