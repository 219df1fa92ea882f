#!/bin/bash
# `tune --trials 200 --device gpu` on the demo, timed across device calls: each call runs the study
# for at most TUNE_SECONDS (then SIGINT: the best so far is written), and the next call with the
# same TUNE_DIR continues the study from its storage. EXTRA_ARGS go to tune (e.g. "--workers 4").
# The study DB, report and log come back under $OUT; experiments/study_timeline.py reads the DB.
#   TUNE_SECONDS (500), TUNE_DIR (/tmp/tune-gpu), STUDY (demo-gpu-200), EXTRA_ARGS ("")
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
DIR=${TUNE_DIR:-/tmp/tune-gpu}; STUDY=${STUDY:-demo-gpu-200}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
start=$(date +%s)
# shellcheck disable=SC2086
timeout -s INT -k 60 "${TUNE_SECONDS:-500}" python3 -m tuner.api.cli --device gpu --trials 200 --output-dir "$DIR" \
  --study-name "$STUDY" ${EXTRA_ARGS:-} > "$OUT/tune.log" 2>&1
echo "tune exit $?, wall $(( $(date +%s) - start )) s"
grep -v "^E1\|^W1\|Warning\|warn(" "$OUT/tune.log" | tail -14
cp "$DIR/study.db" "$OUT/" 2>/dev/null
cp "$DIR/$STUDY/best/report.json" "$DIR/$STUDY/best/best_config.json" "$OUT/" 2>/dev/null
python3 experiments/study_timeline.py "$OUT/study.db" "$STUDY" --json "$OUT/timeline.json" | tr -d "\n " ; echo
