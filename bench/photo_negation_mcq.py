"""A NegBench-style multiple-choice test on held-out photos, larger than NegBench's 68-row sample.

    python bench/photo_negation_mcq.py --triples triples/flickr8k/test.csv --out mcq.csv
    semclip eval --benchmark negbench_mcq --data mcq.csv --images ../shared/data/flickr8k/images \\
        --model assets/demo_models/photo-clip-baseline.pt --model assets/demo_models/photo-semclip.pt

NegBench (Alhamoud et al. 2025) asks, for a COCO image that shows Y and lacks X, which of four
sentences fits; its three templates and their wrong options are copied here in structure:

* negative: right "no X"; wrong "X but no Y", "X", "no Y";
* affirmation: right "Y"; wrong "X", "no Y", "X but no Y";
* hybrid: right "Y but no X"; wrong "X but no Y", "X", "no Y".

Objects: what five human captions of each test photo mention (``engine.data.photo_language``;
Y is one of them, X one that none mentions). The sentence frames are NegBench's kind ("is
present in the image", "does not contain") and none of them is a frame the training triples
use, so the test measures wording training never showed. Writes NegBench's CSV layout.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from engine.data.photo_language import PHOTO_OBJECTS, mentioned_objects, with_article
from engine.data.photo_sets import read_captions_csv

NEGATIVE = ("No {x} is present in the image.", "The image does not contain {a_x}.",
            "{A_x} is absent from the image.", "There isn't {a_x} anywhere in the image.")
AFFIRMATIVE = ("{A_x} is present in the image.", "The image contains {a_x}.",
               "{A_x} appears in the image.", "The image includes {a_x}.")
HYBRID = ("The image contains {a_y} but no {x}.", "{A_y} is present in the image, without {a_x}.",
          "The image includes {a_y}, and {a_x} is absent.",
          "{A_y} appears in the image, but no {x} does.")


def fill(frame: str, x: str, y: str = "") -> str:
    a_x, a_y = with_article(x), with_article(y) if y else ""
    return frame.format(x=x, a_x=a_x, A_x=a_x[0].upper() + a_x[1:], a_y=a_y,
                        A_y=a_y[:1].upper() + a_y[1:])


def questions(image: str, shown: str, absent: str, k: int) -> list[list[str]]:
    """The three NegBench templates for a photo showing ``shown`` and lacking ``absent``, as rows
    (image, correct index, four options, template); ``k`` picks frames and the option order."""
    neg = lambda x: fill(NEGATIVE[k % len(NEGATIVE)], x)  # noqa: E731
    aff = lambda x: fill(AFFIRMATIVE[(k + 1) % len(AFFIRMATIVE)], x)  # noqa: E731
    hyb = lambda y, x: fill(HYBRID[(k + 2) % len(HYBRID)], x, y)  # noqa: E731
    rows = []
    for template, right, wrong in (
            ("negative", neg(absent), [hyb(absent, shown), aff(absent), neg(shown)]),
            ("affirmation", aff(shown), [aff(absent), neg(shown), hyb(absent, shown)]),
            ("hybrid", hyb(shown, absent), [hyb(absent, shown), aff(absent), neg(shown)])):
        options = [right] + wrong
        order = random.Random(f"{image}{template}").sample(range(4), 4)
        rows.append([image, str(order.index(0)), *(options[i] for i in order), template])
    return rows


def build_questions(triples: Path, seed: int = 0) -> list[list[str]]:
    """The questions (NegBench CSV rows, header excluded) over the photos of a triples split."""
    captions = read_captions_csv(triples, triples.parent).captions  # images relative to the file
    rng = random.Random(seed)
    rows = []
    for k, (image, texts) in enumerate(captions.items()):
        shown = sorted(mentioned_objects(texts))
        absent = [name for name in PHOTO_OBJECTS if name not in shown]
        if shown and absent:
            rows += questions(Path(image).name, rng.choice(shown), rng.choice(absent), k)
    return rows


def write_mcq(rows: list[list[str]], out: Path) -> None:
    """Write ``rows`` in NegBench's MCQ CSV layout."""
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image_path", "correct_answer", "caption_0", "caption_1", "caption_2",
                         "caption_3", "correct_answer_template"])
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triples", required=True, type=Path, help="a held-out triples split")
    parser.add_argument("--out", required=True, type=Path, help="NegBench-layout MCQ CSV")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = build_questions(args.triples, args.seed)
    write_mcq(rows, args.out)
    print(f"{len(rows)} questions over {len(rows) // 3} photos -> {args.out}")


if __name__ == "__main__":
    main()
