#!/usr/bin/env python3
"""Marks every floating-point multiply, add, subtract and negate of a SPIR-V module
NoContraction, so that no Vulkan compiler fuses `a*b + c` into one rounding: the encoder
shaders must round as the CPU reference does (which builds with -ffp-contract=off and calls
fmaf where it means a fused multiply-add; the shaders call fma() there).
Usage: spv_nocontract.py IN.spv OUT.spv
       spv_nocontract.py --check FILE.spv...   (exit 1 naming each module with an unmarked operation)
"""
import struct
import sys

OP_DECORATE = 71
DECORATION_NO_CONTRACTION = 42
FLOAT_ARITH = {127, 129, 131, 133}  # OpFNegate, OpFAdd, OpFSub, OpFMul
ANNOTATIONS = {71, 72, 73, 74, 332, 5632, 5633}
# instructions that end the annotation section: types, constants, global variables, functions
SECTION_END = set(range(19, 40)) | set(range(41, 53)) | {54, 59, 1, 322, 4456, 4472}


def read(path):
    data = open(path, "rb").read()
    words = list(struct.unpack(f"<{len(data) // 4}I", data))
    if words[0] != 0x07230203:
        sys.exit(f"spv_nocontract: {path}: not a little-endian SPIR-V module")
    insts, at = [], 5
    while at < len(words):
        count = words[at] >> 16
        if count == 0:
            sys.exit(f"spv_nocontract: {path}: malformed instruction")
        insts.append(words[at:at + count])
        at += count
    return words, insts


def unmarked(insts):
    """result ids of the float operations without NoContraction"""
    decorated = {i[1] for i in insts if (i[0] & 0xFFFF) == OP_DECORATE and i[2] == DECORATION_NO_CONTRACTION}
    return [i[2] for i in insts if (i[0] & 0xFFFF) in FLOAT_ARITH and i[2] not in decorated]


def check(paths):
    bad = 0
    for path in paths:
        n = len(unmarked(read(path)[1]))
        if n:
            print(f"{path}: {n} float operations without NoContraction")
            bad += 1
    print(f"{len(paths) - bad} of {len(paths)} modules have every float operation marked NoContraction")
    sys.exit(1 if bad or not paths else 0)


def main():
    if sys.argv[1] == "--check":
        check(sys.argv[2:])
    words, insts = read(sys.argv[1])
    targets = unmarked(insts)
    insert = next(k for k, i in enumerate(insts) if (i[0] & 0xFFFF) in SECTION_END)
    last_annotation = max((k for k, i in enumerate(insts[:insert]) if (i[0] & 0xFFFF) in ANNOTATIONS), default=None)
    if last_annotation is not None:
        insert = last_annotation + 1
    new = [[(3 << 16) | OP_DECORATE, t, DECORATION_NO_CONTRACTION] for t in targets]
    insts[insert:insert] = new
    out = words[:5] + [w for i in insts for w in i]
    open(sys.argv[2], "wb").write(struct.pack(f"<{len(out)}I", *out))


if __name__ == "__main__":
    main()
