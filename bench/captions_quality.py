"""Quality and latency of the offline rules backend on real captions.

    python bench/captions_quality.py [--data ../shared/data] [--show 5]

Captions: every ``caption`` of the SugarCrepe++ files and every caption of the NegBench COCO
multiple-choice sample (``<data>/sugarcrepe_pp/*.json``, ``<data>/negbench/*.csv``), unique.
For each source it prints

* negations that negate: differ from the caption and add a negation cue (or, for a caption that
  already negates, remove one) — over all generated negations and over the first one (the one
  ``semclip generate`` writes);
* paraphrases that keep the content: differ and keep every content word or a lexicon synonym or
  another form of it (engine/captions/quality.py);
* captions that got no paraphrase / no negation;
* mean number of distinct negation and paraphrase kinds per caption (and the share with >= 3);
* latency of ``generate`` per caption (mean, p95, max), single thread, on this machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import statistics
import time
from collections import Counter
from pathlib import Path

from engine.captions import NEGATION, PARAPHRASE
from engine.captions.quality import keeps_content, negates
from engine.captions.rules import RulesBackend

ROOT = Path(__file__).resolve().parents[1]


def load_sources(data: Path) -> dict[str, list[str]]:
    sources: dict[str, list[str]] = {}
    for path in sorted((data / "sugarcrepe_pp").glob("*.json")):
        rows = json.loads(path.read_text())
        sources[f"sugarcrepe++ {path.stem}"] = list(dict.fromkeys(r["caption"].strip() for r in rows))
    for path in sorted((data / "negbench").glob("*.csv")):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        texts = [r[k].strip() for r in rows for k in r if k.startswith("caption_")]
        sources[f"negbench {path.stem}"] = list(dict.fromkeys(t for t in texts if t))
    return sources


def share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


def measure(backend: RulesBackend, captions: list[str]) -> dict:
    latencies, neg_ok, neg_first, para_ok, para_first = [], [], [], [], []
    no_neg = no_para = no_output = 0
    neg_kinds, para_kinds = [], []
    kinds: Counter = Counter()
    for caption in captions:
        start = time.perf_counter()
        g = backend.generate(caption)
        latencies.append((time.perf_counter() - start) * 1000)
        negs, paras = [x.text for x in g.negations], [x.text for x in g.paraphrases]
        no_neg += not negs
        no_para += not paras
        no_output += not negs and not paras
        neg_ok += [negates(caption, n) for n in negs]
        para_ok += [keeps_content(caption, p, backend.lexicon) for p in paras]
        if negs:
            neg_first.append(negates(caption, negs[0]))
        if paras:
            para_first.append(keeps_content(caption, paras[0], backend.lexicon))
        neg_kinds.append(len(g.kinds(NEGATION)))
        para_kinds.append(len(g.kinds(PARAPHRASE)))
        kinds.update(f"-{x.kind}" for x in g.negations)
        kinds.update(f"+{x.kind}" for x in g.paraphrases)
    latencies.sort()
    return {
        "n": len(captions), "neg_n": len(neg_ok), "neg_ok": share(neg_ok), "neg_first": share(neg_first),
        "para_n": len(para_ok), "para_ok": share(para_ok), "para_first": share(para_first),
        "no_neg": no_neg, "no_para": no_para, "no_output": no_output,
        "neg_kinds": statistics.mean(neg_kinds), "para_kinds": statistics.mean(para_kinds),
        "neg_kinds3": share([k >= 3 for k in neg_kinds]), "para_kinds3": share([k >= 3 for k in para_kinds]),
        "lat_mean": statistics.mean(latencies), "lat_p95": latencies[int(0.95 * (len(latencies) - 1))],
        "lat_max": latencies[-1], "kinds": kinds,
    }


def report(name: str, m: dict) -> None:
    print(f"\n{name}: {m['n']} captions")
    print(f"  negations  : {m['neg_n']:5d} generated, {m['neg_ok']:.1%} negate "
          f"(first per caption: {m['neg_first']:.1%}); captions without one: {m['no_neg']}")
    print(f"  paraphrases: {m['para_n']:5d} generated, {m['para_ok']:.1%} keep every content word "
          f"(first: {m['para_first']:.1%}); captions without one: {m['no_para']}")
    print(f"  captions with no output at all: {m['no_output']}")
    print(f"  distinct kinds per caption: negation {m['neg_kinds']:.2f} (>=3: {m['neg_kinds3']:.0%}), "
          f"paraphrase {m['para_kinds']:.2f} (>=3: {m['para_kinds3']:.0%})")
    print(f"  latency per caption: mean {m['lat_mean']:.2f} ms, p95 {m['lat_p95']:.2f} ms, "
          f"max {m['lat_max']:.2f} ms")
    print("  kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(m["kinds"].items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--show", type=int, default=3, help="print this many random examples per source")
    args = parser.parse_args()
    sources = load_sources(args.data)
    if not sources:
        raise SystemExit(f"no SugarCrepe++ / NegBench files under {args.data} (see --data)")
    backend = RulesBackend()
    backend.generate("warm up the lexicon")
    print(f"host={platform.node()} python={platform.python_version()} rules={backend.identity}")
    everything: list[str] = []
    for name, captions in sources.items():
        report(name, measure(backend, captions))
        everything += captions
        for caption in random.Random(0).sample(captions, min(args.show, len(captions))):
            g = backend.generate(caption)
            print(f"    e.g. {caption!r}\n      + {g.paraphrases[0].text if g.paraphrases else '-'!r}"
                  f"\n      - {g.negations[0].text if g.negations else '-'!r}")
    report("all sources", measure(backend, everything))


if __name__ == "__main__":
    main()
