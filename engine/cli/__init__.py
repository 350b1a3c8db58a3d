"""``semclip``: the headless command line, a thin client of the engine's generators."""

from engine.cli.commands import main

__all__ = ["main"]
