"""The Train tab's list of past runs: the run folders under a chosen root, newest first.

One row per run (name, date, steps, best metric) from :func:`engine.train.runs.list_runs`; a click
emits ``run_chosen`` with the run's folder, and the panel draws its curves from its
``metrics.jsonl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QGroupBox, QHBoxLayout, QHeaderView,
                               QLineEdit, QPushButton, QTableWidget, QTableWidgetItem, QToolButton,
                               QVBoxLayout, QWidget)

from engine.train.runs import RunSummary, list_runs

COLUMNS = ("run", "date", "steps", "best")


def best_text(run: RunSummary) -> str:
    """``val/caption_top1 0.412`` or ``–`` for a run that kept no best checkpoint."""
    if run.best_value is None:
        return "–"
    return f"{run.best_metric} {run.best_value:.3f}"


class RunsList(QGroupBox):
    """Root folder, a Refresh button and the table of the runs under the root."""

    run_chosen = Signal(object)  # Path of the run folder

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__("Past runs", parent)
        self.runs: list[RunSummary] = []
        self.root_edit = QLineEdit()
        self.root_edit.setPlaceholderText("folder that holds run folders, e.g. runs")
        self.root_edit.setToolTip("each sub-folder with a config.json is a run")
        self.browse_button = QToolButton(text="…")
        self.refresh_button = QPushButton("Refresh")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setMinimumHeight(120)
        row = QHBoxLayout()
        row.addWidget(self.root_edit, 1)
        row.addWidget(self.browse_button)
        row.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.table)
        self.browse_button.clicked.connect(self._browse)
        self.refresh_button.clicked.connect(self.refresh)
        self.root_edit.editingFinished.connect(self.refresh)
        self.table.cellClicked.connect(lambda row, _col: self.run_chosen.emit(self.runs[row].path))

    def set_root(self, root: str) -> None:
        self.root_edit.setText(root)
        self.refresh()

    def refresh(self) -> None:
        """List the runs under the root again (a finished run appears, a deleted one goes)."""
        self.runs = list_runs(Path(self.root_edit.text().strip() or "."))
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            cells = (run.name, run.started.strftime("%Y-%m-%d %H:%M"), str(run.steps),
                     best_text(run))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(run.path))
                if col == 2:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(row, col, item)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of runs", self.root_edit.text())
        if path:
            self.set_root(path)
