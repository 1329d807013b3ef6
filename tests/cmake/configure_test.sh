#!/usr/bin/env bash
# CMake's engine choice follows the current options when a build directory is reconfigured:
# whether the target has AVX-512F is checked again (a cached answer from an earlier -march would
# pick avx512 for a portable build, whose gemm_avx512.cpp is then the throwing stub, or keep a
# native build off avx512). Needs CMAKE, SRC and CXX in the environment (tests/CMakeLists.txt).
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
dir=$(mktemp -d)
targets() { "$CXX" "$@" -dM -E - </dev/null | grep '__AVX512F__' >/dev/null; }
configure() {  # configure OPTIONS...: prints the engine, or "error"
  if "$CMAKE" -S "$SRC" -B "$dir" -DTESSERA_BUILD_TESTS=OFF -DTESSERA_BUILD_BENCH=OFF "$@" >"$dir.log" 2>&1; then
    sed -n 's/^-- tessera: float GEMM engine //p' "$dir.log"
  else
    echo error
  fi
}
trap 'rm -rf "$dir" "$dir.log"' EXIT
targets -march=native || { echo "SKIP: -march=native has no AVX-512F here"; exit 0; }
! targets || { echo "SKIP: the compiler targets AVX-512F without -march"; exit 0; }

[[ $(configure -DTESSERA_PORTABLE=OFF -DTESSERA_GEMM=) == avx512 ]] || fail "native: not avx512"
got=$(configure -DTESSERA_PORTABLE=ON -DTESSERA_GEMM=avx512)
[[ $got == error ]] || fail "portable reconfigure with TESSERA_GEMM=avx512 accepted (engine $got) though its target has no AVX-512F"
[[ $(configure -DTESSERA_PORTABLE=ON -DTESSERA_GEMM=) == eigen ]] || fail "portable: not eigen"
got=$(configure -DTESSERA_PORTABLE=OFF -DTESSERA_GEMM=)
[[ $got == avx512 ]] || fail "native reconfigure of a portable build dir picked $got, not avx512"
echo "ok: the engine follows the options on reconfigure"
