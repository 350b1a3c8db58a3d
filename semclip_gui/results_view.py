"""The Compare tab's evaluation results: a ``semclip eval --json`` file as grouped bars and a
table, one column per model (named by its label), with the difference of two models."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Optional, Union

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from engine.eval.run import load_results
from engine.explore.compare import BarData, results_bars

from .views import MODEL_COLOURS, VIOLATION_RED, span, titled_plot


class EvalResultsView(QWidget):
    """Open a results file; see its metrics as bars and a table."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.result_bars: list[pg.BarGraphItem] = []
        self.results_button = QPushButton("Open results…")
        self.results_button.setToolTip("a results file written by `semclip eval --json`")
        self.results_file_label = QLabel("no results file opened")
        self.results_file_label.setWordWrap(True)
        self.results_error = QLabel()
        self.results_error.setWordWrap(True)
        self.results_error.setTextFormat(Qt.PlainText)
        self.results_error.setStyleSheet(f"color: {VIOLATION_RED}; font-weight: bold;")
        self.results_error.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.results_error.hide()
        self.results_plot = titled_plot("metrics per model")
        self.results_plot.getAxis("bottom").setStyle(tickTextOffset=6)
        self.results_table = QTableWidget()
        header = self.results_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Stretch)
        header.setTextElideMode(Qt.ElideRight)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.results_button)
        row.addWidget(self.results_file_label, 1)
        layout.addLayout(row)
        layout.addWidget(self.results_error)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.results_plot)
        split.addWidget(self.results_table)
        split.setSizes([320, 200])
        layout.addWidget(split, 1)
        self.results_button.clicked.connect(self._choose_results)

    def open_results(self, path: Union[str, Path]) -> bool:
        """Plot and tabulate an evaluation results file; a bad file shows an error, returns False."""
        try:
            results = load_results(path)
            bars = results_bars(results)
        except Exception as exc:  # noqa: BLE001 - any file the user picks must end in a message
            self._show_results_error(f"Could not read {path}: {exc}")
            return False
        if not bars.metrics:
            self._show_results_error(f"{path}: the file has no metrics to show")
            return False
        self.results_error.hide()
        settings = results.get("settings") or {}
        n = f", n={settings['n']}" if isinstance(settings, dict) and settings.get("n") else ""
        self.results_file_label.setText(f"<b>{html.escape(str(results['benchmark']))}</b>{n} · "
                                        f"{html.escape(str(results['date']))}"
                                        f"<br>{span(html.escape(str(path)))}")
        self._plot_bars(bars)
        self._fill_table(bars, [str(m.get("spec", "?")) for m in results["models"]])
        return True

    def _choose_results(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Evaluation results", "",
                                              "Results (*.json);;All files (*)")
        if path:
            self.open_results(path)

    def _show_results_error(self, message: str) -> None:
        self.results_error.setText(message)
        self.results_error.show()

    def _plot_bars(self, bars: BarData) -> None:
        plot = self.results_plot
        plot.clear()
        plot.getPlotItem().legend.clear()
        self.result_bars = []
        for m, label in enumerate(bars.models):
            xs, heights, width = bars.bars(m)
            colour = MODEL_COLOURS[m % len(MODEL_COLOURS)]
            item = pg.BarGraphItem(x=xs, height=heights, width=width, brush=colour, pen=pg.mkPen(None),
                                   name=_short(label))
            plot.addItem(item)
            self.result_bars.append(item)
        # metric names wrap at underscores, in a small font, so neighbours do not overlap
        axis = plot.getAxis("bottom")
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() - 1.5))
        axis.setStyle(tickFont=font)
        labels = [_tick_label(name) for name in bars.metrics]
        axis.setTicks([list(enumerate(labels))])
        lines = max(label.count("\n") + 1 for label in labels)
        axis.setHeight(QFontMetrics(font).height() * lines + 12)
        shown = [v for values in bars.values for v in values if v is not None] or [1.0]
        plot.setXRange(-0.6, len(bars.metrics) - 0.4, padding=0)
        plot.setYRange(min(0.0, *shown), max(1e-6, *shown) * 1.3, padding=0)  # room for the legend

    def _fill_table(self, bars: BarData, specs: list[str]) -> None:
        delta = len(bars.models) == 2
        table = self.results_table
        table.clear()
        table.setRowCount(len(bars.metrics))
        table.setColumnCount(len(bars.models) + delta)
        # whole labels (the run's name): the header elides them only when the panel is narrow
        table.setHorizontalHeaderLabels(list(bars.models) + (["Δ"] if delta else []))
        table.setVerticalHeaderLabels(bars.metrics)
        for j in range(len(bars.metrics)):
            row = [bars.values[m][j] for m in range(len(bars.models))]
            if delta:
                row.append(row[1] - row[0] if None not in row else None)
            for c, value in enumerate(row):
                text = "—" if value is None else (f"{value:+.4f}" if delta and c == 2 else f"{value:.4f}")
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                table.setItem(j, c, item)
        for c, (label, spec) in enumerate(zip(bars.models, specs)):
            table.horizontalHeaderItem(c).setToolTip(label if label == spec else f"{label}\n{spec}")
        if delta:
            table.horizontalHeaderItem(2).setToolTip(f"{bars.models[1]} minus {bars.models[0]}")


def _short(label: str, limit: int = 28) -> str:
    """A model label cut for legends and headers: a checkpoint path keeps its last folder and name."""
    head, bracket, tail = label.partition(" [")
    if "/" in head or "\\" in head:
        path = Path(head.replace("\\", "/"))
        head = f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
    label = head + bracket + tail
    return label if len(label) <= limit else label[:limit - 1] + "…"


_HYPHENATED = {"paraphrase": "para-\nphrase", "affirmative": "affirm-\native",
               "affirmation": "affirm-\nation"}  # the long words of engine.eval.run.METRIC_ORDER


def _tick_label(metric: str, width: int = 9) -> str:
    """A metric name on lines, one word each; a word longer than ``width`` is hyphenated."""
    def split(word: str) -> str:
        if len(word) <= width:
            return word
        return _HYPHENATED.get(word) or f"{word[:len(word) // 2]}-\n{word[len(word) // 2:]}"
    return "\n".join(split(word) for word in metric.split("_"))
