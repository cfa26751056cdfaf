#!/usr/bin/env bash
# The CUDA path checked in one go, in at most 8 minutes on one GPU (`make gpu-check`):
# the gpu-marked tests, bench_train.py for every model (resident features vs random batches,
# bf16 + channels_last), two epochs of E2 at the study's size with a resume check, peak GPU
# memory, and the full profile's time extrapolated; see benchmarks/gpu_check.py.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR] [gpu_check.py options]
#   bash benchmarks/gpu_check.sh /tmp/out --device cpu --tiny     # the same logic on a CPU, toy sizes
#
# OUT_DIR: the first argument, else $OUT, else results/gpu_check. Writes OUT_DIR/gpu_check.json
# and OUT_DIR/gpu_check.log and prints a short table. Needs no network: it runs on whatever
# Python has torch: $PYTHON if set, else .venv/bin/python if present, else python3.
# Wheels in .whl/ beside the tree (optional: packages that machine lacks) are installed into a
# private folder first, without an index.
set -u
cd "$(dirname "$0")/.." || exit 3

out_dir="${OUT:-results/gpu_check}"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then out_dir="$1"; shift; fi
mkdir -p "$out_dir" || exit 3

py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py="$(command -v python3 || command -v python || true)"; fi
fi
if [ -z "$py" ]; then echo "gpu-check: no Python found (looked for \$PYTHON, .venv/bin/python, python3)" >&2; exit 3; fi

if compgen -G ".whl/*.whl" >/dev/null; then
  site="${TMPDIR:-/tmp}/asdlib-gpu-check-site"
  "$py" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" .whl/*.whl \
    && export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

# one interpreter start both probes torch and names the versions (importing torch takes seconds)
if ! versions="$("$py" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)' 2>/dev/null)"; then
  echo "gpu-check: $py cannot import torch. Run it with a Python that has PyTorch (the project's .venv after" \
       "'make venv', or set PYTHON=/path/to/python)." >&2
  exit 3
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"  # deterministic cuBLAS for the resume check
limit="${GPU_CHECK_TIMEOUT:-480}"
echo "gpu-check: $py ($versions), output in $out_dir, at most $limit s"
set -o pipefail
timeout --kill-after=10 "$limit" "$py" benchmarks/gpu_check.py --out "$out_dir" --budget "$((limit - 20))" "$@" 2>&1 \
  | tee "$out_dir/gpu_check.log"
status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "gpu-check: stopped after $limit s; $out_dir/gpu_check.json holds the steps that finished" >&2
fi
exit "$status"
