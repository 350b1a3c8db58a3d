"""The CUDA path, run for real: bf16 training, a GPU checkpoint read on a CPU-only machine, the
out-of-memory advice, and exact truncated text encoding in bf16.

Marked ``cuda`` and skipped without a GPU, so CI (CPU only) stays green; ``bench/gpu_check.sh``
runs them on a GPU machine. ``SEMCLIP_TEST_DEVICE=cpu`` rehearses on the CPU every test that
does not need a GPU's own behaviour (the GPU check's dry run does), so a mistake in a test shows
before the few minutes of GPU time are spent on it. Measured figures go to the JUnit report
(``record_property``), which ``bench/gpu_summary.py`` turns into JSON.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.cli.commands import main
from engine.data.shapes.world import ShapesWorld
from engine.model.encoding import embed_images, embed_texts, encode_text, token_lengths
from engine.model.loading import load_model
from engine.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DEVICE = os.environ.get("SEMCLIP_TEST_DEVICE", "cuda")

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                       reason="needs a CUDA GPU: run bench/gpu_check.sh on one"),
]
needs_a_real_gpu = pytest.mark.skipif(DEVICE != "cuda", reason="only a GPU runs out of memory")

# bf16 keeps 8 bits of mantissa (relative rounding 2^-9 = 0.2%): unit embeddings computed by two
# kernel orders differ by up to ~1% of their largest component after 12 layers. The truncated
# encoding must stay that close to open_clip's own bf16 encode_text, row by row.
BF16_MAX_ABS_DIFF = 2e-2
BF16_MIN_COSINE = 0.999


def run_cli_training(tmp_path: Path, cfg: TrainConfig) -> int:
    """``semclip train --config FILE --quiet``, as a user runs it; returns the exit code."""
    path = tmp_path / "cfg.json"
    cfg.to_json(path)
    return main(["train", "--config", str(path), "--quiet"])


def logged_steps(out_dir: Path) -> list[dict]:
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "step"]


@pytest.fixture
def exact_fp32():
    """Full fp32 on the GPU: no TF32 in matmuls or cuDNN convolutions (the patch embedding), so
    GPU and CPU differ only in summation order."""
    saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.set_float32_matmul_precision(saved[0])
    torch.backends.cudnn.allow_tf32 = saved[1]


@pytest.mark.parametrize("precision", [
    "bf16", pytest.param("fp16", marks=pytest.mark.skipif(  # fp16: autocast + a gradient scaler
        DEVICE != "cuda", reason="fp16 trains only on CUDA (refused on a CPU)"))])
def test_mixed_precision_training_on_the_gpu_makes_the_loss_fall(tmp_path, record_property, precision):
    # Image tower trained too: images go through the pinned-memory loader (2 workers) each step.
    out_dir = tmp_path / "run"
    cfg = TrainConfig(model="semclip-tiny", device=DEVICE, precision=precision, lock_image=False,
                      shapes_train_size=1024, batch_size=64, epochs=3, max_steps=48, lr=1e-3,
                      warmup_steps=2, workers=2, eval_every_epochs=0, out_dir=str(out_dir))
    assert run_cli_training(tmp_path, cfg) == 0
    steps = logged_steps(out_dir)
    assert len(steps) == 48
    first = sum(s["total"] for s in steps[:4]) / 4
    last = sum(s["total"] for s in steps[-4:]) / 4
    record_property("loss_first4", round(first, 4))
    record_property("loss_last4", round(last, 4))
    record_property("samples_per_s_last", round(steps[-1]["samples_per_s"], 1))
    assert all(torch.isfinite(torch.tensor(s["total"])) for s in steps)
    # On CPU (same seed, bf16 autocast) 1.80 -> 1.02 over these 48 steps
    assert last < 0.85 * first, f"loss {first:.3f} -> {last:.3f} over 48 {precision} steps"


CPU_SIDE = """
import sys, torch
from engine.model.encoding import embed_images, embed_texts
from engine.model.loading import load_model
from engine.explore.projection import projection_for
checkpoint, inputs, out = sys.argv[1:4]
assert not torch.cuda.is_available(), "this side must run without CUDA"
loaded = load_model(checkpoint, device="cpu")
data = torch.load(inputs)
torch.save({"text": embed_texts(loaded.model, loaded.tokenizer, data["captions"]),
            "image": embed_images(loaded.model, data["images"]),
            "projection": projection_for(loaded)}, out)
"""


def test_a_checkpoint_trained_on_the_gpu_gives_the_same_outputs_on_a_cpu_only_machine(
        tmp_path, exact_fp32, record_property):
    # Image tower locked: the image-embedding cache lives on the GPU; V learnable, so the
    # checkpoint's V differs from the default one a wrong load would fall back to.
    out_dir = tmp_path / "run"
    cfg = TrainConfig(model="semclip-tiny", device=DEVICE, lock_image=True,
                      learnable_projections=True, shapes_train_size=256, batch_size=32,
                      max_steps=6, lr=1e-3, warmup_steps=1, eval_every_epochs=0,
                      out_dir=str(out_dir))
    assert run_cli_training(tmp_path, cfg) == 0
    checkpoint = out_dir / "checkpoint.pt"

    on_gpu = load_model(str(checkpoint), device=DEVICE)
    world = ShapesWorld(seed=3, image_size=32)
    items = [world.item("test", i) for i in range(24)]
    captions = [it[key] for it in items for key in ("caption", "paraphrase", "negation")]
    images = torch.stack([on_gpu.preprocess(it["image"]) for it in items])
    torch.save({"captions": captions, "images": images}, tmp_path / "inputs.pt")

    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": path}
    subprocess.run([sys.executable, "-c", CPU_SIDE, str(checkpoint), str(tmp_path / "inputs.pt"),
                    str(tmp_path / "cpu.pt")], env=env, check=True, timeout=300)
    cpu = torch.load(tmp_path / "cpu.pt")

    from engine.explore.projection import projection_for
    gpu_text = embed_texts(on_gpu.model, on_gpu.tokenizer, captions)
    gpu_image = embed_images(on_gpu.model, images)
    text_diff = float((gpu_text - cpu["text"]).abs().max())
    image_diff = float((gpu_image - cpu["image"]).abs().max())
    record_property("max_abs_diff_text", text_diff)
    record_property("max_abs_diff_image", image_diff)
    # fp32 on both sides (no TF32): only the summation order differs
    torch.testing.assert_close(cpu["text"], gpu_text, atol=1e-4, rtol=0)
    torch.testing.assert_close(cpu["image"], gpu_image, atol=1e-4, rtol=0)
    torch.testing.assert_close(cpu["projection"], projection_for(on_gpu), atol=0, rtol=0)


@needs_a_real_gpu
def test_an_absurd_batch_on_a_big_model_ends_with_the_out_of_memory_advice(tmp_path, capsys,
                                                                           record_property):
    # ViT-L-14 with its image tower training on 4096 images of 224 px: activations alone need
    # several TB, far past any single GPU.
    out_dir = tmp_path / "run"
    cfg = TrainConfig(model="ViT-L-14", device="auto", lock_image=False, shapes_train_size=4096,
                      batch_size=4096, max_steps=1, eval_every_epochs=0, out_dir=str(out_dir))
    assert run_cli_training(tmp_path, cfg) == 1
    err = capsys.readouterr().err
    record_property("message", err.strip().splitlines()[-1])
    assert "error (oom): GPU out of memory at batch size 4096 on cuda:0 (" in err
    assert torch.cuda.get_device_name(0) in err
    assert "batch_size=2048 with accum_steps=2" in err
    assert not (out_dir / "checkpoint.pt").exists()
    # The app trains in its own process: after the error the GPU must be usable again.
    gc.collect()
    held = torch.cuda.memory_allocated(0)
    record_property("bytes_still_allocated", held)
    assert held < 2 ** 30
    assert float(torch.ones(1024, device="cuda").sum()) == 1024.0


def test_truncated_text_encoding_matches_open_clip_in_bf16(record_property):
    # ViT-B-32's text tower on the GPU; its scaled-down stand-in (same 77-token causal tower,
    # width 256) when rehearsing on a CPU, where ViT-B-32 would take half a minute.
    loaded = load_model("ViT-B-32" if DEVICE == "cuda" else "semclip-small", device=DEVICE, seed=0)
    model = loaded.model.eval()
    world = ShapesWorld(seed=0)
    items = [world.item("train", i, render=False) for i in range(128)]
    captions = [it[key] for key in ("caption", "paraphrase", "negation") for it in items]
    captions += ["a photo of " + " and ".join(["a small red circle"] * n) for n in range(1, 20)]
    tokens = loaded.tokenizer(captions).to(DEVICE)
    assert len(set(token_lengths(model, tokens).tolist())) > 10  # mixed lengths, many buckets
    with torch.no_grad(), torch.autocast(torch.device(DEVICE).type, dtype=torch.bfloat16):
        reference = model.encode_text(tokens, normalize=True).float()
        for buckets in (1, 3, 6):
            mine = encode_text(model, tokens, max_buckets=buckets).float()
            diff = float((mine - reference).abs().max())
            cosine = float(torch.nn.functional.cosine_similarity(mine, reference).min())
            record_property(f"max_abs_diff_buckets_{buckets}", diff)
            record_property(f"min_cosine_buckets_{buckets}", cosine)
            assert diff <= BF16_MAX_ABS_DIFF and cosine >= BF16_MIN_COSINE, (buckets, diff, cosine)
