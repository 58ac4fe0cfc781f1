#!/usr/bin/env python3
"""Turns a qkern_bench_cuda Google Benchmark JSON file into bench/results JSONL records (one
object per line: device, date, commit, backend, op, type, shape, tokens, value, unit, ceiling,
ceiling_unit, fraction), so that runs can be compared across commits by a script.

value: GB/s of input or of output, whichever is larger; ceiling: the device-to-device copy of
the same run in GB/s (bytes read + written); fraction: (input + output bytes) / time over that
ceiling, i.e. the share of the copy's memory traffic rate the operation reaches.

usage: to_jsonl.py BENCH.json DEVICE COMMIT [OUT.jsonl] [MODEL.json ...]

MODEL.json: `qkern bench quantize --format json` output; its quantize_model records (value:
seconds of kernel time, the preset in `type`) are appended with the same device and commit."""
import json
import sys


def main():
    src, device, commit = sys.argv[1:4]
    out = open(sys.argv[4], "w") if len(sys.argv) > 4 else sys.stdout
    doc = json.load(open(src))
    date = doc["context"]["date"]
    copy = next((b["GB/s"] for b in doc["benchmarks"] if b["name"].startswith("BM_copy_d2d")), None)
    for b in doc["benchmarks"]:
        name = b["name"]
        if b.get("error_occurred") or not (name.startswith("BM_quantize") or name.startswith("BM_dequantize")):
            continue
        op = "quantize" if name.startswith("BM_quantize") else "dequantize"
        label = b.get("label", "")
        rec = {
            "device": device, "date": date, "commit": commit, "backend": "cuda", "op": op,
            "type": label.split()[0], "shape": "8192x4096", "tokens": None,
            "value": max(b["in_GB/s"], b["out_GB/s"]) / 1e9, "unit": "GB/s",
            "ceiling": copy, "ceiling_unit": "GB/s (device-to-device copy, read + write)",
            "fraction": b["of_copy"], "weights_per_s": b["weights/s"], "imatrix": "imatrix" in label,
            "source": "bf16" if op == "quantize" else None,
            "output": label.split()[-1] if op == "dequantize" else None, "ms": b["real_time"] if b["time_unit"] == "ms" else b["real_time"] / 1e3,
        }
        out.write(json.dumps(rec) + "\n")
    for path in sys.argv[5:]:
        for r in json.load(open(path)):
            rec = {
                "device": device, "date": r["date"], "commit": commit, "backend": r["device"].split(":")[0],
                "op": r["op"], "type": r["type"], "shape": r["shape"], "tokens": None, "value": r["value"],
                "unit": r["unit"], "ceiling": None, "ceiling_unit": None, "fraction": None,
                "weights": r["weights"], "gweights_per_s": r["gweights_per_s"], "skipped": r["skipped"],
            }
            out.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
