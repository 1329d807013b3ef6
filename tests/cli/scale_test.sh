#!/usr/bin/env bash
# scripts/data_at_scale.sh made small: a 64 MiB dataset (8x an 8 MiB data.memory_budget_mb)
# trained at N = 2; each rank's peak RSS stays within budget + model + 48 MiB and does not
# grow with the data.
source "$(dirname "$0")/lib.sh"
MIB=64 BUDGET_MB=8 NP=2 FEATURES=256 HIDDEN=16 OVERHEAD_MB=48 WORK="$WORK/scale" KEEP=1 \
  TESSERA="$TESSERA" bash "$(dirname "$0")/../../scripts/data_at_scale.sh"

# Validation and extra evaluation sets read ranges on the main thread and hold no read-ahead
# ring, so they must not eat the training source's budget: a batch of 4096 x 200 floats (3.2 MiB)
# fits a 32 MiB budget with a validation set and two extra evaluation sets beside it.
cd "$WORK"
"$TESSERA" data synth --out big.h5 --rows 20000 --features 200 --classes 3 --seed 4 >/dev/null
"$TESSERA" data synth --out bigval.h5 --rows 3000 --features 200 --classes 3 --seed 4 --first-row 20000 >/dev/null
cat >budget.toml <<TOML
[data]
train = "big.h5"
validation = "bigval.h5"
extra_validation = { a = "bigval.h5", b = "bigval.h5" }
memory_budget_mb = 32
[model]
kind = "linear"
[train]
batch_size = 4096
epochs = 1
TOML
mpirun --oversubscribe -np 2 "$TESSERA" train budget.toml --quiet --set checkpoint.dir=budget >budget.txt 2>&1 ||
  { cat budget.txt; fail "a 32 MiB budget with three evaluation sets was refused"; }
echo "ok: evaluation sets leave the training budget to the read-ahead"
