"""Typed events that long-running engine jobs yield.

Every long job (training, evaluation, embedding a gallery, batch caption generation) is a plain
generator of these events that also accepts a :class:`StopFlag`. The CLI turns them into tqdm bars
and tables; the GUI's worker thread turns them into Qt signals. Keeping the set small and fixed is
what lets both clients stay thin.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Protocol, Union


class StopFlag(Protocol):
    """Anything with ``is_set()``: a ``threading.Event`` works, so does :class:`NeverStop`."""

    def is_set(self) -> bool: ...


class NeverStop:
    """A stop flag that is never set, for callers that just want to run to the end."""

    def is_set(self) -> bool:
        return False


def new_stop_flag() -> threading.Event:
    """A fresh, unset stop flag that another thread may set to request a cooperative stop."""
    return threading.Event()


@dataclass
class Progress:
    """Coarse progress of a job phase: ``done`` of ``total`` units (total 0 = unknown)."""

    done: int
    total: int
    phase: str = ""
    message: str = ""


@dataclass
class StepMetrics:
    """One optimiser step: every loss term, learning rate and throughput."""

    step: int
    total_steps: int
    epoch: int
    lr: float
    losses: dict[str, float]
    samples_per_s: float
    logit_scale: float = 0.0


@dataclass
class EvalResult:
    """Metrics of one evaluation pass (e.g. after an epoch, or a benchmark run)."""

    step: int
    epoch: int
    split: str
    metrics: dict[str, float]
    counts: dict[str, int] = field(default_factory=dict)
    label: str = ""  # which model, when one job evaluates several


@dataclass
class CheckpointSaved:
    """A checkpoint was written atomically to ``path``."""

    step: int
    path: str


@dataclass
class Log:
    """A human-readable line for log views (warnings, cache decisions, skipped files)."""

    message: str
    level: str = "info"


@dataclass
class Done:
    """The job finished (or stopped early on request: ``stopped=True``).

    ``result`` is the job's typed result, declared by each job (``TrainResult``,
    ``ShapesWritten``, ``GenerateResult``; ``evaluate``'s results document); ``None`` when the
    job stopped before it had one.
    """

    result: Any = None
    stopped: bool = False


@dataclass
class Error:
    """The job failed; ``kind`` is a short machine-readable tag, ``message`` says what to do."""

    kind: str
    message: str


Event = Union[Progress, StepMetrics, EvalResult, CheckpointSaved, Log, Done, Error]
EventStream = Iterator[Event]


class JobError(RuntimeError):
    """A job ended with an :class:`Error` event; ``kind`` is its machine-readable tag."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


def run_to_end(job: Iterator[Event], on_event: Optional[Callable[[Event], None]] = None) -> Any:
    """Drive a job (a generator of events) to its end and return its result, for notebooks,
    scripts and tests: the generator's return value when it has one (``embed_gallery``), else
    the result of its last :class:`Done`. An :class:`Error` event raises :class:`JobError`;
    ``on_event`` sees every event on the way (progress bars, logs).
    """
    done: Optional[Done] = None
    while True:
        try:
            event = next(job)
        except StopIteration as end:
            if end.value is not None:
                return end.value
            return done.result if done is not None else None
        if on_event is not None:
            on_event(event)
        if isinstance(event, Error):
            raise JobError(event.message, kind=event.kind)
        if isinstance(event, Done):
            done = event
