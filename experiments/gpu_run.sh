#!/bin/bash
# The GPU figures of this project, in one device call (see README, "On a GPU"). Needs the packed
# dependencies unpacked (bash .device/partN/install.sh) and $OUT set by the device tool.
#   TESTS_SECONDS  cap on the GPU tests (default 150; 0 skips them)
#   TUNE_TIMEOUT   tune's --timeout: no trial starts after it (default 150)
#   TRIAL_TIMEOUT  tune's --trial-timeout (default 120)
#   TOTAL_SECONDS  the side-by-side bench gets what is left of this (default 570)
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"; t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, optuna, mlflow; print('torch', torch.__version__, 'optuna', optuna.__version__, 'mlflow', mlflow.__version__)" | tee -a "$OUT/gpu.txt"
if [ "${TESTS_SECONDS:-150}" != 0 ]; then
  echo "== GPU tests"
  timeout "${TESTS_SECONDS:-150}" python3 -X faulthandler -m pytest -v -m gpu -p no:cacheprovider tests > "$OUT/gpu-tests.log" 2>&1
  echo "pytest exit $?"; grep -E "PASSED|FAILED|ERROR|passed|failed|Fatal|Segmentation|^E " "$OUT/gpu-tests.log" | head -20
fi
echo "== tune"; start=$(date +%s)
python3 -m tuner.api.cli --device gpu --trials 200 --timeout "${TUNE_TIMEOUT:-150}" \
  --trial-timeout "${TRIAL_TIMEOUT:-120}" --output-dir "$OUT/tune" \
  --study-name demo-gpu > "$OUT/tune.log" 2>&1
echo "tune exit $?, wall $(( $(date +%s) - start )) s"; grep -v "^E1\|^W1" "$OUT/tune.log" | tail -32
cp "$OUT/tune/demo-gpu/best/report.json" "$OUT/tune/demo-gpu/best/best_config.json" "$OUT/" 2>/dev/null
left=$(( ${TOTAL_SECONDS:-570} - ($(date +%s) - t0) ))
echo "== side by side ($left s left)"
[ -f "$OUT/best_config.json" ] && [ "$left" -gt 60 ] && timeout "$left" python3 experiments/bench_demo.py \
  --device gpu --best-config "$OUT/best_config.json" --out "$OUT/results" \
  --command "experiments/gpu_run.sh (TUNE_TIMEOUT=${TUNE_TIMEOUT:-150} TRIAL_TIMEOUT=${TRIAL_TIMEOUT:-120}); bench_demo.py --device gpu --best-config <tuned>" 2>&1 | tail -22
