#!/usr/bin/env bash
# scripts/data_at_scale.sh made small: a 64 MiB dataset (8x an 8 MiB data.memory_budget_mb)
# trained at N = 2; each rank's peak RSS stays within budget + model + 48 MiB and does not
# grow with the data.
source "$(dirname "$0")/lib.sh"
MIB=64 BUDGET_MB=8 NP=2 FEATURES=256 HIDDEN=16 OVERHEAD_MB=48 WORK="$WORK/scale" KEEP=1 \
  TESSERA="$TESSERA" bash "$(dirname "$0")/../../scripts/data_at_scale.sh"
