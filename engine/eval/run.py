"""Run a benchmark on one or more models: a generator of events, plus a plain helper.

``evaluate`` loads the benchmark once, then for each model embeds every distinct image once
(through the on-disk :mod:`engine.model.embed_cache`), embeds every distinct text in batches, and
scores with :mod:`engine.eval.metrics`. It yields ``Progress`` (phases ``"images"`` and ``"texts"``),
``Log`` (rows skipped for missing or unreadable images, with counts and examples),
``EvalResult`` per model, and finally ``Done(result=<results dict>)``. It ends with ``Error``
instead when there is nothing to score (an empty file, no readable image) or a model's
embeddings are not finite (a diverged model: the message names it).

Results (what ``--json`` writes and the app plots)::

    {"schema": "semclip-eval/1", "benchmark": str, "data": str, "images": str | None,
     "date": ISO-8601, "settings": {...}, "skipped": {"missing_images": [...],
     "unreadable_images": [...]},
     "models": [{"spec", "identity", "model_name", "label", "metrics": {name: value},
                 "counts": {"rows", "evaluated", "missing_images", "unreadable_images"},
                 "cache": {"hits", "encoded"}}]}

Counts are in rows: ``rows = evaluated + missing_images + unreadable_images``.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any, Generator, Iterator, Optional, Sequence, Union

import torch

from engine.atomic import atomic_write_text
from engine.eval import benchmarks as bm
from engine.eval import metrics as M
from engine.events import (Done, Error, EvalResult, Event, JobError, Log, NeverStop, Progress,
                           StopFlag, run_to_end)
from engine.model._openclip import has_timm_trunk
from engine.model.embed_cache import ImageEmbeddingCache, embed_image_sources
from engine.model.encoding import embed_texts
from engine.model.trunk_cache import embed_via_trunk, trunk_cache_for
from engine.paths import CHECKPOINT_SUFFIXES

BENCHMARKS = bm.BENCHMARKS
CAPTION_RECALL_KS = {"t2i": (1, 5, 10), "i2t": (1, 5, 10), "paraphrase": (1, 5)}
RETRIEVAL_KS = (1, 5, 10)  # NegBench's negated retrieval reports recall at these depths
RESULTS_SCHEMA = "semclip-eval/1"
MAX_LISTED_SKIPS = 200  # rows named in the results file per kind (counts are always complete)

# Preferred order of metrics in tables; anything else follows alphabetically.
METRIC_ORDER = ("ono_accuracy", "scaled_negation", "negation_grounding", "caption_content_top1",
                "caption_top1", "caption_top3", "caption_top5", "paraphrase_top1", "paraphrase_top3",
                "paraphrase_top5", "composite_score", "itt_accuracy",
                "tot_accuracy", "img_p1_n_accuracy", "img_p2_n_accuracy", "mcq_accuracy",
                "mcq_accuracy_affirmation", "mcq_accuracy_negation", "mcq_accuracy_hybrid",
                *(f"image_retrieval_recall@{k}" for k in RETRIEVAL_KS),
                *(f"{kind}_recall@{k}" for kind, ks in CAPTION_RECALL_KS.items() for k in ks),
                "affirmative_accuracy", "negated_accuracy", "negation_gap")


class EvaluationError(JobError):
    """An evaluation could not run (bad data, unknown benchmark); the message says why."""


def load_benchmark(benchmark: str, data: Optional[Union[str, Path]], images: Optional[Union[str, Path]],
                   n: int = 500, eval_size: int = bm.CCNEG_EVAL_SIZE,
                   shapes_image_size: int = 64,
                   columns: Optional[dict[str, str]] = None,
                   split_part: Optional[Any] = None) -> bm.BenchmarkData:
    """Dispatch to the loader of ``benchmark`` (see :mod:`engine.eval.benchmarks`); ``columns``
    maps the triples fields to a triples file's column names."""
    if benchmark not in BENCHMARKS:
        raise bm.BenchmarkFormatError(f"unknown benchmark {benchmark!r}; choose from {BENCHMARKS}")
    if benchmark == "shapes":
        try:
            seed = int(data) if data not in (None, "") else 0
        except ValueError as exc:
            raise bm.BenchmarkFormatError(f"shapes: --data must be omitted or be a world seed "
                                          f"(an integer), got {data!r}") from exc
        return bm.load_shapes(n=n, seed=seed, image_size=shapes_image_size)
    if data in (None, ""):
        raise bm.BenchmarkFormatError(f"{benchmark}: give the benchmark file or folder (--data)")
    if benchmark == "sugarcrepe_pp":
        return bm.load_sugarcrepe_pp(data, images)
    if benchmark == "ccneg":
        return bm.load_ccneg(data, images, eval_size=eval_size)
    if benchmark == "negbench_mcq":
        return bm.load_negbench_mcq(data, images)
    if benchmark == "negbench_retrieval":
        return bm.load_negbench_retrieval(data, images)
    if benchmark == "zeroshot":
        return bm.load_zeroshot_folder(data)
    # triples, captions_retrieval
    return bm.load_triples_file(data, images, columns=columns, split_part=split_part)


def _distinct_images(rows: Sequence[bm.EvalRow]) -> tuple[list[bm.ImageSource], list[int]]:
    """Distinct image sources and, per row, the index of its image among them."""
    sources: list[bm.ImageSource] = []
    position: dict[Any, int] = {}
    row_image = []
    for row in rows:
        key = str(row.image) if isinstance(row.image, Path) else id(row.image)
        if key not in position:
            position[key] = len(sources)
            sources.append(row.image)
        row_image.append(position[key])
    return sources, row_image


def _embed_texts_with_progress(loaded, texts: list[str], batch_size: int, stop: StopFlag,
                               label: str) -> Iterator[Progress]:
    """Embed distinct texts in batches; returns {text: row index} and the (T, d) embeddings."""
    distinct = list(dict.fromkeys(texts))
    chunks = []
    for start in range(0, len(distinct), batch_size):
        if stop.is_set():
            return None
        chunk = distinct[start:start + batch_size]
        chunks.append(embed_texts(loaded.model, loaded.tokenizer, chunk, batch_size=batch_size))
        yield Progress(done=start + len(chunk), total=len(distinct), phase="texts", message=label)
    emb = torch.cat(chunks) if chunks else torch.empty(0, loaded.embed_dim)
    return {text: i for i, text in enumerate(distinct)}, emb


def _negation_grounding(rows: Sequence[bm.EvalRow], per_row_img: torch.Tensor,
                        texts) -> dict[str, float]:
    """``negation_grounding`` when every row has a true negation: two negated sentences, one
    true of the image and one false; only grounding the negation tells them apart (a model that
    reads "no X" as "X" prefers the false one)."""
    if not rows or not all("true_negation" in row.texts for row in rows):
        return {}
    return {"negation_grounding": M.original_over_negation_accuracy(
        per_row_img, texts("true_negation"), texts("negation"))}


def score_rows(benchmark: str, rows: Sequence[bm.EvalRow], row_image: Sequence[int],
               image_emb: torch.Tensor, text_index: dict[str, int], text_emb: torch.Tensor,
               class_names: Sequence[str] = (), retrieval_k: Sequence[int] = (1, 5)
               ) -> dict[str, float]:
    """Metrics of ``benchmark`` for rows whose images are embedded (pure: no I/O);
    ``retrieval_k``: the depths of the triples' text-to-image top-k.

    ``image_emb`` holds the distinct images; ``row_image[i]`` is row i's image among them.
    """
    def texts(role: str) -> torch.Tensor:
        return text_emb[[text_index[row.texts[role]] for row in rows]]

    per_row_img = image_emb[list(row_image)]
    if benchmark == "captions_retrieval":
        # several captions per image (Flickr8k, COCO); ties are misses (engine.eval.metrics)
        captions = texts("caption")
        result = {f"t2i_recall@{k}": M.topk_text_to_image_accuracy(
                      captions, image_emb, k, text_to_image=row_image)
                  for k in CAPTION_RECALL_KS["t2i"]}
        result.update({f"i2t_recall@{k}": M.topk_image_to_text_accuracy(
                           image_emb, captions, k, text_to_image=row_image)
                       for k in CAPTION_RECALL_KS["i2t"]})
        result.update({f"paraphrase_recall@{k}": M.topk_paraphrase_accuracy(captions, row_image, k)
                       for k in CAPTION_RECALL_KS["paraphrase"]})
        result["ono_accuracy"] = M.original_over_negation_accuracy(per_row_img, captions,
                                                                   texts("negation"))
        result.update(_negation_grounding(rows, per_row_img, texts))
        return result
    if benchmark in ("shapes", "triples", "ccneg"):
        ono = M.original_over_negation_accuracy(per_row_img, texts("caption"), texts("negation"))
        result = {"ono_accuracy": ono, "scaled_negation": M.scaled_negation_score(ono)}
        if benchmark == "ccneg":
            return result
        for role in ("caption", "paraphrase"):
            for k in retrieval_k:
                result[f"{role}_top{k}"] = M.topk_text_to_image_accuracy(
                    texts(role), image_emb, k, text_to_image=row_image)
        if 1 in retrieval_k:  # the composite needs the top-1 scores
            result["composite_score"] = M.composite_score(result["caption_top1"],
                                                          result["paraphrase_top1"], ono)
        if all(row.content for row in rows):
            # the top image shows what the caption says: several scenes share a caption, so
            # caption_top1 (its own image first) is capped well below 1 (~0.75 on shapes)
            contents = [""] * image_emb.shape[0]
            for row, image in zip(rows, row_image):
                contents[image] = row.content
            result["caption_content_top1"] = M.content_top1_accuracy(
                texts("caption"), image_emb, contents, text_to_image=row_image)
        result.update(_negation_grounding(rows, per_row_img, texts))
        return result
    if benchmark == "sugarcrepe_pp":
        return M.sugarcrepe_pp_scores(per_row_img, texts("p1"), texts("p2"), texts("negative"))
    if benchmark == "negbench_mcq":
        n_options = len(rows[0].texts)
        options = torch.stack([texts(f"option_{c}") for c in range(n_options)], dim=1)
        return M.multiple_choice_accuracy(per_row_img, options, [r.label for r in rows],
                                          groups=[r.group for r in rows])
    if benchmark == "negbench_retrieval":
        # CLIP_benchmark's name for text-to-image recall; ties are misses (engine.eval.metrics)
        return {f"image_retrieval_recall@{k}": M.topk_text_to_image_accuracy(
                    texts("caption"), image_emb, k, text_to_image=row_image)
                for k in RETRIEVAL_KS}
    if benchmark == "zeroshot":
        def prompts(template: str) -> torch.Tensor:
            return text_emb[[text_index[p] for p in bm.zeroshot_prompts(list(class_names), template)]]
        return M.zero_shot_negation_scores(per_row_img, prompts(bm.ZEROSHOT_AFFIRMATIVE_TEMPLATE),
                                           prompts(bm.ZEROSHOT_NEGATED_TEMPLATE),
                                           [r.label for r in rows])
    raise EvaluationError(f"unknown benchmark {benchmark!r}")


def _texts_needed(benchmark: str, rows: Sequence[bm.EvalRow], class_names: Sequence[str]) -> list[str]:
    if benchmark == "zeroshot":
        return (bm.zeroshot_prompts(list(class_names), bm.ZEROSHOT_AFFIRMATIVE_TEMPLATE)
                + bm.zeroshot_prompts(list(class_names), bm.ZEROSHOT_NEGATED_TEMPLATE))
    return [text for row in rows for text in row.texts.values()]


def _examples(items: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def evaluate(benchmark: str, data: Optional[Union[str, Path]], images: Optional[Union[str, Path]],
             models: Sequence, stop: Optional[StopFlag] = None, batch_size: int = 64,
             text_batch_size: int = 256, n: int = 500, eval_size: int = bm.CCNEG_EVAL_SIZE,
             use_cache: bool = True, cache_root: Optional[Union[str, Path]] = None,
             workers: int = 4, shapes_image_size: Optional[int] = None,
             columns: Optional[dict[str, str]] = None,
             retrieval_k: Sequence[int] = (1, 5),
             split_part: Optional[Any] = None) -> Iterator[Event]:
    """Evaluate ``models`` (LoadedModel) on a benchmark; yields events, ends with Done/Error.

    ``n``: shapes scenes; ``eval_size``: CC-Neg evaluation split (the last items);
    ``shapes_image_size``: render size of shapes scenes (default: each model's own input
    size, as in training: the same scenes, drawn at 64 px for one model and 224 px for another,
    never a 64 px drawing upscaled); ``columns``, ``retrieval_k`` and ``split_part``: a triples file's
    column names, top-k depths and the part of a split to score. ``EvalResult.step`` is the model's position in ``models`` and
    ``split`` the benchmark name.
    """
    stop = stop or NeverStop()
    models = list(models)
    if not models:
        yield Error(kind="usage", message="evaluate: give at least one model")
        return
    size = shapes_image_size or models[0].image_size
    try:
        dataset = load_benchmark(benchmark, data, images, n=n, eval_size=eval_size,
                                 shapes_image_size=size, columns=columns,
                                 split_part=split_part)
    except (bm.BenchmarkFormatError, ImportError) as exc:
        yield Error(kind="data", message=str(exc))
        return

    results = _new_results(benchmark, dataset, images, n, eval_size)
    if dataset.total_rows == 0:
        yield Error(kind="data", message=f"{dataset.source}: no rows to evaluate (empty file?)")
        return
    if dataset.missing:
        distinct = sorted({m.path for m in dataset.missing})
        yield Log(level="warning", message=(
            f"{len(dataset.missing)} of {dataset.total_rows} rows skipped: image missing "
            f"({len(distinct)} distinct files, e.g. {_examples(distinct)})"))
        if not dataset.rows:
            yield Error(kind="data", message=(
                f"{dataset.source}: no row has an image on hand (all {dataset.total_rows} "
                f"missing, e.g. {_examples(distinct)}); check --images"))
            return
    sources, row_image = _distinct_images(dataset.rows)
    rendered = {size: (dataset, sources, row_image)}

    for model_index, loaded in enumerate(models):
        label = loaded.spec
        if benchmark == "shapes" and shapes_image_size is None:
            own_size = loaded.image_size
            if own_size not in rendered:
                redrawn = load_benchmark(benchmark, data, images, n=n, shapes_image_size=own_size)
                rendered[own_size] = (redrawn, *_distinct_images(redrawn.rows))
            dataset, sources, row_image = rendered[own_size]
        images_out = yield from _embed_images(loaded, sources, batch_size, use_cache, cache_root,
                                              stop, workers)
        if stop.is_set():
            yield Done(result=results, stopped=True)
            return
        rows, rows_image, gallery, unreadable_rows = yield from _readable_rows(
            dataset.rows, row_image, images_out, results, label)
        if not rows:
            yield Error(kind="data", message=(
                f"{dataset.source}: no row has a readable image for {label} (all "
                f"{dataset.total_rows} rows skipped); nothing to score"))
            return
        texts = _texts_needed(benchmark, rows, dataset.class_names)
        embedded = yield from _embed_texts_with_progress(loaded, texts, text_batch_size,
                                                         stop, label)
        if embedded is None or stop.is_set():
            yield Done(result=results, stopped=True)
            return
        text_index, text_emb = embedded
        try:
            M.check_finite(gallery, f"model {label}: image embeddings")
            M.check_finite(text_emb, f"model {label}: text embeddings")
        except M.NonFiniteEmbeddingsError as exc:
            yield Error(kind="model", message=f"{exc}; its scores would be meaningless")
            return
        metrics = score_rows(benchmark, rows, rows_image, gallery, text_index, text_emb,
                             dataset.class_names, retrieval_k)
        counts = {"rows": dataset.total_rows, "evaluated": len(rows),
                  "missing_images": len(dataset.missing), "unreadable_images": unreadable_rows}
        results["models"].append({
            "spec": loaded.spec, "identity": loaded.identity, "model_name": loaded.model_name,
            "label": model_label(loaded.spec, loaded.sidecar), "metrics": metrics, "counts": counts,
            "cache": {"hits": images_out.cache_hits, "encoded": images_out.encoded},
            **({"image_size": dataset.info["image_size"]} if benchmark == "shapes" else {})})
        yield EvalResult(step=model_index, epoch=0, split=benchmark, metrics=metrics,
                         counts=counts, label=loaded.spec)
    yield Done(result=results)


def _new_results(benchmark: str, dataset: bm.BenchmarkData, images: Optional[Union[str, Path]],
                 n: int, eval_size: int) -> dict[str, Any]:
    """The results dict before any model is scored: what was evaluated, when, and what was
    skipped for want of an image file."""
    return {
        "schema": RESULTS_SCHEMA, "benchmark": benchmark,
        "data": dataset.source, "images": str(images) if images is not None else None,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "settings": {"n": n if benchmark == "shapes" else None,
                     "eval_size": eval_size if benchmark == "ccneg" else None,
                     **({"class_names": dataset.class_names} if dataset.class_names else {}),
                     **dataset.info},
        "skipped": {"missing_images": [{"path": m.path, "source": m.source, "reason": m.reason}
                                       for m in dataset.missing[:MAX_LISTED_SKIPS]],
                    "unreadable_images": []},
        "models": [],
    }


def _embed_images(loaded, sources: list, batch_size: int, use_cache: bool,
                  cache_root: Optional[Union[str, Path]], stop: StopFlag,
                  workers: int) -> Generator[Event, None, Any]:
    """The distinct images' embeddings under one model, through the on-disk cache; trunk
    features are shared by every model over that trunk."""
    if has_timm_trunk(loaded.model):
        cache = trunk_cache_for(loaded, cache_root) if use_cache else None
        found = yield from embed_via_trunk(loaded, sources, batch_size, cache, stop, workers)
    else:
        cache = ImageEmbeddingCache.for_model(loaded, cache_root) if use_cache else None
        found = yield from embed_image_sources(loaded, sources, batch_size=batch_size,
                                               cache=cache, stop=stop, workers=workers,
                                               phase="images")
    if cache is not None and not stop.is_set():
        yield Log(message=f"{loaded.spec}: {found.cache_hits} images from the cache, "
                          f"{found.encoded} encoded")
    return found


def _readable_rows(all_rows: list, row_image: list[int], images_out: Any, results: dict,
                   label: str) -> Generator[Event, None, tuple]:
    """The rows whose image could be read, re-indexed onto the gallery of readable images:
    (rows, each row's gallery index, gallery embeddings, number of rows dropped)."""
    bad = {f.index: f for f in images_out.failures}
    keep = [i for i, img in enumerate(row_image) if img not in bad]
    unreadable_rows = len(row_image) - len(keep)
    if bad:
        yield Log(level="warning", message=(
            f"{label}: {unreadable_rows} rows skipped: image unreadable "
            f"({len(bad)} files, e.g. "
            f"{_examples([f'{f.path} ({f.reason})' for f in bad.values()])})"))
        if not results["skipped"]["unreadable_images"]:
            results["skipped"]["unreadable_images"] = [
                {"path": f.path, "reason": f.reason}
                for f in list(bad.values())[:MAX_LISTED_SKIPS]]
    good_images = [i for i in range(images_out.embeddings.shape[0]) if i not in bad]
    remap = {old: new for new, old in enumerate(good_images)}
    rows = [all_rows[i] for i in keep]
    rows_image = [remap[row_image[i]] for i in keep]
    return rows, rows_image, images_out.embeddings[good_images], unreadable_rows


def run_evaluation(benchmark: str, data: Optional[Union[str, Path]],
                   images: Optional[Union[str, Path]], models: Sequence, **kwargs: Any) -> dict:
    """Drain :func:`evaluate` and return its results dict; raises EvaluationError on Error."""
    try:
        return run_to_end(evaluate(benchmark, data, images, models, **kwargs)) or {}
    except JobError as exc:
        raise EvaluationError(str(exc), kind=exc.kind) from None


# ---------------------------------------------------------------------------------------------
# results files
# ---------------------------------------------------------------------------------------------

def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN; "no value" reads the same in the app
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def save_results(path: Union[str, Path], results: dict) -> Path:
    """Write a results dict as JSON atomically (a reader never sees half a file)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(_json_safe(results), indent=2, allow_nan=False) + "\n")
    return path


def load_results(path: Union[str, Path]) -> dict:
    """Read a results file written by :func:`save_results`; checks its shape."""
    path = Path(path)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON results file ({exc})") from exc
    if not isinstance(results, dict):
        raise ValueError(f"{path}: expected a JSON object")
    for key in ("benchmark", "date", "models"):
        if key not in results:
            raise ValueError(f"{path}: not an evaluation results file (no {key!r} field)")
    for i, entry in enumerate(results["models"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
            raise ValueError(f"{path}: models[{i}] has no 'metrics' object")
    return results


def model_label(spec: str, sidecar: dict) -> str:
    """What a model is called in tables: its training run's name (``clip-baseline``,
    ``semclip``) when the checkpoint records one, else the file name of a checkpoint spec, else
    the spec itself (``semclip-tiny``, ``ViT-B-32:laion2b_s34b_b79k``)."""
    name = (sidecar.get("train_config") or {}).get("name") or sidecar.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    path = Path(spec)
    return path.stem if path.suffix in CHECKPOINT_SUFFIXES else spec


def model_labels(results: dict) -> list[str]:
    """A distinct column label per model: its ``label`` (results files written before labels
    existed: its spec), with the spec, then the identity, added where labels repeat."""
    models = results["models"]
    labels = [m.get("label") or m.get("spec", "?") for m in models]
    if len(set(labels)) < len(labels):
        labels = [f"{lab} [{m.get('spec', '?')}]"
                  if labels.count(lab) > 1 and lab != m.get("spec", "?") else lab
                  for lab, m in zip(labels, models)]
    return [f"{lab} [{m.get('identity', i)}]" if labels.count(lab) > 1 else lab
            for i, (lab, m) in enumerate(zip(labels, models))]


def metric_names(results: dict) -> list[str]:
    """Every metric in a results dict, in the preferred table order."""
    present = {name for m in results["models"] for name in m["metrics"]}
    ordered = [name for name in METRIC_ORDER if name in present]
    return ordered + sorted(present - set(ordered))


def metric_table(results: dict) -> dict[str, dict[str, Optional[float]]]:
    """``{metric: {model label: value}}``: the numbers to tabulate or plot."""
    labels = model_labels(results)
    return {name: {label: m["metrics"].get(name) for label, m in zip(labels, results["models"])}
            for name in metric_names(results)}
