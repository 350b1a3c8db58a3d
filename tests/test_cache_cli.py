"""The cache folder follows XDG_CACHE_HOME (SEMCLIP_CACHE overrides it); ``semclip cache`` shows
where it is and its size, ``--clear`` empties what the project put there and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine.captions.cache import GenerationCache
from engine.cli.commands import main
from engine.paths import cache_dir

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="XDG_CACHE_HOME is the Linux convention (platformdirs "
                                       "uses the OS's own folder elsewhere)")


@linux_only
def test_cache_folder_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("SEMCLIP_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "semclip" and cache_dir().is_dir()
    monkeypatch.setenv("SEMCLIP_CACHE", str(tmp_path / "mine"))  # the override wins
    assert cache_dir() == tmp_path / "mine"


@linux_only
def test_semclip_cache_prints_the_xdg_location(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SEMCLIP_CACHE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    done = subprocess.run([sys.executable, "-m", "engine.cli.commands", "cache"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == [
        f"cache: {tmp_path / 'xdg' / 'semclip'} (set SEMCLIP_CACHE to move it)", "empty"]


def test_cache_shows_size_and_clear_keeps_files_that_are_not_ours(isolated_cache, capsys):
    # fill the cache as a user does: an evaluation (image embeddings) and caption generations
    assert main(["eval", "--benchmark", "shapes", "--n", "4", "--model", "semclip-tiny",
                 "--quiet"]) == 0
    with GenerationCache() as generations:
        assert generations.path.parent == isolated_cache
    (isolated_cache / "notes.txt").write_text("not the project's")
    capsys.readouterr()

    assert main(["cache"]) == 0
    shown = capsys.readouterr().out
    embeddings = sum(f.stat().st_size for f in (isolated_cache / "embeddings").rglob("*")
                     if f.is_file())
    assert embeddings > 0
    assert f"cache: {isolated_cache} (from SEMCLIP_CACHE)" in shown
    assert any(line.split()[0] == "embeddings" for line in shown.splitlines()[1:])
    assert "captions.sqlite" in shown and "total: " in shown
    assert (isolated_cache / "embeddings").is_dir()  # showing deletes nothing

    assert main(["cache", "--clear"]) == 0
    assert "cleared " in capsys.readouterr().out
    assert sorted(p.name for p in isolated_cache.iterdir()) == ["notes.txt"]
    assert main(["cache"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "empty"


def test_human_sizes():
    from engine.cli.cache import human_size

    assert [human_size(n) for n in (0, 1023, 1536, 5 * 1024 ** 2, 3 * 1024 ** 3)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 MiB", "3.0 GiB"]
