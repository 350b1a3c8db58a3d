"""The engine's notebook face: `import engine` and the pipeline is one attribute away."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_import_engine_is_light_and_exports_resolve_on_first_use():
    code = ("import sys, engine\n"
            "assert 'torch' not in sys.modules, 'import engine pulled in torch'\n"
            "for name in engine.__all__: getattr(engine, name)\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_a_notebook_trains_evaluates_and_explains_through_the_face(tmp_path):
    import engine

    cfg = engine.TrainConfig(model="semclip-tiny", lock_image=False, shapes_train_size=32,
                             shapes_eval_size=16, batch_size=16, epochs=1, lr=1e-3,
                             warmup_steps=1, out_dir=str(tmp_path / "run"), threads=1)
    seen = []
    summary = engine.run_to_end(engine.fit(cfg), on_event=seen.append)
    assert summary.step == 2 and any(type(e).__name__ == "StepMetrics" for e in seen)

    model = engine.load_model(str(tmp_path / "run" / "checkpoint.pt"))
    results = engine.run_to_end(engine.evaluate("shapes", None, None, [model], n=8))
    assert 0.0 <= results["models"][0]["metrics"]["ono_accuracy"] <= 1.0

    gallery = engine.shapes_gallery(n=4)
    embeddings = engine.run_to_end(engine.embed_gallery(model, gallery))
    assert embeddings.embeddings.shape[0] == 4
    explanation = engine.explain(model, "a red circle", negations=["no red circle"])
    assert len(explanation.texts) == 2


def test_a_failed_job_raises_with_its_kind(tmp_path):
    import engine

    with pytest.raises(engine.JobError) as failure:
        engine.run_to_end(engine.evaluate("shapes", None, None, []))
    assert failure.value.kind == "usage" and "at least one model" in str(failure.value)
