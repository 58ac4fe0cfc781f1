"""Host overhead of qkern's Python MoE calls against the C call they wrap (moe_host_overhead.c).

The 1-token decode shape of Qwen3.5-35B-A3B's experts: W[256][512][2048] in Q4_K, 8 experts used.
Timed as the C program times it: rounds of BATCH calls, the calling thread's time only (the
stream is drained between rounds), median over rounds; and inside CUDA graphs, one op per graph
(host time of a replay, GPU time of a replay) and BATCH ops per graph (the kernel without launch
gaps), for qkern.moe_matmul and for torch.ops.qkern.moe_matmul. The ceiling is the C call, in the
same run: each Python call's excess over it is the result (issue 19: at most 5 us for
qkern.moe_matmul). Then the Python side step by step (moe_python_steps.py). Needs torch with a
CUDA device.

usage: python moe_host_overhead.py [--c-binary PATH] [--rounds N] [--json OUT.json] [--markdown OUT.md]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import timeit

import torch

import moe_python_steps
import qkern

N_EXPERT, M, K, N_USED, BATCH = 256, 512, 2048, 8, 100
TARGET_US = 5.0  # issue 19: what qkern.moe_matmul may add to the C call
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def host_us(stmt, ns, rounds):
    """Median and minimum host time of one execution of stmt, in microseconds."""
    timer = timeit.Timer(stmt, timer=time.perf_counter, globals=ns)
    per_call = []
    for _ in range(rounds):
        per_call.append(timer.timeit(BATCH) / BATCH * 1e6)
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


def commit():
    try:
        with open(os.path.join(ROOT, os.environ.get("QK_WHEELHOUSE", "build-py/wheelhouse"), "COMMIT")) as f:
            return f.read().strip()
    except OSError:
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        return r.stdout.strip() or "?"


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
    ns = dict(torch=torch, qkern=qkern, x=x, w=w, ids=ids, q4k=q4k, out=out)

    calls = {
        "py_moe_matmul": "qkern.moe_matmul(x, w, 'Q4_K', ids)",
        "py_moe_matmul_out": "qkern.moe_matmul(x, w, q4k, ids, out=out)",
        "py_torch_ops_moe_matmul": "torch.ops.qkern.moe_matmul(x, w, ids, q4k, 0)",
        # torch's own floor for one small op on the same stream, for scale
        "py_torch_add_": "out.add_(0.0)",
    }
    for stmt in calls.values():  # contexts, kernels, allocator pools, the held workspace
        host_us(stmt, ns, 1)

    r = {"device": torch.cuda.get_device_name(dev), "torch": torch.__version__, "qkern": qkern.version()}
    r["commit"] = commit()
    r["shape"] = f"Q4_K W[{N_EXPERT}][{M}][{K}], 1 token, {N_USED} used"
    r["calls_per_round"], r["rounds"] = BATCH, args.rounds
    from qkern import _torch

    fmt = next(f for f in qkern.formats() if f.id == q4k)
    r["py_fast_path"] = _torch._fast(0, fmt, x, w, None, ids, None, 0, None) is not None
    for name, stmt in calls.items():
        r[f"{name}_host_us"], r[f"{name}_host_us_min"] = host_us(stmt, ns, args.rounds)
    r["py_stream_gpu_us_per_op"] = gpu_us(lambda: qkern.moe_matmul(x, w, "Q4_K", ids), BATCH)
    r["py_ops_stream_gpu_us_per_op"] = gpu_us(lambda: torch.ops.qkern.moe_matmul(x, w, ids, q4k, 0), BATCH)

    graphed = {
        "py": lambda: qkern.moe_matmul(x, w, "Q4_K", ids),
        "py_ops": lambda: torch.ops.qkern.moe_matmul(x, w, ids, q4k, 0),
    }
    for prefix, fn in graphed.items():
        g1, gn = captured(fn, 1), captured(fn, BATCH)
        ns["g1"] = g1
        r[f"{prefix}_graph1_replay_host_us"], r[f"{prefix}_graph1_replay_host_us_min"] = host_us(
            "g1.replay()", ns, args.rounds
        )
        r[f"{prefix}_graph1_gpu_us_per_replay"] = gpu_us(g1.replay, BATCH)
        r[f"{prefix}_graph{BATCH}_gpu_us_per_op"] = gpu_us(gn.replay, 20) / BATCH

    if args.c_binary:
        c = subprocess.run([args.c_binary, str(args.rounds)], capture_output=True, text=True)
        if c.returncode == 0:
            r.update({k: v for k, v in json.loads(c.stdout).items() if k.startswith("c_") or k == "workspace_bytes"})
        else:
            r["c_error"] = (c.stderr or c.stdout).strip()
    if "c_call_host_us" in r:
        c_us, c_graph_us = r["c_call_host_us"], r["c_graph1_launch_host_us"]
        r["py_minus_c_host_us"] = r["py_moe_matmul_host_us"] - c_us
        r["py_out_minus_c_host_us"] = r["py_moe_matmul_out_host_us"] - c_us
        r["py_ops_minus_c_host_us"] = r["py_torch_ops_moe_matmul_host_us"] - c_us
        r["py_graph_minus_c_graph_host_us"] = r["py_graph1_replay_host_us"] - c_graph_us
        r["py_ops_graph_minus_c_graph_host_us"] = r["py_ops_graph1_replay_host_us"] - c_graph_us
        r["target_us"] = TARGET_US
        r["target_met"] = r["py_minus_c_host_us"] <= TARGET_US
    r["steps"] = moe_python_steps.measure("cuda", max(args.rounds, 50))

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
        return f"{v:.2f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"

    rows = [
        ("C: qk_cuda_moe_matmul_async", "c_call_host_us", "c_stream_gpu_us_per_op"),
        ("C: qk_moe_workspace_size", "c_workspace_query_host_us", None),
        ("Python: qkern.moe_matmul(x, w, 'Q4_K', ids)", "py_moe_matmul_host_us", "py_stream_gpu_us_per_op"),
        ("Python: qkern.moe_matmul(..., out=out)", "py_moe_matmul_out_host_us", None),
        ("Python: torch.ops.qkern.moe_matmul", "py_torch_ops_moe_matmul_host_us", "py_ops_stream_gpu_us_per_op"),
        ("Python: torch out.add_(0) (torch's floor)", "py_torch_add__host_us", None),
        ("C: cudaGraphLaunch of a 1-op graph", "c_graph1_launch_host_us", "c_graph1_gpu_us_per_replay"),
        ("Python: CUDAGraph.replay(), 1 qkern.moe_matmul", "py_graph1_replay_host_us", "py_graph1_gpu_us_per_replay"),
        ("Python: CUDAGraph.replay(), 1 torch.ops op", "py_ops_graph1_replay_host_us",
         "py_ops_graph1_gpu_us_per_replay"),
        (f"C: {BATCH} ops in one graph, per op", None, f"c_graph{BATCH}_gpu_us_per_op"),
        (f"Python: {BATCH} qkern.moe_matmul in one graph, per op", None, f"py_graph{BATCH}_gpu_us_per_op"),
        (f"Python: {BATCH} torch.ops ops in one graph, per op", None, f"py_ops_graph{BATCH}_gpu_us_per_op"),
    ]
    over = [
        ("qkern.moe_matmul(x, w, 'Q4_K', ids)", "py_minus_c_host_us"),
        ("qkern.moe_matmul(..., out=out)", "py_out_minus_c_host_us"),
        ("torch.ops.qkern.moe_matmul", "py_ops_minus_c_host_us"),
        ("CUDAGraph.replay() of qkern.moe_matmul, over cudaGraphLaunch", "py_graph_minus_c_graph_host_us"),
        ("CUDAGraph.replay() of torch.ops, over cudaGraphLaunch", "py_ops_graph_minus_c_graph_host_us"),
    ]
    lines = [
        f"# qkern Python host overhead: {r['device']}",
        "",
        f"{r['shape']}; torch {r['torch']}; qkern {r['qkern']} at {r['commit']}; medians over {r['rounds']} "
        f"rounds of {r['calls_per_round']} calls; the call took qkern's fast path: {r['py_fast_path']}.",
        "",
        "| call | host us per call | GPU us per op |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {label} | {cell(h) if h else '-'} | {cell(g) if g else '-'} |" for label, h, g in rows]
    lines += ["", "| over the C call (the ceiling) | host us |", "| --- | --- |"]
    lines += [f"| {label} | {cell(key)} |" for label, key in over]
    if "target_met" in r:
        verdict = "met" if r["target_met"] else "missed"
        lines += ["", f"Issue 19's bar, qkern.moe_matmul at most {r['target_us']:g} us over the C call: {verdict}."]
    if "c_error" in r:
        lines += ["", f"The C program failed: {r['c_error']}"]
    steps = r.get("steps", {})
    if steps:
        lines += ["", "The Python side step by step (moe_python_steps.py; host us per execution):", ""]
        lines += ["| step | host us |", "| --- | --- |"]
        lines += [f"| {k} | {v:.3f} |" for k, v in steps.items() if k != "device"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
