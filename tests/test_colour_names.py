"""The xkcd colour survey's names, sorted onto the shapes world's colours."""

from __future__ import annotations

import pytest

from engine.data.shapes.colour_names import read_survey, survey_names, world_colour
from engine.data.shapes.language import COLOUR_WORDS, spoken_colour_words
from engine.data.shapes.world import COLOURS


def test_the_survey_file_holds_all_949_names_with_their_rgb():
    survey = read_survey()
    assert len(survey) == 949
    assert survey["red"] == (0xe5, 0x00, 0x00) and survey["tangerine"] == (0xff, 0x94, 0x08)


@pytest.mark.parametrize("name, colour", [
    ("scarlet", "red"), ("crimson", "red"), ("tangerine", "orange"), ("emerald", "green"),
    ("kelly green", "green"), ("lipstick red", "red"), ("purplish", "purple"),
    ("orangeish", "orange"), ("yellowish", "yellow"), ("royal blue", "blue"),
    ("canary", "yellow"), ("ice", "white"),
    # not clearly one world colour: another colour, a mixture, a shade the world does not draw
    ("pinkish red", ""), ("blue/purple", ""), ("greenish yellow", ""), ("dark yellow", ""),
    ("navy", ""), ("teal", ""), ("brown", ""), ("cement", ""), ("eggshell", ""), ("grey", ""),
    ("pale blue", ""),
])
def test_a_name_joins_a_world_colour_only_when_it_clearly_is_one(name, colour):
    assert world_colour(name, read_survey()[name]) == colour


def test_the_rich_language_says_each_colour_with_its_hand_words_and_the_survey_names():
    spoken = spoken_colour_words()
    assert set(spoken) == set(COLOURS)
    for colour, words in spoken.items():
        assert words[0] == colour  # the canonical word stays first (CANONICAL_SHARE)
        assert set(COLOUR_WORDS[colour]) <= set(words)
        assert set(survey_names()[colour]) <= set(words)
        assert len(words) == len(set(words))
    assert sum(len(v) for v in survey_names().values()) >= 200
    assert all(colour not in survey_names()[colour] for colour in COLOURS)
