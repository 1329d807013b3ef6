#!/usr/bin/env bash
# Training reaches what a user expects on real data: Fashion-MNIST (Debian's
# dataset-fashion-mnist), 2 ranks. MLP 784-256-128-10 >= 0.87 test accuracy after 8 epochs, in
# fp32 and, where the build and CPU run it, in bf16 within 0.5 points of fp32; softmax regression
# >= 0.83 after 5 epochs (configs/fashion_*.toml).
source "$(dirname "$0")/lib.sh"
F=/usr/share/datasets/fashion-mnist
[[ -f $F/train-images-idx3-ubyte.gz ]] || fail "Fashion-MNIST missing: run scripts/setup.sh (package dataset-fashion-mnist)"
CONFIGS=$(cd "$(dirname "$0")/../../configs" && pwd)
mkdir -p data
"$TESSERA" data import --from idx $F/train-images-idx3-ubyte.gz $F/train-labels-idx1-ubyte.gz --out data/fashion-train.h5 >/dev/null
"$TESSERA" data import --from idx $F/t10k-images-idx3-ubyte.gz $F/t10k-labels-idx1-ubyte.gz --out data/fashion-test.h5 >/dev/null
check() {  # check CONFIG MIN_ACCURACY PRECISION: trains, evaluates, sets $acc
  local name=$1 min=$2 precision=$3 start=$SECONDS
  tess 2 train "$CONFIGS/$name.toml" --quiet \
    --set "data.train=$WORK/data/fashion-train.h5" --set "data.validation=$WORK/data/fashion-test.h5" \
    --set "checkpoint.dir=$WORK/$name-$precision" --set "train.precision=$precision" >/dev/null
  acc=$(tess 2 eval "$CONFIGS/$name.toml" --checkpoint "$WORK/$name-$precision" --data "$WORK/data/fashion-test.h5" |
        /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
  echo "$name $precision: test accuracy $acc (need >= $min), $((SECONDS - start)) s wall at N=2"
  /usr/bin/python3 -c "import sys; sys.exit(0 if $acc >= $min else 1)" || fail "$name $precision accuracy $acc < $min"
}
check fashion_mlp 0.87 fp32
fp32=$acc
engine=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["build"]["bf16_engine"])' \
         "$WORK/fashion_mlp-fp32/provenance.json")
if [[ $engine != none ]]; then
  check fashion_mlp 0.87 bf16
  /usr/bin/python3 -c "import sys; sys.exit(0 if abs($acc - $fp32) <= 0.005 else 1)" ||
    fail "bf16 test accuracy $acc is more than 0.5 points from fp32's $fp32"
else
  echo "bf16 skipped: this build or CPU cannot run it (bf16 engine $engine)"
fi
check fashion_linear 0.83 fp32
