#!/usr/bin/env bash
# Installs the build into a scratch prefix, then builds and runs a program against it twice:
# through find_package(qkern) (shared and static targets) and through pkg-config.
set -euo pipefail
build=$1 src=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src" -B "$work/cm" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cm" >/dev/null
LD_LIBRARY_PATH="$work/prefix/lib" "$work/cm/consumer_shared"
"$work/cm/consumer_static"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
cc -o "$work/pc" "$src/consumer.c" $(pkg-config --cflags --libs qkern) -lpthread -lm
LD_LIBRARY_PATH="$work/prefix/lib" "$work/pc"
echo "1 passed, 0 failed"
