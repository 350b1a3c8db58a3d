"""Queries that deny something, ranked over real photos as the Compare tab ranks them.

    python bench/photo_denial_queries.py --triples triples/flickr8k/test.csv \\
        --model CLIP=assets/demo_models/photo-clip-baseline.pt \\
        --model SemCLIP=assets/demo_models/photo-semclip.pt \\
        --model SemCLIP+claims=assets/demo_models/photo-semclip-claims.pt [--json OUT]

What a class sees in the Photos world: someone types "a dog but no people in sight" and looks
at the top 10. For each pair of everyday objects (Y shown, X denied) that the test photos allow
(at least 5 photos show both, at least 10 show Y without X; what a photo shows is what its five
human captions mention, ``engine.data.photo_language``), each query frame below is ranked by
cosine similarity over every test photo. Per model:

* ``p@10``: the share of the top 10 that shows Y and not X (``chance``: that share of the gallery);
* ``denied@10``: the share of the top 10 that shows X, what the query denies;
* ``plain denied@10``: the same share for "a picture of Y", which names no X: a model that reads
  "no X" as a mention of X returns more X under the denial than under the plain query.

The frames are written for this bench: none is a frame the training triples use, and the object
words are the ones people type ("people", not the vocabulary's "person").
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from engine.data.photo_language import mentioned_objects, with_article  # noqa: E402
from engine.data.photo_sets import read_captions_csv  # noqa: E402
from engine.model.embed_cache import embed_images_cached  # noqa: E402
from engine.model.encoding import embed_texts  # noqa: E402
from engine.model.loading import load_model  # noqa: E402

DENIAL_FRAMES = ("{a_y} but no {x} in sight", "{a_y}, without any {x}",
                 "{a_y} with {x} nowhere to be seen", "{a_y}, {x} not included", "{a_y} free of {x}")
PLAIN_FRAME = "a picture of {a_y}"
CANDIDATES = ("dog", "person", "ball", "bicycle", "car", "snow", "bird", "boat", "horse", "bench")
TYPED = {"person": "people", "dog": "dogs", "ball": "balls", "car": "cars", "bicycle": "bicycles",
         "bird": "birds", "boat": "boats", "horse": "horses", "bench": "benches"}


def query(frame: str, shown: str, denied: str) -> str:
    """``frame`` with Y (with its article) and the denied X (plural, as people type it)."""
    return frame.format(a_y=with_article(shown), x=TYPED.get(denied, denied))


def object_pairs(shows: list[frozenset]) -> list[tuple[str, str]]:
    """(Y, X) pairs the gallery can answer: >= 5 photos show both, >= 10 show Y without X."""
    return [(y, x) for y, x in itertools.permutations(CANDIDATES, 2)
            if sum(y in s and x in s for s in shows) >= 5
            and sum(y in s and x not in s for s in shows) >= 10]


def top10_scores(top: list[int], shows: list[frozenset], y: str, x: str) -> tuple[float, float]:
    """(share of ``top`` showing Y and not X, share showing X)."""
    return (sum(y in shows[i] and x not in shows[i] for i in top) / len(top),
            sum(x in shows[i] for i in top) / len(top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triples", type=Path, default=ROOT / "triples" / "flickr8k" / "test.csv")
    parser.add_argument("--model", action="append", required=True, help="LABEL=SPEC")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    captions = read_captions_csv(args.triples, args.triples.parent).captions
    images = list(captions)
    shows = [mentioned_objects(texts) for texts in captions.values()]
    pairs = object_pairs(shows)
    chance = statistics.fmean(sum(y in s and x not in s for s in shows) / len(shows)
                              for y, x in pairs)
    print(f"{len(images)} photos, {len(pairs)} (shown, denied) pairs x {len(DENIAL_FRAMES)} frames; "
          f"chance p@10 {chance:.3f}")
    results = {}
    for label, spec in (m.split("=", 1) for m in args.model):
        loaded = load_model(spec)
        loaded.model.eval()
        gallery = torch.nn.functional.normalize(
            embed_images_cached(loaded, images, workers=0).embeddings.float(), dim=-1)
        items = [(y, x, frame) for y, x in pairs for frame in (*DENIAL_FRAMES, PLAIN_FRAME)]
        texts = embed_texts(loaded.model, loaded.tokenizer, [query(f, y, x) for y, x, f in items])
        tops = (gallery @ texts.float().T).topk(10, dim=0).indices.T.tolist()
        scored = [(frame, top10_scores(top, shows, y, x)) for top, (y, x, frame) in zip(tops, items)]
        denial = [s for frame, s in scored if frame != PLAIN_FRAME]
        plain = [s for frame, s in scored if frame == PLAIN_FRAME]
        results[label] = {"p@10": statistics.fmean(s[0] for s in denial),
                          "denied@10": statistics.fmean(s[1] for s in denial),
                          "plain denied@10": statistics.fmean(s[1] for s in plain)}
        print(f"{label:<16} " + "  ".join(f"{k} {v:.3f}" for k, v in results[label].items()))
    if args.json:
        args.json.write_text(json.dumps({"chance p@10": chance, "pairs": pairs, "models": results},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
