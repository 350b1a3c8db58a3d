"""The Compare tab's two bars: the gallery (what is searched, its embedding progress, what
could not be read) and the query (the box, top k, the "-term" toggle, examples one click
away). Views only: the panel runs the jobs."""

from __future__ import annotations

import html
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QSpinBox, QVBoxLayout, QWidget)

from .views import VIOLATION_RED

# The opening query: on the shipped demo pair and the default gallery, 8 of CLIP's top 8 show
# white and 1 of SemCLIP's. The examples, one click away, are pure denials, where CLIP reads
# "nothing X" as a mention of X: in each, CLIP's column shows the denied thing at least three
# times more than SemCLIP's (tests/test_demo_models.py keeps both true).
DEFAULT_QUERY = "there is nothing white here"
EXAMPLE_QUERIES = ("there is nothing white here", "nothing blue", "there is nothing red",
                   "not a single white shape", "no crosses")
# The same for a gallery of everyday photos (the Photos world, or any folder).
PHOTO_DEFAULT_QUERY = "a dog running on grass with no people"
PHOTO_EXAMPLE_QUERIES = ("a dog running on grass with no people", "a dog that is not black",
                         "children playing without a ball", "a street with no cars",
                         "people on a beach")


class GalleryBar(QWidget):
    """The gallery's description, the buttons that replace it, embedding progress and a status
    line (unreadable images, failures)."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
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
        row = QHBoxLayout()
        row.addWidget(QLabel("<b>Gallery:</b>"))
        row.addWidget(self.gallery_label, 1)
        row.addWidget(self.shapes_button)
        row.addWidget(self.folder_button)
        row.addWidget(self.progress)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status_label)

    def show_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet(f"color: {VIOLATION_RED};" if error else "")
        self.status_label.setVisible(bool(text))

    def show_progress(self, done: int, total: int, busy: list[str]) -> None:
        """Embedding progress over every side; ``busy``: the sides still embedding."""
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.progress.setFormat(f"embedding ({', '.join(busy)}) %v/%m" if busy else "gallery ready")


class QueryBar(QWidget):
    """What to search for and how: ``query_edit``, ``k_spin``, ``subtract_check``, ``examples``."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.query_edit = QLineEdit(DEFAULT_QUERY)
        self.query_edit.setPlaceholderText("a query, e.g. “a red circle and no blue square”")
        self.query_edit.setClearButtonEnabled(True)
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 32)
        self.k_spin.setValue(8)
        self.k_spin.setToolTip("how many images each model returns")
        self.computing_label = QLabel("computing…")
        self.computing_label.setStyleSheet("color: #888; font-style: italic;")
        self.computing_label.setToolTip("the columns below (greyed) still show the previous query")
        self.computing_label.hide()
        self.subtract_check = QCheckBox("subtract “-term” words")
        self.subtract_check.setToolTip(
            "Score “dog -cat” as rclip does: the embedding of “dog” minus that of “cat”. "
            "The program parses the negation; the model never reads it. Off: the model "
            "embeds the whole query, as it would “a dog and no cat”.")
        self.examples = QLabel()
        self.examples.setTextFormat(Qt.RichText)
        self.examples.setToolTip("click an example to search for it")

        row = QHBoxLayout()
        row.addWidget(QLabel("<b>Query:</b>"))
        row.addWidget(self.query_edit, 1)
        row.addWidget(self.computing_label)
        row.addWidget(QLabel("top k"))
        row.addWidget(self.k_spin)
        row.addWidget(self.subtract_check)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.examples)

    def show_examples(self, photos: bool) -> None:
        """The example queries of a world; an untouched opening query follows the world too
        (without a textChanged: the gallery's embedding that follows runs the query)."""
        examples = PHOTO_EXAMPLE_QUERIES if photos else EXAMPLE_QUERIES
        self.examples.setText("try: " + " · ".join(
            f"<a href='{html.escape(q)}' style='text-decoration: none'>{html.escape(q)}</a>"
            for q in examples))
        if self.query_edit.text() in (DEFAULT_QUERY, PHOTO_DEFAULT_QUERY):
            self.query_edit.blockSignals(True)
            self.query_edit.setText(PHOTO_DEFAULT_QUERY if photos else DEFAULT_QUERY)
            self.query_edit.blockSignals(False)
