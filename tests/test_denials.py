"""The Compare tab's red-frame check on what people type: denials with and without "no/not",
pure denials, double negation and exclusives (issue 12, item 6)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from engine.data.galleries import Gallery, shapes_gallery
from engine.data.shapes.world import ShapesWorld
from engine.explore.compare import rank_gallery, violated_terms
from engine.explore.denials import Denial, negated_terms, objects_match, parse_denials, parse_phrase
from engine.model.embed_cache import ImageEmbeddings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import free_queries as fq  # noqa: E402


def obj(shape, colour, size="small", position="left"):
    return {"shape": shape, "colour": colour, "size": size, "position": position}


ALL_RED = [obj("circle", "red", "large", "left"), obj("star", "red", "small", "right")]
RED_AND_BLUE = [obj("circle", "red", "large", "left"), obj("square", "blue", "small", "middle")]
ONLY_SQUARES = [obj("square", "green", "large", "left"), obj("square", "blue", "small", "right")]
ORANGE_TRIANGLE = [obj("triangle", "orange", "large", "middle")]
SCENES = {"all red": ALL_RED, "red and blue": RED_AND_BLUE, "only squares": ONLY_SQUARES,
          "orange triangle": ORANGE_TRIANGLE}


def framed(query: str) -> set[str]:
    """The constructed scenes the Compare tab would frame in red for ``query``."""
    gallery = Gallery(sources=[None] * len(SCENES), names=list(SCENES), objects=list(SCENES.values()))
    terms = negated_terms(query)
    return {name for i, name in enumerate(SCENES) if violated_terms(gallery, i, terms)}


# -- the observed failures: each of these framed nothing or the wrong pictures before --

@pytest.mark.parametrize("query, terms, expected", [
    ("a circle, free of triangles", ["triangles"], {"orange triangle"}),
    ("a shape lacking any blue", ["blue"], {"red and blue", "only squares"}),
    ("orange is nowhere", ["orange"], {"orange triangle"}),
    ("green is absent", ["green"], {"only squares"}),
    ("anything but a square", ["square"], {"red and blue", "only squares"}),
    ("every colour except red", ["red"], {"all red", "red and blue"}),
    ("stars missing", ["stars"], {"all red"}),
    ("a star-free picture", ["star"], {"all red"}),
    ("circles are not present", ["circles"], {"all red", "red and blue"}),
    ("any shape but a cross", ["cross"], set()),
])
def test_denials_without_no_or_not(query, terms, expected):
    assert negated_terms(query) == terms
    assert framed(query) == expected


@pytest.mark.parametrize("query, terms, expected", [
    ("nothing that isn't red", ["something other than red"], {"red and blue", "only squares",
                                                               "orange triangle"}),
    ("no shape that is not a square", ["something other than square"],
     {"all red", "red and blue", "orange triangle"}),
    ("no circle that is not blue", ["circle other than blue"], {"all red", "red and blue"}),
    ("not without a red shape", [], set()),
    ("it is not true that there is no star", [], set()),
    ("never lacking squares", [], set()),
    ("there isn't a shape that isn't blue", ["something other than blue"],
     {"all red", "red and blue", "only squares", "orange triangle"}),
])
def test_double_negation_requires_instead_of_denying(query, terms, expected):
    assert negated_terms(query) == terms
    assert framed(query) == expected
    assert "all red" not in framed("nothing that isn't red")  # red pictures are what it asks for


@pytest.mark.parametrize("query, expected", [
    ("only squares", {"all red", "red and blue", "orange triangle"}),
    ("squares only", {"all red", "red and blue", "orange triangle"}),
    ("nothing but red shapes", {"red and blue", "only squares", "orange triangle"}),
    ("every shape is red", {"red and blue", "only squares", "orange triangle"}),
    ("all of the objects are large", {"all red", "red and blue", "only squares"}),
    ("just one circle", set()),  # a count, not an exclusive
    ("exclusively circles and squares", {"all red", "orange triangle"}),
    ("the only shape is a triangle", {"all red", "red and blue", "only squares"}),
    ("an orange triangle on its own", {"all red", "red and blue", "only squares"}),
    ("nothing besides red things", {"red and blue", "only squares", "orange triangle"}),
    ("a red circle with no other shapes", {"all red", "red and blue", "only squares", "orange triangle"}),
    ("a red circle with no other colours", {"red and blue", "only squares", "orange triangle"}),
    ("a green square, nothing more", {"all red", "red and blue", "only squares", "orange triangle"}),
    # said of the objects with a pronoun (bench/free_queries_probe.json framed nothing for these)
    ("all of them are stars", {"all red", "red and blue", "only squares", "orange triangle"}),
    ("they're all red", {"red and blue", "only squares", "orange triangle"}),
    ("each of them is a square", {"all red", "red and blue", "orange triangle"}),
    ("both are squares", {"all red", "red and blue", "orange triangle"}),
    ("they are either red or blue", {"only squares", "orange triangle"}),
])

def test_exclusives_frame_every_other_object(query, expected):
    assert framed(query) == expected


@pytest.mark.parametrize("query", [
    "no more than two shapes", "not more than one circle", "not only circles", "not just squares",
    "all except one are red", "a scene with no other colours", "no shapes to the left of the circle",
    # a denied universal allows what it names: red shapes are fine, so is a scene of them
    "not every shape is red", "not all of them are squares", "they aren't all circles",
])
def test_counts_additions_and_relations_frame_nothing(query):
    """Not denials of a thing, or about two objects at once: framing anything would be a guess."""
    assert framed(query) == set()


@pytest.mark.parametrize("query, terms", [
    ("nothing orange", ["orange"]),
    ("no circles at all", ["circles"]),
    ("there is nothing red here", ["red"]),
    ("not one triangle to be seen", ["triangle"]),
    ("you won't find a diamond here", ["diamond"]),
    ("every shape is not red", ["red"]),  # framed every picture but the red ones before
    ("they are all not circles", ["circles"]),
    ("triangles: none", ["triangles"]),  # a frame of the training language
    ("circles? none", ["circles"]),
    ("green is not present", ["green"]),
])
def test_pure_denials(query, terms):
    assert negated_terms(query) == terms


@pytest.mark.parametrize("query, terms", [
    ("a small yellow star that is not on the left", ["small yellow star on the left"]),
    ("a cross that is not green", ["green cross"]),
    ("a triangle, but not a blue one", ["blue triangle"]),
    ("a star, not yellow", ["yellow star"]),
    ("a red circle, not a blue square", ["blue square"]),
    ("a big blue circle, not small", ["small blue circle"]),
    ("a circle not on the right", ["circle on the right"]),
    ("a blue star rather than a red one", ["red star"]),
    ("there is not any circle", ["circle"]),
    ("neither a star nor a cross", ["star", "cross"]),
    ("no shape is yellow", ["yellow"]),
    ("no object here is a circle", ["circle"]),
    ("only squares and no circles", ["something other than squares", "circles"]),
    ("a red circle and a blue square", []),
    ("a circle just left of a square", []),
])
def test_what_a_denial_is_about(query, terms):
    assert negated_terms(query) == terms


@pytest.mark.parametrize("phrase, expected", [
    ("scarlet orbs", {"colour": "red", "shape": "circle"}),  # survey colour, hand shape word
    ("a kelly green delta", {"colour": "green", "shape": "triangle"}),
    ("tangerine things", {"colour": "orange"}),
    ("a cobalt checker", {"colour": "blue", "shape": "square"}),
])
def test_the_red_frame_check_knows_every_colour_and_shape_word_training_uses(phrase, expected):
    desc = parse_phrase(phrase)
    assert desc is not None and dict(desc.required) == expected and not desc.excluded


def test_labels_read_back_to_the_same_check():
    for query in ("only squares", "no circle that isn't blue", "a crimson ball but no navy block"):
        for denial in parse_denials(query):
            again = Denial.from_label(denial.label)
            assert again == denial
            for scene in SCENES.values():
                assert objects_match(scene, denial.label) is denial.violated_by(scene)
    assert not objects_match(ALL_RED, "dog") and not objects_match(ALL_RED, "something other than dog")


@pytest.mark.parametrize("name", ["free_queries.json", "free_queries_recheck.json",
                                  "free_queries_probe.json"])
def test_red_frames_agree_with_the_free_query_sets_on_every_test_scene(name):
    """Every hand-written query of the bench's query files: the framed scenes are exactly those
    showing its denied thing (none for queries that deny nothing)."""
    scenes = [[o.__dict__ for o in ShapesWorld(seed=0).scene("test", i).objects] for i in range(500)]
    wrong = []
    for q in fq.load_queries(fq.QUERY_FILE.with_name(name)):
        terms = negated_terms(q.query)
        marks = [any(objects_match(s, t) for t in terms) for s in scenes]
        if marks != [bool(q.denied and q.denied(s)) for s in scenes]:
            wrong.append((q.query, terms))
    assert not wrong


PHRASING_SETS = {"red_frame_phrasings.json": 235, "red_frame_phrasings_2.json": 222,
                 "red_frame_phrasings_3.json": 215, "red_frame_phrasings_4.json": 198,
                 "red_frame_phrasings_5.json": 220, "red_frame_phrasings_6.json": 193}
TEST_SCENES = [[o.__dict__ for o in ShapesWorld(seed=0).scene("test", i).objects] for i in range(500)]


def phrasings(name: str) -> list[dict]:
    return json.loads((Path(__file__).with_name("data") / name).read_text(encoding="utf-8"))


def frames_agree(row: dict) -> bool:
    """Whether the check frames exactly the test scenes that show what the query denies."""
    from engine.data.shapes.query import parse_predicate

    terms = negated_terms(row["query"])
    marks = [any(objects_match(s, t) for t in terms) for s in TEST_SCENES]
    denied = parse_predicate(row["denied"]) if row["denied"] else None
    expected = ([False] * len(TEST_SCENES) if row.get("frames_nothing")
                else [bool(denied and denied(s)) for s in TEST_SCENES])
    return marks == expected


@pytest.mark.parametrize("name, size", PHRASING_SETS.items())
def test_red_frames_agree_with_phrasings_written_by_others(name, size):
    """tests/data/red_frame_phrasings*.json: queries six reviewers wrote as a class would type
    them, each with the predicate of what it denies (null: it denies nothing), without reading
    the check (bench/RESULTS.md section 18). Measured before each round's fixes: 20 of the first
    235 disagreed ("crosses don't show up", "can't be without orange"), 18 of the next 222
    ("nothing non-red" framed the red pictures), 12 of the next 215 ("could you just find a plus
    sign?" framed nearly every picture), 7 of the next 198, none of them framing a wrong picture,
    9 of the next 220, written against the code as it stood ("none of the boxes can be huge"
    framed every big shape), and 12 of the last 193, 10 of them misspellings ("no yelow stars"
    framed every star). A relation between two objects ("no circle left of a
    square") and a colour the world does not draw ("olive") are unreadable by design and must
    frame nothing rather than guess."""
    rows = phrasings(name)
    assert len(rows) == size and len({r["query"] for r in rows}) == size
    wrong = [(r["kind"], r["query"], negated_terms(r["query"])) for r in rows
             if not r.get("known_miss") and not frames_agree(r)]
    assert not wrong


@pytest.mark.xfail(strict=True, reason="a pronoun for an earlier phrase, or 'the two of them are both X'")
@pytest.mark.parametrize("row", [pytest.param(r, id=r["query"]) for name in PHRASING_SETS
                                 for r in phrasings(name) if r.get("known_miss")])
def test_known_misses_of_the_phrasing_sets(row):
    """The misses left in the reviewers' sets: a strict xfail, so mending one fails this test."""
    assert frames_agree(row)


_GLUE = {"something", "other", "than", "or", "a", "shape", "on", "in", "at", "the"}


def test_every_label_of_the_phrasing_sets_is_made_of_words_the_check_reads():
    """The card under a framed picture reads "✗ has big orange box", never "✗ has white show me
    a triangle" (a reviewer's finding): each word of a label is a world word, a generic object
    word or the glue of "something other than ... or ..." / "on the left"."""
    from engine.explore.denials import _GENERIC, _PHRASES, VOCABULARY

    multi = {w for phrase in _PHRASES for w in phrase.split()}
    odd = set()
    for name in PHRASING_SETS:
        for row in phrasings(name):
            for label in negated_terms(row["query"]):
                for word in label.split():
                    bare = word[4:] if word.startswith("non-") else word
                    if not (bare in VOCABULARY or bare in _GENERIC or bare in multi or word in _GLUE
                            or bare.rsplit("-", 1)[-1] in VOCABULARY):
                        odd.add((row["query"], label))
    assert not odd


@pytest.mark.parametrize("query", [
    "drop me a red star", "skip to the next one", "find the missing star", "I'm missing a star",
    "apart from stars, I also want circles", "a blue circle, no?", "it's a circle, no",
    "they are mostly red", "all kinds of shapes", "a star free to move", "feel free to pick a red one",
    "just find a plus sign", "don't forget the star", "without anything else", "I don't want anything",
])
def test_everyday_talk_that_denies_nothing_frames_nothing(query):
    """A reviewer's list of things a class says that the new patterns first read as denials."""
    assert framed(query) == set()


@pytest.mark.parametrize("query, expected", [
    ("only show me circles", {"all red", "red and blue", "only squares", "orange triangle"}),
    ("all circles are red", set()),  # every circle of the four scenes is red
    ("a red circle, a blue square, that's all", {"all red", "only squares", "orange triangle"}),
    ("not every shape is red and there are no triangles", {"orange triangle"}),
])
def test_requests_universals_and_lists_frame_what_they_rule_out(query, expected):
    assert framed(query) == expected


@pytest.mark.parametrize("query, terms", [
    ("none of the boxes can be huge", ["huge boxes"]),  # framed every big shape before
    ("no shapes at all in the middle", ["shapes in the middle"]),
    ("a triangle, no stars no kites", ["stars", "kites"]),
    ("take away the kites", ["kites"]),
    ("everything's on the left", ["something other than on the left"]),
    ("no olive pyramids on the right", []),  # olive is no colour of the world: nothing to frame
])
def test_the_fifth_writers_misses(query, terms):
    assert negated_terms(query) == terms


@pytest.mark.parametrize("query, terms", [
    ("no yelow stars", ["yellow stars"]),  # framed every star while "yelow" was dropped
    ("a sqaure that isn't blue", ["blue square"]), ("nothign red", ["red"]),
    ("only cirlces", ["something other than circles"]), ("without diamons", ["diamond"]),
    ("every shape is bleu", ["something other than blue"]),
])
def test_a_misspelt_world_word_is_read_as_the_word(query, terms):
    assert negated_terms(query) == terms


@pytest.mark.parametrize("word", ["black", "never", "sight", "around", "purely", "range", "read",
                                  "larger", "smalt", "bold", "stare"])
def test_everyday_words_near_a_world_word_are_not_corrected(word):
    """One edit from "block", "every", "right", "round"...: real words, kept as typed."""
    from engine.explore.denials import _spelled

    assert _spelled(word) == word


@pytest.mark.parametrize("query, label", [
    ("I don't want to see any stars", "stars"), ("zero circles please", "circles"),
    ("no trace of navy", "navy"), ("each shape is on the left", "something other than on the left"),
    ("a red star but no plus sign please", "plus sign"),
    ("a star, not a golden one", "golden star"), ("i dont want anything yellow", "yellow"),
    ("a big box, not orange", "big orange box"), ("nothing in the middle", "a shape in the middle"),
    ("no small ones", "small shapes"), ("only big ones", "something other than big shapes"),
])
def test_labels_keep_only_the_words_the_check_reads(query, label):
    """The card says "✗ has stars", not "✗ has want to see any stars"."""
    assert negated_terms(query) == [label]


@pytest.mark.parametrize("query, terms", [
    ("no circles, squares or stars", ["circles", "squares", "stars"]),
    ("no red, a blue circle", ["red"]),  # a list of denials only when it ends in or/nor/and
    ("no red or blue squares", ["red squares", "blue squares"]),
    ("no red stars or blue ones", ["red stars", "blue stars"]),
    ("no stars or crosses", ["stars", "crosses"]),
])
def test_alternatives_share_the_noun_they_name(query, terms):
    assert negated_terms(query) == terms


@pytest.mark.parametrize("query", ["not sure", "no worries, a red circle", "no circle left of a square"])
def test_what_names_no_checkable_object_gets_no_label(query):
    """A header reading 'show what the query negates ("sure")' would be noise."""
    assert negated_terms(query) == []


def test_a_non_word_denies_what_is_not_it():
    """"nothing non-red" denies the pictures with a shape that is not red; read as "red" it
    framed exactly the wrong ones."""
    assert framed("nothing non-red") == {"red and blue", "only squares", "orange triangle"}
    assert framed("no non-square shapes") == {"all red", "red and blue", "orange triangle"}


def test_the_compare_ranking_marks_what_the_query_rules_out(tiny_models):
    gallery = shapes_gallery(n=24, split="test")
    emb = torch.nn.functional.normalize(torch.randn(24, tiny_models[0].embed_dim), dim=-1)
    embeddings = ImageEmbeddings(emb, torch.ones(24, dtype=torch.bool), [], 0, 24)
    for query, shows in (("only circles", lambda objs: any(o["shape"] != "circle" for o in objs)),
                         ("nothing that isn't red", lambda objs: any(o["colour"] != "red" for o in objs)),
                         ("a picture free of squares", lambda objs: any(o["shape"] == "square" for o in objs))):
        hits = rank_gallery(tiny_models[0], embeddings, gallery, query, k=24)
        assert {h.index for h in hits if h.violates} == {i for i in range(24) if shows(gallery.objects[i])}
