#!/usr/bin/env bash
# The other commands end to end: --help, synth (three tasks), eval, predict, export, inspect,
# idx import, and model.init from a PyTorch-style weights file (plain h5py datasets).
source "$(dirname "$0")/lib.sh"

for c in "" "train" "eval" "predict" "export" "data" "data synth" "data import" "data inspect" "checkpoint" "checkpoint inspect"; do
  # shellcheck disable=SC2086
  "$TESSERA" $c --help >help.txt || fail "tessera $c --help failed"
  grep -q "usage: tessera" help.txt || fail "tessera $c --help prints no usage"
done
echo "ok: --help"

# Regression end to end at N = 2, evaluated at N = 3.
tess 2 data synth --out reg.h5 --rows 2000 --features 8 --task regression --seed 4 >/dev/null
tess 1 data synth --out reg2.h5 --rows 2000 --features 8 --task regression --seed 4 >/dev/null
cmp reg.h5 reg2.h5 || fail "synth output depends on the number of ranks"
write_config r.toml reg.h5
sed -i 's/^\[model\]$/[model]\ntask = "regression"/' r.toml
sed -i 's/epochs = 1/epochs = 5/; s/lr = 0.1/lr = 0.02/' r.toml
tess 2 train r.toml --quiet >/dev/null
tess 3 eval r.toml --checkpoint run --data reg.h5 >eval.json
/usr/bin/python3 - <<'PY'
import json, h5py, numpy as np
r = json.load(open("eval.json"))
y = h5py.File("reg.h5")["y"][()]
assert r["rows"] == 2000, r
assert r["rmse"] < 0.8 * y.std(), (r, y.std())   # learned something
print("ok: regression rmse", r["rmse"], "target std", y.std())
PY

# Classification: predict at N = 3 on 1001 rows writes every row once, in order.
tess 2 data synth --out cls.h5 --rows 3000 --features 10 --classes 4 --seed 5 >/dev/null
tess 1 data synth --out test.h5 --rows 1001 --features 10 --classes 4 --seed 5 --first-row 3000 >/dev/null
write_config k.toml cls.h5 'validation = "test.h5"'
sed -i 's/epochs = 1/epochs = 4/' k.toml
tess 2 train k.toml --quiet >/dev/null
tess 3 predict --checkpoint run/model.h5 --data test.h5 --out pred.h5 >/dev/null
tess 2 eval k.toml --checkpoint run >eval.json
tess 1 export --checkpoint run --out exported.h5 >/dev/null
/usr/bin/python3 - <<'PY'
import json, h5py, numpy as np
p = h5py.File("pred.h5")
logits, cls = p["logits"][()], p["class"][()]
assert logits.shape == (1001, 4) and cls.shape == (1001,)
assert (cls == logits.argmax(1)).all()
# Recompute the logits from the exported weights with numpy, like a PyTorch user would.
m = h5py.File("exported.h5")
x = h5py.File("test.h5")["X"][()]
h = np.maximum(x @ m["layers.0.weight"][()].T + m["layers.0.bias"][()], 0)
ref = h @ m["layers.1.weight"][()].T + m["layers.1.bias"][()]
assert np.abs(ref - logits).max() < 1e-4, np.abs(ref - logits).max()
y = h5py.File("test.h5")["y"][()]
acc = (cls == y).mean()
r = json.load(open("eval.json"))
assert r["rows"] == 1001 and abs(r["accuracy"] - acc) < 1e-12, (r, acc)
assert acc > 0.6, acc
print("ok: predict/eval/export agree; accuracy", acc)
# A PyTorch-style init file: bare datasets, no tessera attributes, perturbed weights.
with h5py.File("torch_init.h5", "w") as f:
    for k in m.keys():
        f[k] = m[k][()] * 0.5
PY
tess 2 train k.toml --quiet --set model.init=torch_init.h5 --set optimizer.lr=1e-9 --set optimizer.momentum=0 --set checkpoint.dir=initrun >/dev/null
/usr/bin/python3 - <<'PY'
import h5py, numpy as np
a, b = h5py.File("torch_init.h5"), h5py.File("initrun/model.h5")
d = max(np.abs(a[k][()] - b[k][()]).max() for k in a.keys())
assert d < 1e-5, d
print("ok: model.init loads a PyTorch-layout file (max change", d, ")")
PY

# A second run in the same directory keeps the first one's files; with eval_every the final
# model is still evaluated.
tess 2 train k.toml --quiet --set train.eval_every=7 >/dev/null 2>second.txt
grep -q "held an earlier run; its files were moved to" second.txt || fail "no note about the earlier run"
ls run/previous-*/model.h5 run/previous-*/metrics.jsonl >/dev/null || fail "earlier run's files not kept"
/usr/bin/python3 - <<'PY'
import json
lines = [json.loads(l) for l in open("run/metrics.jsonl")]
evals = [o["step"] for o in lines if o["event"] == "eval"]
last = [o for o in lines if o["event"] == "done"][0]["steps"]
assert evals[:2] == [7, 14] and evals[-1] == last and last % 7 != 0, (evals, last)
print("ok: earlier run kept; final model evaluated at step", last)
PY

# Provenance and resolved config in the run directory.
/usr/bin/python3 - <<'PY'
import json, tomllib
p = json.load(open("run/provenance.json"))
assert p["world_size"] == 2 and len(p["hosts"]) == 2, p
assert p["train_data"][0]["rows"] == 3000 and p["train_data"][0]["fingerprint"].startswith(("sha256:", "sampled-sha256:"))
assert p["config_hash"].startswith("sha256:")
c = tomllib.load(open("run/config.toml", "rb"))
assert c["train"]["batch_size"] == 60 and c["data"]["train"][0].endswith("/cls.h5"), c
print("ok: provenance.json and config.toml")
PY

# inspect: layout facts and slow-layout warnings.
/usr/bin/python3 - <<'PY'
import h5py, numpy as np
with h5py.File("slow.h5", "w") as f:
    f.create_dataset("X", data=np.zeros((4096, 64), np.float32), chunks=(16, 8))
    f["y"] = np.zeros(4096, np.int64)
with h5py.File("packed.h5", "w") as f:  # 8 MiB compressed chunks: a window needs 136 MiB of cache
    f.create_dataset("X", shape=(8192, 512), dtype=np.float32, chunks=(4096, 512), compression="gzip")
    f["y"] = np.zeros(8192, np.int64)
PY
"$TESSERA" data inspect cls.h5 slow.h5 packed.h5 run/model.h5 >inspect.txt
grep -q "warning: X is compressed in chunks of 8192 KiB: a shuffle window needs 136 MiB" inspect.txt ||
  fail "inspect: no compressed-chunk warning"
grep -q "X: 3000 x 10  float32  chunked" inspect.txt || fail "inspect: no chunk layout"
grep -q "warning: X chunks split rows" inspect.txt || fail "inspect: no split-rows warning"
grep -q "warning: X chunks are tiny" inspect.txt || fail "inspect: no tiny-chunk warning"
grep -q "weights checksum: OK" inspect.txt || fail "inspect: no checksum verdict"
echo "ok: inspect"

# IDX import: a tiny gzip'd MNIST-style pair, and a corrupt one.
/usr/bin/python3 - <<'PY'
import gzip, struct, numpy as np
img = (np.arange(5 * 4 * 3) % 256).astype(np.uint8).reshape(5, 4, 3)
lab = np.array([3, 1, 4, 1, 5], np.uint8)
with gzip.open("img.gz", "wb") as f: f.write(struct.pack(">IIII", 0x803, 5, 4, 3) + img.tobytes())
with gzip.open("lab.gz", "wb") as f: f.write(struct.pack(">II", 0x801, 5) + lab.tobytes())
with gzip.open("short.gz", "wb") as f: f.write(struct.pack(">IIII", 0x803, 5, 4, 3) + img.tobytes()[:50])
open("bad.idx", "wb").write(b"\x12\x34\x56\x78" + bytes(20))
PY
"$TESSERA" data import --from idx img.gz lab.gz --out idx.h5 >/dev/null
/usr/bin/python3 - <<'PY'
import h5py, numpy as np
f = h5py.File("idx.h5")
x, y = f["X"][()], f["y"][()]
assert x.shape == (5, 12) and list(y) == [3, 1, 4, 1, 5]
assert np.allclose(x.ravel(), (np.arange(60) % 256) / 255.0)
print("ok: idx import")
PY
expect_exit 3 "short.gz byte 66: file ends early while reading image pixels" 1 data import --from idx short.gz lab.gz --out out.h5
expect_exit 3 "bad.idx byte 0: not an unsigned-byte IDX file" 1 data import --from idx bad.idx lab.gz --out out.h5
[[ ! -e out.h5 ]] || fail "a failed import left out.h5 behind"
expect_exit 2 "expected idx, csv, libsvm or npy" 1 data import --from xls a.xls --out out.h5
echo "all command tests passed"
