#!/bin/bash
# The GPU check of the real-model workloads (experiments/real_models.py: tune as a user runs it,
# every workload and level at once, each on its share of the cores) and of an AOTInductor
# package's load in a bare fresh process (the GPU test, and experiments/aoti_load_libs.py), in
# one device call after the packed dependencies:
#
#   bash .device/part2/install.sh && TIMEOUT=180 bash experiments/gpu_real_models.sh
#
# Without part 1 (TVM's compiler library) TVM is left out. Results: $OUT/<date>-<TAG>-real-models.json,
# $OUT/real-models.tgz (each run's command, report and log), $OUT/aoti-*.txt.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
[ -f /tmp/site/.part1 ] || rm -rf /tmp/site/tvm
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 experiments/real_models.py start --dir /tmp/rm --timeout "${TIMEOUT:-180}" --parallel "${PARALLEL:-8}" \
    --levels "${LEVELS:-o1,o2}"
( timeout 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/backends_tests/test_inductor.py -k bare \
    > "$OUT/aoti-test.txt" 2>&1
  timeout 100 python3 experiments/aoti_load_libs.py --device gpu > "$OUT/aoti-libs.txt" 2>&1 ) &
python3 experiments/real_models.py wait --dir /tmp/rm --seconds "${WAIT:-270}" --out "$OUT" --tag "${TAG:-gpu}"
wait
tail -3 "$OUT/aoti-test.txt"; grep -E "preload|== ldd" "$OUT/aoti-libs.txt"
cd /tmp/rm && tar czf "$OUT/real-models.tgz" $(find . -name report.json -o -name run.json -o -name command.txt \
  -o -name tune.log)
