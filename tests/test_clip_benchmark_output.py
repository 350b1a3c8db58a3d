"""``semclip eval --format clip_benchmark``: CLIP_benchmark's own ``build`` step aggregates our
files; ``--output`` templates and ``--skip-existing`` behave as in CLIP_benchmark."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_negbench_retrieval import FIXTURE, coco_folder

from engine.cli.commands import main
from engine.eval.clip_benchmark_output import OutputTemplateError, model_names, output_paths
from engine.model.loading import load_model


def eval_args(folder: Path, *extra: str) -> list[str]:
    return ["eval", "--benchmark", "negbench_retrieval", "--data", str(FIXTURE),
            "--images", str(folder), "--model", "semclip-tiny", "--quiet", *extra]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A second model: semclip-tiny's seed-1 weights as a plain weights file."""
    path = tmp_path_factory.mktemp("weights") / "seed1.pt"
    torch.save(load_model("semclip-tiny", seed=1).model.state_dict(), path)
    return path


def test_clip_benchmark_build_aggregates_our_files(tmp_path, checkpoint, capsys):
    pytest.importorskip("clip_benchmark", reason="clip-benchmark is not installed (test extra)")
    folder = coco_folder(tmp_path)
    out = tmp_path / "results"
    template = str(out / "{dataset}_{model}_{pretrained}_{task}.json")
    assert main(eval_args(folder, "--model", f"semclip-tiny:{checkpoint}", "--format",
                          "clip_benchmark", "--output", template)) == 0
    files = sorted(out.glob("*.json"))
    assert [f.name for f in files] == [
        "negbench_retrieval_COCO_val_negated_retrieval_sample_semclip-tiny__zeroshot_retrieval.json",
        "negbench_retrieval_COCO_val_negated_retrieval_sample_semclip-tiny_seed1.pt_"
        "zeroshot_retrieval.json"]
    record = json.loads(files[1].read_text())
    assert set(record) == {"dataset", "model", "pretrained", "task", "metrics", "language"}
    assert record["dataset"] == "negbench_retrieval/COCO_val_negated_retrieval_sample"
    assert (record["model"], record["pretrained"]) == ("semclip-tiny", str(checkpoint))
    assert set(record["metrics"]) == {f"image_retrieval_recall@{k}" for k in (1, 5, 10)}

    table = tmp_path / "benchmark.csv"
    build = subprocess.run([sys.executable, "-c", "from clip_benchmark.cli import main; main()",
                            "build", str(out), "--output", str(table)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    rows = sorted(csv.DictReader(table.open()), key=lambda r: r["pretrained"])
    assert [r["model_fullname"] for r in rows] == ["semclip-tiny ", f"semclip-tiny {checkpoint}"]
    assert float(rows[1]["image_retrieval_recall@1"]) == record["metrics"]["image_retrieval_recall@1"]
    assert {r["task"] for r in rows} == {"zeroshot_retrieval"}


def test_skip_existing_skips_models_whose_file_exists(tmp_path, checkpoint, capsys):
    folder = coco_folder(tmp_path)
    template = str(tmp_path / "{model}_{pretrained}.json")
    done = tmp_path / "semclip-tiny_.json"
    done.write_text("{}")  # an earlier run's file: kept as it is
    assert main(eval_args(folder, "--model", f"semclip-tiny:{checkpoint}", "--format",
                          "clip_benchmark", "--output", template, "--skip-existing")) == 0
    printed = capsys.readouterr().out
    assert f"skip semclip-tiny: {done} exists already" in printed
    assert done.read_text() == "{}"
    assert json.loads((tmp_path / "semclip-tiny_seed1.pt.json").read_text())["metrics"]
    # everything done: nothing loads, nothing is written, success
    assert main(eval_args(folder, "--model", f"semclip-tiny:{checkpoint}", "--format",
                          "clip_benchmark", "--output", template, "--skip-existing")) == 0
    assert capsys.readouterr().out.count("exists already") == 2


def test_skip_existing_with_the_semclip_results_file(tmp_path, capsys):
    out = tmp_path / "r.json"
    out.write_text("{}")
    assert main(eval_args(coco_folder(tmp_path), "--json", str(out), "--skip-existing")) == 0
    assert f"{out} exists already" in capsys.readouterr().out and out.read_text() == "{}"


@pytest.mark.parametrize("extra, message", [
    (["--format", "clip_benchmark", "--output", "{dataset}_{arch}.json"], "unknown field.*{arch}"),
    (["--format", "clip_benchmark", "--output", "{dataset}.json", "--model", "semclip-tiny:x.pt"],
     "the same file"),
    (["--output", "{dataset}.json"], "--output is the file name template of --format "
                                     "clip_benchmark"),
])
def test_bad_output_options_fail_before_any_work(tmp_path, capsys, extra, message):
    assert main(eval_args(tmp_path, *extra)) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not list(tmp_path.glob("*.json"))


def test_names_follow_clip_benchmark():
    assert model_names("ViT-B-32:laion2b_s34b_b79k") == ("ViT-B-32", "laion2b_s34b_b79k")
    assert model_names("semclip-tiny") == ("semclip-tiny", "")
    assert output_paths("{dataset}_{pretrained}_{model}_{language}_{task}.json", "zeroshot",
                        "/data/flowers_test", ["ViT-B-32:openai"]) == [
        Path("zeroshot_flowers_test_openai_ViT-B-32_en_zeroshot_classification.json")]
    with pytest.raises(OutputTemplateError, match="--output '{model'"):
        output_paths("{model", "shapes", None, ["semclip-tiny"])
