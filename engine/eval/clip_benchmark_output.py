"""Evaluation results as CLIP_benchmark's result files, so its ``build`` step aggregates them.

CLIP_benchmark (``clip_benchmark/cli.py``) writes one JSON file per model and data set::

    {"dataset": str, "model": str, "pretrained": str, "task": str,
     "metrics": {name: value}, "language": str}

named by a template such as ``{dataset}_{pretrained}_{model}_{language}_{task}.json`` (its
default), and ``clip_benchmark build FILES`` turns a set of them into one CSV (a row per file,
a column per metric). This module maps a ``semclip eval`` run onto that layout: ``model`` is
the architecture, ``pretrained`` the pretrained tag or the checkpoint file, ``task`` the
CLIP_benchmark task closest to the benchmark. Pure file logic: no model is loaded here.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Optional, Union

from engine.paths import CHECKPOINT_SUFFIXES

# torch-free at import (``semclip eval --help`` reads the constants below): engine.model.loading and
# engine.eval.run are imported where they are used

DEFAULT_TEMPLATE = "{dataset}_{pretrained}_{model}_{language}_{task}.json"  # CLIP_benchmark's
TEMPLATE_FIELDS = ("dataset", "model", "pretrained", "pretrained_full_path", "task", "language")
LANGUAGE = "en"  # every benchmark the project reads is English

# CLIP_benchmark's task names: retrieval, classification, and "pick the right caption"
# (its task for SugarCrepe, the pairwise and multiple-choice benchmarks here).
TASKS = {"shapes": "zeroshot_retrieval", "triples": "zeroshot_retrieval",
         "negbench_retrieval": "zeroshot_retrieval", "zeroshot": "zeroshot_classification",
         "ccneg": "image_caption_selection", "sugarcrepe_pp": "image_caption_selection",
         "negbench_mcq": "image_caption_selection"}


class OutputTemplateError(ValueError):
    """An ``--output`` template names an unknown field or gives two models one file."""


def dataset_name(benchmark: str, data: Optional[Union[str, Path]]) -> str:
    """``benchmark/stem-of-the-data-file`` (``negbench_mcq/COCO_val_mcq``), as CLIP_benchmark's
    ``sugar_crepe/add_att``; shapes is named by its seed."""
    if benchmark == "shapes":
        return f"shapes/seed{data or 0}"
    if data in (None, ""):
        return benchmark
    path = Path(data)
    return f"{benchmark}/{path.name if path.is_dir() else path.stem}"


def model_names(spec: str) -> tuple[str, str]:
    """(model, pretrained) of a model spec as CLIP_benchmark names them: ``ViT-B-32:openai`` ->
    (``ViT-B-32``, ``openai``); a checkpoint -> (its architecture, the checkpoint path); a bare
    architecture -> (it, ``""``). Reads at most a sidecar: nothing is loaded."""
    from engine.model.loading import parse_spec, read_sidecar

    arch, pretrained = parse_spec(spec)
    if Path(arch).suffix in CHECKPOINT_SUFFIXES:
        sidecar = read_sidecar(arch) if Path(arch).is_file() else {}
        return str(sidecar.get("model_name") or Path(arch).stem), arch
    return arch, pretrained or ""


def check_template(template: str) -> None:
    """Raise :class:`OutputTemplateError` if ``template`` uses a field CLIP_benchmark lacks."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise OutputTemplateError(f"--output {template!r}: {exc}") from None
    unknown = [name for name in fields if name not in TEMPLATE_FIELDS]
    if unknown:
        raise OutputTemplateError(f"--output {template!r}: unknown field(s) "
                                  f"{', '.join('{' + n + '}' for n in unknown)}; known: "
                                  f"{', '.join('{' + n + '}' for n in TEMPLATE_FIELDS)}")


def output_paths(template: str, benchmark: str, data: Optional[Union[str, Path]],
                 specs: list[str]) -> list[Path]:
    """The file each model's results go to, filled in as CLIP_benchmark fills its template
    (``/`` in the data set and model replaced by ``_``; ``{pretrained}`` a file's base name).
    Two models sharing a file is an :class:`OutputTemplateError`: one would overwrite the other."""
    check_template(template)
    dataset = dataset_name(benchmark, data).replace("/", "_")
    paths = []
    for spec in specs:
        model, pretrained = model_names(spec)
        is_file = Path(pretrained).suffix in CHECKPOINT_SUFFIXES
        paths.append(Path(template.format(
            dataset=dataset, model=model.replace("/", "_"), task=TASKS[benchmark],
            pretrained=Path(pretrained).name if is_file else pretrained.replace("/", "_"),
            pretrained_full_path=pretrained.replace("/", "_"), language=LANGUAGE)))
    for i, path in enumerate(paths):
        if path in paths[:i]:
            raise OutputTemplateError(
                f"--output {template!r} gives {specs[paths.index(path)]} and {specs[i]} the same "
                f"file {path}; add {{model}} or {{pretrained}} to it")
    return paths


def clip_benchmark_record(results: dict, model_index: int, data: Optional[Union[str, Path]]) -> dict:
    """One model's entry of a results dict (:mod:`engine.eval.run`) in CLIP_benchmark's layout."""
    entry = results["models"][model_index]
    model, pretrained = model_names(entry["spec"])
    return {"dataset": dataset_name(results["benchmark"], data), "model": model,
            "pretrained": pretrained, "task": TASKS[results["benchmark"]],
            "metrics": dict(entry["metrics"]), "language": LANGUAGE}


def write_clip_benchmark(results: dict, paths: list[Path],
                         data: Optional[Union[str, Path]]) -> list[Path]:
    """Write each model's record to its path (atomically; NaN as null); returns the paths."""
    from engine.eval.run import save_results

    if len(paths) != len(results["models"]):
        raise ValueError(f"{len(paths)} output paths for {len(results['models'])} models")
    return [save_results(path, clip_benchmark_record(results, i, data))
            for i, path in enumerate(paths)]
