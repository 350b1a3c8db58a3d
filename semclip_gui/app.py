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

from PySide6.QtCore import QSettings, QSize, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QApplication, QComboBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit,
                               QMainWindow, QMessageBox, QPushButton, QTabWidget, QVBoxLayout,
                               QWidget)

from engine.data.galleries import folder_gallery, shapes_gallery
from engine.model.loading import project_config_names

from . import worlds
from .state import SIDES, AppState
from .workers import collect_garbage_on_gui_thread, wait_for_background_jobs

APP_NAME = "SemCLIP Studio"
PHOTO_FOLDER_KEY = "photos/folder"  # the photo folder, remembered between sessions
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
        self._shipped = worlds.shipped_models()  # path -> display name
        self.spec.addItems([*self._shipped, *project_config_names()])
        self.spec.textActivated.connect(self._on_spec_chosen)
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

    def _on_spec_chosen(self, spec: str) -> None:
        """A shipped model brings its own display name ("CLIP+data"), as the demo pair does."""
        label = self.shipped_label(spec)
        if label:
            self.label_edit.setText(label)

    def shipped_label(self, spec: str) -> Optional[str]:
        """The display name of ``spec`` when it is a shipped model (by any path to it)."""
        if spec in self._shipped:
            return self._shipped[spec]
        return self._shipped.get(str(Path(spec).resolve())) if Path(spec).suffix else None

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


def settings() -> QSettings:
    """The app's remembered choices (an INI file in the user's config folder)."""
    return QSettings(QSettings.IniFormat, QSettings.UserScope, "semclip", "studio")


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
        self.world_combo = QComboBox()
        self.world_combo.addItems(worlds.WORLDS)
        self.world_combo.setToolTip("Shapes: the shapes-world models over shapes scenes. Photos: "
                                    "the photo models over a folder of your photos.")
        corner = QWidget()
        corner_row = QHBoxLayout(corner)
        corner_row.setContentsMargins(0, 0, 4, 0)
        corner_row.addWidget(QLabel("World:"))
        corner_row.addWidget(self.world_combo)
        self.tabs.setCornerWidget(corner)
        self.world_combo.activated.connect(lambda i: self.set_world(worlds.WORLDS[i]))
        self.mismatch_label = QLabel()
        self.mismatch_label.setWordWrap(True)
        self.mismatch_label.setStyleSheet("color: #b71c1c; font-weight: bold;")
        self.mismatch_label.hide()
        central = QWidget()
        layout = QVBoxLayout(central)
        top = QHBoxLayout()
        for side in SIDES:
            top.addWidget(self.pickers[side], 1)
        layout.addLayout(top)
        layout.addWidget(self.mismatch_label)
        layout.addWidget(self.tabs, 1)
        self.state.model_changed.connect(self._check_world_mismatch)
        self.state.gallery_changed.connect(self._check_world_mismatch)
        self.setCentralWidget(central)
        self.state.status.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.state.model_failed.connect(lambda side, msg: self.statusBar().showMessage(msg, 15000))
        self.resize(self.PREFERRED_SIZE.boundedTo(_available_size()))

    def load_models(self, left: str, right: str) -> None:
        """Load a spec on each side (in the background)."""
        for side, spec in zip(SIDES, (left, right)):
            picker = self.pickers[side]
            picker.set_spec(spec)
            self.state.load_model_async(side, spec, label=picker.shipped_label(spec))

    @property
    def world(self) -> str:
        return self.world_combo.currentText()

    def set_world(self, world: str, folder: Optional[str] = None,
                  models: tuple[Optional[str], Optional[str]] = (None, None)) -> bool:
        """Load ``world``'s demo pair and gallery in every tab. Photos need a folder: ``folder``,
        else the one chosen last time, else the user is asked (and it is remembered).
        ``models`` (left, right) replace the pair's members where given (e.g. SemCLIP+claims on
        the right). Returns False, with the world unchanged, when the models or the folder are
        not there."""
        if world == worlds.PHOTOS:
            found = worlds.photo_demo_models()
            if found.specs is None:
                return self._refuse_world(found.missing)
            folder = folder or self._photo_folder()
            if not folder:
                return self._refuse_world("")
            try:
                gallery = folder_gallery(folder)
            except (OSError, ValueError) as exc:
                return self._refuse_world(f"{folder}: {exc}")
            settings().setValue(PHOTO_FOLDER_KEY, str(folder))
            specs = found.specs
        else:
            from .demo import cached_demo_specs, shipped_demo_specs
            specs = shipped_demo_specs() or cached_demo_specs()
            if specs is None:
                return self._refuse_world("the shapes demo models are not there yet")
            gallery = shapes_gallery(n=200, split="test")
        self.world_combo.setCurrentText(world)
        self.state.set_gallery(gallery)
        self.load_models(*(given or default for given, default in zip(models, specs)))
        return True

    def _photo_folder(self) -> str:
        remembered = str(settings().value(PHOTO_FOLDER_KEY, "") or "")
        if remembered and Path(remembered).is_dir():
            return remembered
        return QFileDialog.getExistingDirectory(
            self, "A folder of everyday photos (e.g. the Flickr8k test images)")

    def _refuse_world(self, message: str) -> bool:
        previous = worlds.SHAPES if self.state.gallery.has_scene_labels else worlds.PHOTOS
        self.world_combo.setCurrentText(previous)
        if message:
            QMessageBox.information(self, "World", message)
            self.statusBar().showMessage(message, 15000)
        return False

    def _check_world_mismatch(self, *_args) -> None:
        sidecars = [m.sidecar for m in (self.state.model(s) for s in SIDES) if m is not None]
        note = worlds.world_mismatch(sidecars, self.state.gallery)
        self.mismatch_label.setText(note)
        self.mismatch_label.setVisible(bool(note))

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
    parser.add_argument("--world", choices=[w.lower() for w in worlds.WORLDS], default="shapes",
                        help="shapes (default) or photos: the photo models over a photo folder")
    parser.add_argument("--photos", metavar="DIR", help="the photo folder (default: the one "
                                                         "chosen last time, else the app asks)")
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
    if args.world == "photos":
        if window.set_world(worlds.PHOTOS, args.photos, models=(left, right)):
            _after_launch(window, args)
            return window
        window.statusBar().showMessage("the Photos world is not available: shapes instead")
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
    _after_launch(window, args)
    return window


def _after_launch(window: MainWindow, args: argparse.Namespace) -> None:
    if args.caption:
        window.playground.set_caption(args.caption)
    if args.screenshot:
        _screenshot_when_ready(window, Path(args.screenshot), args.screenshot_delay)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    collect_garbage_on_gui_thread()
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
