"""qkern.quantize / qkern.dequantize on NumPy arrays, judged by the independent `gguf` package
(llama.cpp's own Python reader): its dequantizer, its closed-formula quantizers and its table of
block sizes."""

import numpy as np
import pytest

import qkern

gguf = pytest.importorskip("gguf", reason="the gguf package is needed (scripts/setup.sh installs it)")
from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf import quants  # noqa: E402

QUANTIZED = [f for f in qkern.formats() if f.is_quantized]
# gguf's quantizers of closed-formula types, which ggml (and so qkern) computes the same way; the
# float conversions are byte copies and roundings there too.
CLOSED_FORM = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "TQ1_0", "TQ2_0", "MXFP4"}
ROWS, COLS = 3, 512  # small: gguf's Python decoders of the I-quants take seconds per thousand blocks


def gguf_type(fmt):
    t = getattr(T, fmt.name, None)
    if t is None or t not in quants._type_traits:
        pytest.skip(f"the installed gguf package cannot dequantize {fmt.name}")
    return t


def weights(rng, rows=ROWS, cols=COLS):
    # a heavy tail and a few large values, as real weights have, so that scales and outliers matter
    x = rng.standard_normal((rows, cols)).astype(np.float32) * 0.02
    x[rng.random((rows, cols)) < 0.01] *= 30
    return x


def imatrix_for(fmt, rng, cols=COLS):
    return rng.uniform(0.1, 2.0, cols).astype(np.float32) if fmt.uses_imatrix or fmt.needs_imatrix else None


def test_format_table_matches_gguf_block_sizes():
    checked = 0
    for fmt in qkern.formats():
        t = getattr(T, fmt.name, None)
        if t is None:
            continue
        assert t.value == fmt.id, fmt.name
        assert gguf.GGML_QUANT_SIZES[t] == (fmt.block_elems, fmt.block_bytes), fmt.name
        assert fmt.bits_per_weight == pytest.approx(8 * fmt.block_bytes / fmt.block_elems)
        checked += 1
    assert checked >= 25


@pytest.mark.parametrize("fmt", QUANTIZED, ids=lambda f: f.name)
def test_quantized_blocks_decode_alike_in_gguf_and_qkern(fmt, rng):
    t = gguf_type(fmt)
    x = weights(rng)
    blocks = qkern.quantize(x, fmt.name, imatrix_for(fmt, rng))
    assert blocks.dtype == np.uint8 and blocks.shape == (ROWS, qkern.row_bytes(fmt.name, COLS))
    ours = qkern.dequantize(blocks, fmt.name, x.shape)
    theirs = quants.dequantize(blocks, t)
    assert theirs.shape == x.shape
    assert np.array_equal(ours.view(np.uint32), theirs.astype(np.float32).view(np.uint32)), fmt.name


# Relative RMS error of a quantize/dequantize round trip on Gaussian weights, by bits per weight:
# about 1.5x the worst seen over 20 seeds, so that a wrong scale or garbage blocks fail. The
# ternary and binary formats are meant for weights that are already {-1, 0, 1} (or +-1) times a
# scale: on those they must be exact up to the f16 rounding of the scale.
TERNARY_DATA = {"TQ1_0": [-1, 0, 1], "TQ2_0": [-1, 0, 1], "Q2_0": [-1, 0, 1], "Q1_0": [-1, 1]}


def round_trip_bound(fmt):
    bpw = fmt.bits_per_weight
    for at_least, bound in ((8, 0.01), (5, 0.12), (4, 0.18), (3, 0.3), (2, 0.5)):
        if bpw >= at_least:
            return bound
    return 0.75


@pytest.mark.parametrize("fmt", QUANTIZED, ids=lambda f: f.name)
def test_round_trip_error_is_bounded(fmt, rng):
    if fmt.name in TERNARY_DATA:
        x = (rng.choice(TERNARY_DATA[fmt.name], (ROWS, COLS)) * 0.02).astype(np.float32)
        bound = 1e-3
    else:
        x = (rng.standard_normal((ROWS, COLS)) * 0.02).astype(np.float32)
        bound = round_trip_bound(fmt)
    blocks = qkern.quantize(x, fmt, imatrix_for(fmt, rng))
    y = qkern.dequantize(blocks, fmt, x.shape).astype(np.float64)
    rel = np.sqrt(np.sum((y - x) ** 2) / np.sum(x.astype(np.float64) ** 2))
    assert rel < bound, f"{fmt.name}: relative RMS error {rel:.4f}"


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
def test_closed_form_quantizers_match_gguf_byte_for_byte(name, rng):
    x = weights(rng)
    ours = qkern.quantize(x, name)
    theirs = np.ascontiguousarray(quants.quantize(x, getattr(T, name))).view(np.uint8)
    assert ours.shape == theirs.shape
    diff = np.flatnonzero(ours.reshape(-1) != theirs.reshape(-1))
    assert diff.size == 0, f"{name}: {diff.size} bytes differ, the first at byte {diff[:1]}"


def test_float16_input_quantizes_as_its_float32_values(rng):
    x16 = weights(rng).astype(np.float16)
    assert np.array_equal(qkern.quantize(x16, "Q4_K"), qkern.quantize(x16.astype(np.float32), "Q4_K"))


def test_float16_output_is_float32_output_rounded(rng):
    blocks = qkern.quantize(weights(rng), "Q6_K")
    y32 = qkern.dequantize(blocks, "Q6_K", (ROWS, COLS), np.float32)
    y16 = qkern.dequantize(blocks, "Q6_K", (ROWS, COLS), np.float16)
    assert np.array_equal(y16.view(np.uint16), y32.astype(np.float16).view(np.uint16))


def test_expert_stack_keeps_its_leading_dimensions_and_per_expert_imatrix(rng):
    x = weights(rng, 4 * 8, 256).reshape(4, 8, 256)
    im = rng.uniform(0.1, 2.0, 4 * 256).astype(np.float32)  # one vector per expert
    blocks = qkern.quantize(x, "Q4_K", im)
    assert blocks.shape == (4, 8, 144)
    # each expert's rows quantized alone with its own weights give the same bytes
    for e in range(4):
        assert np.array_equal(blocks[e], qkern.quantize(x[e], "Q4_K", im[e * 256 : (e + 1) * 256])), e


def test_type_accepts_name_id_and_gguf_enum(rng):
    x = weights(rng)
    by_name = qkern.quantize(x, "q8_0")
    assert np.array_equal(by_name, qkern.quantize(x, 8))
    assert np.array_equal(by_name, qkern.quantize(x, T.Q8_0))


@pytest.mark.parametrize("device", [d.id for d in qkern.devices() if d.kind != "cpu"] or ["none"])
def test_gpu_dequantize_matches_cpu_for_every_type(device, rng):
    if device == "none":
        pytest.skip("no GPU device in this build of qkern (CUDA or Vulkan): nothing to compare with the cpu")
    for fmt in QUANTIZED:
        blocks = qkern.quantize(weights(rng), fmt, imatrix_for(fmt, rng))
        cpu = qkern.dequantize(blocks, fmt, (ROWS, COLS))
        dev = qkern.dequantize(blocks, fmt, (ROWS, COLS), device=device)
        assert np.array_equal(cpu.view(np.uint32), dev.view(np.uint32)), f"{fmt.name} on {device}"


@pytest.mark.parametrize("device", [d.id for d in qkern.devices() if d.kind == "cuda"] or ["none"])
def test_cuda_quantize_matches_cpu_for_every_type(device, rng):
    if device == "none":
        pytest.skip("no CUDA device in this build of qkern")
    for fmt in QUANTIZED:
        x, im = weights(rng), imatrix_for(fmt, rng)
        assert np.array_equal(qkern.quantize(x, fmt, im), qkern.quantize(x, fmt, im, device=device)), fmt.name
