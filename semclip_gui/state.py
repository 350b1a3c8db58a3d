"""What every panel shares: the two models side by side and the image gallery.

The app compares two models, "left" (default: the CLIP baseline) and "right" (default:
SemCLIP). :class:`AppState` holds them as :class:`engine.model.loading.LoadedModel` objects and says
when either changes; loading runs off the GUI thread. Panels never load models themselves: they
read ``state.model(side)`` and listen to ``model_changed``.
"""

from __future__ import annotations

import logging
from typing import Optional

from PySide6.QtCore import QObject, Signal

from engine.data.galleries import Gallery, shapes_gallery
from engine.model.loading import LoadedModel, load_model

from .workers import run_call

SIDES = ("left", "right")
DEFAULT_LABELS = {"left": "CLIP", "right": "SemCLIP"}
log = logging.getLogger("semclip_gui")


class AppState(QObject):
    """The models on each side, their display labels, and the current gallery."""

    model_changed = Signal(str)  # side whose model was replaced ("left" / "right")
    model_loading = Signal(str, str)  # side, spec being loaded
    model_failed = Signal(str, str)  # side, error message
    gallery_changed = Signal()
    status = Signal(str)  # one-line messages for the status bar

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._models: dict[str, Optional[LoadedModel]] = {side: None for side in SIDES}
        self._labels: dict[str, str] = dict(DEFAULT_LABELS)
        self._gallery: Gallery = shapes_gallery(n=200, split="test")
        self._generation = {side: 0 for side in SIDES}  # ignore results of superseded loads

    # -- models ----------------------------------------------------------------------------------

    def model(self, side: str) -> Optional[LoadedModel]:
        """The model on ``side`` or None while none is loaded."""
        return self._models[_check_side(side)]

    def label(self, side: str) -> str:
        """Short display name of a side ("CLIP", "SemCLIP", or what the user chose)."""
        return self._labels[_check_side(side)]

    def models_ready(self) -> bool:
        return all(self._models[s] is not None for s in SIDES)

    def set_model(self, side: str, loaded: LoadedModel, label: Optional[str] = None) -> None:
        """Put an already loaded model on ``side`` (GUI thread)."""
        _check_side(side)
        self._generation[side] += 1
        self._models[side] = loaded
        if label:
            self._labels[side] = label
        self.model_changed.emit(side)
        self.status.emit(f"{self._labels[side]} ({side}): {loaded.spec}")

    def load_model_async(self, side: str, spec: str, label: Optional[str] = None) -> None:
        """Load ``spec`` (any model spec ``engine.model.loading.load_model`` takes) in the background.

        Emits ``model_loading`` now, then ``model_changed`` or ``model_failed``. A newer request
        for the same side wins over an older one still loading.
        """
        _check_side(side)
        self._generation[side] += 1
        ticket = self._generation[side]
        self.model_loading.emit(side, spec)

        def loaded(model: LoadedModel) -> None:
            if ticket == self._generation[side]:
                self.set_model(side, model, label)

        def failed(exc: BaseException) -> None:
            if ticket == self._generation[side]:
                log.warning("loading %s for the %s side failed: %s", spec, side, exc)
                self.model_failed.emit(side, f"{spec}: {exc}")

        run_call(lambda: load_model(spec), loaded, failed)

    # -- gallery ---------------------------------------------------------------------------------

    @property
    def gallery(self) -> Gallery:
        return self._gallery

    def set_gallery(self, gallery: Gallery) -> None:
        self._gallery = gallery
        self.gallery_changed.emit()


def _check_side(side: str) -> str:
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    return side
