"""Model loading from every spec kind, tower locking, and exact text truncation."""

from __future__ import annotations

import random
import time

import pytest
import torch

from engine.model.encoding import embed_texts, encode_text, used_length
from engine.model.loading import (ModelLoadError, count_parameters, load_model, lock_towers,
                                  parse_spec, project_config_names)

WORDS = "a the red blue large small circle square triangle star on left of and no not without".split()


def random_captions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    # lengths from 1 word to beyond the 32-token context (truncated by the tokenizer)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def test_parse_spec():
    assert parse_spec("ViT-B-32:laion2b_s34b_b79k") == ("ViT-B-32", "laion2b_s34b_b79k")
    assert parse_spec("semclip-tiny") == ("semclip-tiny", None)
    assert parse_spec("runs/x/checkpoint.pt") == ("runs/x/checkpoint.pt", None)
    assert parse_spec("ViT-B-32:/w/model.pt") == ("ViT-B-32", "/w/model.pt")
    with pytest.raises(ModelLoadError, match="empty"):
        parse_spec("  ")


def test_project_configs_are_registered_and_random_init_is_seeded():
    assert {"semclip-tiny", "semclip-shapes-minilm"} <= set(project_config_names())
    a, b = load_model("semclip-tiny", seed=1), load_model("semclip-tiny", seed=1)
    c = load_model("semclip-tiny", seed=2)
    assert a.identity == b.identity != c.identity
    assert a.context_length == 32 and a.embed_dim == 32
    image = a.preprocess(__import__("PIL.Image", fromlist=["Image"]).new("RGB", (50, 40)))
    assert image.shape == (3, 32, 32)


def test_a_seeded_load_leaves_the_global_rng_alone_and_an_unseeded_one_draws_from_it():
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    seeded = load_model("semclip-tiny", seed=7)
    assert torch.equal(torch.rand(3), expected)  # a training run beside it keeps its stream
    torch.manual_seed(7)
    unseeded = load_model("semclip-tiny", seed=None)  # the old behaviour, for a run that owns it
    after = torch.rand(3)
    torch.manual_seed(7)
    assert unseeded.identity == seeded.identity  # same weights either way
    assert not torch.equal(after, torch.rand(3))  # the initialisation drew from the global RNG


def test_offline_hub_tag_fails_fast_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="local weights file"):
        load_model("ViT-B-32:laion2b_s34b_b79k")
    assert time.perf_counter() - start < 5
    with pytest.raises(ModelLoadError, match="Known tags"):
        load_model("ViT-B-32:no_such_tag")
    with pytest.raises(ModelLoadError, match="unknown model architecture"):
        load_model("ViT-Z-99")


def test_local_weights_file_and_wrong_checkpoint(tmp_path):
    src = load_model("semclip-tiny", seed=3)
    weights = tmp_path / "w.pt"
    torch.save({"state_dict": src.model.state_dict()}, weights)
    again = load_model(f"semclip-tiny:{weights}")
    assert torch.equal(again.model.logit_scale, src.model.logit_scale)
    for key, value in src.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key])
    with pytest.raises(ModelLoadError, match="do not fit architecture semclip-shapes-tiny"):
        load_model(f"semclip-shapes-tiny:{weights}")
    with pytest.raises(ModelLoadError, match="no sidecar"):
        load_model(str(weights))
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(str(tmp_path / "missing.pt"))


def test_hf_text_tower_from_the_local_minilm_folder():
    loaded = load_model("semclip-shapes-minilm")
    assert type(loaded.model).__name__ == "CustomTextCLIP"
    emb = embed_texts(loaded.model, loaded.tokenizer, ["a big ball", "a large circle", "a cat"])
    assert emb.shape == (3, 128)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_locking_the_image_tower_and_the_last_text_layers():
    loaded = load_model("semclip-tiny")
    total = count_parameters(loaded.model)
    lock_towers(loaded.model, lock_image=True)
    assert not any(p.requires_grad for p in loaded.model.visual.parameters())
    assert count_parameters(loaded.model, trainable_only=True) < total
    hf = load_model("semclip-shapes-minilm").model
    lock_towers(hf, lock_image=True, lock_text=True, text_unlocked_layers=2)
    layers = hf.text.transformer.encoder.layer
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert all(p.requires_grad for p in layers[-1].parameters())


@pytest.mark.parametrize("spec", ["semclip-tiny", "semclip-shapes-minilm"])
def test_truncated_text_encoding_equals_the_full_context(spec):
    loaded = load_model(spec)
    captions = random_captions(48) + ["", "a"]
    tokens = loaded.tokenizer(captions)
    assert used_length(loaded.model, tokens) <= tokens.shape[1]
    with torch.no_grad():
        full = loaded.model.encode_text(tokens, normalize=True)
        short = encode_text(loaded.model, tokens)
        # a batch of short captions really runs on fewer positions, with the same result
        few = tokens[:4]
        assert used_length(loaded.model, loaded.tokenizer(["a red circle"])) < 8
        torch.testing.assert_close(encode_text(loaded.model, few), full[:4], atol=1e-5, rtol=0)
    torch.testing.assert_close(short, full, atol=1e-5, rtol=0)


def test_models_are_built_one_at_a_time_even_from_several_threads(monkeypatch):
    """The app loads its two sides on two threads; two constructions at once deadlocked inside
    transformers' threaded loader, so load_model builds one model at a time."""
    import threading

    import open_clip

    real = open_clip.create_model_and_transforms
    active, most = [0], [0]
    guard = threading.Lock()

    def counting(*args, **kwargs):
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            threading.Event().wait(0.05)  # stay inside long enough for the other thread to try
            return real(*args, **kwargs)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(open_clip, "create_model_and_transforms", counting)
    loaded = []
    threads = [threading.Thread(target=lambda s=s: loaded.append(load_model("semclip-tiny", seed=s)))
               for s in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(loaded) == 3 and most[0] == 1
