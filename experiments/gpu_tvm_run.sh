#!/bin/bash
# The tvm backend's GPU figures in one device call (after bash .device/partN/install.sh):
# the side-by-side bench at batch 8 (eager, peers, TVM configs), the tvm GPU tests, the
# MetaSchedule builders side by side, and a time-boxed tune with tvm in the search. Under $OUT.
#   BENCH_SECONDS (200), TESTS_SECONDS (100), BUILDER_SECONDS (100), TUNE_SECONDS (0: skipped)
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT/results"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, tvm; print('torch', torch.__version__, 'tvm', tvm.__version__)" | tee -a "$OUT/gpu.txt"
echo "== side by side, batch 8"
timeout "${BENCH_SECONDS:-200}" python3 experiments/bench_demo.py --device gpu --tvm --batch 8 --rounds 3 \
  --cache-dir "$OUT/cache" --out "$OUT/results" --tag tvm-b8 \
  --command "experiments/bench_demo.py --device gpu --tvm --batch 8 --rounds 3" > "$OUT/bench.log" 2>&1
echo "bench exit $?"; grep -v "^W1\|^E1\|Warning\|warn\|cls.__new__" "$OUT/bench.log" | grep -v "^$" | tail -30
echo "== tvm GPU tests"
timeout "${TESTS_SECONDS:-100}" python3 -X faulthandler -m pytest -v -m gpu -p no:cacheprovider --tb=line \
  tests/backends_tests/test_tvm.py > "$OUT/gpu-tests.log" 2>&1
echo "pytest exit $?"; grep -E "PASSED|FAILED|ERROR|passed|failed|Fatal|Segmentation|^E |Error" "$OUT/gpu-tests.log" | head -20
echo "== MetaSchedule builders"
timeout "${BUILDER_SECONDS:-100}" python3 experiments/bench_tvm_builder.py --device gpu --batches 2 --top-k 2 \
  --json "$OUT/results/builders-gpu.json" 2>&1 | grep -v "Warning\|warn\|cls.__new__" | tail -8
if [ "${TUNE_SECONDS:-0}" != 0 ]; then
  echo "== tune with tvm (time-boxed)"; start=$(date +%s)
  timeout $(( TUNE_SECONDS + 60 )) python3 -m tuner.api.cli --device gpu --trials 200 --timeout "$TUNE_SECONDS" \
    --trial-timeout 120 --output-dir "$OUT/tune" --study-name demo-gpu-tvm > "$OUT/tune.log" 2>&1
  echo "tune exit $?, wall $(( $(date +%s) - start )) s"; grep -v "^E1\|^W1" "$OUT/tune.log" | tail -25
fi
