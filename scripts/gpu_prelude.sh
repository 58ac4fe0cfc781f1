# Sourced by the GPU machine's scripts that run the qkern CLI from a carried build: unpacks
# BUILD_DIR/carry.tar.xz (scripts/gpu_build.sh) unless unpacked, and sets B (the build folder),
# out ($OUT or ./out), q (the qkern binary), work (a temporary folder, removed on exit) and the
# library path.   usage: B=${1:-build-dev}; . scripts/gpu_prelude.sh
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-out}
mkdir -p "$out"
[ -x "$B/cli/qkern" ] || xz -dc "$B/carry.tar.xz" | tar -xf -
export LD_LIBRARY_PATH="$PWD/$B/lib:/usr/local/cuda/lib64"
q="$PWD/$B/cli/qkern" work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
