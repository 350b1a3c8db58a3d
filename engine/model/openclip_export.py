"""Export a model in OpenCLIP's own folder layout, loadable with no project code.

    open_clip.create_model_and_transforms("local-dir:DIR")   # stock open_clip, offline

The folder is what ``open_clip.push_to_hf_hub.save_for_hf`` writes: ``open_clip_config.json``
(``model_cfg`` + ``preprocess_cfg``) and ``open_clip_model.safetensors``. Two things differ from
a project checkpoint. The project's configs name their Hugging Face text tower by an alias
(``@minilm``) that only the project resolves, to a folder inside site-packages; the export
instead holds that tower's ``config.json`` and tokenizer files itself and names its own folder
as ``hf_model_name``, so open_clip builds the tower (its weights come from the safetensors)
and the tokenizer from the export alone. And a delta export or checkpoint becomes one full set
of weights in float32.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Union

CONFIG_NAME = "open_clip_config.json"  # open_clip.constants.HF_CONFIG_NAME
WEIGHTS_NAME = "open_clip_model.safetensors"  # open_clip.constants.HF_SAFE_WEIGHTS_NAME


def export_open_clip(spec: str, out_dir: Union[str, Path]) -> Path:
    """Write the model ``spec`` names (a checkpoint, a delta export or a config) to ``out_dir``
    in OpenCLIP's layout; returns the folder.

    The folder is built beside ``out_dir`` and renamed into place, so a failed export never
    leaves a half-written one; an earlier OpenCLIP export there is replaced, any other
    non-empty folder is refused.
    """
    import safetensors.torch
    from engine.model._openclip import save_config_for_hf

    from engine.atomic import current_umask
    from engine.model.loading import load_model, model_config

    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and (not out_dir.is_dir() or
                             (any(out_dir.iterdir()) and not (out_dir / CONFIG_NAME).is_file())):
        raise ValueError(f"{out_dir} exists and is not an OpenCLIP export; choose a new or "
                         f"empty folder")
    loaded = load_model(spec)
    model_cfg = model_config(loaded.model_name)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        staging.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; honour the user's umask
        text_cfg = model_cfg.get("text_cfg", {})
        if "hf_model_name" in text_cfg:
            # The tower's architecture (config.json) and tokenizer travel with the export:
            # open_clip reads both from hf_model_name, and the tokenizer of a local-dir model
            # from the folder itself.
            loaded.model.text.config.save_pretrained(staging)
            loaded.tokenizer.save_pretrained(staging)
            text_cfg["hf_model_name"] = str(out_dir)
            text_cfg["hf_tokenizer_name"] = str(out_dir)
            text_cfg.pop("hf_model_pretrained", None)
        state = {k: v.detach().float().contiguous() if v.is_floating_point() else v
                 for k, v in loaded.model.state_dict().items()}
        safetensors.torch.save_file(state, str(staging / WEIGHTS_NAME))
        save_config_for_hf(loaded.model, staging / CONFIG_NAME, model_config=model_cfg)
        for path in staging.iterdir():  # safetensors writes 0600 files
            path.chmod(0o666 & ~current_umask())
        _replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _replace_dir(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``, replacing an existing ``target`` only once ``new`` is whole."""
    if not target.exists():
        new.rename(target)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def open_clip_summary(out_dir: Union[str, Path]) -> str:
    """One line: what the export holds and how to load it."""
    out_dir = Path(out_dir)
    cfg = json.loads((out_dir / CONFIG_NAME).read_text())["model_cfg"]
    size = (out_dir / WEIGHTS_NAME).stat().st_size / 2 ** 20
    tower = "Hugging Face text tower" if "hf_model_name" in cfg.get("text_cfg", {}) else \
        "built-in text tower"
    return (f"{out_dir}: OpenCLIP folder (embed_dim {cfg['embed_dim']}, {tower}), "
            f"{size:.1f} MiB; load with open_clip.create_model_and_transforms("
            f"'local-dir:{out_dir}')")
