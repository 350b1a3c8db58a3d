"""Is every colour word of the scene language learnt? Each one asked in four short frames.

    python bench/colour_words.py [--model SPEC ...] [--n 500] [--json OUT] [--worst 15]

The rich scene language says each world colour with the hand lexicon's everyday words
(``COLOUR_WORDS``: "navy", "emerald", "golden") and the xkcd survey's further names
("wintergreen", "algae"). For every such word, four queries ranked exactly as the Compare tab ranks
them (``bench/free_queries.py``'s path): "a {w} shape", "a big {w} shape", "a small {w} shape" and
"there is nothing {w}" (a pure denial: right when no object has the colour). The sentences are
in the training language, so this measures whether a taught word was learnt, not how far the
models reach past it (``bench/free_queries_unseen.json`` does that).

Prints, per model and per word source (hand lexicon / survey only): mean precision@10 over the
words, the share of words whose mean over the frames is below 0.5 ("unlearnt"), and the
worst words.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.free_queries import FreeQuery, _label_spec, default_models, evaluate  # noqa: E402
from engine.data.galleries import shapes_gallery  # noqa: E402
from engine.data.shapes.language import COLOUR_WORDS, spoken_colour_words  # noqa: E402
from engine.data.shapes.query import parse_predicate  # noqa: E402

# (frame, predicate, category for free_queries' bookkeeping); {w} the word, {c} its world colour
FRAMES = (("a {w} shape", "some({c})", "plain"),
          ("a big {w} shape", "some(large {c})", "plain"),
          ("a small {w} shape", "some(small {c})", "plain"),
          ("there is nothing {w}", "none({c})", "pure_denial"))


def colour_word_queries() -> list[tuple[str, str, str, FreeQuery]]:
    """(colour, source, word, query) for every non-canonical colour word and frame."""
    rows = []
    for colour, words in spoken_colour_words().items():
        for word in words[1:]:
            source = "hand" if word in COLOUR_WORDS[colour] else "survey"
            for frame, where, category in FRAMES:
                denied = parse_predicate(f"some({colour})") if category == "pure_denial" else None
                query = FreeQuery(frame.format(w=word), category,
                                  parse_predicate(where.format(c=colour)), denied)
                rows.append((colour, source, word, query))
    return rows


def word_scores(rows: Sequence[tuple[str, str, str, FreeQuery]], results: dict[str, Any],
                label: str) -> dict[tuple[str, str, str], float]:
    """(colour, source, word) -> the word's mean precision@10 over its frames, for one model."""
    per_word: dict[tuple[str, str, str], list[float]] = {}
    for (colour, source, word, _), scored in zip(rows, results["queries"]):
        per_word.setdefault((colour, source, word), []).append(scored["scores"][label]["p@10"])
    return {key: sum(v) / len(v) for key, v in per_word.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", metavar="SPEC",
                        help="a model spec (repeatable; LABEL=SPEC); default: the shipped demo pair")
    parser.add_argument("--n", type=int, default=500, help="test-split scenes in the gallery")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write each word's figures here")
    parser.add_argument("--worst", type=int, default=12, help="how many worst words to list")
    args = parser.parse_args(argv)
    from engine.model.loading import load_model

    specs = default_models() if not args.model else dict(_label_spec(s) for s in args.model)
    rows = colour_word_queries()
    results = evaluate({label: load_model(spec) for label, spec in specs.items()},
                       shapes_gallery(n=args.n, split="test"), [row[3] for row in rows])
    report: dict[str, Any] = {}
    print(f"{results['gallery']}; {len(rows)} queries: {len(rows) // len(FRAMES)} words x "
          f"{len(FRAMES)} frames")
    for label in specs:
        scores = word_scores(rows, results, label)
        report[label] = {f"{c}/{s}/{w}": v for (c, s, w), v in scores.items()}
        for source in ("hand", "survey"):
            values = [v for (_, s, _), v in scores.items() if s == source]
            unlearnt = sum(v < 0.5 for v in values)
            print(f"  {label:>12s} {source:6s} words {len(values):3d}  mean p@10 "
                  f"{sum(values) / len(values):.3f}  unlearnt (< 0.5) {unlearnt:3d} "
                  f"({unlearnt / len(values):.0%})")
        worst = sorted(scores.items(), key=lambda item: item[1])[:args.worst]
        print(f"  {label:>12s} worst: " + ", ".join(f"{w} ({c}) {v:.2f}" for (c, _, w), v in worst))
    if args.json:
        args.json.write_text(json.dumps({"models": specs, "words": report}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
