"""The Compare tab's blend box: a λ slider between the two models, the blend's gallery metrics
and their curve over the λ values visited. A view only: the panel runs the blending jobs."""

from __future__ import annotations

from typing import Optional

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QSlider, QVBoxLayout, QWidget

from .result_cards import CAPTION_VS_NEGATION, METRICS_TIP
from .views import MODEL_COLOURS, span, titled_plot

CURVES = (("ono_accuracy", CAPTION_VS_NEGATION, MODEL_COLOURS[0], "o"),
          ("caption_top1", "caption top-1", MODEL_COLOURS[1], "s"))


class BlendBox(QWidget):
    """θ(λ) = (1 − λ)·θ_left + λ·θ_right: the slider, what the blend scores, and its curve."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setTickInterval(10)
        self.slider.setTickPosition(QSlider.TicksBelow)
        self.ends = (QLabel(), QLabel())
        self.lambda_label = QLabel()
        self.metrics = QLabel()
        self.metrics.setWordWrap(True)
        self.metrics.setTextFormat(Qt.RichText)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.plot = titled_plot("gallery metrics of θ(λ)")
        self.plot.setLabel("bottom", "λ")
        self.plot.setXRange(0, 1, padding=0.04)
        self.plot.setYRange(0, 1, padding=0.04)
        self.curves = {metric: self.plot.plot([], [], name=name, pen=pg.mkPen(colour, width=2),
                                              symbol=symbol, symbolSize=6, symbolBrush=colour)
                       for metric, name, colour, symbol in CURVES}
        self.lambda_line = pg.InfiniteLine(0, angle=90,
                                           pen=pg.mkPen(MODEL_COLOURS[2], style=Qt.DashLine))
        self.plot.addItem(self.lambda_line)
        self.plot.setToolTip(METRICS_TIP)
        self._points: dict[float, dict[str, float]] = {}

        slider_row = QHBoxLayout()
        slider_row.addWidget(self.ends[0])
        slider_row.addWidget(self.slider, 1)
        slider_row.addWidget(self.ends[1])
        explain = QLabel("θ(λ) = (1 − λ)·θ<sub>left</sub> + λ·θ<sub>right</sub>: "
                         "the blended model's top-k is the third column.")
        explain.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(explain)
        layout.addLayout(slider_row)
        layout.addWidget(self.lambda_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.metrics)
        layout.addWidget(self.plot, 1)

    def lam(self) -> float:
        """The slider's λ in [0, 1]."""
        return self.slider.value() / 100.0

    def show_lambda(self) -> None:
        self.lambda_label.setText(f"λ = {self.lam():.2f}")
        self.lambda_line.setValue(self.lam())

    def reset(self, left_label: str, right_label: str, unavailable: str) -> None:
        """New models or gallery: name the ends, enable the slider if the pair can blend, and
        forget the curve."""
        self.slider.setEnabled(not unavailable)
        self.slider.setToolTip(unavailable or "drag to blend the two models' weights")
        self.ends[0].setText(left_label)
        self.ends[1].setText(right_label)
        self.show_lambda()
        self._points.clear()
        self._draw()

    def say(self, message: str, colour: Optional[str] = None) -> None:
        """A line of plain text under the slider (HTML-escaped by ``span``'s callers)."""
        self.metrics.setText(span(message, colour) if colour else span(message))

    def show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def show_result(self, lam: float, metrics: Optional[dict[str, float]]) -> None:
        """The blend at ``lam`` is ready: its metrics in words and as a point on the curve."""
        self.progress.setValue(self.progress.maximum())
        if not metrics:
            self.say("gallery metrics need a labelled shapes gallery")
            return
        self._points[lam] = metrics
        self._draw()
        self.metrics.setText(
            f"<b>θ({lam:.2f})</b> on this gallery: {CAPTION_VS_NEGATION} "
            f"<b>{metrics['ono_accuracy']:.3f}</b> · caption top-1 <b>{metrics['caption_top1']:.3f}</b>")

    def add_known_point(self, lam: float, metrics: dict[str, float]) -> None:
        """θ(0) and θ(1) are the side models, whose gallery metrics are already known."""
        self._points.setdefault(lam, metrics)
        self._draw()

    def _draw(self) -> None:
        lams = sorted(self._points)
        for name, curve in self.curves.items():
            curve.setData(lams, [self._points[lam][name] for lam in lams])
