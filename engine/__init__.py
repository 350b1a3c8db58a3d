"""SemCLIP engine: models, losses, data, caption generation, training, evaluation and exploring.

Pure Python + torch + open_clip. Nothing here imports Qt; the GUI and the CLI are thin clients.
The tree reads as the pipeline: :mod:`engine.model` (load, encode, cache, export),
:mod:`engine.data` (triples, shapes world, photo sets, galleries), :mod:`engine.captions`
(paraphrases and negations), :mod:`engine.train`, :mod:`engine.eval`, :mod:`engine.explore`
(what the app shows) and :mod:`engine.cli`.

The notebook face, imported on first use so that ``import engine`` stays light::

    import engine
    summary = engine.run_to_end(engine.fit(engine.TrainConfig(epochs=1, out_dir="runs/nb")),
                                on_event=print)          # any long job: events, then its result
    model = engine.load_model("runs/nb/checkpoint.pt")   # or an open_clip name, a delta, a folder
    results = engine.run_to_end(engine.evaluate("shapes", None, None, [model], n=100))
    print(engine.explain(model, "a red circle", negations=["no red circle"]))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "engine.model.loading",
    "LoadedModel": "engine.model.loading",
    "TrainConfig": "engine.train.config",
    "fit": ("engine.train.loop", "train"),  # `engine.train` is the package
    "TrainResult": "engine.train.loop",
    "evaluate": "engine.eval.run",
    "run_evaluation": "engine.eval.run",
    "explain": "engine.explore.explain",
    "shapes_gallery": "engine.data.galleries",
    "folder_gallery": "engine.data.galleries",
    "embed_gallery": "engine.explore.search",
    "top_k": "engine.explore.search",
    "run_to_end": "engine.events",
    "JobError": "engine.events",
    "new_stop_flag": "engine.events",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
