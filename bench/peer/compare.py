#!/usr/bin/env python3
"""The side-by-side table of one scripts/gpu_peer.sh run: per (shape, type, tokens), qkern's time
(backend "cuda", the plain matmul), ggml's (backend "ggml-cuda") and torch's bf16 grouped GEMM
(backend "torch-bf16"), the ratio qkern / ggml, and qkern's fraction of the roofline (its record's
ceiling, measured in the same run). Then per (shape, tokens) the geometric mean of the ratio over
the types both ran, with its range, and the cells that miss issue 15's first bar (qkern <= ggml
everywhere, <= 0.8x ggml from 128 tokens).

With --paths, the tuning table of a QK_PEER_PATHS sweep instead: per (shape, type, tokens), qkern's
time with each forced path (the records' `path`), with the default choice and ggml's beside them,
and the fastest path.

usage: compare.py RESULTS.jsonl [...]
       compare.py --paths SWEEP.jsonl [RESULTS.jsonl ...]"""
import json
import math
import sys


def paths_table(rows):
    cells, paths = {}, []
    for r in rows:
        if r["backend"] == "cuda" and r.get("variant") != "matmul":
            continue
        key = (r["shape"], r["type"], r["tokens"])
        name = r.get("path") or ("default" if r["backend"] == "cuda" else r["backend"])
        if name not in paths:
            paths.append(name)
        cells.setdefault(key, {})[name] = r["value"]
    mine = [p for p in paths if p not in ("ggml-cuda", "torch-bf16")]
    print("| shape | type | tokens | " + " | ".join(f"{p} us" for p in paths if p != "torch-bf16") + " | fastest | fastest/ggml |")
    print("|---|---|---:|" + "---:|" * (len([p for p in paths if p != "torch-bf16"]) + 2))
    for key in sorted(cells, key=lambda k: (k[0], k[1], k[2] or 0)):
        c = cells[key]
        timed = {p: c[p] for p in mine if p in c and p != "default"}
        if not timed:
            continue
        best = min(timed, key=timed.get)
        g = c.get("ggml-cuda")
        vals = " | ".join("" if c.get(p) is None else f"{c[p]:.1f}" for p in paths if p != "torch-bf16")
        print(f"| {key[0].split()[1]} | {key[1]} | {key[2]} | {vals} | {best} | "
              f"{'' if not g else f'{timed[best] / g:.2f}'} |")
    return 0


def main():
    if sys.argv[1] == "--paths":
        return paths_table([json.loads(l) for f in sys.argv[2:] for l in open(f) if l.strip()])
    rows = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.strip()]
    qk, peer, torch = {}, {}, {}
    for r in rows:
        key = (r["shape"], r["type"], r["tokens"])
        if r["backend"] == "cuda" and r.get("variant") == "matmul":
            qk[key] = r
        elif r["backend"] == "ggml-cuda":
            peer[key] = r
        elif r["backend"] == "torch-bf16":
            torch[(r["shape"], r["tokens"])] = r["value"]
    if not qk:
        print("no qkern rows")
        return 1
    r0 = next(iter(qk.values()))
    p0 = next(iter(peer.values()), {})
    print(f"device: {r0['device']}; qkern {r0['commit']}; ggml {p0.get('peer_commit', 'absent')}; "
          f"date {r0['date']}\n")
    print("| shape | type | tokens | qkern us | ggml us | qkern/ggml | torch bf16 us | roofline us | of roofline |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    ratios, misses = {}, []
    for key in sorted(qk, key=lambda k: (k[0], k[1], k[2])):
        shape, typ, tokens = key
        q = qk[key]
        p = peer.get(key)
        ratio = q["value"] / p["value"] if p else None
        t = torch.get((shape, tokens))
        if ratio is not None:
            ratios.setdefault((shape, tokens), []).append((ratio, typ))
            bar = 0.8 if tokens >= 128 else 1.0
            if ratio > bar:
                misses.append(f"{shape} {typ} {tokens}: {ratio:.2f} (bar {bar})")
        fmt = lambda v, d=1: "" if v is None else f"{v:.{d}f}"
        print(f"| {shape.split()[1]} | {typ} | {tokens} | {q['value']:.1f} | {fmt(p and p['value'])} | "
              f"{fmt(ratio, 2)} | {fmt(t)} | {fmt(q.get('ceiling'))} | {fmt(q.get('fraction'), 2)} |")
    print("\n| shape | tokens | types | geomean qkern/ggml | range |")
    print("|---|---:|---:|---:|---|")
    for (shape, tokens), v in sorted(ratios.items()):
        g = math.exp(sum(math.log(r) for r, _ in v) / len(v))
        lo, hi = min(v), max(v)
        print(f"| {shape.split()[1]} | {tokens} | {len(v)} | {g:.2f} | {lo[0]:.2f} ({lo[1]}) - {hi[0]:.2f} ({hi[1]}) |")
    print(f"\ncells missing the first bar: {len(misses)} of {sum(len(v) for v in ratios.values())}")
    for m in misses:
        print("- " + m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
