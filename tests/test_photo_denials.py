"""Photo triples that deny an object no caption mentions, their claims in the triples file, and
which texts of a batch they make true of which photos (false-negative masking)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.cli.commands import main
from engine.data.photo_language import (PHOTO_OBJECTS, affirmation, denial, mentioned_objects,
                                        with_article)
from engine.data.photo_sets import make_triples, read_captions_csv
from engine.data.triples import TriplesDataset, read_triples
from engine.data.triples_io import TriplesFormatError, claim_holds, write_triples

DOG = ["A brown dog runs along the beach .", "A dog running by the sea .",
       "The puppy is running on wet sand .", "A dog at the shore .", "A wet dog on a beach ."]
RIDER = ["A man rides a bicycle down a hill .", "A cyclist on a dirt road .",
         "A biker going downhill .", "A person on a bike .", "Someone riding a bike outdoors ."]


def test_mentions_cover_synonyms_plurals_and_phrases_but_not_parts_of_words():
    assert mentioned_objects(DOG) == {"dog"}
    assert mentioned_objects(RIDER) == {"person", "bicycle"}
    assert mentioned_objects(["Cars wait at a traffic light ."]) == {"car", "traffic light"}
    assert mentioned_objects(["A catamaran sails ."]) == set()  # "cat" only as a whole word
    assert mentioned_objects(["A sheepdog herds ."]) == set()


def test_each_denial_differs_from_its_affirmation_only_by_the_negation():
    assert with_article("horse") == "a horse" and with_article("airplane") == "an airplane"
    assert with_article("snow") == "snow"
    for frame in range(6):
        for caption in ("", "A dog runs ."):
            no, yes = denial("horse", frame, caption), affirmation("horse", frame, caption)
            assert "horse" in no and "horse" in yes and no != yes
            assert " no " in f" {no} " or "nothing" in no or "without" in no
            assert not any(w in yes.split() for w in ("no", "nothing", "without"))
            if caption:
                assert no.startswith("A dog runs") and yes.startswith("A dog runs")
                assert ". " not in no  # the caption's full stop is not kept inside the sentence


@pytest.fixture
def beach_set(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for n in range(4):
        for name, captions in ((f"dog{n}.jpg", DOG), (f"bike{n}.jpg", RIDER)):
            Image.new("RGB", (8, 8), "blue").save(images / name)
            rows += [[name, c] for c in captions]
    with open(tmp_path / "captions.csv", "w", newline="") as f:
        csv.writer(f).writerows([["image", "caption"], *rows])
    (tmp_path / "splits.csv").write_text("image,split\n" + "".join(
        f"{name},{'test' if name.endswith('3.jpg') else 'train'}\n"
        for name in {r[0] for r in rows}))
    return tmp_path


def test_training_triples_deny_absent_objects_and_test_triples_stay_human(beach_set):
    from engine.data.photo_sets import read_splits

    images = read_captions_csv(beach_set / "captions.csv", beach_set / "images")
    report = make_triples(images, beach_set / "out", read_splits(beach_set / "splits.csv"),
                          denial_share=0.4)
    train = read_triples(beach_set / "out" / "train.csv")
    test = read_triples(beach_set / "out" / "test.csv")
    assert all(t.caption in DOG + RIDER for t in test)  # evaluation keeps human captions
    assert len(train) == 30 and report.denials == {"appended": 6, "standalone": 6}
    denials = [t for t in train if t.caption not in DOG + RIDER]
    assert len(denials) == 12
    for t in denials:
        shown = mentioned_objects(DOG if "dog" in t.image.name else RIDER)
        assert t.objects == shown
        denied = [name for name in PHOTO_OBJECTS if f"no {name}" in t.caption
                  or f"is {with_article(name)}" in t.caption or f"any {name}" in t.caption]
        assert denied and all(name not in shown for name in denied), t.caption
        if t.caption_claim:  # a whole sentence: true of this photo, its negation false of it
            assert claim_holds(t.caption_claim, t.objects)
            assert not claim_holds(t.negation_claim, t.objects)
            assert not any(c in t.caption for c in DOG + RIDER)
        else:  # after one human caption; the paraphrase follows another one
            assert any(t.caption.startswith(c.rstrip(" .")) for c in DOG + RIDER)
            assert not t.paraphrase.startswith(t.caption.split(" and ")[0].split(" with ")[0]
                                               .split(",")[0])
    kinds = {("affirms" if "no " not in t.negation and "nothing" not in t.negation
              and "without" not in t.negation else "denies a shown object") for t in denials}
    assert kinds == {"affirms", "denies a shown object"}


def test_denial_share_zero_writes_the_human_captions_only(beach_set):
    code = main(["prepare", "captions", "--captions", str(beach_set / "captions.csv"),
                 "--images", str(beach_set / "images"), "--out", str(beach_set / "out"),
                 "--denial-share", "0"])
    assert code == 0
    assert all(t.caption in DOG + RIDER for t in read_triples(beach_set / "out" / "triples.csv"))
    assert main(["prepare", "captions", "--captions", str(beach_set / "captions.csv"),
                 "--images", str(beach_set / "images"), "--out", str(beach_set / "out"),
                 "--denial-share", "1.5"]) == 2


def test_claims_and_objects_round_trip_and_a_bad_claim_names_file_and_line(tmp_path):
    rows = [{"image": "a.png", "caption": "no horse here", "paraphrase": "p", "negation": "n",
             "objects": "dog;person", "caption_claim": "absent:horse",
             "negation_claim": "present:horse"},
            {"image": "b.png", "caption": "a dog", "paraphrase": "p", "negation": "n"}]
    for name in ("t.csv", "t.jsonl"):
        write_triples(tmp_path / name, rows)
        a, b = read_triples(tmp_path / name)
        assert a.objects == {"dog", "person"} and a.caption_claim == "absent:horse"
        assert a.negation_claim == "present:horse"
        assert b.objects == frozenset() and b.caption_claim == "" == b.negation_claim
    text = (tmp_path / "t.csv").read_text().replace("present:horse", "maybe:horse")
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(TriplesFormatError, match=r"bad\.csv:2: negation_claim: claim "
                                                 r"'maybe:horse' is not absent:NAME"):
        read_triples(tmp_path / "bad.csv")


def test_truth_marks_a_photos_own_captions_and_every_photo_a_claim_fits(tmp_path):
    for name in ("dog.png", "bike.png", "horse.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    row = {"paraphrase": "p", "negation": "n"}
    write_triples(tmp_path / "t.csv", [
        {**row, "image": "dog.png", "caption": "a dog on a beach", "objects": "dog"},
        {**row, "image": "dog.png", "caption": "a puppy by the sea", "objects": "dog"},
        {**row, "image": "bike.png", "caption": "there is no dog in this photo",
         "objects": "bicycle;person", "caption_claim": "absent:dog",
         "negation": "there is a dog in this photo", "negation_claim": "present:dog"},
        {**row, "image": "horse.png", "caption": "a horse and no bicycle", "objects": "horse",
         "negation": "a horse and no horse"},
        {**row, "image": "horse.png", "caption": "the picture shows no person",
         "objects": "horse", "caption_claim": "absent:person",
         "negation": "the picture shows no horse", "negation_claim": "absent:horse"},
    ])
    data = TriplesDataset(read_triples(tmp_path / "t.csv"))
    captions, negations = data.truth([0, 1, 2, 3, 4])
    assert captions.int().tolist() == [[1, 1, 0, 0, 0],  # both dog captions fit the dog photo
                                       [1, 1, 0, 0, 0],
                                       [0, 0, 1, 1, 1],  # "no dog" fits the bike and horse photos
                                       [0, 0, 0, 1, 1],  # a caption without a claim: its photo
                                       [1, 1, 0, 1, 1]]  # "no person": dog and horse photos
    assert negations.int().tolist() == [[0, 0, 0, 0, 0],  # no claim: known of no photo
                                        [0, 0, 0, 0, 0],
                                        [1, 1, 0, 0, 0],  # "there is a dog": the dog photo
                                        [0, 0, 0, 0, 0],
                                        [1, 1, 1, 0, 0]]  # "no horse": all but the horse photo
    some_captions, some_negations = data.truth([2, 0])  # any subset, in the batch's order
    assert torch.equal(some_captions, captions[[2, 0]][:, [2, 0]])
    assert torch.equal(some_negations, negations[[2, 0]][:, [2, 0]])


@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k")
                    .is_dir(), reason="../shared/data/flickr8k is absent (Flickr8k captions)")
def test_real_flickr8k_photos_mention_what_their_captions_name():
    flickr = Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k"
    with open(flickr / "captions.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:500]
    by_image: dict[str, list[str]] = {}
    for row in rows:
        by_image.setdefault(row["image"], []).append(row["caption"])
    mentions = [mentioned_objects(c) for c in by_image.values()]
    assert sum("person" in m for m in mentions) > len(mentions) / 2  # mostly people ...
    assert sum("dog" in m for m in mentions) > len(mentions) / 10  # ... and dogs
    for captions, objects in zip(by_image.values(), mentions):
        if any(" dog " in f" {c.lower()} " for c in captions):
            assert "dog" in objects


def test_the_photo_mcq_bench_asks_negbench_templates_in_wording_training_never_uses(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.photo_negation_mcq import AFFIRMATIVE, HYBRID, NEGATIVE, questions
    from engine.data.photo_language import APPENDED_FRAMES, STANDALONE_FRAMES
    from engine.eval.benchmarks import load_negbench_mcq

    rows = questions("dog.jpg", shown="dog", absent="horse", k=0)
    assert [r[-1] for r in rows] == ["negative", "affirmation", "hybrid"]
    right = {r[-1]: r[2 + int(r[1])] for r in rows}
    assert right == {"negative": "No horse is present in the image.",
                     "affirmation": "The image contains a dog.",
                     "hybrid": "The image includes a dog, and a horse is absent."}
    for row in rows:  # every wrong option affirms the absent horse or denies the shown dog
        for option in row[2:6]:
            if option != right[row[-1]]:
                assert ("horse" in option and "no horse" not in option
                        and "horse is absent" not in option) or "No dog" in option
    training = [f for pair in APPENDED_FRAMES + STANDALONE_FRAMES for f in pair]
    assert not any("image" in f for f in training)  # training says "photo" and "picture"
    for frame in NEGATIVE + AFFIRMATIVE + HYBRID:
        assert "image" in frame and "photo" not in frame and "picture" not in frame
        assert frame.lower().replace("{a_x}", "{x}").rstrip(".") not in \
            {f.replace("{a_x}", "{x}") for f in training}
    with open(tmp_path / "mcq.csv", "w", newline="") as f:
        csv.writer(f).writerows([["image_path", "correct_answer", "caption_0", "caption_1",
                                  "caption_2", "caption_3", "correct_answer_template"], *rows])
    Image.new("RGB", (4, 4)).save(tmp_path / "dog.jpg")
    data = load_negbench_mcq(tmp_path / "mcq.csv", tmp_path)  # NegBench's own loader reads it
    assert [r.group for r in data.rows] == ["negation", "affirmation", "hybrid"]
