"""Small form widgets of the Train tab: a float box for values that span decades, spin boxes,
and a row of widgets in one form line."""

from __future__ import annotations

from typing import Optional

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QSpinBox, QWidget


class FloatBox(QDoubleSpinBox):
    """A spin box showing floats in short form (``5e-05``, ``0.001``); its arrows ×2 and ÷2.

    Learning rates span decades, so a fixed-decimals box (0.000500) is hard to read and its
    arrows' fixed step is useless.
    """

    def __init__(self, minimum: float, maximum: float, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setDecimals(12)  # what the value keeps; textFromValue decides what shows
        self.setRange(minimum, maximum)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt naming
        return f"{value:.4g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 - Qt naming
        return float(text)

    def validate(self, text: str, pos: int):
        try:
            float(text)
        except ValueError:
            return QValidator.Intermediate, text, pos
        return QValidator.Acceptable, text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt naming
        self.setValue(self.value() * 2.0 ** steps)


def spin_box(minimum: int, maximum: int, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(minimum, maximum)
    box.setSingleStep(step)
    return box


def weight_box() -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, 100.0)
    box.setDecimals(2)
    box.setSingleStep(0.1)
    return box


def form_row(*widgets: QWidget, stretch: Optional[int] = 0) -> QWidget:
    """Widgets side by side in one form row; ``stretch`` is the index of the one that grows."""
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for i, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if i == stretch else 0)
    return holder
