"""The demo models the app opens with: shipped, small, loadable offline, and showing the effect."""

from __future__ import annotations

import json

import pytest

from engine.eval.run import run_evaluation
from engine.model.loading import load_model
from engine.paths import ASSETS_DIR
from semclip_gui.demo import DEMO_NAMES, SHIPPED_DIR, shipped_demo_specs

MAX_SHIPPED_MB = 20


SHAPES_MODELS = (*DEMO_NAMES, "clip-same-data")  # the pair the app opens with, and CLIP+data


def test_the_shapes_models_ship_as_small_deltas_with_sidecars():
    specs = shipped_demo_specs()
    assert specs is not None, f"demo models missing from {SHIPPED_DIR}"
    for name in SHAPES_MODELS:
        path = SHIPPED_DIR / f"{name}.pt"
        assert path.stat().st_size < MAX_SHIPPED_MB * 2 ** 20
        meta = json.loads(path.with_suffix(".json").read_text())
        # EfficientNet-Lite0 (PyPI, ImageNet) + all-MiniLM-L6-v2: both towers ship in packages
        assert meta["format"] == "semclip-delta/1" and meta["base_spec"] == "semclip-photo-minilm"
        assert meta["train_config"]["name"] == name
    configs = {name: json.loads((SHIPPED_DIR / f"{name}.json").read_text())["train_config"]
               for name in SHAPES_MODELS}
    # what each saw: CLIP+data has SemCLIP's data, the baseline captions without the rich language
    assert configs["semclip"]["shapes_rich_language_prob"] == 0.5
    assert configs["clip-same-data"]["shapes_rich_language_prob"] == 0.5
    assert configs["clip-baseline"]["shapes_rich_language_prob"] == 0.0
    assert all(c["mask_false_negatives"] for c in configs.values())
    assert SHIPPED_DIR.parent == ASSETS_DIR


@pytest.fixture(scope="module")
def demo_pair():
    left, right = shipped_demo_specs()
    return load_model(left), load_model(right)


@pytest.fixture(scope="module")
def clip_same_data():
    return load_model(str(SHIPPED_DIR / "clip-same-data.pt"))


# Where a run happened, not what it learnt: the fields a shipped sidecar may differ in from its preset.
RUN_PLACE = {"out_dir", "threads", "runs_root", "run_name", "shapes_held_out_queries", "workers",
             "device", "precision", "resume", "overwrite", "report_to"}


def test_the_shapes_models_are_what_the_shapes_demo_preset_trains():
    """Every recipe field of a shipped model's sidecar equals its ``--preset shapes-demo``
    member's, so that a change to the recipe cannot ship with models trained on the old one."""
    from engine.train.presets import preset

    for cfg in preset("shapes-demo"):
        shipped = json.loads((SHIPPED_DIR / f"{cfg.name}.json").read_text())["train_config"]
        recipe = json.loads(cfg.to_json())  # as the sidecar stores it (tuples as lists)
        differ = {k: (shipped.get(k), v) for k, v in recipe.items()
                  if k not in RUN_PLACE and shipped.get(k) != v}
        assert not differ, (cfg.name, differ)
        assert (shipped["shapes_held_out_queries"] is None) == (cfg.shapes_held_out_queries is None)


def test_semclip_demo_prefers_captions_over_their_negations_where_clip_does_less(demo_pair):
    table = run_evaluation("shapes", "0", None, list(demo_pair), n=100, use_cache=False)
    clip, semclip = (m["metrics"] for m in table["models"])
    # Recorded on the 500-scene test split in the README's table; 100 scenes here for speed.
    assert semclip["ono_accuracy"] >= 0.95
    assert semclip["ono_accuracy"] - clip["ono_accuracy"] >= 0.15
    # true vs false negations of the same picture: CLIP's affirmation bias, SemCLIP's grounding
    assert semclip["negation_grounding"] >= 0.9
    assert semclip["negation_grounding"] - clip["negation_grounding"] >= 0.15
    # Retrieval against CLIP trained on the template captions alone, the test split's own
    # wording: 0.642 vs 0.672 on 500 scenes (the 0.03, at its limit), 0.86 vs 0.90 on
    # these 100, where a caption is 0.01; against CLIP on the very same data, next test.
    assert semclip["caption_top1"] >= clip["caption_top1"] - 0.05
    assert semclip["caption_content_top1"] >= 0.8  # an image tower that sees shape


def test_against_clip_on_its_very_data_semclip_keeps_retrieval_and_wins_negation(demo_pair,
                                                                                  clip_same_data):
    """Same data, only the loss differs: the template figures the issue asks to keep, on the
    issue's 500 test scenes (on 100, a 0.03 margin is three captions: the shipped pair reads
    0.86 vs 0.87 there and 0.642 vs 0.630 on 500)."""
    table = run_evaluation("shapes", "0", None, [clip_same_data, demo_pair[1]], n=500,
                           use_cache=False)
    clip, semclip = (m["metrics"] for m in table["models"])
    assert semclip["ono_accuracy"] >= 0.95 and semclip["ono_accuracy"] - clip["ono_accuracy"] >= 0.15
    assert semclip["caption_top1"] >= clip["caption_top1"] - 0.03


def test_on_free_typed_denials_semclip_reads_what_clip_affirms(demo_pair):
    """bench/free_queries.py's hand-written queries (never training sentences) on a 200-scene
    gallery, ranked through the Compare tab's path. Recorded on 500 scenes in the README; here:
    CLIP p@10 0.36 on pure denials ("nothing orange") with 64% of its top-10 showing the denied
    thing, SemCLIP 0.91 with 9%."""
    import sys

    from engine.data.galleries import shapes_gallery
    from engine.paths import PROJECT_ROOT

    sys.path.insert(0, str(PROJECT_ROOT))
    from bench import free_queries as fq

    models = dict(zip(("CLIP", "SemCLIP"), demo_pair))
    summary = fq.evaluate(models, shapes_gallery(n=200, split="test"), fq.load_queries())["summary"]
    clip, semclip = (summary["pure_denial"][m] for m in models)
    assert semclip["p@10"] >= clip["p@10"] + 0.3
    assert semclip["denied@10"] <= clip["denied@10"] - 0.3
    for category in ("denial_not", "denial_other", "all"):
        assert summary[category]["SemCLIP"]["p@10"] >= summary[category]["CLIP"]["p@10"] + 0.08, category


def test_demo_semclip_projection_is_the_trained_one(demo_pair):
    from engine.explore.projection import projection_for

    clip, semclip = demo_pair
    V = projection_for(semclip)
    assert V.shape == (semclip.sidecar["loss_config"]["n_projections"], semclip.embed_dim)


def test_compare_opens_on_a_query_where_the_demo_columns_differ_visibly(demo_pair):
    """The Compare tab's opening query, ranked as the tab ranks it (the default gallery, top 8):
    CLIP's column shows the denied colour in most cards, SemCLIP's in at most two; in every
    example query CLIP's column shows the denied thing in at least three cards more."""
    from engine.data.galleries import shapes_gallery
    from engine.explore.compare import count_violations, rank_models
    from engine.explore.search import embed_gallery
    from semclip_gui.compare_bars import DEFAULT_QUERY, EXAMPLE_QUERIES

    def result(generator):
        while True:
            try:
                next(generator)
            except StopIteration as done:
                return done.value

    gallery = shapes_gallery(n=200, split="test")
    models = dict(zip(("left", "right"), demo_pair))
    embeddings = {side: result(embed_gallery(m, gallery)) for side, m in models.items()}
    frames = {}
    for query in EXAMPLE_QUERIES:
        ranked = rank_models(models, embeddings, gallery, query, 8)
        frames[query] = count_violations(ranked["left"]), count_violations(ranked["right"])
    assert DEFAULT_QUERY in EXAMPLE_QUERIES
    clip, semclip = frames[DEFAULT_QUERY]
    assert clip >= 5 and semclip <= 2, (DEFAULT_QUERY, clip, semclip)
    assert all(clip >= semclip + 3 for clip, semclip in frames.values()), frames
