#!/usr/bin/env bash
# The prepared GPU check (issue 21): a thin wrapper around benchmarks/gpu.py (see its docstring and
# docs/gpu.md).
#
#   bash benchmarks/gpu.sh --prepare            # here: the weights and 32 pictures into gpu_carry/
#   bash benchmarks/gpu.sh                      # on the GPU machine (writes into $OUT when it is set)
#   bash benchmarks/gpu.sh --device cpu --tiny  # the same pipeline on the CPU in well under a minute
#
# It runs this checkout's package (src/ first on PYTHONPATH) with $PYTHON, else python3, else
# python; gpu_carry/site (the weights package copied by --prepare) goes on PYTHONPATH too.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if command -v python3 >/dev/null 2>&1; then
        python=python3
    elif command -v python >/dev/null 2>&1; then
        python=python
    else
        echo "gpu.sh: no python3 or python on PATH (set PYTHON)" >&2
        exit 2
    fi
fi

path="$root/src"
if [[ -d "$root/gpu_carry/site" ]]; then
    path="$path:$root/gpu_carry/site"
fi
export PYTHONPATH="$path${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TQDM_DISABLE=1

exec "$python" "$here/gpu.py" "$@"
