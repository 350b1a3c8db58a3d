"""A model's ranked images in the Compare tab: one card per image (red frame when it shows what
the query denies), a column per model with its header and summary."""

from __future__ import annotations

import html
from typing import Optional, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics, QImage, QPixmap
from PySide6.QtWidgets import (QFrame, QGridLayout, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout,
                               QWidget)

from engine.data.galleries import Gallery
from engine.explore.compare import Hit, count_violations

from .images import THUMB
from .views import VIOLATION_RED, span

CARD_WIDTH = THUMB + 16
CARDS_PER_ROW = 2
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
        notes = "".join(f"<br>{span(f'✗ has {term}', VIOLATION_RED)}" for term in violations)
        self.caption = QLabel(f"<b>#{rank}</b> &nbsp;{hit.score:.3f}"
                              f"<br>{span(html.escape(shown))}{notes}")
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


def header_metrics(metrics: dict) -> str:
    """The line under a column's title, in plain words (the header's tooltip says more): its
    gallery's negation accuracy and retrieval."""
    return (f"<span style='font-size: 11px; font-weight: normal'>{CAPTION_VS_NEGATION} "
            f"<b>{metrics['ono_accuracy']:.2f}</b> · top-1 <b>{metrics['caption_top1']:.2f}</b></span>")


def columns_side_by_side(columns: Sequence[ResultColumn]) -> QScrollArea:
    """The columns in a row, thin rules between them, scrolling vertically; the row always
    fits side by side (the scroll area is never narrower than it)."""
    strip = QWidget()
    layout = QHBoxLayout(strip)
    layout.setContentsMargins(0, 0, 0, 0)
    for i, column in enumerate(columns):
        if i:
            line = QFrame()
            line.setFrameShape(QFrame.VLine)
            line.setStyleSheet("color: #ccc;")
            layout.addWidget(line)
        layout.addWidget(column)
    layout.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidget(strip)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    bar = scroll.verticalScrollBar().sizeHint().width()
    scroll.setMinimumWidth(strip.sizeHint().width() + bar + 4)
    return scroll


def violation_summary(hits: Sequence[Hit], terms: Sequence[str], gallery: Gallery) -> str:
    """A column's summary line: how many of its hits show what the query negates."""
    if not hits:
        return span("type a query")
    if not terms:
        return span("no negation in the query")
    quoted = html.escape(", ".join(f"“{t}”" for t in terms))
    if not gallery.has_scene_labels:
        return span(f"negates {quoted}: this gallery has no scene labels to check")
    bad = count_violations(hits)
    colour = VIOLATION_RED if bad else "#2ca02c"
    return span(f"<b>{bad} of {len(hits)}</b> show what the query negates ({quoted})", colour)
