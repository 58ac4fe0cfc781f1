"""The array operations: quantize, dequantize, the MoE products, and the format table."""

from __future__ import annotations

import sys
import threading
from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np

from . import _qkern

__all__ = [
    "Device",
    "Format",
    "dequantize",
    "devices",
    "formats",
    "moe_gate_up",
    "moe_matmul",
    "moe_weighted_sum",
    "quantize",
    "register_torch_ops",
    "row_bytes",
    "version",
]


class Format(NamedTuple):
    """One GGUF type of qkern's format table."""

    name: str  #: ggml's name, e.g. "Q4_K"
    id: int  #: ggml's type id, as GGUF files store it
    block_elems: int  #: values per block (1 for F32, F16, BF16)
    block_bytes: int  #: bytes per block
    bits_per_weight: float
    is_quantized: bool
    uses_imatrix: bool  #: the quantizer weighs its search by an imatrix when given one
    needs_imatrix: bool  #: quantize refuses without an imatrix (allow_no_imatrix overrides)


class Device(NamedTuple):
    """A device this build of qkern can use."""

    id: str  #: what the ``device`` arguments take: "cpu", "cuda:0", "vulkan:0"
    name: str
    kind: str  #: "cpu", "cuda" or "vulkan"
    memory_bytes: int
    compute_units: int
    is_software: bool  #: a GPU API implemented on the CPU (lavapipe); never chosen by "auto"


_FORMATS: dict[int, Format] = {f[1]: Format(*f) for f in _qkern.formats()}
_BY_NAME: dict[str, Format] = {f.name: f for f in _FORMATS.values()}
# what _format resolves with one look-up: each id, each name as written and in lower case
_FORMAT_OF: dict[Union[str, int], Format] = {
    **_FORMATS, **_BY_NAME, **{f.name.lower(): f for f in _FORMATS.values()},
}  # fmt: skip
_DEVICE_KINDS = ("cpu", "cuda", "vulkan")
_PRECISIONS = {"default": 0, "exact": 1}
_PRECISION_OF = {**_PRECISIONS, **{v: v for v in _PRECISIONS.values()}}
_X_NUMPY = {np.dtype(np.float32): _BY_NAME["F32"].id, np.dtype(np.float16): _BY_NAME["F16"].id}

# kinds of _qkern.moe
MATMUL, GATE_UP, WEIGHTED_SUM = 0, 1, 2
# qk_quantize_desc.flags
_ALLOW_NO_IMATRIX = 1


def version() -> str:
    """The version of the qkern library this package was built with."""
    return _qkern.version()


def formats() -> list[Format]:
    """Every type qkern knows, in ascending id order, with its block geometry."""
    return list(_FORMATS.values())


def devices() -> list[Device]:
    """The devices this build can use, best first (the cpu is always there)."""
    return [Device(d[0], d[1], _DEVICE_KINDS[d[2]], d[3], d[4], d[5]) for d in _qkern.devices()]


def _format(type: Union[str, int, Format]) -> Format:
    """A type given by name ("q4_k"), ggml id (12, or gguf.GGMLQuantizationType.Q4_K) or Format."""
    if type.__class__ is str or type.__class__ is int:  # not bool, not an enum: those below
        f = _FORMAT_OF.get(type)
        if f is not None:
            return f
    if isinstance(type, Format):
        return type
    if isinstance(type, str):
        f = _BY_NAME.get(type.upper())
        return f if f is not None else _FORMATS[_qkern.type_from_name(type)]  # raises qkern's error
    if isinstance(type, (int, np.integer)) and not isinstance(type, bool):
        f = _FORMATS.get(int(type))
        if f is None:
            raise ValueError(f"unknown type id {int(type)} (qkern.formats() lists the types)")
        return f
    raise ValueError(f"type: expected a type name, a ggml type id or a qkern.Format, got {type!r}")


def row_bytes(type: Union[str, int, Format], cols: int) -> int:
    """Bytes of one row of ``cols`` values of ``type``; 0 if cols is not a multiple of its block."""
    return _qkern.row_bytes(_format(type).id, int(cols))


# One context per device, created on first use and kept: creating one initializes a backend
# (a CUDA context, a Vulkan instance), far too slow to repeat per call.
_contexts: dict[str, Any] = {}
_contexts_lock = threading.Lock()


def _context(device: Optional[str], n_threads: int = 0) -> Any:
    key = f"{device or 'auto'}/{n_threads}"
    ctx = _contexts.get(key)
    if ctx is None:
        with _contexts_lock:
            ctx = _contexts.get(key)
            if ctx is None:
                ctx = _contexts[key] = _qkern.Context(device or "auto", n_threads)
    return ctx


def _is_torch(a: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(a, torch.Tensor)


_torch_module: Any = None  # qkern._torch once a tensor has been seen (import qkern does not import torch)


def _torch_impl():
    global _torch_module
    if _torch_module is None:
        from . import _torch

        _torch_module = _torch
    return _torch_module


def register_torch_ops() -> None:
    """Registers torch.ops.qkern.moe_matmul, moe_gate_up and moe_weighted_sum (imports torch).

    Any qkern call on a torch tensor registers them too; call this before tracing a model that
    uses torch.ops.qkern.* directly."""
    _torch_impl()


def _numpy_array(a: Any, name: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name}: expected a NumPy array or a torch tensor, got {type(a).__name__}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: the array must be C-contiguous (np.ascontiguousarray makes a contiguous copy)")
    return a


def _rows_cols(shape: Sequence[int], name: str) -> tuple[int, int]:
    if len(shape) == 0:
        raise ValueError(f"{name}: a 0-d array has no rows")
    cols = int(shape[-1])
    rows = 1
    for s in shape[:-1]:
        rows *= int(s)
    return rows, cols


def quantize(
    array: Any,
    type: Union[str, int, Format],
    imatrix: Optional[Any] = None,
    *,
    allow_no_imatrix: bool = False,
    device: Optional[str] = None,
    check_finite: bool = True,
) -> Any:
    """Quantizes ``array`` (rows of values along its last axis) into GGUF blocks of ``type``.

    array    float32 or float16 NumPy array, or a float32/float16/bfloat16 torch tensor, C-contiguous,
             with its last dimension a multiple of the type's block size.
    type     a type name ("Q4_K"), a ggml type id, or a Format.
    imatrix  importance weights (mean x^2 per column): ``cols`` values, or ``m * cols`` for m
             equal groups of rows (the experts of a 3-D expert stack). Required for the types
             whose Format says needs_imatrix, unless allow_no_imatrix.
    device   for NumPy input, the device that quantizes it ("cpu" by default, "cuda:0",
             "vulkan:0", "auto"); the result is the same bytes on every device. A torch tensor is
             quantized where it lives; a CUDA tensor on torch's current stream.
    check_finite  CUDA tensors only: qkern's asynchronous quantizer does not scan for NaN/Inf,
             so this checks first (one synchronization); False skips the check.

    Returns uint8 blocks of shape ``array.shape[:-1] + (row_bytes,)``, a NumPy array or a tensor
    on the input's device, exactly the bytes a GGUF file stores. Raises ValueError with qkern's
    message for a bad shape (the last dimension not a multiple of the block), a NaN/Inf value (its
    row and column named), a missing imatrix or a bad type.
    """
    fmt = _format(type)
    flags = _ALLOW_NO_IMATRIX if allow_no_imatrix else 0
    if _is_torch(array):
        return _torch_impl().quantize(array, fmt, imatrix, flags, device, check_finite)
    a = _numpy_array(array, "array")
    _check_float_numpy(a, "array")
    rows, cols = _rows_cols(a.shape, "array")
    # cols not a multiple of the block: an empty output, and qkern's shape error from the call
    out = np.empty(a.shape[:-1] + (_qkern.row_bytes(fmt.id, cols),), np.uint8)
    im = None if imatrix is None else np.ascontiguousarray(imatrix, dtype=np.float32).reshape(-1)
    _qkern.quantize(_context(device or "cpu"), fmt.id, a, out, rows, cols, im, flags, 0)
    return out


def _check_float_numpy(a: np.ndarray, name: str) -> None:
    if a.dtype not in _X_NUMPY:
        raise ValueError(f"{name}: qkern reads float32 or float16 from NumPy (bfloat16 from torch), not {a.dtype}")


def dequantize(
    blocks: Any,
    type: Union[str, int, Format],
    shape: Union[int, Sequence[int]],
    dtype: Any = np.float32,
    *,
    device: Optional[str] = None,
) -> Any:
    """Decodes GGUF blocks of ``type`` into values of ``shape`` (rows along the last axis).

    blocks  uint8 NumPy array or torch tensor, C-contiguous, exactly
            ``prod(shape[:-1]) * row_bytes(type, shape[-1])`` bytes (any shape).
    dtype   np.float32 / np.float16 for NumPy blocks; torch.float32 / float16 / bfloat16 for a
            tensor, whose result is on its device (a CUDA tensor's on torch's current stream).
    device  for NumPy blocks, the device that decodes them ("cpu" by default).

    Every bit pattern decodes, to ggml's values bit for bit.
    """
    fmt = _format(type)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    rows, cols = _rows_cols(shape, "shape")
    if _is_torch(blocks):
        return _torch_impl().dequantize(blocks, fmt, shape, rows, cols, dtype, device)
    b = _numpy_array(blocks, "blocks")
    _check_block_bytes(b.nbytes, fmt, rows, cols)
    dt = np.dtype(dtype)
    if dt not in _X_NUMPY:
        raise ValueError(f"dtype: qkern writes float32 or float16 into NumPy arrays (bfloat16 into torch), not {dt}")
    out = np.empty(shape, dt)
    _qkern.dequantize(_context(device or "cpu"), fmt.id, b, out, rows, cols, 0)
    return out


def _check_block_bytes(nbytes: int, fmt: Format, rows: int, cols: int) -> None:
    need = rows * _qkern.row_bytes(fmt.id, cols)
    # a bad cols is left to qkern, whose message says what is wrong with it
    if need and nbytes != need:
        raise ValueError(f"blocks: {nbytes} bytes, but {rows} rows of {cols} {fmt.name} values take {need}")


def _precision(p: Union[str, int]) -> int:
    if p.__class__ is str or p.__class__ is int:
        v = _PRECISION_OF.get(p)
        if v is not None:
            return v
    if isinstance(p, str) and p in _PRECISIONS:
        return _PRECISIONS[p]
    if p in _PRECISIONS.values():
        return int(p)
    raise ValueError(f"precision: expected 'default' or 'exact', got {p!r}")


def _moe_geometry(kind: int, fmt: Format, x: Any, w: Any, w_up: Any, ids: Any, router: Any) -> tuple:
    """(n_expert, m, k, n_tokens, n_used, x_per_slot) of a MoE call from its operands' shapes
    (NumPy arrays, tensors or fake tensors), or ValueError naming the operand that disagrees."""
    if x.ndim not in (2, 3):
        raise ValueError(f"x: expected [n_tokens, k] or [n_tokens, n_used, k], got shape {tuple(x.shape)}")
    n_tokens, k = x.shape[0], x.shape[-1]
    x_per_slot = x.ndim == 3
    if w.ndim == 3:
        n_expert, m, rb = w.shape
    elif w.ndim == 2:
        n_expert, (m, rb) = 1, w.shape
    else:
        raise ValueError(f"w_blocks: expected [n_expert, m, row_bytes] uint8, got shape {tuple(w.shape)}")
    if k % fmt.block_elems != 0:
        raise ValueError(f"x: k = {k} is not a multiple of {fmt.name}'s block of {fmt.block_elems} values")
    if rb != k // fmt.block_elems * fmt.block_bytes:
        need = k // fmt.block_elems * fmt.block_bytes
        raise ValueError(f"w_blocks: rows of {rb} bytes, but k = {k} values of {fmt.name} take {need}")
    if ids is None:
        if n_expert != 1:
            raise ValueError("ids: required when w_blocks holds more than one expert")
        n_used = x.shape[1] if x_per_slot else 1
    else:
        if ids.ndim != 2 or ids.shape[0] != n_tokens:
            raise ValueError(f"ids: expected [n_tokens={n_tokens}, n_used], got shape {tuple(ids.shape)}")
        n_used = ids.shape[1]
    if x_per_slot and x.shape[1] != n_used:
        raise ValueError(f"x: [n_tokens, n_used, k] with n_used = {x.shape[1]}, but ids has {n_used} slots")
    if kind == GATE_UP and tuple(w_up.shape) != tuple(w.shape):
        raise ValueError(f"w_up: shape {tuple(w_up.shape)} differs from w_gate's {tuple(w.shape)}")
    if kind == WEIGHTED_SUM and (router.ndim != 2 or tuple(router.shape) != (n_tokens, n_used)):
        raise ValueError(f"router: expected [{n_tokens}, {n_used}], got shape {tuple(router.shape)}")
    return n_expert, m, k, n_tokens, n_used, x_per_slot


def _moe_out_shape(kind: int, geometry: tuple) -> tuple:
    _, m, _, n_tokens, n_used, _ = geometry
    return (n_tokens, m) if kind == WEIGHTED_SUM else (n_tokens, n_used, m)


def _np_operand(a: Optional[np.ndarray]) -> tuple[int, int]:
    return (0, 0) if a is None else (a.ctypes.data, a.nbytes)


def _moe(kind, x, w, w_up, type, ids, router, precision, out, device):
    # once qkern._torch is loaded the public functions send tensors there themselves (on a decode
    # step every Python call counts); this sends the first ones
    if _is_torch(x):
        return _torch_impl().moe(kind, type, x, w, w_up, ids, router, precision, out)
    fmt = _format(type)
    prec = _precision(precision)
    x = _numpy_array(x, "x")
    _check_float_numpy(x, "x")
    w = _numpy_array(w, "w_blocks")
    operands = [("w_blocks", w, np.uint8)]
    if kind == GATE_UP:
        w_up = _numpy_array(w_up, "w_up")
        operands.append(("w_up", w_up, np.uint8))
    if ids is not None:
        ids = _numpy_array(ids, "ids")
        operands.append(("ids", ids, np.int32))
    if kind == WEIGHTED_SUM:
        router = _numpy_array(router, "router")
        operands.append(("router", router, np.float32))
    for name, a, dt in operands:
        if a.dtype != dt:
            raise ValueError(f"{name}: expected {np.dtype(dt)}, got {a.dtype}")
    geometry = _moe_geometry(kind, fmt, x, w, w_up, ids, router)
    shape = _moe_out_shape(kind, geometry)
    if out is None:
        out = np.empty(shape, np.float32)
    else:
        out = _numpy_array(out, "out")
        if out.dtype != np.float32 or out.shape != shape:
            raise ValueError(f"out: expected float32 {shape}, got {out.dtype} {out.shape}")
    _qkern.moe(
        _context(device or "cpu"), kind, fmt.id, _X_NUMPY[x.dtype], *geometry, prec,
        *_np_operand(w), *_np_operand(w_up if kind == GATE_UP else None), *_np_operand(x), *_np_operand(ids),
        *_np_operand(router if kind == WEIGHTED_SUM else None), *_np_operand(out), 0, 0, False, 0,
    )  # fmt: skip
    return out


def moe_matmul(
    x: Any,
    w_blocks: Any,
    type: Union[str, int, Format],
    ids: Any,
    *,
    precision: Union[str, int] = "default",
    out: Any = None,
    device: Optional[str] = None,
) -> Any:
    """Expert-batched product (ggml's mul_mat_id): ``y[t, s] = W[ids[t, s]] @ x[t]``.

    x         [n_tokens, k] activations (float32/float16, or bfloat16 in torch), or
              [n_tokens, n_used, k] with one input per slot (the down projection).
    w_blocks  uint8 [n_expert, m, row_bytes]: the expert stack as a GGUF file stores it (what
              quantize() returns for float [n_expert, m, k]); [m, row_bytes] for one matrix.
    ids       int32 [n_tokens, n_used], each in [0, n_expert); None when n_expert is 1.
    precision "default" (on CUDA, few tokens per expert: activations quantized to 8 bits,
              relative error <= 1e-2) or "exact" (<= 2e-3).
    out       optional float32 output to write into.
    device    for NumPy operands, the device that computes ("cpu" by default).

    Returns float32 [n_tokens, n_used, m]. On CUDA tensors it is enqueued on torch's current
    stream with its workspace from torch's caching allocator: no synchronization, no copy, so it
    can be captured in a CUDA graph (after one call outside the capture has created the device's
    context). Ids are not checked on CUDA (that needs a synchronization): a bad id gives NaN rows.
    """
    t = _torch_module
    if t is not None and isinstance(x, t.Tensor):
        return t.moe(MATMUL, type, x, w_blocks, None, ids, None, precision, out)
    return _moe(MATMUL, x, w_blocks, None, type, ids, None, precision, out, device)


def moe_gate_up(
    x: Any,
    w_gate: Any,
    w_up: Any,
    type: Union[str, int, Format],
    ids: Any,
    *,
    precision: Union[str, int] = "default",
    out: Any = None,
    device: Optional[str] = None,
) -> Any:
    """The gated expert input in one call: ``y[t, s] = silu(Wg[e] @ x[t]) * (Wu[e] @ x[t])``
    with ``e = ids[t, s]``; w_gate and w_up of one type and shape. Otherwise as moe_matmul."""
    t = _torch_module
    if t is not None and isinstance(x, t.Tensor):
        return t.moe(GATE_UP, type, x, w_gate, w_up, ids, None, precision, out)
    return _moe(GATE_UP, x, w_gate, w_up, type, ids, None, precision, out, device)


def moe_weighted_sum(
    x: Any,
    w_blocks: Any,
    type: Union[str, int, Format],
    ids: Any,
    router: Any,
    *,
    precision: Union[str, int] = "default",
    out: Any = None,
    device: Optional[str] = None,
) -> Any:
    """The down projection summed over a token's experts:
    ``y[t] = sum_s router[t, s] * (W[ids[t, s]] @ x[t, s])``, slots added in order.

    router  float32 [n_tokens, n_used]. Returns float32 [n_tokens, m]. Otherwise as moe_matmul."""
    t = _torch_module
    if t is not None and isinstance(x, t.Tensor):
        return t.moe(WEIGHTED_SUM, type, x, w_blocks, None, ids, router, precision, out)
    return _moe(WEIGHTED_SUM, x, w_blocks, None, type, ids, router, precision, out, device)
