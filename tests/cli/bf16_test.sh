#!/usr/bin/env bash
# train.precision = "bf16": training learns (the loss falls, ending within 5% of fp32's), model.h5
# holds float32 weights and is byte-identical for 1 and 2 threads and across runs. Where bf16
# cannot run (a CPU without AVX512_BF16; bf16 on oneDNN capped by ONEDNN_MAX_CPU_ISA) train
# stops with exit 2 naming the key.
source "$(dirname "$0")/lib.sh"

"$TESSERA" data synth --out train.h5 --rows 4000 --features 40 --classes 5 --seed 11 >/dev/null
write_config c.toml train.h5
sed -i 's/hidden = \[16\]/hidden = [300, 64]/; s/epochs = 1/epochs = 3/; s/lr = 0.1/lr = 0.05/' c.toml

tess 1 train c.toml --quiet --set checkpoint.dir=fp32 >/dev/null
engine=$(/usr/bin/python3 -c 'import json; print(json.load(open("fp32/provenance.json"))["build"]["bf16_engine"])')
if [[ $engine == none ]]; then
  expect_exit 2 "config key 'train.precision': 'bf16' cannot run here" 1 train c.toml --set train.precision=bf16
  echo "bf16 unsupported here (engine $engine): refusal checked"
  exit 0
fi
# Capping oneDNN below avx512_core_bf16 is refused up front, on every rank.
if [[ $engine == onednn ]]; then
  ONEDNN_MAX_CPU_ISA=AVX512_CORE expect_exit 2 \
    "config key 'train.precision': 'bf16' cannot run here: oneDNN is capped .*ONEDNN_MAX_CPU_ISA" \
    2 train c.toml --set train.precision=bf16
fi

tess 1 train c.toml --quiet --set train.precision=bf16 --set train.threads=1 --set checkpoint.dir=t1 >/dev/null
tess 1 train c.toml --quiet --set train.precision=bf16 --set train.threads=2 --set checkpoint.dir=t2 >/dev/null
tess 2 train c.toml --quiet --set train.precision=bf16 --set checkpoint.dir=n2 >/dev/null
tess 2 train c.toml --quiet --set train.precision=bf16 --set checkpoint.dir=n2b >/dev/null
cmp t1/model.h5 t2/model.h5 || fail "bf16: 1 and 2 threads give different model.h5"
cmp n2/model.h5 n2b/model.h5 || fail "bf16: two runs at N=2 differ"
cmp t1/model.h5 fp32/model.h5 >/dev/null && fail "bf16 run equals the fp32 run: bf16 was not used"
grep -Eq "precision = ['\"]bf16['\"]" t1/config.toml || fail "resolved config lacks precision = bf16"

/usr/bin/python3 - <<'PY'
import json, h5py
def losses(d):
    return [o["loss"] for o in map(json.loads, open(d + "/metrics.jsonl")) if o["event"] == "train"]
ref, got = losses("fp32"), losses("t1")
print(f"fp32 loss {ref[0]:.4f} -> {ref[-1]:.4f}; bf16 loss {got[0]:.4f} -> {got[-1]:.4f}")
assert got[-1] < 0.7 * got[0], "bf16 training did not learn"
assert abs(got[-1] - ref[-1]) <= 0.05 * ref[-1], (got[-1], ref[-1])
with h5py.File("t1/model.h5", "r") as f:
    names = [n for n in f.keys() if n.startswith("layers.")]
    assert len(names) == 6, names
    for n in names:
        assert f[n].dtype == "float32", (n, f[n].dtype)
print("bf16 model.h5: float32 tensors", sorted(names))
PY
echo "bf16 training passed"
