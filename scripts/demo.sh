#!/usr/bin/env bash
# The main job: set up, build, import Fashion-MNIST, train an MLP on 2 MPI ranks, evaluate it
# on the test set and plot the loss and accuracy curves. The README's first command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
NP=${NP:-2}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTESSERA_BUILD_TESTS=OFF -DTESSERA_BUILD_BENCH=OFF
cmake --build "$BUILD_DIR" -j "$(nproc)" --target tessera
T="$BUILD_DIR/tessera"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

F=/usr/share/datasets/fashion-mnist
mkdir -p demo/data
[[ -f demo/data/fashion-train.h5 ]] ||
  "$T" data import --from idx "$F/train-images-idx3-ubyte.gz" "$F/train-labels-idx1-ubyte.gz" --out demo/data/fashion-train.h5
[[ -f demo/data/fashion-test.h5 ]] ||
  "$T" data import --from idx "$F/t10k-images-idx3-ubyte.gz" "$F/t10k-labels-idx1-ubyte.gz" --out demo/data/fashion-test.h5
"$T" data inspect demo/data/fashion-train.h5

mpirun --oversubscribe -np "$NP" "$T" train configs/fashion_mlp.toml "$@"
RUN=demo/runs/fashion_mlp
echo "== test-set evaluation (every row counted once) =="
mpirun --oversubscribe -np "$NP" "$T" eval configs/fashion_mlp.toml --checkpoint "$RUN" --data demo/data/fashion-test.h5 | tee "$RUN/test_eval.json"
/usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print("Fashion-MNIST test accuracy: %.4f on %d rows" % (r["accuracy"], r["rows"]))' "$RUN/test_eval.json"
/usr/bin/python3 scripts/plot_metrics.py "$RUN/metrics.jsonl" --out "$RUN/metrics.png"
echo "run directory: $RUN (config.toml, provenance.json, metrics.jsonl, checkpoints/, model.h5, metrics.png)"
