"""SemCLIP fine-tuning as a generator of typed events.

    for event in train(TrainConfig(...), stop=threading.Event()):
        ...  # StepMetrics, EvalResult, CheckpointSaved, Log, Done, Error

Reads top to bottom: set-up (device, seeds, distributed), model and loss, data, optimiser and
schedule, optional resume, then the loop. The CLI prints the events; the app turns them into Qt
signals. Multi-GPU: launch the same entry point under ``torchrun``; the world size is read from
the environment and features are gathered across processes by the loss.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import random
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, Optional, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from engine.data.claims import ClaimBatch, ClaimSampler
from engine.data.triples import collate
from engine.events import (CheckpointSaved, Done, Error, EvalResult, Event, JobError, Log,
                           NeverStop, Progress, StepMetrics, StopFlag)
from engine.model.checkpoint import keep_checkpoint_as, load_training_state, save_checkpoint
from engine.model.encoding import encode_text
from engine.model.loading import LoadedModel, load_model, lock_towers, model_config, read_sidecar
from engine.model.losses import BatchTruth, SemClipLoss
from engine.model.trunk_cache import trunk_features, trunk_locked
from engine.train.config import RESUME_LATEST, ConfigError, TrainConfig
from engine.train.runs import (BEST_CHECKPOINT, LAST_CHECKPOINT, improves, prune_step_checkpoints,
                               resolve_run, step_checkpoint_name)
from engine.train.task import ImageFeatureCache, SemClipTask, build_optimizer, weights_finite
from engine.train.tracking import FanOut, TrackingError, metric_items, open_trackers


# item indices -> (captions[i, j], negations[k, j]): which texts are true of which images
TruthOf = Callable[[list[int]], tuple[torch.Tensor, torch.Tensor]]


class TrainingError(JobError):
    """A run cannot go on; ``kind`` says why (nan_loss, diverged, oom, data, config, input,
    output)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message, kind=kind)


# ---------------------------------------------------------------------------------------------
# distributed set-up (torchrun sets these variables; a plain run is world size 1)
# ---------------------------------------------------------------------------------------------

@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    """Join the torchrun process group if there is one (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, dist_info: DistInfo) -> torch.device:
    """``auto`` picks CUDA when present; under torchrun each process takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError("config", "device 'cuda' requested but no CUDA GPU is visible")
        if name == "cuda" and dist_info.world_size > 1:
            name = f"cuda:{dist_info.local_rank}"
    return torch.device(name)


def describe_device(name: str) -> str:
    """The device a config's ``device`` resolves to, in words for messages: a GPU with its
    name, size and this process's peak use, e.g. ``cuda:0 (NVIDIA H200, 139.8 GiB, peak 97.1 GiB
    used by this process)``; "auto" is never shown, since it does not say which device ran out."""
    dist_info = DistInfo(world_size=int(os.environ.get("WORLD_SIZE", "1")),
                         local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    try:
        device = resolve_device(name, dist_info)
    except (TrainingError, RuntimeError):
        return name
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    peak = torch.cuda.max_memory_allocated(index)
    return (f"cuda:{index} ({props.name}, {props.total_memory / 2 ** 30:.1f} GiB, peak "
            f"{peak / 2 ** 30:.1f} GiB used by this process)")


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------

class EpochSampler(Sampler[int]):
    """A permutation that depends only on (seed, epoch), sharded over ranks, with a start offset.

    Keeping the order a pure function of the epoch is what makes a resumed run see exactly the
    batches an uninterrupted run would have seen, without re-reading the skipped ones.
    """

    def __init__(self, length: int, seed: int, epoch: int, dist_info: DistInfo, skip: int = 0):
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(length, generator=g)
        per_rank = length // dist_info.world_size  # drop the ragged tail so ranks stay in step
        self.indices = order[dist_info.rank:per_rank * dist_info.world_size:dist_info.world_size]
        self.indices = self.indices[skip:].tolist()

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class TextsOnly(Dataset):
    """A training set read without its images (``dataset.texts(i)``): once the image-embedding
    cache holds every image of an epoch, decoding or drawing them again would be wasted work."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.dataset.texts(index)


def build_datasets(cfg: TrainConfig, transform, tokenizer) -> tuple[Dataset, Optional[Dataset], list[str]]:
    """Training set, held-out set (or None) and log lines about skipped input."""
    notes: list[str] = []
    if cfg.dataset == "shapes":
        from engine.data.shapes.language import load_held_out
        from engine.data.shapes.world import ShapesDataset, ShapesWorld
        size = _image_size(transform)
        held_out = (load_held_out(cfg.shapes_held_out_queries) if cfg.shapes_held_out_queries
                    else frozenset())
        train_world = ShapesWorld(seed=cfg.shapes_seed, image_size=size,
                                  true_negation_prob=cfg.shapes_true_negation_prob,
                                  varied_wording_prob=cfg.shapes_varied_wording_prob,
                                  rich_language_prob=cfg.shapes_rich_language_prob,
                                  held_out_sentences=held_out)
        val_world = ShapesWorld(seed=cfg.shapes_seed, image_size=size)  # affirmative originals
        train_set = ShapesDataset(train_world, "train", cfg.shapes_train_size, transform=transform)
        val_set = ShapesDataset(val_world, "val", cfg.shapes_eval_size, transform=transform)
        return train_set, val_set, notes
    from engine.data.triples import TriplesDataset, overlong_captions
    from engine.data.triples_io import open_triples, split_rows
    triples, images = open_triples(cfg.dataset, root=cfg.data_root, columns=cfg.columns)
    texts = [s for t in triples for s in (t.caption, t.paraphrase, t.negation)]
    too_long = overlong_captions(texts, tokenizer, tokenizer.context_length)
    if too_long:
        rows = sorted({triples[i // 3].line for i in too_long})
        notes.append(f"{cfg.dataset}: {len(too_long)} caption(s) longer than the "
                     f"{tokenizer.context_length}-token context are truncated (lines {rows[:10]}"
                     f"{' ...' if len(rows) > 10 else ''})")
    val_triples = None
    if cfg.split:
        triples, val_triples, test = split_rows(triples, cfg.split, cfg.split_seed)
        notes.append(f"{cfg.dataset}: split {cfg.split} (seed {cfg.split_seed}): "
                     f"{len(triples)} train, {len(val_triples)} val, {len(test)} test rows "
                     f"(the test rows are held out)")
    train_set = TriplesDataset(triples, transform=transform, images=images)
    notes += [p.report(cfg.dataset) for p in train_set.missing]
    if train_set.missing:
        notes.append(f"{cfg.dataset}: {len(train_set.missing)} of {len(triples)} rows skipped "
                     f"(image missing or refused)")
    val_set = None
    if cfg.val_dataset:
        val_triples, images = open_triples(cfg.val_dataset, root=cfg.data_root,
                                           columns=cfg.columns)
    if val_triples:
        val_set = TriplesDataset(val_triples, transform=transform, images=images)
    elif cfg.split:
        notes.append(f"{cfg.dataset}: the split's val part is empty: no evaluation")
    if len(train_set) == 0:
        raise TrainingError("data", f"{cfg.dataset}: no usable rows (every image missing?)")
    return train_set, val_set, notes


def _image_size(transform) -> int:
    for t in getattr(transform, "transforms", []):
        size = getattr(t, "size", None)
        if size is not None:
            return size if isinstance(size, int) else size[0]
    return 64


# ---------------------------------------------------------------------------------------------
# schedule
# ---------------------------------------------------------------------------------------------

def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Linear warm-up to ``cfg.lr``, then cosine decay to 0 at ``total_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------
# evaluation on the held-out split
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate_triples(model: torch.nn.Module, tokenizer, dataset: Dataset, device: torch.device,
                     batch_size: int = 256, retrieval_k: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Original-over-negation accuracy and text-to-image top-k (each of ``retrieval_k``) for
    captions and paraphrases."""
    from engine.eval.metrics import original_over_negation_accuracy, topk_text_to_image_accuracy
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    imgs, caps, paras, negs = [], [], [], []
    for batch in loader:
        if batch is None or not batch["caption"]:  # nothing readable in this batch
            continue
        imgs.append(model.encode_image(batch["image"].to(device), normalize=True).float().cpu())
        for store, key in ((caps, "caption"), (paras, "paraphrase"), (negs, "negation")):
            store.append(encode_text(model, tokenizer(batch[key]).to(device)).float().cpu())
    model.train(was_training)
    img, cap, para, neg = (torch.cat(x) for x in (imgs, caps, paras, negs))
    return {"ono_accuracy": float(original_over_negation_accuracy(img, cap, neg)),
            **{f"{role}_top{k}": float(topk_text_to_image_accuracy(texts, img, k))
               for role, texts in (("caption", cap), ("paraphrase", para)) for k in retrieval_k}}


# ---------------------------------------------------------------------------------------------
# the run's pieces: output folder, metrics log, checkpoints, resume, the image cache
# ---------------------------------------------------------------------------------------------

RUN_FILES = ("checkpoint.pt", "metrics.jsonl", "config.json")  # what makes a folder "used"
# Fields a resumed run must share with its checkpoint: they fix V, the data and its order.
RESUME_FIXED = ("n_projections", "learnable_projections", "projection_seed", "batch_size",
                "accum_steps", "dataset", "shapes_train_size", "shapes_seed", "seed", "split",
                "split_seed", "columns")


def _capture_rng() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_out_dir(cfg: TrainConfig) -> Path:
    """Refuse an output folder that cannot be written, or that holds another run.

    A fresh run into a folder with an earlier run's files needs ``overwrite``; a resumed run
    may continue in its own folder. Checked before any model loads, on every rank.
    """
    out_dir = Path(cfg.out_dir)
    for parent in [out_dir, *out_dir.parents]:
        if parent.exists() and not parent.is_dir():
            what = "is a file" if parent == out_dir else f"lies under a file ({parent})"
            raise TrainingError("output", f"out_dir {out_dir} {what}; choose a folder")
    used = [name for name in RUN_FILES if (out_dir / name).exists()]
    if used and not cfg.resume and not cfg.overwrite:
        raise TrainingError("output", (
            f"out_dir {out_dir} already holds a run ({', '.join(used)}); choose a new folder, "
            f"resume it (resume={out_dir / 'checkpoint.pt'}) or start afresh with overwrite=true"))
    existing = next(p for p in [out_dir, *out_dir.parents] if p.exists())
    try:  # a real write, not os.access: it also catches read-only mounts and full disks
        import tempfile
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise TrainingError("output", f"cannot write to out_dir {out_dir} "
                                      f"({exc.strerror or exc}); choose a writable folder") from None
    return out_dir


class MetricsLog:
    """``metrics.jsonl`` of a run: one JSON object a line, flushed as it goes.

    A fresh run starts the file afresh (``check_out_dir`` refused an old run unless told to
    overwrite it); a resumed run keeps the lines up to its checkpoint's step and drops the rest,
    so no step appears twice.
    """

    def __init__(self, path: Path, resume_step: Optional[int]):
        kept: list[str] = []
        if resume_step is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("step", 0) <= resume_step:
                        kept.append(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash
        self._file = open(path, "w", encoding="utf-8")
        self._file.write("".join(line + "\n" for line in kept))
        self._file.flush()

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self, outcome: str = "finished") -> None:
        self._file.close()


class Checkpointer:
    """Writes ``checkpoint.pt`` (and its sidecar) atomically, only ever with finite weights.

    A run whose weights have become non-finite is stopped before they reach the disk, so the
    checkpoint on disk is always the last good one; ``describe_last_good`` says where it is.
    """

    def __init__(self, path: Path, enabled: bool, last_good: Optional[tuple[int, str]] = None):
        self.path, self.enabled = path, enabled
        self.last_good = last_good  # (step, path) of the newest good checkpoint on disk

    def describe_last_good(self) -> str:
        if self.last_good is None:
            return "No checkpoint was written before that."
        step, path = self.last_good
        return f"The last good checkpoint (step {step}) is kept at {path}."

    def save(self, step: int, payload: dict[str, Any], sidecar: dict[str, Any],
             task: torch.nn.Module) -> Optional[CheckpointSaved]:
        if not weights_finite(task):
            raise TrainingError("diverged", (
                f"the weights became non-finite (NaN or inf) by step {step}; they were not saved. "
                f"{self.describe_last_good()} Try a lower lr or precision=fp32."))
        if not self.enabled:
            return None
        with self._writing(self.path):
            save_checkpoint(self.path, payload, sidecar)
        self.last_good = (step, str(self.path))
        return CheckpointSaved(step=step, path=str(self.path))

    def keep_last_as(self, name: str) -> None:
        """Keep the checkpoint just saved as ``name`` too (``step_<N>.pt``, ``best.pt``): the
        same finite weights, linked rather than written again."""
        if self.enabled:
            path = self.path.with_name(name)
            with self._writing(path):
                keep_checkpoint_as(self.path, path)

    @contextmanager
    def _writing(self, path: Path) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise TrainingError("output", (
                f"could not write the checkpoint {path}: {exc.strerror or exc}. "
                f"{self.describe_last_good()}")) from None


def _resolve_run_on_all_ranks(cfg: TrainConfig, dist_info: DistInfo, device: torch.device
                              ) -> TrainConfig:
    """The run folder and checkpoint to resume (:func:`engine.train.runs.resolve_run`), chosen by
    rank 0 and shared: a timestamped folder name must not differ by a second between ranks."""
    resolved = resolve_run(cfg)
    if dist_info.world_size > 1:
        chosen = [resolved.out_dir, resolved.resume]
        dist.broadcast_object_list(chosen, src=0, device=device if device.type == "cuda" else None)
        resolved = replace(cfg, out_dir=chosen[0], resume=chosen[1])
    return resolved


def _log_epoch_record(metrics_log: Optional[FanOut], kind: str, step: int, epoch: int,
                      values: dict[str, float]) -> dict[str, float]:
    """Write an epoch's ``eval`` or ``zeroshot`` record; returns its values by tracker name."""
    record = {"type": kind, "step": step, "epoch": epoch, **values}
    if metrics_log:
        metrics_log.write(record)
    return {name: value for name, value in metric_items(record)[1].items()
            if not name.endswith("/epoch")}


def _check_resumable(cfg: TrainConfig, state: dict[str, Any], world_size: int) -> None:
    """A resumed run must see the data and V its checkpoint was trained with."""
    saved = state.get("train_config") or {}
    changed = [f"{k} (checkpoint {saved[k]!r}, now {getattr(cfg, k)!r})"
               for k in RESUME_FIXED if k in saved and saved[k] != getattr(cfg, k)]
    saved_world = state.get("world_size", world_size)
    if saved_world != world_size:
        changed.append(f"number of processes (checkpoint {saved_world}, now {world_size})")
    if changed:
        raise TrainingError("config", f"cannot resume {cfg.resume} with different settings: "
                                      f"{'; '.join(changed)}. Resume with the checkpoint's own "
                                      f"values, or start a new run.")


def _fill_image_cache(task: SemClipTask, dataset: Dataset, cfg: TrainConfig,
                      dist_info: DistInfo, device: torch.device, autocast) -> Iterator[Event]:
    """Embed every training image once, in index order and fixed chunks of ``batch_size``.

    The fixed order makes the cached embeddings the same in an uninterrupted and a resumed run
    (batch composition changes the last bits of a forward pass), so resuming is exact. Under
    DDP each rank embeds an interleaved share and the ranks exchange their rows.
    """
    cache = task.image_cache
    mine = cache.shard(dist_info.rank, dist_info.world_size)
    loader = DataLoader(torch.utils.data.Subset(dataset, mine), batch_size=cfg.batch_size,
                        shuffle=False, num_workers=cfg.workers, collate_fn=collate,
                        generator=torch.Generator().manual_seed(cfg.seed))
    done = 0
    for batch in loader:
        for problem in (batch or {}).get("problems", ()):
            yield Log(problem.report(cfg.dataset), "warning")
        if batch is not None and batch["image"] is not None:
            with autocast():  # not around the yields: the caller's code must not run under it
                features = task.embed_images(batch["image"].to(device))
            cache.store(batch["index"], features)
        done = min(done + cfg.batch_size, len(mine))
        yield Progress(done=done, total=len(mine), phase="embedding images")
    if dist_info.world_size > 1:
        cache.merge()
    missing = int((~cache.filled).sum())
    if missing:
        yield Log(f"{missing} training image(s) could not be read; their rows are skipped",
                  "warning")


def _fill_trunk_cache(task: SemClipTask, loaded: LoadedModel, dataset, cfg: TrainConfig,
                      device: torch.device) -> Iterator[Event]:
    """Fill ``task.image_cache`` with the locked trunk's pooled features of every row's image
    (:mod:`engine.model.trunk_cache`: computed once per photo or drawn scene and kept on disk
    across runs, so a recipe's second model and every later run skip the trunk)."""
    sources = dataset.drawings() if hasattr(dataset, "drawings") else \
        [t.image for t in dataset.triples]
    found = yield from trunk_features(loaded, sources, batch_size=cfg.batch_size,
                                      workers=max(cfg.workers, 1))
    for failure in found.failures:
        yield Log(f"{failure.path}: {failure.reason}; its rows are skipped", "warning")
    task.image_cache = ImageFeatureCache(len(sources), found.embeddings.shape[1], device)
    rows = found.ok.nonzero().flatten()
    task.image_cache.store(rows, found.embeddings[rows].to(device))
    task.cache_holds_trunk = True
    yield Log(f"trunk features: {found.cache_hits} images from the disk cache, "
              f"{found.encoded} encoded now")


def _micro_groups(loader: DataLoader, size: int) -> Iterator[list[dict]]:
    """The loader's batches in groups of ``size`` (one optimiser step each); a short last
    group is dropped, so every step sees the same number of micro-batches."""
    group: list[dict] = []
    for batch in loader:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []


def _stop_requested(stop: StopFlag, dist_info: DistInfo, device: torch.device) -> bool:
    """The stop flag, agreed across ranks (any rank's Ctrl-C stops all at the same step)."""
    if dist_info.world_size == 1:
        return stop.is_set()
    flag = torch.tensor([1.0 if stop.is_set() else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


# ---------------------------------------------------------------------------------------------
# one optimiser step
# ---------------------------------------------------------------------------------------------

def _as_inputs(batch: dict, tokenizer, device: torch.device, cached: bool,
               fields: tuple[str, ...] = ("caption", "paraphrase", "negation")):
    images = None if cached or batch["image"] is None else batch["image"].to(device, non_blocking=True)
    tokens = tokenizer([text for key in fields for text in batch[key]])
    index = batch.get("index")
    return images, tokens.to(device, non_blocking=True), index


def _usable(batch: Optional[dict], cache: Optional[ImageFeatureCache]) -> Optional[dict]:
    """Drop the rows whose cached image embedding is missing (an unreadable image); None when
    no row is left (a batch may carry only the problems of unreadable images)."""
    if batch is None or not batch["caption"]:
        return None
    if cache is None:
        return batch
    keep = cache.filled[batch["index"].to(cache.filled.device)].cpu()
    if bool(keep.all()):
        return batch
    if not bool(keep.any()):
        return None
    rows = keep.nonzero().flatten().tolist()
    out = {k: [batch[k][i] for i in rows] for k in ("caption", "paraphrase", "negation")}
    out["index"] = batch["index"][keep]
    out["image"] = batch["image"][keep] if batch["image"] is not None else None
    return out


def step_indices(group: list[dict], device: torch.device) -> tuple[torch.Tensor, slice]:
    """The item indices of a step's whole batch (every micro-batch, on every rank, in the order
    the loss gathers features), and where this rank's items lie among them."""
    indices = torch.cat([b["index"] for b in group]).to(device)
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return indices, slice(0, len(indices))
    parts = [torch.empty_like(indices) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, indices)
    rank = dist.get_rank()
    return torch.cat(parts), slice(rank * len(indices), (rank + 1) * len(indices))


def batch_truth(group: list[dict], truth_of: TruthOf, device: torch.device) -> BatchTruth:
    """What the texts of a step's whole batch (:func:`step_indices`) say truly of its images."""
    indices, _ = step_indices(group, device)
    captions, negations = truth_of(indices.tolist())
    return BatchTruth(captions, negations).to(device)


def step_claims(sampler: ClaimSampler, step: int, group: list[dict],
                objects_of: Callable[[list[int]], list[frozenset]],
                device: torch.device) -> ClaimBatch:
    """The step's claims, drawn from what the whole batch shows (every rank's items, so every
    rank meets the claims one process would), with this rank's rows of the truth."""
    indices, mine = step_indices(group, device)
    drawn = sampler.draw(step, objects_of(indices.tolist()))
    return ClaimBatch(drawn.texts, drawn.truth[mine])


def train_step(task: SemClipTask, runner: torch.nn.Module, group: list[dict], tokenizer,
               device: torch.device, autocast, scaler: torch.amp.GradScaler,
               truth_of: Optional[TruthOf] = None, claims: Optional[ClaimBatch] = None
               ) -> dict[str, torch.Tensor]:
    """Forward and backward over one accumulated step's micro-batches; returns the loss terms.

    One micro-batch: a plain forward and backward. Several: every micro-batch's features are
    first computed without gradients, then each micro-batch is recomputed with gradients in the
    company of all the others, so loss and gradients equal those of one big batch (open_clip's
    ``--accum-freq``). ``runner`` is the task itself or its DDP wrapper; gradients are
    all-reduced only on the last backward. ``truth_of`` (item indices -> which captions and
    negations are true of which items' images) turns on false-negative masking. ``claims``
    (rows: the group's items in order) feed the claim term.
    """
    truth = batch_truth(group, truth_of, device) if truth_of is not None else None
    cached = task.image_cache is not None
    inputs = [_as_inputs(b, tokenizer, device, cached, task.text_fields) for b in group]
    claim_args: dict[str, Any] = {}
    if claims is not None:
        claim_args = {"claim_tokens": tokenizer(claims.texts).to(device),
                      "claim_truth": claims.truth.to(device)}
    context = None
    if len(inputs) > 1:
        with torch.no_grad(), autocast():
            context = [task.features(*x, claim_args.get("claim_tokens")) for x in inputs]
    terms: dict[str, torch.Tensor] = {}
    for slot, x in enumerate(inputs):
        last = slot == len(inputs) - 1
        sync = nullcontext() if last or runner is task else runner.no_sync()
        with sync:
            with autocast():
                terms = runner(*x, context=context, slot=slot, truth=truth, **claim_args)
            total = sum(terms.values())
            if not torch.isfinite(total):
                return terms  # the caller stops the run; nothing is stepped
            scaler.scale(total).backward()
    return terms


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

def train(cfg: TrainConfig, stop: Optional[StopFlag] = None) -> Iterator[Event]:
    """Run SemCLIP fine-tuning, yielding events; ends with exactly one Done (its result a
    :class:`TrainResult`) or Error."""
    stop = stop or NeverStop()
    try:
        yield from _train(cfg, stop)
    except ConfigError as exc:
        yield Error(kind="config", message=str(exc))
    except TrainingError as exc:
        yield Error(kind=exc.kind, message=str(exc))
    except TrackingError as exc:
        yield Error(kind="tracking", message=str(exc))
    except torch.cuda.OutOfMemoryError:
        smaller = max(1, cfg.batch_size // 2)
        yield Error(kind="oom", message=(
            f"GPU out of memory at batch size {cfg.batch_size} on {describe_device(cfg.device)}. "
            f"Try batch_size={smaller} with accum_steps={cfg.accum_steps * 2}: the same "
            f"contrastive batch, computed in two halves."))
    except (FileNotFoundError, ValueError) as exc:
        yield Error(kind="input", message=str(exc))


def _precision(cfg: TrainConfig, device: torch.device):
    """(autocast context factory, gradient scaler) for the configured precision."""
    name = cfg.precision
    if name == "auto":
        name = "bf16" if device.type == "cuda" else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise TrainingError("config", "precision=fp16 needs a CUDA GPU (it trains with a "
                                      "gradient scaler there); on CPU use fp32 or bf16")
    scaler = torch.amp.GradScaler(device.type, enabled=name == "fp16")
    if name == "fp32":
        return nullcontext, scaler
    dtype = torch.bfloat16 if name == "bf16" else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def _build_task(cfg: TrainConfig, device: torch.device, dist_info: DistInfo
                ) -> tuple[LoadedModel, SemClipTask]:
    # the run owns the process's RNG: the initialisation draws from it, seeded, and dropout
    # goes on from where it left off (as before load_model stopped touching the global RNG)
    torch.manual_seed(cfg.seed)
    loaded = load_model(cfg.model, device=device, seed=None)
    lock_towers(loaded.model, lock_image=cfg.lock_image,
                image_unlocked_groups=cfg.image_unlocked_groups,
                lock_text=cfg.text_unlocked_layers >= 0,
                text_unlocked_layers=max(cfg.text_unlocked_layers, 0))
    if cfg.init_logit_scale > 0:
        with torch.no_grad():
            loaded.model.logit_scale.fill_(math.log(cfg.init_logit_scale))
    loss = SemClipLoss(
        embed_dim=loaded.embed_dim, n_projections=cfg.n_projections,
        learnable_projections=cfg.learnable_projections, alpha=cfg.alpha, beta=cfg.beta,
        gamma=cfg.gamma, delta=cfg.delta, hard_negatives=cfg.hard_negatives,
        paraphrase_positives=cfg.paraphrase_positives, projection_seed=cfg.projection_seed,
        gather_with_grad=True, rank=dist_info.rank, world_size=dist_info.world_size)
    task = SemClipTask(loaded.model, loss).to(device)
    task.train()
    return loaded, task


def _wrap_distributed(task: SemClipTask, cfg: TrainConfig, device: torch.device
                      ) -> torch.nn.Module:
    # Parameters a loss setting leaves out of the graph (the temperature without the
    # contrastive term, a learnable V without its terms) must be declared to DDP.
    unused = cfg.alpha == 0 or (cfg.learnable_projections and cfg.beta == cfg.gamma == 0)
    ddp = torch.nn.parallel.DistributedDataParallel
    # No buffer sync before each forward; newer torch renamed the flag and warns on the old name.
    no_buffer_sync = ({"forward_sync_buffers": False}
                      if "forward_sync_buffers" in inspect.signature(ddp).parameters
                      else {"broadcast_buffers": False})
    return ddp(task, device_ids=[device.index] if device.type == "cuda" else None,
               find_unused_parameters=unused, **no_buffer_sync)


def _train(cfg: TrainConfig, stop: StopFlag) -> Iterator[Event]:
    run = yield from _start(cfg)
    stopped, outcome = False, "failed"
    try:
        for epoch in range(run.step // run.steps_per_epoch, cfg.epochs):
            if run.step >= run.total_steps:
                break
            stopped = yield from _train_epoch(run, epoch, stop)
            if stopped:
                break
            yield from _end_epoch(run, epoch)
        if stopped:
            saved = run.checkpoint(run.step // run.steps_per_epoch)
            if saved:
                yield saved
        outcome = "stopped" if stopped else "finished"
    finally:
        if run.metrics_log:
            run.metrics_log.close(outcome)
    yield Done(TrainResult(step=run.step, checkpoint=str(run.checkpointer.path),
                           metrics=dict(run.last_eval or {}), name=cfg.name or cfg.model,
                           out_dir=str(run.out_dir)), stopped=stopped)


@dataclass(frozen=True)
class TrainResult:
    """What a training run leaves behind (the result of :func:`train`'s ``Done``)."""

    step: int  # optimiser steps taken, over every resume
    checkpoint: str  # the last checkpoint; resume from it
    metrics: dict[str, float]  # the last evaluation's metrics (empty without a dev split)
    name: str
    out_dir: str  # the run folder


@dataclass
class _Run:
    """One run's collaborators and progress, shared by the phases of the loop."""

    cfg: TrainConfig
    dist_info: DistInfo
    device: torch.device
    autocast: Callable
    scaler: torch.amp.GradScaler
    out_dir: Path
    loaded: LoadedModel
    task: SemClipTask
    optimizer: torch.optim.Optimizer
    train_set: Dataset
    val_set: Optional[Dataset]
    steps_per_epoch: int
    total_steps: int
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: Optional[dict[str, Any]] = None  # the best so far by best_metric
    last_eval: dict[str, float] = field(default_factory=dict)
    runner: Optional[torch.nn.Module] = None  # the task, or its DDP wrapper
    zeroshot: Any = None  # a ZeroShotMonitor, on rank 0 only
    checkpointer: Optional[Checkpointer] = None
    metrics_log: Optional[FanOut] = None  # metrics.jsonl and the report_to trackers
    claim_sampler: Optional[ClaimSampler] = None  # the claim term's (delta > 0)

    def checkpoint(self, epoch: int) -> Optional[CheckpointSaved]:
        """Save ``checkpoint.pt`` with everything an exact resume needs."""
        cfg, task = self.cfg, self.task
        payload = {"state_dict": task.clip.state_dict(), "loss_state": task.loss.state_dict(),
                   "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                   "step": self.step, "epoch": epoch, "rng": _capture_rng(),
                   "history": self.history, "train_config": cfg.to_dict(),
                   "world_size": self.dist_info.world_size, "best": self.best}
        sidecar = {"format": "semclip-checkpoint/1", "model_name": self.loaded.model_name,
                   "model_spec": cfg.model, "model_config": model_config(self.loaded.model_name),
                   "loss_config": task.loss.config(), "train_config": cfg.to_dict(),
                   "step": self.step, "epoch": epoch, "metrics": self.last_eval,
                   "history": self.history, "best": self.best}
        return self.checkpointer.save(self.step, payload, sidecar, task)


def _start(cfg: TrainConfig) -> Generator[Event, None, _Run]:
    """Everything before the first step, in the order that makes a resume exact: config,
    system and output folder (all checked before anything heavy loads), model and loss, data,
    optimiser, resume, the locked-tower caches, output files."""
    cfg.validate()
    dist_info = init_distributed("cuda" if cfg.device.startswith("cuda") or
                                 (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")
    device = resolve_device(cfg.device, dist_info)
    autocast, scaler = _precision(cfg, device)
    asked_latest = cfg.resume == RESUME_LATEST
    cfg = _resolve_run_on_all_ranks(cfg, dist_info, device)
    if asked_latest:
        yield Log(f"resume=latest: {cfg.resume}" if cfg.resume else
                  f"resume=latest: no checkpoint yet, starting a new run in {cfg.out_dir}")
    out_dir = check_out_dir(cfg)
    if dist_info.world_size > 1:
        dist.barrier()  # every rank has looked at the folder before rank 0 writes to it
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)

    loaded, task = _build_task(cfg, device, dist_info)
    transform = loaded.train_preprocess if cfg.augment else loaded.preprocess
    train_set, val_set, notes = build_datasets(cfg, transform, loaded.tokenizer)
    for line in notes:
        yield Log(line, level="warning")
    steps_per_epoch = (len(train_set) // dist_info.world_size) // (cfg.batch_size * cfg.accum_steps)
    if steps_per_epoch == 0:
        raise TrainingError("config", f"dataset of {len(train_set)} items is smaller than one "
                                      f"global batch ({cfg.batch_size * cfg.accum_steps * dist_info.world_size})")
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    run = _Run(cfg, dist_info, device, autocast, scaler, out_dir, loaded, task,
               build_optimizer(task, cfg.lr, cfg.weight_decay, cfg.text_lr_scale),
               train_set, val_set, steps_per_epoch, total_steps)
    if cfg.delta:
        run.claim_sampler = _claim_sampler(train_set, cfg)
    last_good = _resume(run) if cfg.resume else None
    if last_good:
        yield Log(f"resumed from {cfg.resume} at step {run.step} "
                  f"(epoch {run.step // steps_per_epoch + 1})")
    yield from _cache_locked_images(run)
    if cfg.zeroshot_dataset and cfg.eval_every_epochs and dist_info.is_main:
        from engine.eval.zeroshot import ZeroShotMonitor  # rank 0 only: the others wait
        run.zeroshot = ZeroShotMonitor(loaded, cfg.zeroshot_dataset, not _image_trains(task))
        yield Log(f"zero-shot check: {len(run.zeroshot.data.rows)} images of "
                  f"{len(run.zeroshot.data.class_names)} classes in {cfg.zeroshot_dataset}")
    run.runner = _wrap_distributed(task, cfg, device) if dist_info.world_size > 1 else task
    run.checkpointer = Checkpointer(out_dir / LAST_CHECKPOINT, dist_info.is_main, last_good)
    if dist_info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg.to_json(out_dir / "config.json")
        resume_step = run.step if cfg.resume else None
        trackers = open_trackers(cfg.report_to, out_dir, cfg.to_dict(),
                                 cfg.name or out_dir.name, resume_step)
        run.metrics_log = FanOut([MetricsLog(out_dir / "metrics.jsonl", resume_step), *trackers])
    return run


def _claim_sampler(train_set: Dataset, cfg: TrainConfig) -> ClaimSampler:
    """The claim term's sampler, over every object the training set's photos show."""
    objects_of = getattr(train_set, "objects_of", None)
    vocabulary = set().union(*objects_of(range(len(train_set)))) if objects_of else set()
    if not vocabulary:
        raise TrainingError("config", f"delta = {cfg.delta} needs a triples file whose 'objects' "
                                      f"column names what each photo shows (e.g. `semclip prepare "
                                      f"flickr8k`); {cfg.dataset} has none")
    return ClaimSampler(vocabulary, seed=cfg.seed)


def _resume(run: _Run) -> tuple[int, str]:
    """Load ``cfg.resume``'s weights, optimiser, scaler, progress and RNG into the run; returns
    (step, path) of that checkpoint, the last good one until the run saves its own."""
    cfg, task = run.cfg, run.task
    state = load_training_state(cfg.resume)
    if "optimizer" not in state:
        raise TrainingError("input", f"{cfg.resume} holds weights only, no training state to resume")
    if "train_config" not in state:
        state["train_config"] = read_sidecar(cfg.resume).get("train_config", {})
    _check_resumable(cfg, state, run.dist_info.world_size)
    try:
        task.clip.load_state_dict(state["state_dict"])
        task.loss.load_state_dict(state["loss_state"])
    except RuntimeError as exc:
        raise TrainingError("input", f"{cfg.resume} does not fit model {cfg.model}: "
                                     f"{str(exc).splitlines()[0]}") from exc
    run.optimizer.load_state_dict(state["optimizer"])
    if "scaler" in state:
        run.scaler.load_state_dict(state["scaler"])
    run.step, run.history = int(state["step"]), list(state.get("history", []))
    run.best = state.get("best")
    run.last_eval = run.history[-1]["metrics"] if run.history else {}
    _restore_rng(state["rng"])
    return run.step, str(cfg.resume)


def _image_trains(task: SemClipTask) -> bool:
    return any(p.requires_grad for p in task.clip.visual.parameters())


def _cache_locked_images(run: _Run) -> Iterator[Event]:
    """A locked image tower without augmentation gives each image one embedding for the whole
    run: compute it once (a locked timm trunk's features even once ever, on disk) and train on
    texts alone afterwards."""
    cfg, task, train_set = run.cfg, run.task, run.train_set
    if trunk_locked(task.clip) and not cfg.augment and \
            (hasattr(train_set, "triples") or hasattr(train_set, "drawings")):
        yield Log(f"image trunk locked: its pooled features of {len(train_set)} rows come from "
                  f"the on-disk cache (each image encoded once, ever); the image head trains on them")
        yield from _fill_trunk_cache(task, run.loaded, train_set, cfg, run.device)
    elif not _image_trains(task) and not cfg.augment and hasattr(train_set, "texts"):
        yield Log(f"image tower locked: caching image embeddings ({len(train_set)} images, "
                  f"embedded once, reused every epoch)")
        task.image_cache = ImageFeatureCache(len(train_set), run.loaded.embed_dim, run.device)
        yield from _fill_image_cache(task, train_set, cfg, run.dist_info, run.device, run.autocast)
    elif not _image_trains(task) and cfg.augment:
        yield Log("image-embedding cache off: augmentation changes every view of an image")


def _train_epoch(run: _Run, epoch: int, stop: StopFlag) -> Generator[Event, None, bool]:
    """The steps of one epoch (from where a resumed run left off); returns True if stopped."""
    cfg, task, dist_info = run.cfg, run.task, run.dist_info
    skip = (run.step - epoch * run.steps_per_epoch) * cfg.batch_size * cfg.accum_steps
    sampler = EpochSampler(len(run.train_set), cfg.seed, epoch, dist_info, skip=skip)
    loader = DataLoader(TextsOnly(run.train_set) if task.image_cache is not None else run.train_set,
                        batch_size=cfg.batch_size, sampler=sampler,
                        num_workers=cfg.workers, collate_fn=collate, drop_last=True,
                        pin_memory=run.device.type == "cuda", persistent_workers=False,
                        prefetch_factor=4 if cfg.workers else None,
                        generator=torch.Generator().manual_seed(cfg.seed + epoch))
    t_last, samples = time.perf_counter(), 0
    for group in _micro_groups(loader, cfg.accum_steps):
        if _stop_requested(stop, dist_info, run.device):
            return True
        for batch in group:
            for problem in (batch or {}).get("problems", ()):
                yield Log(problem.report(cfg.dataset), "warning")
        group = [b for b in (_usable(b, task.image_cache) for b in group) if b is not None]
        if not group:
            continue
        lr = lr_at(run.step, cfg, run.total_steps)
        losses = _optimizer_step(run, group, lr)
        samples += sum(len(b["caption"]) for b in group)
        now = time.perf_counter()
        event = StepMetrics(step=run.step, total_steps=run.total_steps, epoch=epoch + 1, lr=lr,
                            losses=losses,
                            samples_per_s=samples * dist_info.world_size / max(now - t_last, 1e-9),
                            logit_scale=float(task.clip.logit_scale.detach().exp()))
        t_last, samples = now, 0
        if run.metrics_log:
            run.metrics_log.write({"type": "step", "step": run.step, "epoch": epoch + 1, "lr": lr,
                                   **losses, "samples_per_s": event.samples_per_s})
        yield event
        if cfg.save_every_steps and run.step % cfg.save_every_steps == 0:
            saved = run.checkpoint(epoch)
            if saved:
                yield saved
                run.checkpointer.keep_last_as(step_checkpoint_name(run.step))
                prune_step_checkpoints(run.out_dir, cfg.keep_last_n)
        if run.step >= run.total_steps:
            break
    return False


def _optimizer_step(run: _Run, group: list[dict], lr: float) -> dict[str, float]:
    """One optimiser step over a group of micro-batches; returns the loss terms (the mean over
    ranks under DDP) and their total."""
    cfg, optimizer = run.cfg, run.optimizer
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    truth_of = run.train_set.truth if cfg.mask_false_negatives else None
    claims = None
    if run.claim_sampler is not None:
        claims = step_claims(run.claim_sampler, run.step, group, run.train_set.objects_of,
                             run.device)
    terms = train_step(run.task, run.runner, group, run.loaded.tokenizer, run.device,
                       run.autocast, run.scaler, truth_of, claims)
    total = sum(terms.values())
    if not torch.isfinite(total):
        raise TrainingError("nan_loss", (
            f"loss became {total.item()} at step {run.step + 1}; stopping. "
            f"{run.checkpointer.describe_last_good()} Try a lower lr (now {cfg.lr}) or "
            f"precision=fp32."))
    if cfg.grad_clip > 0:
        run.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                       cfg.grad_clip)
    run.scaler.step(optimizer)
    run.scaler.update()
    optimizer.zero_grad(set_to_none=True)
    run.task.clamp_logit_scale()
    run.step += 1
    losses = {k: float(v.detach()) for k, v in terms.items()}
    losses["total"] = sum(losses.values())
    if run.dist_info.world_size > 1:  # report the global mean, not one rank's
        vec = torch.tensor(list(losses.values()), device=run.device)
        dist.all_reduce(vec)
        losses = dict(zip(losses, (vec / run.dist_info.world_size).tolist()))
    return losses


def _end_epoch(run: _Run, epoch: int) -> Iterator[Event]:
    """After an epoch (or the last step): evaluate on rank 0, keep the best, save."""
    cfg, dist_info = run.cfg, run.dist_info
    epoch_done = run.step >= run.total_steps or run.step % run.steps_per_epoch == 0
    epoch_metrics: dict[str, float] = {}  # val/..., zeroshot/...: what best_metric names
    if epoch_done and (run.val_set is not None or run.zeroshot) and cfg.eval_every_epochs and \
            (epoch + 1) % cfg.eval_every_epochs == 0 and dist_info.is_main:
        if not weights_finite(run.task):
            raise TrainingError("diverged", (
                f"the weights became non-finite (NaN or inf) by step {run.step}. "
                f"{run.checkpointer.describe_last_good()} Try a lower lr or precision=fp32."))
        if run.val_set is not None:
            run.last_eval = evaluate_triples(run.task.clip, run.loaded.tokenizer, run.val_set,
                                             run.device, retrieval_k=cfg.retrieval_k)
            run.history.append({"step": run.step, "epoch": epoch + 1, "metrics": run.last_eval})
            epoch_metrics.update(_log_epoch_record(run.metrics_log, "eval", run.step, epoch + 1,
                                                   run.last_eval))
            yield EvalResult(step=run.step, epoch=epoch + 1, split="val", metrics=run.last_eval)
        if run.zeroshot:
            scores = run.zeroshot.scores()
            epoch_metrics.update(_log_epoch_record(run.metrics_log, "zeroshot", run.step,
                                                   epoch + 1, scores))
            yield EvalResult(step=run.step, epoch=epoch + 1, split="zeroshot", metrics=scores)
    value = epoch_metrics.get(cfg.best_metric)
    new_best = bool(cfg.best_metric) and improves(value, run.best and run.best["value"],
                                                  cfg.best_mode)
    if new_best:
        run.best = {"metric": cfg.best_metric, "mode": cfg.best_mode, "value": value,
                    "step": run.step, "epoch": epoch + 1}
    saved = run.checkpoint(epoch + 1 if epoch_done else epoch)
    if saved:
        yield saved
        if new_best:  # after checkpoint.pt: only weights that proved finite get here
            run.checkpointer.keep_last_as(BEST_CHECKPOINT)
            yield Log(f"best {cfg.best_metric} so far: {value:.4f} (step {run.step}), "
                      f"saved {run.out_dir / BEST_CHECKPOINT}")
    if dist_info.world_size > 1:
        dist.barrier()  # rank 0 evaluated and saved; the others wait for it
