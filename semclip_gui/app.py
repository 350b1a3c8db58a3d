"""``semclip-gui``: the main window — model pickers on top, Train / Playground / Compare tabs.

Start-up: the window opens at once; the demo CLIP and SemCLIP models (shipped in
``assets/demo_models``, or trained on first launch behind a cancellable progress dialog) load in
the background and every panel fills in when they arrive.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from PySide6.QtCore import QSize, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QApplication, QComboBox, QFileDialog, QHBoxLayout, QLabel,
                               QLineEdit, QMainWindow, QMessageBox, QPushButton, QTabWidget,
                               QVBoxLayout, QWidget)

from engine.models import project_config_names

from .state import SIDES, AppState
from .workers import wait_for_background_jobs

APP_NAME = "SemCLIP Studio"
TABS = ("playground", "compare", "train")  # in the order of the tab bar


class ModelPicker(QWidget):
    """One side's model: a label, an editable spec box (with known specs) and Load / Browse."""

    def __init__(self, state: AppState, side: str, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.state, self.side = state, side
        self.title = QLabel(f"<b>{side.capitalize()}</b>")
        self.label_edit = QLineEdit(state.label(side))
        self.label_edit.setMaximumWidth(90)
        self.label_edit.setMinimumWidth(60)  # "SemCLIP" stays readable in a small window
        self.label_edit.setToolTip("display name of this side in every panel")
        self.spec = QComboBox()
        self.spec.setEditable(True)
        self.spec.setMinimumContentsLength(12)  # the window fits 1024 px; it grows with it
        self.spec.setToolTip("a checkpoint file, a project config name, or ARCH:PRETRAINED_TAG "
                             "(e.g. ViT-B-32:laion2b_s34b_b79k, online only)")
        self.spec.addItems(project_config_names())
        self.browse = QPushButton("Browse…")
        self.load = QPushButton("Load")
        self.status = QLabel("")
        self.status.setMinimumWidth(60)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        for widget in (self.title, self.label_edit, self.spec, self.browse, self.load, self.status):
            row.addWidget(widget)
        row.setStretch(2, 1)
        self.browse.clicked.connect(self._browse)
        self.load.clicked.connect(self.load_current)
        self.spec.lineEdit().returnPressed.connect(self.load_current)
        state.model_loading.connect(self._on_loading)
        state.model_changed.connect(self._on_changed)
        state.model_failed.connect(self._on_failed)

    def set_spec(self, spec: str) -> None:
        if self.spec.findText(spec) < 0:
            self.spec.insertItem(0, spec)
        self.spec.setCurrentText(spec)

    def load_current(self) -> None:
        spec = self.spec.currentText().strip()
        if spec:
            self.state.load_model_async(self.side, spec, label=self.label_edit.text().strip() or None)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"{self.side} model checkpoint", "",
                                              "Checkpoints (*.pt *.pth *.bin *.safetensors)")
        if path:
            self.set_spec(path)
            self.load_current()

    def _on_loading(self, side: str, spec: str) -> None:
        if side == self.side:
            self.status.setText("loading…")
            self.set_spec(spec)

    def _on_changed(self, side: str) -> None:
        if side == self.side:
            self.status.setText("ready")
            self.label_edit.setText(self.state.label(side))

    def _on_failed(self, side: str, message: str) -> None:
        if side == self.side:
            self.status.setText("failed")
            QMessageBox.warning(self, f"Could not load the {side} model", message)


def _available_size() -> QSize:
    """The primary screen's room for windows (a projector may offer only 1024×700)."""
    screen = QGuiApplication.primaryScreen()
    return screen.availableGeometry().size() if screen else MainWindow.PREFERRED_SIZE


class MainWindow(QMainWindow):
    """Model pickers over three tabs; every panel shares one :class:`AppState`."""

    PREFERRED_SIZE = QSize(1280, 820)

    def __init__(self, state: Optional[AppState] = None):
        super().__init__()
        from .compare_panel import ComparePanel
        from .playground_panel import PlaygroundPanel
        from .train_panel import TrainPanel

        self.state = state or AppState(self)
        self.setWindowTitle(APP_NAME)
        self.pickers = {side: ModelPicker(self.state, side) for side in SIDES}
        self.tabs = QTabWidget()
        self.playground = PlaygroundPanel(self.state)
        self.compare = ComparePanel(self.state)
        self.train_panel = TrainPanel(self.state)
        self.tabs.addTab(self.playground, "Playground")
        self.tabs.addTab(self.compare, "Compare")
        self.tabs.addTab(self.train_panel, "Train")
        central = QWidget()
        layout = QVBoxLayout(central)
        top = QHBoxLayout()
        for side in SIDES:
            top.addWidget(self.pickers[side], 1)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.state.status.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.state.model_failed.connect(lambda side, msg: self.statusBar().showMessage(msg, 15000))
        self.resize(self.PREFERRED_SIZE.boundedTo(_available_size()))

    def load_models(self, left: str, right: str) -> None:
        """Load a spec on each side (in the background)."""
        for side, spec in zip(SIDES, (left, right)):
            self.pickers[side].set_spec(spec)
            self.state.load_model_async(side, spec)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self.train_panel.shutdown()
        self.compare.shutdown()
        super().closeEvent(event)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="semclip-gui", description=APP_NAME)
    parser.add_argument("--left", help="model spec for the left side (default: demo CLIP)")
    parser.add_argument("--right", help="model spec for the right side (default: demo SemCLIP)")
    parser.add_argument("--tab", choices=TABS, default="playground")
    parser.add_argument("--caption", help="caption to put in the Playground at start")
    parser.add_argument("--size", metavar="WxH", type=_window_size,
                        help="window size, e.g. 1024x700 (default: 1280x820 or the screen)")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="save the window to PNG once the models are ready, then quit")
    parser.add_argument("--screenshot-delay", type=float, default=3.0,
                        help="seconds to wait after the models are ready before the screenshot")
    return parser.parse_args(argv)


def _window_size(text: str) -> QSize:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1024x700, got {text!r}")
    return QSize(width, height)


def launch(args: argparse.Namespace) -> MainWindow:
    """Open the main window and start loading the models (the demo pair unless specs are given)."""
    window = MainWindow()
    window.tabs.setCurrentIndex(TABS.index(args.tab))
    if args.size:
        window.resize(args.size)
    window.show()
    left, right = args.left, args.right
    if not (left and right):
        from .demo import DemoModelsCancelled, demo_model_specs
        try:
            demo_left, demo_right = demo_model_specs(window)
        except DemoModelsCancelled:
            window.statusBar().showMessage("demo models cancelled: load a model on each side")
            demo_left = demo_right = None
        except RuntimeError as exc:
            QMessageBox.critical(window, "Demo models", str(exc))
            demo_left = demo_right = None
        left, right = left or demo_left, right or demo_right
    if left and right:
        window.load_models(left, right)
    if args.caption:
        window.playground.set_caption(args.caption)
    if args.screenshot:
        _screenshot_when_ready(window, Path(args.screenshot), args.screenshot_delay)
    return window


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    window = launch(args)  # noqa: F841 - kept alive for the event loop
    code = app.exec()
    wait_for_background_jobs(10_000)  # let model loads / scoring finish before Qt tears down
    return code


def _quit() -> None:
    QApplication.instance().quit()


def _screenshot_when_ready(window: MainWindow, path: Path, delay_s: float) -> None:
    """Grab the window ``delay_s`` after both models are loaded, save it, and quit."""

    def shoot() -> None:
        window.grab().save(str(path))
        print(f"screenshot: {path}")
        _quit()

    def check() -> None:
        if window.state.models_ready():
            QTimer.singleShot(int(delay_s * 1000), shoot)
        else:
            QTimer.singleShot(200, check)

    check()


if __name__ == "__main__":
    sys.exit(main())
