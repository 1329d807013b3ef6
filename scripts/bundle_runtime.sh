#!/usr/bin/env bash
# Packs a built tessera (tessera, collective_bench) with every shared library it and
# OpenMPI's launcher need into one relocatable tarball, for running the scaling benchmark on a
# machine that has none of the Debian packages and cannot reach an archive (a lent 16-core box).
#   scripts/bundle_runtime.sh BUILD_DIR OUT.tar.xz
# glibc itself stays out (the target's newer one runs Debian 12 binaries); libstdc++ goes in.
# scripts/run_bundled.sh unpacks it and points OpenMPI and PMIx at their relocated plugins.
set -euo pipefail
build=$1 out=$2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/tb
mkdir -p "$root/build/bench" "$root/lib" "$root/usr/bin" "$root/etc"
cp "$build/tessera" "$root/build/"
cp "$build/bench/collective_bench" "$root/build/bench/"
arch=/usr/lib/x86_64-linux-gnu
mkdir -p "$root$arch" "$root/usr/share"
cp -a "$arch/openmpi" "$root$arch/"
cp -a "$arch/pmix2" "$root$arch/"
cp -a /usr/share/openmpi "$root/usr/share/"
[[ -d /usr/share/pmix ]] && cp -a /usr/share/pmix "$root/usr/share/"
cp -a /etc/openmpi "$root/etc/"
for b in orterun orted ompi_info; do cp "$(readlink -f /usr/bin/$b)" "$root/usr/bin/$b"; done
ln -s orterun "$root/usr/bin/mpirun"
# Every library any of these loads, but not glibc's own.
{
  for f in "$root/build/tessera" "$root/build/bench/collective_bench" "$root/usr/bin/"{orterun,orted,ompi_info} \
           $(find "$root$arch" -name '*.so*' -type f); do
    ldd "$f" 2>/dev/null | awk '$3 ~ /^\// {print $3}'
  done
} | sort -u | grep -Ev '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux-x86-64)\.so' |
  while read -r lib; do cp -L "$lib" "$root/lib/"; done
tar -C "$stage" -cJf "$out" tb
echo "bundle_runtime.sh: $(du -h "$out" | cut -f1) in $out ($(ls "$root/lib" | wc -l) libraries)"
