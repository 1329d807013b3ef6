#!/usr/bin/env bash
# Every config and data error of DESIGN §1-§4 exits with its code, names the problem, and
# stops every rank (no hang) — checked at N = 2, where one rank's failure must stop the other.
source "$(dirname "$0")/lib.sh"

"$TESSERA" data synth --out good.h5 --rows 400 --features 6 --classes 3 --seed 2 >/dev/null
write_config c.toml good.h5

# Usage and config errors: exit 2.
expect_exit 2 "unknown command 'frobnicate'" 2 frobnicate
expect_exit 2 "cannot read config file" 2 train missing.toml
expect_exit 2 "config key 'optimizer.lrr': unknown key" 2 train c.toml --set optimizer.lrr=1
printf '[model]\nkind = "mlp"\nhidden = [16]\nbogus = 3\n[data]\ntrain = "good.h5"\n' > unknown.toml
expect_exit 2 "config key 'model.bogus': unknown key" 2 train unknown.toml
expect_exit 2 "config key 'train.batch_size': expected an integer" 2 train c.toml --set train.batch_size=1.5
expect_exit 2 "config key 'optimizer.lr': value -1 out of range" 2 train c.toml --set optimizer.lr=-1
expect_exit 2 "config key 'model.activation': 'swish' is not one of" 2 train c.toml --set model.activation=swish
expect_exit 2 "config key 'train.batch_size'.*smaller than the 4 ranks" 4 train c.toml --set train.batch_size=3
printf '[data\ntrain = 1\n' > broken.toml
expect_exit 2 "broken.toml:1:.*invalid TOML" 2 train broken.toml
expect_exit 2 "unknown option --bogus" 2 train c.toml --bogus
# A stack limit below what a product tile takes on the main thread: refused up front (it would
# be a SIGSEGV in the first step). 512 KiB is below every engine's need (eigen 640 KiB).
(ulimit -s 512 && expect_exit 2 "stack limit \(ulimit -s\) is 512 KiB; .* GEMM engine needs [0-9]+ KiB" 2 train c.toml)

# Data errors: exit 3, naming file, dataset and row.
echo "not hdf5" > text.h5
expect_exit 3 "text.h5 is not an HDF5 file" 2 train c.toml --set data.train=text.h5
expect_exit 3 "nothere.h5: no such file" 2 train c.toml --set data.train=nothere.h5
expect_exit 3 "glob .*nomatch\*.h5' matches no files" 2 train c.toml --set 'data.train="nomatch*.h5"'
/usr/bin/python3 - <<'PY'
import h5py, numpy as np
x = np.random.RandomState(0).randn(40, 6).astype(np.float32)
y = (np.arange(40) % 3).astype(np.int64)
with h5py.File("rows.h5", "w") as f: f["X"] = x; f["y"] = y[:39]
with h5py.File("dims.h5", "w") as f: f["X"] = x.reshape(40, 3, 2); f["y"] = y
with h5py.File("empty.h5", "w") as f: f["X"] = np.zeros((0, 6), np.float32); f["y"] = np.zeros(0, np.int64)
with h5py.File("feat.h5", "w") as f: f["X"] = x[:, :5]; f["y"] = y
bad = y.copy(); bad[17] = 7
with h5py.File("label.h5", "w") as f: f["X"] = x; f["y"] = bad
frac = y.astype(np.float64); frac[9] = 1.5
with h5py.File("frac.h5", "w") as f: f["X"] = x; f["y"] = frac
nan = x.copy(); nan[5, 2] = np.nan   # with shuffle off and batch 8 at N=2, row 5 is rank 1's
with h5py.File("nan.h5", "w") as f: f["X"] = nan; f["y"] = y
inf = x.copy(); inf[30, 0] = np.inf
with h5py.File("inf.h5", "w") as f: f["X"] = inf; f["y"] = y
with h5py.File("noy.h5", "w") as f: f["X"] = x; f["labels"] = y
PY
expect_exit 3 "rows.h5: 'X' has 40 rows but 'y' has 39" 2 train c.toml --set data.train=rows.h5
expect_exit 3 "dims.h5: dataset 'X' has 3 dimensions, expected 2" 2 train c.toml --set data.train=dims.h5
expect_exit 3 "empty.h5: dataset 'X' is empty" 2 train c.toml --set data.train=empty.h5
expect_exit 3 "feat.h5: dataset 'X' has 5 features but .*good.h5 has 6" 2 train c.toml --set 'data.train=["good.h5", "feat.h5"]'
expect_exit 3 "noy.h5: no dataset 'y'" 2 train c.toml --set data.train=noy.h5
expect_exit 3 "label.h5 row 17, dataset 'y': label 7 outside 0..2" 2 train c.toml --set data.train=label.h5 --set model.classes=3 --set train.batch_size=8
expect_exit 3 "frac.h5 row 9, dataset 'y': label 1.5 is not a class index" 2 train c.toml --set data.train=frac.h5 --set train.batch_size=8
expect_exit 3 "\[rank 1\] .*nan.h5 row 5, dataset 'X' column 2: feature is nan" 2 train c.toml --set data.train=nan.h5 --set data.shuffle=false --set train.batch_size=8
expect_exit 3 "inf.h5 row 30, dataset 'X' column 0: feature is inf" 2 train c.toml --set data.train=inf.h5 --set train.batch_size=8
expect_exit 3 "fewer than train.batch_size = 500" 2 train c.toml --set train.batch_size=500
expect_exit 3 "good.h5 row [0-9]+, dataset 'y': label 2 outside 0..1 \(binary task labels are 0 or 1" 2 train c.toml --set model.task=binary --set checkpoint.dir=binrun
[[ ! -e binrun ]] || fail "a label error found before training still started a run"
expect_exit 3 "has 400 rows, fewer than train.batch_size = 2147483648" 2 train c.toml --set train.batch_size=2147483648

# Model files: exit 4 when corrupt or mismatched.
tess 2 train c.toml --quiet >/dev/null
cp run/model.h5 tampered.h5
/usr/bin/python3 - <<'PY'
import h5py, numpy as np
w = h5py.File("tampered.h5", "r")["layers.0.weight"][()]
raw = bytearray(open("tampered.h5", "rb").read())
pos = raw.find(w.tobytes()[:16])
assert pos > 0
raw[pos + 3] ^= 0x40
open("tampered.h5", "wb").write(raw)
PY
expect_exit 4 "tampered.h5: weights checksum mismatch" 2 eval c.toml --checkpoint tampered.h5 --data good.h5
head -c 3000 run/model.h5 > truncated.h5
expect_exit 4 "truncated.h5" 2 eval c.toml --checkpoint truncated.h5 --data good.h5
expect_exit 4 "layers.0.weight' has shape 16x6, the model needs 32x6" 2 train c.toml --set model.init=run/model.h5 --set 'model.hidden=[32]'
expect_exit 4 "no such model file" 2 export --checkpoint nothing.h5 --out x.h5
"$TESSERA" data synth --out seven.h5 --rows 100 --features 7 --seed 2 >/dev/null
expect_exit 3 "seven.h5: dataset 'X' has 7 features but the model .* takes 6" 2 eval c.toml --checkpoint run --data seven.h5
echo "all error cases passed"
