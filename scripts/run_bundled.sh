#!/usr/bin/env bash
# Unpacks a scripts/bundle_runtime.sh tarball and runs a command with the bundled mpirun, tessera
# and collective_bench first on PATH; inside the command $TB is the unpacked tree and $TB/bin
# the build directory to hand to scripts (scaling.py --build "$TB/bin").
#   scripts/run_bundled.sh BUNDLE.tar.xz DIR COMMAND...
# The bundled libraries (libstdc++ among them) are put on the library path of those three
# programs only, through wrappers, so the host's own Python and its extensions keep theirs.
set -euo pipefail
bundle=$1 dir=$2
shift 2
mkdir -p "$dir"
[[ -x $dir/tb/build/tessera ]] || tar -C "$dir" -xJf "$bundle"
export TB=$dir/tb
arch=$TB/usr/lib/x86_64-linux-gnu
libs=$TB/lib:$arch/openmpi/lib
mkdir -p "$TB/bin/bench"
wrap() {  # wrap NAME REAL
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$libs" "$2" >"$TB/bin/$1"
  chmod +x "$TB/bin/$1"
}
wrap mpirun "$TB/usr/bin/orterun"
wrap ompi_info "$TB/usr/bin/ompi_info"
wrap tessera "$TB/build/tessera"
wrap bench/collective_bench "$TB/build/bench/collective_bench"
export PATH=$TB/bin:$PATH
# Debian's OpenMPI and PMIx hold absolute install paths; these move them to the unpacked tree.
export OPAL_PREFIX=$TB/usr OPAL_EXEC_PREFIX=$TB/usr OPAL_BINDIR=$TB/usr/bin OPAL_LIBDIR=$arch/openmpi/lib
export OPAL_PKGLIBDIR=$arch/openmpi/lib/openmpi3 OPAL_PKGDATADIR=$TB/usr/share/openmpi
export OPAL_DATADIR=$TB/usr/share OPAL_DATAROOTDIR=$TB/usr/share OPAL_SYSCONFDIR=$TB/etc/openmpi
export OMPI_MCA_mca_base_component_path=$arch/openmpi/lib/openmpi3
export PMIX_INSTALL_PREFIX=$arch/pmix2 PMIX_MCA_mca_base_component_path=$arch/pmix2/lib/pmix
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# The bundle's zlib plugin for PMIx does not load outside its home; startup does not need it.
export PMIX_MCA_pcompress_base_silence_warning=1
exec "$@"
