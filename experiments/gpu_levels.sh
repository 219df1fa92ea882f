#!/bin/bash
# experiments/bench.py on one GPU, level by level (issue 19's targets): each level's studies tune
# every workload at once, each on its share of the cores (the tuner's timing lock keeps their
# measurements apart on the shared GPU), then the side-by-side phase measures one workload at a
# time, alone on the machine (peers, the study's picks and the artifact as shipped). It runs
# detached (setsid), so that it outlives the device call that started it; later calls on the same
# warm machine wait for it and bring the results back.
#
#   bash experiments/gpu_levels.sh start   # launch, then wait like `wait`
#   bash experiments/gpu_levels.sh wait    # wait up to WAIT_SECONDS, then pack what is there
#   bash experiments/gpu_levels.sh tests   # the GPU-marked tests alone, in 3 shards, up to WAIT_SECONDS (needs part 1)
#
# Needs the packed dependencies unpacked (bash .device/partN/install.sh) and $OUT set by the device
# tool. Studies of eager, TorchScript and Inductor need no TVM: one call can carry every other wheel
# (part 2's and part 1's two small ones, 29 MiB), which saves a call and a machine start where device
# time is short (run 10): mkdir .device/notvm && cp .device/part[12]/*.whl .device/notvm/, then on
# the machine: pip install -q --no-index --no-deps --target /tmp/site .device/notvm/*.whl.
# Settings (environment):
#   LEVELS        levels in order (default "o2,o1")
#   TUNE_TOGETHER 1: every level's studies tune at once, on fewer cores each (default 0: level by level);
#                 refused below 2 cores per study
#   WORKLOADS     comma list (default "hf_bert,hf_gpt2,hf_vit,resnet50")
#   WORKLOADS_o1, WORKLOADS_o2  a level's own list instead of WORKLOADS
#   TUNE_SECONDS  each study's whole tune run, export included (default 150)
#   BACKENDS      comma list of the backends the studies search (default: every available one)
#   PEERS_o1, PEERS_o2  bench.py --peers of each level (default: every peer of the level)
#   COMPILE_LIMIT seconds each side-by-side row may compile (default 90)
#   WAIT_SECONDS  how long this call waits (default 560)
#   DATE          the results' date (default today, UTC)
# With GPT2_PROBE=1, experiments/gpt2_export_probe.py runs beside the first studies (gpt2-probe.log). The GPU-marked
# tests run in a call of their own (`tests`): beside four studies they had not finished in 420 s, and
# they overlapped the first workloads' side-by-side measurements (2026-12-06, fifth session).
# $OUT/levels.tar.gz is rewritten every 30 s and at the end: the logs, each level's results
# JSON/MD, each study's tune calls, the report and artifact.json of the artifact it wrote (the
# latter names why torch.export failed where an eager artifact fell back to a trace), and the
# workers' logs (each failed trial's whole error), and each study (its trials' compile times).
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
R=/tmp/levels-run
if [ "${1:-wait}" = start ]; then
  # A machine may be handed out again with an earlier run's files in /tmp: start clean.
  rm -rf $R && mkdir -p $R
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $R/gpu.txt
  setsid nohup bash "$0" run > $R/driver.log 2>&1 < /dev/null &
fi
if [ "${1:-wait}" = run ]; then
  DATE=${DATE:-$(date -u +%F)}
  tune_s=${TUNE_SECONDS:-150}
  IFS=',' read -r -a names <<< "${WORKLOADS:-hf_bert,hf_gpt2,hf_vit,resnet50}"
  IFS=',' read -r -a levels <<< "${LEVELS:-o2,o1}"
  # TUNE_TOGETHER=1: every level's studies tune at once (one tune phase's wall time instead of one
  # per level, on fewer cores each), then the levels are measured one after the other.
  if [ "${TUNE_TOGETHER:-0}" = 1 ]; then groups=("${levels[*]}"); else groups=("${levels[@]}"); fi
  level_names() {  # the workloads of level $1, one per line: WORKLOADS_$1, else WORKLOADS
    local var="WORKLOADS_$1"; tr ',' '\n' <<< "${!var:-${names[*]}}" | tr ' ' '\n'
  }
  nstudy=0  # the most studies that tune at once, over the groups
  for group in "${groups[@]}"; do
    n=0; for level in $group; do n=$(( n + $(level_names "$level" | wc -l) )); done
    [ $n -gt $nstudy ] && nstudy=$n
  done
  ncpu=$(nproc)
  # Fewer than 2 cores per study starves it: on an H100 (2026-12-07, run 7) ten studies on 16
  # cores ran 3-7 trials each in 180 s, and their finalists' exports gave way for time.
  if [ $(( ncpu / nstudy )) -lt 2 ]; then
    echo "$nstudy studies at once on $ncpu cores: fewer than 2 cores each; tune fewer workloads or levels at once (TUNE_TOGETHER=0)"
    exit 1
  fi
  # Two workers per study; each its part of 80 % of RAM over every study's workers.
  mem_gib=$(python3 -c "from tuner.runner.hostmem import memory_total_bytes as m; print(f'{m() / 2**30 * 0.8 / (2 * $nstudy):.1f}')")
  # GPT2_PROBE=1: whether GPT-2 exports as torch.export here, beside the studies (it times nothing
  # that is reported, but takes cores from them).
  if [ "${GPT2_PROBE:-0}" = 1 ]; then
    (timeout 420 python3 experiments/gpt2_export_probe.py > $R/gpt2-probe.log 2>&1) &
  fi
  common() {  # the bench.py arguments every phase of level $1 shares
    echo --device gpu --level "$1" --trials 200 --snapshot 200 --work-dir "$R/work-$1" \
      --results "$R/res" --tag "$1-real" --date "$DATE" --no-mlflow
  }
  for group in "${groups[@]}"; do
    read -r -a group_levels <<< "$group"
    echo "$(date -u +%T) ${group_levels[*]}: tuning $(for l in "${group_levels[@]}"; do echo "$l:" $(level_names "$l"); done) at once on $ncpu cores, $tune_s s"
    pids=(); slot=0
    for level in "${group_levels[@]}"; do
      for name in $(level_names "$level"); do
        # Study k gets cores [k*ncpu/n, (k+1)*ncpu/n): with 6 studies on 16 cores, 2 or 3 each.
        lo=$(( slot * ncpu / nstudy )); hi=$(( (slot + 1) * ncpu / nstudy - 1 )); slot=$(( slot + 1 ))
        # shellcheck disable=SC2046  # common's words are the arguments
        setsid taskset -c "$lo-$hi" python3 experiments/bench.py $(common "$level") --phase tune --workloads "$name" \
          --tune-timeout "$tune_s" --workers 2 --memory-limit "$mem_gib" ${BACKENDS:+--backends "$BACKENDS"} \
          > "$R/tune-$level-$name.log" 2>&1 < /dev/null &
        pids+=($!)
      done
    done
    wait "${pids[@]}"
    for level in "${group_levels[@]}"; do
      peers_var="PEERS_$level"; peers=${!peers_var:-}
      for name in $(level_names "$level"); do
        echo "$(date -u +%T) $level: measuring $name"
        # shellcheck disable=SC2046
        python3 experiments/bench.py $(common "$level") --phase measure --workloads "$name" ${peers:+--peers "$peers"} \
          --compile-limit "${COMPILE_LIMIT:-90}" --rounds 3 --warmup 3 --repeats 20 \
          > "$R/measure-$level-$name.log" 2>&1 < /dev/null
      done
    done
  done
  echo "$(date -u +%T) done" && touch $R/done
  exit 0
fi
if [ "${1:-wait}" = tests ]; then
  # Their collection imports MLflow, which needs part 1's importlib_metadata (on 2026-12-06, without
  # part 1, they stopped at 2 collection errors).
  [ -f /tmp/site/.part1 ] || { echo "GPU tests not run: part 1 of the packed dependencies is not installed"; exit 1; }
  # Three shards at once, by file (the GPU is shared; these tests check results, not times): alone
  # and serial they had not finished in one call's time.
  b=tests/backends_tests
  shards=("$b/test_tvm.py" "$b/test_inductor.py $b/test_cudnn.py $b/test_cuda_graph.py"
          "$b/test_eager.py $b/test_torchscript.py $b/test_channels_last.py tests/tuner_tests")
  # -v: a shard cut by the call's time still shows each test's result. Where pytest-timeout is
  # installed (the GPU image has it), a test past 240 s fails with its stack instead of holding the
  # shard: on 2026-12-07 one shard stopped inside test_cudnn.py's TorchScript case, and nothing said
  # whether it hung.
  per_test=$(python3 -c "import pytest_timeout" 2>/dev/null && echo "--timeout 240")
  for i in "${!shards[@]}"; do
    # shellcheck disable=SC2086  # each shard is a list of paths
    timeout "${WAIT_SECONDS:-560}" python3 -m pytest -v -p no:cacheprovider -m gpu -rfs --durations=10 $per_test \
      ${shards[$i]} > "$OUT/gpu-tests-$i.log" 2>&1 &
  done
  wait
  grep -h -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed" "$OUT"/gpu-tests-*.log
  exit 0
fi
pack() {  # small files only: no built artifacts (a BERT export alone is 400 MB)
  (cd $R && { find . -maxdepth 1 -type f; find ./res -type f
     find . \( -name bench_tune_calls.json -o -name report.json -o -name best_config.json -o -name artifact.json -o -name study.db \) \
       -not -path '*/cache/*'; find . -path '*/workers/*.log' -size -2M; } \
   | tar -czf "$OUT/.levels.tar.gz" -T -) 2>/dev/null && mv "$OUT/.levels.tar.gz" "$OUT/levels.tar.gz"
}
end=$(( $(date +%s) + ${WAIT_SECONDS:-560} ))
while [ ! -f $R/done ] && [ "$(date +%s)" -lt $end ]; do
  sleep 30; pack
done
pack
cat $R/driver.log
for l in $R/*.log; do echo "== $l"; grep -v "^E1\|^W1\|Warning\|warn(" "$l" | tail -6; done
[ -f $R/done ] && echo "ALL DONE" || echo "STILL RUNNING"
