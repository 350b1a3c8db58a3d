"""The Compare tab: the same query against both models over one gallery, and a blend of the two.

* Gallery: ``state.gallery`` (the shapes test split by default) or a folder of images; each
  side's embeddings come from a background :class:`EventWorker` (through the on-disk cache).
* Query: debounced as the user types; one text encode per model + ``top_k``, newest-only on the
  thread pool. Images showing what the query negates get a red border, and each column counts
  them. The "subtract -terms" toggle scores rclip's "dog -cat" arithmetic instead.
* Blend: θ(λ) = (1 − λ)·θ_left + λ·θ_right in a third column (:mod:`.blend_view`).
* Evaluation results: a ``semclip eval --json`` file as grouped bars and a table.

What is computed lives in :mod:`engine.explore.compare`; this module wires the views to it.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Callable, Optional, Union

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (QFileDialog, QSplitter,
                               QTabWidget, QVBoxLayout, QWidget)

from engine.data.galleries import folder_gallery, shapes_gallery
from engine.events import Error, Progress
from engine.explore.compare import (BlendResult, Comparison, Hit, Origin, SideEmbedding,
                                    blend_job, blend_unavailable_reason, embed_side, rank_models,
                                    violated_terms)
from engine.explore.minus_terms import denied_terms, split_minus_terms

from .images import load_thumbnail
from .blend_view import BlendBox
from .result_cards import (METRICS_TIP, ResultCard, ResultColumn, columns_side_by_side,
                           header_metrics, violation_summary)
from .results_view import EvalResultsView
from .compare_bars import GalleryBar, QueryBar
from .state import SIDES, AppState
from .views import MODEL_COLOURS, VIOLATION_RED, set_stale, span
from .workers import EventWorker, LatestOnly

BLEND = "blend"
COLUMNS = (*SIDES, BLEND)
QUERY_DEBOUNCE_MS = 250
BLEND_DEBOUNCE_MS = 200
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
        self.comparison = Comparison()  # each column's results with the model they came from
        self._blend_ticket = 0  # a blend job started before the last reset is dropped
        self._progress: dict[str, tuple[int, int]] = {}
        self._thumbs: dict[int, Optional[QImage]] = {}
        self._queries = LatestOnly(owner=self)
        self._query_lock = threading.Lock()
        self._blend: Optional[BlendResult] = None
        self._blend_worker: Optional[EventWorker] = None
        self._blend_pending = False
        self._blend_requested = False  # the user has moved the slider: keep the blend current

        self._build()
        self._query_timer = self._timer(QUERY_DEBOUNCE_MS, self.run_query)
        self._blend_timer = self._timer(BLEND_DEBOUNCE_MS, self._request_blend)
        self.query_edit.textChanged.connect(self._on_query_edited)
        self.query_edit.returnPressed.connect(self.run_query)
        self.k_spin.valueChanged.connect(self._on_query_edited)
        self.subtract_check.toggled.connect(self._on_scoring_changed)
        self.blend.slider.valueChanged.connect(self._on_slider)
        self.gallery_bar.folder_button.clicked.connect(self._choose_folder)
        self.gallery_bar.shapes_button.clicked.connect(
            lambda: self.state.set_gallery(shapes_gallery(n=200, split="test")))
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
        self.gallery_bar = GalleryBar()
        self.status_label = self.gallery_bar.status_label

        self.query_bar = QueryBar()
        self.query_edit, self.k_spin = self.query_bar.query_edit, self.query_bar.k_spin
        self.subtract_check, self.examples = self.query_bar.subtract_check, self.query_bar.examples
        self.computing_label = self.query_bar.computing_label
        self.examples.linkActivated.connect(self.set_query)

        self.columns = {side: ResultColumn(colour) for side, colour in zip(COLUMNS, MODEL_COLOURS)}
        scroll = columns_side_by_side(list(self.columns.values()))

        self.side_tabs = QTabWidget()
        self.blend = BlendBox()
        self.side_tabs.addTab(self.blend, "Blend")
        self.results_view = EvalResultsView()
        self.side_tabs.addTab(self.results_view, "Eval results")
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(scroll)
        splitter.addWidget(self.side_tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([800, 460])

        layout = QVBoxLayout(self)
        layout.addWidget(self.gallery_bar)
        layout.addWidget(self.query_bar)
        layout.addWidget(splitter, 1)

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
        return list(self.comparison.hits.get(side, []))

    def cards(self, side: str) -> list[ResultCard]:
        """The card widgets of a column, best first."""
        return list(self.columns[side].cards)

    def is_ready(self) -> bool:
        """Whether every side with a model has its gallery embeddings."""
        sides = [s for s in SIDES if self.state.model(s) is not None]
        return bool(sides) and all(s in self.comparison.embedded for s in sides)

    def blend_lambda(self) -> float:
        return self.blend.lam()

    def open_folder(self, folder: Union[str, Path]) -> bool:
        """Make every image under ``folder`` the gallery; False (and a status line) if impossible."""
        try:
            gallery = folder_gallery(folder)
        except (OSError, ValueError) as exc:
            self._show_status(str(exc), error=True)
            return False
        self.state.set_gallery(gallery)
        return True

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Gallery folder")
        if folder:
            self.open_folder(folder)

    def open_results(self, path: Union[str, Path]) -> bool:
        """Show an evaluation results file (the results tab comes to the front)."""
        self.side_tabs.setCurrentIndex(1)
        return self.results_view.open_results(path)

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
        self.query_bar.show_examples(photos=not gallery.has_scene_labels)
        self.comparison.new_gallery()
        self._thumbs.clear()
        self.gallery_bar.gallery_label.setText(gallery.description or f"{len(gallery)} images")
        self._show_status("")
        for side in SIDES:
            self._embed(side)
        self._reset_blend()

    def _on_model_changed(self, side: str) -> None:
        self._embed(side)
        self._reset_blend()

    def _embed(self, side: str) -> None:
        """(Re)compute one side's gallery embeddings in the background."""
        model, gallery = self.state.model(side), self.state.gallery
        origin = self.comparison.show(side, model)
        old = self._embed_workers.pop(side, None)
        if old is not None:
            old.cancel()
        self.columns[side].header.setText(f"{self.state.label(side)}  ({side})")
        self._set_column_message(side, "embedding the gallery…" if model else "no model loaded")
        if model is None:
            return
        worker = EventWorker(lambda stop: embed_side(model, gallery, stop), name=f"compare-{side}")
        worker.progress.connect(lambda p: self._on_embed_progress(side, origin, p))
        worker.returned.connect(lambda r: self._on_embedded(side, origin, r))
        worker.failed.connect(
            lambda e: self._on_job_failed(side, lambda: self.comparison.is_current(side, origin), e))
        self._embed_workers[side] = worker
        self._progress[side] = (0, len(gallery))
        self._start(worker)
        self._show_progress()

    def _start(self, worker: EventWorker) -> None:
        self._jobs.add(worker)
        worker.done.connect(lambda: self._jobs.discard(worker))
        worker.start()

    def _on_embed_progress(self, side: str, origin: Origin, event: Progress) -> None:
        if not self._closed and self.comparison.is_current(side, origin):
            self._progress[side] = (event.done, event.total)
            self._show_progress()

    def _show_progress(self) -> None:
        busy = [s for s in SIDES if s in self._embed_workers and s not in self.comparison.embedded]
        self.gallery_bar.show_progress(sum(d for d, _ in self._progress.values()),
                                       sum(t for _, t in self._progress.values()), busy)

    def _on_embedded(self, side: str, origin: Origin, result: Optional[SideEmbedding]) -> None:
        if self._closed or not self.comparison.accept_embedding(side, origin, result):
            return
        self._progress[side] = (len(self.state.gallery),) * 2
        self._show_progress()
        self._show_failures()
        self._update_header(side)
        if self.is_ready():
            self._seed_curve()
            self.embeddings_ready.emit()
        self.run_query()

    def _on_job_failed(self, side: str, still_current: Callable[[], bool], error: Error) -> None:
        if self._closed or not still_current():
            return
        message = error.message.split("\n\n")[0]
        if side == BLEND:
            self.blend.say(html.escape(f"blend failed: {message}"), VIOLATION_RED)
        else:
            self._show_status(f"{self.state.label(side)}: embedding failed: {message}", error=True)
        self._set_column_message(side, "failed")

    def _show_failures(self) -> None:
        gallery = self.state.gallery
        failures = {f.index: f for s in self.comparison.embedded.values()
                    for f in s.embeddings.failures}
        if not failures:
            self._show_status("")
            return
        listed = "; ".join(f"{gallery.names[i]} ({f.reason})" for i, f in sorted(failures.items())[:5])
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        self._show_status(f"{len(failures)} of {len(gallery)} images could not be read and are "
                          f"left out: {listed}{more}", error=True)

    def _show_status(self, text: str, error: bool = False) -> None:
        self.gallery_bar.show_status(text, error)

    def _update_header(self, side: str) -> None:
        embedded = self.comparison.embedded.get(side)
        metrics = embedded.metrics if embedded is not None else None
        head = html.escape(f"{self.state.label(side)}  ({side})")
        if metrics:
            head += "<br>" + header_metrics(metrics)
        self.columns[side].header.setText(head)
        self.columns[side].header.setToolTip(METRICS_TIP if metrics else "")

    # -- query -------------------------------------------------------------------------------------

    def run_query(self) -> None:
        """Rank the gallery for the query box's text with every ready model (newest-only)."""
        if self._closed:
            return
        self._query_timer.stop()
        query, k, gallery = self.query_edit.text(), self.k_spin.value(), self.state.gallery
        embedded = self.comparison.embedded
        models = {s: self.state.model(s) for s in SIDES if s in embedded}
        embeddings = {s: embedded[s].embeddings for s in models}
        if self._blend is not None:
            models[BLEND], embeddings[BLEND] = self._blend.model, self._blend.side.embeddings
        if not models:
            return
        origins = {column: self.comparison.origin(column) for column in models}
        generation, known = self.comparison.gallery, set(self._thumbs)
        subtract = self.subtract_check.isChecked()

        def work():
            with self._query_lock:  # shutdown() takes it: no query runs once the panel is closed
                if self._closed:
                    return None
                ranked = rank_models(models, embeddings, gallery, query, k, subtract)
                new = {h.index for hits in ranked.values() for h in hits} - known
                return ranked, {i: load_thumbnail(gallery.sources[i]) for i in new}

        self._queries.submit(work, lambda out: self._on_ranked(generation, origins, query, out),
                             self._on_query_failed)

    def _on_ranked(self, generation: int, origins: dict[str, Optional[Origin]], query: str,
                   out: Optional[tuple[dict[str, list[Hit]], dict[int, Optional[QImage]]]]) -> None:
        if self._closed or out is None or generation != self.comparison.gallery:
            return  # closed, or a newer gallery whose own query is on the way
        ranked, thumbs = out
        self._thumbs.update(thumbs)
        if query == self.query_edit.text():
            self._set_results_stale(False)  # else a newer query is on its way: stay greyed
        for column in COLUMNS:  # a column whose model changed meanwhile keeps its message
            if column in ranked and self.comparison.accept_hits(column, origins[column],
                                                                 ranked[column]):
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
        gallery, hits = self.state.gallery, self.comparison.hits.get(column, [])
        terms = denied_terms(query)
        cards = []
        for rank, hit in enumerate(hits, 1):
            tip = gallery.names[hit.index]
            if gallery.captions:
                tip += f"\n{gallery.captions[hit.index]}"
            cards.append(ResultCard(rank, hit, gallery.names[hit.index], self._thumbs.get(hit.index),
                                    violated_terms(gallery, hit.index, terms), tip))
        summary = violation_summary(hits, terms, gallery)
        if hits and self.subtract_check.isChecked() and split_minus_terms(query)[1]:
            positive, minus = split_minus_terms(query)
            arithmetic = " − ".join(f"“{t}”" for t in [positive or "∅", *minus])
            summary += "<br>" + span(f"scored as {html.escape(arithmetic)}")
        self.columns[column].set_cards(cards, summary)

    def _on_scoring_changed(self) -> None:
        self._on_query_edited()  # every column, the blend included, ranks again

    def _set_column_message(self, column: str, message: str) -> None:
        self.comparison.hits[column] = []
        self.columns[column].set_cards([], span(message))

    # -- blend -------------------------------------------------------------------------------------

    def _on_slider(self, _value: int) -> None:
        self.blend.show_lambda()
        self._blend_requested = True
        self._blend_timer.start()

    def _reset_blend(self) -> None:
        """Models or gallery changed: the blended model and its curve are stale."""
        reason = blend_unavailable_reason(self.state.model("left"), self.state.model("right"))
        self.blend.reset(self.state.label("left"), self.state.label("right"), reason)
        self._blend_ticket += 1
        self.comparison.show(BLEND, None)
        self._blend = None
        self.columns[BLEND].header.setText("Blend")
        if reason:
            self.blend.say(reason)
            self._set_column_message(BLEND, reason)
        elif self._blend_requested:
            self._request_blend()
        else:
            self.blend.say("move the slider to blend")
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
        ticket = self._blend_ticket
        subtract = self.subtract_check.isChecked()
        worker = EventWorker(lambda stop: blend_job(left, right, lam, gallery, query, k, stop,
                                                    subtract), name="compare-blend")
        worker.progress.connect(lambda p: self._on_blend_progress(ticket, p))
        worker.returned.connect(lambda r: self._on_blended(ticket, r, k))
        worker.failed.connect(
            lambda e: self._on_job_failed(BLEND, lambda: ticket == self._blend_ticket, e))
        worker.done.connect(self._on_blend_done)
        self._blend_worker = worker
        self.blend.say(f"blending at λ = {lam:.2f}…")
        self.columns[BLEND].header.setText(f"Blend λ = {lam:.2f}")
        self._start(worker)

    def _on_blend_progress(self, ticket: int, event: Progress) -> None:
        if not self._closed and ticket == self._blend_ticket:
            self.blend.show_progress(event.done, event.total)

    def _on_blend_done(self) -> None:
        self._blend_worker = None
        if self._blend_pending and not self._closed:
            self._blend_pending = False
            self._request_blend()

    def _on_blended(self, ticket: int, result: BlendResult, k: int) -> None:
        if self._closed or ticket != self._blend_ticket or self._blend_pending:
            return  # superseded: a newer λ (or model, or gallery) is being computed
        self._blend = result
        metrics = result.side.metrics
        self.blend.show_result(result.lam, metrics)
        head = f"Blend λ = {result.lam:.2f}"
        self.columns[BLEND].header.setText(f"{head}<br>{header_metrics(metrics)}" if metrics else head)
        self.columns[BLEND].header.setToolTip(METRICS_TIP if metrics else "")
        self.comparison.accept_hits(BLEND, self.comparison.show(BLEND, result.model), result.hits)
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
            metrics = self.comparison.embedded[side].metrics
            if metrics:
                self.blend.add_known_point(lam, metrics)
