#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_gguf: a handful of small, valid GGUF files that between
them use every value type (nested arrays included), versions 2 and 3, alignments 32 and 64,
several tensor types and shapes, and a file without its final padding. Packed by hand with
struct (GGUF.md §1-§3), independent of the C writer. Deterministic: re-running rewrites the
same bytes.

usage: make_corpus.py [OUTPUT_DIR]   (default: tests/fuzz/corpus/gguf beside this script)
"""
import os
import random
import struct
import sys

UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
FIXED = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i", FLOAT32: "<f",
         BOOL: "<B", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}
# ggml type id: (block elements, block bytes)
TYPES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 12: (256, 144), 14: (256, 210), 16: (256, 66),
         20: (32, 18), 30: (1, 2), 39: (32, 17)}


def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def value(vtype, v):
    """Encoding of a value after its type field. Arrays are (elem_type, [items])."""
    if vtype in FIXED:
        return struct.pack(FIXED[vtype], v)
    if vtype == STRING:
        return s(v)
    elem, items = v
    return struct.pack("<IQ", elem, len(items)) + b"".join(value(elem, x) for x in items)


def gguf(kvs, tensors, version=3, alignment=32, final_pad=True, seed=0):
    """kvs: [(key, type, value)]; tensors: [(name, type_id, ne list)]."""
    rnd = random.Random(seed)
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, vtype, v in kvs:
        out += s(key) + struct.pack("<I", vtype) + value(vtype, v)
    datas, offset = [], 0
    for name, tid, ne in tensors:
        blk, bb = TYPES[tid]
        nbytes = ne[0] // blk * bb
        for d in ne[1:]:
            nbytes *= d
        out += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<q", d) for d in ne)
        out += struct.pack("<IQ", tid, offset)
        datas.append(bytes(rnd.randrange(256) for _ in range(nbytes)))
        offset += (nbytes + alignment - 1) // alignment * alignment
    pad = lambda b: b + b"\0" * (-len(b) % alignment)
    out = pad(out)
    for i, d in enumerate(datas):
        out += d if (i == len(datas) - 1 and not final_pad) else pad(d)
    return out


def files():
    yield "minimal.gguf", gguf([], [])
    yield "doc_example.gguf", gguf(
        [("general.architecture", STRING, "llama"), ("general.quantization_version", UINT32, 2),
         ("general.file_type", UINT32, 7), ("general.tags", ARRAY, (STRING, ["a", "bc"])),
         ("general.flag", BOOL, 1)],
        [("blk.0.attn_q.weight", 8, [64, 2]), ("output_norm.weight", 0, [4])], seed=1)
    yield "all_types.gguf", gguf(
        [("u8", UINT8, 200), ("i8", INT8, -5), ("u16", UINT16, 65000), ("i16", INT16, -300),
         ("u32", UINT32, 4000000000), ("i32", INT32, -7), ("f32", FLOAT32, 1.5), ("b", BOOL, 0),
         ("str", STRING, "h\u00e9llo"), ("u64", UINT64, 2**63 + 5), ("i64", INT64, -2**40),
         ("f64", FLOAT64, -2.25), ("arr.i32", ARRAY, (INT32, [1, -2, 3])),
         ("arr.f32", ARRAY, (FLOAT32, [0.5, 2.0])), ("arr.str", ARRAY, (STRING, ["x", "", "yz"])),
         ("arr.empty", ARRAY, (UINT8, [])),
         ("arr.nested", ARRAY, (ARRAY, [(INT16, [4, 5]), (STRING, ["n"]), (ARRAY, [(BOOL, [1])])])),
         ("tokenizer.ggml.scores", ARRAY, (FLOAT32, [0.0, -1.0, -2.0, -3.0]))],
        [("token_embd.weight", 0, [4, 2])], seed=2)
    yield "v2_align64.gguf", gguf(
        [("general.alignment", UINT32, 64), ("general.name", STRING, "v2")],
        [("blk.0.ffn_down_exps.weight", 8, [32, 2, 3]), ("blk.0.ffn_gate_inp.weight", 0, [3, 1]),
         ("blk.0.attn_k.weight", 12, [256, 1]), ("empty", 0, [0, 2])], version=2, alignment=64, seed=3)
    yield "quant_types.gguf", gguf(
        [("general.architecture", STRING, "qwen3moe"), ("qwen3moe.block_count", UINT32, 1)],
        [("a", 2, [32]), ("b", 14, [256]), ("c", 16, [256]), ("d", 20, [32, 1, 1, 1]), ("e", 30, [2, 2]),
         ("f", 39, [32]), ("g", 1, [3])], seed=4)
    yield "no_final_pad.gguf", gguf(
        [("split.no", UINT16, 0), ("split.count", UINT16, 1), ("split.tensors.count", INT32, 2)],
        [("x", 0, [3]), ("y", 1, [5])], final_pad=False, seed=5)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "gguf")
    os.makedirs(out_dir, exist_ok=True)
    for name, data in files():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
