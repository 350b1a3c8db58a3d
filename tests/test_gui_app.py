"""The main window as a fresh user meets it: demo models, model pickers, a screenshot run."""

from __future__ import annotations

import time

import pytest

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from semclip_gui.app import launch, parse_args
from semclip_gui.demo import shipped_demo_specs


def test_the_app_opens_on_the_shipped_demo_models_within_a_minute(qtbot):
    start = time.monotonic()
    window = launch(parse_args([]))
    qtbot.addWidget(window)
    qtbot.waitUntil(window.state.models_ready, timeout=60_000)
    assert time.monotonic() - start < 60
    left, right = shipped_demo_specs()
    assert window.state.model("left").spec == left and window.state.model("right").spec == right
    assert [window.state.label(s) for s in ("left", "right")] == ["CLIP", "SemCLIP"]
    assert all(p.status.text() == "ready" for p in window.pickers.values())
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Playground"
    # the Playground is useful at once: generations for the default caption, scored by both
    playground = window.playground
    qtbot.waitUntil(lambda: playground.negations.texts() and len(playground.explanations) == 2,
                    timeout=30_000)
    assert playground.explanations["right"].image_similarity is not None


def test_a_spec_that_cannot_load_is_explained_and_the_old_model_stays(qtbot, monkeypatch, tiny_models):
    from semclip_gui import app as app_module

    shown = []
    monkeypatch.setattr(app_module.QMessageBox, "warning",
                        lambda parent, title, text: shown.append((title, text)))
    window = app_module.MainWindow()
    qtbot.addWidget(window)
    window.state.set_model("left", tiny_models[0])
    picker = window.pickers["left"]
    picker.spec.setCurrentText("no-such-architecture")
    with qtbot.waitSignal(window.state.model_failed, timeout=30_000):
        qtbot.mouseClick(picker.load, Qt.LeftButton)
    assert picker.status.text() == "failed"
    assert shown and "no-such-architecture" in shown[0][1] and "unknown model architecture" in shown[0][1]
    assert window.state.model("left") is tiny_models[0]


def test_screenshot_mode_saves_the_window_and_exits(qtbot, tmp_path, monkeypatch):
    from semclip_gui import app as app_module

    quits = []  # the real quit would end every later event loop of this test process
    monkeypatch.setattr(app_module, "_quit", lambda: quits.append(True))
    png = tmp_path / "shot.png"
    window = launch(parse_args(["--left", "semclip-shapes-tiny", "--right", "semclip-shapes-tiny",
                                "--tab", "compare", "--screenshot", str(png),
                                "--screenshot-delay", "0.3"]))
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: bool(quits), timeout=30_000)
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Compare"
    image = QImage(str(png))
    assert image.width() >= 800 and image.height() >= 500


def test_the_window_fits_a_1024_by_700_screen_on_every_tab(qtbot, app_state):
    from semclip_gui.app import TABS, MainWindow

    window = MainWindow(app_state)
    qtbot.addWidget(window)
    window.show()
    window.resize(1024, 700)
    for tab in TABS:
        window.tabs.setCurrentIndex(TABS.index(tab))
        qtbot.wait(50)
        assert window.width() <= 1024 and window.height() <= 700, tab
    assert window.minimumSizeHint().width() <= 1024
    assert window.pickers["right"].label_edit.width() >= 60  # "SemCLIP", not "CLIP"


def test_the_window_opens_no_larger_than_the_screen(qtbot, app_state, monkeypatch):
    from PySide6.QtCore import QSize

    import semclip_gui.app as app

    monkeypatch.setattr(app, "_available_size", lambda: QSize(1024, 700))  # a projector
    window = app.MainWindow(app_state)
    qtbot.addWidget(window)
    assert (window.width(), window.height()) == (1024, 700)
    assert app.parse_args(["--size", "800x600"]).size == QSize(800, 600)
    with pytest.raises(SystemExit):
        app.parse_args(["--size", "big"])
