"""qkern on torch tensors, and the torch.library operators torch.ops.qkern.*.

Imported on the first qkern call that sees a tensor (or by qkern.register_torch_ops()), so that
`import qkern` does not import torch. A CUDA tensor's work is enqueued on torch's current stream
of its device through qkern_cuda.h's asynchronous calls, on the tensor's own memory; the MoE
workspace (kept per device and stream from call to call, fresh inside a graph capture) and
outputs come from torch's caching allocator, so the operators hold no host synchronization and
allocate nothing outside torch: they can be captured in a CUDA graph and traced by torch.compile
(their fake implementations give the output's shape without running).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Optional

import torch

from . import _ops, _qkern
from ._ops import GATE_UP, MATMUL, WEIGHTED_SUM, Format

_X_TYPES = {
    torch.float32: _ops._BY_NAME["F32"].id,
    torch.float16: _ops._BY_NAME["F16"].id,
    torch.bfloat16: _ops._BY_NAME["BF16"].id,
}

try:  # what torch's own generated code reads: an int, without building a Stream object
    _raw_stream = torch._C._cuda_getCurrentRawStream
except AttributeError:  # pragma: no cover - older torch

    def _raw_stream(index: int) -> int:
        return torch.cuda.current_stream(index).cuda_stream


_cuda_contexts: dict[int, Any] = {}


def _cuda_context(index: int) -> Any:
    ctx = _cuda_contexts.get(index)
    if ctx is None:
        ctx = _cuda_contexts[index] = _ops._context(f"cuda:{index}")
    return ctx


def _where(t: torch.Tensor, device: Optional[str]) -> tuple[Any, int]:
    """The context and stream for work on t: its CUDA device and current stream, or the host's."""
    if t.is_cuda:
        if device is not None and device != f"cuda:{t.device.index}":
            raise ValueError(f"device={device!r}, but the tensor is on {t.device}")
        return _cuda_context(t.device.index), _raw_stream(t.device.index)
    if t.device.type != "cpu":
        raise ValueError(f"qkern runs on CPU and CUDA tensors, not on {t.device}")
    return _ops._context(device or "cpu"), 0


def _on_device_of(t: torch.Tensor):
    """Makes t's CUDA device current when it is not: torch exports a tensor through DLPack only
    from its own device, and qkern makes the device current for its call."""
    if t.is_cuda and t.device.index != torch.cuda.current_device():
        return torch.cuda.device(t.device.index)
    return contextlib.nullcontext()


def _contiguous(t: torch.Tensor, name: str) -> torch.Tensor:
    if not t.is_contiguous():
        raise ValueError(f"{name}: the tensor must be contiguous (.contiguous() makes a contiguous copy)")
    return t.detach()


def quantize(x: torch.Tensor, fmt: Format, imatrix: Any, flags: int, device: Optional[str], check_finite: bool):
    x = _contiguous(x, "array")
    if x.dtype not in _X_TYPES:
        raise ValueError(f"array: qkern reads float32, float16 or bfloat16, not {x.dtype}")
    rows, cols = _ops._rows_cols(x.shape, "array")
    if x.is_cuda and check_finite and x.numel():
        bad = ~torch.isfinite(x.reshape(rows, cols))
        if bool(bad.any()):
            r, c = (int(v) for v in bad.nonzero()[0])
            raise ValueError(f"quantize: non-finite value {x.reshape(rows, cols)[r, c].item()} at row {r}, column {c}")
    ctx, stream = _where(x, device)
    out = torch.empty(x.shape[:-1] + (_qkern.row_bytes(fmt.id, cols),), dtype=torch.uint8, device=x.device)
    im = None
    if imatrix is not None:
        im = torch.as_tensor(imatrix, dtype=torch.float32, device=x.device).reshape(-1).contiguous()
    with _on_device_of(x):
        _qkern.quantize(ctx, fmt.id, x, out, rows, cols, im, flags, stream)
    return out


def dequantize(blocks: torch.Tensor, fmt: Format, shape: tuple, rows: int, cols: int, dtype: Any, device: Any):
    blocks = _contiguous(blocks, "blocks")
    if blocks.dtype != torch.uint8:
        raise ValueError(f"blocks: expected uint8, got {blocks.dtype}")
    if dtype not in _X_TYPES:
        raise ValueError(f"dtype: expected torch.float32, float16 or bfloat16 for tensor blocks, got {dtype!r}")
    _ops._check_block_bytes(blocks.numel(), fmt, rows, cols)
    ctx, stream = _where(blocks, device)
    out = torch.empty(shape, dtype=dtype, device=blocks.device)
    with _on_device_of(blocks):
        _qkern.dequantize(ctx, fmt.id, blocks, out, rows, cols, stream)
    return out


def _operand(t: Optional[torch.Tensor]) -> tuple[int, int]:
    return (0, 0) if t is None else (t.data_ptr(), t.numel() * t.element_size())


def _check_moe(kind: int, fmt: Format, x, w, w_up, ids, router) -> tuple:
    """Dtypes, contiguity, devices and shapes of a MoE call (real or fake tensors): its geometry."""
    if x.dtype not in _X_TYPES:
        raise ValueError(f"x: expected float32, float16 or bfloat16, got {x.dtype}")
    named = [("x", x, None), ("w_blocks", w, torch.uint8)]
    if kind == GATE_UP:
        named.append(("w_up", w_up, torch.uint8))
    if ids is not None:
        named.append(("ids", ids, torch.int32))
    if kind == WEIGHTED_SUM:
        named.append(("router", router, torch.float32))
    for name, t, dt in named:
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}: expected a torch tensor, as x is, got {type(t).__name__}")
        if dt is not None and t.dtype != dt:
            raise ValueError(f"{name}: expected {dt}, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"{name}: on {t.device}, but x is on {x.device}")
        if not t.is_contiguous():
            raise ValueError(f"{name}: the tensor must be contiguous")
    return _ops._moe_geometry(kind, fmt, x, w, w_up, ids, router)


def _run_moe(kind: int, fmt: Format, x, w, w_up, ids, router, precision: int, out=None) -> torch.Tensor:
    """Any MoE call on tensors, every operand checked by name (the fast path's fallback)."""
    geometry = _check_moe(kind, fmt, x, w, w_up, ids, router)
    shape = _ops._moe_out_shape(kind, geometry)
    if out is None:
        out = torch.empty(shape, dtype=torch.float32, device=x.device)
    elif (
        out.dtype != torch.float32 or tuple(out.shape) != shape or out.device != x.device or not out.is_contiguous()
    ):
        raise ValueError(f"out: expected a contiguous float32 {shape} tensor on {x.device}")
    x_type = _X_TYPES[x.dtype]
    if x.is_cuda:
        index = x.device.index
        ctx = _cuda_context(index)
        args = [ctx, kind, fmt.id, x_type, *geometry, precision, *_operand(w), *_operand(w_up), *_operand(x),
                *_operand(ids), *_operand(router), *_operand(out), 0, 0, True]  # fmt: skip
        # qkern makes the tensor's device current for its call: torch's current device must not
        # change under it
        with _on_device_of(x):
            stream = _raw_stream(index)
            need = _qkern.moe(*args, stream)
            if need:  # nothing was enqueued: the workspace, from torch's allocator (or the graph's pool)
                ws = torch.empty(need, dtype=torch.uint8, device=x.device)
                args[-3:-1] = ws.data_ptr(), need
                _qkern.moe(*args, stream)
    elif x.device.type == "cpu":
        _qkern.moe(_ops._context("cpu"), kind, fmt.id, x_type, *geometry, precision, *_operand(w), *_operand(w_up),
                   *_operand(x), *_operand(ids), *_operand(router), *_operand(out), 0, 0, False, 0)  # fmt: skip
    else:
        raise ValueError(f"qkern runs on CPU and CUDA tensors, not on {x.device}")
    return out


# ---- the fast path -------------------------------------------------------------------------
# A decode step calls the MoE products a few times per layer on one token, where the kernels take
# a few microseconds: every attribute read and every allocation here shows. The common call
# (contiguous tensors of the expected dtypes on one device, w a 3-D expert stack, ids given; on
# CUDA, on torch's current device) is checked in as few reads as its soundness allows and goes to
# the library in one call of plain ints; anything else takes _run_moe, which names what is wrong.
# CPU tensors take the same path, so that the CPU-only tests exercise its checks.

_U8, _I32, _F32 = torch.uint8, torch.int32, torch.float32
try:  # the functions behind torch.cuda.current_device() and is_current_stream_capturing()
    _current_device = torch._C._cuda_getDevice
    _capturing = torch._C._cuda_isCurrentStreamCapturing
except AttributeError:  # pragma: no cover - a torch without CUDA
    _current_device = torch.cuda.current_device
    _capturing = torch.cuda.is_current_stream_capturing

# Each (device, stream)'s MoE workspace, kept from call to call: (address, bytes, tensor). Work on
# one stream runs in order, so its calls can share one workspace; another stream gets its own.
# A call inside a CUDA graph capture, or under torch.compile's graph trees (_may_hold), takes a
# fresh one from the graph's pool instead (the graph keeps that address). Workspaces above
# _WORKSPACE_HELD_MAX bytes (many tokens, where the kernel takes far longer than an allocation)
# are not held.
_workspaces: dict[tuple[int, int], tuple[int, int, torch.Tensor]] = {}
_WORKSPACE_HELD_MAX = 4 << 20
_WORKSPACES_HELD_MAX = 64


def _may_hold(index: int, stream: int) -> bool:
    """Whether a workspace just allocated on (device, stream) may be kept for the next call: not
    inside a graph capture, nor on the stream of torch.compile's CUDA graph trees (mode
    "reduce-overhead"), whose warm-up runs allocate from the graphs' private pool and then refuse
    any live allocation there that is not an output of the compiled function."""
    if _capturing():
        return False
    trees = sys.modules.get("torch._inductor.cudagraph_trees")
    if trees is None:  # not imported: no tree runs
        return True
    try:
        manager = trees.get_manager(index, create_if_none_exists=False)
        return manager is None or manager.stream.cuda_stream != stream
    except Exception:  # another torch's internals: keep nothing rather than guess
        return False


def _new_output(kind: int, x: torch.Tensor, n_tokens: int, n_used: int, m: int) -> torch.Tensor:
    # the sizes as separate ints: torch parses a tuple of them ~0.6 us slower
    if kind == WEIGHTED_SUM:
        return x.new_empty(n_tokens, m, dtype=_F32)
    return x.new_empty(n_tokens, n_used, m, dtype=_F32)


def _fast(kind: int, fmt: Format, x, w, w_up, ids, router, precision: int, out) -> Optional[torch.Tensor]:
    """The common call; None where an operand is not as it expects (then nothing has run, and
    _run_moe runs the call or raises the ValueError that names the operand)."""
    try:
        dev = x.device
        x_type = _X_TYPES.get(x.dtype)
        if (
            x_type is None or ids is None or w.dtype is not _U8 or ids.dtype is not _I32
            or w.device != dev or ids.device != dev
            or not (x.is_contiguous() and w.is_contiguous() and ids.is_contiguous())
        ):  # fmt: skip
            return None
        x_shape, w_shape, ids_shape = x.shape, w.shape, ids.shape
        if len(w_shape) != 3 or len(ids_shape) != 2:
            return None
        n_expert, m, row_bytes = w_shape
        n_tokens, n_used = ids_shape
        if len(x_shape) == 2 and x_shape[0] == n_tokens:
            x_per_slot, k = False, x_shape[1]
        elif len(x_shape) == 3 and x_shape[0] == n_tokens and x_shape[1] == n_used:
            x_per_slot, k = True, x_shape[2]
        else:
            return None
        if k % fmt.block_elems or row_bytes != k // fmt.block_elems * fmt.block_bytes:
            return None
        up, up_bytes, rt, rt_bytes = 0, 0, 0, 0
        if kind == GATE_UP:
            if w_up.dtype is not _U8 or w_up.device != dev or not w_up.is_contiguous() or w_up.shape != w_shape:
                return None
            up, up_bytes = w_up.data_ptr(), w_up.nbytes
        elif kind == WEIGHTED_SUM:
            if (
                router.dtype is not _F32 or router.device != dev or not router.is_contiguous()
                or router.shape != ids_shape
            ):  # fmt: skip
                return None
            rt, rt_bytes = router.data_ptr(), router.nbytes
        if out is not None and (
            out.dtype is not _F32 or out.device != dev or not out.is_contiguous()
            or out.shape != ((n_tokens, m) if kind == WEIGHTED_SUM else (n_tokens, n_used, m))
        ):  # fmt: skip
            return None
    except AttributeError:  # an operand that is no tensor: _run_moe says which
        return None
    if not x.is_cuda:
        if not x.is_cpu:
            return None
        if out is None:
            out = _new_output(kind, x, n_tokens, n_used, m)
        _qkern.moe(_ops._context("cpu"), kind, fmt.id, x_type, n_expert, m, k, n_tokens, n_used, x_per_slot,
                   precision, w.data_ptr(), w.nbytes, up, up_bytes, x.data_ptr(), x.nbytes, ids.data_ptr(),
                   ids.nbytes, rt, rt_bytes, out.data_ptr(), out.nbytes, 0, 0, False, 0)  # fmt: skip
        return out
    index = dev.index
    ctx = _cuda_contexts.get(index)
    if ctx is None or _current_device() != index:  # the first call on a device; another device current
        return None
    if out is None:
        out = _new_output(kind, x, n_tokens, n_used, m)
    stream = _raw_stream(index)
    held = None if _capturing() else _workspaces.get((index, stream))
    ws_address, ws_bytes = (held[0], held[1]) if held is not None else (0, 0)
    args = (ctx, kind, fmt.id, x_type, n_expert, m, k, n_tokens, n_used, x_per_slot, precision,
            w.data_ptr(), w.nbytes, up, up_bytes, x.data_ptr(), x.nbytes, ids.data_ptr(), ids.nbytes,
            rt, rt_bytes, out.data_ptr(), out.nbytes)  # fmt: skip
    need = _qkern.moe(*args, ws_address, ws_bytes, True, stream)
    if need:  # nothing was enqueued: a workspace of `need` bytes, then the call
        workspace = x.new_empty(need, dtype=_U8)
        if need <= _WORKSPACE_HELD_MAX and _may_hold(index, stream):
            if len(_workspaces) >= _WORKSPACES_HELD_MAX:
                _workspaces.clear()
            _workspaces[(index, stream)] = (workspace.data_ptr(), need, workspace)
        _qkern.moe(*args, workspace.data_ptr(), need, True, stream)
    return out


def _moe_call(kind: int, fmt: Format, x, w, w_up, ids, router, precision: int, out=None) -> torch.Tensor:
    """A MoE call on tensors: the fast path, else the checked one."""
    y = _fast(kind, fmt, x, w, w_up, ids, router, precision, out)
    return y if y is not None else _run_moe(kind, fmt, x, w, w_up, ids, router, precision, out)


# ---- the operators --------------------------------------------------------------------------
# Weights travel as the uint8 blocks of a GGUF file and their type as its ggml id. The schemas
# are written out so that the id and the precision are plain ints: an inferred schema makes them
# SymInts, which torch.compile may turn symbolic, and a type must be known to trace a shape.
#
# They are defined on a torch.library.Library, one kernel for every backend (it raises a
# ValueError on a device other than the CPU and CUDA) and a fake implementation (also the Meta
# kernel), not through torch.library.custom_op: custom_op adds a Python autograd kernel and
# output checks to every call, 18 us a call on the development machine, more than the kernels
# take on one token. Without an autograd kernel, torch's autograd fallback runs them; they have
# no derivative (backward through one warns and gives no gradient), as qkern.moe_* have none.

Tensor = torch.Tensor
_lib = torch.library.Library("qkern", "FRAGMENT")


def _define(name: str, schema: str, kernel, fake) -> None:
    _lib.define(name + schema, tags=(torch.Tag.pt2_compliant_tag,))
    _lib.impl(name, kernel, "CompositeExplicitAutograd")
    torch.library.register_fake(f"qkern::{name}", fake, lib=_lib)


def _moe_matmul(x: Tensor, w: Tensor, ids: Optional[Tensor], wtype: int, precision: int = 0) -> Tensor:
    """y[t, s] = W[ids[t, s]] @ x[t] (qkern.moe_matmul): float32 [n_tokens, n_used, m]."""
    return _moe_call(MATMUL, _ops._format(wtype), x, w, None, ids, None, precision)


def _moe_matmul_fake(x, w, ids, wtype, precision=0):
    geometry = _check_moe(MATMUL, _ops._format(wtype), x, w, None, ids, None)
    return x.new_empty(_ops._moe_out_shape(MATMUL, geometry), dtype=torch.float32)


def _moe_gate_up(x: Tensor, w_gate: Tensor, w_up: Tensor, ids: Optional[Tensor], wtype: int, precision: int = 0):
    """silu(Wg[e] @ x) * (Wu[e] @ x) per slot (qkern.moe_gate_up): float32 [n_tokens, n_used, m]."""
    return _moe_call(GATE_UP, _ops._format(wtype), x, w_gate, w_up, ids, None, precision)


def _moe_gate_up_fake(x, w_gate, w_up, ids, wtype, precision=0):
    geometry = _check_moe(GATE_UP, _ops._format(wtype), x, w_gate, w_up, ids, None)
    return x.new_empty(_ops._moe_out_shape(GATE_UP, geometry), dtype=torch.float32)


def _moe_weighted_sum(x: Tensor, w: Tensor, ids: Optional[Tensor], router: Tensor, wtype: int, precision: int = 0):
    """sum over s of router[t, s] * (W[ids[t, s]] @ x[t, s]) (qkern.moe_weighted_sum): float32 [n_tokens, m]."""
    return _moe_call(WEIGHTED_SUM, _ops._format(wtype), x, w, None, ids, router, precision)


def _moe_weighted_sum_fake(x, w, ids, router, wtype, precision=0):
    geometry = _check_moe(WEIGHTED_SUM, _ops._format(wtype), x, w, None, ids, router)
    return x.new_empty(_ops._moe_out_shape(WEIGHTED_SUM, geometry), dtype=torch.float32)


_define("moe_matmul", "(Tensor x, Tensor w, Tensor? ids, int wtype, int precision=0) -> Tensor",
        _moe_matmul, _moe_matmul_fake)  # fmt: skip
_define("moe_gate_up", "(Tensor x, Tensor w_gate, Tensor w_up, Tensor? ids, int wtype, int precision=0) -> Tensor",
        _moe_gate_up, _moe_gate_up_fake)  # fmt: skip
_define("moe_weighted_sum", "(Tensor x, Tensor w, Tensor? ids, Tensor router, int wtype, int precision=0) -> Tensor",
        _moe_weighted_sum, _moe_weighted_sum_fake)  # fmt: skip

_is_compiling = torch.compiler.is_compiling


def moe(kind: int, type: Any, x, w, w_up, ids, router, precision: Any, out) -> torch.Tensor:
    """qkern.moe_* on tensors. Eagerly the call goes straight to the library (the dispatcher
    would add its own overhead to every decode step); while torch.compile traces, it goes through
    the registered operator, which the graph can hold."""
    fmt = _ops._format(type)
    prec = _ops._precision(precision)
    if _is_compiling():
        if out is not None:
            raise ValueError("out: not supported under torch.compile (the operators are functional)")
        if kind == MATMUL:
            return torch.ops.qkern.moe_matmul(x, w, ids, fmt.id, prec)
        if kind == GATE_UP:
            return torch.ops.qkern.moe_gate_up(x, w, w_up, ids, fmt.id, prec)
        return torch.ops.qkern.moe_weighted_sum(x, w, ids, router, fmt.id, prec)
    # _moe_call, inlined: a decode step pays for every Python call
    y = _fast(kind, fmt, x, w, w_up, ids, router, prec, out)
    return y if y is not None else _run_moe(kind, fmt, x, w, w_up, ids, router, prec, out)
