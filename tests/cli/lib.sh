# Shared helpers for the CLI end-to-end tests. Each test runs in a fresh temp directory and
# fails loudly: `fail` prints the reason and exits 1.
set -euo pipefail
: "${TESSERA:?set TESSERA to the tessera binary}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
WORK=$(mktemp -d /tmp/tessera-test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }

# tess N args...: tessera under mpirun with N ranks, with a hang guard.
tess() {
  local n=$1; shift
  timeout 240 mpirun --oversubscribe -np "$n" "$TESSERA" "$@"
}

# kill_session SID: SIGKILL to every process of session SID at once — a job started with
# `setsid mpirun ... &` (Open MPI puts each rank in its own process group, but all stay in the
# session) — like a node failure; returns once they are all gone.
kill_session() {
  local pids i=0
  while pids=$(ps -o pid= -s "$1" 2>/dev/null) && [[ -n "$pids" ]] && (( i++ < 100 )); do
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    sleep 0.05
  done
}

# expect_exit CODE PATTERN N args...: the command must exit with CODE (not hang) and print
# PATTERN (a grep -E regex) on stderr.
expect_exit() {
  local code=$1 pattern=$2; shift 2
  local rc=0
  tess "$@" >out.txt 2>err.txt || rc=$?
  [[ $rc -eq 124 ]] && fail "timed out (hang) on: $*"
  [[ $rc -eq $code ]] || { cat err.txt >&2; fail "expected exit $code, got $rc: $*"; }
  grep -Eq -- "$pattern" err.txt || { cat err.txt >&2; fail "stderr lacks /$pattern/: $*"; }
  echo "ok: exit $code /$pattern/ <- $*"
}

# json_field FILE EVENT FIELD: FIELD of the last line of FILE whose event is EVENT.
json_field() {
  /usr/bin/python3 -c '
import json, sys
val = None
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o.get("event") == sys.argv[2]:
        val = o[sys.argv[3]]
print(repr(val))' "$@"
}

write_config() {  # write_config FILE TRAIN [extra [data] lines...]
  local file=$1 train=$2; shift 2
  {
    echo "[data]"; echo "train = \"$train\""
    for l in "$@"; do echo "$l"; done
    echo "[model]"; echo "kind = \"mlp\""; echo "hidden = [16]"
    echo "[optimizer]"; echo "lr = 0.1"; echo "momentum = 0.9"
    echo "[train]"; echo "batch_size = 60"; echo "epochs = 1"; echo "log_every = 5"
    echo "[checkpoint]"; echo "dir = \"run\""
  } >"$file"
}

# nan_stop_and_skip N CONFIG: a NaN injected into the last rank's gradient at step 7 stops every
# rank before the optimizer step (exit 1 naming the rank, no model.h5); with train.non_finite =
# "skip", 8 steps with step 7 skipped are the bytes of 7 plain steps, and the skip is counted.
nan_stop_and_skip() {
  local n=$1 config=$2 rank=$(( $1 - 1 ))
  export TESSERA_TEST_FAULT=nan:$rank:7
  expect_exit 1 "training diverged: NaN or infinity in the loss or gradients on rank\(s\) $rank at step 7" "$n" \
    train "$config" --quiet --set checkpoint.dir=nanrun
  [[ ! -e nanrun/model.h5 ]] || fail "a stopped run wrote model.h5"
  tess "$n" train "$config" --quiet --set train.max_steps=8 --set train.non_finite=skip --set checkpoint.dir=skip8 >/dev/null
  unset TESSERA_TEST_FAULT
  tess "$n" train "$config" --quiet --set train.max_steps=7 --set checkpoint.dir=plain7 >/dev/null
  cmp skip8/model.h5 plain7/model.h5 || fail "a skipped step changed the weights (N=$n)"
  [[ $(json_field skip8/metrics.jsonl train skipped_steps) == 1 ]] || fail "skipped step not counted (N=$n)"
}
