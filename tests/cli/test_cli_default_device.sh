#!/usr/bin/env bash
# The automatic device on a host without a GPU is the cpu, and choosing it loads no Vulkan
# software driver (mesa's lavapipe brings LLVM: ~60 MB more peak memory for nothing); naming
# vulkan:0 still opens it. Checked through the dynamic loader's log (glibc's LD_DEBUG=files).
# Usage: test_cli_default_device.sh QKERN_BINARY
set -u
qkern=$1
. "$(dirname "$0")/harness.sh"
tiny=hidden=256,experts=8,used=2,ffn=256,shexp=0,layers=1
loads_lavapipe() { # loads_lavapipe DEVICE_ARGS...: 0 if the run maps mesa's lavapipe driver
  LD_DEBUG=files "$qkern" bench tg "$@" --custom $tiny -q Q8_0 -n 1 -r 1 --routing uniform -o jsonl 2>&1 >/dev/null |
    grep -q "file=.*libvulkan_lvp"
}
if ls /dev/dri/renderD* /dev/nvidia0 /dev/dxg >/dev/null 2>&1; then
  echo "skipped: this host shows a GPU, which the automatic choice may probe"
  finish
  exit 0
fi
out=$("$qkern" bench tg --custom $tiny -q Q8_0 -n 1 -r 1 --routing uniform -o jsonl)
check "auto: the cpu" grep -q '"device_id": "cpu"' <<<"$out"
no_lavapipe() { ! loads_lavapipe "$@"; }
check "auto: no software Vulkan driver loaded" no_lavapipe
if "$qkern" devices 2>/dev/null | grep -q "^vulkan:0 .*llvmpipe"; then
  check "vulkan:0 named: lavapipe opens" loads_lavapipe -dev vulkan:0
fi
finish
