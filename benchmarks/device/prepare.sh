#!/usr/bin/env bash
# Here, before an accelerator run (benchmarks/device/README.md): fill the carry folders
#   .device/wheels  the CPython 3.12 wheels of benchmarks/device/wheels.txt (pip download);
#   .device/arrays  cogs.npz, the COGS task arrays (`compgen-jax data export cogs`), for `e4`;
# then check that the working tree plus both folders stay under the device's 64 MiB.
# PYTHON: the project's interpreter (default: python, the activated venv with seqio/TensorFlow).
# --force exports the arrays again even if the file exists.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-python}
force=0
[ "${1:-}" = "--force" ] && force=1
mkdir -p .device/wheels .device/arrays
grep -v '^#' benchmarks/device/wheels.txt | xargs "$py" -m pip download -q --no-deps \
  --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .device/wheels
if [ "$force" = 1 ] || [ ! -f .device/arrays/cogs.npz ]; then
  "$py" -m compgen_jax.cli data export cogs --out .device/arrays/cogs.npz
fi
ls -l .device/wheels .device/arrays
mib=$( { git ls-files -co --exclude-standard -z; find .device/wheels .device/arrays -type f -print0; } \
       | du -cb --files0-from=- | tail -1 | cut -f1)
echo "working tree + .device/wheels + .device/arrays: $((mib / 1048576)) MiB (limit 64)"
[ "$mib" -le $((64 * 1048576)) ] || { echo "prepare.sh: over the device's 64 MiB" >&2; exit 1; }
