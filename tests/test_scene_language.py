"""The rich scene language: every sentence is true (or, for the hard negative, false) of its
scene, as an evaluator that shares no code with the wording says."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest

from engine.data.shapes.language import (KINDS, PARTIAL_SHARE, SHAPE_WORDS, load_held_out,
                                         normalised, statement_triple)
from engine.data.shapes.query import parse_predicate
from engine.data.shapes.world import COLOURS, SHAPES, ShapesWorld

FREE_QUERIES = Path(__file__).resolve().parent.parent / "bench" / "free_queries.json"
FREE_QUERIES_UNSEEN = FREE_QUERIES.with_name("free_queries_unseen.json")
NO_NOT = re.compile(r"\b(no|not|isn't|n't|none|nothing|never)\b")


def draws(n_scenes: int = 1500, per_scene: int = 2, held_out=frozenset()):
    world = ShapesWorld(seed=0)
    for split in ("train", "test"):
        for index in range(n_scenes):
            scene = world.scene(split, index)
            rng = random.Random(f"{split}/{index}")
            for _ in range(per_scene):
                kind, triple = statement_triple(scene.objects, rng, held_out=held_out)
                yield scene, kind, triple


def test_captions_and_paraphrases_are_true_and_negations_false_of_their_scene():
    kinds = Counter()
    for scene, kind, (true, paraphrase, false) in draws():
        objects = [asdict(o) for o in scene.objects]
        assert parse_predicate(true.predicate)(objects), (kind, true, objects)
        assert parse_predicate(paraphrase.predicate)(objects), (kind, paraphrase, objects)
        assert not parse_predicate(false.predicate)(objects), (kind, false, objects)
        assert false.text != true.text
        kinds[kind] += 1
    assert set(kinds) == set(KINDS)  # every kind is said of some scenes
    assert min(kinds.values()) >= 100, kinds


def test_denials_come_with_and_without_no_or_not():
    denials = [t.text for _, kind, (t, _, _) in draws(600)
               if kind in ("pure_denial", "description_with_denial")]
    without = [text for text in denials if not NO_NOT.search(text)]
    assert 0.3 <= len(without) / len(denials) <= 0.7, len(without) / len(denials)
    assert any("free of" in t for t in without) and any("absent" in t for t in without)
    assert any("lacking" in t for t in without) and any("missing" in t for t in without)


def test_objects_are_also_named_by_one_attribute_and_in_bare_plurals():
    """"a navy shape and no circles", "squares but no triangles": people often name an object by
    its colour or its shape alone, and say "squares" for some squares."""
    described = [(t.text, t.predicate) for _, kind, (t, _, _) in draws(600)
                 if kind in ("plain", "description_with_denial")]
    clauses = [c for _, p in described for c in re.findall(r"some\(([^)]*)\)", p)]
    colour_only = [c for c in clauses if not any(s in c for s in SHAPES)]
    shape_only = [c for c in clauses if not any(k in c for k in COLOURS)]
    # PARTIAL_SHARE of the objects, half by colour alone and half by shape alone
    for alone in (colour_only, shape_only):
        assert 0.5 * PARTIAL_SHARE / 2 <= len(alone) / len(clauses) <= 1.5 * PARTIAL_SHARE / 2
    bare_plural = re.compile(r"^(?:" + "|".join(p for _, p in SHAPE_WORDS["square"]) + r")\b")
    assert any(bare_plural.match(text) for text, _ in described)


def test_the_false_twin_keeps_the_frame_of_the_true_statement():
    """Hard negatives: a pure denial and its false twin differ only in what they deny."""
    for _, kind, (true, _, false) in draws(300):
        if kind == "pure_denial":
            a, b = true.text.split(), false.text.split()
            same = next(i for i, (x, y) in enumerate(zip(a + [None], b + [None])) if x != y)
            same += next(i for i, (x, y) in enumerate(zip(a[::-1] + [None], b[::-1] + [None]))
                         if x != y)
            # the frame is kept; only the denied noun phrase differs: a colour of up to three
            # words and a shape of up to two ("robin egg blue plus marks")
            assert same >= 1 and len(a) - same <= 5 and len(b) - same <= 5, (true.text, false.text)


def test_held_out_sentences_are_never_produced():
    held_out = load_held_out(FREE_QUERIES)
    free = {normalised(t.text) for _, _, triple in draws() for t in triple}
    assert free & held_out, "the language says some bench queries when not told otherwise"
    kept_out = {normalised(t.text) for _, _, triple in draws(held_out=held_out) for t in triple}
    assert not kept_out & held_out


def test_a_world_with_the_rich_language_uses_it_and_one_without_is_unchanged():
    plain, rich = ShapesWorld(seed=3), ShapesWorld(seed=3, rich_language_prob=1.0)
    before = [ShapesWorld(seed=3).item("train", i, render=False) for i in range(50)]
    assert [plain.item("train", i, render=False) for i in range(50)] == before
    items = [rich.item("train", i, render=False) for i in range(300)]
    assert sum(it["caption"] != b["caption"] for it, b in zip(items, before)) > 40
    assert any(NO_NOT.search(it["caption"]) is None and "free of" in it["caption"] for it in items)


def test_load_held_out_reads_json_and_text_and_names_a_bad_file(tmp_path):
    (tmp_path / "q.json").write_text(json.dumps([{"query": "Only  Squares."}, "nothing red"]))
    assert load_held_out(tmp_path / "q.json") == {"only squares", "nothing red"}
    (tmp_path / "q.txt").write_text("A Red Circle\n\n  two shapes \n")
    assert load_held_out(tmp_path / "q.txt") == {"a red circle", "two shapes"}
    (tmp_path / "bad.json").write_text('[\n"ok",\n{"query": 3}\n]')
    with pytest.raises(ValueError, match=r"bad.json: entry 2"):
        load_held_out(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text('[\n"ok",\n')
    with pytest.raises(ValueError, match=r"broken.json: line 3"):
        load_held_out(tmp_path / "broken.json")


# The words bench/free_queries_unseen.json is written in: no training sentence may use them (or
# a hyphenated compound of them), so that the file measures words the models never saw.
UNSEEN_WORDS = {"alizarin", "cinnabar", "lapis", "malachite", "jonquil", "tyrian", "cadmium",
                "frosty", "smalt", "sulphur", "verdigris", "satsuma", "ladybird", "byzantium",
                "pellet", "puck", "slab", "pennant", "harlequin", "medic", "symbol", "bead",
                "button", "colossal", "mammoth", "dinky", "teensy", "figure", "hue", "tinted"}


def test_the_lexicon_is_broad_and_never_says_the_unseen_benchs_words():
    import sys

    from engine.data.shapes.language import SHAPE_WORDS, SIZE_WORDS, THING, spoken_colour_words
    from engine.paths import PROJECT_ROOT

    sys.path.insert(0, str(PROJECT_ROOT))
    from bench.free_queries_by_words import training_vocabulary
    from bench.unseen_phrasings import WORDS as REWRITES

    def tokens(phrases):
        return {t for phrase in phrases for t in re.split(r"[ -]+", phrase.lower()) if t}

    unseen_text = " ".join(q["query"] for q in json.loads(FREE_QUERIES_UNSEEN.read_text()))
    assert UNSEEN_WORDS <= tokens([unseen_text]), UNSEEN_WORDS - tokens([unseen_text])
    # bench/unseen_phrasings.py rewrites captions in the same words (beside the canonical
    # "star" and "diamond" its phrases keep: "sea star", "harlequin diamond")
    rewritten = tokens([alt for alts in REWRITES.values() for alt in alts]) - {"sea", "star", "diamond"}
    assert rewritten <= UNSEEN_WORDS, sorted(rewritten - UNSEEN_WORDS)
    lexicon = tokens([w for words in spoken_colour_words().values() for w in words]
                     + [w for forms in SHAPE_WORDS.values() for pair in forms for w in pair]
                     + [w for words in SIZE_WORDS.values() for w in words]
                     + [w for pair in THING for w in pair])
    assert len(lexicon) >= 400  # hand words and survey names: what a class types
    # the everyday words a class types are taught, not left to the text tower's guess
    assert {"ball", "block", "wedge", "lozenge", "plus", "navy", "violet", "gold", "huge"} <= lexicon
    assert not UNSEEN_WORDS & lexicon, sorted(UNSEEN_WORDS & lexicon)
    said = tokens(training_vocabulary(1500))
    assert not UNSEEN_WORDS & said, sorted(UNSEEN_WORDS & said)
