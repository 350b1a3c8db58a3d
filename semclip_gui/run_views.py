"""What the Train tab draws of a run: loss, learning-rate and zero-shot curves over steps, and a
table of the epoch evaluations."""

from __future__ import annotations

import html
import time
from typing import Mapping, Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPlainTextEdit,
                               QProgressBar, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from engine.events import EvalResult

from .train_state import CURVE_COLOURS, METRIC_COLUMNS, OPTIONAL_CURVES, ZEROSHOT_COLOURS

ERROR_RED = "#c62828"

METRIC_TIPS = ("original-over-negation accuracy: the image is closer to its caption than to the "
               "caption's negation", "caption → image top-1", "caption → image top-5",
               "paraphrase → image top-1", "paraphrase → image top-5")  # METRIC_COLUMNS order


def step_plot(title: str, height: int) -> pg.PlotWidget:
    """A plot over training steps, cheap to redraw ten times a second."""
    plot = pg.PlotWidget(background="w")
    plot.setTitle(title, color="#333", size="10pt")
    plot.setLabel("bottom", "step")
    plot.setMinimumHeight(height)
    # No grid: in software rendering it doubles the cost of a frame (measured: 13 -> 5 ms).
    plot.getPlotItem().setDownsampling(auto=True, mode="peak")  # long runs stay cheap to draw
    plot.getPlotItem().setClipToView(True)
    return plot


class RunPlots(QSplitter):
    """Losses (large), learning rate and zero-shot accuracy (beside it)."""

    def __init__(self):
        super().__init__(Qt.Horizontal)
        self.loss_plot = step_plot("losses", 200)
        self.loss_plot.addLegend(offset=(-8, 8), labelTextColor="#333")
        self.lr_plot = step_plot("learning rate", 120)
        self.curves = {}
        for name, colour in CURVE_COLOURS.items():
            plot = self.lr_plot if name == "lr" else self.loss_plot
            width = 2 if name == "total" else 1.5
            self.curves[name] = plot.plot([], [], pen=pg.mkPen(colour, width=width), name=name)
        for name in OPTIONAL_CURVES:
            self._show_in_legend(name, False)
        self.zeroshot_plot = step_plot("zero-shot", 120)  # "accuracy" clips at 1024 px: tooltip
        self.zeroshot_plot.setToolTip("zero-shot accuracy on the zero-shot folder, with plain "
                                      "and with negated prompts")
        self.zeroshot_plot.setYRange(0.0, 1.0, padding=0.05)
        self.zeroshot_plot.addLegend(offset=(-8, 8), labelTextColor="#333")
        self.zeroshot_curves = {
            name: self.zeroshot_plot.plot([], [], pen=pg.mkPen(colour, width=1.5), symbol="o",
                                          symbolSize=6, symbolBrush=colour, name=name)
            for name, colour in ZEROSHOT_COLOURS.items()}
        side = QSplitter(Qt.Vertical)
        side.addWidget(self.lr_plot)
        side.addWidget(self.zeroshot_plot)
        self.addWidget(self.loss_plot)
        self.addWidget(side)
        self.setSizes([700, 260])

    def draw(self, history: Mapping[str, Sequence[float]],
             zeroshot: Mapping[str, Sequence[float]]) -> None:
        """Every curve from the run's step history and zero-shot points."""
        steps = np.asarray(history["step"], dtype=float)
        for name, curve in self.curves.items():
            values = np.asarray(history[name], dtype=float)
            curve.setData(steps, values)
            if name in OPTIONAL_CURVES:
                self._show_in_legend(name, bool(np.isfinite(values).any()))
        for name, curve in self.zeroshot_curves.items():
            curve.setData(np.asarray(zeroshot["step"], dtype=float),
                          np.asarray(zeroshot[name], dtype=float))

    def _show_in_legend(self, name: str, shown: bool) -> None:
        """A loss term this run does not have (all NaN) leaves the legend, and comes back with a
        run that has it."""
        curve, legend = self.curves[name], self.loss_plot.getPlotItem().legend
        if shown != curve.isVisible():
            curve.setVisible(shown)
            if shown:
                legend.addItem(curve, name)
            else:
                legend.removeItem(curve)

    def set_x_span(self, span: tuple[int, int]) -> None:
        for plot in (self.loss_plot, self.lr_plot, self.zeroshot_plot):
            plot.setXRange(*span, padding=0.01)


class MetricsTable(QTableWidget):
    """One row per epoch evaluation: epoch, step and the metrics (headers explained in tips)."""

    def __init__(self):
        super().__init__(0, 2 + len(METRIC_COLUMNS))
        self.setHorizontalHeaderLabels(["epoch", "step", *METRIC_COLUMNS.values()])
        for col, tip in enumerate(METRIC_TIPS, start=2):
            self.horizontalHeaderItem(col).setToolTip(tip)
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)

    def add_row(self, event: EvalResult) -> None:
        row = self.rowCount()
        self.insertRow(row)
        cells = [str(event.epoch), str(event.step)]
        cells += [f"{event.metrics[k]:.3f}" if k in event.metrics else "–" for k in METRIC_COLUMNS]
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.setItem(row, col, item)
        self.scrollToBottom()


class RunMonitor(QWidget):
    """A run as it goes: ``progress_bar`` and ``eta_label``, an ``error_label`` that names what
    stopped it, the curves (``plots``), the ``metrics_table`` and the ``log_view``."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%v / %m steps")
        self.eta_label = QLabel("idle")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error_label.setStyleSheet(f"color: {ERROR_RED}; font-weight: bold")
        self.error_label.hide()
        self.plots = RunPlots()
        self.metrics_table = MetricsTable()
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)

        bottom = QSplitter(Qt.Horizontal)
        bottom.addWidget(self.metrics_table)
        bottom.addWidget(self.log_view)
        bottom.setSizes([420, 540])
        body = QSplitter(Qt.Vertical)
        body.addWidget(self.plots)
        body.addWidget(bottom)
        body.setSizes([420, 220])
        status = QHBoxLayout()
        status.addWidget(self.progress_bar, 1)
        status.addWidget(self.eta_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(status)
        layout.addWidget(self.error_label)
        layout.addWidget(body, 1)

    def show_error(self, message: str) -> None:
        """The first paragraph above the curves; all of it (a traceback too) in the log."""
        self.error_label.setText(message.split("\n\n")[0])
        self.error_label.show()
        self.log(message, "error")

    def log(self, message: str, level: str = "info") -> None:
        stamp = time.strftime("%H:%M:%S")
        text = html.escape(f"{stamp}  {message}").replace("\n", "<br>")
        colour = {"error": ERROR_RED, "warning": "#b26a00"}.get(level)
        self.log_view.appendHtml(f"<span style='color:{colour}'>{text}</span>" if colour else text)
