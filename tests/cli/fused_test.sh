#!/usr/bin/env bash
# The fused SGD update (one rank: the weight-gradient products write the update as they go,
# core/trainer.cpp): the same bytes as optimizer.fused = false in every SGD mode, with 1 or 2
# threads; a NaN step stops or is skipped with no weight changed; a resumed fused run gives the
# uninterrupted run's bytes (the momentum saved is the current buffer).
source "$(dirname "$0")/lib.sh"

"$TESSERA" data synth --out d.h5 --rows 3000 --features 40 --classes 5 --seed 4 >/dev/null
write_config c.toml d.h5
# Two hidden layers, 130 rows of weights past a 64-column panel edge, several row tiles.
sed -i 's/hidden = \[16\]/hidden = [300, 130]/; s/epochs = 1/epochs = 2/' c.toml

for mode in "momentum=0.9 weight_decay=0.01" "momentum=0.9 weight_decay=0" "momentum=0 weight_decay=0.01"; do
  set -- $mode
  for threads in 1 2; do
    args=(--quiet --set optimizer.$1 --set optimizer.$2 --set train.threads=$threads)
    tess 1 train c.toml "${args[@]}" --set checkpoint.dir=fused >/dev/null
    tess 1 train c.toml "${args[@]}" --set checkpoint.dir=plain --set optimizer.fused=false >/dev/null
    cmp fused/model.h5 plain/model.h5 || fail "fused and unfused SGD differ ($mode, $threads threads)"
    rm -rf fused plain
  done
done
echo "ok: fused and unfused SGD give the same bytes (3 modes, 1 and 2 threads)"

# NaN at step 7 on the one rank: the run stops with no model written; with skip, the skipped
# fused step changed nothing (its update went to the second buffers, never swapped in).
nan_stop_and_skip 1 c.toml
echo "ok: a NaN step stops or is skipped with no weight changed"

# Resume: 30 steps in one go against 20 steps, then resumed to 30 from the step-20 checkpoint.
tess 1 train c.toml --quiet --set train.max_steps=30 --set checkpoint.dir=whole >/dev/null
tess 1 train c.toml --quiet --set train.max_steps=20 --set checkpoint.every_steps=10 --set checkpoint.dir=part >/dev/null
tess 1 train c.toml --quiet --set train.max_steps=30 --set checkpoint.every_steps=10 --set checkpoint.dir=more \
  --resume part >out.txt
grep -q "resuming from .*part" out.txt || { cat out.txt >&2; fail "did not resume"; }
cmp whole/model.h5 more/model.h5 || fail "a resumed fused run differs from the uninterrupted one"
echo "ok: a resumed fused run gives the same bytes"
