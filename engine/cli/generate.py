"""``semclip generate``: a thin command-line client of :func:`engine.captions.batch.generate_triples`.

Exit status: 0 when every row was generated, 1 when any row failed or the job stopped (the
failed rows are listed in ``<out>.failed.csv``), 2 for a usage error, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys

from engine.data.triples_io import add_columns_argument, parse_columns

from engine.captions import BACKENDS, make_backend
from engine.captions.batch import MAX_CONSECUTIVE_FAILURES, generate_triples

LLM_OPTIONS = {"base_url": "--base-url", "generator_model": "--generator-model",
               "validator_model": "--validator-model", "max_tries": "--max-tries",
               "timeout_s": "--timeout", "json_mode": "--json-mode/--no-json-mode"}
SHOWN_FAILURES = 10


def add_generate_parser(sub) -> None:
    """Register ``generate`` on the ``semclip`` sub-command parser."""
    p = sub.add_parser("generate", help="add paraphrases and negations to a captions file (triples)",
                       description="Read a CSV/JSONL file with a caption (and usually an image) "
                                   "column; write the triples format image,caption,paraphrase,negation.")
    p.add_argument("--in", dest="source", required=True, metavar="FILE", help="captions CSV or JSONL")
    p.add_argument("--out", required=True, metavar="FILE", help="triples file to write (.csv or .jsonl)")
    p.add_argument("--backend", choices=BACKENDS, default="rules",
                   help="rules: offline and deterministic (default); llm: an OpenAI-compatible server")
    p.add_argument("--workers", type=int, help="concurrent captions (default: 1 for rules, 4 for llm)")
    p.add_argument("--base-url", help="LLM server, e.g. http://127.0.0.1:11434/v1 (Ollama, the default)")
    p.add_argument("--generator-model", help="LLM that proposes (default phi4)")
    p.add_argument("--validator-model", help="LLM that accepts or rejects (default mistral)")
    p.add_argument("--max-tries", type=int, help="LLM proposals per caption (default 3)")
    p.add_argument("--timeout", dest="timeout_s", type=float, metavar="SECONDS",
                   help="per LLM request, retried once on a timeout (default 30)")
    p.add_argument("--json-mode", action=argparse.BooleanOptionalAction, default=None,
                   help="ask the generator for a JSON object (response_format; default on); "
                        "turn it off for servers that mishandle it")
    p.add_argument("--max-consecutive-failures", type=int, default=MAX_CONSECUTIVE_FAILURES,
                   metavar="N", help="stop after N captions in a row failed, e.g. at a server that "
                                     f"errs or hangs (default {MAX_CONSECUTIVE_FAILURES}; 0 = never)")
    p.add_argument("--cache", metavar="FILE", help="SQLite cache (default: <cache dir>/captions.sqlite)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    add_columns_argument(p, "the input's")
    p.add_argument("--replace-existing", action="store_true",
                   help="regenerate paraphrase/negation cells the input already holds (by "
                        "default they are kept and only empty cells are generated)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    settings = {key: getattr(args, key) for key in LLM_OPTIONS if getattr(args, key) is not None}
    if args.backend != "llm" and settings:
        flags = ", ".join(LLM_OPTIONS[k] for k in settings)
        print(f"error: {flags} only apply to --backend llm", file=sys.stderr)
        return 2
    if args.max_consecutive_failures < 0:
        print("error: --max-consecutive-failures must be >= 0", file=sys.stderr)
        return 2
    try:
        backend = make_backend(args.backend, **settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        columns = parse_columns(args.columns) if args.columns else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workers = args.workers or (4 if args.backend == "llm" else 1)
    events = generate_triples(args.source, args.out, backend, workers=workers, cache_path=args.cache,
                              use_cache=not args.no_cache,
                              max_consecutive_failures=args.max_consecutive_failures,
                              columns=columns, replace_existing=args.replace_existing)
    try:
        return _drain(events, backend.name, args.quiet)
    except KeyboardInterrupt:
        resume = "" if args.no_cache else ": finished captions are cached; run the same command to resume"
        print(f"\ninterrupted{resume}", file=sys.stderr)
        return 130


def _drain(events, name: str, quiet: bool) -> int:
    """Show a generate job on the console; 1 if it failed or left captions without a triple."""
    from engine.cli.console import Console, drain

    console = Console(quiet=quiet, info=True, info_prefix="", unit="caption",
                      bar_desc=f"generate ({name})")
    code, done = drain(events, console)
    if done is None:
        return code
    failures = done.result.failures
    _print_failures(failures)
    return 1 if failures else 0


def _print_failures(failures: list[dict]) -> None:
    for f in failures[:SHOWN_FAILURES]:
        print(f"  line {f['line']}: {f['reason']} ({f['caption'][:60]!r})")
    if len(failures) > SHOWN_FAILURES:
        print(f"  ... and {len(failures) - SHOWN_FAILURES} more")
