#!/usr/bin/env bash
# The scaling run on a bigger machine that lacks the Debian packages (here: a lent 16-core box):
# machine facts, tessera's collectives against raw MPI at N = 16, scaling.py over N = 1..16 with
# the ranks x threads layouts, overlap.py at N = 2 on otherwise idle cores, and bf16 against
# float32 on one core (where the CPU has AMX, oneDNN's bf16 products use it).
#   scripts/scaling_16.sh BUNDLE.tar.xz OUT_DIR      (BUNDLE from scripts/bundle_runtime.sh)
# Needs a python3 with matplotlib on the target.
set -euo pipefail
bundle=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
{ date -u; nproc; lscpu; free -g; } >"$out/machine.txt" 2>&1
grep -m1 "model name" /proc/cpuinfo; echo "cores: $(nproc)"
export OUT_DIR=$out HERE=$here
"$here/run_bundled.sh" "$bundle" /tmp/tb-run bash -c '
  set -euo pipefail
  tessera --version
  mpirun -np 16 --bind-to core "$TB/bin/bench/collective_bench" \
    --benchmark_filter="BM_(RawMpi|Tessera)Allreduce/(8|262144|4194304)/" >"$OUT_DIR/collectives_16.txt" 2>&1 || true
  tail -8 "$OUT_DIR/collectives_16.txt"
  python3 "$HERE/scaling.py" --build "$TB/bin" --ranks "1 2 4 8 16" --steps 300 \
    --layouts "16x1 8x2 4x4 2x8 1x16" --out "$OUT_DIR"
  python3 "$HERE/overlap.py" --tessera "$TB/bin/tessera" --ranks 2 --steps 300 --repeats 3 | tee "$OUT_DIR/overlap_2.txt"
  python3 "$HERE/compare_pytorch.py" --tessera "$TB/bin/tessera" --no-torch --cores 1 --precision fp32 bf16 \
    --repeats 3 2>&1 | tee "$OUT_DIR/bf16_1core.txt"
'
