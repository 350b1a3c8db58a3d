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


@pytest.fixture
def photo_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i, colour in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (40, 30), colour).save(folder / ("sub" if i else "") / f"p{i}.jpg")
    return folder


def test_the_world_switch_loads_the_photo_pair_and_folder_and_remembers_it(
        qtbot, monkeypatch, tmp_path, photo_folder):
    from PySide6.QtCore import QSettings

    from semclip_gui import app as app_module
    from semclip_gui import worlds

    ini = str(tmp_path / "studio.ini")
    monkeypatch.setattr(app_module, "settings", lambda: QSettings(ini, QSettings.IniFormat))
    asked = []
    monkeypatch.setattr(app_module.QFileDialog, "getExistingDirectory",
                        lambda *a, **k: asked.append(a) or str(photo_folder))
    # the photo pair: any two specs stand in for the shipped ones
    monkeypatch.setattr(worlds, "photo_demo_models",
                        lambda: worlds.WorldModels(("semclip-tiny", "semclip-tiny")))
    window = app_module.MainWindow()
    qtbot.addWidget(window)
    assert window.world == worlds.SHAPES
    with qtbot.waitSignal(window.state.model_changed, timeout=30_000):
        window.world_combo.activated.emit(worlds.WORLDS.index(worlds.PHOTOS))  # the user's pick
    qtbot.waitUntil(lambda: window.state.models_ready() and
                    window.state.model("right").spec == "semclip-tiny", timeout=30_000)
    assert window.world == worlds.PHOTOS and len(asked) == 1
    assert window.state.gallery.names == ["p0.jpg", "sub/p1.jpg", "sub/p2.jpg"]
    assert [window.playground.image_combo.itemText(i) for i in range(3)] == window.state.gallery.names
    assert QSettings(ini, QSettings.IniFormat).value(app_module.PHOTO_FOLDER_KEY) == str(photo_folder)
    assert window.mismatch_label.isHidden()
    from semclip_gui.compare_bars import DEFAULT_QUERY, PHOTO_DEFAULT_QUERY, PHOTO_EXAMPLE_QUERIES

    compare = window.compare  # the Compare tab opens on a photo query, with photo examples
    assert compare.query_edit.text() == PHOTO_DEFAULT_QUERY
    assert all(q in compare.examples.text() for q in PHOTO_EXAMPLE_QUERIES)

    assert window.set_world(worlds.SHAPES)  # back: the shipped shapes pair over shapes scenes
    qtbot.waitUntil(lambda: window.state.model("right").spec == shipped_demo_specs()[1],
                    timeout=30_000)
    assert window.state.gallery.has_scene_labels and compare.query_edit.text() == DEFAULT_QUERY
    assert window.set_world(worlds.PHOTOS) and len(asked) == 1  # the folder is remembered


def test_shapes_models_over_photos_say_so_and_a_missing_photo_pair_is_explained(
        qtbot, monkeypatch, photo_folder):
    from engine.data.galleries import folder_gallery
    from semclip_gui import app as app_module
    from semclip_gui import worlds

    told = []
    monkeypatch.setattr(app_module.QMessageBox, "information",
                        lambda parent, title, text: told.append(text))
    monkeypatch.setattr(worlds, "DEMO_DIR", photo_folder)  # no photo models there
    window = launch(parse_args([]))
    qtbot.addWidget(window)
    qtbot.waitUntil(window.state.models_ready, timeout=60_000)
    assert not window.set_world(worlds.PHOTOS)
    assert window.world == worlds.SHAPES and "photo-demo" in told[0]
    assert window.mismatch_label.isHidden()
    window.state.set_gallery(folder_gallery(photo_folder))  # as Compare's "Open folder…" does
    assert window.mismatch_label.isVisibleTo(window)
    assert "only know the shapes world" in window.mismatch_label.text()


def test_the_pickers_offer_every_shipped_model_with_its_display_name(qtbot, tiny_models):
    # the third shipped model (CLIP trained on SemCLIP's data) is one click away on either side
    from semclip_gui import app as app_module
    from semclip_gui.worlds import shipped_models

    shipped = shipped_models()
    assert {"CLIP", "SemCLIP", "CLIP+data"} <= set(shipped.values())
    window = app_module.MainWindow()
    qtbot.addWidget(window)
    window.state.set_model("left", tiny_models[0], label="CLIP")
    picker = window.pickers["left"]
    offered = [picker.spec.itemText(i) for i in range(picker.spec.count())]
    assert set(shipped) <= set(offered)
    third = next(path for path, label in shipped.items() if label == "CLIP+data")
    picker.spec.setCurrentIndex(picker.spec.findText(third))  # what choosing it in the list does
    picker.spec.textActivated.emit(third)
    assert picker.label_edit.text() == "CLIP+data"
    with qtbot.waitSignal(window.state.model_changed, timeout=60_000):
        picker.load_current()
    assert window.state.label("left") == "CLIP+data"
    assert window.state.model("left").spec == third


def test_the_photos_world_from_the_command_line_takes_a_model_for_one_side(
        qtbot, monkeypatch, tmp_path, photo_folder):
    # `semclip-gui --world photos --right photo-semclip-claims.pt`: the photo folder and the pair's
    # CLIP on the left, the given model on the right (it used to drop back to the shapes world)
    from PySide6.QtCore import QSettings

    from semclip_gui import app as app_module
    from semclip_gui import worlds

    monkeypatch.setattr(app_module, "settings",
                        lambda: QSettings(str(tmp_path / "studio.ini"), QSettings.IniFormat))
    monkeypatch.setattr(worlds, "photo_demo_models",
                        lambda: worlds.WorldModels(("semclip-tiny", "semclip-shapes-tiny")))
    import os

    from engine.paths import ASSETS_DIR
    claims = os.path.relpath(ASSETS_DIR / "demo_models" / "photo-semclip-claims.pt")
    window = launch(parse_args(["--world", "photos", "--photos", str(photo_folder),
                                "--right", claims]))
    qtbot.addWidget(window)
    qtbot.waitUntil(window.state.models_ready, timeout=60_000)
    assert window.world == worlds.PHOTOS and not window.state.gallery.has_scene_labels
    assert window.state.model("left").spec == "semclip-tiny"  # the pair's left member
    assert window.state.model("right").spec == claims  # the given one, not the pair's
    assert window.state.label("right") == "SemCLIP+claims"  # a shipped model keeps its name
