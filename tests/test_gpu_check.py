"""The prepared GPU check (bench/gpu_check.sh): its dry run on this CPU, its refusals, and the
figures its summary and bench/train_step.py compute, against hand-computed values."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"
# What the device tool brings back from $OUT: at most 8 files, names of letters, digits, . _ -
MAX_FILES_BACK = 8
VARIANT_KEYS = {"max_buckets", "samples_per_s", "step_ms", "step_ms_min", "step_ms_max",
                "gflop_per_step", "mfu", "memory_mib", "cache_fill_ms", "speedup_vs_stock"}


def bench_module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_check(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=ROOT)


# --- the script ------------------------------------------------------------------------------

@pytest.mark.slow
def test_dry_run_checks_everything_but_the_gpu(tmp_path):
    out = tmp_path / "out"
    done = run_check("--dry-run", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["cuda_tests.json", "env.json", "gpu_check.log", "summary.json",
                     "train_step.json", "train_step_fused.json"]
    assert len(files) <= MAX_FILES_BACK and all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"]["dry_run"] is True
    assert Path(summary["env"]["engine"]) == ROOT / "engine"  # the tree's code was installed
    status = {s["step"]: s["status"] for s in summary["steps"]}
    assert status == {"install": "ok", "cuda tests": "ok", "train_step buckets": "ok",
                      "train_step fused AdamW": "ok", "train_step compiled": "skipped",
                      "photo recipe": "skipped"}
    tests = summary["cuda_tests"]
    assert len(tests) == 5 and all(t["outcome"] == "skipped" for t in tests)

    bench = json.loads((out / "train_step.json").read_text())
    assert list(bench["variants"]) == ["stock", "semclip-b1", "semclip-b3", "semclip-b6"]
    assert all(set(v) == VARIANT_KEYS for v in bench["variants"].values())
    assert bench["peak_flops"] > 0 and "CPU" in bench["peak_source"]
    assert bench["best_max_buckets"] in (1, 3, 6)
    fused = json.loads((out / "train_step_fused.json").read_text())
    assert fused["fused_adamw"] is True
    assert list(fused["variants"]) == ["stock", f"semclip-b{bench['best_max_buckets']}"]

    assert "RESULT: all steps ok" in done.stdout
    assert "targets (train_step.json, best semclip-b" in done.stdout
    assert "RESULT: all steps ok" in (out / "gpu_check.log").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_real_check_stops_at_install_and_says_why(tmp_path):
    done = run_check(str(tmp_path / "out"))
    assert done.returncode == 1
    if (ROOT / ".whl").is_dir():  # the wheels are here (bench/gpu_wheels.sh ran): the GPU lacks
        assert "no CUDA GPU is visible to PyTorch here: run with --dry-run" in done.stdout
    else:  # a fresh clone: the wheels are checked first
        assert "missing wheel: open_clip_torch==3.3.0 in .whl/ (run bench/gpu_wheels.sh)" in done.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [s["status"] for s in summary["steps"]] == ["failed", "failed"]  # venv, then tree
    assert "RESULT: FAILED steps: install, install from the tree" in done.stdout


@pytest.mark.parametrize("args", [[], ["--dry-run"], ["--bogus", "out"], ["a", "b"]])
def test_bad_usage_exits_2_with_the_usage(args):
    done = run_check(*args)
    assert done.returncode == 2
    assert "usage: bash bench/gpu_check.sh" in done.stderr or "gpu_check.sh:" in done.stderr


# --- figures, by hand --------------------------------------------------------------------------

def test_train_step_figures_against_hand_computed_values():
    ts = bench_module("train_step")
    stock = ts.Variant("stock", times=[0.5, 0.25, 1.0], flops=2 * 10 ** 9)
    even = ts.Variant("semclip-b3", 3, times=[0.2, 0.4], flops=10 ** 9, cache_s=0.05)
    rows = ts.figures([stock, even], batch=10, peak=4e9)
    assert rows["stock"]["samples_per_s"] == pytest.approx(20.0)  # 10 / median 0.5
    assert rows["stock"]["step_ms_min"] == pytest.approx(250.0)
    assert rows["stock"]["mfu"] == pytest.approx(1.0)  # 2e9 / 0.5 s / 4e9
    assert rows["semclip-b3"]["step_ms"] == pytest.approx(300.0)  # even count: mean of middle two
    assert rows["semclip-b3"]["samples_per_s"] == pytest.approx(10 / 0.3)
    assert rows["semclip-b3"]["speedup_vs_stock"] == pytest.approx(0.5 / 0.3)
    assert rows["semclip-b3"]["mfu"] == pytest.approx(1e9 / 0.3 / 4e9)
    assert rows["semclip-b3"]["cache_fill_ms"] == pytest.approx(50.0)
    unknown_peak = ts.figures([stock], batch=10, peak=float("nan"))
    assert math.isnan(unknown_peak["stock"]["mfu"])
    assert ts._json_safe({"a": {"mfu": float("nan"), "x": float("inf"), "y": 1.5}}) == \
        {"a": {"mfu": None, "x": None, "y": 1.5}}


def test_fastest_bucket_limit_prefers_fewer_buckets_on_a_tie():
    ts = bench_module("train_step")
    rows = {"stock": {"samples_per_s": 99.0, "max_buckets": None},
            "semclip-b6": {"samples_per_s": 50.0, "max_buckets": 6},
            "semclip-b3": {"samples_per_s": 50.0, "max_buckets": 3},
            "semclip-b1": {"samples_per_s": 40.0, "max_buckets": 1}}
    assert ts.best_max_buckets(rows) == 3
    rows["semclip-b1"]["samples_per_s"] = float("nan")
    assert ts.best_max_buckets(rows) == 3
    assert ts.best_max_buckets({"stock": rows["stock"]}) is None
    assert [v.name for v in ts.variants_for([3, 1, 3])] == ["stock", "semclip-b3", "semclip-b1"]
    assert [v.name for v in ts.variants_for(None)] == ["stock", "semclip"]


def test_targets_are_met_at_the_threshold_and_unknown_without_a_figure():
    gs = bench_module("gpu_summary")

    def bench(**variants):
        return {"variants": {"stock": {"speedup_vs_stock": 1.0, "mfu": 0.5, "max_buckets": None},
                             **variants}}

    exact = gs.check_targets(bench(**{"semclip-b1": {"speedup_vs_stock": 1.3, "mfu": 0.35,
                                                     "max_buckets": 1}}))
    assert exact == {"variant": "semclip-b1", "speedup": 1.3, "speedup_met": True, "mfu": 0.35,
                     "mfu_met": True}
    below = gs.check_targets(bench(**{"semclip-b3": {"speedup_vs_stock": 1.29, "mfu": None,
                                                     "max_buckets": 3}}))
    assert below["speedup_met"] is False and below["mfu"] is None and below["mfu_met"] is None
    tie = gs.check_targets(bench(**{"semclip-b6": {"speedup_vs_stock": 2.0, "mfu": 0.2, "max_buckets": 6},
                                    "semclip-b3": {"speedup_vs_stock": 2.0, "mfu": 0.3, "max_buckets": 3},
                                    "semclip-b1": {"speedup_vs_stock": float("nan"), "mfu": 0.9,
                                                   "max_buckets": 1}}))
    assert tie["variant"] == "semclip-b3" and tie["mfu_met"] is False  # 0.3 < 0.35
    assert gs.check_targets(None)["speedup_met"] is None
    assert gs.check_targets(bench())["variant"] is None  # stock alone: nothing to compare


def test_summary_reads_the_junit_report_and_the_step_table(tmp_path):
    gs = bench_module("gpu_summary")
    (tmp_path / "junit.xml").write_text(
        '<testsuites><testsuite>'
        '<testcase name="t_pass" time="1.5"><properties><property name="loss" value="0.25"/>'
        '<property name="message" value="error (oom): GPU out of memory"/></properties></testcase>'
        '<testcase name="t_fail" time="2"><failure message="assert 1 &lt; 0&#10;more">tb</failure></testcase>'
        '<testcase name="t_err" time="0"><error message="teardown broke">tb</error></testcase>'
        '<testcase name="t_skip" time="0"><skipped message="needs a CUDA GPU"/></testcase>'
        '</testsuite></testsuites>')
    tests = gs.read_junit(tmp_path / "junit.xml")
    assert [(t["test"], t["outcome"]) for t in tests] == [
        ("t_pass", "passed"), ("t_fail", "failed"), ("t_err", "error"), ("t_skip", "skipped")]
    assert tests[0]["figures"] == {"loss": 0.25, "message": "error (oom): GPU out of memory"}
    assert tests[0]["seconds"] == 1.5 and tests[1]["reason"] == "assert 1 < 0"
    (tmp_path / "steps.tsv").write_text("install\tok\t12\t\nphoto recipe\tskipped\t\tnone yet\n")
    steps = gs.read_steps(tmp_path / "steps.tsv")
    assert steps == [{"step": "install", "status": "ok", "seconds": 12.0, "note": ""},
                     {"step": "photo recipe", "status": "skipped", "seconds": None,
                      "note": "none yet"}]
    summary = gs.summarise(tmp_path, tmp_path / "steps.tsv", tmp_path / "junit.xml")
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert "RESULT: all steps ok" in gs.table(summary)
