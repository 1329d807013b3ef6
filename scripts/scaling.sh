#!/usr/bin/env bash
# Strong and weak scaling of the reference MLP (784-1024-1024-10) over N = 1, 2, 4, ... ranks x 1
# thread, with the alpha-beta cost model's prediction beside each measurement.
#   scripts/scaling.sh [--ranks "1 2 4"] [--steps 60] [--out bench/results] [--extrapolate "8 64 512 4096"]
# Writes OUT/scaling.csv (measured and predicted step time, samples/s, parallel efficiency; runs
# with more ranks than cores are flagged oversubscribed), OUT/scaling_model.csv (the model up to
# thousands of ranks) and OUT/scaling.png. The model is calibrated on this machine: compute time
# per sample from the N = 1 run, latency and bandwidth from build/bench/collective_bench at N = 2
# (assumptions: scripts/scaling.py and README "Scaling").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${TESSERA_BUILD:-$here/../build}
for exe in "$build/tessera" "$build/bench/collective_bench"; do
  [[ -x $exe ]] || { echo "scaling.sh: $exe missing: cmake --build build --target tessera collective_bench" >&2; exit 2; }
done
command -v mpirun >/dev/null || { echo "scaling.sh: mpirun not found (Debian: openmpi-bin)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
exec /usr/bin/python3 "$here/scaling.py" --build "$build" "$@"
