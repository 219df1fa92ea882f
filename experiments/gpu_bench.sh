#!/bin/bash
# experiments/bench.py on the GPU machine: one bench.py process per GPU, each on its own group of
# workloads, its own share of the cores and its own work dir, running in the background (setsid)
# so that it outlives the device call that started it; later calls on the same warm machine wait
# for it and bring the results back (README, "Benchmarks").
#
#   bash experiments/gpu_bench.sh start   # launch, then wait like `wait`
#   bash experiments/gpu_bench.sh wait    # wait up to WAIT_SECONDS, then pack what is there
#
# Needs the packed dependencies unpacked (bash .device/partN/install.sh) and $OUT set by the device
# tool. The PyTorch workloads' test data is made there from their seeded factories (no carry);
# tf_asr needs prepared files (BENCH_DATA, carried) and runs there through TVM only.
#   BENCH_GROUPS  workload groups, one per GPU, ';'-separated (default "demo,mlp;bert,resnet")
#   TUNE_SECONDS  each workload's trial-loop limit in seconds (default 330)
#   WAIT_SECONDS  how long this call waits for the runs (default 560)
#   COMPILE_LIMIT seconds each side-by-side row may compile (default 600: on 2026-11-30 the ResNet's
#                 torch.compile max-autotune peer compiled for over 20 minutes and held up the run)
#   BENCH_DATA    prepared workload files, carried to the machine (bench.py --data), for the group
#                 with tf_asr: prepare its other workloads there too (--prepare DIR --workloads tf_asr,mlp)
#   ROUNDS        alternating side-by-side rounds per workload (default 5: each row's figure is its
#                 fastest round, and on a host whose other group is compiling some rounds are slow;
#                 on 2026-11-30 the demo's eager rounds were 6.1, 10.1 and 8.7 ms of 3)
#   BENCH_ARGS    more bench.py arguments
#   DATE          the results' date (default today, UTC)
# Every 30 s, and at the end, $OUT/bench.tar.gz is rewritten with the logs, the results JSON/MD
# and plots of each group, its studies and its MLflow store; merge the groups' JSON here with
# `python experiments/bench_report.py DEST.json GROUP.json...`.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
R=/tmp/bench-run
mode=${1:-wait}
if [ "$mode" = start ]; then
  mkdir -p $R
  DATE=${DATE:-$(date -u +%F)}
  IFS=';' read -r -a groups <<< "${BENCH_GROUPS:-demo,mlp;bert,resnet}"
  ngpu=$(nvidia-smi -L | wc -l); ncpu=$(nproc)
  per=$(( ncpu / ${#groups[@]} ))
  # Each tuner would give its workers 80 % of the host's RAM; the groups share the host, so each
  # worker gets its part of 80 % of RAM over every group's workers (8 each: the tuner's default on
  # 16 cores). On 2026-11-30, without this, two groups' limits added up to 1.6x the RAM, and
  # workers died of SIGKILL near the studies' ends (the sender was not established).
  # (The RAM is the host's, or the container's memory cgroup limit where lower: tuner.runner.hostmem.)
  mem_gib=$(python3 -c "from tuner.runner.hostmem import memory_total_bytes as m; print(f'{m() / 2**30 * 0.8 / (8 * ${#groups[@]}):.1f}')")
  nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader | tee $R/gpus.txt
  for i in "${!groups[@]}"; do
    gpu=$(( i % ngpu )); lo=$(( i * per )); hi=$(( lo + per - 1 ))
    data=()  # prepared files for the group with tf_asr (the others make their data there)
    [[ ",${groups[$i]}," == *,tf_asr,* && -n "${BENCH_DATA:-}" ]] && data=(--data "$BENCH_DATA")
    echo "group $i: ${groups[$i]} on GPU $gpu, cores $lo-$hi, $mem_gib GiB per worker ${data[*]}" | tee -a $R/groups.txt
    # shellcheck disable=SC2086
    CUDA_VISIBLE_DEVICES=$gpu setsid nohup taskset -c "$lo-$hi" python3 experiments/bench.py --device gpu \
      --workloads "${groups[$i]}" --trials 200 --snapshot 50 --tune-timeout "${TUNE_SECONDS:-330}" \
      --memory-limit "$mem_gib" --compile-limit "${COMPILE_LIMIT:-600}" --rounds "${ROUNDS:-5}" --work-dir $R/work$i --results $R/res$i --date "$DATE" "${data[@]}" ${BENCH_ARGS:-} \
      > $R/group$i.log 2>&1 < /dev/null &
    echo $! > $R/group$i.pid
  done
  setsid nohup nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv -l 15 \
    > $R/nvidia-smi.csv 2>&1 < /dev/null &
fi
pack() {  # small files only: no built artifacts (a BERT export alone is 400 MB)
  (cd $R && { find . -maxdepth 1 -type f; find . -path './res*' -type f
     find . \( -name study.db -o -name mlflow.db -o -name '*.json' -o -name '*.md' \) -not -path '*/cache/*' \
       -not -path '*/best*' -not -path '*/mlartifacts/*' -not -path './res*'; } \
   | tar -czf "$OUT/.bench.tar.gz" -T -) 2>/dev/null && mv "$OUT/.bench.tar.gz" "$OUT/bench.tar.gz"
}
running() { for p in $R/group*.pid; do kill -0 "$(cat "$p")" 2>/dev/null && return 0; done; return 1; }
end=$(( $(date +%s) + ${WAIT_SECONDS:-560} ))
while running && [ "$(date +%s)" -lt $end ]; do
  sleep 30; pack
done
pack
for l in $R/group*.log; do
  echo "== $l"; grep -v "^E1\|^W1\|Warning\|warn(" "$l" | tail -15
done
running && echo "STILL RUNNING" || echo "ALL DONE"
ls -la "$OUT"
