#!/usr/bin/env bash
# One prepared GPU check (issue 19): `bash bench/gpu_check.sh --out gpu_check/` on a GPU machine with
# torch installed; `--smoke` checks the script itself on the CPU in seconds. Options: bench/gpu_check.py --help.
# Runs $PYTHON if set, else the repository's .venv/bin/python when there is one, else python3 (on a GPU
# machine torch may live in the system Python).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${PYTHON:-}" ]; then py=$PYTHON
elif [ -x "$root/.venv/bin/python" ]; then py=$root/.venv/bin/python
else py=python3
fi
exec "$py" "$root/bench/gpu_check.py" "$@"
