"""Robustness audit: bad inputs and faults a user meets, tried through the real ``semclip`` CLI.

    python bench/robustness_audit.py [--only WORD] [--json OUT]

Each scenario sets up a scratch folder, runs ``semclip ...`` in this process (tracebacks are
caught and count as *not handled*), and judges the outcome the way a user would:

* a **bad input** is handled when the command exits non-zero with a message that names the
  culprit (a field, a file, a line), prints no traceback, and leaves earlier output as it was;
* a **fault** (divergence, Ctrl-C, a full disk, a corrupted cache, a failing LLM server...) is
  survived when no good data is lost or silently changed and the exit code tells the truth.

It prints one line per scenario and the totals (the figures of issue 11's closing note), with the
machine load. Scenarios that cannot run here (e.g. a read-only folder when running as root) are
listed as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.cli.commands import main  # noqa: E402
from engine.train.config import TrainConfig  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "triples"
SHARED = ROOT.parent / "shared" / "data"


# --- running the CLI like a user -------------------------------------------------------------

@dataclass
class Ran:
    """What a user sees: the exit code, stdout, stderr, and a traceback if one escaped."""

    code: int
    out: str
    err: str
    traceback: str = ""

    def says(self, *words: str) -> bool:
        text = (self.out + self.err).lower()
        return all(w.lower() in text for w in words)


def semclip(*args: str) -> Ran:
    """``semclip ARGS`` in this process; an escaping exception is recorded, never raised."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - a traceback is exactly what we audit for
            return Ran(1, out.getvalue(), err.getvalue(), traceback.format_exc())
    return Ran(code, out.getvalue(), err.getvalue())


def tiny(folder: Path, **fields) -> TrainConfig:
    """A training run of a few seconds on the shapes world."""
    base = TrainConfig(model="semclip-tiny", shapes_train_size=32, shapes_eval_size=8,
                       batch_size=8, epochs=1, warmup_steps=1, lr=1e-3, threads=1,
                       eval_every_epochs=0, out_dir=str(folder / "run"))
    return replace(base, **fields)


def config_file(folder: Path, cfg: TrainConfig, **raw) -> Path:
    """Write ``cfg`` as JSON, with ``raw`` fields written as given (bypassing validation)."""
    data = cfg.to_dict()
    data.update(raw)
    path = folder / "cfg.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def train(folder: Path, cfg: TrainConfig, *extra: str, **raw) -> Ran:
    return semclip("train", "--config", config_file(folder, cfg, **raw), "--quiet", *extra)


def trained(folder: Path) -> Path:
    """A finished tiny run; returns its checkpoint."""
    ran = train(folder, tiny(folder))
    assert ran.code == 0, ran.err + ran.traceback
    return folder / "run" / "checkpoint.pt"


# --- verdicts --------------------------------------------------------------------------------

@dataclass
class Verdict:
    ok: bool
    detail: str


def refused(ran: Ran, *words: str) -> Verdict:
    """A bad input: non-zero exit, no traceback, and a message naming the culprit."""
    if ran.traceback:
        return Verdict(False, "traceback: " + ran.traceback.strip().splitlines()[-1])
    if ran.code == 0:
        return Verdict(False, "exit 0")
    if not ran.says(*words):
        return Verdict(False, f"message lacks {words}: {(ran.err or ran.out).strip()[-160:]}")
    return Verdict(True, (ran.err or ran.out).strip().splitlines()[-1][:160])


def check(ok: bool, detail: str) -> Verdict:
    return Verdict(bool(ok), detail)


@dataclass
class Scenario:
    name: str
    kind: str  # "bad input" or "fault"
    item: int  # the item of issue 11 it belongs to
    run: Callable[[Path], Verdict]
    skip: Optional[str] = None


SCENARIOS: list[Scenario] = []


def scenario(name: str, kind: str, item: int, skip: Optional[str] = None):
    def register(fn: Callable[[Path], Verdict]) -> Callable[[Path], Verdict]:
        SCENARIOS.append(Scenario(name, kind, item, fn, skip))
        return fn
    return register


# --- bad training configs (item 13) ----------------------------------------------------------

for _field, _value, _words in [
    ("batch_size", 0, ("batch_size",)), ("accum_steps", 0, ("accum_steps",)),
    ("epochs", 0, ("epochs",)), ("max_steps", -3, ("max_steps",)), ("lr", 1e39, ("lr",)),
    ("lr", "fast", ("lr", "cfg.json")), ("model", "no-such-model", ("no-such-model",)),
    ("model", "ViT-B-32:laion2b_s34b_b79k", ("laion2b_s34b_b79k",)),
    ("precision", "fp16", ("fp16",)), ("n_projections", 0, ("n_projections",)),
    ("warmup_steps", -1, ("warmup_steps",)), ("no_such_field", 1, ("no_such_field",)),
]:
    def _bad_config(folder: Path, field=_field, value=_value, words=_words) -> Verdict:
        return refused(train(folder, tiny(folder), **{field: value}), *words)
    scenario(f"config {_field}={_value!r}", "bad input", 13)(_bad_config)


@scenario("config file that is not JSON", "bad input", 13)
def _(folder: Path) -> Verdict:
    path = folder / "cfg.json"
    path.write_text('{"model": "semclip-tiny",\n "lr": 1e-3,,\n}')
    return refused(semclip("train", "--config", path), "cfg.json:2")


for _setting, _word in (("learning_rate=1", "learning_rate"), ("lr=abc", "lr")):
    def _bad_set(folder: Path, setting=_setting, word=_word) -> Verdict:
        return refused(train(folder, tiny(folder), "--set", setting), word)
    scenario(f"--set {_setting}", "bad input", 13)(_bad_set)

for _field, _name in (("dataset", "nope.csv"), ("resume", "nope.pt")):
    def _missing_file(folder: Path, field=_field, name=_name) -> Verdict:
        return refused(train(folder, tiny(folder, **{field: str(folder / name)})), name)
    scenario(f"{_field} names a file that does not exist", "bad input", 13)(_missing_file)


for _change in ({"n_projections": 3}, {"batch_size": 4}):
    def _resume_other(folder: Path, change=_change) -> Verdict:
        ckpt = trained(folder)
        cfg = tiny(folder, resume=str(ckpt), **change)
        return refused(train(folder, cfg), next(iter(change)))
    scenario(f"resume with other {next(iter(_change))}", "bad input", 13)(_resume_other)


# --- output folders (items 12, 14) -----------------------------------------------------------

@scenario("out_dir is a file", "bad input", 14)
def _(folder: Path) -> Verdict:
    (folder / "run").write_text("precious")
    ran = refused(train(folder, tiny(folder)), "run")
    return check(ran.ok and (folder / "run").read_text() == "precious", ran.detail)


@scenario("out_dir under a file", "bad input", 14)
def _(folder: Path) -> Verdict:
    (folder / "file").write_text("x")
    return refused(train(folder, tiny(folder, out_dir=str(folder / "file" / "run"))), "file")


@scenario("out_dir read-only", "bad input", 14,
          skip="root without setpriv writes into read-only folders"
          if os.geteuid() == 0 and not shutil.which("setpriv") else None)
def _(folder: Path) -> Verdict:
    folder.chmod(0o755)  # the unprivileged user below must reach it
    (folder / "ro").mkdir(mode=0o555)
    config = config_file(folder, tiny(folder, out_dir=str(folder / "ro" / "run")))
    command = [sys.executable, "-m", "engine.cli.commands", "train", "--config", str(config), "--quiet"]
    if os.geteuid() == 0:  # root writes anywhere: run as nobody, whom file modes bind
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    proc = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(folder),
                                   SEMCLIP_CACHE=str(folder / "cache")))
    ran = Ran(proc.returncode, proc.stdout, proc.stderr,
              proc.stderr if "Traceback" in proc.stderr else "")
    return refused(ran, "cannot write", str(folder / "ro"))


@scenario("a new run into a used out_dir", "bad input", 12)
def _(folder: Path) -> Verdict:
    ckpt = trained(folder)
    before = ckpt.read_bytes()
    ran = refused(train(folder, tiny(folder, lr=5e-4)), "overwrite")
    return check(ran.ok and ckpt.read_bytes() == before, ran.detail)


@scenario("resume writes each step once in metrics.jsonl", "fault", 12)
def _(folder: Path) -> Verdict:
    cfg = tiny(folder, epochs=2, save_every_steps=2)
    assert train(folder, cfg).code == 0
    ckpt = folder / "run" / "checkpoint.pt"
    ran = train(folder, replace(cfg, resume=str(ckpt)))
    steps = [json.loads(line)["step"] for line in (folder / "run" / "metrics.jsonl").open()
             if json.loads(line)["type"] == "step"]
    return check(ran.code == 0 and steps == sorted(set(steps)), f"steps {steps}")


def _resume_exact(folder: Path, lock_image: bool) -> Verdict:
    import threading

    from engine.events import StepMetrics
    from engine.train.loop import train as train_events

    whole = tiny(folder, epochs=2, out_dir=str(folder / "whole"), lock_image=lock_image)
    assert train(folder, whole).code == 0
    part, stop = replace(whole, out_dir=str(folder / "half")), threading.Event()
    for event in train_events(part, stop=stop):  # the flag Ctrl-C sets, mid-epoch 2
        if isinstance(event, StepMetrics) and event.step == 5:
            stop.set()
    resumed = replace(part, resume=str(folder / "half" / "checkpoint.pt"))
    assert train(folder, resumed).code == 0
    a = torch.load(folder / "whole" / "checkpoint.pt", weights_only=True)["state_dict"]
    b = torch.load(folder / "half" / "checkpoint.pt", weights_only=True)["state_dict"]
    dw = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    return check(dw == 0.0, f"max |dw| = {dw:.3g}")


for _lock in (True, False):
    scenario(f"resume is exact, image tower {'locked' if _lock else 'trained'} "
             "(max |dw| against an uninterrupted run)", "fault", 12)(
        lambda folder, lock=_lock: _resume_exact(folder, lock))


@scenario("full disk at a save keeps the previous checkpoint", "fault", 14)
def _(folder: Path) -> Verdict:
    import engine.model.checkpoint as checkpoint
    ckpt = trained(folder)
    before = ckpt.read_bytes()
    real = checkpoint.atomic_write_bytes

    def full_disk(*args, **kw):
        raise OSError(28, "No space left on device")
    checkpoint.atomic_write_bytes = full_disk
    try:
        ran = train(folder, tiny(folder, epochs=2, resume=str(ckpt)))
    finally:
        checkpoint.atomic_write_bytes = real
    return check(ran.code != 0 and not ran.traceback and ckpt.read_bytes() == before
                 and ran.says("space"), f"exit {ran.code}: {ran.err.strip()[-120:]}")


@scenario("checkpoints follow the umask", "fault", 18)
def _(folder: Path) -> Verdict:
    old = os.umask(0o022)
    try:
        mode = trained(folder).stat().st_mode & 0o777
    finally:
        os.umask(old)
    return check(mode == 0o644, f"mode {mode:o}")


# --- training faults (items 1, 4, 6, 9) ------------------------------------------------------

@scenario("learnable V under AdamW weight decay stays orthonormal", "fault", 1)
def _(folder: Path) -> Verdict:
    from engine.model.losses import SemClipLoss
    assert train(folder, tiny(folder, learnable_projections=True, weight_decay=0.1,
                              epochs=2)).code == 0
    sidecar = json.loads((folder / "run" / "checkpoint.json").read_text())
    loss = SemClipLoss(**sidecar["loss_config"])
    loss.load_state_dict(torch.load(folder / "run" / "checkpoint.pt",
                                    weights_only=True)["loss_state"])
    v = loss.projection.detach()
    err = float((v @ v.T - torch.eye(v.shape[0])).abs().max())
    return check(err < 1e-5, f"max |V V^T - I| = {err:.2g}")


@scenario("accum 2 x batch 4 equals batch 8", "fault", 4)
def _(folder: Path) -> Verdict:
    def final_loss(**kw) -> float:
        sub = folder / str(len(list(folder.iterdir())))
        sub.mkdir()
        cfg = tiny(sub, lock_image=False, max_steps=3, **kw)
        assert train(sub, cfg).code == 0
        rows = [json.loads(line) for line in (sub / "run" / "metrics.jsonl").open()]
        return [r for r in rows if r["type"] == "step"][-1]["total"]
    big, accumulated = final_loss(batch_size=8), final_loss(batch_size=4, accum_steps=2)
    return check(abs(big - accumulated) < 1e-5, f"loss {big:.6f} vs {accumulated:.6f}")


@scenario("weights diverge on the last step", "fault", 6)
def _(folder: Path) -> Verdict:
    ckpt = trained(folder)
    good = ckpt.read_bytes()
    real = torch.optim.AdamW.step

    def poisoned(self, *args, **kw):
        out = real(self, *args, **kw)
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    p.fill_(float("nan"))
        return out
    torch.optim.AdamW.step = poisoned
    try:
        ran = train(folder, tiny(folder, epochs=2, resume=str(ckpt)))
    finally:
        torch.optim.AdamW.step = real
    kept = ckpt.read_bytes() == good
    return check(ran.code != 0 and kept and not ran.traceback,
                 f"exit {ran.code}, good checkpoint kept: {kept}")


@scenario("Ctrl-C during training saves and exits 130", "fault", 9)
def _(folder: Path) -> Verdict:
    cfg = tiny(folder, shapes_train_size=4000, batch_size=4, epochs=1)
    path = config_file(folder, cfg)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli.commands", "train", "--config", str(path)],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    metrics = folder / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count('"step"') >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    saved = (folder / "run" / "checkpoint.pt").exists()
    return check(proc.returncode == 130 and saved and "Traceback" not in err
                 and "resume" in err, f"exit {proc.returncode}, checkpoint saved: {saved}")


@scenario("precision=fp16 on a CPU is refused, not run as fp32", "bad input", 7)
def _(folder: Path) -> Verdict:
    return refused(train(folder, tiny(folder, precision="fp16")), "fp16", "CUDA")


def _free_port() -> int:
    """A loopback port nothing listens on (torchrun's rendezvous cannot use port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@scenario("torchrun with 2 ranks and a learnable V through the CLI", "fault", 3)
def _(folder: Path) -> Verdict:
    cfg = tiny(folder, learnable_projections=True, weight_decay=0.1, batch_size=4, epochs=2)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={_free_port()}", "-m", "engine.cli.commands", "train",
                           "--config", str(config_file(folder, cfg)), "--quiet"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    saved = (folder / "run" / "checkpoint.pt").exists()
    return check(proc.returncode == 0 and saved and "Traceback" not in proc.stderr,
                 f"exit {proc.returncode}, checkpoint: {saved} {proc.stderr.strip()[-120:]}")


# --- evaluation and export (items 5, 15, 16) -------------------------------------------------

def _eval(*args: str) -> Ran:
    return semclip("eval", "--quiet", "--no-cache", "--workers", "0", *args)


@scenario("eval on a zero-byte checkpoint", "bad input", 15)
def _(folder: Path) -> Verdict:
    (folder / "empty.pt").write_bytes(b"")
    return refused(_eval("--benchmark", "shapes", "--n", "8", "--model", folder / "empty.pt"),
                   "empty.pt")


def _truncated_checkpoint(folder: Path, keep: float) -> Path:
    """A trained checkpoint cut to ``keep`` of its bytes, with its sidecar beside it."""
    data = trained(folder).read_bytes()
    (folder / "cut.pt").write_bytes(data[: int(len(data) * keep)])
    shutil.copy(folder / "run" / "checkpoint.json", folder / "cut.json")
    return folder / "cut.pt"


@scenario("eval on a truncated checkpoint", "bad input", 15)
def _(folder: Path) -> Verdict:
    cut = _truncated_checkpoint(folder, 1 / 2)
    return refused(_eval("--benchmark", "shapes", "--n", "8", "--model", cut), "cut.pt")


@scenario("export of a truncated checkpoint", "bad input", 15)
def _(folder: Path) -> Verdict:
    cut = _truncated_checkpoint(folder, 1 / 3)
    return refused(semclip("export", "--checkpoint", cut, "--out", folder / "delta.pt"), "cut.pt")


@scenario("eval on an empty JSONL", "bad input", 16)
def _(folder: Path) -> Verdict:
    (folder / "empty.jsonl").write_text("")
    return refused(_eval("--benchmark", "triples", "--data", folder / "empty.jsonl",
                         "--model", "semclip-tiny"), "empty.jsonl")


@scenario("eval where no image can be read", "bad input", 16)
def _(folder: Path) -> Verdict:
    rows = (FIXTURE / "triples.csv").read_text().replace(".png", "_gone.png")
    (folder / "t.csv").write_text(rows)
    shutil.copytree(FIXTURE, folder / "imgs", ignore=shutil.ignore_patterns("*.csv", "*.jsonl"))
    return refused(_eval("--benchmark", "triples", "--data", folder / "t.csv", "--images",
                         folder / "imgs", "--model", "semclip-tiny"), "image")


def _collapsed_checkpoint(folder: Path, value: float) -> Path:
    """A trained checkpoint whose text projection is filled with ``value`` (0: every caption
    embeds alike, a collapsed model; nan: a diverged one)."""
    ckpt = trained(folder)
    payload = torch.load(ckpt, weights_only=False)
    payload["state_dict"]["text_projection"].fill_(value)
    torch.save(payload, ckpt)
    return ckpt


@scenario("a collapsed model scores top-1 as a miss, not 1.000", "fault", 5)
def _(folder: Path) -> Verdict:
    ckpt = _collapsed_checkpoint(folder, 0.0)
    ran = _eval("--benchmark", "shapes", "--n", "16", "--model", ckpt, "--json",
                folder / "r.json")
    if ran.code != 0:
        return check(False, f"exit {ran.code}: {(ran.err + ran.traceback).strip()[-160:]}")
    top1 = _find_metric(json.loads((folder / "r.json").read_text()), "top1")
    return check(bool(top1) and max(top1) < 0.5, f"top-1 values {top1}")


def _find_metric(obj, word: str) -> list[float]:
    found = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if word in str(key) and isinstance(value, (int, float)):
                found.append(value)
            else:
                found += _find_metric(value, word)
    elif isinstance(obj, list):
        for value in obj:
            found += _find_metric(value, word)
    return found


@scenario("eval of a model with NaN weights names the model", "bad input", 5)
def _(folder: Path) -> Verdict:
    ckpt = _collapsed_checkpoint(folder, float("nan"))
    return refused(_eval("--benchmark", "shapes", "--n", "16", "--model", ckpt), "checkpoint.pt")


# --- benchmark files (items 8, 17) -----------------------------------------------------------

NEGBENCH = SHARED / "negbench" / "COCO_val_mcq_sample.csv"
COCO = SHARED / "coco_val2017_sample"
_no_shared = None if NEGBENCH.exists() else f"{NEGBENCH} is absent"


def _negbench_variant(folder: Path, edit: Callable[[list[str]], list[str]]) -> Ran:
    lines = NEGBENCH.read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "mcq.csv").write_text("".join(edit(lines)), encoding="utf-8")
    return _eval("--benchmark", "negbench_mcq", "--data", folder / "mcq.csv", "--images", COCO,
                 "--model", "semclip-tiny")


def _csv_edit(lines: list[str], edit: Callable[[int, list[str]], list[str]]) -> list[str]:
    """Apply ``edit(row_number, fields)`` to every parsed row and write the rows back."""
    import csv
    rows = [edit(i, r) for i, r in enumerate(csv.reader(lines))]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().splitlines(keepends=True)


def _drop_column(lines: list[str], name: str) -> list[str]:
    index = lines[0].rstrip().split(",").index(name)
    return _csv_edit(lines, lambda i, r: r[:index] + r[index + 1:])


def _drop_caption_3_of_row_2(lines: list[str]) -> list[str]:
    index = lines[0].rstrip().split(",").index("caption_3")
    return _csv_edit(lines, lambda i, r: r[:index] + r[index + 1:] if i == 2 else r)


for _label, _edit, _words in [
    ("a row with 3 options", _drop_caption_3_of_row_2, ("mcq.csv", ":3")),
    ("a row with an extra field", lambda ls: ls[:2] + [ls[2].rstrip("\n") + ",extra\n"] + ls[3:],
     ("mcq.csv", ":3")),
    ("no correct_answer_template column",
     lambda ls: _drop_column(ls, "correct_answer_template"), ("correct_answer_template",)),
    ("no caption_3 column", lambda ls: _drop_column(ls, "caption_3"), ("caption_3",)),
    ("a file cut inside its last row", lambda ls: ls[:-1] + [ls[-1][: len(ls[-1]) // 2]],
     ("mcq.csv",)),
]:
    def _negbench_bad(folder: Path, edit=_edit, words=_words) -> Verdict:
        return refused(_negbench_variant(folder, edit), *words)
    scenario(f"NegBench: {_label}", "bad input", 8, skip=_no_shared)(_negbench_bad)


@scenario("a triples CSV with a UTF-8 byte-order mark is read", "bad input", 17)
def _(folder: Path) -> Verdict:
    shutil.copytree(FIXTURE, folder / "data")
    csv_path = folder / "data" / "triples.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf" + csv_path.read_bytes())
    ran = train(folder, tiny(folder, dataset=str(csv_path), batch_size=2))
    return check(ran.code == 0 and not ran.traceback,
                 f"exit {ran.code}: {(ran.err + ran.traceback).strip()[-120:]}")


@scenario("training images that cannot be read are counted, not fatal", "fault", 17)
def _(folder: Path) -> Verdict:
    shutil.copytree(FIXTURE, folder / "data")
    data = folder / "data"
    (data / "img1.png").write_bytes(b"garbage, not a png")
    (data / "img2.png").write_bytes((FIXTURE / "img2.png").read_bytes()[:60])
    ran = train(folder, tiny(folder, dataset=str(data / "triples.csv"), batch_size=3,
                             epochs=2))
    return check(ran.code == 0 and ran.says("2 training image", "could not be read")
                 and not ran.traceback,
                 f"exit {ran.code}: {(ran.err + ran.out).strip()[-160:]}")


@scenario("an image path that leaves the data folder is refused", "bad input", 17)
def _(folder: Path) -> Verdict:
    shutil.copytree(FIXTURE, folder / "data")
    csv_path = folder / "data" / "triples.csv"
    csv_path.write_text(csv_path.read_text().replace("img0.png", "../../../../etc/passwd"))
    ran = train(folder, tiny(folder, dataset=str(csv_path), batch_size=2))
    return check(ran.says("etc/passwd") and not ran.traceback,
                 f"exit {ran.code}: {(ran.err + ran.out).strip()[-160:]}")


# --- the image-embedding cache (item 11) and caption generation (item 10) --------------------

def _flip_embedding_bits(shard: Path, n: int) -> None:
    """Flip ``n`` bits inside the stored embeddings (not the zip headers, which torch checks),
    as a failing disk or a bad copy would."""
    blob = torch.load(shard, weights_only=True)
    tensor = next(v for v in (blob.values() if isinstance(blob, dict) else blob)
                  if isinstance(v, torch.Tensor) and v.is_floating_point())
    raw = tensor.contiguous().numpy().tobytes()
    data = bytearray(shard.read_bytes())
    start = data.find(raw)
    assert start >= 0, "embeddings not found in the shard file"
    gen = torch.Generator().manual_seed(0)
    for bit in torch.randint(0, len(raw) * 8, (n,), generator=gen).tolist():
        data[start + bit // 8] ^= 1 << (bit % 8)
    shard.write_bytes(bytes(data))


@scenario("a corrupted cache shard is detected and recomputed", "fault", 11)
def _(folder: Path) -> Verdict:
    cache = folder / "cache"
    env_before = os.environ.get("SEMCLIP_CACHE")
    os.environ["SEMCLIP_CACHE"] = str(cache)
    try:
        args = ("--benchmark", "shapes", "--n", "16", "--model", "semclip-tiny", "--json")
        first = semclip("eval", "--quiet", "--workers", "0", *args, folder / "a.json")
        shards = sorted(cache.rglob("shard-*.pt"))
        if first.code != 0 or not shards:
            return check(False, f"no cache written (exit {first.code}, cache {cache})")
        _flip_embedding_bits(shards[0], 200)
        second = semclip("eval", "--quiet", "--workers", "0", *args, folder / "b.json")
    finally:
        if env_before is None:
            os.environ.pop("SEMCLIP_CACHE", None)
        else:
            os.environ["SEMCLIP_CACHE"] = env_before
    a = _find_metric(json.loads((folder / "a.json").read_text()), "")
    b = _find_metric(json.loads((folder / "b.json").read_text()), "") if second.code == 0 else []
    return check(second.code == 0 and a == b, f"exit {second.code}, same figures: {a == b}")


def _fake_llm(mode_model: str, folder: Path, existing_rows: int = 3) -> tuple[Ran, Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_llm_server import running
    out = folder / "out.csv"
    shutil.copy(FIXTURE / "triples.csv", out)  # a good earlier result
    src = folder / "captions.csv"
    src.write_text("caption\n" + "".join(f"a red circle number {i}\n" for i in range(8)))
    with running() as url:
        ran = semclip("generate", "--in", src, "--out", out, "--backend", "llm", "--base-url",
                      url, "--generator-model", mode_model, "--validator-model", "val-yes",
                      "--no-cache", "--quiet", "--timeout", "2")
    return ran, out


for _mode in ("garbage", "gen-prose", "missing", "slow-30-gen", "error-500", "hang", "nonsense"):
    def _llm_fails(folder: Path, mode=_mode) -> Verdict:
        before = (FIXTURE / "triples.csv").read_text()
        start = time.monotonic()
        ran, out = _fake_llm(mode, folder)
        kept = out.read_text() == before
        return check(ran.code != 0 and kept and not ran.traceback,
                     f"exit {ran.code}, earlier --out kept: {kept}, "
                     f"{time.monotonic() - start:.0f} s")
    scenario(f"generate against an LLM server answering {_mode!r}", "fault", 10)(_llm_fails)


# --- more inputs a user gets wrong (items 13, 15, 16, 17) -------------------------------------

def _triples_with(folder: Path, edit: Callable[[list[str]], list[str]]) -> Path:
    """The fixture's triples in ``folder/data`` with its CSV lines edited."""
    shutil.copytree(FIXTURE, folder / "data")
    csv_path = folder / "data" / "triples.csv"
    csv_path.write_text("\n".join(edit(csv_path.read_text().splitlines())) + "\n")
    return csv_path


for _label, _edit, _words in (
        ("a triples CSV without a negation column",
         lambda lines: [",".join(line.split(",")[:3]) for line in lines], ("negation",)),
        ("a triples CSV with an empty caption on line 3",
         lambda lines: lines[:2] + [",".join([lines[2].split(",")[0], "", *lines[2].split(",")[2:]])]
         + lines[3:], ("triples.csv:3",)),
        ("a triples CSV that is empty", lambda lines: [], ("triples.csv",)),
        ("a triples CSV with a row of too many fields on line 2",
         lambda lines: lines[:1] + [lines[1] + ",extra,fields"] + lines[2:], ("triples.csv:2",))):
    def _bad_triples(folder: Path, edit=_edit, words=_words) -> Verdict:
        csv_path = _triples_with(folder, edit)
        return refused(train(folder, tiny(folder, dataset=str(csv_path), batch_size=2)), *words)
    scenario(_label, "bad input", 17)(_bad_triples)


@scenario("resume from a checkpoint of another model", "bad input", 13)
def _(folder: Path) -> Verdict:
    ckpt = trained(folder)
    other = tiny(folder, model="semclip-small", resume=str(ckpt), out_dir=str(folder / "run2"))
    return refused(train(folder, other), "checkpoint.pt")


@scenario("eval with --n 0", "bad input", 16)
def _(folder: Path) -> Verdict:
    return refused(_eval("--benchmark", "shapes", "--n", "0", "--model", "semclip-tiny"), "--n")


@scenario("eval of a checkpoint that does not exist", "bad input", 15)
def _(folder: Path) -> Verdict:
    return refused(_eval("--benchmark", "shapes", "--n", "8", "--model", folder / "gone.pt"),
                   "gone.pt")


@scenario("eval of a SugarCrepe++ file that is not JSON", "bad input", 16)
def _(folder: Path) -> Verdict:
    bad = folder / "swap_att.json"
    bad.write_text('[{"id": 1, "filename": "x.jpg",\n "caption": "a"')
    return refused(_eval("--benchmark", "sugarcrepe_pp", "--data", bad, "--images", folder,
                         "--model", "semclip-tiny"), "swap_att.json")


@scenario("eval of a zero-shot folder without class folders", "bad input", 16)
def _(folder: Path) -> Verdict:
    (folder / "flat").mkdir()
    shutil.copy(FIXTURE / "img0.png", folder / "flat" / "img0.png")
    return refused(_eval("--benchmark", "zeroshot", "--data", folder / "flat",
                         "--model", "semclip-tiny"), "flat")


@scenario("generate from a file that does not exist", "bad input", 16)
def _(folder: Path) -> Verdict:
    return refused(semclip("generate", "--in", folder / "nope.csv", "--out", folder / "o.csv",
                           "--quiet"), "nope.csv")


@scenario("generate from a CSV without a caption column", "bad input", 16)
def _(folder: Path) -> Verdict:
    src = folder / "in.csv"
    src.write_text("image,text\na.png,a red circle\n")
    return refused(semclip("generate", "--in", src, "--out", folder / "o.csv", "--quiet"),
                   "in.csv", "caption")


@scenario("generate from a JSONL with a broken line 2", "bad input", 16)
def _(folder: Path) -> Verdict:
    src = folder / "in.jsonl"
    src.write_text('{"caption": "a red circle"}\n{"caption": "a blue\n')
    return refused(semclip("generate", "--in", src, "--out", folder / "o.csv", "--quiet"),
                   "in.jsonl:2")


@scenario("export to a folder that is a file", "bad input", 15)
def _(folder: Path) -> Verdict:
    ckpt = trained(folder)
    (folder / "blocker").write_text("x")
    return refused(semclip("export", "--checkpoint", ckpt, "--out",
                           folder / "blocker" / "delta.pt"), "blocker")


@scenario("semclip-gui on a machine without libxcb-cursor0 names the apt-get line", "bad input", 19)
def _(folder: Path) -> Verdict:
    import semclip_gui.__main__ as entry
    from semclip_gui import system_libs
    real = system_libs.can_load
    system_libs.can_load = lambda soname: soname != "libxcb-cursor.so.0"
    old_env = {k: os.environ.get(k) for k in ("DISPLAY", "QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    os.environ.update(DISPLAY=":0", QT_QPA_PLATFORM="xcb")
    os.environ.pop("WAYLAND_DISPLAY", None)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = entry.main([])
    finally:
        system_libs.can_load = real
        for key, value in old_env.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return refused(Ran(code, "", err.getvalue()), "apt-get install -y libxcb-cursor0")


@scenario("loading a MiniLM model prints no weight-load alarms", "fault", 21)
def _(folder: Path) -> Verdict:
    ran = subprocess.run([sys.executable, "-c", "from engine.model.loading import load_model; "
                          "load_model('semclip-shapes-minilm')"], cwd=ROOT, text=True,
                         capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    noise = [line for line in (ran.stdout + ran.stderr).splitlines()
             if any(w in line for w in ("UNEXPECTED", "initialized randomly",
                                        "initialized partially", "Traceback"))]
    return check(ran.returncode == 0 and not noise,
                 f"exit {ran.returncode}, {len(noise)} alarming line(s) {noise[:2]}")


# --- the report ------------------------------------------------------------------------------

def main_audit(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run the scenarios whose name contains this word")
    parser.add_argument("--json", help="write every verdict to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for sc in SCENARIOS:
        if args.only and args.only.lower() not in sc.name.lower():
            continue
        if sc.skip:
            rows.append((sc, None, sc.skip))
            print(f"  skip  [{sc.kind:9}] #{sc.item:<2} {sc.name}: {sc.skip}", flush=True)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            start = time.monotonic()
            try:
                verdict = sc.run(Path(tmp))
            except Exception as exc:  # noqa: BLE001 - a broken set-up is a failed scenario
                verdict = Verdict(False, f"scenario crashed: {exc!r}")
        rows.append((sc, verdict.ok, verdict.detail))
        mark = "  ok  " if verdict.ok else "  FAIL"
        detail = " | ".join(line.strip() for line in verdict.detail.splitlines() if line.strip())
        print(f"{mark}[{sc.kind:9}] #{sc.item:<2} {sc.name}: {detail} "
              f"({time.monotonic() - start:.0f} s)", flush=True)
    for kind, good in (("bad input", "handled"), ("fault", "survived")):
        tried = [r for r in rows if r[0].kind == kind and r[1] is not None]
        print(f"{kind}s tried: {len(tried)}, {good}: {sum(r[1] for r in tried)}")
    print("load:", os.getloadavg())
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"name": sc.name, "kind": sc.kind, "item": sc.item, "ok": ok, "detail": detail}
             for sc, ok, detail in rows], indent=2))
    return 0 if all(r[1] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main_audit())
