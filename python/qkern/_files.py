"""Whole GGUF files: qkern.quantize_file, the model-level quantizer (qk_model_quantize)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple, Optional, Union

from . import _ops, _qkern

__all__ = ["Preset", "Progress", "QuantizeResult", "presets", "quantize_file"]


class Preset(NamedTuple):
    """A llama-quantize file type ("preset")."""

    name: str  #: e.g. "Q4_K_M"
    id: int  #: its llama_ftype, written as general.file_type
    default_type: str  #: the type most tensors get
    help: str
    alias_of: Optional[str]  #: Q3_K, Q4_K, Q5_K: the preset they stand for


class Progress(NamedTuple):
    """What quantize_file's progress callback receives: after each chunk of a tensor, and once
    more with tensor_done when the tensor is written."""

    tensor: int  #: 0-based, in output order
    n_tensors: int
    name: str
    bytes_done: int  #: input bytes, over the whole model; never decreases
    bytes_total: int
    seconds: float
    tensor_done: bool


@dataclass
class QuantizeResult:
    """What quantize_file made: one dict per tensor in output order (name, src_type, type, ne
    (innermost first, as GGUF stores it), src_bytes, bytes, reason, converted, imatrix, split,
    seconds, rmse, rel_rmse; rmse < 0 where not measured), the totals, and informational notes."""

    tensors: list = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    notes: str = ""


def presets() -> list[Preset]:
    """llama-quantize's presets, in the order it lists them."""
    return [Preset(*p) for p in _qkern.presets()]


def _tqdm_progress() -> Optional[tuple[Callable, Callable]]:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    bar = None

    def update(p: Progress) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=p.bytes_total, unit="B", unit_scale=True, unit_divisor=1024, desc="quantize")
        bar.update(p.bytes_done - bar.n)
        bar.set_postfix_str(f"{p.tensor + 1}/{p.n_tensors} {p.name}", refresh=False)

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close


def quantize_file(
    src: Union[str, os.PathLike],
    dst: Union[str, os.PathLike],
    preset_or_types: Union[str, Mapping[str, Any]],
    imatrix: Union[str, os.PathLike, None] = None,
    device: str = "auto",
    progress: Union[Callable[[Progress], Any], bool, None] = None,
    *,
    base_preset: str = "Q8_0",
    pure: bool = False,
    output_tensor_type: Any = None,
    token_embedding_type: Any = None,
    leave_output_tensor: bool = False,
    allow_requantize: bool = False,
    keep_split: bool = False,
    split_max_bytes: int = 0,
    dry_run: bool = False,
    measure_error: bool = False,
    chunk_bytes: int = 0,
    n_threads: int = 0,
) -> QuantizeResult:
    """Quantizes the GGUF model ``src`` into ``dst``, as ``qkern quantize`` (and llama-quantize) do.

    preset_or_types  a preset name ("Q4_K_M", "IQ2_XXS", ...: qkern.presets()), or a mapping
                     {regex: type} of per-tensor types (llama-quantize's --tensor-type; the first
                     pattern that matches a tensor's name wins), applied over ``base_preset``.
    imatrix          an importance matrix file (llama-imatrix's GGUF or legacy .dat), or None.
    device           "auto" (the best GPU, else the cpu), "cuda:0", "vulkan:0" or "cpu".
    progress         a callable receiving a Progress after each chunk; None (or True): a tqdm
                     bar when tqdm is installed; False: nothing. An exception from it (Ctrl-C included)
                     stops the run and is raised here.
    The keyword options are qk_model_quantize_desc's (qkern.h) of the same names.

    ``dst`` appears only when complete; on any failure no output file exists. Raises ValueError
    (bad recipe, a NaN weight: its tensor, row and column named), OSError (a file) or
    RuntimeError (the device), with qkern's message.
    """
    o = _qkern.ModelOptions()
    o.input, o.output = os.fspath(src), os.fspath(dst)
    if isinstance(preset_or_types, str):
        o.preset = preset_or_types
    elif isinstance(preset_or_types, Mapping):
        o.preset = base_preset
        o.overrides = [(str(pattern), _ops._format(t).id) for pattern, t in preset_or_types.items()]
    else:
        raise ValueError("preset_or_types: expected a preset name or a {regex: type} mapping")
    o.imatrix = None if imatrix is None else os.fspath(imatrix)
    o.output_tensor_type = -1 if output_tensor_type is None else _ops._format(output_tensor_type).id
    o.token_embedding_type = -1 if token_embedding_type is None else _ops._format(token_embedding_type).id
    o.pure, o.leave_output_tensor, o.allow_requantize = pure, leave_output_tensor, allow_requantize
    o.keep_split, o.split_max_bytes = keep_split, int(split_max_bytes)
    o.dry_run, o.measure_error, o.chunk_bytes = dry_run, measure_error, int(chunk_bytes)

    close = None
    if progress is None or progress is True:
        progress, close = _tqdm_progress() or (False, None)
    callback = progress if callable(progress) else None
    report = None if callback is None else (lambda *fields: callback(Progress(*fields)))
    try:
        tensors, totals, notes = _qkern.model_quantize(_ops._context(device, n_threads), o, report)
    finally:
        if close:
            close()
    return QuantizeResult(tensors, totals, notes)
