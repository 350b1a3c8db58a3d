"""The one console drain of job events: every ``semclip`` command that runs a long job shows it
through :func:`drain` (progress bars, log lines, the exit code)."""

from __future__ import annotations

import sys
from typing import Callable, Iterable, Optional, TextIO

from tqdm import tqdm

from engine.events import CheckpointSaved, Done, Error, EvalResult, Event, Log, Progress, StepMetrics


class Console:
    """A job's events on a terminal.

    One bar at a time: a bar per progress phase (described by ``label`` and the phase), or, once
    a training run takes its first step, the step bar. Info lines go to ``info_stream`` (stderr
    for commands whose stdout is a table) unless ``quiet`` or ``info=False``; warnings go to stderr
    (``warnings=False`` silences them too: the other ranks of a torchrun job).
    """

    def __init__(self, label: str = "", quiet: bool = False, info_stream: Optional[TextIO] = None,
                 info_prefix: str = "info: ", warnings: bool = True, unit: str = "it",
                 leave: bool = True, bar_desc: Optional[str] = None,
                 info: Optional[bool] = None):
        self.label, self.quiet, self.warnings = label, quiet, warnings
        self.info = not quiet if info is None else info  # info lines (quiet hides them too)
        self.bar_desc = bar_desc  # one description for every progress bar, if given
        self.info_stream, self.info_prefix = info_stream, info_prefix
        self.unit, self.leave = unit, leave
        self.bar: Optional[tqdm] = None
        self._bar_key: Optional[tuple] = None

    def say(self, text: str, err: bool = False) -> None:
        """A line past the bar (stdout, or stderr with ``err``)."""
        stream = sys.stderr if err else (self.info_stream or sys.stdout)
        (self.bar.write if self.bar is not None else print)(text, file=stream)

    def note(self, text: str) -> None:
        """An info line, unless they are off."""
        if self.info:
            self.say(text, err=self.info_stream is sys.stderr)

    def show(self, event: Event) -> None:
        """Any event but the job's end (``Done`` / ``Error``: see :func:`drain`)."""
        if isinstance(event, Progress):
            self._progress(event)
        elif isinstance(event, StepMetrics):
            self._step(event)
        elif isinstance(event, Log):
            if event.level == "info":
                self.note(f"{self.info_prefix}{event.message}")
            elif self.warnings:
                self.say(f"{event.level}: {event.message}", err=True)
        elif isinstance(event, EvalResult):
            self.note(f"[epoch {event.epoch}] {event.split}: "
                      + " ".join(f"{k}={v:.3f}" for k, v in event.metrics.items()))
        elif isinstance(event, CheckpointSaved):
            self.note(f"checkpoint: {event.path} (step {event.step})")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self._bar_key = None, None

    def _progress(self, event: Progress) -> None:
        if self._bar_key == ("steps",):
            return  # a training run's work before its first step is over
        key = (self.label, event.phase)
        if key != self._bar_key:
            self.close()
            desc = self.bar_desc or " ".join(part for part in key if part)
            self.bar = tqdm(total=event.total, desc=desc, disable=self.quiet, unit=self.unit,
                            leave=self.leave, initial=event.done)
            self._bar_key = key
        self.bar.total = event.total
        self.bar.n = event.done
        self.bar.refresh()

    def _step(self, event: StepMetrics) -> None:
        if self._bar_key != ("steps",):
            self.close()
            self.bar = tqdm(total=event.total_steps, desc=self.label, disable=self.quiet,
                            initial=event.step - 1)
            self._bar_key = ("steps",)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{event.losses['total']:.3f}", lr=f"{event.lr:.1e}",
                             sps=f"{event.samples_per_s:.0f}")


def drain(job: Iterable[Event], console: Console,
          handle: Optional[Callable[[Event], bool]] = None) -> tuple[int, Optional[Done]]:
    """Run a job to its end on ``console``: (0, its Done) when it finished or stopped, (1, None)
    after printing its Error (or if it ended without either). ``handle`` sees each event first
    and returns True for those it printed itself."""
    try:
        for event in job:
            if handle is not None and handle(event):
                continue
            if isinstance(event, Error):
                console.close()
                print(f"error ({event.kind}): {event.message}", file=sys.stderr)
                return 1, None
            if isinstance(event, Done):
                console.close()
                return 0, event
            console.show(event)
    finally:
        console.close()
    return 1, None
