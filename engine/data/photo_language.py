"""What a photo's captions say is in it, and sentences that deny or affirm an object.

Five people describing a photo name what stands out, so an object none of them mentions is very
likely absent. That gives true denials ("there is no horse in this photo") and, from the objects
they do mention, false ones ("there is no dog in this photo" under a dog photo); affirming an
absent object ("there is a horse in this photo") is false too. Each denial comes with the
affirmation in the same frame, so the pair differs only by the negation.

The objects are COCO's everyday categories (the vocabulary NegBench and most detection data
use) plus a few that Flickr8k photos often show (snow, guitars). Every claim is a likelihood
read from captions, not ground truth: good for training, not for scoring.
"""

from __future__ import annotations

import re
from typing import Iterable

# name -> the caption words that mention it (lower case; a two-word entry matches the phrase).
PHOTO_OBJECTS: dict[str, tuple[str, ...]] = {
    "person": ("person", "people", "man", "men", "woman", "women", "boy", "boys", "girl",
               "girls", "child", "children", "kid", "kids", "baby", "toddler", "player",
               "players", "guy", "lady", "crowd", "someone", "rider", "biker", "skier",
               "surfer", "swimmer", "climber", "skateboarder", "snowboarder", "cyclist",
               "runner", "family", "couple", "he", "she"),
    "dog": ("dog", "dogs", "puppy", "puppies", "poodle", "terrier", "retriever", "collie",
            "dachshund", "greyhound", "labrador", "pup"),
    "cat": ("cat", "cats", "kitten", "kittens"),
    "horse": ("horse", "horses", "pony", "ponies", "rodeo"),
    "bird": ("bird", "birds", "duck", "ducks", "seagull", "seagulls", "pigeon", "pigeons",
             "goose", "geese"),
    "sheep": ("sheep", "lamb", "lambs"), "cow": ("cow", "cows", "cattle", "bull", "calf"),
    "elephant": ("elephant", "elephants"), "bear": ("bear", "bears"),
    "bicycle": ("bicycle", "bicycles", "bike", "bikes", "cyclist", "cyclists", "biker", "bmx"),
    "motorcycle": ("motorcycle", "motorcycles", "motorbike", "motocross", "dirt bike"),
    "car": ("car", "cars", "truck", "trucks", "jeep", "vehicle", "taxi", "van", "suv"),
    "bus": ("bus", "buses"), "train": ("train", "trains", "railway", "subway"),
    "boat": ("boat", "boats", "canoe", "kayak", "raft", "sailboat", "ship"),
    "airplane": ("airplane", "plane", "jet", "aircraft"),
    "umbrella": ("umbrella", "umbrellas", "parasol"),
    "guitar": ("guitar", "guitars", "guitarist"),
    "snow": ("snow", "snowy", "ski", "skis", "skier", "skiing", "snowboard", "snowboarder",
             "snowman", "sled"),
    "skateboard": ("skateboard", "skateboarder", "skateboarding", "skateboards", "skater"),
    "surfboard": ("surfboard", "surfboards", "surfer", "surfing", "surfs", "bodyboard"),
    "kite": ("kite", "kites"), "frisbee": ("frisbee", "frisbees"),
    "ball": ("ball", "balls", "football", "soccer", "basketball", "baseball", "volleyball",
             "tennis", "rugby"),
    "chair": ("chair", "chairs", "seat", "stool"),
    "bench": ("bench", "benches"),
    "table": ("table", "tables", "desk"),
    "couch": ("couch", "sofa"), "bed": ("bed", "beds", "mattress"),
    "bottle": ("bottle", "bottles"), "cup": ("cup", "cups", "mug", "mugs"),
    "bowl": ("bowl", "bowls"), "knife": ("knife", "knives"),
    "pizza": ("pizza",), "cake": ("cake", "cakes"),
    "laptop": ("laptop", "computer"), "phone": ("phone", "cellphone", "telephone"),
    "book": ("book", "books"), "backpack": ("backpack", "backpacks"),
    "handbag": ("handbag", "purse", "bag"), "suitcase": ("suitcase", "luggage"),
    "clock": ("clock",), "sink": ("sink",), "toilet": ("toilet",),
    "traffic light": ("traffic light", "traffic lights"),
}
MASS_NOUNS = frozenset({"snow"})  # "there is snow", never "a snow"

# Frames, each a (denial, affirmation) pair that differs only by the negation. Appended ones
# follow a caption; standalone ones are a whole sentence about the photo.
APPENDED_FRAMES = (("{caption} and no {x}", "{caption} and {a_x}"),
                   ("{caption} with no {x} anywhere", "{caption} with {a_x} nearby"),
                   ("{caption}, but there is no {x}", "{caption}, and there is {a_x}"))
STANDALONE_FRAMES = (("there is no {x} in this photo", "there is {a_x} in this photo"),
                     ("no {x} can be seen here", "{a_x} can be seen here"),
                     ("the picture shows no {x}", "the picture shows {a_x}"),
                     ("this photo has no {x} in it", "this photo has {a_x} in it"),
                     ("a photo without any {x}", "a photo with {a_x}"),
                     ("nothing in this picture is {a_x}", "something in this picture is {a_x}"))


def mentioned_objects(captions: Iterable[str]) -> frozenset:
    """The objects of :data:`PHOTO_OBJECTS` that some caption mentions."""
    text = " " + " ".join(" ".join(re.findall(r"[a-z]+", c.lower())) for c in captions) + " "
    return frozenset(name for name, words in PHOTO_OBJECTS.items()
                     if any(f" {word} " in text for word in words))


def with_article(name: str) -> str:
    """``"a horse"``, ``"an airplane"``, ``"snow"``."""
    if name in MASS_NOUNS:
        return name
    return ("an " if name[0] in "aeiou" else "a ") + name


def _fill(frame: str, name: str, caption: str = "") -> str:
    return frame.format(caption=caption.rstrip(" .").strip(), x=name, a_x=with_article(name))


def denial(name: str, frame: int, caption: str = "") -> str:
    """A sentence denying ``name``: appended to ``caption`` when one is given, else standalone
    (``frame`` picks the frame, cyclically)."""
    frames = APPENDED_FRAMES if caption else STANDALONE_FRAMES
    return _fill(frames[frame % len(frames)][0], name, caption)


def affirmation(name: str, frame: int, caption: str = "") -> str:
    """The sentence :func:`denial` makes with the same arguments, without the negation."""
    frames = APPENDED_FRAMES if caption else STANDALONE_FRAMES
    return _fill(frames[frame % len(frames)][1], name, caption)
