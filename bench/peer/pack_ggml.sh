#!/usr/bin/env bash
# Packs a ggml build of build_ggml_cuda.sh (its shared libraries, bench-mmid-cold and PEER_COMMIT)
# into BUILD_DIR/ggml-carry.tar.xz, small enough to carry to the GPU machine, where
# scripts/gpu_peer.sh unpacks it.
# usage: pack_ggml.sh BUILD_DIR [PEER_COMMIT]
set -euo pipefail
cd "$1"
[ -n "${2:-}" ] && echo "$2" >PEER_COMMIT
mkdir -p lib
find ggml -name 'libggml*.so*' -exec cp -P {} lib/ \;
tar -cf - bench-mmid-cold PEER_COMMIT lib | xz -T2 -6 >ggml-carry.tar.xz
du -h ggml-carry.tar.xz
