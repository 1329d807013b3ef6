#!/usr/bin/env bash
# Sets up (Debian packages), builds and runs the whole test suite. The README's test command.
# BUILD_DIR and JOBS may be overridden; CTEST_ARGS are passed to ctest (e.g. "-L cli").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTESSERA_BUILD_TESTS=ON -DTESSERA_BUILD_BENCH=ON
cmake --build "$BUILD_DIR" -j "$JOBS"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Tests run one at a time: MPI tests oversubscribe the 2 cores on their own.
# shellcheck disable=SC2086
ctest --test-dir "$BUILD_DIR" --output-on-failure ${CTEST_ARGS:-}
