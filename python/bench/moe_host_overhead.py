"""Host overhead of qkern's Python MoE call against the C call it wraps (moe_host_overhead.c).

The 1-token decode shape of Qwen3.5-35B-A3B's experts: W[256][512][2048] in Q4_K, 8 experts used.
Timed as the C program times it: rounds of BATCH calls, the calling thread's time only (the
stream is drained between rounds), median over rounds; and inside CUDA graphs, one op per graph
(host time of a replay, GPU time of a replay) and BATCH ops per graph (the kernel without launch
gaps). Needs torch with a CUDA device.

usage: python moe_host_overhead.py [--c-binary PATH] [--rounds N] [--json OUT.json] [--markdown OUT.md]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

import qkern

N_EXPERT, M, K, N_USED, BATCH = 256, 512, 2048, 8, 100


def host_us(fn, rounds):
    """Median and minimum host time of one fn() call, in microseconds."""
    per_call = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(BATCH):
            fn()
        per_call.append((time.perf_counter_ns() - t0) / BATCH / 1e3)
        torch.cuda.synchronize()
    return statistics.median(per_call), min(per_call)


def gpu_us(fn, reps):
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    a.record()
    for _ in range(reps):
        fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) * 1e3 / reps


def captured(fn, n):
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(n):
            fn()
    return graph


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--c-binary", help="moe_host_overhead built from moe_host_overhead.c")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args()

    dev = torch.device("cuda", 0)
    gen = torch.Generator(device=dev).manual_seed(1)
    one = qkern.quantize(torch.rand(M, K, device=dev, generator=gen) - 0.5, "Q4_K")
    w = one.unsqueeze(0).repeat(N_EXPERT, 1, 1).contiguous()  # [256, 512, 1152] Q4_K blocks
    x = torch.rand(1, K, device=dev, generator=gen) - 0.5
    ids = torch.tensor([[3, 17, 42, 99, 128, 160, 201, 250]], dtype=torch.int32, device=dev)
    q4k = next(f.id for f in qkern.formats() if f.name == "Q4_K")
    out = torch.empty(1, N_USED, M, device=dev)

    calls = {
        "py_moe_matmul": lambda: qkern.moe_matmul(x, w, "Q4_K", ids),
        "py_moe_matmul_out": lambda: qkern.moe_matmul(x, w, q4k, ids, out=out),
        "py_torch_ops_moe_matmul": lambda: torch.ops.qkern.moe_matmul(x, w, ids, q4k, 0),
        # torch's own floor for one small op on the same stream, for scale
        "py_torch_add_": lambda: out.add_(0.0),
    }
    for fn in calls.values():  # contexts, kernels, allocator pools
        for _ in range(20):
            fn()
    torch.cuda.synchronize()

    r = {"device": torch.cuda.get_device_name(dev), "torch": torch.__version__, "qkern": qkern.version()}
    r["shape"] = f"Q4_K W[{N_EXPERT}][{M}][{K}], 1 token, {N_USED} used"
    r["calls_per_round"], r["rounds"] = BATCH, args.rounds
    for name, fn in calls.items():
        r[f"{name}_host_us"], r[f"{name}_host_us_min"] = host_us(fn, args.rounds)
    r["py_stream_gpu_us_per_op"] = gpu_us(calls["py_moe_matmul"], BATCH)

    g1 = captured(calls["py_moe_matmul"], 1)
    gn = captured(calls["py_moe_matmul"], BATCH)
    r["py_graph1_replay_host_us"], r["py_graph1_replay_host_us_min"] = host_us(g1.replay, args.rounds)
    r["py_graph1_gpu_us_per_replay"] = gpu_us(g1.replay, BATCH)
    r[f"py_graph{BATCH}_gpu_us_per_op"] = gpu_us(gn.replay, 20) / BATCH

    if args.c_binary:
        c = subprocess.run([args.c_binary, str(args.rounds)], capture_output=True, text=True)
        if c.returncode == 0:
            r.update({k: v for k, v in json.loads(c.stdout).items() if k.startswith("c_") or k == "workspace_bytes"})
        else:
            r["c_error"] = (c.stderr or c.stdout).strip()
    if "c_call_host_us" in r:
        r["py_minus_c_host_us"] = r["py_moe_matmul_host_us"] - r["c_call_host_us"]
        r["py_graph_minus_c_graph_host_us"] = r["py_graph1_replay_host_us"] - r["c_graph1_launch_host_us"]

    text = json.dumps(r, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(r))


def markdown(r):
    def cell(key):
        v = r.get(key)
        return f"{v:.2f}" if isinstance(v, (int, float)) else "-"

    rows = [
        ("C: qk_cuda_moe_matmul_async", "c_call_host_us", "c_stream_gpu_us_per_op"),
        ("C: qk_moe_workspace_size", "c_workspace_query_host_us", None),
        ("Python: qkern.moe_matmul(x, w, 'Q4_K', ids)", "py_moe_matmul_host_us", "py_stream_gpu_us_per_op"),
        ("Python: qkern.moe_matmul(..., out=out)", "py_moe_matmul_out_host_us", None),
        ("Python: torch.ops.qkern.moe_matmul", "py_torch_ops_moe_matmul_host_us", None),
        ("Python: torch out.add_(0) (torch's floor)", "py_torch_add__host_us", None),
        ("C: cudaGraphLaunch of a 1-op graph", "c_graph1_launch_host_us", "c_graph1_gpu_us_per_replay"),
        ("Python: CUDAGraph.replay() of a 1-op graph", "py_graph1_replay_host_us", "py_graph1_gpu_us_per_replay"),
        (f"C: {BATCH} ops in one graph, per op", None, f"c_graph{BATCH}_gpu_us_per_op"),
        (f"Python: {BATCH} ops in one graph, per op", None, f"py_graph{BATCH}_gpu_us_per_op"),
    ]
    lines = [
        f"# qkern Python host overhead: {r['device']}",
        "",
        f"{r['shape']}; torch {r['torch']}; medians over {r['rounds']} rounds of {r['calls_per_round']} calls.",
        "",
        "| call | host us per call | GPU us per op |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {label} | {cell(h) if h else '-'} | {cell(g) if g else '-'} |" for label, h, g in rows]
    if "c_error" in r:
        lines += ["", f"The C program failed: {r['c_error']}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
