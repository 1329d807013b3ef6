#!/usr/bin/env bash
# Checkpoints (DESIGN §5, issue 6): exact resume at the same N (byte-identical model.h5, metrics
# without duplicated steps), resume at another N (same loss curve within 1e-5), keep_last,
# permissions, and exit 4 naming the part for a flipped byte, a truncated part, a missing
# MANIFEST, an incomplete (temp-only) checkpoint, another model's checkpoint, changed data and
# a changed config — never a silent fallback. Then a short SIGKILL recovery run.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"

"$TESSERA" data synth --out train.h5 --rows 3000 --features 12 --classes 4 --seed 9 --chunk-rows 200 >/dev/null
"$TESSERA" data synth --out val.h5 --rows 400 --features 12 --classes 4 --seed 9 --first-row 3000 >/dev/null
write_config c.toml train.h5 'validation = "val.h5"'
sed -i 's/epochs = 1/epochs = 3/; s/log_every = 5/log_every = 7\neval_every = 20/' c.toml
printf 'every_steps = 10\nkeep_last = 2\n' >>c.toml   # [checkpoint] is the last table

# The reference run, never interrupted: 150 steps at N = 2.
tess 2 train c.toml --quiet --set checkpoint.dir=ref2 >/dev/null

# run_until DIR N STEP: trains at N ranks in DIR and kills the whole job (SIGKILL, every
# process) once LATEST names step STEP — an interrupted run, mid-epoch. Rank 0 stalls 5 steps
# later (the test-only hook), so the kill lands between those checkpoints however slowly this
# loop polls on a loaded machine.
run_until() {
  local dir=$1 n=$2 stop=$3
  TESSERA_TEST_FAULT=stall:0:$((stop + 5)) \
    setsid mpirun --oversubscribe -np "$n" "$TESSERA" train c.toml --quiet --set checkpoint.dir="$dir" >/dev/null 2>&1 &
  local job=$! i=0
  while (( i++ < 600 )); do
    local s; s=$(sed -n 's/^step-0*\([0-9][0-9]*\)$/\1/p' "$dir/checkpoints/LATEST" 2>/dev/null || true)
    [[ -n "$s" ]] && (( s >= stop )) && break
    sleep 0.02
  done
  kill_session "$job"
  { wait "$job"; } 2>/dev/null || true
  [[ ! -e "$dir/model.h5" ]] || fail "run $dir finished before it was killed (raise the step count)"
}

# Same N: interrupted at step >= 40, resumed with --resume auto: byte-identical model.h5.
run_until run2 2 40
tess 2 train c.toml --quiet --set checkpoint.dir=run2 >resume.txt
grep -q "resuming from .*run2/checkpoints/step-" resume.txt || fail "auto did not resume"
cmp ref2/model.h5 run2/model.h5 || fail "resumed run's model.h5 differs from the uninterrupted run's"
echo "ok: resumed at the same N, model.h5 byte-identical"

# Written at N = 2, resumed at N = 4.
run_until run24 2 50
tess 4 train c.toml --quiet --set checkpoint.dir=run24 >resume.txt
grep -q "resuming from" resume.txt || fail "N=4 did not resume the N=2 checkpoint"

/usr/bin/python3 - <<'PY'
import json
def rows(d):
    return [json.loads(l) for l in open(d + "/metrics.jsonl")]
def curve(d):
    return [(o["event"], o["step"], o.get("split"), o["loss"]) for o in rows(d) if o["event"] in ("train", "eval")]
ref2, got2 = curve("ref2"), curve("run2")
assert got2 == ref2, ("same-N resume: metrics differ", [(a, b) for a, b in zip(got2, ref2) if a != b][:3], len(got2), len(ref2))
steps = [o["step"] for o in rows("run2") if o["event"] == "train"]
assert len(steps) == len(set(steps)), "duplicated training steps in metrics.jsonl"
assert sum(o["event"] == "done" for o in rows("run2")) == 1
got, ref = curve("run24"), curve("ref2")
assert [x[:3] for x in got] == [x[:3] for x in ref], "N=2->4 resume: not the same steps"
worst = max(abs(a[3] - b[3]) / abs(b[3]) for a, b in zip(got, ref))
assert worst <= 1e-5, worst
print(f"ok: metrics continue without duplicates; N=2 -> 4 loss curve within {worst:.1e} relative of N=2")
PY

# keep_last = 2 committed checkpoints; LATEST names the last; nothing group/other-writable.
[[ $(ls -d ref2/checkpoints/step-* | wc -l) -eq 2 ]] || fail "keep_last = 2 not honoured: $(ls ref2/checkpoints)"
[[ $(cat ref2/checkpoints/LATEST) == step-000150 ]] || fail "LATEST: $(cat ref2/checkpoints/LATEST)"
bad=$(find ref2 run2 \( -perm -g+w -o -perm -o+w \) -print)
[[ -z "$bad" ]] || fail "group/other-writable: $bad"
"$TESSERA" checkpoint inspect ref2 >inspect.txt || fail "inspect of a good run failed"
grep -q "verdict: OK" inspect.txt || fail "inspect: no OK verdict"
grep -q "step 150 (epoch 3, step 0 of 50), written by 2 rank(s)" inspect.txt || fail "inspect: no step facts"
grep -q '"train_data_fingerprint":"sha256:' inspect.txt || fail "inspect: no provenance"
# eval takes a checkpoint directory (verified in full) like a model file.
tess 2 eval c.toml --checkpoint ref2/checkpoints/step-000150 >a.json
tess 2 eval c.toml --checkpoint ref2/model.h5 >b.json
[[ "$(sed 's/"model".*"data"//' a.json)" == "$(sed 's/"model".*"data"//' b.json)" ]] || fail "eval of the last checkpoint differs from model.h5"
echo "ok: keep_last, LATEST, permissions, inspect, eval of a checkpoint"

# Damaged checkpoints: each is the LATEST of a copy of run2, resumed with --resume auto.
# broken NAME: a copy of the interrupted run whose latest checkpoint is then damaged.
run_until base 2 30
broken() {
  rm -rf "$1"; cp -r base "$1"
  echo "$1/checkpoints/$(cat "$1/checkpoints/LATEST")"
}
d=$(broken flip)
/usr/bin/python3 - "$d/model.h5" <<'PY'
import sys, h5py
p = sys.argv[1]
w = h5py.File(p, "r")["layers.0.weight"][()]
raw = bytearray(open(p, "rb").read())
raw[raw.find(w.tobytes()[:16]) + 2] ^= 0x10
open(p, "wb").write(raw)
PY
expect_exit 4 "step-0000[0-9]+: part model.h5 checksum mismatch" 2 train c.toml --set checkpoint.dir=flip
rc=0; "$TESSERA" checkpoint inspect "$d" >out.txt || rc=$?
[[ $rc -eq 4 ]] || fail "inspect of a tampered checkpoint exited $rc, not 4"
grep -q "verdict: FAILED: .*part model.h5 checksum mismatch" out.txt || fail "inspect printed no FAILED verdict"
d=$(broken trunc)
truncate -s 1000 "$d/optimizer.h5"
expect_exit 4 "part optimizer.h5 has 1000 bytes, MANIFEST says [0-9]+ \(truncated\)" 2 train c.toml --set checkpoint.dir=trunc
d=$(broken nomanifest)
rm "$d/MANIFEST"
expect_exit 4 "incomplete checkpoint: part MANIFEST is missing" 2 train c.toml --set checkpoint.dir=nomanifest
d=$(broken editmanifest)
sed -i 's/^step \([0-9]*\)$/step 1\1/' "$d/MANIFEST"
expect_exit 4 "MANIFEST checksum mismatch" 2 train c.toml --set checkpoint.dir=editmanifest
d=$(broken temp)
mv "$d" "$(dirname "$d")/.tmp-$(basename "$d")"
expect_exit 4 "LATEST: names .*, which is missing" 2 train c.toml --set checkpoint.dir=temp
expect_exit 4 "incomplete checkpoint: a temporary directory that was never committed" 2 train c.toml --set checkpoint.dir=fresh --resume "$(dirname "$d")/.tmp-$(basename "$d")"
[[ ! -e fresh ]] || fail "a refused resume still created its run directory"
# Another model's checkpoint, changed data, changed config.
tess 1 train c.toml --quiet --set checkpoint.dir=wide --set 'model.hidden=[20]' --set train.max_steps=6 >/dev/null
expect_exit 4 "part model.h5 is a checkpoint of another model: mlp 12-20-4 .*the config builds mlp 12-16-4" 2 train c.toml --set checkpoint.dir=x1 --resume wide
"$TESSERA" data synth --out other.h5 --rows 3000 --features 12 --classes 4 --seed 10 --chunk-rows 200 >/dev/null
expect_exit 4 "the training data changed since this checkpoint.*--warm-start" 2 train c.toml --set checkpoint.dir=x2 --set data.train=other.h5 --resume base
expect_exit 4 "part config.toml does not match the config: optimizer.lr: 0.1 in the checkpoint, 0.05 now" 2 train c.toml --set checkpoint.dir=x3 --set optimizer.lr=0.05 --resume base
# What may change on resume: the run length, intervals, threads; the data may move.
mkdir moved && cp train.h5 moved/
tess 2 train c.toml --quiet --set checkpoint.dir=x4 --set data.train=moved/train.h5 --set train.log_every=3 --resume base >resume.txt
grep -q "resuming from" resume.txt || fail "a moved copy of the data was not accepted"
echo "ok: damaged and mismatched checkpoints refused with exit 4, naming the part"

# Warm start on new data (a different teacher): weights and optimizer state from ref2, the old
# validation set evaluated as split "old" beside the new one, so forgetting shows.
"$TESSERA" data synth --out newval.h5 --rows 400 --features 12 --classes 4 --seed 10 --first-row 3000 >/dev/null
tess 2 train c.toml --quiet --set checkpoint.dir=warm --set data.train=other.h5 --set data.validation=newval.h5 \
  --set 'data.extra_validation={old="val.h5"}' --set train.epochs=1 --warm-start ref2 --warm-start-optimizer >warm.txt
grep -q "warm start from .*ref2/checkpoints/step-000150 (weights and optimizer state)" warm.txt || fail "no warm start note"
# With a negligible learning rate the warm-started model is ref2's: its "old" loss is ref2's final one.
tess 2 train c.toml --quiet --set checkpoint.dir=warm0 --set data.train=other.h5 --set 'data.extra_validation={old="val.h5"}' \
  --set data.validation='""' --set train.max_steps=1 --set optimizer.lr=1e-12 --warm-start ref2/model.h5 >/dev/null
/usr/bin/python3 - <<'PY'
import json, tomllib
rows = lambda d: [json.loads(l) for l in open(d + "/metrics.jsonl")]
w = rows("warm")
old = [o for o in w if o["event"] == "eval" and o["split"] == "old"]
new = [o for o in w if o["event"] == "eval" and o["split"] == "validation"]
assert len(old) == len(new) >= 2 and [o["step"] for o in old] == [o["step"] for o in new], (old, new)
ref_final = [o for o in rows("ref2") if o["event"] == "eval"][-1]
w0 = [o for o in rows("warm0") if o["event"] == "eval" and o["split"] == "old"][-1]
assert abs(w0["loss"] - ref_final["loss"]) <= 1e-6 * ref_final["loss"], (w0, ref_final)
st = tomllib.load(open("warm/checkpoints/" + open("warm/checkpoints/LATEST").read().strip() + "/state.toml", "rb"))
assert st["optimizer_updates"] == 150 + st["step"], st    # the update count continued
assert st["warm_start"].endswith("ref2/checkpoints/step-000150"), st
prov = json.load(open("warm/provenance.json"))
assert prov["warm_start"] == st["warm_start"], prov
assert prov["extra_validation_data"]["old"][0]["path"].endswith("/val.h5"), prov
print(f"ok: warm start; old-data accuracy {ref_final['accuracy']:.3f} before, {old[-1]['accuracy']:.3f} after "
      f"{old[-1]['step']} steps on new data (new-data accuracy {new[0]['accuracy']:.3f} -> {new[-1]['accuracy']:.3f})")
PY
expect_exit 4 "holds another model: mlp 12-20-4" 2 train c.toml --set checkpoint.dir=x5 --warm-start wide
expect_exit 2 "warm-start-optimizer: .*model.h5 holds no checkpoint" 2 train c.toml --set checkpoint.dir=x6 --warm-start ref2/model.h5 --warm-start-optimizer
expect_exit 2 "--warm-start and model.init both" 2 train c.toml --set checkpoint.dir=x7 --warm-start ref2 --set model.init=ref2/model.h5

# Recovery under SIGKILL: a short version of scripts/kill_test.sh (3 kills).
SEED=5 TESSERA="$TESSERA" bash "$HERE/../../scripts/kill_test.sh" 3 2 90
echo "all checkpoint tests passed"
