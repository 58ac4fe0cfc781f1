#!/usr/bin/env bash
# Builds ggml's CUDA backend and bench-mmid-cold (the peer's MUL_MAT_ID timer) from a llama.cpp source tree.
# On the GPU machine (16 cores) this takes a few minutes; on a machine without a GPU set CUDA=OFF to build the
# CPU backend only (to check that the timer compiles).
#
# (the project's measuring kit for its peer, kept in the repository so that it stands alone)
# usage: build_ggml_cuda.sh LLAMA_CPP_DIR BUILD_DIR
#   LLAMA_CPP_DIR  a llama.cpp tree with ggml/ in it; the llama-cpp-python source package carries one:
#                  pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36
#                  tar -xzf llama_cpp_python-0.3.36.tar.gz llama_cpp_python-0.3.36/vendor/llama.cpp/ggml
#                  (only ggml/ is needed: about 25 MB, small enough to carry to the GPU machine)
#   env: CUDA=ON|OFF (ON), ARCH (90), JOBS (nproc)
# Built on a machine without a GPU, libggml-cuda's references to the driver (libcuda) stay open
# until the GPU machine's loader resolves them (--allow-shlib-undefined).
# then:  BUILD_DIR/bench-mmid-cold CUDA0 "qwen3.5-35b-a3b" Q4_K,IQ2_XXS 2048
#        (BENCH_JSONL=results.jsonl BENCH_PEER_COMMIT=... BENCH_DEVICE=... to append records)
set -euo pipefail
src=$(readlink -f "$1"); out=$(mkdir -p "$2" && readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
ggml=$src; [ -d "$src/ggml" ] && ggml=$src/ggml
[ -f "$ggml/include/ggml.h" ] || { echo "no ggml/include/ggml.h under $src" >&2; exit 1; }
# the llama-cpp-python package prunes ggml.pc.in, which a standalone ggml configure wants: an empty one serves
[ -f "$ggml/ggml.pc.in" ] || : >"$ggml/ggml.pc.in"
cuda=${CUDA:-ON}
cmake -S "$ggml" -B "$out/ggml" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA="$cuda" \
  -DCMAKE_CUDA_ARCHITECTURES="${ARCH:-90}" -DGGML_CUDA_FA=OFF -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF \
  -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=ON >"$out/configure.log"
cmake --build "$out/ggml" -j "${JOBS:-$(nproc)}" >"$out/build.log"
defs=""; grep -q "GGML_TYPE_NVFP4" "$ggml/include/ggml.h" && defs="-DPEER_HAS_NVFP4"
libs=$(find "$out/ggml" -name 'libggml*.so' -printf '%h\n' | sort -u | sed 's/^/-L/' | tr '\n' ' ')
rpath=$(find "$out/ggml" -name 'libggml*.so' -printf '%h\n' | sort -u | tr '\n' ':')
c++ -O2 -std=c++17 $defs -I"$ggml/include" "$here/bench-mmid-cold.cpp" -o "$out/bench-mmid-cold" \
  $libs -lggml -lggml-base -Wl,-rpath,"$rpath" -Wl,--allow-shlib-undefined
( cd "$ggml" && git rev-parse --short HEAD 2>/dev/null || echo unknown ) >"$out/PEER_COMMIT"
echo "built $out/bench-mmid-cold"
