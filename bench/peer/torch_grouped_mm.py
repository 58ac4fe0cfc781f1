#!/usr/bin/env python3
"""The unquantized alternative an engine has: torch's bf16 grouped GEMM (torch._grouped_mm) on the
MoE shapes of qkern_bench_moe and bench-mmid-cold, timed the same way: weights in device memory
rather than L2 (copies of the experts totalling >= 16x L2, each op on the next copy), a fresh
uniform routing per op, many ops captured in one CUDA graph, median of graph launches / ops.

One op is what the engine would run for the matmul: the slots' activation rows gathered in expert
order (gate/up: a token's one row for each of its experts; down: one row per slot), then the grouped
GEMM; the gather is included, the routing's sort is not (an engine does it once per layer).

usage: torch_grouped_mm.py [--jsonl FILE] [--device-name NAME] [--tokens 1,8,...]
Appends one JSON object per (shape, tokens) in bench/results fields, backend "torch-bf16"."""
import argparse
import datetime
import json
import sys

SHAPES = [("qwen3.5-35b-a3b gate_up 512x2048", 512, 2048, False), ("qwen3.5-35b-a3b down 2048x512", 2048, 512, True)]
N_EXPERT, N_USED = 256, 8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jsonl")
    ap.add_argument("--device-name", default="")
    ap.add_argument("--tokens", default="1,8,32,128,512,2048")
    args = ap.parse_args()
    try:
        import torch
    except ImportError as e:
        print(f"torch-bf16: skipped: {e}")
        return 0
    if not torch.cuda.is_available() or not hasattr(torch, "_grouped_mm"):
        print("torch-bf16: skipped: no CUDA device or no torch._grouped_mm in torch " + torch.__version__)
        return 0
    dev = torch.device("cuda")
    l2 = torch.cuda.get_device_properties(dev).L2_cache_size
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = open(args.jsonl, "a") if args.jsonl else None
    gen = torch.Generator(device="cpu").manual_seed(1234)
    for name, m, k, x_per_slot in SHAPES:
        copy_bytes = N_EXPERT * m * k * 2
        copies = max(2, -(-16 * l2 // copy_bytes))
        # W[e] is m x k; _grouped_mm multiplies [rows, k] by [k, m] per group: pass W transposed (a view)
        ws = [torch.randn(N_EXPERT, m, k, device=dev, dtype=torch.bfloat16).transpose(1, 2) for _ in range(copies)]
        for tokens in [int(t) for t in args.tokens.split(",")]:
            slots = tokens * N_USED
            n_ops = 64 if tokens <= 32 else 16
            x = torch.randn(slots if x_per_slot else tokens, k, device=dev, dtype=torch.bfloat16)
            plans = []
            for _ in range(n_ops):
                ids = torch.stack([torch.randperm(N_EXPERT, generator=gen)[:N_USED] for _ in range(tokens)]).flatten()
                order = torch.argsort(ids, stable=True)
                rows = order if x_per_slot else order // N_USED
                counts = torch.bincount(ids, minlength=N_EXPERT)
                offs = torch.cumsum(counts, 0).to(torch.int32)
                plans.append((rows.to(dev), offs.to(dev), int((counts > 0).sum())))
            try:
                def run():
                    for i, (rows, offs, _) in enumerate(plans):
                        torch._grouped_mm(x.index_select(0, rows), ws[i % copies], offs=offs)
                run()
                torch.cuda.synchronize()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    run()
                times = []
                start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                graph.replay()
                for _ in range(20):
                    start.record()
                    graph.replay()
                    stop.record()
                    stop.synchronize()
                    times.append(start.elapsed_time(stop) * 1e3 / n_ops)
                times.sort()
                us = times[len(times) // 2]
            except Exception as e:  # an unsupported shape or an old torch: say so, go on
                print(f"{name} tokens={tokens}: torch._grouped_mm failed: {e}")
                continue
            touched = sum(p[2] for p in plans) / n_ops * m * k * 2
            print(f"torch-bf16 {name:36s} tokens={tokens:5d} {us:10.2f} us  weights {touched / us / 1e3:8.1f} GB/s")
            if out:
                out.write(json.dumps({"device": args.device_name, "date": date, "backend": "torch-bf16",
                                      "peer_commit": "torch-" + torch.__version__,
                                      "op": "moe_tg" if tokens == 1 else "moe_pp", "type": "BF16", "shape": name,
                                      "tokens": tokens, "value": us, "unit": "us", "weight_bytes": touched,
                                      "copies": copies, "ops_per_graph": n_ops}) + "\n")
                out.flush()
        del ws
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
