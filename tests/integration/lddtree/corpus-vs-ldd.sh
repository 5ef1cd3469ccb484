#!/usr/bin/env bash
# The corpus wheels' ELF members, unpacked, resolved against the test sysroot:
# kwheel lddtree must find exactly what ldd finds with the same LD_LIBRARY_PATH.
set -euo pipefail
kwheel=$1 src=$2 build=$3
corpus=${KW_CORPUS:-$build/corpus}
root=$build/fixtures/sysroot/root
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for w in "$corpus"/wheels/debian/*.whl "$corpus"/wheels/auditwheel/*.whl; do
	d=$tmp/$(basename "$w" .whl)
	mkdir -p "$d"
	unzip -q -o "$w" -d "$d" '*.so' '*.so.*' 2>/dev/null || true
done
"$src"/tools/check-lddtree-all --kwheel "$kwheel" \
	--library-path "$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu" "$tmp"
