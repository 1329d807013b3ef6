#!/usr/bin/env bash
# The distributed guards at N = 2 (distributed.timeout_s = 5): a stopped rank, a killed rank
# and a deliberately mismatched collective end the job within timeout_s + 30 s with a message
# naming the rank; a NaN injected on one rank stops every rank before the optimizer step (or
# is skipped with train.non_finite = "skip"); overlapped reduction gives the same bytes as the
# reduction after backward, with 1 or 2 threads, and two runs give the same bytes.
# Faults use the test-only hook TESSERA_TEST_FAULT=KIND:RANK:STEP (core/trainer.h).
source "$(dirname "$0")/lib.sh"

"$TESSERA" data synth --out d.h5 --rows 4000 --features 20 --classes 4 --seed 1 >/dev/null
write_config c.toml d.h5
printf '[distributed]\ntimeout_s = 5\nbucket_mb = 0.002\n' >> c.toml
# 256-128: the 132 KB layer-1 piece goes by ring (≥ 64 KiB), the others by MPI_Iallreduce.
sed -i 's/hidden = \[16\]/hidden = [256, 128]/' c.toml
LONG=(--set train.epochs=100000 --quiet)

# pid of rank R of the run whose command line holds DIR.
rank_pid() {
  local p
  for p in $(pgrep -f -- "$TESSERA train"); do
    if grep -q -- "$2" "/proc/$p/cmdline" 2>/dev/null && tr '\0' '\n' <"/proc/$p/environ" | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$p"
    fi
  done
}

# signal_rank SIG RANK EXPECTED_RC PATTERN [mpirun options]: train, send SIG to RANK once
# training runs, and check the exit status, the message and the time taken.
signal_rank() {
  local sig=$1 victim=$2 want=$3 pattern=$4; shift 4
  local dir=sig$sig$RANDOM rc=0 pid="" start end
  start=$(date +%s)
  timeout 120 mpirun --oversubscribe "$@" -np 2 "$TESSERA" train c.toml "${LONG[@]}" --set checkpoint.dir=$dir \
    >out.txt 2>err.txt &
  local job=$!
  for _ in $(seq 100); do
    [[ -s $dir/metrics.jsonl ]] && pid=$(rank_pid "$victim" "$dir") && [[ -n $pid ]] && break
    sleep 0.1
  done
  [[ -n $pid ]] || fail "SIG$sig: rank $victim never started training"
  kill -"$sig" "$pid"
  wait "$job" || rc=$?
  end=$(date +%s)
  [[ $rc -eq 124 ]] && fail "SIG$sig: the job hung"
  [[ $rc -eq $want ]] || { cat err.txt >&2; fail "SIG$sig: expected exit $want, got $rc"; }
  grep -Eq -- "$pattern" err.txt || { cat err.txt >&2; fail "SIG$sig: stderr lacks /$pattern/"; }
  (( end - start <= 5 + 30 )) || fail "SIG$sig: took $((end - start)) s, more than timeout_s + 30"
  pgrep -f -- "$dir" >/dev/null && fail "SIG$sig: ranks still running after mpirun exited"
  echo "ok: SIG$sig rank $victim -> exit $rc in $((end - start)) s /$pattern/ $*"
}

# A stopped rank: the other's collective times out and names it; mpirun ends the stopped one.
signal_rank STOP 1 5 "\[rank 0\] collective timed out at step [0-9]+: .* rank\(s\) 1 did not arrive"
signal_rank STOP 0 5 "\[rank 1\] collective timed out at step [0-9]+: .* rank\(s\) 0 did not arrive"
# A killed rank: OpenMPI's mpirun ends the job itself at once, naming the rank, with the killed
# process's status (128 + 9); tessera cannot change that status.
signal_rank KILL 1 137 "process rank 1 .*exited on signal 9"
# Told not to, mpirun leaves the survivor to tessera's timeout, which names the dead rank.
signal_rank KILL 1 137 "\[rank 0\] collective timed out.* rank\(s\) 1 did not arrive" --mca orte_abort_on_non_zero_status 0

# A mismatched collective: rank 1 issues one allreduce the other rank does not. OpenMPI's
# non-blocking engine fails the truncated receive and crashes; tessera reports it, exit 5.
export TESSERA_TEST_FAULT=extra_collective:1:7
expect_exit 5 "\[rank 1\] .*inside allreduce_sum\(double\) of 3 elements .*step 7.*different sizes" 2 train c.toml "${LONG[@]}"
# A same-size mismatch (rank 1 takes a max where rank 0 sums as many bytes): MPI completes it;
# the collective-sequence fingerprint on that step's stats reduction stops every rank.
export TESSERA_TEST_FAULT=other_op:1:9
expect_exit 5 "ranks issued different collectives: .* rank\(s\) 1 differs from rank 0's by step 9" 2 train c.toml "${LONG[@]}"
# The hook is refused when malformed, so a typo cannot silently test nothing.
export TESSERA_TEST_FAULT=nan:one:7
expect_exit 2 "TESSERA_TEST_FAULT='nan:one:7'" 1 train c.toml --quiet

# NaN in rank 1's gradient at step 7: every rank stops before the optimizer step; with skip,
# step 7 changes no weight on any rank.
nan_stop_and_skip 2 c.toml
echo "ok: NaN stop and skip"

# Overlap: same bytes as reducing after backward (same pieces), and run to run, at N = 2 and 4.
for n in 2 4; do
  tess $n train c.toml --quiet --set checkpoint.dir=ov$n >/dev/null
  tess $n train c.toml --quiet --set checkpoint.dir=ov${n}b >/dev/null
  tess $n train c.toml --quiet --set checkpoint.dir=noov$n --set distributed.overlap=false >/dev/null
  cmp ov$n/model.h5 ov${n}b/model.h5 || fail "two overlapped runs at N=$n differ"
  cmp ov$n/model.h5 noov$n/model.h5 || fail "overlap on and off differ at N=$n"
done
# Layers of 600 and 300 rows: several weight-gradient row tiles each, so pieces start from inside
# the GEMMs (some on oneTBB workers with 2 threads): the same bytes with overlap on or off and
# with 1 or 2 threads per rank.
sed 's/hidden = \[256, 128\]/hidden = [600, 300]/' c.toml > split.toml
for v in "on1 true 1" "on2 true 2" "off2 false 2"; do
  set -- $v
  tess 2 train split.toml --quiet --set checkpoint.dir=split_$1 --set distributed.overlap=$2 \
    --set train.threads=$3 --set train.max_steps=30 >/dev/null
done
cmp split_on1/model.h5 split_on2/model.h5 || fail "1 and 2 threads differ with pieces inside layers"
cmp split_on1/model.h5 split_off2/model.h5 || fail "overlap on and off differ with pieces inside layers"
echo "ok: overlap on/off and 1/2 threads give the same bytes at N=2"
/usr/bin/python3 - <<'PY'
import json
lines = [json.loads(l) for l in open("ov4/metrics.jsonl") if '"train"' in l]
for o in lines:
    assert o["compute_s"] > 0 and o["data_wait_s"] >= 0 and o["comm_wait_s"] >= 0, o
    ranks = [s["rank"] for s in o["slowest_ranks"]]
    assert len(ranks) == 3 and len(set(ranks)) == 3 and all(0 <= r < 4 for r in ranks), o
    assert o["slowest_ranks"][0]["behind_median_s"] >= o["slowest_ranks"][-1]["behind_median_s"] >= 0, o
print("ok: rank timing fields")
PY
echo "guard tests passed"
