"""A titled list whose items the user edits in place, adds and removes (the Playground's
paraphrases and negations)."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLineEdit, QListWidget, QListWidgetItem,
                               QPushButton, QVBoxLayout, QWidget)


class EditableList(QGroupBox):
    """A titled list whose items the user can edit in place, add and remove."""

    changed = Signal()

    def __init__(self, title: str, placeholder: str, parent: Optional[QWidget] = None):
        super().__init__(title, parent)
        self.list = QListWidget()
        self.list.setAlternatingRowColors(True)
        self.new_edit = QLineEdit()
        self.new_edit.setPlaceholderText(placeholder)
        self.add_button = QPushButton("Add")
        self.remove_button = QPushButton("Remove")
        row = QHBoxLayout()
        row.addWidget(self.new_edit, 1)
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addLayout(row)
        self.add_button.clicked.connect(self._add_typed)
        self.new_edit.returnPressed.connect(self._add_typed)
        self.remove_button.clicked.connect(self.remove_selected)
        self.list.itemChanged.connect(lambda _item: self.changed.emit())

    def texts(self) -> list[str]:
        return [t for t in (self.list.item(i).text().strip() for i in range(self.list.count())) if t]

    def set_items(self, items: list[tuple[str, str]]) -> None:
        """Replace the list with (text, kind) pairs; the kind shows as a tooltip."""
        self.list.blockSignals(True)
        self.list.clear()
        for text, kind in items:
            self._append(text, kind)
        self.list.blockSignals(False)
        self.changed.emit()

    def add(self, text: str, kind: str = "typed by you") -> None:
        if text.strip():
            self._append(text.strip(), kind)
            self.changed.emit()

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.list.selectedIndexes()}, reverse=True)
        if not rows and self.list.currentRow() >= 0:
            rows = [self.list.currentRow()]
        for row in rows:
            self.list.takeItem(row)
        if rows:
            self.changed.emit()

    def _append(self, text: str, kind: str) -> None:
        item = QListWidgetItem(text)
        item.setFlags(item.flags() | Qt.ItemIsEditable)
        item.setToolTip(kind)
        self.list.addItem(item)

    def _add_typed(self) -> None:
        self.add(self.new_edit.text())
        self.new_edit.clear()
