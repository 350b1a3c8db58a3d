"""SemCLIP fine-tuning as a generator of typed events.

    for event in train(TrainConfig(...), stop=threading.Event()):
        ...  # StepMetrics, EvalResult, CheckpointSaved, Log, Done, Error

Reads top to bottom: set-up (device, seeds, distributed), model and loss, data, optimiser and
schedule, optional resume, then the loop. The CLI prints the events; the app turns them into Qt
signals. Multi-GPU: launch the same entry point under ``torchrun``; the world size is read from
the environment and features are gathered across processes by the loss.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from .checkpoint import load_training_state, save_checkpoint
from .config import TrainConfig
from .encoding import encode_text
from .events import (CheckpointSaved, Done, Error, EvalResult, Event, Log, NeverStop, StepMetrics,
                     StopFlag)
from .losses import SemClipLoss
from .models import LoadedModel, load_model, lock_towers, model_config

LOGIT_SCALE_MAX = math.log(100.0)  # OpenCLIP clamps the learnable temperature at 100


class TrainingError(RuntimeError):
    """A run cannot go on; ``kind`` says why (nan_loss, oom, data, config)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


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


def collate(batch: list[Optional[dict]]) -> Optional[dict]:
    """Stack images, keep captions as lists; unreadable items (None) are dropped. Items read
    without their image (:class:`TextsOnly`) give ``image`` None."""
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    images = [b["image"] for b in batch] if "image" in batch[0] else None
    out: dict[str, Any] = {"image": torch.stack(images) if images is not None else None}
    for key in ("caption", "paraphrase", "negation"):
        out[key] = [b[key] for b in batch]
    if "index" in batch[0]:
        out["index"] = torch.tensor([b["index"] for b in batch])
    return out


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
        from .shapes import ShapesDataset, ShapesWorld
        size = _image_size(transform)
        train_world = ShapesWorld(seed=cfg.shapes_seed, image_size=size,
                                  true_negation_prob=cfg.shapes_true_negation_prob,
                                  varied_wording_prob=cfg.shapes_varied_wording_prob)
        val_world = ShapesWorld(seed=cfg.shapes_seed, image_size=size)  # affirmative originals
        train_set = ShapesDataset(train_world, "train", cfg.shapes_train_size, transform=transform)
        val_set = ShapesDataset(val_world, "val", cfg.shapes_eval_size, transform=transform)
        return train_set, val_set, notes
    from .data import TriplesDataset, overlong_captions, read_triples
    triples = read_triples(cfg.dataset, root=cfg.data_root)
    texts = [s for t in triples for s in (t.caption, t.paraphrase, t.negation)]
    too_long = overlong_captions(texts, tokenizer, tokenizer.context_length)
    if too_long:
        rows = sorted({triples[i // 3].line for i in too_long})
        notes.append(f"{cfg.dataset}: {len(too_long)} caption(s) longer than the "
                     f"{tokenizer.context_length}-token context are truncated (lines {rows[:10]}"
                     f"{' ...' if len(rows) > 10 else ''})")
    train_set = TriplesDataset(triples, transform=transform)
    notes += [f"{cfg.dataset}:{p.line}: {p.reason}, row skipped: {p.path}" for p in train_set.missing]
    val_set = None
    if cfg.val_dataset:
        val_set = TriplesDataset(read_triples(cfg.val_dataset, root=cfg.data_root), transform=transform)
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
# optimiser and schedule
# ---------------------------------------------------------------------------------------------

def build_optimizer(cfg: TrainConfig, model: torch.nn.Module, loss: SemClipLoss) -> torch.optim.AdamW:
    """AdamW; no weight decay on gains, biases, embeddings' 1-D params and the temperature.

    Pretrained Hugging Face text weights get ``lr * text_lr_scale`` (they need gentler steps
    than the freshly initialised projection and image tower).
    """
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    named = list(model.named_parameters()) + [("loss." + n, p) for n, p in loss.named_parameters()]
    for name, p in named:
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "logit_scale" in name or "bn" in name or "ln" in name
        pretrained_text = name.startswith("text.transformer.")
        groups.setdefault((no_decay, pretrained_text), []).append(p)
    param_groups = [
        {"params": ps, "weight_decay": 0.0 if no_decay else cfg.weight_decay,
         "lr_scale": cfg.text_lr_scale if pretrained_text else 1.0}
        for (no_decay, pretrained_text), ps in sorted(groups.items())
    ]
    return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


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
                     batch_size: int = 256) -> dict[str, float]:
    """Original-over-negation accuracy and text-to-image top-1/top-5 for captions and paraphrases."""
    from .metrics import original_over_negation_accuracy, topk_text_to_image_accuracy
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    imgs, caps, paras, negs = [], [], [], []
    for batch in loader:
        if batch is None:
            continue
        imgs.append(model.encode_image(batch["image"].to(device), normalize=True).float().cpu())
        for store, key in ((caps, "caption"), (paras, "paraphrase"), (negs, "negation")):
            store.append(encode_text(model, tokenizer(batch[key]).to(device)).float().cpu())
    model.train(was_training)
    img, cap, para, neg = (torch.cat(x) for x in (imgs, caps, paras, negs))
    return {
        "ono_accuracy": float(original_over_negation_accuracy(img, cap, neg)),
        "caption_top1": float(topk_text_to_image_accuracy(cap, img, 1)),
        "caption_top5": float(topk_text_to_image_accuracy(cap, img, 5)),
        "paraphrase_top1": float(topk_text_to_image_accuracy(para, img, 1)),
        "paraphrase_top5": float(topk_text_to_image_accuracy(para, img, 5)),
    }


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

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


class _Encoders(torch.nn.Module):
    """Image and text towers behind one ``forward`` so DDP sees (and syncs) every step."""

    def __init__(self, clip: torch.nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, images: Optional[torch.Tensor], tokens: torch.Tensor):
        image_features = self.clip.encode_image(images, normalize=True) if images is not None else None
        # one text call for t, t+ and t-; the temperature goes through forward too, for DDP
        return image_features, encode_text(self.clip, tokens), self.clip.logit_scale.exp()


def train(cfg: TrainConfig, stop: Optional[StopFlag] = None) -> Iterator[Event]:
    """Run SemCLIP fine-tuning, yielding events; ends with exactly one Done or Error."""
    stop = stop or NeverStop()
    try:
        yield from _train(cfg, stop)
    except TrainingError as exc:
        yield Error(kind=exc.kind, message=str(exc))
    except torch.cuda.OutOfMemoryError:
        smaller = max(1, cfg.batch_size // 2)
        yield Error(kind="oom", message=(
            f"GPU out of memory at batch size {cfg.batch_size} on {cfg.device}. Try "
            f"batch_size={smaller} (or accum_steps={cfg.accum_steps * 2} to keep the global batch)."))
    except (FileNotFoundError, ValueError) as exc:
        yield Error(kind="input", message=str(exc))


def _train(cfg: TrainConfig, stop: StopFlag) -> Iterator[Event]:
    # ---- system: device, precision, seeds, processes ----------------------------------------
    dist_info = init_distributed("cuda" if cfg.device.startswith("cuda") or
                                 (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")
    device = resolve_device(cfg.device, dist_info)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext
    random.seed(cfg.seed)

    # ---- model and loss ----------------------------------------------------------------------
    loaded: LoadedModel = load_model(cfg.model, device=device, seed=cfg.seed)
    model = loaded.model
    lock_towers(model, lock_image=cfg.lock_image, image_unlocked_groups=cfg.image_unlocked_groups,
                lock_text=cfg.text_unlocked_layers >= 0,
                text_unlocked_layers=max(cfg.text_unlocked_layers, 0))
    if cfg.init_logit_scale > 0:
        with torch.no_grad():
            model.logit_scale.fill_(math.log(cfg.init_logit_scale))
    loss_fn = SemClipLoss(
        embed_dim=loaded.embed_dim, n_projections=cfg.n_projections,
        learnable_projections=cfg.learnable_projections, alpha=cfg.alpha, beta=cfg.beta,
        gamma=cfg.gamma, hard_negatives=cfg.hard_negatives, projection_seed=cfg.projection_seed,
        gather_with_grad=True, rank=dist_info.rank, world_size=dist_info.world_size).to(device)
    model.train()

    # ---- data --------------------------------------------------------------------------------
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

    # Locked image tower + no augmentation: each image's embedding never changes, so compute it
    # once per run and reuse it every epoch.
    image_cache: Optional[torch.Tensor] = None
    cache_filled: Optional[torch.Tensor] = None
    trainable_image = any(p.requires_grad for p in model.visual.parameters())
    if not trainable_image and not cfg.augment and hasattr(train_set, "__len__"):
        image_cache = torch.zeros(len(train_set), loaded.embed_dim)
        cache_filled = torch.zeros(len(train_set), dtype=torch.bool)
        yield Log("image tower locked: caching image embeddings across epochs")
    elif not trainable_image and cfg.augment:
        yield Log("image-embedding cache off: augmentation changes every view of an image")

    base = model  # the CLIP model itself; `encoders` is what runs forward (DDP-wrapped if distributed)
    encoders: torch.nn.Module = _Encoders(model)
    if dist_info.world_size > 1:
        encoders = torch.nn.parallel.DistributedDataParallel(
            encoders, device_ids=[device.index] if device.type == "cuda" else None)

    # ---- optimiser, schedule, resume ---------------------------------------------------------
    optimizer = build_optimizer(cfg, base, loss_fn)
    step, start_epoch, skip_batches = 0, 0, 0
    history: list[dict[str, Any]] = []
    if cfg.resume:
        state = load_training_state(cfg.resume)
        if "optimizer" not in state:
            raise TrainingError("input", f"{cfg.resume} holds weights only, no training state to resume")
        try:
            base.load_state_dict(state["state_dict"])
        except RuntimeError as exc:
            raise TrainingError("input", f"{cfg.resume} does not fit model {cfg.model}: "
                                         f"{str(exc).splitlines()[0]}") from exc
        loss_fn.load_state_dict(state["loss_state"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        start_epoch, skip_batches = divmod(step, steps_per_epoch)
        history = list(state.get("history", []))
        _restore_rng(state["rng"])
        yield Log(f"resumed from {cfg.resume} at step {step} (epoch {start_epoch + 1})")

    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / "checkpoint.pt"
    metrics_log = None
    if dist_info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics_log = open(out_dir / "metrics.jsonl", "a", encoding="utf-8")

    def checkpoint(epoch: int, last_metrics: dict[str, float]) -> Optional[CheckpointSaved]:
        if not dist_info.is_main:
            return None
        payload = {"state_dict": base.state_dict(), "loss_state": loss_fn.state_dict(),
                   "optimizer": optimizer.state_dict(), "step": step, "epoch": epoch,
                   "rng": _capture_rng(), "history": history}
        sidecar = {"format": "semclip-checkpoint/1", "model_name": loaded.model_name,
                   "model_spec": cfg.model, "model_config": model_config(loaded.model_name),
                   "loss_config": loss_fn.config(), "train_config": cfg.to_dict(),
                   "step": step, "epoch": epoch, "metrics": last_metrics, "history": history}
        save_checkpoint(ckpt_path, payload, sidecar)
        return CheckpointSaved(step=step, path=str(ckpt_path))

    # ---- the loop ----------------------------------------------------------------------------
    last_eval: dict[str, float] = history[-1]["metrics"] if history else {}
    last_good_step = step
    announced_texts_only = False
    for epoch in range(start_epoch, cfg.epochs):
        if step >= total_steps:
            break
        sampler = EpochSampler(len(train_set), cfg.seed, epoch, dist_info,
                               skip=skip_batches * cfg.batch_size * cfg.accum_steps)
        skip_batches = 0
        texts_only = (image_cache is not None and hasattr(train_set, "texts")
                      and bool(cache_filled[sampler.indices].all()))
        if texts_only and not announced_texts_only:
            yield Log(f"epoch {epoch + 1}: every image embedding is cached; images are not read")
            announced_texts_only = True
        loader = DataLoader(TextsOnly(train_set) if texts_only else train_set,
                            batch_size=cfg.batch_size, sampler=sampler,
                            num_workers=cfg.workers, collate_fn=collate, drop_last=True,
                            pin_memory=device.type == "cuda", persistent_workers=False,
                            prefetch_factor=4 if cfg.workers else None,
                            generator=torch.Generator().manual_seed(cfg.seed + epoch))
        micro = 0
        t_last, samples = time.perf_counter(), 0
        terms_acc: dict[str, float] = {}
        for batch in loader:
            if stop.is_set():
                break
            if batch is None:
                continue
            lr = lr_at(step, cfg, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)

            images = batch["image"]  # None in a texts-only epoch (all embeddings cached)
            if images is not None:
                images = images.to(device, non_blocking=True)
            n = len(batch["caption"])
            texts = batch["caption"] + batch["paraphrase"] + batch["negation"]
            tokens = loaded.tokenizer(texts).to(device, non_blocking=True)
            with autocast():
                if image_cache is not None:
                    idx = batch["index"]
                    missing = ~cache_filled[idx]
                    if missing.any():
                        with torch.no_grad():
                            feats = base.encode_image(images[missing], normalize=True).float().cpu()
                        image_cache[idx[missing]] = feats
                        cache_filled[idx[missing]] = True
                    _, text_features, logit_scale = encoders(None, tokens)
                    image_features = image_cache[idx].to(device)
                else:
                    image_features, text_features, logit_scale = encoders(images, tokens)
                t, t_pos, t_neg = text_features.float().split(n)
                terms = loss_fn(image_features.float(), t, t_pos, t_neg, logit_scale.float(),
                                output_dict=True)
                total = sum(terms.values())
            if not torch.isfinite(total):
                raise TrainingError("nan_loss", (
                    f"loss became {total.item()} at step {step + 1}; stopping. The last good "
                    f"checkpoint (step {last_good_step}) is kept at {ckpt_path}. Try a lower lr "
                    f"(now {cfg.lr}) or precision=fp32."))
            (total / cfg.accum_steps).backward()
            for k, v in terms.items():
                terms_acc[k] = terms_acc.get(k, 0.0) + float(v.detach()) / cfg.accum_steps
            samples += n
            micro += 1
            if micro % cfg.accum_steps:
                continue

            if cfg.grad_clip > 0:
                params = [p for g in optimizer.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                base.logit_scale.clamp_(0, LOGIT_SCALE_MAX)
            step += 1

            losses = dict(terms_acc, total=sum(terms_acc.values()))
            if dist_info.world_size > 1:  # report the global mean, not one rank's
                vec = torch.tensor(list(losses.values()), device=device)
                dist.all_reduce(vec)
                losses = dict(zip(losses, (vec / dist_info.world_size).tolist()))
            terms_acc = {}
            now = time.perf_counter()
            event = StepMetrics(step=step, total_steps=total_steps, epoch=epoch + 1, lr=lr,
                                losses=losses, samples_per_s=samples * dist_info.world_size / max(now - t_last, 1e-9),
                                logit_scale=float(base.logit_scale.detach().exp()))
            t_last, samples = now, 0
            if metrics_log:
                metrics_log.write(json.dumps({"type": "step", "step": step, "epoch": epoch + 1,
                                              "lr": lr, **losses,
                                              "samples_per_s": event.samples_per_s}) + "\n")
                metrics_log.flush()
            yield event
            if cfg.save_every_steps and step % cfg.save_every_steps == 0:
                saved = checkpoint(epoch, last_eval)
                if saved:
                    last_good_step = step
                    yield saved
            if step >= total_steps:
                break

        if stop.is_set():
            break
        epoch_done = step >= total_steps or step % steps_per_epoch == 0
        if epoch_done and val_set is not None and cfg.eval_every_epochs and \
                (epoch + 1) % cfg.eval_every_epochs == 0 and dist_info.is_main:
            last_eval = evaluate_triples(base, loaded.tokenizer, val_set, device)
            history.append({"step": step, "epoch": epoch + 1, "metrics": last_eval})
            if metrics_log:
                metrics_log.write(json.dumps({"type": "eval", "step": step, "epoch": epoch + 1,
                                              **last_eval}) + "\n")
                metrics_log.flush()
            yield EvalResult(step=step, epoch=epoch + 1, split="val", metrics=last_eval)
        saved = checkpoint(epoch + 1 if epoch_done else epoch, last_eval)
        if saved:
            last_good_step = step
            yield saved

    stopped = stop.is_set()
    if stopped:
        saved = checkpoint(step // steps_per_epoch, last_eval)
        if saved:
            yield saved
    if metrics_log:
        metrics_log.close()
    yield Done(result={"step": step, "checkpoint": str(ckpt_path), "metrics": last_eval,
                       "name": cfg.name or cfg.model}, stopped=stopped)
