#!/usr/bin/env python3
"""Turns Google Benchmark JSON files of qkern_bench_cuda and qkern_bench_moe into bench/results
JSONL records (one object per line: device, date, commit, backend, op, type, shape, tokens,
value, unit, ceiling, ceiling_unit, fraction), so that runs can be compared across commits by a
script; and prints the closing note's markdown table from such records.

quantize / dequantize (qkern_bench_cuda): value: GB/s of input or of output, whichever is
larger; ceiling: the device-to-device copy of the same run in GB/s (bytes read + written);
fraction: (input + output bytes) / time over that ceiling.

moe_tg (1 token) / moe_pp (8 or more tokens) (qkern_bench_moe): value: microseconds per op;
ceiling: the roofline of the op in microseconds, max(bytes of the experts the routing touches /
copy bandwidth, FLOPs / dense bf16 cuBLAS rate), both measured in the same run; fraction:
roofline / measured time, 1.0 at the roofline. The fused entry points are marked in the shape
("... fused gate_up+silu", "... fused weighted_sum") and in `variant`.

usage: to_jsonl.py BENCH.json DEVICE COMMIT [OUT.jsonl] [MORE.json ...]
       to_jsonl.py --table RESULTS.jsonl [...]

DEVICE "auto" takes the device name from the benchmark's context (qkern_bench_moe writes it).
MORE.json: further Google Benchmark JSON files (e.g. qkern_bench_moe's next to qkern_bench_cuda's),
or `qkern bench quantize --format json` output, whose quantize_model records (value: seconds of
kernel time, the preset in `type`) are appended with the same device and commit."""
import json
import sys

MODEL = "qwen3.5-35b-a3b"
# issue 5, item 6: 1 token within 3.5 us per op; 8 to 2048 tokens within 1.4x the roofline
TG_TARGET_US = 3.5
PP_TARGET_FRACTION = 1 / 1.4
VARIANT_SUFFIX = {"gate_up_fused": " fused gate_up+silu", "weighted_sum": " fused weighted_sum"}


def quantize_records(doc, device, commit):
    date = doc["context"]["date"]
    copy = next((b["GB/s"] for b in doc["benchmarks"] if b["name"].startswith("BM_copy_d2d")), None)
    for b in doc["benchmarks"]:
        name = b["name"]
        if b.get("error_occurred") or not (name.startswith("BM_quantize") or name.startswith("BM_dequantize")):
            continue
        op = "quantize" if name.startswith("BM_quantize") else "dequantize"
        label = b.get("label", "")
        yield {
            "device": device, "date": date, "commit": commit, "backend": "cuda", "op": op,
            "type": label.split()[0], "shape": "8192x4096", "tokens": None,
            "value": max(b["in_GB/s"], b["out_GB/s"]) / 1e9, "unit": "GB/s",
            "ceiling": copy, "ceiling_unit": "GB/s (device-to-device copy, read + write)",
            "fraction": b["of_copy"], "weights_per_s": b["weights/s"], "imatrix": "imatrix" in label,
            "source": "bf16" if op == "quantize" else None,
            "output": label.split()[-1] if op == "dequantize" else None, "ms": b["real_time"] if b["time_unit"] == "ms" else b["real_time"] / 1e3,
        }


def moe_rows(doc):
    """The BM_moe rows that carry a result: with repetitions, each run's mean aggregate (with the
    stddev of its per-op time), otherwise the single run."""
    rows = [b for b in doc["benchmarks"] if b["name"].startswith("BM_moe/") and not b.get("error_occurred")]
    aggregated = {b["run_name"] for b in rows if b.get("run_type") == "aggregate"}
    stddev = {b["run_name"]: b.get("us") for b in rows if b.get("aggregate_name") == "stddev"}
    for b in rows:
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "mean":
                yield b, stddev.get(b["run_name"]), b.get("repetitions")
        elif b.get("run_name", b["name"]) not in aggregated:
            yield b, None, 1


def moe_records(doc, device, commit):
    ctx = doc["context"]
    date = ctx["date"]
    if device == "auto":
        device = ctx.get("device", "")
    for b, stddev, reps in moe_rows(doc):
        parts = b["name"].split("/")  # BM_moe/VARIANT/type:ID/tokens:N[/manual_time]
        variant = parts[1]
        tokens = int(dict(p.split(":", 1) for p in parts if ":" in p)["tokens"])
        # label: TYPE SHAPE MxK copies=C ops=N [prefix]
        words = b["label"].split()
        type_name, shape_name, mk = words[0], words[1], words[2]
        opts = dict(w.split("=", 1) for w in words[3:] if "=" in w)
        m, k = (int(v) for v in mk.split("x"))
        roof = b.get("roofline_us", 0.0)
        yield {
            "device": device, "date": date, "commit": commit, "backend": "cuda",
            "op": "moe_tg" if tokens == 1 else "moe_pp", "type": type_name,
            "shape": f"{MODEL} {shape_name} {mk}" + VARIANT_SUFFIX.get(variant, ""), "tokens": tokens,
            "value": b["us"], "unit": "us",
            "ceiling": roof if roof > 0 else None,
            "ceiling_unit": "us (roofline: max(expert bytes touched / copy bandwidth, FLOPs / bf16 cuBLAS GEMM rate))",
            "fraction": b["fraction"] if roof > 0 else None,
            "variant": "matmul" if variant.startswith("matmul") else variant, "m": m, "k": k, "n_expert": 256,
            "n_used": 8, "routing": "uniform", "x_type": "F32",
            "bytes_per_s": b["bytes_per_s"], "flops_per_s": b["flops_per_s"], "touched_bytes": b["touched_bytes"],
            "copy_bw": b["copy_bw"] or None, "gemm_rate": b["gemm_rate"] or None,
            "gemm_shape_rate": b.get("gemm_shape_rate") or None,
            "copies": int(opts.get("copies", 0)), "ops_per_graph": int(opts.get("ops", 0)),
            "repetitions": reps, "stddev_us": stddev,
        }


def model_records(recs, device, commit):
    for r in recs:
        yield {
            "device": device, "date": r["date"], "commit": commit, "backend": r["device"].split(":")[0],
            "op": r["op"], "type": r["type"], "shape": r["shape"], "tokens": None, "value": r["value"],
            "unit": r["unit"], "ceiling": None, "ceiling_unit": None, "fraction": None,
            "weights": r["weights"], "gweights_per_s": r["gweights_per_s"], "skipped": r["skipped"],
        }


def records(path, device, commit):
    doc = json.load(open(path))
    if isinstance(doc, dict) and "benchmarks" in doc:
        dev = device if device != "auto" else doc["context"].get("device", "")
        yield from quantize_records(doc, dev, commit)
        yield from moe_records(doc, device, commit)
    else:
        yield from model_records(doc, device, commit)


def table(paths):
    """type x tokens markdown tables of the MoE records, one per shape: us per op and the
    fraction of the roofline; cells that miss the issue's targets in bold."""
    recs = [json.loads(line) for p in paths for line in open(p) if line.strip()]
    recs = [r for r in recs if r.get("op") in ("moe_tg", "moe_pp")]
    if not recs:
        sys.exit("no moe_tg / moe_pp records")
    first = recs[0]
    ceil = [f"{first['device']}, commit {first['commit']}, {first['date']}"]
    if first.get("copy_bw"):
        ceil.append(f"copy bandwidth {first['copy_bw'] / 1e9:.0f} GB/s (read + write)")
    if first.get("gemm_rate"):
        ceil.append(f"bf16 cuBLAS GEMM {first['gemm_rate'] / 1e12:.0f} TFLOP/s")
    else:
        ceil.append("no GEMM ceiling: roofline from bandwidth only")
    print("; ".join(ceil) + ".\n")
    shapes, cells, types, tokens = [], {}, {}, {}
    for r in recs:
        s = r["shape"]
        if s not in shapes:
            shapes.append(s)
            types[s], tokens[s] = [], set()
        if r["type"] not in types[s]:
            types[s].append(r["type"])
        tokens[s].add(r["tokens"])
        cells[s, r["type"], r["tokens"]] = r
    for s in shapes:
        cols = sorted(tokens[s])
        print(f"**{s}**: us per op (fraction of the roofline)\n")
        print("| type | " + " | ".join(f"{t} tok" for t in cols) + " |")
        print("|---|" + "---:|" * len(cols))
        for ty in types[s]:
            row = []
            for t in cols:
                r = cells.get((s, ty, t))
                if r is None:
                    row.append("-")
                    continue
                frac = r.get("fraction")
                text = f"{r['value']:.2f} ({frac:.2f})" if frac is not None else f"{r['value']:.2f}"
                # the targets are those of one qk_moe_matmul; the fused calls are shown for comparison
                miss = r.get("variant") == "matmul" and (
                    r["value"] > TG_TARGET_US if t == 1 else (frac is not None and frac < PP_TARGET_FRACTION))
                row.append(f"**{text}**" if miss else text)
            print(f"| {ty} | " + " | ".join(row) + " |")
        print()
    print(f"Bold: qk_moe_matmul misses the target (1 token: more than {TG_TARGET_US} us; 8 tokens or more: "
          f"slower than 1.4x the roofline, fraction below {PP_TARGET_FRACTION:.3f}).")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--table":
        return table(sys.argv[2:])
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    src, device, commit = sys.argv[1:4]
    out = open(sys.argv[4], "w") if len(sys.argv) > 4 else sys.stdout
    for path in [src] + sys.argv[5:]:
        for rec in records(path, device, commit):
            out.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
