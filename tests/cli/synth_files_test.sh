#!/usr/bin/env bash
# `data synth --files K` written in parallel: the K files concatenate to the single file of the
# same seed, the bytes do not depend on N, and training on the glob of parts equals training on
# the single file bit for bit (same rows, same chunk rows, same data order).
source "$(dirname "$0")/lib.sh"

tess 2 data synth --out parts.h5 --rows 3001 --features 6 --classes 3 --files 3 --chunk-rows 128 --seed 9 >/dev/null
tess 3 data synth --out again.h5 --rows 3001 --features 6 --classes 3 --files 3 --chunk-rows 128 --seed 9 >/dev/null
tess 1 data synth --out one.h5 --rows 3001 --features 6 --classes 3 --chunk-rows 128 --seed 9 >/dev/null
for k in 0 1 2; do
  cmp "parts-0000$k-of-00003.h5" "again-0000$k-of-00003.h5" || fail "part $k depends on the number of ranks"
done
ls ./*.tmp-parts 2>/dev/null && fail "temporary files left behind"
/usr/bin/python3 - <<'PY'
import glob, h5py, numpy as np
parts = sorted(glob.glob("parts-*.h5"))
assert len(parts) == 3, parts
one = h5py.File("one.h5")
x = np.concatenate([h5py.File(p)["X"][()] for p in parts])
y = np.concatenate([h5py.File(p)["y"][()] for p in parts])
assert [h5py.File(p)["X"].shape[0] for p in parts] == [1001, 1000, 1000]
assert np.array_equal(x, one["X"][()]) and np.array_equal(y, one["y"][()])
print("ok: 3 parts concatenate to the single file")
PY
write_config parts.toml "parts-*.h5"
write_config one.toml one.h5
sed -i 's/"run"/"run-one"/' one.toml
tess 2 train parts.toml --quiet >/dev/null
tess 2 train one.toml --quiet >/dev/null
diff <(grep '"train"' run/metrics.jsonl | sed 's/"samples_per_s.*//') \
     <(grep '"train"' run-one/metrics.jsonl | sed 's/"samples_per_s.*//') ||
  fail "training on the parts differs from training on the single file"
echo "ok: training on the glob of parts equals training on the single file"
expect_exit 2 "files must be between 1 and --rows" 1 data synth --out x.h5 --rows 5 --features 2 --files 6
