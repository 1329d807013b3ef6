#!/usr/bin/env bash
# The scaling run on a bigger machine that lacks the Debian packages (here: a lent 16-core box):
# machine facts, scaling.py over N = 1..16 (strong, weak, weak's N independent 1-rank runs side
# by side, the ranks x threads layouts), then tessera's collectives against raw MPI at N = 16.
# Each part writes its files into OUT_DIR as it finishes, so a run cut short keeps what it did.
#   scripts/scaling_16.sh BUNDLE.tar.xz OUT_DIR [STEPS]      (BUNDLE from scripts/bundle_runtime.sh)
# Needs a python3 with matplotlib on the target.
set -euo pipefail
bundle=$1 out=$2 steps=${3:-300}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
# lscpu and free may be missing there: /proc then.
{ date -u; nproc; lscpu || head -30 /proc/cpuinfo; free -g || head -3 /proc/meminfo; } >"$out/machine.txt" 2>&1 || true
grep -m1 "model name" /proc/cpuinfo; echo "cores: $(nproc)"
export OUT_DIR=$out HERE=$here STEPS=$steps
"$here/run_bundled.sh" "$bundle" /tmp/tb-run bash -c '
  set -euo pipefail
  tessera --version
  python3 -u "$HERE/scaling.py" --build "$TB/bin" --ranks "1 2 4 8 16" --steps "$STEPS" \
    --layouts "16x1 8x2 4x4 2x8 1x16" --out "$OUT_DIR" 2>&1 | tee "$OUT_DIR/scaling_log.txt"
  mpirun -np 16 --bind-to core "$TB/bin/bench/collective_bench" --benchmark_color=false \
    --benchmark_filter="BM_(RawMpi|Tessera)Allreduce/(8|262144|4194304)/" >"$OUT_DIR/collectives_16.txt" 2>&1 || true
  tail -8 "$OUT_DIR/collectives_16.txt"
'
