#!/usr/bin/env bash
# The whole CUDA check of issue 16 in one run of a few minutes on one GPU:
#   (a) install the project from this working tree into a fresh venv layered over the
#       machine's own PyTorch (no network: wheels come from .whl/, see bench/gpu_wheels.sh);
#   (b) the tests marked `cuda` (bf16 steps, GPU checkpoint on CPU, OOM advice, bf16 encoding);
#   (c) bench/train_step.py, ViT-B-32, batch 256, bf16: stock vs SemCLIP with 1, 3 and 6 length
#       buckets; then the fastest with fused AdamW, then also with torch.compile (CUDA graphs);
#   (d) one epoch of a photo recipe, if the project has one;
#   (e) every figure as JSON plus the log in OUTDIR, and a summary table at the end.
#
#   bash bench/gpu_wheels.sh                       # once, on a machine with the registry
#   bash bench/gpu_check.sh OUTDIR                 # on the GPU machine (carry .whl)
#   bash bench/gpu_check.sh --dry-run OUTDIR       # anywhere: every part but the GPU ones
#       [--rehearse]                               # dry run: also run the cuda tests on CPU
#
# OUTDIR receives at most 7 files: gpu_check.log, env.json, cuda_tests.json, train_step.json,
# train_step_fused.json, train_step_compiled.json, summary.json. Each step runs under `timeout`
# within a total budget (GPU_CHECK_BUDGET_S, default 460 s: under 8 minutes with the summary).
# Exit status: 0 when every step that ran passed, 1 otherwise, 2 for bad usage.
set -uo pipefail

DRY_RUN=0
REHEARSE=0
OUT=""
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        --rehearse) REHEARSE=1 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        -*) echo "gpu_check.sh: unknown option $arg" >&2; exit 2 ;;
        *) [ -z "$OUT" ] || { echo "gpu_check.sh: one OUTDIR only" >&2; exit 2; }; OUT=$arg ;;
    esac
done
if [ -z "$OUT" ]; then
    echo "usage: bash bench/gpu_check.sh [--dry-run [--rehearse]] OUTDIR" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)

# Everything this script prints also goes to the log (run once more, under tee).
if [ -z "${GPU_CHECK_LOGGING:-}" ]; then
    GPU_CHECK_LOGGING=1 bash "$0" "$@" 2>&1 | tee "$OUT/gpu_check.log"
    exit "${PIPESTATUS[0]}"
fi

cd "$ROOT"
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-460}
RESERVE=15                                  # kept back for the summary
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
STEPS=$WORK/steps.tsv
VENV=$WORK/venv
VPY=$VENV/bin/python
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 SEMCLIP_CACHE=$WORK/cache
unset PYTHONPATH                            # the venv's install is what runs, not a stray path
: >"$STEPS"
START=$SECONDS

say() { printf '\n== %s (%ss into the check)\n' "$*" "$((SECONDS - START))"; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$STEPS"; }

# step NAME LIMIT_S CMD...: run CMD under timeout, at most LIMIT_S and never past the budget.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - RESERVE - (SECONDS - START)))
    [ "$limit" -le "$left" ] || limit=$left
    if [ "$limit" -lt 10 ]; then
        say "$name: not run, out of time"
        record "$name" "out-of-time" "" "not run: the ${BUDGET}s budget was spent"
        return 1
    fi
    say "$name (limit ${limit}s)"
    local t0=$SECONDS rc=0
    # through bash -c, so that CMD may be one of this script's (exported) functions
    timeout --kill-after=10 "$limit" bash -c '"$@"' step "$@" || rc=$?
    local took=$((SECONDS - t0))
    if [ "$rc" -eq 0 ]; then
        record "$name" "ok" "$took" ""
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        record "$name" "timed-out" "$took" "killed after ${limit}s"
    else
        record "$name" "failed" "$took" "exit status $rc"
    fi
    return "$rc"
}

skip() { say "$1: skipped ($2)"; record "$1" "skipped" "" "$2"; }

# ---- (a) install ------------------------------------------------------------------------------

# The wheels of bench/gpu_wheels.txt present in .whl/ (exactly one file each), as paths.
wheel_files() {
    local line name version file found=0 missing=0
    while read -r line; do
        line=${line%%#*}
        line=${line//[[:space:]]/}
        [ -n "$line" ] || continue
        name=${line%%==*}
        version=${line##*==}
        file=$(ls .whl/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n 1)
        if [ -n "$file" ]; then
            echo "$file"
            found=$((found + 1))
        else
            echo "missing wheel: $name==$version in .whl/ (run bench/gpu_wheels.sh)" >&2
            missing=$((missing + 1))
        fi
    done <bench/gpu_wheels.txt
    [ "$missing" -eq 0 ]
}

# env.json: the machine, the versions, where `engine` was imported from (must be this tree).
write_env() {
    "$1" - "$ROOT" "$OUT/env.json" "$DRY_RUN" <<'EOF'
import datetime, json, platform, subprocess, sys
from pathlib import Path
root, env_path, dry = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
import open_clip, torch
import engine
assert Path(engine.__file__).resolve().is_relative_to(root), f"engine imported from {engine.__file__}"
def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
cuda = torch.cuda.is_available()
smi = run("nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader")
env = {"dry_run": dry, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "host": platform.node(), "python": platform.python_version(), "torch": torch.__version__,
       "cuda": torch.version.cuda, "open_clip": open_clip.__version__,
       "engine": str(Path(engine.__file__).parent),
       "commit": run("git", "-C", str(root), "rev-parse", "--short", "HEAD") or "unknown",
       "gpu": torch.cuda.get_device_name(0) if cuda else None,
       "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
       "nvidia_smi": smi, "driver": smi.split(", ")[1] if smi.count(", ") >= 1 else None}
env_path.write_text(json.dumps(env, indent=2) + "\n")
print(json.dumps(env, indent=2))
if not cuda and not dry:
    sys.exit("no CUDA GPU is visible to PyTorch here: run with --dry-run, or on a GPU machine")
EOF
}

# The wheels to install, or nothing in a dry run without them (the machine's own stand in).
wheels_to_install() {
    wheel_files && return 0
    [ "$DRY_RUN" -eq 1 ] && { echo "dry run: wheels not installed" >&2; return 0; }
    return 1
}

install() {
    bash -n bench/gpu_check.sh && bash -n bench/gpu_wheels.sh || return 1
    # A fresh venv over the interpreter that holds PyTorch (on the GPU machine: its CUDA
    # build). --system-site-packages would see only the base Python's packages when that
    # interpreter is itself a venv, so its site dirs are added by a .pth file, last.
    "$PY" -m venv --without-pip "$VENV" || return 1
    local purelib sites wheels
    purelib=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
    sites=$("$PY" -c 'import site, sys; print(repr([p for p in site.getsitepackages() + [site.getusersitepackages()] if p in sys.path]))') || return 1
    echo "import site; list(map(site.addsitedir, $sites))" >"$purelib/zz_semclip_base_env.pth"
    local pip=("$VPY" -m pip install --no-index --no-deps --no-cache-dir --disable-pip-version-check -q)
    wheels=$(wheels_to_install) || return 1
    if [ -n "$wheels" ]; then
        # shellcheck disable=SC2086
        "${pip[@]}" $wheels || return 1
        echo "installed wheels: $(echo $wheels | xargs -n1 basename | tr '\n' ' ')"
    fi
    "${pip[@]}" --no-build-isolation -e . || return 1
    write_env "$VPY"
}

# Fallback where no venv can be made or pip is missing: wheels unpacked (a wheel is a zip
# file), the tree on PYTHONPATH, run by the machine's own interpreter.
install_from_tree() {
    local wheel wheels
    wheels=$(wheels_to_install) || return 1
    mkdir -p "$WORK/site"
    for wheel in $wheels; do
        "$PY" -m zipfile -e "$wheel" "$WORK/site" || return 1
    done
    PYTHONPATH="$ROOT:$WORK/site" write_env "$PY"
}

export DRY_RUN REHEARSE ROOT OUT PY WORK VENV VPY
export -f wheel_files wheels_to_install write_env install install_from_tree

if ! step "install" 90 install; then
    if step "install from the tree" 60 install_from_tree; then
        sed -i 's/^install\tfailed\t\([0-9]*\)\t.*/install\tfallback\t\1\tno venv here: ran from the tree/' "$STEPS"
        VPY=$PY
        export VPY PYTHONPATH="$ROOT:$WORK/site"
    else
        echo "install failed: nothing else can run" >&2
        "$PY" bench/gpu_summary.py "$OUT" --steps "$STEPS"
        exit 1
    fi
fi

# ---- (b) the tests marked cuda ----------------------------------------------------------------

cuda_tests() {
    local PYTEST=("$VPY" -m pytest -q -rs -p no:cacheprovider -o junit_family=legacy
                  --junitxml "$WORK/cuda_tests.xml" -m cuda tests/test_cuda.py)
    "$VPY" -m pytest -p no:cacheprovider --markers | grep -q '^@pytest.mark.cuda:' || {
        echo "the cuda marker is not registered in pyproject.toml" >&2
        return 1
    }
    if [ "$DRY_RUN" -eq 1 ] && [ "$REHEARSE" -eq 1 ]; then
        SEMCLIP_TEST_DEVICE=cpu "${PYTEST[@]}"
    elif [ "$DRY_RUN" -eq 1 ]; then  # collected, and all skipped for want of a GPU
        "${PYTEST[@]}" || return 1
        "$VPY" -c 'import sys, xml.etree.ElementTree as ET
cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
skipped = [c for c in cases if c.find("skipped") is not None]
print(f"{len(cases)} cuda tests collected, {len(skipped)} skipped without a GPU")
sys.exit(0 if cases and len(skipped) == len(cases) else 1)' "$WORK/cuda_tests.xml"
    else
        "${PYTEST[@]}"
    fi
}
export -f cuda_tests
step "cuda tests" 150 cuda_tests

# ---- (c) training-step figures -----------------------------------------------------------------

if [ "$DRY_RUN" -eq 1 ]; then  # a tiny CPU config: the same code paths, seconds not minutes
    BENCH=("$VPY" bench/train_step.py --model semclip-shapes-tiny --batch 16 --steps 2 --warmup 1)
else
    BENCH=("$VPY" bench/train_step.py --model ViT-B-32 --batch 256 --precision bf16 --steps 20 --warmup 5)
fi
step "train_step buckets" 120 "${BENCH[@]}" --max-buckets 1 3 6 --json "$OUT/train_step.json"
BEST=$("$VPY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["best_max_buckets"] or 1)' \
       "$OUT/train_step.json" 2>/dev/null || echo 1)
step "train_step fused AdamW" 60 "${BENCH[@]}" --max-buckets "$BEST" --fused-adamw \
    --json "$OUT/train_step_fused.json"
if [ "$DRY_RUN" -eq 1 ]; then
    skip "train_step compiled" "dry run: compiling takes minutes on a CPU"
else
    step "train_step compiled" 240 "${BENCH[@]}" --max-buckets "$BEST" --fused-adamw \
        --compile reduce-overhead --json "$OUT/train_step_compiled.json"
fi

# ---- (d) the photo recipe ----------------------------------------------------------------------

PHOTO=$("$VPY" -c 'from engine.train.presets import PRESETS
print(next((n for n in PRESETS if "photo" in n), ""))' 2>/dev/null)
if [ -z "$PHOTO" ]; then
    skip "photo recipe" "no photo recipe in engine/train/presets.py yet"
elif [ "$DRY_RUN" -eq 1 ]; then
    skip "photo recipe" "dry run: $PHOTO needs the GPU"
else
    step "photo recipe ($PHOTO)" 120 "$VPY" -m engine.cli train --preset "$PHOTO" \
        --out "$WORK/photo" --set epochs=1
fi

# ---- (e) summary ------------------------------------------------------------------------------

say "summary"
"$PY" bench/gpu_summary.py "$OUT" --steps "$STEPS" --junit "$WORK/cuda_tests.xml"
echo "total: $((SECONDS - START)) s; figures in $OUT"
rm -rf "$VENV"
if cut -f2 "$STEPS" | grep -qv -e '^ok$' -e '^skipped$' -e '^fallback$'; then
    exit 1
fi
exit 0
