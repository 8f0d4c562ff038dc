#!/usr/bin/env bash
# Here, before every accelerator run (benchmarks/device/README.md): a CPU venv that mirrors the
# accelerator image (Python 3.12, jax 0.11.2, its other packages; no tensorflow, seqio, clu or
# gin-config except gin from the carried wheels) in .device/mirror-venv, then the kit at --smoke
# size there, exactly as the device runs it (run.sh installs the carried wheels itself).
#   bash benchmarks/device/mirror.sh [MODE ...]      (default: suite; e.g. `suite e4`)
# PY312: a Python 3.12 interpreter (default: python3.12 on PATH, else pyenv's 3.12.1).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
py312=${PY312:-$(command -v python3.12 || echo /root/.pyenv/versions/3.12.1/bin/python3.12)}
venv=.device/mirror-venv
if [ ! -x "$venv/bin/python" ]; then
  "$py312" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  -r benchmarks/device/mirror-requirements.txt
present=$("$venv/bin/python" -c 'import importlib.util as u
print(" ".join(m for m in ("tensorflow", "seqio", "clu", "gin", "torch") if u.find_spec(m)))')
if [ -n "$present" ]; then
  echo "mirror.sh: $venv has $present installed; the image has none of them (torch aside):" \
       "remove it (rm -rf $venv) and run again" >&2
  exit 1
fi
[ -n "$(ls .device/wheels/*.whl 2>/dev/null)" ] || {
  echo "mirror.sh: no carried wheels in .device/wheels: run benchmarks/device/prepare.sh" >&2; exit 1; }
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(suite)
for mode in "${modes[@]}"; do
  out=.device/mirror-out/$mode
  rm -rf "$out"
  t0=$(date +%s)
  PYTHON="$venv/bin/python" JAX_PLATFORMS=cpu bash benchmarks/device/run.sh "$mode" --smoke --out "$out"
  files=$(find "$out" -type f | wc -l)
  deep=$(find "$out" -mindepth 4 -type f | wc -l)
  echo "mirror.sh: $mode --smoke passed in $(( $(date +%s) - t0 )) s: $files files in $out" \
       "($deep more than 2 folders deep)"
  [ "$files" -le 8 ] && [ "$deep" -eq 0 ] || { echo "mirror.sh: $mode writes more than the" \
       "device returns (8 files, 2 folders deep)" >&2; exit 1; }
done
echo "mirror.sh: passed in $(( $(date +%s) - start )) s"
