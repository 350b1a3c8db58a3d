"""Zero-shot accuracy on a class-folder data set: the general ability fine-tuning may cost.

Classifiers come from open_clip's own ``build_zero_shot_classifier`` over its
``SIMPLE_IMAGENET_TEMPLATES`` (each class's prompts averaged), once with the plain templates
and once with each template negated ("this is not a photo of the large daisy."). ``plain`` is the
usual zero-shot accuracy; ``negated`` is how often the best-matching *negated* prompt names the
image's own class, which a model that reads "not X" as "X" keeps as high as ``plain`` and a
negation-aware model drives down. A training run scores both after each evaluation
(``zeroshot_dataset``); :func:`zeroshot_scores` is the same measurement on any loaded model.
"""

from __future__ import annotations

from typing import Optional

import torch
from open_clip import build_zero_shot_classifier
from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

from engine.eval.benchmarks import BenchmarkData, load_zeroshot_folder
from engine.eval.metrics import zero_shot_accuracy
from engine.model.embed_cache import embed_images_cached

PLAIN_TEMPLATES = SIMPLE_IMAGENET_TEMPLATES
NEGATED_TEMPLATES = tuple((lambda c, t=t: f"this is not {t(c)}") for t in PLAIN_TEMPLATES)


def embed_zeroshot_images(loaded, data: BenchmarkData, batch_size: int = 64
                          ) -> tuple[torch.Tensor, list[int]]:
    """(image embeddings, labels) of the readable images of ``data`` (the model in eval mode,
    no on-disk cache: a training model changes between calls).

    Raises ValueError naming the folder when no image can be read.
    """
    out = embed_images_cached(loaded, [row.image for row in data.rows], batch_size=batch_size,
                              workers=0)
    keep = out.ok.nonzero().flatten().tolist()
    if not keep:
        raise ValueError(f"zero-shot: no readable image under {data.source}")
    return out.embeddings[keep], [data.rows[i].label for i in keep]


@torch.no_grad()
def zeroshot_scores(loaded, data: BenchmarkData, images: Optional[tuple[torch.Tensor, list[int]]] = None
                    ) -> dict[str, float]:
    """``{"plain": accuracy, "negated": accuracy}`` of ``loaded`` (a LoadedModel) on ``data``
    (from :func:`engine.eval.benchmarks.load_zeroshot_folder`); ``images`` reuses embeddings from
    :func:`embed_zeroshot_images` (a frozen image tower's never change)."""
    image_emb, labels = images or embed_zeroshot_images(loaded, data)
    model, device = loaded.model, loaded.device
    was_training = model.training
    model.eval()
    try:
        scores = {}
        for name, templates in (("plain", PLAIN_TEMPLATES), ("negated", NEGATED_TEMPLATES)):
            classifier = build_zero_shot_classifier(model, loaded.tokenizer, data.class_names,
                                                    templates, device=device)
            scores[name] = zero_shot_accuracy(image_emb.to(device).float(),
                                              classifier.T.float(), labels)
    finally:
        model.train(was_training)
    return scores


class ZeroShotMonitor:
    """A training run's zero-shot check: the folder is read once, and with a frozen image
    tower its images are embedded once."""

    def __init__(self, loaded, folder: str, image_tower_frozen: bool):
        self.loaded = loaded
        self.data = load_zeroshot_folder(folder)
        self._frozen = image_tower_frozen
        self._images: Optional[tuple[torch.Tensor, list[int]]] = None

    def scores(self) -> dict[str, float]:
        if self._images is None or not self._frozen:
            self._images = embed_zeroshot_images(self.loaded, self.data)
        return zeroshot_scores(self.loaded, self.data, self._images)
