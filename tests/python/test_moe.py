"""qkern.moe_matmul / moe_gate_up / moe_weighted_sum on NumPy arrays (the cpu backend), against a
float64 product of the weights as the gguf package decodes them (DESIGN.md's reference)."""

import numpy as np
import pytest

import qkern

gguf = pytest.importorskip("gguf", reason="the gguf package is needed (scripts/setup.sh installs it)")
from gguf.quants import dequantize as gguf_dequantize  # noqa: E402

N_EXPERT, M, K, N_TOKENS, N_USED = 6, 24, 512, 5, 3
TYPES = ["Q4_K", "Q8_0", "IQ4_XS", "MXFP4"]
BOUND = {"default": 1e-2, "exact": 2e-3}


def expert_stack(rng, type_name):
    w = (rng.standard_normal((N_EXPERT, M, K)) * 0.05).astype(np.float32)
    blocks = qkern.quantize(w, type_name)
    ref = gguf_dequantize(blocks, getattr(gguf.GGMLQuantizationType, type_name)).astype(np.float64)
    return blocks, ref.reshape(N_EXPERT, M, K)


def routing(rng):
    # distinct experts per token, as a router's top-k gives them
    return np.stack([rng.choice(N_EXPERT, N_USED, replace=False) for _ in range(N_TOKENS)]).astype(np.int32)


def rel_err(y, ref):
    return float(np.linalg.norm(y.astype(np.float64) - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("precision", ["default", "exact"])
@pytest.mark.parametrize("type_name", TYPES)
def test_moe_matmul_matches_float64_reference(type_name, precision, rng):
    blocks, w = expert_stack(rng, type_name)
    x = rng.standard_normal((N_TOKENS, K)).astype(np.float32)
    ids = routing(rng)
    y = qkern.moe_matmul(x, blocks, type_name, ids, precision=precision)
    assert y.shape == (N_TOKENS, N_USED, M) and y.dtype == np.float32
    ref = np.einsum("tsmk,tk->tsm", w[ids], x.astype(np.float64))
    assert rel_err(y, ref) <= BOUND[precision]


@pytest.mark.parametrize("type_name", TYPES)
def test_moe_matmul_with_an_input_per_slot(type_name, rng):
    blocks, w = expert_stack(rng, type_name)
    x = rng.standard_normal((N_TOKENS, N_USED, K)).astype(np.float16)
    ids = routing(rng)
    y = qkern.moe_matmul(x, blocks, type_name, ids, precision="exact")
    ref = np.einsum("tsmk,tsk->tsm", w[ids], x.astype(np.float64))
    assert rel_err(y, ref) <= BOUND["exact"]


def test_moe_gate_up_is_silu_gate_times_up(rng):
    gate, wg = expert_stack(rng, "Q4_K")
    up, wu = expert_stack(rng, "Q4_K")
    x = rng.standard_normal((N_TOKENS, K)).astype(np.float32)
    ids = routing(rng)
    y = qkern.moe_gate_up(x, gate, up, "Q4_K", ids, precision="exact")
    g = np.einsum("tsmk,tk->tsm", wg[ids], x.astype(np.float64))
    u = np.einsum("tsmk,tk->tsm", wu[ids], x.astype(np.float64))
    assert rel_err(y, g / (1 + np.exp(-g)) * u) <= BOUND["exact"]


def test_moe_weighted_sum_sums_the_slots_by_router_weight(rng):
    blocks, w = expert_stack(rng, "Q8_0")
    x = rng.standard_normal((N_TOKENS, N_USED, K)).astype(np.float32)
    ids = routing(rng)
    router = rng.dirichlet(np.ones(N_USED), N_TOKENS).astype(np.float32)
    y = qkern.moe_weighted_sum(x, blocks, "Q8_0", ids, router, precision="exact")
    assert y.shape == (N_TOKENS, M)
    ref = np.einsum("ts,tsmk,tsk->tm", router.astype(np.float64), w[ids], x.astype(np.float64))
    assert rel_err(y, ref) <= BOUND["exact"]


def test_one_matrix_needs_no_ids(rng):
    w = (rng.standard_normal((M, K)) * 0.05).astype(np.float32)
    blocks = qkern.quantize(w, "Q6_K")
    ref_w = gguf_dequantize(blocks, gguf.GGMLQuantizationType.Q6_K).astype(np.float64)
    x = rng.standard_normal((N_TOKENS, K)).astype(np.float32)
    y = qkern.moe_matmul(x, blocks, "Q6_K", None, precision="exact")
    assert y.shape == (N_TOKENS, 1, M)
    assert rel_err(y[:, 0], x.astype(np.float64) @ ref_w.T) <= BOUND["exact"]


def test_out_receives_the_result(rng):
    blocks, _ = expert_stack(rng, "Q4_K")
    x = rng.standard_normal((N_TOKENS, K)).astype(np.float32)
    ids = routing(rng)
    out = np.full((N_TOKENS, N_USED, M), np.nan, np.float32)
    assert qkern.moe_matmul(x, blocks, "Q4_K", ids, out=out) is out
    assert np.array_equal(out, qkern.moe_matmul(x, blocks, "Q4_K", ids))
