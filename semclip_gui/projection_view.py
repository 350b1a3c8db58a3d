"""The Playground's projection subspace plots: p(t) = V t of a caption (black), its paraphrases
(green) and negations (red), with arrows from the caption; a 1-D strip for n = 1, the first two
directions for n > 2. Two plots can share one scale, so distances compare across models."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics

from engine.explore.explain import Explanation

from .label_layout import MARKER_RADIUS, place_labels

ROLE_COLOURS = {"caption": (20, 20, 20), "paraphrase": (30, 150, 60), "negation": (210, 40, 40)}
PLOT_TITLE_SIZE = "9pt"  # pyqtgraph's default (~11pt) clips the titles at 1024 px
TITLE_MARGIN_PX = 16


def fit_title(plot: pg.PlotWidget, candidates: Sequence[tuple[str, str]]) -> None:
    """Title ``plot`` with the first of ``candidates`` ((html, its plain text), longest first)
    whose text fits the plot's width, the last one when none does, and choose again whenever
    the plot is resized: a long model name ("SemCLIP+claims") in a small window gets the short
    form rather than a clipped one."""
    plot.title_candidates = list(candidates)
    if not getattr(plot, "_refits_title", False):
        plot.getViewBox().sigResized.connect(lambda *_: _refit_title(plot))
        plot._refits_title = True
    _refit_title(plot)


def _refit_title(plot: pg.PlotWidget) -> None:
    font = QFont(plot.font())
    font.setPointSizeF(float(PLOT_TITLE_SIZE.removesuffix("pt")))
    room = plot.getViewBox().width() - TITLE_MARGIN_PX  # the title spans the data area only
    metrics = QFontMetrics(font)
    html = next((h for h, text in plot.title_candidates if metrics.horizontalAdvance(text) <= room),
                plot.title_candidates[-1][0])
    if html != getattr(plot, "shown_title", None):
        plot.shown_title = html
        plot.setTitle(html, size=PLOT_TITLE_SIZE)


def text_tags(roles: list[str]) -> list[str]:
    """Short names of the texts: "c" for the caption, "+1", "+2" for paraphrases, "−1" ... ."""
    counts = {"paraphrase": 0, "negation": 0}
    tags = []
    for role in roles:
        if role == "caption":
            tags.append("c")
            continue
        counts[role] += 1
        tags.append(f"{'+' if role == 'paraphrase' else '−'}{counts[role]}")
    return tags


class ProjectionPlot(pg.PlotWidget):
    """One model's subspace scatter; :meth:`draw` then :func:`frame_plots`."""

    def __init__(self, parent=None):
        super().__init__(parent, background="w")
        self.setAspectLocked(True)
        self.showGrid(x=True, y=True, alpha=0.2)
        self.setLabel("bottom", "p₁(t)")
        self.setLabel("left", "p₂(t)")
        for axis in ("bottom", "left"):
            self.getAxis(axis).enableAutoSIPrefix(False)  # cosines read better as 0.12 than 120 (x0.001)
        self.points: Optional[np.ndarray] = None  # (texts, 2) in data units, float64
        self.labels: list[pg.TextItem] = []
        self._leaders: list = []  # lines to labels moved off their points

    def draw(self, title: str, expl: Explanation) -> None:
        """Points, arrows from the caption and (not yet placed) labels of one explanation."""
        self.clear()
        self._leaders = []
        n = expl.n_projections
        points = expl.projected.numpy()
        if n == 1:
            # A 1-D strip: every text on the line, rows apart by role so labels do not collide.
            lanes = {"caption": 0.0, "paraphrase": 0.5, "negation": -0.5}
            xy = np.stack([points[:, 0], [lanes[r] for r in expl.roles]], axis=1)
            self.setLabel("left", "role")
            self.setAspectLocked(False)
        else:
            xy = points[:, :2]
            self.setLabel("left", "p₂(t)")
            self.setAspectLocked(True)
        extra = f", first 2 of {n}" if n > 2 else f", n = {n}"
        fit_title(self, [(t, t) for t in (f"{title}: subspace p(t){extra}", f"{title}: p(t){extra}",
                                          title)])
        for i in range(1, len(xy)):  # arrows from the caption to each generation
            colour = ROLE_COLOURS[expl.roles[i]]
            self.plot([xy[0, 0], xy[i, 0]], [xy[0, 1], xy[i, 1]],
                      pen=pg.mkPen(*colour, width=1.5, style=Qt.DashLine))
            angle = np.degrees(np.arctan2(-(xy[i, 1] - xy[0, 1]), xy[i, 0] - xy[0, 0]))
            self.addItem(pg.ArrowItem(pos=(xy[i, 0], xy[i, 1]), angle=180 + angle, headLen=12,
                                      brush=pg.mkBrush(*colour), pen=pg.mkPen(None)))
        for role in ("caption", "paraphrase", "negation"):
            idx = [i for i, r in enumerate(expl.roles) if r == role]
            if idx:
                self.plot(xy[idx, 0], xy[idx, 1], pen=None, symbol="o", symbolSize=11,
                          symbolBrush=pg.mkBrush(*ROLE_COLOURS[role]), symbolPen=pg.mkPen("w"),
                          name=role)
        tags = text_tags(expl.roles)
        self.labels = []
        for i, role in enumerate(expl.roles):  # numbered like the bars: "+1" is the first paraphrase
            text = pg.TextItem("caption" if role == "caption" else tags[i],  # whole text: the box
                               color=ROLE_COLOURS[role], anchor=(0, 0))
            self.addItem(text)
            self.labels.append(text)
        self.points = np.asarray(xy, dtype=np.float64)  # float32 ranges overflow in pyqtgraph

    def half_span(self) -> np.ndarray:
        """Half the data span the plot must show: its points, with room for labels at the edges."""
        return np.maximum(np.ptp(self.points, axis=0) / 2, 1e-3) * 1.5

    def pixels(self) -> np.ndarray:
        return np.array([self.getViewBox().width(), self.getViewBox().height()])

    def show_span(self, half: np.ndarray) -> None:
        """Centre the view on the points, ``half`` wide each way, and place the labels."""
        centre = (self.points.min(axis=0) + self.points.max(axis=0)) / 2
        self.setRange(xRange=(centre[0] - half[0], centre[0] + half[0]),
                      yRange=(centre[1] - half[1], centre[1] + half[1]), padding=0)
        self._place_labels()

    def _place_labels(self) -> None:
        for line in self._leaders:
            self.removeItem(line)
        self._leaders = []
        box = self.getViewBox()
        px_w, px_h = box.viewPixelSize()  # data units per pixel
        (x0, _), (_, y1) = box.viewRange()
        rect = box.sceneBoundingRect()
        if not (np.isfinite(px_w) and np.isfinite(px_h) and px_w > 0 and px_h > 0):
            for (x, y), text in zip(self.points, self.labels):  # not laid out yet: on the points
                text.setPos(x, y)
            return
        points = [((x - x0) / px_w, (y1 - y) / px_h) for x, y in self.points]  # pixels, y down
        # a TextItem ignores the view's zoom: its bounding rect is in pixels
        sizes = [(t.boundingRect().width(), t.boundingRect().height()) for t in self.labels]
        offsets = place_labels(points, sizes, rect.width(), rect.height())
        for (x, y), (dx, dy), (w, h), text in zip(self.points, offsets, sizes, self.labels):
            text.setPos(x + dx * px_w, y - dy * px_h)
            # a label pushed away from its point (a tight cluster) gets a thin leader line to it
            nx, ny = min(max(0.0, dx), dx + w), min(max(0.0, dy), dy + h)  # nearest box pixel
            if np.hypot(nx, ny) > 2 * MARKER_RADIUS:
                self._leaders.append(self.plot([x, x + nx * px_w], [y, y - ny * px_h],
                                               pen=pg.mkPen(text.color, width=0.8,
                                                            style=Qt.DotLine)))


def frame_plots(plots: Mapping[str, ProjectionPlot], same_scale: bool) -> None:
    """Frame drawn plots: one data unit the same size in pixels in all of them (``same_scale``,
    so distances compare across models), else each zoomed to its own points."""
    drawn = {key: plot for key, plot in plots.items() if plot.points is not None}
    if len(drawn) < len(plots):
        return
    half = {key: plot.half_span() for key, plot in drawn.items()}
    pixels = {key: plot.pixels() for key, plot in drawn.items()}
    if same_scale and all((px > 0).all() for px in pixels.values()):
        # the largest scale any plot needs (aspect locked: x and y alike), so all points show
        per_pixel = max(float(np.max(2 * half[key] / pixels[key])) for key in drawn)
        half = {key: per_pixel * pixels[key] / 2 for key in drawn}
    for key, plot in drawn.items():
        plot.show_span(half[key])
