"""Playground: type a caption, see its paraphrases and negations, and what each model makes of them.

* Typing (debounced) asks the caption backend (offline rules by default, an LLM server if
  configured) for paraphrases and negations; they fill two editable lists.
* For the chosen image, grouped bars show each text's similarity to it under the left and the
  right model.
* Two scatter plots show p(t) = V t in each model's projection subspace: the caption (black),
  its paraphrases (green) and negations (red), with arrows from the caption. With n = 1 the
  plot is a 1-D strip; with n > 2 the first two directions are shown.
"""

from __future__ import annotations

import asyncio
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PIL import Image
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSplitter,
                               QVBoxLayout, QWidget)
from shiboken6 import isValid

from engine.explore.explain import Explanation, explain
from engine.explore.projection import projection_for
from engine.paths import IMAGE_SUFFIXES

from .aio import spawn
from .editable_list import EditableList
from .images import load_thumbnail
from .projection_view import ProjectionPlot, fit_title, frame_plots, text_tags
from .state import SIDES, AppState
from .views import set_stale
from .workers import LatestOnly

DEBOUNCE_MS = 300
SIDE_COLOURS = {"left": (110, 110, 110), "right": (40, 110, 220)}
DEFAULT_CAPTION = "a large red circle and a small blue square"
PHOTO_CAPTION = "a dog running on the grass"  # a photo folder has no captions of its own
THUMBNAIL_PX, SMALL_THUMBNAIL_PX = 160, 96
SHORT_PANEL_PX = 560  # below this panel height the thumbnail shrinks (the app at 1024x700: ~610)


class PlaygroundPanel(QWidget):
    """Caption → generations → similarities and the projection subspace, for both models."""

    generations_ready = Signal()  # the lists were refilled from the backend
    generation_failed = Signal(str)
    scores_updated = Signal()  # bars and scatter plots show the current texts

    def __init__(self, state: AppState, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.state = state
        self.explanations: dict[str, Explanation] = {}
        # side -> (the model it was computed for, its projection V): derived from the model, so
        # a job still running for the previous model cannot leave a stale V behind
        self._projections: dict[str, tuple[object, object]] = {}
        self._scorer = LatestOnly(owner=self)
        self._task: Optional[asyncio.Future] = None
        self._backend = None
        self._backend_key: Optional[tuple] = None
        self._image: Optional[Image.Image] = None
        self._scene: Optional[int] = None  # the gallery scene shown, when it is a drawn one
        self._stale = False
        self._build()
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self.regenerate)
        self._rescore_timer = QTimer(self, singleShot=True, interval=60)
        self._rescore_timer.timeout.connect(self.rescore)
        self.caption_edit.textChanged.connect(self._on_caption_edited)
        self.caption_edit.returnPressed.connect(self.regenerate)
        self.paraphrases.changed.connect(self._on_texts_edited)
        self.negations.changed.connect(self._on_texts_edited)
        self.backend_combo.currentIndexChanged.connect(self._on_backend_changed)
        self.same_scale_check.toggled.connect(self._frame_projections)
        for plot in self.projection_plots.values():  # labels are placed in pixels: re-place them
            plot.getViewBox().sigResized.connect(self._frame_projections)
        self.image_combo.currentIndexChanged.connect(self._on_gallery_image)
        self.open_image_button.clicked.connect(self._open_image)
        state.model_changed.connect(self._on_model_changed)
        state.gallery_changed.connect(self._fill_gallery_combo)
        self.use_caption_button.clicked.connect(self.use_image_caption)
        self._opening_caption = ""
        self._fill_gallery_combo()

    # -- layout ----------------------------------------------------------------------------------

    def _build(self) -> None:
        self.caption_edit = QLineEdit()
        self.caption_edit.setPlaceholderText("type a caption, e.g. 'a big red ball and no square'")
        font = QFont(self.caption_edit.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        self.caption_edit.setFont(font)
        self.backend_combo = QComboBox()
        self.backend_combo.addItems(["rules (offline)", "LLM server"])
        self.llm_url = QLineEdit("http://127.0.0.1:11434/v1")
        self.llm_generator = QLineEdit("phi4")
        self.llm_validator = QLineEdit("mistral")
        self.llm_box = QGroupBox("LLM server (OpenAI-compatible: Ollama, llama.cpp, vLLM)")
        form = QFormLayout(self.llm_box)
        form.addRow("base URL", self.llm_url)
        form.addRow("generator", self.llm_generator)
        form.addRow("validator", self.llm_validator)
        self.llm_box.setVisible(False)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(QLabel("Caption"))
        top.addWidget(self.caption_edit, 1)
        top.addWidget(QLabel("generator"))
        top.addWidget(self.backend_combo)
        self.same_scale_check = QCheckBox("same scale")
        self.same_scale_check.setChecked(True)
        self.same_scale_check.setToolTip(
            "Both subspace plots span the same distance, so how far the negations sit from the "
            "caption compares across the two models. Off: each plot zooms to its own points.")
        top.addWidget(self.same_scale_check)

        self.paraphrases = EditableList("Paraphrases (c+)", "add your own paraphrase…")
        self.negations = EditableList("Negations (c−)", "add your own negation…")

        self.thumbnail = QLabel()
        self.thumbnail.setFixedSize(THUMBNAIL_PX, THUMBNAIL_PX)
        self.thumbnail.setAlignment(Qt.AlignCenter)
        self.thumbnail.setStyleSheet("border: 1px solid #999; background: #333;")
        self.image_combo = QComboBox()
        self.image_combo.setMinimumContentsLength(12)
        self.open_image_button = QPushButton("Open image…")
        self.use_caption_button = QPushButton("Use its caption")
        self.use_caption_button.setToolTip("put this scene's ground-truth caption in the caption box")
        self.image_caption = QLabel("")
        self.image_caption.setWordWrap(True)
        image_box = QGroupBox("Image")
        image_layout = QVBoxLayout(image_box)
        image_layout.addWidget(self.thumbnail, 0, Qt.AlignHCenter)
        image_layout.addWidget(self.image_combo)
        image_layout.addWidget(self.open_image_button)
        image_layout.addWidget(self.use_caption_button)
        image_layout.addWidget(self.image_caption)
        image_layout.addStretch(1)

        lists = QHBoxLayout()
        lists.addWidget(self.paraphrases, 1)
        lists.addWidget(self.negations, 1)
        lists.addWidget(image_box)

        self.bars = pg.PlotWidget(background="w")
        self.bars.setMouseEnabled(x=False, y=False)
        self.bars.getAxis("bottom").enableAutoSIPrefix(False)
        self.projection_plots = {side: ProjectionPlot() for side in SIDES}

        plots = QGridLayout()
        plots.addWidget(self.bars, 0, 0)
        plots.addWidget(self.projection_plots["left"], 0, 1)
        plots.addWidget(self.projection_plots["right"], 0, 2)
        for col, stretch in enumerate((7, 4, 4)):
            plots.setColumnStretch(col, stretch)
        self.plots_widget = plots_widget = QWidget()
        plots_widget.setLayout(plots)
        lists_widget = QWidget()
        lists_layout = QVBoxLayout(lists_widget)
        lists_layout.setContentsMargins(0, 0, 0, 0)
        lists_layout.addLayout(lists)
        lists_layout.addWidget(self.llm_box)
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(lists_widget)
        splitter.addWidget(plots_widget)
        splitter.setSizes([260, 440])

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status_label)
        layout.addWidget(splitter, 1)

    # -- captions --------------------------------------------------------------------------------

    def set_caption(self, caption: str) -> None:
        """Put ``caption`` in the box and generate at once (no debounce)."""
        self.caption_edit.setText(caption)
        self.regenerate()

    def caption(self) -> str:
        return self.caption_edit.text().strip()

    def texts(self) -> tuple[str, list[str], list[str]]:
        """The caption, paraphrases and negations as currently shown (after the user's edits)."""
        return self.caption(), self.paraphrases.texts(), self.negations.texts()

    def _on_backend_changed(self) -> None:
        self.llm_box.setVisible(self.backend_combo.currentIndex() == 1)
        self.regenerate()

    def caption_backend(self):
        """The selected backend, rebuilt only when its settings change."""
        from engine.captions import make_backend

        if self.backend_combo.currentIndex() == 0:
            key: tuple = ("rules",)
        else:
            key = ("llm", self.llm_url.text().strip(), self.llm_generator.text().strip(),
                   self.llm_validator.text().strip())
        if key != self._backend_key:
            if key[0] == "rules":
                self._backend = make_backend("rules")
            else:
                self._backend = make_backend("llm", base_url=key[1], generator_model=key[2],
                                             validator_model=key[3])
            self._backend_key = key
        return self._backend

    @property
    def results_stale(self) -> bool:
        """Whether the bars and plots show texts other than the current ones (greyed out)."""
        return self._stale

    def _set_results_stale(self, stale: bool) -> None:
        self._stale = stale
        set_stale(self.plots_widget, stale)

    def _on_caption_edited(self, _text: str) -> None:
        self._set_results_stale(True)  # from the keystroke: the bars describe the old caption
        self._debounce.start()

    def _on_texts_edited(self) -> None:
        self._set_results_stale(True)
        self._rescore_timer.start()

    def regenerate(self) -> None:
        """Ask the backend for generations of the current caption (newest request wins)."""
        self._debounce.stop()
        caption = self.caption()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if not caption:
            self.paraphrases.set_items([])
            self.negations.set_items([])
            self._show_status("type a caption to see its paraphrases and negations")
            return
        try:
            backend = self.caption_backend()
        except Exception as exc:  # noqa: BLE001 - a bad setting is shown, not raised
            self._generation_error(str(exc))
            return
        self._show_status(f"generating with {backend.name}…")
        self._task = spawn(self._generate(backend, caption))

    async def _generate(self, backend, caption: str) -> None:
        try:
            generations = await backend.agenerate(caption)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - unreachable server, garbage reply...
            if isValid(self.status_label):
                self._generation_error(f"{type(exc).__name__}: {exc}")
            return
        if not isValid(self.caption_edit):
            return  # the window closed while the server was answering
        if caption != self.caption():
            return  # the user typed on; a newer request is on its way
        self.paraphrases.set_items([(g.text, _describe(g)) for g in generations.paraphrases])
        self.negations.set_items([(g.text, _describe(g)) for g in generations.negations])
        self._show_status(f"{len(generations.paraphrases)} paraphrases and "
                          f"{len(generations.negations)} negations from {backend.name}; "
                          f"edit, add or remove them freely")
        self.generations_ready.emit()
        self.rescore()

    def _generation_error(self, message: str) -> None:
        self._show_status(f"caption generation failed: {message}", error=True)
        self.generation_failed.emit(message)

    def _show_status(self, text: str, error: bool = False) -> None:
        self.status_label.setStyleSheet("color: #c0392b;" if error else "color: #555;")
        self.status_label.setText(text)

    # -- image -----------------------------------------------------------------------------------

    def _fill_gallery_combo(self) -> None:
        gallery = self.state.gallery
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        self.image_combo.addItems(gallery.names)
        self.image_combo.blockSignals(False)
        if len(gallery):
            self.select_gallery_image(0)
        # Open on a caption of the world shown (the first scene's own, so the bars start out
        # meaningful); a caption the user typed stays when the gallery changes.
        if self.caption_edit.text() == self._opening_caption:
            self._opening_caption = (gallery.captions[0] if gallery.captions else
                                     DEFAULT_CAPTION if gallery.has_scene_labels else PHOTO_CAPTION)
            self.caption_edit.setText(self._opening_caption)

    def select_gallery_image(self, index: int) -> None:
        """Show gallery image ``index`` and score the texts against it."""
        if self.image_combo.currentIndex() != index:
            self.image_combo.setCurrentIndex(index)  # re-enters through the signal
            return
        self._on_gallery_image(index)

    def _on_gallery_image(self, index: int) -> None:
        gallery = self.state.gallery
        if not 0 <= index < len(gallery):
            return
        source = gallery.sources[index]
        try:
            image = source if isinstance(source, Image.Image) else Image.open(source)
            image.load()
        except OSError as exc:
            self._show_status(f"cannot open {gallery.names[index]}: {exc}", error=True)
            return
        note = gallery.captions[index] if gallery.captions else gallery.names[index]
        self.set_image(image, note, scene=index if gallery.redraw is not None else None)

    def use_image_caption(self) -> None:
        """Put the selected gallery scene's own caption in the caption box."""
        gallery, index = self.state.gallery, self.image_combo.currentIndex()
        if gallery.captions and 0 <= index < len(gallery.captions):
            self.set_caption(gallery.captions[index])

    def _open_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Image", "",
                                              f"Images ({' '.join('*' + x for x in IMAGE_SUFFIXES)})")
        if not path:
            return
        try:
            image = Image.open(path)
            image.load()
        except OSError as exc:
            self._show_status(f"cannot open {path}: {exc}", error=True)
            return
        self.set_image(image, path)

    def _show_thumbnail(self) -> None:
        if self._image is not None:
            side = self.thumbnail.width() - 10
            self.thumbnail.setPixmap(QPixmap.fromImage(load_thumbnail(self._image, side)))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        # A short window (a projector at 800x560) would leave the plots a sliver under the
        # image column: the thumbnail gives up some height first.
        side = THUMBNAIL_PX if event.size().height() >= SHORT_PANEL_PX else SMALL_THUMBNAIL_PX
        if self.thumbnail.width() != side:
            self.thumbnail.setFixedSize(side, side)
            self._show_thumbnail()
        super().resizeEvent(event)

    def set_image(self, image: Image.Image, note: str = "", scene: Optional[int] = None) -> None:
        """Score the texts against ``image`` from now on; ``scene`` (an index of a drawn
        gallery) lets each model see that scene drawn at its own input size instead."""
        self._image, self._scene = image.convert("RGB"), scene
        self._show_thumbnail()
        self.image_caption.setText(note)
        self.use_caption_button.setEnabled(bool(self.state.gallery.captions) and note in self.state.gallery.captions)
        self.rescore()

    # -- scoring ---------------------------------------------------------------------------------

    def _on_model_changed(self, side: str) -> None:
        self.rescore()

    def rescore(self) -> None:
        """Recompute similarities and projections for both models in the background."""
        self._rescore_timer.stop()
        caption, paraphrases, negations = self.texts()
        models = {side: self.state.model(side) for side in SIDES}
        if not caption or not all(models.values()):
            return
        image, scene, gallery = self._image, self._scene, self.state.gallery
        projections = self._projections

        def work() -> dict[str, Explanation]:
            out = {}
            for side, loaded in models.items():
                cached = projections.get(side)
                if cached is None or cached[0] is not loaded:
                    cached = projections[side] = (loaded, projection_for(loaded))
                # a 224 px model does not know a 64 px drawing upscaled: draw it at its size
                seen = image if scene is None else gallery.sources_at(loaded.image_size)[scene]
                out[side] = explain(loaded, caption, paraphrases, negations, image=seen,
                                    projection=cached[1])
            return out

        self._scorer.submit(work, self._show_scores,
                            lambda exc: self._show_status(f"scoring failed: {exc}", error=True))

    def _frame_projections(self, *_args) -> None:
        frame_plots(self.projection_plots, self.same_scale_check.isChecked())

    def _show_scores(self, explanations: dict[str, Explanation]) -> None:
        caption, paraphrases, negations = self.texts()
        current = [caption, *paraphrases, *negations]
        self._set_results_stale(explanations[SIDES[0]].texts != current)  # else: newer on the way
        self.explanations = explanations
        self._draw_bars(explanations)
        for side in SIDES:
            self.projection_plots[side].draw(self.state.label(side), explanations[side])
        self._frame_projections()
        self.scores_updated.emit()

    def _draw_bars(self, explanations: dict[str, Explanation]) -> None:
        plot = self.bars
        plot.clear()
        first = explanations[SIDES[0]]
        if first.image_similarity is None:
            return
        n = len(first.texts)
        rows = np.arange(n)[::-1].astype(float)  # caption on top
        for offset, side in zip((0.18, -0.18), SIDES):
            values = explanations[side].image_similarity.numpy()
            item = pg.BarGraphItem(x0=np.zeros(n), y=rows + offset, width=values, height=0.34,
                                   brush=pg.mkBrush(*SIDE_COLOURS[side]), pen=pg.mkPen(None),
                                   name=self.state.label(side))
            plot.addItem(item)
        tags = text_tags(first.roles)
        axis = plot.getAxis("left")
        axis.setTicks([[(row, f"{tag}  {_short(text, 24)}")
                        for row, tag, text in zip(rows, tags, first.texts)]])
        plot.setYRange(-0.6, n - 0.4, padding=0)
        values = np.concatenate([e.image_similarity.numpy() for e in explanations.values()])
        plot.setXRange(min(0.0, float(values.min()) * 1.05), max(0.05, float(values.max())) * 1.05,
                       padding=0)
        # the colour key in the title: a legend box would sit on top of the bars
        key = " ".join(f"<span style='color: rgb{SIDE_COLOURS[side]}'>■ {self.state.label(side)}</span>"
                       for side in SIDES)
        plain = " ".join(f"■ {self.state.label(side)}" for side in SIDES)
        fit_title(plot, [(f"cosine to image: {key}", f"cosine to image: {plain}"),
                         (f"cosine: {key}", f"cosine: {plain}"), (key, plain)])

def _describe(generation) -> str:
    """Tooltip of a generated text: how it was made and whether a validator accepted it."""
    parts = [f"{generation.kind} ({generation.backend})"]
    accepted = getattr(generation, "accepted", None)
    if accepted is not None:
        parts.append("validated" if accepted else "rejected by the validator")
    return ", ".join(parts)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
