"""Embedding cache, the evaluation runner, results files and ``semclip eval`` (tiny models)."""

import argparse
import json
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.cli.eval import add_eval_parser, format_table, run_eval
from engine.eval import benchmarks as bm
from engine.eval import metrics as M
from engine.eval.run import (EvaluationError, evaluate, load_results, metric_table, run_evaluation,
                             save_results, score_rows)
from engine.events import Done, Error, EvalResult, Log, Progress
from engine.model.embed_cache import ImageEmbeddingCache, embed_images_cached
from engine.model.encoding import embed_images, embed_texts
from engine.model.loading import load_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COCO = SHARED / "coco_val2017_sample"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(),
                                  reason=f"real benchmark samples not found at {SHARED}")


@pytest.fixture(scope="module")
def tiny():
    return load_model("semclip-tiny", seed=0)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMCLIP_CACHE", str(tmp_path / "cache"))


def count_image_tower_calls(loaded, monkeypatch) -> list:
    calls = []
    original = loaded.model.encode_image

    def counting(images, normalize=False):
        calls.append(images.shape[0])
        return original(images, normalize=normalize)
    monkeypatch.setattr(loaded.model, "encode_image", counting)
    return calls


def write_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.new("RGB", (40, 40), (30 * i, 255 - 30 * i, 7 * i)).save(path)
        paths.append(path)
    return paths


def test_second_run_never_touches_the_image_tower(tiny, tmp_path, monkeypatch):
    paths = write_images(tmp_path / "imgs", 5)
    broken = tmp_path / "imgs" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    sources = paths + [broken]
    calls = count_image_tower_calls(tiny, monkeypatch)

    first = embed_images_cached(tiny, sources, batch_size=2,
                                cache=ImageEmbeddingCache.for_model(tiny, tmp_path / "c"))
    assert sum(calls) == 5 and first.encoded == 5 and first.cache_hits == 0
    assert first.ok.tolist() == [True] * 5 + [False]
    assert [(f.index, f.path) for f in first.failures] == [(5, str(broken))]
    assert "cannot decode" in first.failures[0].reason
    expected = embed_images(tiny.model, torch.stack(
        [tiny.preprocess(Image.open(p).convert("RGB")) for p in paths]))
    assert torch.allclose(first.embeddings[:5], expected, atol=1e-6)

    calls.clear()  # a fresh cache object reads the shards written by the first run
    second = embed_images_cached(tiny, sources, batch_size=2,
                                 cache=ImageEmbeddingCache.for_model(tiny, tmp_path / "c"))
    assert calls == [] and second.cache_hits == 5 and second.encoded == 0
    assert torch.equal(second.embeddings, first.embeddings)
    assert len(second.failures) == 1  # still reported, never cached as a success

    Image.new("RGB", (40, 40), "black").save(paths[2])  # new content under the same name
    calls.clear()
    third = embed_images_cached(tiny, sources, cache=ImageEmbeddingCache.for_model(tiny, tmp_path / "c"))
    assert sum(calls) == 1 and third.cache_hits == 4


def test_many_shards_are_merged_on_open(tiny, tmp_path, monkeypatch):
    import engine.model.embed_cache as ec

    paths = write_images(tmp_path / "imgs", 5)
    embed_images_cached(tiny, paths, batch_size=2, cache=ImageEmbeddingCache.for_model(tiny, tmp_path))
    cache = ImageEmbeddingCache.for_model(tiny, tmp_path)
    assert len(list(cache.folder.glob("shard-*.pt"))) == 3  # one per batch
    monkeypatch.setattr(ec, "MAX_SHARDS", 1)
    merged = ImageEmbeddingCache.for_model(tiny, tmp_path)
    assert len(list(merged.folder.glob("shard-*.pt"))) == 1
    assert len(ImageEmbeddingCache.for_model(tiny, tmp_path)) == 5


def test_cache_is_keyed_by_model_identity(tiny, tmp_path):
    other = load_model("semclip-tiny", seed=1)
    assert ImageEmbeddingCache.for_model(tiny, tmp_path).folder != \
        ImageEmbeddingCache.for_model(other, tmp_path).folder


def test_in_memory_images_are_keyed_by_pixels(tiny, tmp_path, monkeypatch):
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    embed_images_cached(tiny, images, cache=ImageEmbeddingCache.for_model(tiny, tmp_path))
    calls = count_image_tower_calls(tiny, monkeypatch)
    again = [Image.new("RGB", (32, 32), c) for c in ("blue", "red", "green")]
    out = embed_images_cached(tiny, again, cache=ImageEmbeddingCache.for_model(tiny, tmp_path))
    assert sum(calls) == 1 and out.cache_hits == 2


def test_score_rows_maps_several_rows_onto_one_image():
    e1, e2 = torch.eye(2)
    gallery = torch.stack([e1, e2])
    rows = [bm.EvalRow(image=Path(p), texts=t) for p, t in (
        ("a", {"caption": "A", "paraphrase": "A2", "negation": "B"}),
        ("a", {"caption": "B", "paraphrase": "A", "negation": "A"}),
        ("b", {"caption": "B", "paraphrase": "B", "negation": "A"}))]
    text_index = {"A": 0, "A2": 1, "B": 2}
    text_emb = torch.stack([e1, e1, e2])
    metrics = score_rows("triples", rows, [0, 0, 1], gallery, text_index, text_emb)
    # ONO: row0 1>0 hit, row1 0>1 miss, row2 1>0 hit; captions A->a hit, B->a miss, B->b hit;
    # paraphrases A2->a, A->a, B->b all hit
    assert metrics["ono_accuracy"] == pytest.approx(2 / 3)
    assert metrics["caption_top1"] == pytest.approx(2 / 3)
    assert metrics["paraphrase_top1"] == 1.0
    assert metrics["caption_top5"] == 1.0
    assert metrics["composite_score"] == pytest.approx((2 / 3 + 1 + 1 / 3) / 3)
    assert "negation_grounding" not in metrics  # triples files have no true negations


def test_negation_grounding_compares_the_true_negation_with_the_false_one():
    e1, e2 = torch.eye(2)
    gallery = torch.stack([e1, e2])
    rows = [bm.EvalRow(image=Path(p), texts=t) for p, t in (
        ("a", {"caption": "A", "paraphrase": "A", "negation": "B", "true_negation": "A"}),
        ("a", {"caption": "A", "paraphrase": "A", "negation": "A", "true_negation": "B"}),
        ("b", {"caption": "B", "paraphrase": "B", "negation": "A", "true_negation": "B"}),
        ("b", {"caption": "B", "paraphrase": "B", "negation": "A", "true_negation": "A"}))]
    metrics = score_rows("shapes", rows, [0, 0, 1, 1], gallery, {"A": 0, "B": 1}, torch.stack([e1, e2]))
    # sim(image, true) > sim(image, false): row0 1 > 0 hit, row1 0 > 1 miss, row2 1 > 0 hit,
    # row3 0 > 0 miss (a tie is not a preference)
    assert metrics["negation_grounding"] == pytest.approx(2 / 4)


@needs_shared
def test_sugarcrepe_pp_run_reports_missing_rows_and_matches_direct_scoring(tiny):
    data = SHARED / "sugarcrepe_pp" / "replace_rel.json"
    events = list(evaluate("sugarcrepe_pp", data, COCO, [tiny], batch_size=16))
    warnings = [e for e in events if isinstance(e, Log) and e.level == "warning"]
    assert "1363 of 1406 rows skipped: image missing" in warnings[0].message
    assert {e.phase for e in events if isinstance(e, Progress)} == {"images", "texts"}
    (result,) = [e for e in events if isinstance(e, EvalResult)]
    assert result.counts == {"rows": 1406, "evaluated": 43, "missing_images": 1363,
                             "unreadable_images": 0}
    assert isinstance(events[-1], Done)

    loaded = bm.load_sugarcrepe_pp(data, COCO)
    images = embed_images(tiny.model, torch.stack(
        [tiny.preprocess(Image.open(r.image).convert("RGB")) for r in loaded.rows]))
    texts = {role: embed_texts(tiny.model, tiny.tokenizer, [r.texts[role] for r in loaded.rows])
             for role in ("p1", "p2", "negative")}
    expected = M.sugarcrepe_pp_scores(images, texts["p1"], texts["p2"], texts["negative"])
    assert result.metrics == pytest.approx(expected)


def test_unreadable_and_missing_images_are_counted_and_named(tiny, tmp_path):
    folder = tmp_path / "coco"
    write_images(folder, 1)
    (folder / "broken.jpg").write_bytes(b"\x00garbage")
    items = [{"id": i, "filename": f, "caption": "a", "caption2": "b", "negative_caption": "c"}
             for i, f in enumerate(["img0.png", "broken.jpg", "absent.jpg"])]
    (tmp_path / "scpp.json").write_text(json.dumps(items))
    results = run_evaluation("sugarcrepe_pp", tmp_path / "scpp.json", folder, [tiny])
    entry = results["models"][0]
    assert entry["counts"] == {"rows": 3, "evaluated": 1, "missing_images": 1,
                               "unreadable_images": 1}
    assert results["skipped"]["missing_images"] == [{"path": str(folder / "absent.jpg"),
                                                     "source": "scpp.json:2",
                                                     "reason": "image file not found"}]
    (unreadable,) = results["skipped"]["unreadable_images"]
    assert unreadable["path"] == str(folder / "broken.jpg") and unreadable["reason"]


def test_ccneg_and_zeroshot_run_end_to_end(tiny, tmp_path):
    from test_benchmarks import make_zeroshot_folder, write_ccneg

    images = tmp_path / "cc"
    images.mkdir()
    write_ccneg(tmp_path / "ccneg_preprocessed.pt", 8, images)
    cc = run_evaluation("ccneg", tmp_path / "ccneg_preprocessed.pt", images, [tiny], eval_size=5)
    assert cc["models"][0]["counts"] == {"rows": 5, "evaluated": 4, "missing_images": 1,
                                         "unreadable_images": 0}
    assert set(cc["models"][0]["metrics"]) == {"ono_accuracy", "scaled_negation"}

    zs = run_evaluation("zeroshot", make_zeroshot_folder(tmp_path / "zs"), None, [tiny])
    metrics = zs["models"][0]["metrics"]
    assert metrics["negation_gap"] == pytest.approx(
        metrics["affirmative_accuracy"] - metrics["negated_accuracy"])
    assert zs["models"][0]["counts"]["evaluated"] == 6


def test_shapes_benchmark_reports_composite(tiny):
    pytest.importorskip("engine.data.shapes.world", reason="engine/data/shapes/world.py not written yet")
    results = run_evaluation("shapes", None, None, [tiny], n=12)
    metrics = results["models"][0]["metrics"]
    assert results["models"][0]["counts"]["evaluated"] == 12
    assert metrics["composite_score"] == pytest.approx(M.composite_score(
        metrics["caption_top1"], metrics["paraphrase_top1"], metrics["ono_accuracy"]))


def test_bad_data_is_an_error_event_and_stop_ends_early(tiny, tmp_path):
    events = list(evaluate("negbench_mcq", tmp_path / "nope.csv", tmp_path, [tiny]))
    assert isinstance(events[-1], Error) and "nope.csv" in events[-1].message
    with pytest.raises(EvaluationError, match="nope.csv"):
        run_evaluation("negbench_mcq", tmp_path / "nope.csv", tmp_path, [tiny])

    stop = threading.Event()
    stop.set()
    paths = write_images(tmp_path / "z" / "a", 2) + write_images(tmp_path / "z" / "b", 2)
    assert paths
    last = list(evaluate("zeroshot", tmp_path / "z", None, [tiny], stop=stop))[-1]
    assert isinstance(last, Done) and last.stopped


def test_results_round_trip_and_validation(tmp_path):
    results = {"benchmark": "ccneg", "date": "2025-01-01T00:00:00+00:00", "data": "x",
               "models": [{"spec": "a", "identity": "i", "metrics": {"ono_accuracy": float("nan"),
                                                                      "scaled_negation": 0.5},
                           "counts": {}}]}
    path = save_results(tmp_path / "out" / "r.json", results)
    loaded = load_results(path)
    assert loaded["models"][0]["metrics"] == {"ono_accuracy": None, "scaled_negation": 0.5}
    assert not list(path.parent.glob("*.tmp"))
    assert metric_table(loaded) == {"ono_accuracy": {"a": None}, "scaled_negation": {"a": 0.5}}
    (tmp_path / "bad.json").write_text(json.dumps({"benchmark": "x"}))
    with pytest.raises(ValueError, match="bad.json.*'date'"):
        load_results(tmp_path / "bad.json")


@needs_shared
def test_run_eval_compares_two_models_in_one_table(tmp_path, capsys):
    other = load_model("semclip-tiny", seed=1)
    weights = tmp_path / "seed1.pt"
    torch.save(other.model.state_dict(), weights)
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "results.json"
    args = parser.parse_args([
        "eval", "--benchmark", "negbench_mcq", "--data",
        str(SHARED / "negbench" / "COCO_val_mcq_sample.csv"), "--images", str(COCO),
        "--model", "semclip-tiny", "--model", f"semclip-tiny:{weights}", "--json", str(out),
        "--quiet"])
    assert args.func is run_eval
    assert run_eval(args) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("metric"))
    # columns named by label: a config name as it is, a weights file by its name
    assert header.split() == ["metric", "semclip-tiny", weights.stem, "diff"]

    results = load_results(out)
    assert results["benchmark"] == "negbench_mcq" and results["date"]
    first, second = results["models"]
    assert first["identity"] != second["identity"]
    assert first["counts"] == {"rows": 68, "evaluated": 68, "missing_images": 0,
                               "unreadable_images": 0}
    diff_line = next(line for line in printed.splitlines() if line.startswith("mcq_accuracy "))
    a, b = first["metrics"]["mcq_accuracy"], second["metrics"]["mcq_accuracy"]
    assert diff_line.split()[1:] == [f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}"]
    assert format_table(results) in printed


def test_run_eval_reports_a_bad_model_spec(tmp_path, capsys):
    args = argparse.Namespace(benchmark="zeroshot", data=str(tmp_path), images=None,
                              models=[str(tmp_path / "missing.pt")], json=None, quiet=True)
    assert run_eval(args) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_shapes_and_triples_plumbing_with_stand_in_modules(tiny, tmp_path, monkeypatch):
    """The loaders' use of engine.data.shapes.world / engine.data.triples, with stand-ins of their documented API."""
    import sys
    import types
    from dataclasses import dataclass

    class FakeWorld:
        def __init__(self, seed=0, image_size=64):
            self.seed, self.image_size = seed, image_size

        def item(self, split, index):
            assert split == "test"
            colour = ("red", "blue", "green")[index % 3]
            return {"image": Image.new("RGB", (self.image_size,) * 2, colour),
                    "caption": f"a {colour} circle", "paraphrase": f"a circle that is {colour}",
                    "negation": f"no {colour} circle", "true_negation": "no square", "objects": []}

    @dataclass
    class Triple:
        image: Path
        caption: str
        paraphrase: str
        negation: str
        line: int
        refused: str = ""

    def read_triples(path, root=None, columns=None):
        return [Triple(Path(root) / "img0.png", "a", "b", "c", 2),
                Triple(Path(root) / "img0.png", "d", "e", "f", 3),  # two captions, one image
                Triple(Path(root) / "gone.png", "g", "h", "i", 4)]

    monkeypatch.setitem(sys.modules, "engine.data.shapes.world", types.SimpleNamespace(ShapesWorld=FakeWorld))
    monkeypatch.setitem(sys.modules, "engine.data.triples", types.SimpleNamespace(read_triples=read_triples))

    shapes = run_evaluation("shapes", "3", None, [tiny], n=6)
    assert shapes["models"][0]["counts"]["evaluated"] == 6
    assert shapes["settings"]["seed"] == 3 and shapes["settings"]["image_size"] == 32
    assert set(shapes["models"][0]["metrics"]) == {
        "ono_accuracy", "scaled_negation", "caption_top1", "caption_top5", "paraphrase_top1",
        "paraphrase_top5", "composite_score", "negation_grounding"}
    with pytest.raises(EvaluationError, match="seed"):
        run_evaluation("shapes", "not-a-seed", None, [tiny])

    write_images(tmp_path, 1)
    (tmp_path / "t.csv").write_text("unused by the stand-in")
    triples = run_evaluation("triples", tmp_path / "t.csv", tmp_path, [tiny])
    entry = triples["models"][0]
    assert entry["counts"] == {"rows": 3, "evaluated": 2, "missing_images": 1,
                               "unreadable_images": 0}
    assert entry["metrics"]["caption_top1"] == 1.0  # a one-image gallery: every caption finds it
    assert entry["cache"]["encoded"] == 1  # the shared image is encoded once


def test_model_label_names_a_model_by_its_run_then_its_file_then_its_spec():
    from engine.eval.run import model_label

    assert model_label("runs/x/best.pt", {"train_config": {"name": "semclip"}}) == "semclip"
    assert model_label("runs/x/best.pt", {"name": " clip-baseline "}) == "clip-baseline"
    assert model_label("runs/x/best.pt", {"train_config": {"name": ""}}) == "best"
    assert model_label("ViT-B-32:laion2b_s34b_b79k", {}) == "ViT-B-32:laion2b_s34b_b79k"
    assert model_label("semclip-tiny", {}) == "semclip-tiny"


def test_model_labels_stay_distinct_when_labels_or_specs_repeat():
    from engine.eval.run import model_labels

    def results(*models):
        return {"models": [dict(zip(("label", "spec", "identity"), m)) for m in models]}

    assert model_labels(results(("clip", "a.pt", "1"), ("semclip", "b.pt", "2"))) == [
        "clip", "semclip"]
    assert model_labels(results(("semclip", "a/best.pt", "1"), ("semclip", "b/best.pt", "2"),
                                ("clip", "c.pt", "3"))) == [
        "semclip [a/best.pt]", "semclip [b/best.pt]", "clip"]
    assert model_labels(results(("m", "x.pt", "1"), ("m", "x.pt", "2"))) == [
        "m [x.pt] [1]", "m [x.pt] [2]"]
    assert model_labels({"models": [{"spec": "old.pt"}, {"spec": "old.pt", "identity": "b"}]}) == [
        "old.pt [0]", "old.pt [b]"]  # a results file from before labels


def test_shapes_scenes_are_drawn_at_each_models_own_input_size(tiny):
    # A 224 px model scored on 64 px drawings upscaled (the first model's size) loses half its
    # caption top-1; each model must see the scenes as it saw them in training.
    shapes_tiny = load_model("semclip-shapes-tiny", seed=0)
    drawn: dict[str, set] = {}
    for loaded in (tiny, shapes_tiny):  # watch what each model is fed
        seen, inner = drawn.setdefault(loaded.spec, set()), loaded.preprocess
        loaded.preprocess = lambda image, seen=seen, inner=inner: (seen.add(image.size), inner(image))[1]
    together = run_evaluation("shapes", None, None, [tiny, shapes_tiny], n=12, use_cache=False)
    assert drawn == {"semclip-tiny": {(32, 32)}, "semclip-shapes-tiny": {(64, 64)}}
    assert [m["image_size"] for m in together["models"]] == [32, 64]
    alone = run_evaluation("shapes", None, None, [shapes_tiny], n=12, use_cache=False)["models"][0]
    assert together["models"][1]["metrics"] == pytest.approx(alone["metrics"], abs=1e-6)
    drawn["semclip-shapes-tiny"].clear()
    forced = run_evaluation("shapes", None, None, [tiny, shapes_tiny], n=12, shapes_image_size=32,
                            use_cache=False)
    assert drawn["semclip-shapes-tiny"] == {(32, 32)}
    assert [m["image_size"] for m in forced["models"]] == [32, 32]
