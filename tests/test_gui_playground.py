"""The Playground as a teacher uses it: type a caption, get generations, read bars and scatter."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from engine.explore.explain import explain
from engine.explore.projection import projection_for
from semclip_gui.playground_panel import PlaygroundPanel


@pytest.fixture
def panel(qtbot, app_state):
    panel = PlaygroundPanel(app_state)
    qtbot.addWidget(panel)
    panel.resize(1200, 800)
    return panel


def wait_scored(qtbot, panel, timeout=10_000):
    """Until both models' numbers describe exactly the texts now in the panel."""
    def current():
        caption, paraphrases, negations = panel.texts()
        texts = [caption] + paraphrases + negations
        return len(panel.explanations) == 2 and all(
            e.texts == texts for e in panel.explanations.values())
    qtbot.waitUntil(current, timeout=timeout)


def _bar_values(panel) -> dict[str, np.ndarray]:
    import pyqtgraph as pg

    bars = [item for item in panel.bars.getPlotItem().items if isinstance(item, pg.BarGraphItem)]
    return {item.opts["name"]: np.asarray(item.opts["width"]) for item in bars}


def test_typing_a_caption_fills_paraphrases_and_negations_and_scores_them(qtbot, panel, app_state):
    panel.caption_edit.clear()
    with qtbot.waitSignal(panel.generations_ready, timeout=10_000):
        qtbot.keyClicks(panel.caption_edit, "a large red circle and a small blue square")
    caption, paraphrases, negations = panel.texts()
    assert caption == "a large red circle and a small blue square"
    assert paraphrases and negations
    assert all(p != caption for p in paraphrases)
    cues = ("no ", "not ", "without", "lacking", "free of", "absent", "missing", "n't")
    assert all(any(cue in n for cue in cues) for n in negations), negations

    wait_scored(qtbot, panel)
    # the bars show exactly what the engine computes for each model and the chosen image
    image = panel._image
    shown = _bar_values(panel)
    for side, label in (("left", "CLIP"), ("right", "SemCLIP")):
        loaded = app_state.model(side)
        expected = explain(loaded, caption, paraphrases, negations, image=image)
        assert np.allclose(shown[label], expected.image_similarity.numpy(), atol=1e-5)
    # one scatter point per text on each side
    points = panel.explanations["right"].projected
    assert points.shape == (1 + len(paraphrases) + len(negations), 2)


def test_user_edits_add_and_remove_generations(qtbot, panel):
    with qtbot.waitSignal(panel.generations_ready, timeout=10_000):
        panel.set_caption("a dog is sitting on a bench")
    before = panel.negations.texts()
    panel.negations.new_edit.setText("a bench with no dog")
    qtbot.mouseClick(panel.negations.add_button, Qt.LeftButton)
    assert panel.negations.texts() == before + ["a bench with no dog"]
    wait_scored(qtbot, panel)
    assert panel.explanations["left"].texts[-1] == "a bench with no dog"

    panel.paraphrases.list.setCurrentRow(0)
    removed = panel.paraphrases.texts()[0]
    panel.paraphrases.remove_selected()
    assert removed not in panel.paraphrases.texts()
    wait_scored(qtbot, panel)
    assert removed not in panel.explanations["left"].texts

    panel.paraphrases.list.item(0).setText("a dog sits on a park bench")
    wait_scored(qtbot, panel)
    assert "a dog sits on a park bench" in panel.explanations["right"].texts


def test_projection_plot_uses_the_models_own_projection(qtbot, panel, app_state):
    with qtbot.waitSignal(panel.generations_ready, timeout=10_000):
        panel.set_caption("a small green star")
    wait_scored(qtbot, panel)
    loaded = app_state.model("left")
    V = projection_for(loaded)
    caption, paraphrases, negations = panel.texts()
    expected = explain(loaded, caption, paraphrases, negations, projection=V).projected
    assert torch.allclose(panel.explanations["left"].projected, expected, atol=1e-5)
    assert "n = 2" in panel.projection_plots["left"].getPlotItem().titleLabel.text


def test_swapping_a_model_rescores_with_the_new_models_own_projection(qtbot, panel, app_state,
                                                                      tiny_models):
    with qtbot.waitSignal(panel.generations_ready, timeout=10_000):
        panel.set_caption("a small green star")
    wait_scored(qtbot, panel)
    before = panel.explanations["left"].projected.clone()
    app_state.set_model("left", tiny_models[1], label="other")
    qtbot.waitUntil(lambda: not torch.allclose(before, panel.explanations["left"].projected),
                    timeout=10_000)
    expected = explain(tiny_models[1], *panel.texts(), projection=projection_for(tiny_models[1]))
    assert torch.allclose(panel.explanations["left"].projected, expected.projected, atol=1e-5)
    assert panel.projection_plots["left"].getPlotItem().titleLabel.text.startswith("other")


def test_choosing_another_gallery_image_rescores(qtbot, panel, app_state):
    with qtbot.waitSignal(panel.generations_ready, timeout=10_000):
        panel.set_caption("a red circle")
    wait_scored(qtbot, panel)
    first = panel.explanations["left"].image_similarity.clone()
    panel.image_combo.setCurrentIndex(3)
    assert panel.image_caption.text() == app_state.gallery.captions[3]
    qtbot.waitUntil(lambda: not torch.allclose(first, panel.explanations["left"].image_similarity),
                    timeout=10_000)
    scene = app_state.gallery.sources[3]
    expected = explain(app_state.model("left"), *panel.texts(), image=scene).image_similarity
    assert torch.allclose(panel.explanations["left"].image_similarity, expected, atol=1e-5)


def test_an_unreachable_llm_server_is_reported_in_the_panel(qtbot, panel):
    import socket

    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    panel.llm_url.setText(f"http://127.0.0.1:{port}/v1")
    with qtbot.waitSignal(panel.generation_failed, timeout=30_000) as blocker:
        panel.backend_combo.setCurrentIndex(1)
    assert str(port) in blocker.args[0]
    assert "failed" in panel.status_label.text()
    assert panel.llm_box.isVisible() or not panel.isVisible()


def test_empty_caption_clears_the_lists(qtbot, panel):
    with qtbot.waitSignal(panel.generations_ready, timeout=10_000):
        panel.set_caption("a cat on a mat")
    panel.set_caption("")
    assert panel.paraphrases.texts() == [] and panel.negations.texts() == []
    assert "type a caption" in panel.status_label.text()


def test_the_panel_opens_on_the_shown_scene_and_can_take_another_scenes_caption(qtbot, panel, app_state):
    assert panel.caption() == app_state.gallery.captions[0]  # bars start out meaningful
    panel.image_combo.setCurrentIndex(2)
    with qtbot.waitSignal(panel.generations_ready, timeout=10_000):
        qtbot.mouseClick(panel.use_caption_button, Qt.LeftButton)
    assert panel.caption() == app_state.gallery.captions[2]
    wait_scored(qtbot, panel)


def test_closing_the_panel_while_an_answer_is_on_its_way_raises_nothing(qtbot, app_state):
    import asyncio

    from shiboken6 import isValid

    from engine.captions import make_backend

    answer_now = asyncio.Event()

    class SlowBackend:
        name = "a slow server"

        async def agenerate(self, caption):
            await answer_now.wait()
            return make_backend("rules").generate(caption)

    panel = PlaygroundPanel(app_state)
    panel.caption_backend = lambda: SlowBackend()
    panel.caption_edit.setText("a red circle")
    panel.regenerate()
    task = panel._task
    panel.deleteLater()  # the teacher closes the window mid-request
    qtbot.waitUntil(lambda: not isValid(panel.caption_edit))
    answer_now.set()
    qtbot.waitUntil(task.done, timeout=5_000)
    assert not task.cancelled() and task.exception() is None


def test_scores_that_land_after_the_panel_closed_are_dropped(qtbot, app_state):
    from shiboken6 import isValid

    from semclip_gui.workers import wait_for_background_jobs

    panel = PlaygroundPanel(app_state)
    panel.set_caption("a red circle and no blue square")  # generations, then scoring, in flight
    qtbot.waitUntil(lambda: panel._scorer.busy, timeout=10_000)
    bars = panel.bars
    panel.deleteLater()
    qtbot.waitUntil(lambda: not isValid(bars))
    assert wait_for_background_jobs(30_000)
    qtbot.wait(100)  # deliver the finished job's result: it must not touch the deleted plots


def test_bars_and_plots_grey_out_from_the_keystroke_until_the_new_scores_land(qtbot, panel):
    from semclip_gui.views import is_stale

    wait_scored(qtbot, panel)
    assert not panel.results_stale and not is_stale(panel.plots_widget)
    qtbot.keyClicks(panel.caption_edit, " and a green star")
    assert panel.results_stale and is_stale(panel.plots_widget)  # at once, before the debounce
    wait_scored(qtbot, panel)
    qtbot.waitUntil(lambda: not panel.results_stale, timeout=10_000)
    assert not is_stale(panel.plots_widget)
    panel.negations.add("a cat")  # an edit of the lists: stale until rescored
    assert panel.results_stale
    wait_scored(qtbot, panel)
    qtbot.waitUntil(lambda: not panel.results_stale, timeout=10_000)


def test_after_a_failed_generation_the_old_scores_stay_greyed_out(qtbot, panel):
    import socket

    wait_scored(qtbot, panel)
    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    panel.llm_url.setText(f"http://127.0.0.1:{port}/v1")
    with qtbot.waitSignal(panel.generation_failed, timeout=30_000):
        panel.backend_combo.setCurrentIndex(1)
    with qtbot.waitSignal(panel.generation_failed, timeout=30_000):
        qtbot.keyClicks(panel.caption_edit, " on the left")
    assert panel.results_stale  # the bars still describe the caption before the edit
    assert "failed" in panel.status_label.text()


def _label_boxes(plot):
    import pyqtgraph as pg

    return [item.mapRectToScene(item.boundingRect())
            for item in plot.getPlotItem().items if isinstance(item, pg.TextItem)]


def test_both_subspace_plots_share_one_scale_unless_told_otherwise(qtbot, panel, app_state):
    panel.resize(1024, 700)
    panel.show()
    qtbot.waitExposed(panel)
    wait_scored(qtbot, panel)
    qtbot.waitUntil(lambda: not panel.results_stale, timeout=10_000)
    assert panel.same_scale_check.isChecked()  # on by default

    def scales():  # data units per pixel, x and y
        return {side: plot.getViewBox().viewPixelSize()
                for side, plot in panel.projection_plots.items()}

    shared = scales()
    assert shared["left"] == pytest.approx(shared["right"], rel=1e-6)
    for plot in panel.projection_plots.values():  # no label covers another
        labels = _label_boxes(plot)
        assert len(labels) == len(panel.explanations["left"].texts)
        for a, b in itertools.combinations(labels, 2):
            assert not a.intersects(b), (a, b)
    panel.same_scale_check.setChecked(False)  # each plot zooms to its own points
    own = {side: scale[0] for side, scale in scales().items()}
    # the model whose texts spread wider keeps the shared scale; the other zooms in on its own
    assert max(own.values()) == pytest.approx(shared["left"][0], rel=1e-6)
    assert min(own.values()) < 0.99 * shared["left"][0]


def test_each_model_scores_a_gallery_scene_drawn_at_its_own_input_size(qtbot, panel, app_state):
    # a gallery drawn at 32 px, models that take 64 px: each model must see the scene drawn at
    # 64 px, not the 32 px drawing upscaled (a 224 px model scored upscaled drawings at chance)
    from engine.data.galleries import shapes_gallery

    loaded = app_state.model("left")
    assert loaded.image_size == 64
    app_state.set_gallery(shapes_gallery(n=16, split="test", image_size=32))
    with qtbot.waitSignal(panel.generations_ready, timeout=10_000):
        panel.set_caption("a red circle")
    panel.image_combo.setCurrentIndex(3)
    gallery = app_state.gallery
    drawn_at_64 = gallery.sources_at(64)[3]
    expected = explain(loaded, *panel.texts(), image=drawn_at_64).image_similarity
    upscaled = explain(loaded, *panel.texts(), image=gallery.sources[3]).image_similarity
    assert not torch.allclose(expected, upscaled, atol=1e-4)
    qtbot.waitUntil(lambda: bool(panel.explanations) and torch.allclose(
        panel.explanations["left"].image_similarity, expected, atol=1e-5), timeout=10_000)
    # a file the user opens is scored as it is
    panel.set_image(gallery.sources[5], "a file")
    plain = explain(loaded, *panel.texts(), image=gallery.sources[5]).image_similarity
    qtbot.waitUntil(lambda: torch.allclose(panel.explanations["left"].image_similarity, plain,
                                           atol=1e-5), timeout=10_000)


def test_a_photo_gallery_brings_a_photo_caption_but_keeps_one_the_user_typed(qtbot, panel, app_state,
                                                                            tmp_path):
    # switching to the Photos world used to leave the shapes scene's caption over a photo
    from PIL import Image

    from engine.data.galleries import folder_gallery
    from semclip_gui.playground_panel import PHOTO_CAPTION

    shapes = app_state.gallery
    for i in range(2):
        Image.new("RGB", (32, 24), (40 * i, 120, 60)).save(tmp_path / f"p{i}.jpg")
    app_state.set_gallery(folder_gallery(tmp_path))
    assert panel.caption() == PHOTO_CAPTION and panel.image_combo.count() == 2
    app_state.set_gallery(shapes)  # back: the first scene's own caption again
    assert panel.caption() == shapes.captions[0]
    qtbot.keyClicks(panel.caption_edit, " and no star")
    app_state.set_gallery(folder_gallery(tmp_path))
    assert panel.caption() == shapes.captions[0] + " and no star"  # the user's words stay


def test_plot_titles_shorten_to_fit_a_long_model_name_in_a_small_window(qtbot, panel, app_state,
                                                                       tiny_models):
    # "SemCLIP+claims: subspace p(t), n = 2" ran off the plot at 1024 px
    from PySide6.QtGui import QFont, QFontMetrics

    from semclip_gui.projection_view import PLOT_TITLE_SIZE

    def shown(plot) -> str:
        return next(text for html, text in plot.title_candidates if html == plot.shown_title)

    def fits(plot) -> bool:
        font = QFont(plot.font())
        font.setPointSizeF(float(PLOT_TITLE_SIZE.removesuffix("pt")))
        return QFontMetrics(font).horizontalAdvance(shown(plot)) <= plot.getViewBox().width()

    app_state.set_model("right", tiny_models[1], label="SemCLIP+claims")
    wait_scored(qtbot, panel)
    panel.resize(1600, 900)
    panel.show()
    qtbot.waitExposed(panel)
    right = panel.projection_plots["right"]
    qtbot.waitUntil(lambda: shown(right).startswith("SemCLIP+claims: subspace p(t)"))
    assert "cosine to image" in shown(panel.bars)
    panel.resize(700, 500)
    qtbot.waitUntil(lambda: not shown(right).startswith("SemCLIP+claims: subspace"))
    assert shown(right).startswith("SemCLIP+claims")  # the name itself always stays
    for plot in (right, panel.projection_plots["left"], panel.bars):
        assert fits(plot) or shown(plot) == plot.title_candidates[-1][1]


PLOTS_AT_470 = 130  # px of plot height (150 measured; 86 when the 160 px thumbnail stayed)


def test_a_short_window_shrinks_the_thumbnail_so_the_plots_keep_their_height(qtbot, panel):
    # at 800x560 the fixed 160 px image column left the plots about 70 px
    from semclip_gui.playground_panel import SMALL_THUMBNAIL_PX, THUMBNAIL_PX

    panel.show()
    qtbot.waitExposed(panel)
    panel.resize(1000, 700)
    qtbot.waitUntil(lambda: panel.thumbnail.width() == THUMBNAIL_PX)
    panel.resize(780, 470)  # the panel in an 800x560 window
    qtbot.waitUntil(lambda: panel.thumbnail.width() == SMALL_THUMBNAIL_PX)
    assert panel.thumbnail.pixmap().width() <= SMALL_THUMBNAIL_PX  # the image is redrawn to fit
    qtbot.waitUntil(lambda: panel.plots_widget.height() >= PLOTS_AT_470)
    panel.resize(1000, 700)
    qtbot.waitUntil(lambda: panel.thumbnail.width() == THUMBNAIL_PX)
    assert panel.thumbnail.pixmap().width() > SMALL_THUMBNAIL_PX
