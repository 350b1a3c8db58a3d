"""Gather the GPU check's figures into ``summary.json`` and print its closing table.

    python bench/gpu_summary.py OUTDIR [--steps STEPS.tsv] [--junit CUDA_TESTS.xml]

Reads what ``bench/gpu_check.sh`` left in OUTDIR (``env.json``, ``train_step*.json``), the
step table it kept (name, status, seconds, note: tab-separated) and pytest's JUnit report of
the tests marked ``cuda`` (their measured figures are ``record_property`` entries). Writes
``cuda_tests.json`` and ``summary.json`` into OUTDIR, checks the issue's targets (SemCLIP step
at least 1.3x the stock step's samples/s, SemCLIP MFU at least 35%) and prints a table. The
exit status is 0: a missed target is a figure to report, not a broken check.
"""

from __future__ import annotations

import argparse
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Optional, Sequence

TARGET_SPEEDUP = 1.3  # SemCLIP samples/s over the stock open_clip step (issue 16)
TARGET_MFU = 0.35  # model FLOP utilisation of the SemCLIP step (issue 16)
BENCH_FILES = ("train_step.json", "train_step_fused.json", "train_step_compiled.json")


def read_steps(path: Optional[Path]) -> list[dict[str, Any]]:
    """The script's step table: one ``name<TAB>status<TAB>seconds<TAB>note`` line per step."""
    if path is None or not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        name, status, seconds, note = (line.split("\t") + ["", "", ""])[:4]
        rows.append({"step": name, "status": status,
                     "seconds": float(seconds) if seconds else None, "note": note})
    return rows


def _property_value(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text  # a message, kept as text


def read_junit(path: Optional[Path]) -> list[dict[str, Any]]:
    """Each test of a JUnit report: name, outcome (passed, failed, error, skipped), seconds,
    the reason it failed or was skipped, and its recorded figures."""
    if path is None or not path.is_file():
        return []
    tests = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, reason = "passed", ""
        for kind in ("failure", "error", "skipped"):
            node = case.find(kind)
            if node is not None:
                outcome = {"failure": "failed"}.get(kind, kind)
                reason = (node.get("message") or "").splitlines()[0] if node.get("message") else ""
                break
        props = {p.get("name"): _property_value(p.get("value"))
                 for p in case.iter("property")}
        tests.append({"test": case.get("name"), "outcome": outcome,
                      "seconds": float(case.get("time") or 0), "reason": reason,
                      "figures": props})
    return tests


def check_targets(bench: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The issue's two targets against the best SemCLIP variant of one train_step run.

    Best = the highest samples/s; a target is ``met`` True/False, or None where the figure is
    missing or not a number (an unknown GPU's peak gives no MFU).
    """
    rows = {k: v for k, v in ((bench or {}).get("variants") or {}).items() if k != "stock"}
    speeds = {k: v.get("speedup_vs_stock") for k, v in rows.items()}
    speeds = {k: s for k, s in speeds.items() if isinstance(s, (int, float)) and not math.isnan(s)}
    if not speeds:
        return {"variant": None, "speedup": None, "speedup_met": None, "mfu": None,
                "mfu_met": None}
    best = max(speeds, key=lambda k: (speeds[k], -(rows[k].get("max_buckets") or 0)))
    mfu = rows[best].get("mfu")
    mfu = mfu if isinstance(mfu, (int, float)) and not math.isnan(mfu) else None
    return {"variant": best, "speedup": speeds[best], "speedup_met": speeds[best] >= TARGET_SPEEDUP,
            "mfu": mfu, "mfu_met": None if mfu is None else mfu >= TARGET_MFU}


def _met(flag: Optional[bool]) -> str:
    return {True: "MET", False: "NOT MET", None: "unknown"}[flag]


def _fmt(value: Any, spec: str) -> str:
    if not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def table(summary: dict[str, Any]) -> str:
    """The closing table, as printed."""
    env = summary.get("env", {})
    lines = [f"GPU check{' (DRY RUN, no GPU)' if env.get('dry_run') else ''}: "
             f"{env.get('gpu') or 'no GPU'} | torch {env.get('torch', '?')} | CUDA "
             f"{env.get('cuda') or '-'} | driver {env.get('driver') or '-'} | "
             f"{env.get('date', '?')} | commit {env.get('commit', '?')}", "",
             f"{'step':24} {'status':10} {'seconds':>8}  note"]
    for s in summary["steps"]:
        lines.append(f"{s['step']:24} {s['status']:10} {_fmt(s['seconds'], '8.0f'):>8}  {s['note']}")
    lines += ["", f"{'test marked cuda':64} {'outcome':8} figures"]
    for t in summary["cuda_tests"]:
        figs = ", ".join(f"{k}={_fmt(v, '.6g') if not isinstance(v, str) else v}"
                         for k, v in t["figures"].items())
        lines.append(f"{t['test'][:64]:64} {t['outcome']:8} {figs or t['reason']}")
    for name, bench in summary["train_step"].items():
        lines += ["", f"{name}: {bench.get('model')} batch {bench.get('batch')} "
                      f"{bench.get('precision')} on {bench.get('device_name')}, fused AdamW "
                      f"{bench.get('fused_adamw')}, compile {bench.get('compile')}; MFU against "
                      f"{_fmt((bench.get('peak_flops') or float('nan')) / 1e12, '.1f')} TFLOP/s "
                      f"({bench.get('peak_source')})",
                  f"  {'variant':12} {'samples/s':>10} {'x stock':>8} {'step ms':>8} {'MFU':>7}"]
        for vname, r in bench.get("variants", {}).items():
            lines.append(f"  {vname:12} {_fmt(r.get('samples_per_s'), '10.1f'):>10} "
                         f"{_fmt(r.get('speedup_vs_stock'), '8.2f'):>8} "
                         f"{_fmt(r.get('step_ms'), '8.1f'):>8} {_fmt(r.get('mfu'), '7.1%'):>7}")
    lines.append("")
    for name, t in summary["targets"].items():
        lines.append(f"targets ({name}, best {t['variant']}): SemCLIP >= {TARGET_SPEEDUP}x stock: "
                     f"{_fmt(t['speedup'], '.2f')}x {_met(t['speedup_met'])}; MFU >= "
                     f"{TARGET_MFU:.0%}: {_fmt(t['mfu'], '.1%')} {_met(t['mfu_met'])}")
    best = summary["train_step"].get("train_step.json", {}).get("best_max_buckets")
    lines.append(f"fastest bucket limit in train_step.json: {best if best is not None else '-'}")
    failed = [s["step"] for s in summary["steps"] if s["status"] not in ("ok", "skipped", "fallback")]
    lines.append(f"RESULT: {'FAILED steps: ' + ', '.join(failed) if failed else 'all steps ok'}")
    return "\n".join(lines)


def summarise(out_dir: Path, steps_tsv: Optional[Path], junit: Optional[Path]) -> dict[str, Any]:
    """Build the summary from OUTDIR and write ``cuda_tests.json`` and ``summary.json`` there."""
    env_path = out_dir / "env.json"
    env = json.loads(env_path.read_text()) if env_path.is_file() else {}
    tests = read_junit(junit)
    (out_dir / "cuda_tests.json").write_text(json.dumps(tests, indent=2) + "\n")
    benches = {name: json.loads((out_dir / name).read_text())
               for name in BENCH_FILES if (out_dir / name).is_file()}
    summary = {"env": env, "steps": read_steps(steps_tsv), "cuda_tests": tests,
               "train_step": benches,
               "targets": {name: check_targets(b) for name, b in benches.items()}}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--steps", type=Path, help="the script's step table (TSV)")
    parser.add_argument("--junit", type=Path, help="pytest's JUnit report of the cuda tests")
    args = parser.parse_args(argv)
    print(table(summarise(args.out_dir, args.steps, args.junit)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
