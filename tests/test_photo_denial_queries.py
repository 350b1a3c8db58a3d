"""bench/photo_denial_queries.py: its queries, pairs and top-10 shares, checked by hand."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.photo_denial_queries import (DENIAL_FRAMES, PLAIN_FRAME, object_pairs,  # noqa: E402
                                        query, top10_scores)


def test_queries_use_the_words_people_type_and_frames_training_never_uses():
    from engine.data.photo_language import APPENDED_FRAMES, STANDALONE_FRAMES

    assert query(DENIAL_FRAMES[0], "dog", "person") == "a dog but no people in sight"
    assert query(DENIAL_FRAMES[1], "snow", "dog") == "snow, without any dogs"
    assert query(PLAIN_FRAME, "person", "dog") == "a picture of a person"
    training = {f.replace("{caption}", "{a_y}").replace("{a_x}", "{x}")
                for pair in APPENDED_FRAMES + STANDALONE_FRAMES for f in pair}
    for frame in DENIAL_FRAMES:
        assert frame not in training
        assert not any(f.replace("{a_y}", "") in frame for f in training if "{a_y}" in f)


def test_pairs_need_photos_with_both_and_photos_with_only_the_shown_object():
    both = [frozenset({"dog", "person"})] * 5
    dog_alone = [frozenset({"dog"})] * 10
    assert object_pairs(both + dog_alone) == [("dog", "person")]  # not (person, dog): no person alone
    assert object_pairs(both[:4] + dog_alone) == []  # 4 photos with both are too few


def test_top10_shares_by_hand():
    shows = [frozenset({"dog"}), frozenset({"dog", "person"}), frozenset({"person"}), frozenset()]
    # top: dog alone (right), dog with person (shows the denied), person, nothing
    assert top10_scores([0, 1, 2, 3], shows, "dog", "person") == (0.25, 0.5)
    assert top10_scores([3, 3], shows, "dog", "person") == (0.0, 0.0)
