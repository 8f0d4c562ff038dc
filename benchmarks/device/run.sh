#!/usr/bin/env bash
# The accelerator machine's one command (benchmarks/device/README.md):
#   bash benchmarks/device/run.sh MODE [--smoke] [--out DIR]
# installs the carried pure-Python wheels (.device/wheels) into a private folder, records the
# machine (env.txt), then runs MODE, writing at most 8 files to DIR (default: $OUT):
#   suite  benchmarks/accelerator_suite.py (results.json, results.md) within SUITE_BUDGET_S
#          (default 330 s of measurements; the whole command is cut at SUITE_LIMIT_S, 420 s);
#   e4     benchmarks/device/e4.py on the carried COGS arrays (.device/arrays/cogs.npz).
# Plus env.txt and log.txt. PYTHON picks the interpreter (default python3: the image's).
set -euo pipefail
usage="usage: bash benchmarks/device/run.sh suite|e4 [--smoke] [--out DIR]"
cd "$(dirname "$0")/../.."
mode=${1:-}
[ $# -gt 0 ] && shift
smoke=()
out=${OUT:-}
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) smoke=(--smoke) ;;
    --out) [ $# -ge 2 ] || { echo "run.sh: --out needs a directory; $usage" >&2; exit 2; }
           out=$2; shift ;;
    *) echo "run.sh: unknown argument '$1'; $usage" >&2; exit 2 ;;
  esac
  shift
done
case $mode in suite|e4) ;; *) echo "run.sh: unknown mode '$mode'; $usage" >&2; exit 2 ;; esac
[ -n "$out" ] || { echo "run.sh: no output directory: pass --out DIR or set OUT; $usage" >&2; exit 2; }
py=${PYTHON:-python3}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Carried wheels (gin-config: benchmarks/device/prepare.sh) into a private site folder.
site=$(mktemp -d "${TMPDIR:-/tmp}/compgen-site.XXXXXX")
shopt -s nullglob
wheels=(.device/wheels/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
    --target "$site" "${wheels[@]}"
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
missing=$("$py" - <<'PY'
import importlib.util
need = ("gin", "jax", "flax", "optax", "orbax.checkpoint", "numpy", "pandas", "scipy",
        "statsmodels", "matplotlib", "tqdm")
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))
PY
)
if [ -n "$missing" ]; then
  echo "run.sh: not importable with $py: $missing (carry their wheels: bash benchmarks/device/prepare.sh)" >&2
  exit 2
fi

# The machine, as the report names it.
{
  echo "mode: $mode ${smoke[*]}"
  echo "date: $(date -u +%FT%TZ)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  else
    echo "nvidia-smi: absent"
  fi
  "$py" - <<'PY'
import importlib.metadata as md
import platform

import jax

print(f"python {platform.python_version()}; jax devices {jax.devices()}")
for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorstore", "numpy",
             "pandas", "scipy", "statsmodels", "gin-config", "torch", "tensorflow", "seqio",
             "clu"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name} absent")
PY
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

status=0
case $mode in
  suite)
    timeout --signal=TERM "${SUITE_LIMIT_S:-420}" "$py" benchmarks/accelerator_suite.py \
      --out "$out" --budget_s "${SUITE_BUDGET_S:-330}" "${smoke[@]}" 2>&1 \
      | tee "$out/log.txt" || status=$?
    ;;
  e4)
    # e4.py writes log.txt itself and stops training at E4_BUDGET_S (default 450 s), reporting
    # the finished cells; E4_LIMIT_S cuts the whole command; E4_TRAIN_STEPS overrides
    # programme/gpu_run.gin's steps per cell (a rerun after a partial run).
    extra=()  # another step count is another design: its own sweep root
    [ -n "${E4_TRAIN_STEPS:-}" ] && extra+=(--set "TRAIN_STEPS = $E4_TRAIN_STEPS" \
      --work "runs/gpu_e4_steps$E4_TRAIN_STEPS")
    timeout --signal=TERM "${E4_LIMIT_S:-560}" "$py" benchmarks/device/e4.py --out "$out" \
      --arrays .device/arrays/cogs.npz --budget_s "${E4_BUDGET_S:-450}" "${smoke[@]}" \
      "${extra[@]}" || status=$?
    ;;
esac
rm -rf "$site"
[ "$status" -eq 124 ] && echo "run.sh: $mode cut at its limit; results.json holds what was measured" >&2
exit "$status"
