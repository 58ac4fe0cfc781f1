"""Where the host time of a Python MoE call goes, step by step (moe_host_overhead.py measures
the whole call against the C call).

Times the steps of qkern's fast path on torch tensors one by one (the operands' attribute reads
and checks, the output allocation, the context, stream, capture and workspace look-ups, the
binding's call with its arguments ready), then the whole calls, each against the binding's call
alone: whole minus binding is what the Python side adds. Rounds of BATCH executions, the median
round; between rounds the device is drained (unmeasured), so that the launch queue never fills.

On CUDA tensors (the default where torch has a GPU) the shape is Qwen3.5-35B-A3B's 1-token expert
product, Q4_K W[256][512][2048], 8 of 256 experts. On the CPU (--device cpu, a machine without a
GPU) each expert is one row of 256 values, so that the kernel stays small, the context is
single-threaded, and the clock is the thread's CPU time: a shared machine's other work is not
counted. The steps are what matters there; the binding's call includes the CPU kernel.

usage: python moe_python_steps.py [--device cpu|cuda] [--rounds N] [--json OUT.json]
"""

import argparse
import json
import statistics
import sys
import time
import timeit

import torch

import qkern
from qkern import _ops, _qkern

N_EXPERT, M, K, N_USED, BATCH = 256, 512, 2048, 8, 100


def setup(device):
    """The operands and a namespace in which the steps run as the fast path runs them."""
    qkern.register_torch_ops()
    from qkern import _torch as T

    dev = torch.device(device)
    m, k = (M, K) if dev.type == "cuda" else (1, 256)
    gen = torch.Generator().manual_seed(1)
    one = qkern.quantize(torch.rand(m, k, generator=gen) - 0.5, "Q4_K")
    w = one.unsqueeze(0).repeat(N_EXPERT, 1, 1).contiguous().to(dev)
    x = (torch.rand(1, k, generator=gen) - 0.5).to(dev)
    ids = torch.tensor([[3, 17, 42, 99, 128, 160, 201, 250]], dtype=torch.int32, device=dev)
    out = torch.empty(1, N_USED, m, device=dev)
    fmt = _ops._format("Q4_K")
    if dev.type == "cpu":
        # one thread: the kernel runs on the calling thread, whose CPU time is the clock
        _ops._contexts["cpu/0"] = _ops._context("cpu", 1)
    qkern.moe_matmul(x, w, "Q4_K", ids)  # the context, the kernels, a held workspace
    if T._fast(0, fmt, x, w, None, ids, None, 0, None) is None:
        raise SystemExit("moe_python_steps: qkern's fast path declined the benchmark's call")
    ns = dict(torch=torch, qkern=qkern, _ops=_ops, _qkern=_qkern, T=T, x=x, w=w, ids=ids, out=out, fmt=fmt,
              dev=x.device, shape=tuple(out.shape), index=x.device.index, _U8=torch.uint8,
              _F32=torch.float32)  # fmt: skip
    if dev.type == "cuda":
        index = x.device.index
        stream = T._raw_stream(index)
        held = T._workspaces.get((index, stream))
        if held is None:
            raise SystemExit("moe_python_steps: no workspace held for the stream: the binding's call would not run")
        ctx, on_device = T._cuda_contexts[index], True
        ns.update(stream=stream, key=(index, stream))
    else:
        held, ctx, on_device, stream = (0, 0), _ops._context("cpu"), False, 0
    ns["args"] = (ctx, 0, fmt.id, T._X_TYPES[x.dtype], N_EXPERT, m, k, 1, N_USED, False, 0,
                  w.data_ptr(), w.nbytes, 0, 0, x.data_ptr(), x.nbytes, ids.data_ptr(), ids.nbytes, 0, 0,
                  out.data_ptr(), out.nbytes, held[0], held[1], on_device, stream)  # fmt: skip
    return dev, ns


# (label, statement): the fast path's steps in its order (python/qkern/_torch.py, _fast)
STEPS = [
    ("format and precision look-ups, is_compiling()",
     "_ops._format('Q4_K'); _ops._precision('default'); T._is_compiling()"),
    ("dtype, device and contiguity of x, w, ids", """
T._X_TYPES.get(x.dtype) is None or w.dtype is not _U8 or ids.dtype is not T._I32
w.device != dev or ids.device != dev
x.is_contiguous() and w.is_contiguous() and ids.is_contiguous()"""),
    ("shapes of x, w, ids read and compared", """
xs, ws, s = x.shape, w.shape, ids.shape
len(ws) != 3 or len(s) != 2
n_expert, m, row_bytes = ws
n_tokens, n_used = s
len(xs) == 2 and xs[0] == n_tokens
k = xs[1]
k % fmt.block_elems or row_bytes != k // fmt.block_elems * fmt.block_bytes"""),
    ("out=: its dtype, device, contiguity, shape",
     "out.dtype is not _F32 or out.device != dev or not out.is_contiguous() or out.shape != shape"),
    ("output allocation: x.new_empty(t, s, m, dtype=float32)", "x.new_empty(*shape, dtype=_F32)"),
    ("  (the sizes in one tuple: x.new_empty(shape, dtype=))", "x.new_empty(shape, dtype=_F32)"),
    ("  (torch.empty(shape, dtype=, device=))", "torch.empty(shape, dtype=_F32, device=dev)"),
    ("operand addresses and sizes (data_ptr, nbytes) x 4",
     "w.data_ptr(), w.nbytes, x.data_ptr(), x.nbytes, ids.data_ptr(), ids.nbytes, out.data_ptr(), out.nbytes"),
]  # fmt: skip
CUDA_STEPS = [
    ("context look-up, torch's current device", "T._cuda_contexts.get(index); T._current_device()"),
    ("current raw stream", "T._raw_stream(index)"),
    ("capture query, held workspace look-up", "T._capturing(); T._workspaces.get(key)"),
]
CALLS = [
    ("binding alone: _qkern.moe(*args), arguments ready", "_qkern.moe(*args)"),
    ("qkern.moe_matmul(x, w, 'Q4_K', ids)", "qkern.moe_matmul(x, w, 'Q4_K', ids)"),
    ("qkern.moe_matmul(x, w, 'Q4_K', ids, out=out)", "qkern.moe_matmul(x, w, 'Q4_K', ids, out=out)"),
    ("torch.ops.qkern.moe_matmul(x, w, ids, 12, 0)", "torch.ops.qkern.moe_matmul(x, w, ids, 12, 0)"),
]


def host_us(stmt, ns, dev, rounds):
    """Median host time of one execution of stmt, in microseconds."""
    clock = time.thread_time if dev.type == "cpu" else time.perf_counter
    timer = timeit.Timer(stmt, timer=clock, globals=ns)
    per = []
    for _ in range(rounds):
        per.append(timer.timeit(BATCH) / BATCH * 1e6)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    return statistics.median(per)


def measure(device, rounds=200):
    """{label: us} for every step and call, plus the calls' excess over the binding alone."""
    dev, ns = setup(device)
    steps = STEPS + (CUDA_STEPS if dev.type == "cuda" else [])
    for _, stmt in steps + CALLS:  # warm
        host_us(stmt, ns, dev, 3)
    r = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu (thread CPU time)"}
    r["empty statement"] = host_us("pass", ns, dev, rounds)
    r.update({label: host_us(stmt, ns, dev, rounds) for label, stmt in steps + CALLS})
    binding = r[CALLS[0][0]]
    for label, _ in CALLS[1:]:
        r[f"{label} minus the binding"] = r[label] - binding
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--json")
    args = ap.parse_args()
    r = measure(args.device, args.rounds)
    print(f"# {r['device']}: host us per execution, medians of {args.rounds} rounds of {BATCH}")
    for k, v in r.items():
        if k != "device":
            print(f"{v:8.3f}  {k}")
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(r, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
