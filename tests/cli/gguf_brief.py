#!/usr/bin/env python3
"""GGUF headers for the llama-quantize parity test, with the standard library only.

  gguf_brief.py dump FILE...   one line per metadata pair ("kv KEY TYPE VALUE", in file order;
                               arrays as their count and a digest) and per tensor ("tensor NAME
                               TYPE SHAPE"), in file order
  gguf_brief.py odd OUT.gguf   a small llama model whose rows (96 and 80 values) fit no 256-block,
                               so that k-quant presets need fallback types (80 fits no 32-block)
"""
import hashlib
import random
import struct
import sys

# GGUF value types: struct format of the scalars; 8 is a string, 9 an array
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
TYPE_NAMES = {0: "U8", 1: "I8", 2: "U16", 3: "I16", 4: "U32", 5: "I32", 6: "F32", 7: "BOOL", 8: "STR",
              9: "ARRAY", 10: "U64", 11: "I64", 12: "F64"}


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return v[0]

    def string(self):
        n = self.take("Q")
        s = self.data[self.pos:self.pos + n]
        self.pos += n
        return s.decode("utf-8", "replace")

    def value(self, vtype):
        if vtype == 8:
            return self.string()
        if vtype == 9:
            elem, count = self.take("I"), self.take("Q")
            return (elem, [self.value(elem) for _ in range(count)])
        return self.take(SCALARS[vtype])


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    r = Reader(data)
    if r.take("I") != 0x46554747:
        raise SystemExit(f"{path}: not a GGUF file")
    r.take("I")  # version
    n_tensors, n_kv = r.take("Q"), r.take("Q")
    kv = {}
    for _ in range(n_kv):
        key = r.string()
        vtype = r.take("I")
        kv[key] = (vtype, r.value(vtype))
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        dims = [r.take("Q") for _ in range(r.take("I"))]
        ttype = r.take("I")
        r.take("Q")  # offset
        tensors.append((name, ttype, dims))
    return kv, tensors


def show(vtype, value):
    if vtype == 9:
        elem, items = value
        digest = hashlib.sha1(repr(items).encode()).hexdigest()[:12]
        return f"[{len(items)} x {TYPE_NAMES[elem]}] {digest}"
    if vtype == 6:
        return repr(struct.unpack("<f", struct.pack("<f", value))[0])
    return repr(value)


def dump(paths):
    for path in paths:
        kv, tensors = read(path)
        for key in kv:
            vtype, value = kv[key]
            print(f"kv {key} {TYPE_NAMES[vtype]} {show(vtype, value)}")
        for name, ttype, dims in tensors:
            print(f"tensor {name} {ttype} {'x'.join(map(str, dims))}")


def write_odd(path):
    n_embd, n_ff, n_vocab, n_layer, n_head, n_head_kv = 96, 80, 64, 4, 4, 2
    kv = [("general.architecture", 8, "llama"), ("general.name", 8, "odd"), ("general.file_type", 4, 0),
          ("llama.context_length", 4, 256), ("llama.embedding_length", 4, n_embd),
          ("llama.block_count", 4, n_layer), ("llama.feed_forward_length", 4, n_ff),
          ("llama.attention.head_count", 4, n_head), ("llama.attention.head_count_kv", 4, n_head_kv),
          ("llama.rope.dimension_count", 4, n_embd // n_head),
          ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5), ("llama.vocab_size", 4, n_vocab)]
    kv_dim = n_embd // n_head * n_head_kv
    shapes = [("token_embd.weight", [n_embd, n_vocab])]
    for i in range(n_layer):
        b = f"blk.{i}."
        shapes += [(b + "attn_norm.weight", [n_embd]), (b + "attn_q.weight", [n_embd, n_embd]),
                   (b + "attn_k.weight", [n_embd, kv_dim]), (b + "attn_v.weight", [n_embd, kv_dim]),
                   (b + "attn_output.weight", [n_embd, n_embd]), (b + "ffn_norm.weight", [n_embd]),
                   (b + "ffn_gate.weight", [n_embd, n_ff]), (b + "ffn_up.weight", [n_embd, n_ff]),
                   (b + "ffn_down.weight", [n_ff, n_embd])]
    shapes += [("output_norm.weight", [n_embd]), ("output.weight", [n_embd, n_vocab])]

    def s(text):
        b = text.encode()
        return struct.pack("<Q", len(b)) + b

    head = struct.pack("<IIQQ", 0x46554747, 3, len(shapes), len(kv))
    for key, vtype, value in kv:
        head += s(key) + struct.pack("<I", vtype)
        head += s(value) if vtype == 8 else struct.pack("<" + SCALARS[vtype], value)
    rng = random.Random(11)
    blobs, offset = [], 0
    for name, dims in shapes:
        n = 1
        for d in dims:
            n *= d
        head += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        head += struct.pack("<IQ", 0, offset)  # F32
        blob = struct.pack(f"<{n}f", *(rng.gauss(0.0, 0.02) for _ in range(n)))
        blob += b"\0" * (-len(blob) % 32)
        blobs.append(blob)
        offset += len(blob)
    head += b"\0" * (-len(head) % 32)
    with open(path, "wb") as f:
        f.write(head + b"".join(blobs))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "dump":
        dump(sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "odd":
        write_odd(sys.argv[2])
    else:
        raise SystemExit(__doc__)
