#!/usr/bin/env bash
# Download into .whl/ (gitignored) the wheels bench/gpu_check.sh installs on the device machine,
# which has no network: the packages in bench/gpu_wheels.txt, for CPython 3.12 on x86-64 Linux.
#
#   bash bench/gpu_wheels.sh            # then carry ".whl" to the device run
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .whl
mapfile -t wanted < <(grep -v '^\s*#' bench/gpu_wheels.txt | grep -v '^\s*$')
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl "${wanted[@]}"
ls -l .whl
