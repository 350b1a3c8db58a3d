"""The Compare tab: the same query against both models over one gallery, and a blend of the two.

* Gallery: ``state.gallery`` (the shapes test split by default) or a folder of images. Each
  side's embeddings are computed in a background :class:`EventWorker` (through the on-disk
  cache), kept in memory, and recomputed when that side's model or the gallery changes.
* Query: debounced as the user types (and on Enter); one text encode per model + ``top_k``,
  newest-only on the thread pool. Images showing what the query negates get a red border and
  a "✗ has …" note, and each column counts them — CLIP shows more of them than SemCLIP.
* Scoring: the plain embedding of the query, or (the "subtract -terms" toggle) rclip's
  "dog -cat" arithmetic, so a class sees parsing a negation beside understanding one.
* Blend: θ(λ) = (1 − λ)·θ_left + λ·θ_right in a third column, with its gallery metrics and a
  curve of ONO accuracy / caption top-1 over the λ values visited.
* Evaluation results: a ``semclip eval --json`` file as grouped bars and a table.

What is computed lives in :mod:`semclip_gui.compare_logic`; this module only wires widgets.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Callable, Optional, Union

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontMetrics, QImage, QPixmap
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QFrame, QGridLayout, QHBoxLayout, QHeaderView,
                               QLabel, QLineEdit, QProgressBar, QPushButton, QScrollArea,
                               QSlider, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem,
                               QTabWidget, QVBoxLayout, QWidget)

from engine.evaluate import load_results
from engine.events import Error, Progress
from engine.minus_terms import denied_terms, split_minus_terms
from engine.retrieval import Gallery, folder_gallery, shapes_gallery

from .compare_logic import (BarData, BlendResult, Hit, SideEmbedding, blend_job,
                            blend_unavailable_reason, count_violations, embed_side, rank_models,
                            results_bars, violated_terms)
from .images import THUMB, load_thumbnail
from .state import SIDES, AppState
from .views import set_stale
from .workers import EventWorker, LatestOnly

CARD_WIDTH = THUMB + 16
CARDS_PER_ROW = 2
BLEND = "blend"
COLUMNS = (*SIDES, BLEND)
QUERY_DEBOUNCE_MS = 250
BLEND_DEBOUNCE_MS = 200
# The opening query: on the shipped demo pair and the default gallery, 7 of CLIP's top 8 show
# orange and 1 of SemCLIP's (tests/test_demo_models.py keeps that true). The examples, one click
# away, show both what SemCLIP fixes and where both still fail (the last one).
DEFAULT_QUERY = "no orange shapes"
EXAMPLE_QUERIES = ("no orange shapes", "a square and no green", "a picture without orange",
                   "nothing blue", "a red circle and no blue square")
MODEL_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
VIOLATION_RED = "#d62728"
# The two gallery metrics, in plain words on screen and in full in tooltips.
CAPTION_VS_NEGATION = "caption vs negation"
METRICS_TIP = ("On this gallery's labelled scenes:\n"
               "caption vs negation: how often a scene's image is closer to its caption than to "
               "the caption's negation (original-over-negation accuracy; 0.5 is a coin flip).\n"
               "top-1: how often a scene's caption ranks that scene's image first "
               "(several scenes share a caption, so it stays below 1).")


class ResultCard(QFrame):
    """One retrieved image: thumbnail (red border when it shows a negated term), rank and score."""

    def __init__(self, rank: int, hit: Hit, name: str, image: Optional[QImage],
                 violations: list[str], tooltip: str, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.hit = hit
        self.setFixedWidth(CARD_WIDTH)
        self.thumb = QLabel()
        self.thumb.setFixedSize(THUMB + 8, THUMB + 8)
        self.thumb.setAlignment(Qt.AlignCenter)
        border = f"3px solid {VIOLATION_RED}" if hit.violates else "1px solid #bbb"
        self.thumb.setStyleSheet(f"border: {border}; background: #222;")
        if image is not None:
            self.thumb.setPixmap(QPixmap.fromImage(image))
        shown = QFontMetrics(self.font()).elidedText(name, Qt.ElideMiddle, CARD_WIDTH - 4)
        notes = "".join(f"<br>{_span(f'✗ has {term}', VIOLATION_RED)}" for term in violations)
        self.caption = QLabel(f"<b>#{rank}</b> &nbsp;{hit.score:.3f}"
                              f"<br>{_span(html.escape(shown))}{notes}")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.RichText)
        self.setToolTip(tooltip)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(self.thumb, 0, Qt.AlignHCenter)
        layout.addWidget(self.caption)


class ResultColumn(QWidget):
    """A model's top-k: a header (its label), a summary line (negation count), a grid of cards."""

    def __init__(self, colour: str, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.header = QLabel()
        self.header.setTextFormat(Qt.RichText)
        self.header.setStyleSheet(f"font-weight: bold; font-size: 13px; color: {colour};")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.RichText)
        self.cards: list[ResultCard] = []
        self._grid = QGridLayout()
        self._grid.setSpacing(6)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header)
        layout.addWidget(self.summary)
        layout.addLayout(self._grid)
        layout.addStretch(1)
        self.setFixedWidth(CARDS_PER_ROW * (CARD_WIDTH + 6) + 8)

    def set_cards(self, cards: list[ResultCard], summary: str) -> None:
        for card in self.cards:
            self._grid.removeWidget(card)
            card.hide()  # deleteLater waits for the event loop; the new cards show at once
            card.deleteLater()
        self.cards = cards
        for i, card in enumerate(cards):
            self._grid.addWidget(card, i // CARDS_PER_ROW, i % CARDS_PER_ROW, Qt.AlignTop)
        self.summary.setText(summary)


def _plot(title: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(background="w")
    plot.setTitle(title, color="#333", size="10pt")
    plot.setMouseEnabled(x=False, y=False)
    plot.showGrid(y=True, alpha=0.2)
    plot.addLegend(offset=(-8, 8), labelTextColor="#333")
    return plot


class ComparePanel(QWidget):
    """Two (three, with the blend) ranked lists for one query over one gallery."""

    results_updated = Signal(str)  # the ranked lists (``results``) changed; the query they rank
    embeddings_ready = Signal()  # every side with a model has its gallery embeddings
    blend_updated = Signal(dict)  # BlendResult.as_dict() of the newest λ

    def __init__(self, state: AppState, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.state = state
        self._closed = False
        self._jobs: set[EventWorker] = set()
        self._embed_workers: dict[str, EventWorker] = {}
        self._ticket = {side: 0 for side in COLUMNS}  # results of superseded jobs are dropped
        self._progress: dict[str, tuple[int, int]] = {}
        self._embedded: dict[str, SideEmbedding] = {}
        self._results: dict[str, list[Hit]] = {c: [] for c in COLUMNS}
        self._thumbs: dict[int, Optional[QImage]] = {}
        self._gallery_generation = 0
        self._queries = LatestOnly(owner=self)
        self._query_lock = threading.Lock()
        self._blend: Optional[BlendResult] = None
        self._blend_worker: Optional[EventWorker] = None
        self._blend_pending = False
        self._blend_requested = False  # the user has moved the slider: keep the blend current
        self._curve: dict[float, dict[str, float]] = {}
        self.result_bars: list[pg.BarGraphItem] = []

        self._build()
        self._query_timer = self._timer(QUERY_DEBOUNCE_MS, self.run_query)
        self._blend_timer = self._timer(BLEND_DEBOUNCE_MS, self._request_blend)
        self.query_edit.textChanged.connect(self._on_query_edited)
        self.query_edit.returnPressed.connect(self.run_query)
        self.k_spin.valueChanged.connect(self._on_query_edited)
        self.subtract_check.toggled.connect(self._on_scoring_changed)
        self.blend_slider.valueChanged.connect(self._on_slider)
        self.folder_button.clicked.connect(self._choose_folder)
        self.shapes_button.clicked.connect(
            lambda: self.state.set_gallery(shapes_gallery(n=200, split="test")))
        self.results_button.clicked.connect(self._choose_results)
        state.model_changed.connect(self._on_model_changed)
        state.gallery_changed.connect(self._on_gallery_changed)
        self._on_gallery_changed()

    # -- layout ------------------------------------------------------------------------------------

    def _timer(self, ms: int, slot: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(ms)
        timer.timeout.connect(slot)
        return timer

    def _build(self) -> None:
        self.gallery_label = QLabel()
        self.shapes_button = QPushButton("Shapes test split")
        self.shapes_button.setToolTip("search the first 200 scenes of the shapes world's test split")
        self.folder_button = QPushButton("Open folder…")
        self.folder_button.setToolTip("search every image in a folder (recursively)")
        self.progress = QProgressBar()
        self.progress.setFixedWidth(240)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.PlainText)  # file names and error text, shown as is
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(QLabel("<b>Gallery:</b>"))
        top.addWidget(self.gallery_label, 1)
        top.addWidget(self.shapes_button)
        top.addWidget(self.folder_button)
        top.addWidget(self.progress)

        self.query_edit = QLineEdit(DEFAULT_QUERY)
        self.query_edit.setPlaceholderText("a query, e.g. “a red circle and no blue square”")
        self.query_edit.setClearButtonEnabled(True)
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 32)
        self.k_spin.setValue(8)
        self.k_spin.setToolTip("how many images each model returns")
        query_row = QHBoxLayout()
        query_row.addWidget(QLabel("<b>Query:</b>"))
        query_row.addWidget(self.query_edit, 1)
        self.computing_label = QLabel("computing…")
        self.computing_label.setStyleSheet("color: #888; font-style: italic;")
        self.computing_label.setToolTip("the columns below (greyed) still show the previous query")
        self.computing_label.hide()
        query_row.addWidget(self.computing_label)
        query_row.addWidget(QLabel("top k"))
        query_row.addWidget(self.k_spin)
        self.subtract_check = QCheckBox("subtract “-term” words")
        self.examples = QLabel("try: " + " · ".join(
            f"<a href='{html.escape(q)}' style='text-decoration: none'>{html.escape(q)}</a>"
            for q in EXAMPLE_QUERIES))
        self.examples.setTextFormat(Qt.RichText)
        self.examples.setToolTip("click an example to search for it")
        self.examples.linkActivated.connect(self.set_query)
        self.subtract_check.setToolTip(
            "Score “dog -cat” as rclip does: the embedding of “dog” minus that of “cat”. "
            "The program parses the negation; the model never reads it. Off: the model "
            "embeds the whole query, as it would “a dog and no cat”.")
        query_row.addWidget(self.subtract_check)

        self.columns = {side: ResultColumn(colour) for side, colour in zip(COLUMNS, MODEL_COLOURS)}
        strip = QWidget()
        strip_layout = QHBoxLayout(strip)
        strip_layout.setContentsMargins(0, 0, 0, 0)
        for i, column in enumerate(self.columns.values()):
            if i:
                line = QFrame()
                line.setFrameShape(QFrame.VLine)
                line.setStyleSheet("color: #ccc;")
                strip_layout.addWidget(line)
            strip_layout.addWidget(column)
        strip_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(strip)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        # the three columns always fit side by side; the side tabs take what is left
        bar = scroll.verticalScrollBar().sizeHint().width()
        scroll.setMinimumWidth(strip.sizeHint().width() + bar + 4)

        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(self._build_blend(), "Blend")
        self.side_tabs.addTab(self._build_results(), "Eval results")
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(scroll)
        splitter.addWidget(self.side_tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([800, 460])

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status_label)
        layout.addLayout(query_row)
        layout.addWidget(self.examples)
        layout.addWidget(splitter, 1)

    def _build_blend(self) -> QWidget:
        self.blend_slider = QSlider(Qt.Horizontal)
        self.blend_slider.setRange(0, 100)
        self.blend_slider.setTickInterval(10)
        self.blend_slider.setTickPosition(QSlider.TicksBelow)
        self.blend_ends = (QLabel(), QLabel())
        self.lambda_label = QLabel()
        self.blend_metrics = QLabel()
        self.blend_metrics.setWordWrap(True)
        self.blend_metrics.setTextFormat(Qt.RichText)
        self.blend_progress = QProgressBar()
        self.blend_progress.setTextVisible(False)
        self.blend_progress.setMaximumHeight(8)
        self.blend_plot = _plot("gallery metrics of θ(λ)")
        self.blend_plot.setLabel("bottom", "λ")
        self.blend_plot.setXRange(0, 1, padding=0.04)
        self.blend_plot.setYRange(0, 1, padding=0.04)
        self.blend_curves = {
            metric: self.blend_plot.plot([], [], name=name, pen=pg.mkPen(colour, width=2),
                                         symbol=symbol, symbolSize=6, symbolBrush=colour)
            for metric, name, colour, symbol in (("ono_accuracy", CAPTION_VS_NEGATION, MODEL_COLOURS[0], "o"),
                                                 ("caption_top1", "caption top-1", MODEL_COLOURS[1], "s"))}
        self.lambda_line = pg.InfiniteLine(0, angle=90,
                                           pen=pg.mkPen(MODEL_COLOURS[2], style=Qt.DashLine))
        self.blend_plot.addItem(self.lambda_line)
        self.blend_plot.setToolTip(METRICS_TIP)

        slider_row = QHBoxLayout()
        slider_row.addWidget(self.blend_ends[0])
        slider_row.addWidget(self.blend_slider, 1)
        slider_row.addWidget(self.blend_ends[1])
        explain = QLabel("θ(λ) = (1 − λ)·θ<sub>left</sub> + λ·θ<sub>right</sub>: "
                         "the blended model's top-k is the third column.")
        explain.setWordWrap(True)
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.addWidget(explain)
        layout.addLayout(slider_row)
        layout.addWidget(self.lambda_label)
        layout.addWidget(self.blend_progress)
        layout.addWidget(self.blend_metrics)
        layout.addWidget(self.blend_plot, 1)
        return box

    def _build_results(self) -> QWidget:
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
        self.results_plot = _plot("metrics per model")
        self.results_plot.getAxis("bottom").setStyle(tickTextOffset=6)
        self.results_table = QTableWidget()
        header = self.results_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Stretch)
        header.setTextElideMode(Qt.ElideRight)
        box = QWidget()
        layout = QVBoxLayout(box)
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
        return box

    # -- public API --------------------------------------------------------------------------------

    @property
    def results_stale(self) -> bool:
        """Whether the columns show results of an earlier query (greyed, "computing…")."""
        return self.computing_label.isVisibleTo(self)

    def set_query(self, query: str) -> None:
        """Put ``query`` in the box and rank at once (no debounce)."""
        self.query_edit.setText(query)
        self.run_query()

    def results(self, side: str) -> list[Hit]:
        """The ranked hits (index, score, violates) shown in a column: "left", "right" or "blend"."""
        return list(self._results[side])

    def cards(self, side: str) -> list[ResultCard]:
        """The card widgets of a column, best first."""
        return list(self.columns[side].cards)

    def is_ready(self) -> bool:
        """Whether every side with a model has its gallery embeddings."""
        sides = [s for s in SIDES if self.state.model(s) is not None]
        return bool(sides) and all(s in self._embedded for s in sides)

    def blend_lambda(self) -> float:
        return self.blend_slider.value() / 100.0

    def open_folder(self, folder: Union[str, Path]) -> bool:
        """Make every image under ``folder`` the gallery; False (and a status line) if impossible."""
        try:
            gallery = folder_gallery(folder)
        except (OSError, ValueError) as exc:
            self._show_status(str(exc), error=True)
            return False
        self.state.set_gallery(gallery)
        return True

    def open_results(self, path: Union[str, Path]) -> bool:
        """Plot and tabulate an evaluation results file; a bad file shows an error, returns False."""
        self.side_tabs.setCurrentIndex(1)
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
                                        f"<br>{_span(html.escape(str(path)))}")
        self._plot_bars(bars)
        self._fill_table(bars, [str(m.get("spec", "?")) for m in results["models"]])
        return True

    def shutdown(self) -> None:
        """Cancel the background jobs and wait for their threads (the window is closing)."""
        self._closed = True
        self._query_timer.stop()
        self._blend_timer.stop()
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        for job in jobs:
            job.wait()
        if self._query_lock.acquire(timeout=30):  # a query running on the thread pool ends
            self._query_lock.release()

    # -- gallery embeddings ------------------------------------------------------------------------

    def _on_gallery_changed(self) -> None:
        gallery = self.state.gallery
        self._gallery_generation += 1
        self._thumbs.clear()
        self.gallery_label.setText(gallery.description or f"{len(gallery)} images")
        self._show_status("")
        for side in SIDES:
            self._embed(side)
        self._reset_blend()

    def _on_model_changed(self, side: str) -> None:
        self._embed(side)
        self._reset_blend()

    def _embed(self, side: str) -> None:
        """(Re)compute one side's gallery embeddings in the background."""
        self._ticket[side] += 1
        ticket = self._ticket[side]
        self._embedded.pop(side, None)
        old = self._embed_workers.pop(side, None)
        if old is not None:
            old.cancel()
        model, gallery = self.state.model(side), self.state.gallery
        self.columns[side].header.setText(f"{self.state.label(side)}  ({side})")
        self._set_column_message(side, "embedding the gallery…" if model else "no model loaded")
        if model is None:
            return
        worker = EventWorker(lambda stop: embed_side(model, gallery, stop), name=f"compare-{side}")
        worker.progress.connect(lambda p: self._on_embed_progress(side, ticket, p))
        worker.returned.connect(lambda r: self._on_embedded(side, ticket, r))
        worker.failed.connect(lambda e: self._on_job_failed(side, ticket, e))
        self._embed_workers[side] = worker
        self._progress[side] = (0, len(gallery))
        self._start(worker)
        self._show_progress()

    def _start(self, worker: EventWorker) -> None:
        self._jobs.add(worker)
        worker.done.connect(lambda: self._jobs.discard(worker))
        worker.start()

    def _on_embed_progress(self, side: str, ticket: int, event: Progress) -> None:
        if not self._closed and ticket == self._ticket[side]:
            self._progress[side] = (event.done, event.total)
            self._show_progress()

    def _show_progress(self) -> None:
        done = sum(d for d, _ in self._progress.values())
        total = sum(t for _, t in self._progress.values())
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        busy = [s for s in SIDES if s in self._embed_workers and s not in self._embedded]
        self.progress.setFormat(f"embedding ({', '.join(busy)}) %v/%m" if busy else "gallery ready")

    def _on_embedded(self, side: str, ticket: int, result: SideEmbedding) -> None:
        if self._closed or ticket != self._ticket[side]:
            return
        self._embedded[side] = result
        self._progress[side] = (len(self.state.gallery),) * 2
        self._show_progress()
        self._show_failures()
        self._update_header(side)
        if self.is_ready():
            self._seed_curve()
            self.embeddings_ready.emit()
        self.run_query()

    def _on_job_failed(self, side: str, ticket: int, error: Error) -> None:
        if self._closed or ticket != self._ticket[side]:
            return
        message = error.message.split("\n\n")[0]
        if side == BLEND:
            self.blend_metrics.setText(_span(html.escape(f"blend failed: {message}"), VIOLATION_RED))
        else:
            self._show_status(f"{self.state.label(side)}: embedding failed: {message}", error=True)
        self._set_column_message(side, "failed")

    def _show_failures(self) -> None:
        gallery = self.state.gallery
        failures = {f.index: f for s in self._embedded.values() for f in s.embeddings.failures}
        if not failures:
            self._show_status("")
            return
        listed = "; ".join(f"{gallery.names[i]} ({f.reason})" for i, f in sorted(failures.items())[:5])
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        self._show_status(f"{len(failures)} of {len(gallery)} images could not be read and are "
                          f"left out: {listed}{more}", error=True)

    def _show_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet(f"color: {VIOLATION_RED};" if error else "")
        self.status_label.setVisible(bool(text))

    def _update_header(self, side: str) -> None:
        metrics = self._embedded[side].metrics if side in self._embedded else None
        head = html.escape(f"{self.state.label(side)}  ({side})")
        if metrics:
            head += "<br>" + _header_metrics(metrics)
        self.columns[side].header.setText(head)
        self.columns[side].header.setToolTip(METRICS_TIP if metrics else "")

    # -- query -------------------------------------------------------------------------------------

    def run_query(self) -> None:
        """Rank the gallery for the query box's text with every ready model (newest-only)."""
        if self._closed:
            return
        self._query_timer.stop()
        query, k, gallery = self.query_edit.text(), self.k_spin.value(), self.state.gallery
        models = {s: self.state.model(s) for s in SIDES if s in self._embedded}
        embeddings = {s: self._embedded[s].embeddings for s in models}
        if self._blend is not None:
            models[BLEND], embeddings[BLEND] = self._blend.model, self._blend.side.embeddings
        if not models:
            return
        generation, known = self._gallery_generation, set(self._thumbs)
        subtract = self.subtract_check.isChecked()

        def work():
            with self._query_lock:  # shutdown() takes it: no query runs once the panel is closed
                if self._closed:
                    return None
                ranked = rank_models(models, embeddings, gallery, query, k, subtract)
                new = {h.index for hits in ranked.values() for h in hits} - known
                return ranked, {i: load_thumbnail(gallery.sources[i]) for i in new}

        self._queries.submit(work, lambda out: self._on_ranked(generation, query, out),
                             self._on_query_failed)

    def _on_ranked(self, generation: int, query: str,
                   out: Optional[tuple[dict[str, list[Hit]], dict[int, Optional[QImage]]]]) -> None:
        if self._closed or out is None or generation != self._gallery_generation:
            return  # closed, or a newer gallery whose own query is on the way
        ranked, thumbs = out
        self._thumbs.update(thumbs)
        if query == self.query_edit.text():
            self._set_results_stale(False)  # else a newer query is on its way: stay greyed
        for column in COLUMNS:
            if column in ranked:
                self._results[column] = ranked[column]
                self._show_hits(column, query)
        self.results_updated.emit(query)

    def _on_query_edited(self, *_args) -> None:
        self._set_results_stale(True)
        self._query_timer.start()

    def _set_results_stale(self, stale: bool) -> None:
        self.computing_label.setVisible(stale)
        for column in self.columns.values():
            set_stale(column, stale and bool(column.cards))

    def _on_query_failed(self, exc: BaseException) -> None:
        if not self._closed:
            self._show_status(f"query failed: {type(exc).__name__}: {exc}", error=True)

    def _show_hits(self, column: str, query: str) -> None:
        gallery, hits = self.state.gallery, self._results[column]
        terms = denied_terms(query)
        cards = []
        for rank, hit in enumerate(hits, 1):
            tip = gallery.names[hit.index]
            if gallery.captions:
                tip += f"\n{gallery.captions[hit.index]}"
            cards.append(ResultCard(rank, hit, gallery.names[hit.index], self._thumbs.get(hit.index),
                                    violated_terms(gallery, hit.index, terms), tip))
        summary = self._summary(hits, terms, gallery)
        if hits and self.subtract_check.isChecked() and split_minus_terms(query)[1]:
            positive, minus = split_minus_terms(query)
            arithmetic = " − ".join(f"“{t}”" for t in [positive or "∅", *minus])
            summary += "<br>" + _span(f"scored as {html.escape(arithmetic)}")
        self.columns[column].set_cards(cards, summary)

    @staticmethod
    def _summary(hits: list[Hit], terms: list[str], gallery: Gallery) -> str:
        if not hits:
            return _span("type a query")
        if not terms:
            return _span("no negation in the query")
        quoted = html.escape(", ".join(f"“{t}”" for t in terms))
        if not gallery.has_scene_labels:
            return _span(f"negates {quoted}: this gallery has no scene labels to check")
        bad = count_violations(hits)
        colour = VIOLATION_RED if bad else "#2ca02c"
        return _span(f"<b>{bad} of {len(hits)}</b> show what the query negates ({quoted})", colour)

    def _on_scoring_changed(self) -> None:
        self._on_query_edited()  # every column, the blend included, ranks again

    def _set_column_message(self, column: str, message: str) -> None:
        self._results[column] = []
        self.columns[column].set_cards([], _span(message))

    # -- blend -------------------------------------------------------------------------------------

    def _on_slider(self, value: int) -> None:
        lam = value / 100.0
        self.lambda_label.setText(f"λ = {lam:.2f}")
        self.lambda_line.setValue(lam)
        self._blend_requested = True
        self._blend_timer.start()

    def _reset_blend(self) -> None:
        """Models or gallery changed: the blended model and its curve are stale."""
        left, right = self.state.model("left"), self.state.model("right")
        reason = blend_unavailable_reason(left, right)
        self.blend_slider.setEnabled(not reason)
        self.blend_slider.setToolTip(reason or "drag to blend the two models' weights")
        for i, side in enumerate(SIDES):
            self.blend_ends[i].setText(self.state.label(side))
        self.lambda_label.setText(f"λ = {self.blend_lambda():.2f}")
        self._ticket[BLEND] += 1
        self._blend = None
        self._curve.clear()
        self._draw_curve()
        self.columns[BLEND].header.setText("Blend")
        if reason:
            self.blend_metrics.setText(_span(reason))
            self._set_column_message(BLEND, reason)
        elif self._blend_requested:
            self._request_blend()
        else:
            self.blend_metrics.setText(_span("move the slider to blend"))
            self._set_column_message(BLEND, "move the blend slider →")

    def _request_blend(self) -> None:
        """Compute θ(λ) at the slider's λ; while one runs, stop it and start this one after."""
        left, right = self.state.model("left"), self.state.model("right")
        if self._closed or blend_unavailable_reason(left, right):
            return
        if self._blend_worker is not None:
            self._blend_pending = True
            self._blend_worker.cancel()
            return
        lam, gallery, query, k = (self.blend_lambda(), self.state.gallery, self.query_edit.text(),
                                  self.k_spin.value())
        ticket = self._ticket[BLEND]
        subtract = self.subtract_check.isChecked()
        worker = EventWorker(lambda stop: blend_job(left, right, lam, gallery, query, k, stop,
                                                    subtract), name="compare-blend")
        worker.progress.connect(lambda p: self._on_blend_progress(ticket, p))
        worker.returned.connect(lambda r: self._on_blended(ticket, r, k))
        worker.failed.connect(lambda e: self._on_job_failed(BLEND, ticket, e))
        worker.done.connect(self._on_blend_done)
        self._blend_worker = worker
        self.blend_metrics.setText(_span(f"blending at λ = {lam:.2f}…"))
        self.columns[BLEND].header.setText(f"Blend λ = {lam:.2f}")
        self._start(worker)

    def _on_blend_progress(self, ticket: int, event: Progress) -> None:
        if not self._closed and ticket == self._ticket[BLEND]:
            self.blend_progress.setRange(0, max(1, event.total))
            self.blend_progress.setValue(event.done)

    def _on_blend_done(self) -> None:
        self._blend_worker = None
        if self._blend_pending and not self._closed:
            self._blend_pending = False
            self._request_blend()

    def _on_blended(self, ticket: int, result: BlendResult, k: int) -> None:
        if self._closed or ticket != self._ticket[BLEND] or self._blend_pending:
            return  # superseded: a newer λ (or model, or gallery) is being computed
        self._blend = result
        self.blend_progress.setValue(self.blend_progress.maximum())
        self.columns[BLEND].header.setText(f"Blend λ = {result.lam:.2f}")
        metrics = result.side.metrics
        if metrics:
            self._curve[result.lam] = metrics
            self._draw_curve()
            self.blend_metrics.setText(
                f"<b>θ({result.lam:.2f})</b> on this gallery: {CAPTION_VS_NEGATION} "
                f"<b>{metrics['ono_accuracy']:.3f}</b> · caption top-1 <b>{metrics['caption_top1']:.3f}</b>")
            self.columns[BLEND].header.setText(
                f"Blend λ = {result.lam:.2f}<br>{_header_metrics(metrics)}")
            self.columns[BLEND].header.setToolTip(METRICS_TIP)
        else:
            self.blend_metrics.setText(_span("gallery metrics need a labelled shapes gallery"))
        self._results[BLEND] = result.hits
        self._show_hits(BLEND, result.query)
        self.blend_updated.emit(result.as_dict())
        self.results_updated.emit(result.query)
        if (result.query, k) != (self.query_edit.text(), self.k_spin.value()):
            self.run_query()  # the query or k changed while blending

    def _seed_curve(self) -> None:
        """θ(0) and θ(1) are the two side models, whose gallery metrics are already known."""
        if blend_unavailable_reason(self.state.model("left"), self.state.model("right")):
            return
        for lam, side in ((0.0, "left"), (1.0, "right")):
            if self._embedded[side].metrics:
                self._curve.setdefault(lam, self._embedded[side].metrics)
        self._draw_curve()

    def _draw_curve(self) -> None:
        lams = sorted(self._curve)
        for name, curve in self.blend_curves.items():
            curve.setData(lams, [self._curve[lam][name] for lam in lams])

    # -- evaluation results ------------------------------------------------------------------------

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Gallery folder")
        if folder:
            self.open_folder(folder)

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


def _header_metrics(metrics: dict) -> str:
    """The line under a column's title, in plain words (the header's tooltip says more): its
    gallery's negation accuracy and retrieval."""
    return (f"<span style='font-size: 11px; font-weight: normal'>{CAPTION_VS_NEGATION} "
            f"<b>{metrics['ono_accuracy']:.2f}</b> · top-1 <b>{metrics['caption_top1']:.2f}</b></span>")


def _span(text: str, colour: str = "#666") -> str:
    """Rich text in a colour (grey: a hint rather than a result)."""
    return f"<span style='color:{colour}'>{text}</span>"


def _short(label: str, limit: int = 28) -> str:
    """A model label cut for legends and headers: a checkpoint path keeps its last folder and name."""
    head, bracket, tail = label.partition(" [")
    if "/" in head or "\\" in head:
        path = Path(head.replace("\\", "/"))
        head = f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
    label = head + bracket + tail
    return label if len(label) <= limit else label[:limit - 1] + "…"


_HYPHENATED = {"paraphrase": "para-\nphrase", "affirmative": "affirm-\native",
               "affirmation": "affirm-\nation"}  # the long words of engine.evaluate.METRIC_ORDER


def _tick_label(metric: str, width: int = 9) -> str:
    """A metric name on lines, one word each; a word longer than ``width`` is hyphenated."""
    def split(word: str) -> str:
        if len(word) <= width:
            return word
        return _HYPHENATED.get(word) or f"{word[:len(word) // 2]}-\n{word[len(word) // 2:]}"
    return "\n".join(split(word) for word in metric.split("_"))
