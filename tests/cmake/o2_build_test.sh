#!/usr/bin/env bash
# The kernels build warning-free (-Werror, the default) at -O2 too (RelWithDebInfo): GCC 12
# reports the undefined pass-through operand of its plain AVX-512 shuffles as uninitialized
# there, which the -O3 build does not show. Needs CMAKE and SRC in the environment.
set -euo pipefail
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$CMAKE" -S "$SRC" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_BUILD_TESTS=OFF \
  -DTESSERA_BUILD_BENCH=OFF >"$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; exit 1; }
if ! "$CMAKE" --build "$dir" -j2 --target tessera_kernels >"$dir/build.log" 2>&1; then
  grep -m 20 -E "error|warning" "$dir/build.log" >&2
  echo "FAIL: the kernels do not build at -O2 (RelWithDebInfo)" >&2
  exit 1
fi
echo "ok: the kernels build at -O2"
