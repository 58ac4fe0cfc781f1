"""qkern on torch tensors, and the torch.library operators torch.ops.qkern.*.

Imported on the first qkern call that sees a tensor (or by qkern.register_torch_ops()), so that
`import qkern` does not import torch. A CUDA tensor's work is enqueued on torch's current stream
of its device through qkern_cuda.h's asynchronous calls, on the tensor's own memory; the MoE
workspace and outputs come from torch's caching allocator, so the operators hold no host
synchronization and allocate nothing outside torch: they can be captured in a CUDA graph and
traced by torch.compile (their fake implementations give the output's shape without running).
"""

from __future__ import annotations

import contextlib
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
        ws_bytes = _qkern.moe_workspace_size(ctx, fmt.id, x_type, *geometry, precision)
        ws = torch.empty(ws_bytes, dtype=torch.uint8, device=x.device) if ws_bytes else None
        args = (ctx, kind, fmt.id, x_type, *geometry, precision, _operand(w), _operand(w_up), _operand(x),
                _operand(ids), _operand(router), _operand(out), _operand(ws), True, _raw_stream(index))  # fmt: skip
        # qkern makes the tensor's device current for its call: torch's current device must not
        # change under it
        if index == torch.cuda.current_device():
            _qkern.moe(*args)
        else:
            with torch.cuda.device(index):
                _qkern.moe(*args)
    elif x.device.type == "cpu":
        _qkern.moe(_ops._context("cpu"), kind, fmt.id, x_type, *geometry, precision, _operand(w), _operand(w_up),
                   _operand(x), _operand(ids), _operand(router), _operand(out), (0, 0), False, 0)  # fmt: skip
    else:
        raise ValueError(f"qkern runs on CPU and CUDA tensors, not on {x.device}")
    return out


# ---- the operators --------------------------------------------------------------------------
# Weights travel as the uint8 blocks of a GGUF file and their type as its ggml id. The schemas
# are written out so that the id and the precision are plain ints: an inferred schema makes them
# SymInts, which torch.compile may turn symbolic, and a type must be known to trace a shape.


Tensor = torch.Tensor


@torch.library.custom_op(
    "qkern::moe_matmul",
    mutates_args=(),
    schema="(Tensor x, Tensor w, Tensor? ids, int wtype, int precision=0) -> Tensor",
)
def moe_matmul_op(x: Tensor, w: Tensor, ids: Optional[Tensor], wtype: int, precision: int = 0) -> Tensor:
    """y[t, s] = W[ids[t, s]] @ x[t] (qkern.moe_matmul): float32 [n_tokens, n_used, m]."""
    return _run_moe(MATMUL, _ops._format(wtype), x, w, None, ids, None, precision)


@moe_matmul_op.register_fake
def _(x, w, ids, wtype, precision=0):
    geometry = _check_moe(MATMUL, _ops._format(wtype), x, w, None, ids, None)
    return x.new_empty(_ops._moe_out_shape(MATMUL, geometry), dtype=torch.float32)


@torch.library.custom_op(
    "qkern::moe_gate_up",
    mutates_args=(),
    schema="(Tensor x, Tensor w_gate, Tensor w_up, Tensor? ids, int wtype, int precision=0) -> Tensor",
)
def moe_gate_up_op(
    x: Tensor, w_gate: Tensor, w_up: Tensor, ids: Optional[Tensor], wtype: int, precision: int = 0
) -> Tensor:
    """silu(Wg[e] @ x) * (Wu[e] @ x) per slot (qkern.moe_gate_up): float32 [n_tokens, n_used, m]."""
    return _run_moe(GATE_UP, _ops._format(wtype), x, w_gate, w_up, ids, None, precision)


@moe_gate_up_op.register_fake
def _(x, w_gate, w_up, ids, wtype, precision=0):
    geometry = _check_moe(GATE_UP, _ops._format(wtype), x, w_gate, w_up, ids, None)
    return x.new_empty(_ops._moe_out_shape(GATE_UP, geometry), dtype=torch.float32)


@torch.library.custom_op(
    "qkern::moe_weighted_sum",
    mutates_args=(),
    schema="(Tensor x, Tensor w, Tensor? ids, Tensor router, int wtype, int precision=0) -> Tensor",
)
def moe_weighted_sum_op(
    x: Tensor, w: Tensor, ids: Optional[Tensor], router: Tensor, wtype: int, precision: int = 0
) -> Tensor:
    """sum over s of router[t, s] * (W[ids[t, s]] @ x[t, s]) (qkern.moe_weighted_sum): float32 [n_tokens, m]."""
    return _run_moe(WEIGHTED_SUM, _ops._format(wtype), x, w, None, ids, router, precision)


@moe_weighted_sum_op.register_fake
def _(x, w, ids, router, wtype, precision=0):
    geometry = _check_moe(WEIGHTED_SUM, _ops._format(wtype), x, w, None, ids, router)
    return x.new_empty(_ops._moe_out_shape(WEIGHTED_SUM, geometry), dtype=torch.float32)


def moe(kind: int, fmt: Format, x, w, w_up, ids, router, precision: int, out) -> torch.Tensor:
    """qkern.moe_* on tensors. Eagerly the call goes straight to the library (the dispatcher
    would add its own overhead to every decode step); while torch.compile traces, it goes through
    the registered operator, which the graph can hold."""
    if torch.compiler.is_compiling():
        if out is not None:
            raise ValueError("out: not supported under torch.compile (the operators are functional)")
        if kind == MATMUL:
            return torch.ops.qkern.moe_matmul(x, w, ids, fmt.id, precision)
        if kind == GATE_UP:
            return torch.ops.qkern.moe_gate_up(x, w, w_up, ids, fmt.id, precision)
        return torch.ops.qkern.moe_weighted_sum(x, w, ids, router, fmt.id, precision)
    return _run_moe(kind, fmt, x, w, w_up, ids, router, precision, out)
