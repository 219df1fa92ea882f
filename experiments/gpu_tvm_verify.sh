#!/bin/bash
# GPU verification of the tvm backend in one device call (after bash .device/partN/install.sh):
# the tvm GPU tests (static/dynamic, CUDA graphs + cuBLAS refusal + fp16, MetaSchedule reuse), where a
# GPU build's time goes (experiments/tvm_build_phases.py), and the MetaSchedule builders side by side
# with the tuner's first. Everything under $OUT.  TESTS_SECONDS (240), PHASES_SECONDS (100),
# BUILDER_SECONDS (120).
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT/results"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, tvm; print('torch', torch.__version__, 'tvm', tvm.__version__)" | tee -a "$OUT/gpu.txt"
echo "== tvm GPU tests"; t0=$(date +%s)
timeout "${TESTS_SECONDS:-240}" python3 -X faulthandler -m pytest -v -m gpu -p no:cacheprovider --tb=short \
  --durations=0 tests/backends_tests/test_tvm.py > "$OUT/gpu-tests.log" 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"
grep -E "PASSED|FAILED|ERROR|passed|failed|Fatal|Segmentation|^E |s call" "$OUT/gpu-tests.log" | head -30
echo "== build phases"
timeout "${PHASES_SECONDS:-100}" python3 experiments/tvm_build_phases.py --device gpu --rounds 2 \
  --json "$OUT/results/tvm-build-phases-gpu.json" 2>&1 | grep '^{' 
echo "== MetaSchedule builders (tuner's first)"
timeout "${BUILDER_SECONDS:-120}" python3 experiments/bench_tvm_builder.py --device gpu --batches 2 --top-k 2 \
  --warm-first --json "$OUT/results/builders-gpu.json" 2>&1 | grep -v "Warning\|warn\|cls.__new__" | tail -8
