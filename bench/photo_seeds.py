"""The photo models' figures over training seeds: mean, spread and each seed's value.

    python bench/photo_seeds.py \\
        --group CLIP=assets/demo_models/photo-clip-baseline.pt,runs/seeds/s1/clip-baseline/checkpoint.pt \\
        --group SemCLIP+claims=assets/demo_models/photo-semclip-claims.pt,runs/seeds/s1/semclip-claims/checkpoint.pt \\
        [--json seeds.json]

A model as small as the photo pair moves between training seeds by more than some of the
differences issue 13 asks about: flower zero-shot (5 classes, 1,000 photos) is one such figure.
Comparing one run of each model then reads seed noise as an effect. This script scores every
model of each group (the same recipe, different ``seed``) on the issue's benchmarks and prints
each group's mean and sample standard deviation beside the per-seed values, and the difference of
each group's mean from the first group's with its standard error (sqrt(sd1^2/n1 + sd2^2/n2)).

Benchmarks (paths default to ``../shared/data`` and ``triples/flickr8k``; one missing is skipped
with a note): Flickr8k test retrieval and original-over-negation, NegBench's COCO sample, the
held-out multiple-choice test of ``bench/photo_negation_mcq.py`` and flower zero-shot (plain and
negated prompts: lower ``negated_accuracy`` is better).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.photo_negation_mcq import build_questions, write_mcq  # noqa: E402
from engine.eval.run import run_evaluation  # noqa: E402
from engine.model.loading import load_model  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"

# (column name, benchmark, metric): the figures issue 13's targets are about
FIGURES = (
    ("t2i R@5", "captions_retrieval", "t2i_recall@5"),
    ("t2i R@10", "captions_retrieval", "t2i_recall@10"),
    ("orig-over-neg", "captions_retrieval", "ono_accuracy"),
    ("NegBench COCO negation", "negbench_coco", "mcq_accuracy_negation"),
    ("held-out MCQ negation", "negbench_heldout", "mcq_accuracy_negation"),
    ("held-out MCQ all", "negbench_heldout", "mcq_accuracy"),
    ("flowers plain", "zeroshot", "affirmative_accuracy"),
    ("flowers negated (lower=better)", "zeroshot", "negated_accuracy"),
)


def parse_group(text: str) -> tuple[str, list[str]]:
    """``LABEL=spec,spec,...`` -> (label, specs)."""
    label, sep, specs = text.partition("=")
    paths = [s for s in specs.split(",") if s]
    if not sep or not label or not paths:
        raise argparse.ArgumentTypeError(f"expected LABEL=SPEC[,SPEC...], got {text!r}")
    return label, paths


def benchmarks(triples_test: Path, mcq_csv: Path) -> dict[str, tuple[str, Path, Optional[Path]]]:
    """Each benchmark's (engine benchmark name, data, images) whose data exists here."""
    wanted = {
        "captions_retrieval": ("captions_retrieval", triples_test, None),
        "negbench_coco": ("negbench_mcq", SHARED / "negbench" / "COCO_val_mcq_sample.csv",
                          SHARED / "coco_val2017_sample"),
        "negbench_heldout": ("negbench_mcq", mcq_csv, SHARED / "flickr8k" / "images"),
        "zeroshot": ("zeroshot", SHARED / "flowers_test", None),
    }
    found = {}
    for key, (name, data, images) in wanted.items():
        if data.exists() and (images is None or images.exists()):
            found[key] = (name, data, images)
        else:
            print(f"skipped {key}: {data if not data.exists() else images} not found")
    return found


def score(specs: Sequence[str], benches: dict) -> list[dict[str, float]]:
    """One ``{figure: value}`` per model spec."""
    models = [load_model(spec) for spec in specs]
    per_bench = {key: run_evaluation(name, data, images, models, workers=0)
                 for key, (name, data, images) in benches.items()}
    rows = []
    for i in range(len(specs)):
        rows.append({column: per_bench[key]["models"][i]["metrics"].get(metric)
                     for column, key, metric in FIGURES if key in per_bench})
    return rows


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summary_table(groups: dict[str, list[dict[str, float]]]) -> str:
    """Per figure: each group's mean +- sd (n) and seeds, and its mean's difference from the first
    group's with the standard error of that difference."""
    names = list(groups)
    columns = [c for c, _, _ in FIGURES
               if all(isinstance(r.get(c), float) and math.isfinite(r[c])
                      for rows in groups.values() for r in rows)]
    lines = []
    for column in columns:
        lines.append(column)
        base = [r[column] for r in groups[names[0]]]
        for name in names:
            values = [r[column] for r in groups[name]]
            mean, sd = mean_sd(values)
            line = (f"  {name:<20} {mean:.3f} +- {sd:.3f} (n={len(values)})   seeds: "
                    + " ".join(f"{v:.3f}" for v in values))
            if name != names[0]:
                bmean, bsd = mean_sd(base)
                line += f"   diff {mean - bmean:+.3f}"
                if len(values) > 1 and len(base) > 1:  # one seed says nothing of the spread
                    line += f" (se {math.sqrt(sd ** 2 / len(values) + bsd ** 2 / len(base)):.3f})"
            lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", action="append", type=parse_group, required=True,
                        help="LABEL=SPEC[,SPEC...]: one recipe trained with different seeds")
    parser.add_argument("--triples", type=Path, default=ROOT / "triples" / "flickr8k" / "test.csv",
                        help="Flickr8k test triples (semclip prepare flickr8k)")
    parser.add_argument("--json", type=Path, help="write every value here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        mcq = Path(tmp) / "mcq.csv"
        if args.triples.is_file():
            write_mcq(build_questions(args.triples), mcq)
        benches = benchmarks(args.triples, mcq)
        if not benches:
            sys.exit("no benchmark data found")
        groups = {label: score(specs, benches) for label, specs in args.group}
    print(summary_table(groups))
    if args.json:
        args.json.write_text(json.dumps(
            {label: [dict(spec=s, **r) for s, r in zip(specs, groups[label])]
             for label, specs in args.group}, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
