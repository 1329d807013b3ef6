#!/usr/bin/env bash
# Trains on a dataset at least 8x data.memory_budget_mb and checks every rank's peak resident
# set (VmHWM, reported by `tessera train` as peak_rss_mb, the max over ranks) stays within
#   budget + model + OVERHEAD_MB,
# where model = 4 float32 copies of the parameters (weights, gradients, two optimizer moments)
# plus 4 float32 activation buffers of the local batch, and OVERHEAD_MB (default 64) is what the
# process holds with no data at all: code, MPI, oneTBB, oneDNN, HDF5 (measured ≈ 30 MiB at N = 2).
# It also trains the same model on a file 1/8 the size: the peak must not grow with the data.
# Default: a 2 GiB file, 128 MiB budget, N = 2 (minutes). tests/cli/scale_test.sh runs it small.
#   GIB=2 BUDGET_MB=128 NP=2 FEATURES=784 HIDDEN=256 BATCH=256 scripts/data_at_scale.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
TESSERA=${TESSERA:-$HERE/build/tessera}
MIB=${MIB:-$(( ${GIB:-2} * 1024 ))}   # size of X in MiB
BUDGET_MB=${BUDGET_MB:-128}
NP=${NP:-2}
FEATURES=${FEATURES:-784}
HIDDEN=${HIDDEN:-256}
BATCH=${BATCH:-256}
OVERHEAD_MB=${OVERHEAD_MB:-64}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
WORK=${WORK:-$(mktemp -d /tmp/tessera-scale.XXXXXX)}
mkdir -p "$WORK"
KEEP=${KEEP:-0}
[[ $KEEP == 1 ]] || trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
(( MIB >= 8 * BUDGET_MB )) || { echo "FAIL: X is $MIB MiB, not 8x the $BUDGET_MB MiB budget" >&2; exit 1; }
ROWS=$(( MIB * 1048576 / (4 * FEATURES) ))

run() {  # run NAME ROWS: synth, train, print peak_rss_mb and the data wait
  local name=$1 rows=$2
  timeout 3600 mpirun --oversubscribe -np "$NP" "$TESSERA" data synth --out "$name.h5" --rows "$rows" \
    --features "$FEATURES" --classes 10 --seed 5 >/dev/null
  cat >"$name.toml" <<TOML
[data]
train = "$name.h5"
memory_budget_mb = $BUDGET_MB
[model]
hidden = [$HIDDEN]
[train]
batch_size = $BATCH
epochs = 1
log_every = 50
[checkpoint]
dir = "run-$name"
TOML
  timeout 3600 mpirun --oversubscribe -np "$NP" "$TESSERA" train "$name.toml" --quiet | grep -o '([0-9]* parameters)' |
    tr -dc 0-9 >"$name.params"
}
run big "$ROWS"
run small $(( ROWS / 8 ))
ls -l big.h5 small.h5
/usr/bin/python3 - "$BUDGET_MB" "$OVERHEAD_MB" "$FEATURES" "$HIDDEN" "$BATCH" "$NP" <<'PY'
import json, sys
budget, overhead, features, hidden, batch, np_ = (float(a) for a in sys.argv[1:])
def lines(name):
    return [json.loads(l) for l in open("run-%s/metrics.jsonl" % name)]
params = int(open("big.params").read())
local = -(-batch // np_)
model = (4 * params * 4 + 4 * local * (features + hidden + 10) * 4) / 2**20
big, small = lines("big"), lines("small")
peak, peak_small = big[-1]["peak_rss_mb"], small[-1]["peak_rss_mb"]
waits = sorted(l["data_wait_frac"] for l in big if l["event"] == "train")
read = sum(l["bytes_read"] for l in big if l["event"] == "train") / 2**20
limit = budget + model + overhead
print("data %.0f MiB read by %d ranks (file X is >= 8x the %.0f MiB budget); model %.1f MiB; overhead %.0f MiB"
      % (read, np_, budget, model, overhead))
print("peak RSS (max over ranks): %.1f MiB on the big file, %.1f MiB on a file 1/8 its size; limit %.1f MiB"
      % (peak, peak_small, limit))
print("data_wait_frac per log line: median %.4f, max %.4f" % (waits[len(waits) // 2], waits[-1]))
assert peak <= limit, "peak RSS %.1f MiB exceeds budget + model + overhead = %.1f MiB" % (peak, limit)
assert peak - peak_small <= budget / 2, "peak RSS grows with the data: %.1f vs %.1f MiB" % (peak, peak_small)
print("ok: peak resident memory within budget + model + overhead, independent of the data size")
PY
