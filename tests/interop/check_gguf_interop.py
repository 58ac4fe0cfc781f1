#!/usr/bin/env python3
"""qkern's GGUF output, read by llama.cpp's own Python reader (the `gguf` package).

usage: check_gguf_interop.py QKERN_BINARY WORK_DIR

1. `qkern generate` writes a tiny synthetic MoE model and its imatrix (fresh seed each run,
   printed; QK_TEST_SEED replays one).
2. `qkern quantize` makes one file per quantized type that `qkern types` lists and the gguf package
   can dequantize (`--pure --tensor-type '.*=TYPE'` over a
   Q8_0 base; for IQ2_XXS, IQ2_XS and IQ1_S, which cannot be made without imatrix data, only the
   blk.* tensors, as output.weight and token_embd.weight have none), the F16/BF16/F32 presets,
   and the mixture presets Q4_K_M, IQ2_XXS, MXFP4_MOE and Q3_K_S, these also on a "small" model
   (16 experts: llama.cpp treats 8-expert models specially).
3. Each file is read with gguf.GGUFReader: every input metadata pair is present with the same
   type and value (general.file_type = the preset's llama_ftype, general.quantization_version = 2,
   quantize.imatrix.* describing the imatrix given); the same tensor names and shapes; each tensor
   of the type llama-quantize's rules give it (re-derived here from llama.cpp's llama-quant.cpp,
   not taken from qkern).
4. `qkern quantize --allow-requantize FILE d.gguf F32` dequantizes every tensor with qkern; each
   must equal gguf.quants.dequantize() of the quantized tensor bit for bit.
Exits 0 only if everything agrees; 77 (ctest's skip code) when the gguf package is missing.
"""

import os
import random
import re
import subprocess
import sys
import time

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as T
except ImportError as e:  # the package comes with scripts/setup.sh
    print(f"SKIP: the Python packages gguf and numpy are needed ({e}); scripts/setup.sh installs them")
    sys.exit(77)


def quant_types(qkern):
    """Every quantized type of qkern's format table (`qkern types`), applied to all quantizable
    tensors, that this gguf package can read and dequantize; the others are named and left out."""
    out = subprocess.run([qkern, "types"], capture_output=True, text=True, check=True).stdout
    names = [line.split("|")[1].strip() for line in out.splitlines()[2:] if line.startswith("|")]
    usable, missing = [], []
    for name in names:
        t = getattr(T, name, None)
        if t in (T.F32, T.F16, T.BF16):
            continue
        (usable if t is not None and t in gguf.quants._type_traits else missing).append(name)
    if missing:
        print("not checked (the installed gguf package has no dequantizer for them): " + ", ".join(missing))
    return usable


# ggml cannot make these without importance data (llama-quantize would assert), and llama-imatrix
# collects none for token_embd.weight (a lookup) or output.weight (without --process-output).
NEEDS_IMATRIX = {"IQ2_XXS", "IQ2_XS", "IQ1_S"}
FLOAT_PRESETS = ["F16", "BF16", "F32"]
MIXTURE_PRESETS = ["Q4_K_M", "IQ2_XXS", "MXFP4_MOE", "Q3_K_S"]

# llama_ftype number and default tensor type of each preset (llama.cpp's llama_ftype enum and
# llama_ftype_get_default_type).
PRESETS = {
    "F32": (0, T.F32), "F16": (1, T.F16), "Q4_0": (2, T.Q4_0), "Q4_1": (3, T.Q4_1), "Q8_0": (7, T.Q8_0),
    "Q5_0": (8, T.Q5_0), "Q5_1": (9, T.Q5_1), "Q2_K": (10, T.Q2_K), "Q3_K_S": (11, T.Q3_K),
    "Q3_K_M": (12, T.Q3_K), "Q3_K_L": (13, T.Q3_K), "Q4_K_S": (14, T.Q4_K), "Q4_K_M": (15, T.Q4_K),
    "Q5_K_S": (16, T.Q5_K), "Q5_K_M": (17, T.Q5_K), "Q6_K": (18, T.Q6_K), "IQ2_XXS": (19, T.IQ2_XXS),
    "IQ2_XS": (20, T.IQ2_XS), "Q2_K_S": (21, T.Q2_K), "IQ3_XS": (22, T.IQ3_S), "IQ3_XXS": (23, T.IQ3_XXS),
    "IQ1_S": (24, T.IQ1_S), "IQ4_NL": (25, T.IQ4_NL), "IQ3_S": (26, T.IQ3_S), "IQ3_M": (27, T.IQ3_S),
    "IQ2_S": (28, T.IQ2_XS), "IQ2_M": (29, T.IQ2_S), "IQ4_XS": (30, T.IQ4_XS), "IQ1_M": (31, T.IQ1_M),
    "BF16": (32, T.BF16), "TQ1_0": (36, T.TQ1_0), "TQ2_0": (37, T.TQ2_0), "MXFP4_MOE": (38, T.MXFP4),
}
FLOAT_TYPES = {T.F32, T.F16, T.BF16}


def block_size(t):
    return gguf.GGML_QUANT_SIZES[t][0]


# ---- llama-quantize's choice of tensor types --------------------------------------------------

def quantizable(name, n_dims):
    """llama-quant.cpp tensor_allows_quantization, for the names a qwen35moe model has."""
    if n_dims < 2 or not name.endswith("weight"):
        return False
    excluded = ["_norm.weight", "ffn_gate_inp.weight", "ssm_conv1d", "altup", "laurel", "per_layer_model_proj",
                "shortconv.conv.weight", "attn_rel_b.weight", "time_mix_"]
    return not any(s in name for s in excluded)


def category(name):
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for needle, cat in (("attn_qkv.weight", "attn_v"), ("attn_kv_b.weight", "attn_v"), ("attn_v.weight", "attn_v"),
                        ("attn_k.weight", "attn_k"), ("attn_q.weight", "attn_q"),
                        ("attn_output.weight", "attn_output"), ("ffn_up", "ffn_up"), ("ffn_gate", "ffn_gate"),
                        ("ffn_down", "ffn_down")):
        if needle in name:
            return cat
    return "other"


def more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


class MixState:
    def __init__(self, names, n_layer):
        self.n_v = sum(category(n) == "attn_v" for n in names)
        self.tied = "output.weight" not in names
        self.i_v = self.i_down = self.i_gate = self.i_up = 0
        self.n_layer = n_layer


def layer_of(name, running, n_expert):
    if n_expert > 1:
        return int(re.match(r"blk\.(\d+)\.", name).group(1))
    return running


def mixture(ft, new, name, ne, hp, st, has_imatrix):
    """llama_tensor_get_type_impl: the preset's per-category adjustments."""
    cat, E, gqa4 = category(name), hp["n_expert"], hp["n_gqa"] >= 4
    iq_low = {"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"}
    if cat == "output" or (st.tied and cat == "token_embd"):
        if ft == "MXFP4_MOE" or ne[0] % block_size(new):
            return T.Q8_0
        if ft in iq_low | {"IQ3_XXS"}:
            return T.Q5_K
        return new if new == T.Q8_0 else T.Q6_K
    if ft == "MXFP4_MOE":
        return T.MXFP4 if ne[2] > 1 else T.Q8_0
    if cat == "token_embd":
        if ft in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            return T.Q2_K
        if ft in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
            return T.IQ3_S
        if ft in ("TQ1_0", "TQ2_0"):
            return T.Q4_K
        return new
    if ft in iq_low:
        if cat == "attn_v":
            st.i_v += 1
            return T.Q4_K if gqa4 or E >= 4 else (T.IQ3_S if ft in ("IQ2_S", "IQ2_M") else T.Q2_K)
        if cat == "attn_k" and E == 8:
            return T.Q4_K
        if cat == "ffn_down":
            if st.i_down < st.n_layer // 8:
                new = T.IQ3_S if ft in ("IQ2_S", "IQ2_M") else T.Q2_K
            st.i_down += 1
            return new
        if cat == "attn_output":
            if E == 8:
                return T.Q5_K
            if ft in ("IQ1_S", "IQ1_M"):
                return T.IQ2_XXS
            if ft in ("IQ2_S", "IQ2_M"):
                return T.IQ3_S
        return new
    if cat == "attn_v":
        i, n = st.i_v, st.n_v
        if ft == "Q2_K":
            new = T.Q4_K if gqa4 else T.Q3_K
        elif ft == "Q2_K_S" and gqa4:
            new = T.Q4_K
        elif ft == "IQ3_XXS":
            new = T.Q4_K if gqa4 else (T.IQ3_XXS if has_imatrix else T.IQ3_S)
        elif ft in ("IQ3_XS", "IQ3_S") and gqa4:
            new = T.Q4_K
        elif ft == "IQ3_M":
            new = T.Q4_K
        elif ft == "Q3_K_M":
            new = T.Q5_K if i < 2 else T.Q4_K
        elif ft == "Q3_K_L":
            new = T.Q5_K
        elif ft in ("IQ4_NL", "IQ4_XS") and gqa4:
            new = T.Q5_K
        elif ft in ("Q4_K_M", "Q5_K_M") and more_bits(i, n):
            new = T.Q6_K
        elif ft == "Q4_K_S" and i < 4:
            new = T.Q5_K
        if E == 8:
            new = T.Q8_0
        st.i_v += 1
        return new
    if cat == "attn_k":
        if E == 8:
            return T.Q8_0
        return {"IQ3_XS": T.IQ3_XXS, "IQ3_XXS": T.IQ2_S}.get(ft, new)
    if cat == "attn_q":
        return {"IQ3_XS": T.IQ3_XXS, "IQ3_XXS": T.IQ2_S}.get(ft, new)
    if cat == "ffn_down":
        i, n = layer_of(name, st.i_down, E), st.n_layer
        st.i_down += 1
        if ft == "Q2_K":
            return T.Q3_K
        if ft == "Q2_K_S":
            return T.Q4_K if i < n // 8 else new
        if ft == "IQ3_XXS" and not has_imatrix:
            return T.Q4_K if i < n // 8 else T.Q3_K
        if ft == "Q3_K_M":
            return T.Q5_K if i < n // 16 else T.Q4_K
        if ft == "IQ3_M" and (i < n // 8 or (E == 8 and more_bits(i, n))):
            return T.Q4_K
        if ft == "Q3_K_L":
            return T.Q5_K
        if ft == "Q4_K_M":
            return T.Q6_K if more_bits(i, n) else new
        if i < n // 8 and ft in ("IQ4_NL", "IQ4_XS") and not has_imatrix:
            return T.Q5_K
        if ft == "Q5_K_M" and more_bits(i, n):
            return T.Q6_K
        if ft == "Q4_K_S" and i < n // 8:
            return T.Q5_K
        if ft in ("Q4_0", "Q5_0") and has_imatrix and i < n // 8:
            return T.Q4_1 if ft == "Q4_0" else T.Q5_1
        return new
    if cat == "attn_output":
        if E == 8:
            bumped = {"Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ3_S",
                      "IQ3_M", "IQ4_XS"}
            return T.Q5_K if ft in bumped else new
        return {"Q2_K": T.Q3_K, "IQ3_XXS": T.IQ3_S, "Q3_K_M": T.Q4_K, "Q3_K_L": T.Q5_K, "IQ3_M": T.Q4_K}.get(ft, new)
    if cat in ("ffn_gate", "ffn_up"):
        i, n = layer_of(name, st.i_gate if cat == "ffn_gate" else st.i_up, E), st.n_layer
        if cat == "ffn_gate":
            st.i_gate += 1
        else:
            st.i_up += 1
        if ft == "IQ3_XS" and n // 8 <= i < 7 * n // 8:
            return T.IQ3_XXS
    return new


def fallback(t, ncols):
    if ncols % block_size(t) == 0:
        return t
    if t in (T.IQ1_S, T.IQ1_M, T.IQ2_XXS, T.IQ2_XS, T.IQ2_S, T.IQ3_XXS, T.IQ3_S, T.IQ4_XS):
        f = T.IQ4_NL
    elif t in (T.Q2_K, T.Q3_K, T.TQ1_0, T.TQ2_0):
        f = T.Q4_0
    else:
        f = {T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}[t]
    return f if ncols % block_size(f) == 0 else T.F16


def sort_key(name):
    m = re.match(r"blk\.(\d+)\.", name)
    return (int(m.group(1)) if m else -1, name.encode())


def expected_types(src, preset, override, pure, has_imatrix):
    """Type of every tensor of `qkern quantize [--pure] [--tensor-type PATTERN=TYPE] src preset`;
    override is (PATTERN, TYPE) or None."""
    ft_default = PRESETS[preset][1]
    hp = {"n_expert": max(1, field_value(src, arch_key(src, "expert_count"), 1)),
          "n_gqa": field_value(src, arch_key(src, "attention.head_count"), 1)
          // max(1, field_value(src, arch_key(src, "attention.head_count_kv"), 1))}
    tensors = sorted(src.tensors, key=lambda t: sort_key(t.name))
    st = MixState([t.name for t in tensors], field_value(src, arch_key(src, "block_count"), 1))
    out = {}
    for t in tensors:
        ne = [int(x) for x in t.shape] + [1] * (3 - len(t.shape))
        if not quantizable(t.name, len(t.shape)):
            out[t.name] = t.tensor_type
            continue
        new = ft_default
        if ft_default not in FLOAT_TYPES:
            if override is not None and re.search(override[0], t.name):
                new = override[1]
            elif not pure:
                new = mixture(preset, new, t.name, ne, hp, st, has_imatrix)
            new = fallback(new, ne[0])
        out[t.name] = new
    return out


# ---- reading metadata --------------------------------------------------------------------------

def fields(r):
    return {k: f for k, f in r.fields.items() if not k.startswith("GGUF.")}


def field_value(r, key, default=None):
    f = r.fields.get(key)
    return default if f is None else f.contents()


def arch_key(r, suffix):
    return f"{field_value(r, 'general.architecture')}.{suffix}"


def same_field(a, b):
    return list(a.types) == list(b.types) and a.contents() == b.contents()


class Result:
    def __init__(self, label):
        self.label, self.errors = label, []
        self.tensors = self.quantized = self.checked = self.values = self.mismatches = 0

    def fail(self, msg):
        if len(self.errors) < 12:
            self.errors.append(msg)
        elif len(self.errors) == 12:
            self.errors.append("(further errors not shown)")


def check_metadata(res, src, out, ftype, imatrix_path, im):
    sf, of = fields(src), fields(out)
    for k, f in sf.items():
        if k in ("general.file_type", "general.quantization_version"):
            continue
        if k not in of:
            res.fail(f"metadata {k} missing")
        elif not same_field(f, of[k]):
            res.fail(f"metadata {k}: {str(of[k].contents())[:60]} differs from the input's {str(f.contents())[:60]}")
    if field_value(out, "general.file_type") != ftype:
        res.fail(f"general.file_type {field_value(out, 'general.file_type')}, expected {ftype}")
    if field_value(out, "general.quantization_version") != 2:
        res.fail(f"general.quantization_version {field_value(out, 'general.quantization_version')}, expected 2")
    expected_im = {}
    if imatrix_path:
        expected_im = {
            "quantize.imatrix.file": imatrix_path[:127],
            "quantize.imatrix.dataset": field_value(im, "imatrix.datasets")[0][:127],
            "quantize.imatrix.entries_count": sum(t.name.endswith(".in_sum2") for t in im.tensors),
            "quantize.imatrix.chunks_count": field_value(im, "imatrix.chunk_count"),
        }
    for k, v in expected_im.items():
        if k not in of:
            res.fail(f"metadata {k} missing")
        elif of[k].contents() != v:
            res.fail(f"metadata {k} = {of[k].contents()!r}, expected {v!r}")
    known = set(sf) | {"general.file_type", "general.quantization_version"} | set(expected_im)
    for k in of:
        if k not in known:
            res.fail(f"metadata {k} not in the input")


def check_tensors(res, src, out, expected):
    st = {t.name: t for t in src.tensors}
    ot = {t.name: t for t in out.tensors}
    if set(st) != set(ot):
        res.fail(f"tensor names differ: missing {sorted(set(st) - set(ot))[:4]}, extra {sorted(set(ot) - set(st))[:4]}")
    res.tensors = len(ot)
    for name, t in ot.items():
        if name not in st:
            continue
        if [int(x) for x in t.shape] != [int(x) for x in st[name].shape]:
            res.fail(f"{name}: shape {list(map(int, t.shape))}, input {list(map(int, st[name].shape))}")
        if t.tensor_type != expected[name]:
            res.fail(f"{name}: type {t.tensor_type.name}, expected {expected[name].name}")
        res.quantized += t.tensor_type not in FLOAT_TYPES


def check_dequantized(res, qfile, dfile):
    q, d = gguf.GGUFReader(qfile), gguf.GGUFReader(dfile)
    dt = {t.name: t for t in d.tensors}
    for t in q.tensors:
        if t.name not in dt:
            res.fail(f"dequantized file lacks {t.name}")
            continue
        u = dt[t.name]
        if u.tensor_type != T.F32:
            res.fail(f"dequantized {t.name} is {u.tensor_type.name}, not F32")
            continue
        ours = np.asarray(u.data, dtype=np.float32).reshape(-1).view(np.uint32)
        ref = np.ascontiguousarray(gguf.quants.dequantize(np.asarray(t.data), t.tensor_type), dtype=np.float32)
        ref = ref.reshape(-1).view(np.uint32)
        res.checked += 1
        res.values += ref.size
        if ours.size != ref.size:
            res.fail(f"{t.name}: {ours.size} dequantized values, gguf-py gives {ref.size}")
            res.mismatches += max(ours.size, ref.size)
            continue
        bad = np.flatnonzero(ours != ref)
        if bad.size:
            i = int(bad[0])
            res.mismatches += int(bad.size)
            res.fail(f"{t.name} ({t.tensor_type.name}): {bad.size} values differ; first at {i}: qkern "
                     f"{ours[i:i + 1].view(np.float32)[0]!r} (0x{ours[i]:08x}), gguf-py "
                     f"{ref[i:i + 1].view(np.float32)[0]!r} (0x{ref[i]:08x})")


def run(cmd, log):
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n" + p.stdout + f"(exit {p.returncode}, {time.time() - t0:.1f} s)\n\n")
    return p


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    qkern, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.makedirs(work, exist_ok=True)
    os.chdir(work)
    log = os.path.join(work, "interop.log")
    open(log, "w").close()
    seed = int(os.environ.get("QK_TEST_SEED", random.SystemRandom().randrange(1 << 31)))
    print(f"seed {seed} (QK_TEST_SEED={seed} replays it); commands and output in {log}")

    models = {}
    for size in ("tiny", "small"):
        model, imatrix = f"m_{size}.gguf", f"im_{size}.gguf"
        p = run([qkern, "generate", "--size", size, "--seed", str(seed), "--imatrix", imatrix, model], log)
        if p.returncode != 0:
            print(f"FAIL: qkern generate exited {p.returncode}:\n{p.stdout}")
            return 1
        print(p.stdout.strip())
        models[size] = (model, imatrix, gguf.GGUFReader(model), gguf.GGUFReader(imatrix))

    jobs = []  # (label, model size, preset, --tensor-type (pattern, type) or None, --pure)
    for name in quant_types(qkern):
        jobs.append((name, "tiny", "Q8_0", (r"blk\." if name in NEEDS_IMATRIX else ".*", getattr(T, name)), True))
    jobs += [(name, "tiny", name, None, False) for name in FLOAT_PRESETS]
    jobs += [(f"{name} {size}", size, name, None, False) for size in ("tiny", "small") for name in MIXTURE_PRESETS]

    results = []
    for label, size, preset, override, pure in jobs:
        model, imatrix, src, im = models[size]
        res = Result(label)
        results.append(res)
        tag = label.replace(" ", "_")
        qfile, dfile = f"q_{tag}.gguf", f"d_{tag}.gguf"
        cmd = [qkern, "quantize", "--imatrix", imatrix]
        if pure:
            cmd.append("--pure")
        if override is not None:
            cmd += ["--tensor-type", f"{override[0]}={override[1].name}"]
        t0 = time.time()
        p = run(cmd + [model, qfile, preset], log)
        if p.returncode != 0:
            res.fail(f"qkern quantize exited {p.returncode}: {p.stdout.strip().splitlines()[-1:]}")
            print(f"  {label:18s} FAIL (quantize)", flush=True)
            continue
        out = gguf.GGUFReader(qfile)
        check_metadata(res, src, out, PRESETS[preset][0], imatrix, im)
        check_tensors(res, src, out, expected_types(src, preset, override, pure, True))
        p = run([qkern, "quantize", "--allow-requantize", qfile, dfile, "F32"], log)
        if p.returncode != 0:
            res.fail(f"qkern quantize to F32 exited {p.returncode}: {p.stdout.strip().splitlines()[-1:]}")
        else:
            d = gguf.GGUFReader(dfile)
            dres = Result("F32 copy")
            check_tensors(dres, out, d, {t.name: T.F32 for t in out.tensors})
            for e in dres.errors:
                res.fail("F32 copy: " + e)
            check_dequantized(res, qfile, dfile)
            os.remove(dfile)
            del d
        del out
        if not res.errors:
            os.remove(qfile)
        print(f"  {label:18s} {'ok' if not res.errors else 'FAIL':4s} {time.time() - t0:5.1f} s", flush=True)

    print(f"\n| {'output':18s} | tensors | quantized | dequantized tensors | values    | mismatching | result |")
    print(f"|{'-' * 20}|--------:|----------:|--------------------:|----------:|------------:|--------|")
    for r in results:
        print(f"| {r.label:18s} | {r.tensors:7d} | {r.quantized:9d} | {r.checked:19d} | {r.values:9d} | "
              f"{r.mismatches:11d} | {'ok' if not r.errors else 'FAIL':6s} |")
    failed = [r for r in results if r.errors]
    for r in failed:
        print(f"\n{r.label}:")
        for e in r.errors:
            print(f"  {e}")
    total = sum(r.values for r in results)
    print(f"\n{len(results) - len(failed)} of {len(results)} outputs agree with gguf-py "
          f"({total} dequantized values compared bit for bit); seed {seed}")
    if failed:
        print(f"failing outputs are kept in {work}")
        return 1
    for model, imatrix, _, _ in models.values():
        os.remove(model)
        os.remove(imatrix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
