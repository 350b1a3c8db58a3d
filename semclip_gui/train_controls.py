"""The Train tab's left column: the form, the run buttons, the checkpoint hand-off and the list
of past runs, scrolling as one. A view only: the panel wires it to the training job."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from .form_widgets import form_row
from .runs_list import RunsList
from .state import SIDES
from .train_form import TrainForm


class TrainControls(QScrollArea):
    """``form``, ``start_button``, ``stop_button``, ``resume_button``, ``use_buttons`` (one per
    side), ``checkpoint_label`` and ``runs_list``."""

    def __init__(self, presets: dict, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.form = TrainForm(presets)
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.resume_button = QPushButton("Resume from checkpoint…")
        self.use_buttons = {side: QPushButton(f"Use as {side} model") for side in SIDES}
        self.checkpoint_label = QLabel("no checkpoint yet")
        self.checkpoint_label.setWordWrap(True)
        self.checkpoint_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.runs_list = RunsList()

        column_widget = QWidget()
        column = QVBoxLayout(column_widget)
        column.addWidget(self.form)
        column.addWidget(form_row(self.start_button, self.stop_button))
        column.addWidget(self.resume_button)
        checkpoint_box = QGroupBox("Checkpoint")
        box = QVBoxLayout(checkpoint_box)
        box.addWidget(self.checkpoint_label)
        box.addWidget(form_row(*self.use_buttons.values(), stretch=None))
        column.addWidget(checkpoint_box)
        column.addWidget(self.runs_list)
        column.addStretch(1)
        self.setWidget(column_widget)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setMinimumWidth(column_widget.sizeHint().width() + 24)
