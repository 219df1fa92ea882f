#!/bin/bash
# The tvm backend's GPU figures in one device call (after bash .device/partN/install.sh):
# the side-by-side bench at batch 8 (eager, peers, TVM configs), the tvm GPU tests, and the
# MetaSchedule builders side by side. Output under $OUT.
#   BENCH_SECONDS (default 300), TESTS_SECONDS (default 150), BUILDER_SECONDS (default 100)
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT/results"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, tvm; print('torch', torch.__version__, 'tvm', tvm.__version__)" | tee -a "$OUT/gpu.txt"
echo "== side by side, batch 8"
timeout "${BENCH_SECONDS:-300}" python3 experiments/bench_demo.py --device gpu --tvm --batch 8 --rounds 3 \
  --cache-dir "$OUT/cache" --out "$OUT/results" --tag tvm-b8 \
  --command "experiments/bench_demo.py --device gpu --tvm --batch 8 --rounds 3" > "$OUT/bench.log" 2>&1
echo "bench exit $?"; grep -v "^W1\|^E1\|Warning\|warn" "$OUT/bench.log" | tail -40
echo "== tvm GPU tests"
timeout "${TESTS_SECONDS:-150}" python3 -X faulthandler -m pytest -v -m gpu -p no:cacheprovider \
  tests/backends_tests/test_tvm.py > "$OUT/gpu-tests.log" 2>&1
echo "pytest exit $?"; grep -E "PASSED|FAILED|ERROR|passed|failed|Fatal|Segmentation|^E " "$OUT/gpu-tests.log" | head -30
echo "== MetaSchedule builders"
timeout "${BUILDER_SECONDS:-100}" python3 experiments/bench_tvm_builder.py --device gpu --batches 2 --top-k 4 \
  --json "$OUT/results/builders-gpu.json" 2>&1 | grep -v "Warning\|warn" | tail -8
