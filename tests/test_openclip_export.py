"""``semclip export --format open_clip``: stock open_clip, in a process that cannot import the
project, loads the folder offline and computes the same embeddings as the project's model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.cli.commands import main
from engine.data.shapes.world import ShapesWorld
from engine.events import Done
from engine.model.loading import load_model
from engine.paths import ASSETS_DIR, PROJECT_ROOT
from engine.train.config import TrainConfig
from engine.train.loop import train

TEXTS = ["a big red circle", "a small blue square and no triangle", "no green star at all"]
DEMO_SEMCLIP = ASSETS_DIR / "demo_models" / "semclip.pt"  # a MiniLM text tower, as a delta

# Runs under `python -I` (no PYTHONPATH, no user site, no script folder on sys.path) with the
# project's packages blocked outright, so only stock open_clip can have built the model.
STOCK_OPEN_CLIP = r"""
import sys
for name in ("engine", "semclip_gui"):
    sys.modules[name] = None  # an import of the project now fails
import json
import open_clip, torch
from PIL import Image

folder, images, texts, out = sys.argv[1], sys.argv[2:-2], json.loads(sys.argv[-2]), sys.argv[-1]
model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + folder)
tokenizer = open_clip.get_tokenizer("local-dir:" + folder)
model.eval()
with torch.no_grad():
    image = model.encode_image(torch.stack([preprocess(Image.open(p)) for p in images]),
                               normalize=True)
    text = model.encode_text(tokenizer(texts), normalize=True)
project = [m.__name__ for m in list(sys.modules.values()) if m is not None and any(
           str(getattr(m, "__file__", "") or "").startswith(root + "/" + package + "/")
           for root in [sys.argv[0]] for package in ("engine", "semclip_gui"))]
torch.save({"image": image, "text": text, "project_modules": project,
            "path": sys.path}, out)
"""


def shapes_images(folder: Path, n: int = 3) -> list[Path]:
    world = ShapesWorld(seed=0, image_size=64)
    paths = []
    for i in range(n):
        path = folder / f"scene{i}.png"
        world.render(world.scene("test", i)).save(path)
        paths.append(path)
    return paths


def stock_open_clip_embeddings(folder: Path, images: list[Path], tmp_path: Path) -> dict:
    """Embeddings computed by stock open_clip in a clean, offline interpreter."""
    out = tmp_path / "stock.pt"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    # argv[0] of `-c` is "-c"; pass the project root in its place to check against (its
    # packages only: a virtual environment may live inside the project folder)
    script = STOCK_OPEN_CLIP.replace("sys.argv[0]", repr(str(PROJECT_ROOT)))
    done = subprocess.run([sys.executable, "-I", "-c", script, str(folder),
                           *map(str, images), json.dumps(TEXTS), str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = torch.load(out, weights_only=False)
    assert result["project_modules"] == []
    assert not any(str(PROJECT_ROOT) == str(Path(p).resolve()) for p in result["path"] if p)
    return result


def project_embeddings(spec: str, images: list[Path]) -> dict:
    from PIL import Image

    loaded = load_model(spec)
    with torch.no_grad():
        image = loaded.model.encode_image(
            torch.stack([loaded.preprocess(Image.open(p)) for p in images]), normalize=True)
        text = loaded.model.encode_text(loaded.tokenizer(TEXTS), normalize=True)
    return {"image": image, "text": text}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-run")
    cfg = TrainConfig(model="semclip-tiny", lock_image=False, shapes_train_size=32,
                      batch_size=16, epochs=1, eval_every_epochs=0, warmup_steps=1, lr=1e-3,
                      out_dir=str(out), threads=1)
    events = list(train(cfg))
    assert isinstance(events[-1], Done), events[-1]
    return out / "checkpoint.pt"


@pytest.mark.parametrize("which", ["semclip-tiny checkpoint", "MiniLM demo model (delta)"])
def test_stock_open_clip_loads_the_export_with_the_same_outputs(which, tiny_checkpoint,
                                                                tmp_path, capsys):
    spec = str(tiny_checkpoint if which.startswith("semclip-tiny") else DEMO_SEMCLIP)
    folder = tmp_path / "exported"
    assert main(["export", "--format", "open_clip", "--checkpoint", spec,
                 "--out", str(folder)]) == 0
    assert "load with open_clip.create_model_and_transforms('local-dir:" in \
        capsys.readouterr().out
    assert {"open_clip_config.json", "open_clip_model.safetensors"} <= \
        {p.name for p in folder.iterdir()}
    config = json.loads((folder / "open_clip_config.json").read_text())
    assert set(config) == {"model_cfg", "preprocess_cfg"}
    assert "site-packages" not in json.dumps(config) and "@" not in json.dumps(config)

    images = shapes_images(tmp_path)
    stock = stock_open_clip_embeddings(folder, images, tmp_path)
    ours = project_embeddings(spec, images)
    torch.testing.assert_close(stock["image"], ours["image"], rtol=0, atol=1e-5)
    torch.testing.assert_close(stock["text"], ours["text"], rtol=0, atol=1e-5)


def test_a_second_export_replaces_the_first_and_other_folders_are_refused(tiny_checkpoint,
                                                                          tmp_path, capsys):
    folder = tmp_path / "exported"
    args = ["export", "--format", "open_clip", "--checkpoint", str(tiny_checkpoint),
            "--out", str(folder)]
    assert main(args) == 0 and main(args) == 0  # an earlier export is replaced whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]  # no staging left over
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    assert main(args[:-1] + [str(other)]) == 1
    assert "is not an OpenCLIP export" in capsys.readouterr().err
    assert (other / "mine.txt").read_text() == "keep me"
    assert main(args[:3] + ["--checkpoint", str(tmp_path / "nope.pt"), "--out",
                            str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()
