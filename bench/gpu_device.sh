#!/usr/bin/env bash
# On the lent GPU machine, in the repository root: installs the carried wheels (bench/gpu_prepare.sh) beside the
# image's packages, points the parity tests at the carried fixtures, runs the GPU check, and leaves its results
# where the device tool brings files back ($OUT): gpu_check.json, gpu_check.md and gpu_check_files.tgz (logs/ and
# raw/; the model files stay behind). Arguments go to bench/gpu_check.py (e.g. --sections dp search).
#   device run: command "bash bench/gpu_device.sh", carry [".whl", ".fixtures"], timeout_s 560
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=${PYTHON:-python3}
wheels=${LEAKGUARD_WHEELS:-.whl}      # the folder bench/gpu_prepare.sh filled
if compgen -G "$wheels/*.whl" >/dev/null; then
    site=${TMPDIR:-/tmp}/leakguard-site
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl \
        2>/dev/null || { echo "the carried wheels in $wheels/ did not install (bench/gpu_prepare.sh makes them)" >&2; exit 2; }
    export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -d .fixtures/stylegan2 ]; then export LEAKGUARD_FIXTURES=$root/.fixtures; fi
work=${GPU_CHECK_DIR:-${TMPDIR:-/tmp}/gpu_check}
PYTHON=$py PYTHONUNBUFFERED=1 bash bench/gpu_check.sh --out "$work" "$@"
rc=$?
if [ -n "${OUT:-}" ] && [ -f "$work/gpu_check.json" ]; then
    cp "$work/gpu_check.json" "$work/gpu_check.md" "$OUT/"
    tar czf "$OUT/gpu_check_files.tgz" -C "$work" logs raw
fi
exit $rc
