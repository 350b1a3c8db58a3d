"""Split bench/free_queries.py's figures by whether a query uses a word training never showed.

    python bench/free_queries.py --model A=... --model B=... --json free.json
    python bench/free_queries_by_words.py free.json

The training vocabulary is every word of the captions, paraphrases and negations the shapes
world of the shipped SemCLIP recipe (``--preset shapes-demo``) produces for ``--scenes`` training
scenes. A query is "new words" when any of its words is outside it ("a crimson ball"), else
"known words" ("no circles at all"). Per category and overall: precision@10 of each model. It
separates what a model gets wrong about the sentence (known words) from what its text tower does
not know (new words).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Iterable

WORD = re.compile(r"[a-z][a-z'-]*")


def words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def training_vocabulary(scenes: int) -> set[str]:
    """Every word the shipped SemCLIP recipe's training triples use over ``scenes`` scenes."""
    from engine.data.shapes.world import ShapesWorld
    from engine.train.presets import preset

    cfg = next(c for c in preset("shapes-demo") if c.name == "semclip")
    world = ShapesWorld(seed=cfg.shapes_seed, true_negation_prob=cfg.shapes_true_negation_prob,
                        varied_wording_prob=cfg.shapes_varied_wording_prob,
                        rich_language_prob=cfg.shapes_rich_language_prob)
    vocabulary: set[str] = set()
    for i in range(scenes):
        item = world.item("train", i, render=False)
        for key in ("caption", "paraphrase", "negation"):
            vocabulary |= words(item[key])
    return vocabulary


def split(queries: Iterable[dict[str, Any]], vocabulary: set[str]
          ) -> dict[tuple[str, str], dict[str, float]]:
    """(category or "all", "known words" | "new words") -> model -> mean precision@10."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for q in queries:
        kind = "new words" if words(q["query"]) - vocabulary else "known words"
        groups.setdefault((q["category"], kind), []).append(q)
        groups.setdefault(("all", kind), []).append(q)
    return {key: {m: sum(q["scores"][m]["p@10"] for q in qs) / len(qs) for m in qs[0]["scores"]}
            | {"queries": float(len(qs))} for key, qs in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="the --json file of bench/free_queries.py")
    parser.add_argument("--scenes", type=int, default=40_000, help="training scenes read")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    vocabulary = training_vocabulary(args.scenes)
    print(f"training vocabulary: {len(vocabulary)} words over {args.scenes} scenes")
    table = split(results["queries"], vocabulary)
    for (category, kind), row in sorted(table.items(), key=lambda kv: (kv[0][0] == "all", kv[0])):
        figures = "  ".join(f"{m} {v:.2f}" for m, v in row.items() if m != "queries")
        print(f"{category:16s} {kind:12s} n={int(row['queries']):3d}  {figures}")


if __name__ == "__main__":
    main()
