"""How the demo models score on wordings the shapes world's generator never produces.

    python bench/unseen_phrasings.py --model A.pt --model B.pt [--n 300] [--words everyday]

Test-split captions are rewritten outside the templates: their words swapped for ones no
training sentence uses ("big" -> "colossal", "circle" -> "pellet", "red" -> "alizarin", the
words of bench/free_queries_unseen.json; tests check no training text says them) and "no" ->
"there isn't any" .... ``--words everyday`` swaps in the everyday words instead ("huge", "ball",
"crimson"): the template models never saw them, the rich scene language teaches them. Prints,
per model: top-1/top-5 text-to-image retrieval with the rewritten captions, and
original-over-negation accuracy with rewritten captions against rewritten negations.
"""

from __future__ import annotations

import argparse
import random
import re

import torch

from engine.data.shapes.world import ShapesWorld
from engine.eval.metrics import original_over_negation_accuracy, topk_text_to_image_accuracy
from engine.model.encoding import embed_images, embed_texts
from engine.model.loading import load_model

WORDS = {  # no training sentence says these (tests/test_shapes.py, tests/test_scene_language.py)
    "large": ["colossal", "mammoth"], "small": ["dinky", "teensy"], "circle": ["pellet", "puck", "bead"],
    "square": ["slab"], "triangle": ["pennant"], "star": ["sea star"], "diamond": ["harlequin diamond"],
    "cross": ["medic symbol"], "red": ["alizarin", "cinnabar"], "blue": ["lapis", "smalt"],
    "green": ["malachite", "verdigris"], "yellow": ["jonquil", "sulphur"], "purple": ["tyrian", "byzantium"],
    "orange": ["satsuma"], "white": ["frosty"],
}
EVERYDAY_WORDS = {  # unseen by the template-trained models; taught by the rich scene language
    "large": ["huge", "giant"], "small": ["mini", "teeny"], "circle": ["ball", "dot"],
    "square": ["block", "tile"], "triangle": ["wedge"], "star": ["starfish shape"],
    "diamond": ["lozenge"], "cross": ["plus"], "red": ["crimson", "scarlet"],
    "blue": ["azure"], "green": ["emerald"], "yellow": ["golden"], "purple": ["violet"],
    "orange": ["tangerine"], "white": ["snow-white"],
}
NEGATION_REWRITES = [(r"\bno\b", "not any"), (r"\bbut not an?\b", "though not any"),
                     (r"\bwithout an?\b", "lacking any"), (r"^there is no\b", "there isn't any")]


def rewrite(text: str, choice: dict[str, str]) -> str:
    """Swap template words for unseen ones (the same choice for a caption and its negation)."""
    words = [choice.get(w, w) for w in text.replace(",", " ,").split()]
    out = " ".join(words).replace(" ,", ",")
    for pattern, repl in NEGATION_REWRITES:
        out = re.sub(pattern, repl, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--words", choices=("unseen", "everyday"), default="unseen",
                        help="words no training text uses (default), or everyday ones the rich "
                             "language teaches")
    args = parser.parse_args()
    lexicon = WORDS if args.words == "unseen" else EVERYDAY_WORDS
    for spec in args.model:
        loaded = load_model(spec)
        world = ShapesWorld(seed=0, image_size=loaded.model.visual.image_size[0])
        items = [world.item("test", i) for i in range(args.n)]
        choices = [{w: random.Random(i).choice(alts) for w, alts in lexicon.items()} for i in range(args.n)]
        caps = [rewrite(it["caption"], c) for it, c in zip(items, choices)]
        negs = [rewrite(it["negation"], c) for it, c in zip(items, choices)]
        if spec == args.model[0]:
            for c, n in list(zip(caps, negs))[:3]:
                print(f"  e.g. {c!r} vs {n!r}")
        images = torch.stack([loaded.preprocess(it["image"]) for it in items])
        img = embed_images(loaded.model, images)
        cap = embed_texts(loaded.model, loaded.tokenizer, caps)
        neg = embed_texts(loaded.model, loaded.tokenizer, negs)
        print(f"{spec}: {args.words} wording top1 {topk_text_to_image_accuracy(cap, img, 1):.3f}  "
              f"top5 {topk_text_to_image_accuracy(cap, img, 5):.3f}  "
              f"original-over-negation {original_over_negation_accuracy(img, cap, neg):.3f}  (n={args.n})")


if __name__ == "__main__":
    main()
