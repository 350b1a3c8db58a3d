"""View helpers shared by the tabs."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsOpacityEffect, QWidget

MODEL_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
VIOLATION_RED = "#d62728"  # images that show what a query denies; errors
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


def span(text: str, colour: str = "#666") -> str:
    """Rich text in a colour (grey: a hint rather than a result)."""
    return f"<span style='color:{colour}'>{text}</span>"


def titled_plot(title: str) -> pg.PlotWidget:
    """A white plot with a title, a y grid and a legend, not draggable (a display, not a tool)."""
    plot = pg.PlotWidget(background="w")
    plot.setTitle(title, color="#333", size="10pt")
    plot.setMouseEnabled(x=False, y=False)
    plot.showGrid(y=True, alpha=0.2)
    plot.addLegend(offset=(-8, 8), labelTextColor="#333")
    return plot
