"""`semclip generate --backend llm` against a failing server: exit code, --out kept, wall time.

    python bench/generate_faults.py [--timeout 1] [--captions 12]

For each fault of tests/fake_llm_server.py (HTTP 500 on every request, a hanging server,
nonsense replies) it writes a good 3-row triples file as --out, runs the real CLI in a
subprocess over a captions file, and reports whether that file survived.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import fake_llm_server  # noqa: E402

FAULTS = {"HTTP 500 on every request": "error-500", "hanging server": "hang",
          "nonsense replies": "nonsense"}
GOOD_OUT = "image,caption,paraphrase,negation\na.png,a dog,a pup,no dog\n" \
           "b.png,a cat,a kitty,no cat\nc.png,a cow,a calf,no cow\n"


def run_fault(url: str, model: str, folder: Path, n: int, timeout_s: float) -> dict:
    """Run the CLI once against ``model`` (generator and validator) and describe the outcome."""
    src = folder / f"{model}.csv"
    src.write_text("image,caption\n" + "".join(f"i{k}.png,caption {model} {k}\n" for k in range(n)))
    out = folder / f"{model}-out.csv"
    out.write_text(GOOD_OUT)
    command = [sys.executable, "-m", "engine.cli.commands", "generate", "--in", str(src), "--out", str(out),
               "--backend", "llm", "--base-url", url, "--generator-model", model,
               "--validator-model", model, "--timeout", str(timeout_s), "--no-cache", "--quiet"]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.monotonic() - start
    last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
    return {"exit": done.returncode, "out kept": out.read_text() == GOOD_OUT,
            "wall s": round(wall, 1), "last line": last[0][:150]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=1.0, help="--timeout given to the CLI")
    parser.add_argument("--captions", type=int, default=12)
    args = parser.parse_args()
    with fake_llm_server.running() as url, tempfile.TemporaryDirectory() as tmp:
        for label, model in FAULTS.items():
            print(f"{label}: {run_fault(url, model, Path(tmp), args.captions, args.timeout)}")


if __name__ == "__main__":
    main()
