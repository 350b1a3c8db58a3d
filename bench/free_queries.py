"""Free-typed queries, ranked exactly as the Compare tab ranks them, scored against the scenes.

    python bench/free_queries.py [--model SPEC --model SPEC ...] [--n 500] [--json OUT]

The queries (``bench/free_queries.json``) were written by hand in words the shapes world's
caption generator does not use: plain descriptions, denials with and without "no/not", pure
denials, exclusives, counts, double negation, spatial relations, size comparisons and paraphrase
pairs. Each carries an exact predicate over a scene's objects (``where``, in the language of
:mod:`engine.data.shapes.query`) and, for denials, what it denies (``denied``, same language: true
when a scene shows the denied thing).

The gallery is the first ``--n`` scenes of the shapes test split (``shapes_gallery``, as the
Compare tab builds it), embedded with ``embed_side`` and ranked with ``rank_models``: the tab's
own code path. Per query and per category it reports precision@5 and @10, chance (the share of
the gallery satisfying the predicate), the share of the top-10 that shows the denied thing (and
its chance), the top-10 overlap of paraphrase pairs, and how right the tab's red frames are: on
the top-10 (``frames@10``, per model) and on the whole gallery (``frames_exact``: the share of
queries whose framed scenes are exactly those showing the denied thing, none for queries that
deny nothing). Without ``--model`` it scores the shipped demo pair (``assets/demo_models``) as
the app loads it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator, Mapping, Optional, Sequence

from engine.data.galleries import Gallery, shapes_gallery
from engine.data.shapes.query import Predicate, PredicateError, parse_predicate
from engine.events import NeverStop

# the Compare tab's own (Qt-free) ranking and red-frame check
from engine.explore.compare import embed_side, rank_models, violated_terms
from engine.explore.denials import negated_terms

QUERY_FILE = Path(__file__).with_name("free_queries.json")
CATEGORIES = ("plain", "denial_not", "denial_other", "pure_denial", "exclusive", "count",
              "double_negation", "spatial", "size", "paraphrase")
K = 10


@dataclass(frozen=True)
class FreeQuery:
    """One hand-written query with the predicate a right answer satisfies."""

    query: str
    category: str
    where: Predicate
    denied: Optional[Predicate] = None  # true when a scene shows what the query denies
    pair: Optional[str] = None  # paraphrase-pair id: both wordings share it


class QueryFileError(ValueError):
    """The query file is malformed; the message names the file and the entry."""


def load_queries(path: Path = QUERY_FILE) -> list[FreeQuery]:
    """The queries of a JSON file (a list of {query, category, where[, denied][, pair]})."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise QueryFileError(f"{path}: cannot read the queries: {exc}") from exc
    if not isinstance(rows, list):
        raise QueryFileError(f"{path}: expected a JSON list of queries")
    queries = []
    for number, row in enumerate(rows, 1):
        where = f"{path}: entry {number}"
        if not isinstance(row, dict) or not all(isinstance(row.get(key), str) and row[key].strip()
                                                for key in ("query", "category", "where")):
            raise QueryFileError(f"{where}: needs non-empty strings 'query', 'category', 'where'")
        if row["category"] not in CATEGORIES:
            raise QueryFileError(f"{where}: unknown category {row['category']!r}; "
                                 f"use one of {', '.join(CATEGORIES)}")
        try:
            denied = parse_predicate(row["denied"]) if row.get("denied") else None
            queries.append(FreeQuery(row["query"], row["category"], parse_predicate(row["where"]),
                                     denied, row.get("pair")))
        except PredicateError as exc:
            raise QueryFileError(f"{where} ({row['query']!r}): {exc}") from exc
    _check_pairs(queries, path)
    return queries


def _check_pairs(queries: Sequence[FreeQuery], path: Path) -> None:
    members: dict[str, list[FreeQuery]] = {}
    for q in queries:
        if q.pair:
            members.setdefault(q.pair, []).append(q)
    for pair, group in members.items():
        if len(group) != 2 or str(group[0].where) != str(group[1].where):
            raise QueryFileError(f"{path}: paraphrase pair {pair!r} needs exactly two queries "
                                 f"with the same predicate")


# ---------------------------------------------------------------------------------------------
# metrics (NaN where undefined: nothing retrieved, an empty gallery, no denied thing)
# ---------------------------------------------------------------------------------------------

def precision_at(relevant: Sequence[bool], k: int) -> float:
    """Share of the first ``k`` ranked results that are relevant (fewer if fewer were ranked)."""
    top = list(relevant[:k])
    return sum(top) / len(top) if top else math.nan


def share(flags: Sequence[bool]) -> float:
    """Share of True among ``flags``; NaN when empty (chance on an empty gallery)."""
    return sum(flags) / len(flags) if flags else math.nan


def overlap(first: Sequence[int], second: Sequence[int]) -> float:
    """|A ∩ B| / max(|A|, |B|) of two top-k index lists; NaN when both are empty."""
    size = max(len(first), len(second))
    return len(set(first) & set(second)) / size if size else math.nan


def nanmean(values: Sequence[float]) -> float:
    """Mean of the defined values; NaN when none is."""
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else math.nan


def score_query(query: FreeQuery, ranked: Sequence[int], gallery_objects: Sequence[Sequence[Mapping[str, Any]]],
                k: int = K) -> dict[str, float]:
    """Precision@5/@k, chance, and the denied thing's share of the top-k and of the gallery."""
    relevant = [query.where(gallery_objects[i]) for i in ranked]
    out = {"p@5": precision_at(relevant, 5), f"p@{k}": precision_at(relevant, k),
           "chance": share([query.where(objs) for objs in gallery_objects]),
           "denied@10": math.nan, "denied_chance": math.nan}
    if query.denied is not None:
        out["denied@10"] = share([query.denied(gallery_objects[i]) for i in ranked[:k]])
        out["denied_chance"] = share([query.denied(objs) for objs in gallery_objects])
    return out


def summarise(queries: Sequence[FreeQuery], per_model: Mapping[str, Sequence[dict[str, Any]]]
              ) -> dict[str, dict[str, dict[str, float]]]:
    """Per category (and "all"), per model: mean of each metric, pair overlap, wins and ties.

    ``per_model[label][i]`` holds query i's scores and its ranked ``top`` indices. A query ties
    when every model has the same precision@10; a model wins it when it alone has the best.
    """
    labels = list(per_model)
    groups = {cat: [i for i, q in enumerate(queries) if q.category == cat] for cat in CATEGORIES}
    groups = {cat: idx for cat, idx in groups.items() if idx}
    groups["all"] = list(range(len(queries)))
    pairs: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        if q.pair:
            pairs.setdefault(q.pair, []).append(i)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for cat, idx in groups.items():
        out[cat] = {}
        ties = [i for i in idx if len({_key(per_model[m][i][f"p@{K}"]) for m in labels}) == 1]
        for m in labels:
            rows = [per_model[m][i] for i in idx]
            stats = {key: nanmean([r[key] for r in rows])
                     for key in ("p@5", f"p@{K}", "chance", "denied@10", "denied_chance", "frames@10",
                                 "frames_exact")}
            members = set(idx)
            stats["overlap"] = nanmean([overlap(per_model[m][a]["top"], per_model[m][b]["top"])
                                        for a, b in pairs.values() if a in members and b in members])
            stats["wins"] = float(sum(1 for i in idx if i not in ties and _best(per_model, labels, i) == m))
            stats["ties"] = float(len(ties))
            stats["queries"] = float(len(idx))
            out[cat][m] = stats
    return out


def _key(value: float) -> Any:
    return "nan" if math.isnan(value) else round(value, 9)


def _best(per_model: Mapping[str, Sequence[dict[str, Any]]], labels: Sequence[str], i: int) -> Optional[str]:
    scores = {m: per_model[m][i][f"p@{K}"] for m in labels}
    scores = {m: s for m, s in scores.items() if not math.isnan(s)}
    if not scores:
        return None
    top = max(scores.values())
    leaders = [m for m, s in scores.items() if s == top]
    return leaders[0] if len(leaders) == 1 else None


# ---------------------------------------------------------------------------------------------
# running the models through the Compare tab's path
# ---------------------------------------------------------------------------------------------

def frames_agree(query: FreeQuery, gallery: Gallery) -> float:
    """1.0 when the Compare tab frames exactly the gallery scenes that show what ``query``
    denies (none when it denies nothing), else 0.0; NaN for an empty gallery."""
    if not len(gallery):
        return math.nan
    terms = negated_terms(query.query)
    return float(all(bool(violated_terms(gallery, i, terms)) == bool(query.denied and query.denied(objs))
                     for i, objs in enumerate(gallery.objects)))


def _drain(job: Generator[Any, None, Any]) -> Any:
    """Run a Progress generator to the end and return its value."""
    while True:
        try:
            next(job)
        except StopIteration as done:
            return done.value


def evaluate(models: Mapping[str, Any], gallery: Gallery, queries: Sequence[FreeQuery],
             k: int = K) -> dict[str, Any]:
    """Rank every query with ``rank_models`` over ``embed_side`` embeddings and score it."""
    sides = {label: _drain(embed_side(loaded, gallery, NeverStop())) for label, loaded in models.items()}
    frames_exact = {q.query: frames_agree(q, gallery) for q in queries}
    embeddings = {label: side.embeddings for label, side in sides.items()}
    per_model: dict[str, list[dict[str, Any]]] = {label: [] for label in models}
    for query in queries:
        ranked = rank_models(models, embeddings, gallery, query.query, k)
        for label in models:
            top = [hit.index for hit in ranked[label]]
            frames_right = [hit.violates == bool(query.denied and query.denied(gallery.objects[hit.index]))
                            for hit in ranked[label]]
            per_model[label].append({**score_query(query, top, gallery.objects, k), "top": top,
                                     "frames@10": share(frames_right),
                                     "frames_exact": frames_exact[query.query]})
    return {"gallery": gallery.description, "k": k,
            "template_metrics": {label: side.metrics for label, side in sides.items()},
            "queries": [{"query": q.query, "category": q.category, "where": str(q.where),
                         "denied": str(q.denied) if q.denied else None, "pair": q.pair,
                         "scores": {label: per_model[label][i] for label in models}}
                        for i, q in enumerate(queries)],
            "summary": summarise(queries, per_model)}


def default_models() -> dict[str, str]:
    """The shipped demo pair as the app opens it: label -> spec."""
    from semclip_gui.demo import shipped_demo_specs

    specs = shipped_demo_specs()
    if specs is None:
        raise SystemExit("the shipped demo models are missing from assets/demo_models; "
                         "pass --model SPEC")
    return {"CLIP": specs[0], "SemCLIP": specs[1]}


def _fmt(value: float) -> str:
    return "  -  " if math.isnan(value) else f"{value:.2f}"


def print_report(results: dict[str, Any], verbose: bool) -> None:
    labels = list(results["template_metrics"])
    if verbose:
        for row in results["queries"]:
            cells = "  ".join(f"{m}: p@10 {_fmt(row['scores'][m]['p@10'])} den {_fmt(row['scores'][m]['denied@10'])}"
                              for m in labels)
            print(f"{row['category']:15s} chance {_fmt(row['scores'][labels[0]]['chance'])}  {cells}  "
                  f"{row['query']!r}")
        print()
    print(results["gallery"])
    for m, metrics in results["template_metrics"].items():
        if metrics:
            print(f"  {m}: template original-over-negation {metrics['ono_accuracy']:.3f}, "
                  f"caption top-1 {metrics['caption_top1']:.3f}")
    head = "".join(f" | {m[:12]:>12s} p@5  p@10  den@10 ovl  frm@10 wins" for m in labels)
    print(f"{'category':15s} {'n':>3s} chance den-chance frames ties{head}")
    for cat, per in results["summary"].items():
        first = per[labels[0]]
        cells = "".join(f" | {'':12s} {_fmt(s['p@5'])} {_fmt(s['p@10'])} {_fmt(s['denied@10'])}  "
                        f"{_fmt(s['overlap'])} {_fmt(s['frames@10'])}  {int(s['wins']):3d}"
                        for s in (per[m] for m in labels))
        print(f"{cat:15s} {int(first['queries']):3d} {_fmt(first['chance']):>6s} {_fmt(first['denied_chance']):>10s}"
              f" {_fmt(first['frames_exact']):>6s} {int(first['ties']):4d}{cells}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", metavar="SPEC",
                        help="a model spec (repeatable; LABEL=SPEC names its column); default: "
                             "the shipped demo pair")
    parser.add_argument("--n", type=int, default=500, help="test-split scenes in the gallery")
    parser.add_argument("--queries", type=Path, default=QUERY_FILE)
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every figure here")
    parser.add_argument("--per-query", action="store_true", help="print each query's figures")
    args = parser.parse_args(argv)
    from engine.model.loading import load_model

    try:
        queries = load_queries(args.queries)
    except QueryFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    specs = default_models() if not args.model else dict(_label_spec(s) for s in args.model)
    models = {label: load_model(spec) for label, spec in specs.items()}
    results = evaluate(models, shapes_gallery(n=args.n, split="test"), queries)
    results["models"] = specs
    print_report(results, args.per_query)
    if args.json:
        partial = args.json.with_name(args.json.name + ".partial")
        partial.write_text(json.dumps(_no_nan(results), indent=1, allow_nan=False))
        partial.replace(args.json)  # a finished file or none: never half of one
        print(f"wrote {args.json}")
    return 0


def _no_nan(value: Any) -> Any:
    """``value`` with every NaN as None, so the file is strict JSON (undefined figures = null)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _no_nan(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def _label_spec(arg: str) -> tuple[str, str]:
    label, sep, spec = arg.partition("=")
    if sep and label and "/" not in label and ":" not in label:
        return label, spec
    return Path(arg).stem if arg.endswith((".pt", ".pth")) else arg, arg


if __name__ == "__main__":
    sys.exit(main())
