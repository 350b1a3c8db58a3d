"""Experiment trackers (``report_to``): TensorBoard, MLflow and Weights & Biases.

Each tracker is a sink with the interface of the run's ``metrics.jsonl`` writer: ``write`` takes
the very records that go to that file (``{"type": "step" | "eval", "step": ..., ...}``) and
``close`` ends the run. The training loop hands every record to all sinks alike, so the
trackers can never disagree with ``metrics.jsonl``. Each backend is an optional extra and is
imported only when asked for; this module itself imports none of them (nor torch).
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence, Union

# report_to name -> (module that must be importable, pip extra that installs it)
BACKENDS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "mlflow": ("mlflow", "mlflow"),
    "wandb": ("wandb", "wandb"),
}
INSTALL_HINT = "pip install 'semclip-studio[{extra}]'"
MLFLOW_EXPERIMENT = "semclip"  # when MLFLOW_EXPERIMENT_NAME does not name one
WANDB_PROJECT = "semclip"  # when WANDB_PROJECT does not name one
# The ids of the tracker runs a run folder logs to, so that a resumed run goes on in the same
# MLflow / W&B run (one curve per run, as open_clip's --resume gives with W&B) instead of
# starting a second one.
TRACKER_RUNS_FILE = "tracker_runs.json"


class Sink(Protocol):
    """Where a run's metric records go (``metrics.jsonl`` and each tracker)."""

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self, outcome: str = "finished") -> None:
        """End the run; ``outcome`` is "finished", "stopped" (on request) or "failed"."""


def parse_report_to(value: Union[str, Sequence[str], None]) -> list[str]:
    """``"tensorboard, mlflow"`` or ``["tensorboard", "mlflow"]`` -> ``["tensorboard", "mlflow"]``
    (lower-cased, blanks and repeats dropped; "" and "none" mean no tracker)."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    names: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if name and name != "none" and name not in names:
            names.append(name)
    return names


def report_to_problem(value: Union[str, Sequence[str], None]) -> str:
    """A message naming every unknown tracker and every one whose package is missing (with the
    ``pip install`` line that adds it), or "" when all can be used."""
    names = parse_report_to(value)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        return (f"report_to: unknown tracker(s) {', '.join(map(repr, unknown))}; choose from "
                f"{', '.join(BACKENDS)}")
    missing = [n for n in names if importlib.util.find_spec(BACKENDS[n][0]) is None]
    return "; ".join(f"report_to={n} needs the {BACKENDS[n][0]} package: "
                     f"{INSTALL_HINT.format(extra=BACKENDS[n][1])}" for n in missing)


def metric_items(record: dict[str, Any]) -> tuple[int, dict[str, float]]:
    """(step, {name: value}) of a ``metrics.jsonl`` record, named the way trackers group them:
    ``train/total``, ``train/lr``, ... for steps, ``val/ono_accuracy``, ... for evaluations and
    ``zeroshot/plain``, ``zeroshot/negated`` for the zero-shot check."""
    prefix = {"step": "train", "zeroshot": "zeroshot"}.get(record.get("type"), "val")
    values = {f"{prefix}/{key}": float(value) for key, value in record.items()
              if key not in ("type", "step") and isinstance(value, (int, float))
              and not isinstance(value, bool)}
    return int(record["step"]), values


class TrackingError(RuntimeError):
    """A tracker could not start (server unreachable, not logged in, ...)."""


def _tracker_runs(out_dir: Path) -> dict[str, Any]:
    """``<out_dir>/tracker_runs.json`` as {backend: run id}; {} when absent or unreadable."""
    try:
        ids = json.loads((out_dir / TRACKER_RUNS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return ids if isinstance(ids, dict) else {}


def saved_tracker_run(out_dir: Path, backend: str) -> Optional[str]:
    """The id of the ``backend`` run that ``out_dir`` logged to before, if it recorded one."""
    value = _tracker_runs(out_dir).get(backend)
    return value if isinstance(value, str) and value else None


def save_tracker_run(out_dir: Path, backend: str, run_id: str) -> None:
    """Record that ``out_dir`` logs to the ``backend`` run ``run_id`` (kept across resumes)."""
    from engine.atomic import atomic_write_text

    ids = {**_tracker_runs(out_dir), backend: run_id}
    atomic_write_text(out_dir / TRACKER_RUNS_FILE, json.dumps(ids, indent=2) + "\n")


class TensorBoardSink:
    """Scalars in ``<out_dir>/tensorboard`` through torch's own ``SummaryWriter``."""

    def __init__(self, out_dir: Path, config: dict[str, Any], resume_step: Optional[int]):
        import json

        from torch.utils.tensorboard import SummaryWriter

        # A resumed run drops what an earlier attempt logged after its checkpoint, as
        # metrics.jsonl does, so no step appears twice in the curves.
        purge = resume_step + 1 if resume_step is not None else None
        self.writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"), purge_step=purge)
        if resume_step is None:
            self.writer.add_text("config", f"```\n{json.dumps(config, indent=2)}\n```", 0)

    def write(self, record: dict[str, Any]) -> None:
        step, values = metric_items(record)
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def close(self, outcome: str = "finished") -> None:
        self.writer.close()


class MlflowSink:
    """One MLflow run in the store ``MLFLOW_TRACKING_URI`` names (a server, a database, a
    folder), else in a file store inside the run folder (``<out_dir>/mlruns``), so a run
    tracks offline without any set-up. Uses the client API, not the global active run, so two
    runs in one process (a preset, the app) never mix."""

    def __init__(self, out_dir: Path, config: dict[str, Any], name: str, resume: bool = False):
        from mlflow.entities import Param, RunStatus
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or (out_dir / "mlruns").resolve().as_uri()
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 refuses file stores unless told they are wanted; the file store is the
            # one every install has (a database store needs the full mlflow package).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or MLFLOW_EXPERIMENT
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = (experiment.experiment_id if experiment
                         else self.client.create_experiment(experiment_name))
        previous = saved_tracker_run(out_dir, "mlflow") if resume else None
        if previous:
            try:  # go on in the run the checkpoint's attempt logged to, if this store has it
                self.client.update_run(previous, status=RunStatus.to_string(RunStatus.RUNNING))
                self.run_id = previous
                return  # its params are logged already (MLflow refuses to change a param)
            except MlflowException:
                pass  # another store, or the run was deleted: start a new one
        self.run_id = self.client.create_run(
            experiment_id, run_name=name, tags={"semclip.out_dir": str(out_dir)}).info.run_id
        save_tracker_run(out_dir, "mlflow", self.run_id)
        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in config.items()])

    def write(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        step, values = metric_items(record)
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step)
                                                    for k, v in values.items()])

    def close(self, outcome: str = "finished") -> None:
        status = {"finished": "FINISHED", "stopped": "KILLED"}.get(outcome, "FAILED")
        self.client.set_terminated(self.run_id, status)


class WandbSink:
    """One Weights & Biases run (project ``WANDB_PROJECT`` or "semclip"); files go to
    ``WANDB_DIR`` or the run folder. ``WANDB_MODE=offline`` keeps it on the machine."""

    def __init__(self, out_dir: Path, config: dict[str, Any], name: str, resume: bool = False):
        import wandb

        previous = saved_tracker_run(out_dir, "wandb") if resume else None
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or WANDB_PROJECT,
                              name=name, config=config,
                              dir=None if os.environ.get("WANDB_DIR") else str(out_dir),
                              reinit="create_new", id=previous,
                              resume="allow" if previous else None)
        save_tracker_run(out_dir, "wandb", self.run.id)

    def write(self, record: dict[str, Any]) -> None:
        step, values = metric_items(record)
        self.run.log(values, step=step)

    def close(self, outcome: str = "finished") -> None:
        self.run.finish(exit_code=1 if outcome == "failed" else 0)


def open_trackers(report_to: Union[str, Sequence[str], None], out_dir: Path,
                  config: dict[str, Any], name: str,
                  resume_step: Optional[int] = None) -> list[Sink]:
    """One sink per tracker in ``report_to``, each started for this run (rank 0 only: the
    caller opens them where it opens ``metrics.jsonl``). With ``resume_step`` (a resumed run),
    MLflow and W&B go on in the runs this folder logged to before."""
    problem = report_to_problem(report_to)
    if problem:  # validated with the config already; a package removed since then lands here
        raise TrackingError(problem)
    resuming = resume_step is not None
    starters = {"tensorboard": lambda: TensorBoardSink(out_dir, config, resume_step),
                "mlflow": lambda: MlflowSink(out_dir, config, name, resuming),
                "wandb": lambda: WandbSink(out_dir, config, name, resuming)}
    sinks: list[Sink] = []
    for backend in parse_report_to(report_to):
        try:
            sinks.append(starters[backend]())
        except Exception as exc:  # noqa: BLE001 - each backend fails in its own way
            FanOut(sinks).close("failed")
            raise TrackingError(f"report_to={backend}: the tracker could not start: "
                                f"{type(exc).__name__}: {exc}") from exc
    return sinks


class FanOut:
    """Hands each record to every sink; closes them all, even when one fails to close."""

    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks

    def write(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.write(record)

    def close(self, outcome: str = "finished") -> None:
        errors = []
        for sink in self.sinks:
            try:
                sink.close(outcome)
            except Exception as exc:  # noqa: BLE001 - close the others, then report
                errors.append(exc)
        if errors:
            raise errors[0]
