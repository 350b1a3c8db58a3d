"""The CLI's one console drain: what each kind of event prints, and the exit codes."""

from __future__ import annotations

from engine.cli.console import Console, drain
from engine.events import CheckpointSaved, Done, Error, Log, Progress


def job(*events):
    yield from events


def test_a_finished_job_returns_its_done_and_prints_info_and_warnings(capsys):
    code, done = drain(job(Progress(1, 2, phase="images"), Log("cached 3"),
                           Log("2 rows skipped", level="warning"),
                           CheckpointSaved(step=4, path="run/checkpoint.pt"),
                           Done(result={"step": 4})), Console(label="m"))
    out, err = capsys.readouterr()
    assert (code, done.result) == (0, {"step": 4})
    assert "info: cached 3" in out and "checkpoint: run/checkpoint.pt (step 4)" in out
    assert "warning: 2 rows skipped" in err and "warning" not in out


def test_quiet_hides_info_but_never_warnings_and_an_error_exits_1(capsys):
    code, done = drain(job(Log("cached 3"), Log("odd row", level="warning"),
                           Error(kind="data", message="no rows")), Console(quiet=True))
    out, err = capsys.readouterr()
    assert (code, done) == (1, None) and out == ""
    assert "warning: odd row" in err and "error (data): no rows" in err


def test_a_job_that_ends_without_done_or_error_is_a_failure(capsys):
    assert drain(job(Log("hi")), Console(info=False)) == (1, None)


def test_the_handler_takes_the_events_it_prints_itself(capsys):
    seen = []
    code, _ = drain(job(Log("mine"), Done()), Console(),
                    handle=lambda e: isinstance(e, Log) and not seen.append(e))
    assert code == 0 and [e.message for e in seen] == ["mine"]
    assert "mine" not in capsys.readouterr().out
