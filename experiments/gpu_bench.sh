#!/bin/bash
# experiments/bench.py on the GPU machine, one workload (or one phase) per device call (README,
# "Benchmarks"). Needs the packed dependencies unpacked (bash .device/partN/install.sh), the
# prepared files of the workload carried (carry: ["bench-data/manifest.json", "bench-data/<workload>"])
# and $OUT set by the device tool.
#   WORKLOADS     comma list (default mlp)
#   PHASE         all | tune | measure (default all)
#   TUNE_SECONDS  the trial loop's limit in this call (default 420); the next call continues the study
#   BENCH_ARGS    more bench.py arguments (e.g. "--workers 8")
#   DATE          the results' date (default today, UTC): keep it across the calls of one run
# The study lives in /tmp/bench-work (kept while the machine stays warm; its study.db also comes
# back under $OUT); results merge into experiments/results/<date>-h100.{json,md} of the working
# tree copy, which the lead copies back from $OUT and commits before the next call.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
W=${WORKLOADS:-mlp}; DATE=${DATE:-$(date -u +%F)}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
# bench.py names its files after the GPU (experiments/floor.py's table): h100, h200, else gpu.
tag=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -o -i 'h[12]00' | tr 'A-Z' 'a-z')
tag=${tag:-gpu}
start=$(date +%s)
# shellcheck disable=SC2086
python3 experiments/bench.py --data bench-data --device gpu --workloads "$W" --phase "${PHASE:-all}" \
  --trials 200 --snapshot 50 --tune-timeout "${TUNE_SECONDS:-420}" --work-dir /tmp/bench-work \
  --results experiments/results --date "$DATE" ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
echo "bench exit $?, wall $(( $(date +%s) - start )) s"
grep -v "^E1\|^W1\|Warning\|warn(" "$OUT/bench.log" | tail -40
# At most 8 files come back: the results, this call's plots and studies.
stem=experiments/results/$DATE-$tag
cp "$stem.json" "$stem.md" "$OUT/" 2>/dev/null
for w in ${W//,/ }; do
  cp "$stem-$w-convergence.png" "$OUT/" 2>/dev/null
  cp "/tmp/bench-work/$tag/$w/study.db" "$OUT/$w-study.db" 2>/dev/null
done
ls "$OUT"
