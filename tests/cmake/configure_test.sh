#!/usr/bin/env bash
# CMake's engine choice follows the current options when a build directory is reconfigured:
# whether the target has AVX-512F (or AVX2 and FMA) is checked again (a cached answer from an
# earlier -march would pick avx512 or avx2 for a portable build, whose gemm_simd.cpp is then the
# throwing stub, or keep a native build off its engine). Needs CMAKE, SRC and CXX in the
# environment (tests/CMakeLists.txt).
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
dir=$(mktemp -d)
defines() { "$CXX" "$@" -dM -E - </dev/null; }
configure() {  # configure OPTIONS...: prints the engine, or "error"
  if "$CMAKE" -S "$SRC" -B "$dir" -DTESSERA_BUILD_TESTS=OFF -DTESSERA_BUILD_BENCH=OFF "$@" >"$dir.log" 2>&1; then
    sed -n 's/^-- tessera: float GEMM engine //p' "$dir.log"
  else
    echo error
  fi
}
trap 'rm -rf "$dir" "$dir.log"' EXIT
# The engine a native build should pick: the widest tessera engine -march=native targets.
native=$(defines -march=native)
if grep -q '__AVX512F__' <<<"$native"; then
  engine=avx512
elif grep -q '__AVX2__' <<<"$native" && grep -q '__FMA__' <<<"$native"; then
  engine=avx2
else
  echo "SKIP: -march=native has neither AVX-512F nor AVX2 and FMA here"; exit 0
fi
! defines | grep -q '__AVX2__' || { echo "SKIP: the compiler targets AVX2 without -march"; exit 0; }

[[ $(configure -DTESSERA_PORTABLE=OFF -DTESSERA_GEMM=) == "$engine" ]] || fail "native: not $engine"
got=$(configure -DTESSERA_PORTABLE=ON -DTESSERA_GEMM="$engine")
[[ $got == error ]] || fail "portable reconfigure with TESSERA_GEMM=$engine accepted (engine $got) though its target has no ${engine^^}"
[[ $(configure -DTESSERA_PORTABLE=ON -DTESSERA_GEMM=) == eigen ]] || fail "portable: not eigen"
got=$(configure -DTESSERA_PORTABLE=OFF -DTESSERA_GEMM=)
[[ $got == "$engine" ]] || fail "native reconfigure of a portable build dir picked $got, not $engine"
# An AVX2 target without AVX-512 (x86-64-v3) picks avx2 and refuses avx512.
got=$(configure -DTESSERA_PORTABLE=ON -DTESSERA_GEMM=avx2 -DCMAKE_CXX_FLAGS=-march=x86-64-v3)
[[ $got == avx2 ]] || fail "x86-64-v3 with TESSERA_GEMM=avx2: $got"
got=$(configure -DTESSERA_PORTABLE=ON -DTESSERA_GEMM=avx512 -DCMAKE_CXX_FLAGS=-march=x86-64-v3)
[[ $got == error ]] || fail "x86-64-v3 accepted TESSERA_GEMM=avx512 (engine $got)"
echo "ok: the engine follows the options on reconfigure ($engine native)"
