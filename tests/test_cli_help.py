"""``semclip --help`` and every sub-command's ``--help`` answer without importing torch or open_clip,
and the train help lists every config field with its help text and default."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields

import pytest

from engine.cli.commands import main
from engine.train.config import TrainConfig

HEAVY = ("torch", "open_clip", "torchvision", "transformers", "numpy", "PIL")

IMPORTS_AFTER_HELP = """
import json, sys
from engine.cli.commands import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code == 0, exc.code
heavy = %r
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
""" % (HEAVY,)


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["-h"], ["eval", "--help"],
                                  ["generate", "--help"], ["prepare", "--help"]])
def test_help_imports_no_heavy_library(argv):
    """In a fresh interpreter, as the `semclip` entry point runs it. The data-reading commands
    may import PIL (tens of milliseconds); nothing imports torch and its kin (seconds)."""
    done = subprocess.run([sys.executable, "-c", IMPORTS_AFTER_HELP, *argv],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: semclip" in done.stdout
    imported = json.loads(done.stdout.splitlines()[-1])
    allowed = ("PIL",) if argv[0] in ("eval", "prepare") else ()
    assert [m for m in imported if m.split(".")[0] not in allowed] == []


def test_overview_lists_every_sub_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "shapes", "export", "eval", "generate"):
        assert f"    {command} " in out
    assert "evaluate models on a benchmark" in out


def test_train_help_lists_every_config_field_with_help_and_default(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # help text wraps; compare words
    for f in fields(TrainConfig):
        value = getattr(TrainConfig(), f.name)  # list and dict fields have a default factory
        default = "null" if value is None else json.dumps(value)
        assert f"{f.name} = {default} " in out, f.name
        assert " ".join(f.metadata["help"].split()) in out, f.name
    assert "model = \"semclip-tiny\" (text) model spec:" in out
    assert "lr = 0.0005 (a number) peak AdamW learning rate" in out


def test_lazily_built_sub_commands_still_parse_their_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--help"])
    assert exit_info.value.code == 0
    assert "--benchmark" in capsys.readouterr().out
    assert main(["generate", "--in", "x.csv", "--out", "y.csv", "--base-url", "http://h"]) == 2
    assert "only apply to --backend llm" in capsys.readouterr().err
