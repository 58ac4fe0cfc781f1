"""qkern: GGUF quantization kernels for Python.

Quantize and dequantize GGUF block formats (Q2_K..Q8_0, the I-quants, MXFP4, NVFP4, the
ternary types) and run expert-batched MoE matrix products on quantized weights, on NumPy arrays
(CPU) and on PyTorch tensors (CPU or CUDA, on torch's current stream, without copies)::

    import numpy as np, qkern
    w = np.random.default_rng(0).standard_normal((4096, 4096), dtype=np.float32)
    blocks = qkern.quantize(w, "Q4_K")                       # uint8 [4096, 2304]
    w2 = qkern.dequantize(blocks, "Q4_K", w.shape, np.float32)
    qkern.quantize_file("model-bf16.gguf", "model-Q4_K_M.gguf", "Q4_K_M", imatrix="imatrix.gguf")

With PyTorch installed, ``torch.ops.qkern.moe_matmul``, ``moe_gate_up`` and ``moe_weighted_sum``
are registered operators (fake implementations included) for torch.compile and CUDA graphs;
``qkern.register_torch_ops()`` registers them, and any qkern call on a torch tensor does too.

Errors raise ValueError (bad arguments, shapes, values: qkern's message), OSError (files) or
RuntimeError (the device). See docs/python.md.
"""

from ._ops import (
    Device,
    Format,
    dequantize,
    devices,
    formats,
    moe_gate_up,
    moe_matmul,
    moe_weighted_sum,
    quantize,
    register_torch_ops,
    row_bytes,
    version,
)
from ._files import Preset, QuantizeResult, presets, quantize_file

__version__ = version()

__all__ = [
    "Device",
    "Format",
    "Preset",
    "QuantizeResult",
    "dequantize",
    "devices",
    "formats",
    "moe_gate_up",
    "moe_matmul",
    "moe_weighted_sum",
    "presets",
    "quantize",
    "quantize_file",
    "register_torch_ops",
    "row_bytes",
    "version",
]
