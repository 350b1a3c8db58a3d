"""Project-level promises: CI runs the README's test command; the engine never imports Qt."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), re.DOTALL)[:2]


def test_readme_opens_with_two_setup_commands_and_ci_runs_the_second():
    install_and_run, install_and_test = readme_commands()
    for command in (install_and_run, install_and_test):  # one line each, system packages first
        assert "\n" not in command
        assert command.split(" && ")[0] == "sudo apt-get update"  # a fresh machine has no lists
        assert command.split(" && ")[1].startswith("sudo apt-get install -y ")
        assert command.split(" && ")[2:4] == ["python3 -m venv .venv", ". .venv/bin/activate"]
    assert install_and_run.split(" && ")[:2] == install_and_test.split(" && ")[:2]
    assert install_and_run.endswith("semclip-gui")
    assert "pytest" in install_and_test
    ci = (ROOT / ".ci" / "run").read_text()
    # CI has the system packages and creates its own venv, then runs the rest verbatim
    after_venv = install_and_test.split(" && ", 4)[4]
    assert after_venv in ci


def test_engine_never_imports_qt():
    modules = sorted(p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
                     for p in (ROOT / "engine").rglob("*.py") if p.name != "__main__.py")
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'qasync'))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"engine imported Qt modules: {out.stdout}"


def test_the_installed_pyside6_does_not_leak_references_to_none():
    """PySide6 6.12.0 on Python 3.11 loses a reference to None per void call; the app, which
    makes hundreds a frame while plotting, then aborts within a minute (pyproject excludes it)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(1000):
        probe.setObjectName("probe")
    assert before - sys.getrefcount(None) < 10


# Which engine layers each layer may import (lazy imports inside functions included). "core" is
# engine's own top-level modules (events, paths, atomic). data and captions use each other's
# modules (a captions batch writes triples files; photo sets negate with the rules backend).
LAYER_IMPORTS = {
    "core": {"core"},
    "model": {"core", "model"},
    "captions": {"core", "captions", "data"},
    "data": {"core", "model", "captions", "data"},
    "eval": {"core", "model", "captions", "data", "eval"},
    "explore": {"core", "model", "captions", "data", "eval", "explore"},
    "train": {"core", "model", "captions", "data", "eval", "train"},
    "cli": {"core", "model", "captions", "data", "eval", "explore", "train", "cli"},
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYER_IMPORTS else "core"


def _engine_imports(path: Path, module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the module's package
                package = module.split(".")[: -node.level if path.name != "__init__.py"
                                            else len(module.split(".")) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            found.add(base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "engine" or m.startswith("engine.")}


def test_engine_layers_import_only_what_they_may():
    """model imports nothing above it; eval and explore never import train; only the CLI sees all."""
    broken = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        allowed = LAYER_IMPORTS[_layer(module)]
        broken += [f"{module} imports {m}" for m in sorted(_engine_imports(path, module))
                   if m != "engine" and _layer(m) not in allowed]
    assert broken == []


def test_the_layer_check_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "engine" / "model" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from engine.train.loop import train\n    from ..eval import run\n")
    assert _engine_imports(bad, "engine.model.bad") == {"engine.train.loop", "engine.eval"}


OPEN_CLIP_INTERNALS = {"open_clip.factory", "open_clip.model", "open_clip.transformer",
                       "open_clip.push_to_hf_hub", "open_clip.hf_model", "open_clip.timm_model"}


def _open_clip_internals_touched(source: str) -> list[str]:
    touched = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module in OPEN_CLIP_INTERNALS:
            touched.append(f"imports {node.module}")
        elif isinstance(node, ast.ImportFrom) and node.module == "open_clip":
            touched += [f"imports open_clip.{a.name}" for a in node.names
                        if f"open_clip.{a.name}" in OPEN_CLIP_INTERNALS]
        elif isinstance(node, ast.Attribute) and (node.attr.startswith("_MODEL_CONFIGS") or (
                node.attr in ("trunk", "head") and isinstance(node.value, ast.Attribute)
                and node.value.attr == "visual")):
            touched.append(f"reads .{node.attr}")
    return touched


def test_only_one_module_touches_open_clips_internals():
    touched = {str(p.relative_to(ROOT)): _open_clip_internals_touched(p.read_text())
               for p in (ROOT / "engine").rglob("*.py") if p.name != "_openclip.py"}
    assert {path: what for path, what in touched.items() if what} == {}
    assert _open_clip_internals_touched("from open_clip import factory\nm.visual.trunk\n") == [
        "imports open_clip.factory", "reads .trunk"]
