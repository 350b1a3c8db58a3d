"""View helpers shared by the tabs."""

from __future__ import annotations

from PySide6.QtWidgets import QGraphicsOpacityEffect, QWidget

STALE_OPACITY = 0.35  # greyed enough to read as "old", not so faint that the layout jumps


def set_stale(widget: QWidget, stale: bool) -> None:
    """Grey ``widget`` out while what it shows no longer matches the input (from the keystroke
    until the new result lands, or after the new result failed), so nobody reads an old answer
    as the answer to a new question."""
    if stale and not is_stale(widget):
        effect = QGraphicsOpacityEffect(widget)
        effect.setOpacity(STALE_OPACITY)
        widget.setGraphicsEffect(effect)
    elif not stale and is_stale(widget):
        widget.setGraphicsEffect(None)  # deletes the effect


def is_stale(widget: QWidget) -> bool:
    """Whether :func:`set_stale` greyed ``widget`` out."""
    return isinstance(widget.graphicsEffect(), QGraphicsOpacityEffect)
