"""The Compare panel, driven as a user does: type queries, move the blend slider, open files."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import torch

from engine.data.shapes.world import ShapesWorld
from engine.eval.run import save_results
from engine.explore.compare import Hit, count_violations, rank_gallery, results_bars
from engine.explore.denials import negated_terms, objects_match
from engine.explore.search import gallery_metrics
from engine.model.encoding import embed_images, embed_texts
from semclip_gui.compare_panel import ComparePanel
from semclip_gui.images import THUMB
from semclip_gui.state import SIDES

EMBED_TIMEOUT = 20_000


@pytest.fixture
def panel(qtbot, app_state):
    panel = ComparePanel(app_state)
    qtbot.addWidget(panel)
    panel.resize(1280, 760)
    panel.show()
    qtbot.waitUntil(panel.is_ready, timeout=EMBED_TIMEOUT)
    yield panel
    panel.shutdown()


def image_embeddings(loaded, gallery) -> torch.Tensor:
    """The gallery through the model's image tower, without the panel or the cache."""
    batch = torch.stack([loaded.preprocess(image.convert("RGB")) for image in gallery.sources])
    return embed_images(loaded.model, batch)


def direct_scores(loaded, gallery, query: str) -> torch.Tensor:
    """Cosine scores of ``query`` against every gallery image, straight from the model."""
    text = embed_texts(loaded.model, loaded.tokenizer, [query])
    return (text @ image_embeddings(loaded, gallery).T)[0]


def type_query(qtbot, panel: ComparePanel, text: str) -> None:
    """Clear the box and type ``text``; returns once its (debounced) results are shown."""
    assert panel.query_edit.text() != text, "results of the text already there would pass"
    panel.query_edit.clear()
    with qtbot.waitSignal(panel.results_updated, timeout=10_000,
                          check_params_cb=lambda query: query == text):
        qtbot.keyClicks(panel.query_edit, text)


def assert_top_k(hits: list[Hit], scores: torch.Tensor, k: int) -> None:
    """``hits`` are the k best of ``scores`` (near-ties may come in either order)."""
    assert [h.score for h in hits] == pytest.approx(scores.topk(k).values.tolist(), abs=1e-5)
    assert all(abs(float(scores[h.index]) - h.score) < 1e-5 for h in hits)


def test_typed_query_ranks_the_gallery_with_both_models(qtbot, panel, app_state, tiny_models):
    query = "a large blue circle"
    type_query(qtbot, panel, query)
    for side, loaded in zip(SIDES, tiny_models):
        hits = panel.results(side)
        assert len(hits) == 8
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert_top_k(hits, direct_scores(loaded, app_state.gallery, query), 8)
        cards = panel.cards(side)
        assert [c.hit for c in cards] == hits
        for rank, (card, hit) in enumerate(zip(cards, hits), 1):
            assert f"#{rank}" in card.caption.text() and f"{hit.score:.3f}" in card.caption.text()
            assert app_state.gallery.names[hit.index] in card.caption.text()
            assert card.thumb.pixmap().width() == THUMB  # 64-px scenes shown at 96 px
        assert app_state.label(side) in panel.columns[side].header.text()

    with qtbot.waitSignal(panel.results_updated, timeout=10_000):
        panel.k_spin.setValue(3)
    assert [len(panel.results(side)) for side in SIDES] == [3, 3]


def test_negation_query_marks_exactly_the_images_showing_the_negated_term(qtbot, panel, app_state):
    gallery = app_state.gallery
    # a colour+shape that some scenes of the 16 have and others do not
    counts = Counter(f"{o['colour']} {o['shape']}" for objs in gallery.objects
                     for o in {(x["colour"], x["shape"]): x for x in objs}.values())
    term = next(t for t, n in counts.most_common() if 0 < n < len(gallery))
    query = f"a picture with a shape and no {term}"
    assert negated_terms(query) == [term]
    panel.k_spin.setValue(len(gallery))  # every image ranked: the marked set is checkable whole
    type_query(qtbot, panel, query)

    expected = {i for i in range(len(gallery)) if objects_match(gallery.objects[i], term)}
    assert expected
    for side in SIDES:
        hits = panel.results(side)
        assert {h.index for h in hits} == set(range(len(gallery)))
        assert {h.index for h in hits if h.violates} == expected
        assert count_violations(hits) == len(expected)
        assert f"{len(expected)} of {len(gallery)}" in panel.columns[side].summary.text()
        for card in panel.cards(side):
            marked = card.hit.index in expected
            assert ("#d62728" in card.thumb.styleSheet()) == marked
            assert (f"✗ has {term}" in card.caption.text()) == marked


def test_blend_slider_ends_are_the_two_models(qtbot, panel, app_state, tiny_models):
    query = "a small red square"
    type_query(qtbot, panel, query)
    gallery = app_state.gallery
    assert panel.blend.slider.isEnabled()
    for value, loaded in ((100, tiny_models[1]), (0, tiny_models[0])):
        with qtbot.waitSignal(panel.blend_updated, timeout=EMBED_TIMEOUT,
                              check_params_cb=lambda d, lam=value / 100: d["lam"] == lam) as blocker:
            panel.blend.slider.setValue(value)
        update = blocker.args[0]
        direct = gallery_metrics(loaded, gallery, image_embeddings(loaded, gallery))
        assert update["ono_accuracy"] == pytest.approx(direct["ono_accuracy"])
        assert update["caption_top1"] == pytest.approx(direct["caption_top1"])
        assert update["query"] == query and update["hits"] == panel.results("blend")
        assert_top_k(update["hits"], direct_scores(loaded, gallery, query), 8)
        assert f"{value / 100:.2f}" in panel.columns["blend"].header.text()
        header = panel.columns["blend"].header
        assert (f"caption vs negation <b>{direct['ono_accuracy']:.2f}</b> · top-1 "
                f"<b>{direct['caption_top1']:.2f}</b>" in header.text())
        assert "original-over-negation" in header.toolTip()  # the plain words, explained
    lams, _ = panel.blend.curves["ono_accuracy"].getData()
    assert list(lams) == [0.0, 1.0]

    # a model of another architecture on one side: no blending, and the tooltip says why
    other = dataclasses.replace(tiny_models[1], model_name="another-arch")
    app_state.set_model("right", other)
    assert not panel.blend.slider.isEnabled()
    assert "another-arch" in panel.blend.slider.toolTip()
    qtbot.waitUntil(panel.is_ready, timeout=EMBED_TIMEOUT)  # the new right side re-embeds


def test_results_file_plots_grouped_bars(qtbot, panel, tmp_path):
    results = {"schema": "semclip-eval/1", "benchmark": "shapes", "data": "shapes", "images": None,
               "date": "2025-01-01T00:00:00+00:00", "settings": {"n": 50}, "skipped": {},
               "models": [{"spec": "clip.pt", "identity": "a",
                           "metrics": {"ono_accuracy": 0.5, "caption_top1": 0.25}},
                          {"spec": "semclip.pt", "identity": "b",
                           "metrics": {"ono_accuracy": 0.9, "caption_top1": None}}]}
    path = save_results(tmp_path / "results.json", results)
    assert panel.open_results(path)
    assert panel.results_view.results_error.isHidden()
    first, second = panel.results_view.result_bars
    assert list(first.opts["height"]) == [0.5, 0.25]
    assert list(second.opts["height"]) == [0.9]  # a missing value draws no bar
    assert first.opts["x"][0] < 0 < second.opts["x"][0]  # side by side around metric 0
    ticks = panel.results_view.results_plot.getAxis("bottom")._tickLevels[0]
    assert [label.replace("\n", "_") for _, label in ticks] == ["ono_accuracy", "caption_top1"]
    assert panel.results_view.results_table.item(0, 2).text() == "+0.4000"  # Δ of two models
    assert panel.results_view.results_table.item(1, 1).text() == "—"
    # columns are named by each model's label (here: files written before labels, the spec)
    headers = [panel.results_view.results_table.horizontalHeaderItem(c).text() for c in range(3)]
    assert headers == ["clip.pt", "semclip.pt", "Δ"]
    results["models"][0]["label"] = "clip-baseline-trained-on-negation-rich-captions"
    results["models"][1].update(label="semclip", spec="/long/path/to/runs/semclip/best.pt")
    assert panel.open_results(save_results(tmp_path / "labelled.json", results))
    header = panel.results_view.results_table.horizontalHeaderItem
    assert [header(c).text() for c in range(2)] == [
        "clip-baseline-trained-on-negation-rich-captions", "semclip"]  # whole, not cut
    assert header(1).toolTip() == "semclip\n/long/path/to/runs/semclip/best.pt"

    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    assert not panel.open_results(bad)
    assert panel.results_view.results_error.isVisible() and "broken.json" in panel.results_view.results_error.text()
    results["models"][0]["metrics"]["ono_accuracy"] = "high"
    assert not panel.open_results(save_results(tmp_path / "odd.json", results))
    assert "not a number" in panel.results_view.results_error.text()
    assert not panel.open_results(tmp_path / "missing.json")
    assert panel.open_results(path) and panel.results_view.results_error.isHidden()


def test_folder_gallery_reports_a_corrupt_image(qtbot, panel, tmp_path):
    world = ShapesWorld(seed=0, image_size=64)
    for i in range(5):
        world.item("test", i)["image"].save(tmp_path / f"scene{i}.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with qtbot.waitSignal(panel.embeddings_ready, timeout=EMBED_TIMEOUT):
        assert panel.open_folder(tmp_path)
    assert not panel.status_label.isHidden()
    assert "broken.png" in panel.status_label.text() and "1 of 6" in panel.status_label.text()

    type_query(qtbot, panel, "a red circle without a blue square")
    broken = panel.state.gallery.names.index("broken.png")
    for side in SIDES:
        hits = panel.results(side)
        assert len(hits) == 5 and broken not in {h.index for h in hits}
        assert not any(h.violates for h in hits)  # folder images have no scene labels
        assert "no scene labels" in panel.columns[side].summary.text()
        assert all(c.thumb.pixmap().width() == THUMB for c in panel.cards(side))

    assert not panel.open_folder(tmp_path / "nowhere")
    assert "not found" in panel.status_label.text()


def test_rank_gallery_and_results_bars_without_qt(app_state, tiny_models):
    from engine.model.embed_cache import ImageEmbeddings

    gallery = app_state.gallery
    emb = image_embeddings(tiny_models[0], gallery)
    ok = torch.ones(len(gallery), dtype=torch.bool)
    ok[3] = False
    hits = rank_gallery(tiny_models[0], ImageEmbeddings(emb, ok), gallery, "a star", k=100)
    assert len(hits) == len(gallery) - 1 and 3 not in {h.index for h in hits}
    assert rank_gallery(tiny_models[0], ImageEmbeddings(emb, ok), gallery, "  ", k=5) == []

    bars = results_bars({"models": [{"spec": "a", "metrics": {"x_y": 1, "z": float("nan")}}]})
    assert bars.metrics == ["x_y", "z"] and bars.values == [[1.0, None]]
    assert bars.bars(0) == ([0.0], [1.0], 0.8)


def test_an_example_query_is_one_click_away(qtbot, panel):
    from semclip_gui.compare_bars import EXAMPLE_QUERIES

    qtbot.waitUntil(panel.is_ready, timeout=EMBED_TIMEOUT)
    example = EXAMPLE_QUERIES[1]
    assert f">{example}<" in panel.examples.text()
    with qtbot.waitSignal(panel.results_updated, timeout=EMBED_TIMEOUT,
                          check_params_cb=lambda query: query == example):
        panel.examples.linkActivated.emit(example)  # what a click on the link sends
    assert panel.query_edit.text() == example and panel.results("right")


def test_results_grey_out_from_the_keystroke_until_the_new_ranking_lands(qtbot, panel):
    from semclip_gui.views import is_stale

    qtbot.waitUntil(panel.is_ready, timeout=EMBED_TIMEOUT)
    qtbot.waitUntil(lambda: bool(panel.results("left")) and bool(panel.results("right"))
                    and not panel.results_stale, timeout=EMBED_TIMEOUT)
    assert not is_stale(panel.columns["left"])
    with qtbot.waitSignal(panel.results_updated, timeout=EMBED_TIMEOUT,
                          check_params_cb=lambda query: query == "a blue square"):
        panel.query_edit.setText("a blue square")  # as typing does: debounced
        assert panel.results_stale and panel.computing_label.isVisibleTo(panel)
        assert is_stale(panel.columns["left"]) and is_stale(panel.columns["right"])
    assert not panel.results_stale and not is_stale(panel.columns["left"])
