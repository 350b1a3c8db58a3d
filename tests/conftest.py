"""Shared fixtures: an isolated cache folder for every test, tiny models for the app's tests, and a
tiny class-folder data set for zero-shot checks."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # Qt tests never need a screen


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own SEMCLIP_CACHE, so no test sees another's (or the user's) cache."""
    root = tmp_path / "semclip-cache"
    monkeypatch.setenv("SEMCLIP_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def tiny_models():
    """Two small randomly initialised models of one architecture (seeds 0 and 1), loaded once."""
    from engine.model.loading import load_model

    return load_model("semclip-shapes-tiny", seed=0), load_model("semclip-shapes-tiny", seed=1)


@pytest.fixture
def app_state(qtbot, tiny_models):
    """An AppState with the tiny pair on the left and right and a 16-scene shapes gallery."""
    from engine.data.galleries import shapes_gallery
    from semclip_gui.state import AppState

    state = AppState()
    state.set_model("left", tiny_models[0], label="CLIP")
    state.set_model("right", tiny_models[1], label="SemCLIP")
    state.set_gallery(shapes_gallery(n=16, split="test"))
    return state


@pytest.fixture(autouse=True)
def no_background_jobs_left(request):
    """A Qt test's pool jobs finish inside it, never emitting into the next test's objects.

    As in the app (``collect_garbage_on_gui_thread``), a Qt test's garbage is collected on the
    GUI thread only: a widget freed by a collection that a worker thread's allocation triggered
    deadlocks PySide (it froze a whole CI run inside a model load).
    """
    if "qtbot" not in request.fixturenames:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        from semclip_gui.workers import wait_for_background_jobs

        assert wait_for_background_jobs(30_000), "background jobs still running after 30 s"
    finally:
        gc.collect()
        if was_enabled:
            gc.enable()


@pytest.fixture(scope="session")
def llm_server():
    """tests/fake_llm_server.py running in a subprocess, once per session; yields its base URL."""
    import fake_llm_server

    with fake_llm_server.running() as url:
        yield url


@pytest.fixture
def llm_url(llm_server):
    """The fake LLM server's base URL, with its call counts and per-caption state cleared."""
    import fake_llm_server

    fake_llm_server.reset(llm_server)
    return llm_server


@pytest.fixture
def two_class_folder(tmp_path) -> Path:
    """A tiny zero-shot data set: ``red_square/`` and ``blue_circle/``, three drawings each."""
    from PIL import Image, ImageDraw

    root = tmp_path / "zeroshot"
    for name, colour in (("red_square", (220, 30, 30)), ("blue_circle", (30, 30, 220))):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(3):
            image = Image.new("RGB", (48, 48), (255, 255, 255))
            box = (6 + 2 * i, 6 + 2 * i, 40, 40)
            draw = ImageDraw.Draw(image)
            (draw.rectangle if "square" in name else draw.ellipse)(box, fill=colour)
            image.save(folder / f"{i}.png")
    return root
