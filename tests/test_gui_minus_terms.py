"""The Compare tab's third scoring: the "subtract “-term” words" toggle, driven as a user does."""

from __future__ import annotations

from test_gui_compare import assert_top_k, image_embeddings, panel, type_query  # noqa: F401

from engine.explore.denials import objects_match
from engine.explore.minus_terms import subtract_terms
from engine.model.encoding import embed_texts
from semclip_gui.state import SIDES

QUERY = "a red circle -white star"


def test_toggle_scores_with_the_minus_terms_subtracted(qtbot, panel, app_state, tiny_models):  # noqa: F811
    gallery = app_state.gallery
    panel.k_spin.setValue(len(gallery))
    assert panel.subtract_check.text() == "subtract “-term” words"
    assert panel.subtract_check.isVisible() and not panel.subtract_check.isChecked()
    type_query(qtbot, panel, QUERY)
    images = {side: image_embeddings(loaded, gallery) for side, loaded in zip(SIDES, tiny_models)}
    for side, loaded in zip(SIDES, tiny_models):  # off: the whole text, as typed
        whole = embed_texts(loaded.model, loaded.tokenizer, [QUERY])
        assert_top_k(panel.results(side), (whole @ images[side].T)[0], len(gallery))
        assert "scored as" not in panel.columns[side].summary.text()

    with qtbot.waitSignal(panel.results_updated, timeout=10_000):
        panel.subtract_check.click()
    shows_white_star = {i for i in range(len(gallery))
                         if objects_match(gallery.objects[i], "white star")}
    assert shows_white_star  # the check below is not vacuous
    for side, loaded in zip(SIDES, tiny_models):
        parts = embed_texts(loaded.model, loaded.tokenizer, ["a red circle", "white star"])
        expected = subtract_terms(parts[0], parts[1:]) @ images[side].T
        hits = panel.results(side)
        assert_top_k(hits, expected, len(gallery))
        # "-white star" denies a white star just as "no white star" would
        assert {h.index for h in hits if h.violates} == shows_white_star
        summary = panel.columns[side].summary.text()
        assert "scored as “a red circle” − “white star”" in summary
        assert f"{len(shows_white_star)} of {len(gallery)}" in summary

    with qtbot.waitSignal(panel.results_updated, timeout=10_000):
        panel.subtract_check.click()  # off again: back to the plain embedding
    whole = embed_texts(tiny_models[0].model, tiny_models[0].tokenizer, [QUERY])
    assert_top_k(panel.results(SIDES[0]), (whole @ images[SIDES[0]].T)[0], len(gallery))
