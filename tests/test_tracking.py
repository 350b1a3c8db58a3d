"""report_to: a real ``semclip train`` run's TensorBoard, MLflow and W&B records, read back with
each tool's own reader, equal the run's metrics.jsonl."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest

from engine.cli.commands import main
from engine.train.config import ConfigError, TrainConfig
from engine.train.tracking import metric_items, parse_report_to


def _needs(package: str):
    return pytest.mark.skipif(importlib.util.find_spec(package) is None,
                              reason=f"{package} is not installed "
                                     f"(pip install 'semclip-studio[{package}]')")


def train_tiny(tmp_path: Path, report_to: str, *extra: str) -> tuple[int, Path]:
    """``semclip train`` of semclip-tiny for 4 steps (2 epochs, each evaluated)."""
    out = tmp_path / "run"
    TrainConfig(model="semclip-tiny", shapes_train_size=32, shapes_eval_size=16, batch_size=16,
                epochs=2, warmup_steps=1, lr=1e-3, threads=1, name="tiny-tracked",
                out_dir=str(out)).to_json(tmp_path / "cfg.json")
    code = main(["train", "--config", str(tmp_path / "cfg.json"), "--quiet",
                 "--set", f"report_to={report_to}", *extra])
    return code, out


def jsonl_series(out: Path) -> dict[str, dict[int, float]]:
    """metrics.jsonl as {tracker metric name: {step: value}}."""
    series: dict[str, dict[int, float]] = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        step, values = metric_items(json.loads(line))
        for name, value in values.items():
            series.setdefault(name, {})[step] = value
    return series


def test_report_to_accepts_a_list_or_a_comma_string_and_names_what_is_wrong(tmp_path,
                                                                            monkeypatch):
    assert parse_report_to(" TensorBoard, mlflow,,tensorboard ") == ["tensorboard", "mlflow"]
    assert parse_report_to(["wandb"]) == ["wandb"] and parse_report_to("") == []
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"report_to": ["tensorboard", "mlflow"]}))
    assert TrainConfig.from_json(path).report_to == ["tensorboard", "mlflow"]
    path.write_text(json.dumps({"report_to": 3}))
    with pytest.raises(ConfigError, match="report_to must be text or a list of text"):
        TrainConfig.from_json(path)
    with pytest.raises(ConfigError, match=r"unknown tracker\(s\) 'tensorbord'; choose from "
                                          r"tensorboard, mlflow, wandb"):
        TrainConfig(report_to="tensorbord").validate(check_model=False)
    # a tracker whose package is missing is named with the extra that installs it
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"report_to=mlflow needs the mlflow package: "
                                          r"pip install 'semclip-studio\[mlflow\]'"):
        TrainConfig(report_to="tensorboard,mlflow").validate(check_model=False)


def test_an_unknown_tracker_stops_the_cli_before_training(tmp_path, capsys):
    code, out = train_tiny(tmp_path, "tensorbord")
    assert code == 2 and "unknown tracker(s) 'tensorbord'" in capsys.readouterr().err
    assert not out.exists()


@_needs("tensorboard")
def test_tensorboard_event_files_hold_the_runs_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, out = train_tiny(tmp_path, "tensorboard")
    assert code == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    expected = jsonl_series(out)
    assert set(events.Tags()["scalars"]) == set(expected)
    assert {"train/total", "train/lr", "val/ono_accuracy"} <= set(expected)
    for name, by_step in expected.items():
        logged = {e.step: e.value for e in events.Scalars(name)}
        assert logged == pytest.approx(by_step, rel=1e-6), name  # stored as float32
    assert sorted(expected["train/total"]) == [1, 2, 3, 4]


@_needs("tensorboard")
def test_zero_shot_accuracy_reaches_tensorboard_as_zeroshot_scalars(tmp_path, two_class_folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, out = train_tiny(tmp_path, "tensorboard", "--set",
                           f"zeroshot_dataset={two_class_folder}")
    assert code == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    expected = jsonl_series(out)
    for name in ("zeroshot/plain", "zeroshot/negated"):
        assert sorted(expected[name]) == [2, 4]  # each epoch's end
        logged = {e.step: e.value for e in events.Scalars(name)}
        assert logged == pytest.approx(expected[name], rel=1e-6), name


@_needs("tensorboard")
def test_a_resumed_run_keeps_each_step_once_in_tensorboard(tmp_path):
    """An attempt that logged past its last checkpoint, then a resume from that checkpoint:
    the curve holds each step once, with the values metrics.jsonl keeps."""
    import shutil

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, out = train_tiny(tmp_path, "tensorboard", "--set", "max_steps=2")
    assert code == 0
    for suffix in (".pt", ".json"):  # the checkpoint at step 2, kept aside
        shutil.copy(out / f"checkpoint{suffix}", tmp_path / f"step2{suffix}")
    resume = ["--set", f"resume={tmp_path / 'step2.pt'}"]
    assert train_tiny(tmp_path, "tensorboard", "--set", "max_steps=3", *resume)[0] == 0
    assert train_tiny(tmp_path, "tensorboard", *resume)[0] == 0  # step 3 again, then 4
    events = EventAccumulator(str(out / "tensorboard"))  # as TensorBoard reads it
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("train/total")]
    assert sorted(step for step, _ in logged) == [1, 2, 3, 4]
    assert dict(logged) == pytest.approx(jsonl_series(out)["train/total"], rel=1e-6)


@_needs("mlflow")
@pytest.mark.parametrize("where", ["MLFLOW_TRACKING_URI", "run folder"])
def test_mlflow_file_store_holds_the_runs_metrics_and_config(tmp_path, monkeypatch, where):
    from mlflow.tracking import MlflowClient

    if where == "MLFLOW_TRACKING_URI":
        store = (tmp_path / "mlflow-store").as_uri()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    else:  # no store named: a file store inside the run folder, offline
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        store = (tmp_path / "run" / "mlruns").as_uri()
    # MLflow 3 refuses file stores unless allowed; the sink allows the one it writes to
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    code, out = train_tiny(tmp_path, "mlflow")
    assert code == 0
    client = MlflowClient(tracking_uri=store)
    [run] = client.search_runs([client.get_experiment_by_name("semclip").experiment_id])
    assert run.info.run_name == "tiny-tracked" and run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.001" and run.data.params["report_to"] == "mlflow"
    expected = jsonl_series(out)
    assert set(run.data.metrics) == set(expected)
    for name, by_step in expected.items():
        history = client.get_metric_history(run.info.run_id, name)
        assert {m.step: m.value for m in history} == by_step, name


def train_then_resume(tmp_path: Path, report_to: str) -> Path:
    """A run stopped after 2 of its 4 steps, then resumed from that checkpoint to the end."""
    assert train_tiny(tmp_path, report_to, "--set", "max_steps=2")[0] == 0
    code, out = train_tiny(tmp_path, report_to, "--set", f"resume={tmp_path / 'run' / 'checkpoint.pt'}")
    assert code == 0
    return out


@_needs("mlflow")
def test_a_resumed_run_goes_on_in_the_same_mlflow_run(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = train_then_resume(tmp_path, "mlflow")
    client = MlflowClient(tracking_uri=(out / "mlruns").as_uri())
    [run] = client.search_runs([client.get_experiment_by_name("semclip").experiment_id])
    assert run.info.status == "FINISHED"
    assert json.loads((out / "tracker_runs.json").read_text()) == {"mlflow": run.info.run_id}
    history = client.get_metric_history(run.info.run_id, "train/total")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    assert {m.step: m.value for m in history} == jsonl_series(out)["train/total"]


@_needs("wandb")
def test_a_resumed_run_goes_on_in_the_same_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    out = train_then_resume(tmp_path, "wandb")
    run_id = json.loads((out / "tracker_runs.json").read_text())["wandb"]
    attempts = sorted((out / "wandb").glob("offline-run-*"))
    assert len(attempts) == 2 and all(a.name.endswith(f"-{run_id}") for a in attempts)


@_needs("mlflow")
def test_a_tracker_that_cannot_start_fails_the_run_and_says_which(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://store")
    code, out = train_tiny(tmp_path, "mlflow")
    assert code == 1
    assert "error (tracking): report_to=mlflow: the tracker could not start" in \
        capsys.readouterr().err
    assert not (out / "checkpoint.pt").exists()


def read_wandb_records(path: Path) -> list:
    """The protobuf records of a ``.wandb`` file (the LevelDB log format W&B writes: a 7-byte
    file header, then 32 KiB blocks of chunks, each with a 7-byte header: crc, length, type)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # FULL/FIRST start a record
        if kind in (1, 4):  # FULL/LAST end one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


@_needs("wandb")
def test_wandb_offline_run_holds_the_runs_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")  # leave pytest's output capture alone
    monkeypatch.delenv("WANDB_DIR", raising=False)
    code, out = train_tiny(tmp_path, "wandb")
    assert code == 0
    [run_file] = (out / "wandb").glob("offline-run-*/run-*.wandb")
    logged: dict[str, dict[int, float]] = {}
    config = {}
    for record in read_wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                     for i in record.history.item}
            for key, value in items.items():
                if not key.startswith("_"):
                    logged.setdefault(key, {})[items["_step"]] = value
        elif record.WhichOneof("record_type") == "run":
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
    assert config["lr"] == 0.001 and config["name"] == "tiny-tracked"
    expected = jsonl_series(out)
    assert logged.keys() == expected.keys()
    for name, by_step in expected.items():
        assert logged[name] == pytest.approx(by_step), name
