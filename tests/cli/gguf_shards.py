#!/usr/bin/env python3
"""Checks of `qkern quantize --shard I/N` output, with the standard library only.

  gguf_shards.py check SINGLE.gguf OUT N
      The parts OUT-00001-of-0000N.gguf .. OUT-0000N-of-0000N.gguf against the unsharded run
      SINGLE: the split keys of every part (split.no U16 0-based, split.count U16, split.tensors.count
      I32 = all tensors); part 1's metadata is SINGLE's, pair for pair, then the split keys; the other
      parts hold the split keys alone (as gguf-split writes them); every tensor of SINGLE is in exactly
      one part, in SINGLE's order, with its type, shape and bytes; the parts' data sections, one after
      the other, are SINGLE's data section byte for byte (what a merge writes); no part is empty and
      none exceeds its share by more than the largest tensor.
  gguf_shards.py touch IN.gguf OUT.gguf NAME
      A copy of IN with one bit of tensor NAME changed in the middle of its data (the lowest bit
      of a 4-byte-aligned byte: a float's mantissa, whatever the float type), as a fine-tune might.
  gguf_shards.py merged MERGED.gguf SINGLE.gguf
      A merge of the parts (gguf-split --merge) against SINGLE: the same tensors (names, types,
      shapes, order, offsets) and data section byte for byte; its metadata is SINGLE's plus the split
      keys gguf-split leaves (split.count 0).
"""
import os
import struct
import sys

FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
U16, I32, U32 = 2, 5, 4
SPLIT_KEYS = ["split.no", "split.count", "split.tensors.count"]


class Gguf:
    """The header of a GGUF file: metadata pairs (key, type, raw value bytes) in order, tensor
    infos (name, type, dims, offset) in order, and the data section."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = f.read()
        self.pos = 0
        if self.take("<I") != 0x46554747:
            raise SystemExit(f"{path}: not a GGUF file")
        self.version = self.take("<I")
        n_tensors, n_kv = self.take("<Q"), self.take("<Q")
        self.kv = []
        for _ in range(n_kv):
            key = self.string()
            vtype = self.take("<I")
            start = self.pos
            self.skip_value(vtype)
            self.kv.append((key, vtype, self.data[start:self.pos]))
        self.tensors = []
        for _ in range(n_tensors):
            name = self.string()
            dims = tuple(self.take("<Q") for _ in range(self.take("<I")))
            self.tensors.append((name, self.take("<I"), dims, self.take("<Q")))
        align = self.value("general.alignment", 32)
        self.data_start = self.pos + (-self.pos % align)
        self.alignment = align

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        self.pos += n
        return self.data[self.pos - n:self.pos].decode("utf-8", "replace")

    def skip_value(self, vtype):
        if vtype == 8:
            self.string()
        elif vtype == 9:
            elem, count = self.take("<I"), self.take("<Q")
            for _ in range(count):
                self.skip_value(elem)
        else:
            self.pos += FIXED[vtype]

    def value(self, key, default=None):
        for k, vtype, raw in self.kv:
            if k == key:
                fmt = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 10: "<Q", 11: "<q"}[vtype]
                return struct.unpack(fmt, raw)[0]
        return default

    def keys(self):
        return [k for k, _, _ in self.kv]

    def tensor_bytes(self, i):
        """Tensor i's bytes: up to the next tensor's offset (or the file's end), so its padding too."""
        start = self.data_start + self.tensors[i][3]
        end = self.data_start + self.tensors[i + 1][3] if i + 1 < len(self.tensors) else len(self.data)
        return self.data[start:end]

    def data_section(self):
        return self.data[self.data_start:]


failures = 0


def expect(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}")


def split_path(prefix, k, n):
    return f"{prefix}-{k:05d}-of-{n:05d}.gguf"


def check(single_path, prefix, n):
    single = Gguf(single_path)
    parts = []
    for k in range(1, n + 1):
        path = split_path(prefix, k, n)
        expect(os.path.isfile(path), f"part {k}: {path} exists")
        if not os.path.isfile(path):
            return
        parts.append(Gguf(path))
    n_all = len(single.tensors)
    for k, part in enumerate(parts, 1):
        name = os.path.basename(part.path)
        expect(part.value("split.no") == k - 1, f"{name}: split.no {part.value('split.no')} == {k - 1}")
        expect(part.value("split.count") == n, f"{name}: split.count {part.value('split.count')} == {n}")
        expect(part.value("split.tensors.count") == n_all,
               f"{name}: split.tensors.count {part.value('split.tensors.count')} == {n_all}")
        types = {key: vtype for key, vtype, _ in part.kv}
        expect([types.get(key) for key in SPLIT_KEYS] == [U16, U16, I32], f"{name}: split key types U16, U16, I32")
        if k == 1:
            expect(part.kv[:-3] == single.kv, f"{name}: metadata is the single run's, pair for pair")
            expect(part.keys()[-3:] == SPLIT_KEYS, f"{name}: then the split keys {part.keys()[-3:]}")
        else:
            expect(part.keys() == SPLIT_KEYS, f"{name}: only the split keys, not {part.keys()[:5]}...")
        expect(part.version == single.version, f"{name}: GGUF version {part.version}")
        expect(len(part.tensors) > 0 or n > n_all, f"{name}: has tensors")

    # every tensor once, in order, the same bytes; the data sections concatenated are the single run's
    joined = [(p, i) for p in parts for i in range(len(p.tensors))]
    expect(len(joined) == n_all, f"{len(joined)} tensors in the parts, {n_all} in the single run")
    for j, (p, i) in enumerate(joined[:n_all]):
        got, want = p.tensors[i][:3], single.tensors[j][:3]
        expect(got == want, f"tensor {j}: {got} in {os.path.basename(p.path)}, the single run has {want}")
        if got == want:
            expect(p.tensor_bytes(i) == single.tensor_bytes(j), f"tensor {want[0]}: bytes differ")
    expect(b"".join(p.data_section() for p in parts) == single.data_section(),
           "the parts' data sections, concatenated, are the single run's")

    # balance: no part over its share by more than the largest tensor
    sizes = [len(p.data_section()) for p in parts]
    largest = max((len(single.tensor_bytes(j)) for j in range(n_all)), default=0)
    share = sum(sizes) / n
    expect(max(sizes) <= share + largest, f"part sizes {sizes}: none over {share:.0f} + {largest}")
    print(f"{n} parts of {n_all} tensors: {[len(p.tensors) for p in parts]} tensors, {sizes} bytes of data")


def merged(merged_path, single_path):
    m, single = Gguf(merged_path), Gguf(single_path)
    expect(m.tensors == single.tensors, "merged: tensor infos (names, types, shapes, offsets) are the single run's")
    expect(m.data_section() == single.data_section(), "merged: data section is the single run's byte for byte")
    kept = [kv for kv in m.kv if kv[0] not in SPLIT_KEYS]
    expect(kept == single.kv, "merged: metadata without the split keys is the single run's")
    expect(m.value("split.count") == 0, f"merged: split.count {m.value('split.count')} (gguf-split writes 0)")
    print(f"merged: {len(m.tensors)} tensors, {len(m.data_section())} bytes of data, as the single run")


def touch(in_path, out_path, name):
    g = Gguf(in_path)
    names = [t[0] for t in g.tensors]
    if name not in names:
        raise SystemExit(f"{in_path}: no tensor {name}")
    i = names.index(name)
    at = g.data_start + g.tensors[i][3] + (len(g.tensor_bytes(i)) // 2 & ~3)
    data = bytearray(g.data)
    data[at] ^= 1
    with open(out_path, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 5 and sys.argv[1] == "touch":
        touch(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "merged":
        merged(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
    sys.exit(1 if failures else 0)
