"""qkern on PyTorch tensors and the torch.ops.qkern operators: registration, fake tensors and
opcheck on the CPU; on a CUDA device, the kernels on torch's stream against the CPU, inside a
captured CUDA graph, under torch.compile, and the example."""

import os
import subprocess
import sys

import numpy as np
import pytest

import qkern

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the operator tests need it (pip install torch)")
gguf = pytest.importorskip("gguf", reason="the gguf package is needed (scripts/setup.sh installs it)")

qkern.register_torch_ops()
CUDA = torch.cuda.is_available() and any(d.kind == "cuda" for d in qkern.devices())
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device (or this qkern was built without CUDA)")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

N_EXPERT, M, K, N_TOKENS, N_USED = 8, 32, 256, 4, 2
Q4_K = next(f.id for f in qkern.formats() if f.name == "Q4_K")  # the operators take ggml's type id


def moe_operands(gen, device="cpu", x_dtype=torch.float32, type_name="Q4_K"):
    w = torch.randn(N_EXPERT, M, K, generator=gen) * 0.05
    blocks = qkern.quantize(w.numpy(), type_name)
    ref_w = gguf.quants.dequantize(blocks, getattr(gguf.GGMLQuantizationType, type_name)).astype(np.float64)
    ids = torch.stack([torch.randperm(N_EXPERT, generator=gen)[:N_USED] for _ in range(N_TOKENS)]).to(torch.int32)
    x = torch.randn(N_TOKENS, K, generator=gen).to(x_dtype)
    return (x.to(device), torch.from_numpy(blocks).to(device), ids.to(device)), ref_w.reshape(N_EXPERT, M, K)


def rel_err(y, ref):
    y = y.detach().cpu().double().numpy()
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


@pytest.fixture
def gen(rng):
    return torch.Generator().manual_seed(int(rng.integers(1 << 31)))


# ---- on the CPU -------------------------------------------------------------------------------


def test_operators_are_registered_with_their_schemas():
    for name in ("moe_matmul", "moe_gate_up", "moe_weighted_sum"):
        op = getattr(torch.ops.qkern, name).default
        schema = str(op._schema)
        assert schema.startswith(f"qkern::{name}(Tensor x"), schema
        assert "int wtype" in schema and schema.endswith("-> Tensor"), schema


def test_cpu_tensors_quantize_and_dequantize_like_numpy(gen):
    w = torch.randn(6, 512, generator=gen)
    blocks = qkern.quantize(w, "Q5_K")
    assert isinstance(blocks, torch.Tensor) and blocks.dtype == torch.uint8
    assert np.array_equal(blocks.numpy(), qkern.quantize(w.numpy(), "Q5_K"))
    y = qkern.dequantize(blocks, "Q5_K", w.shape, torch.float32)
    assert np.array_equal(y.numpy(), qkern.dequantize(blocks.numpy(), "Q5_K", w.shape))
    y16 = qkern.dequantize(blocks, "Q5_K", w.shape, torch.bfloat16)
    # ggml's bf16 output is its f32 output rounded to nearest even, as torch rounds
    assert torch.equal(y16.view(torch.int16), y.to(torch.bfloat16).view(torch.int16))


def test_bfloat16_input_quantizes_as_its_float32_values(gen):
    w = torch.randn(4, 256, generator=gen).to(torch.bfloat16)
    assert torch.equal(qkern.quantize(w, "Q4_K"), qkern.quantize(w.float(), "Q4_K"))


def test_cpu_operator_matches_float64_reference(gen):
    (x, w, ids), ref_w = moe_operands(gen)
    y = torch.ops.qkern.moe_matmul(x, w, ids, Q4_K)
    ref = np.einsum("tsmk,tk->tsm", ref_w[ids.numpy()], x.double().numpy())
    assert y.shape == (N_TOKENS, N_USED, M) and rel_err(y, ref) <= 1e-2


def test_fake_tensors_give_shapes_without_running(gen):
    from torch._subclasses.fake_tensor import FakeTensorMode

    (x, w, ids), _ = moe_operands(gen)
    router = torch.rand(N_TOKENS, N_USED)
    x3 = torch.randn(N_TOKENS, N_USED, K)
    with FakeTensorMode() as mode:
        fx, fw, fids, frouter, fx3 = (mode.from_tensor(t) for t in (x, w, ids, router, x3))
        assert torch.ops.qkern.moe_matmul(fx, fw, fids, Q4_K).shape == (N_TOKENS, N_USED, M)
        assert torch.ops.qkern.moe_gate_up(fx, fw, fw, fids, Q4_K).shape == (N_TOKENS, N_USED, M)
        assert torch.ops.qkern.moe_weighted_sum(fx3, fw, fids, frouter, Q4_K).shape == (N_TOKENS, M)
        # a shape error is found at trace time, with the operand named
        with pytest.raises(ValueError, match="w_blocks"):
            torch.ops.qkern.moe_matmul(fx, fw[:, :, :100], fids, Q4_K)


def test_opcheck_passes_for_every_operator(gen):
    (x, w, ids), _ = moe_operands(gen)
    router = torch.rand(N_TOKENS, N_USED)
    x3 = torch.randn(N_TOKENS, N_USED, K)
    torch.library.opcheck(torch.ops.qkern.moe_matmul.default, (x, w, ids, Q4_K, 1))
    torch.library.opcheck(torch.ops.qkern.moe_gate_up.default, (x, w, w, ids, Q4_K, 1))
    torch.library.opcheck(torch.ops.qkern.moe_weighted_sum.default, (x3, w, ids, router, Q4_K, 1))


def test_compiled_function_calls_the_operators_without_graph_breaks(gen):
    (x, w, ids), _ = moe_operands(gen)

    def ffn(x, w, ids):
        # the operator, and qkern's own function, which must trace to it without a graph break
        return torch.ops.qkern.moe_gate_up(x, w, w, ids, Q4_K, 1).sum(dim=1) * 2 + qkern.moe_matmul(
            x, w, "Q4_K", ids, precision="exact"
        ).sum(dim=1)

    compiled = torch.compile(ffn, backend="aot_eager", fullgraph=True)
    assert torch.equal(compiled(x, w, ids), ffn(x, w, ids))


def test_tensor_errors_are_value_errors(gen):
    (x, w, ids), _ = moe_operands(gen)
    with pytest.raises(ValueError, match="int32"):
        qkern.moe_matmul(x, w, "Q4_K", ids.long())
    with pytest.raises(ValueError, match="contiguous"):
        qkern.moe_matmul(x.t().contiguous().t(), w, "Q4_K", ids)
    with pytest.raises(ValueError, match="float64"):
        qkern.quantize(torch.zeros(2, 256, dtype=torch.float64), "Q4_K")


# The fast path (qkern._torch._fast) and the checked path side by side: the operands of each kind
# of call, with one thing wrong in each case.
KINDS = {"matmul": 0, "gate_up": 1, "weighted_sum": 2}
Q4_K_FORMAT = qkern.formats()[[f.id for f in qkern.formats()].index(Q4_K)]


def kind_operands(gen, kind):
    """{name: operand} of a valid call of `kind` on CPU tensors (x per slot for the weighted sum)."""
    (x, w, ids), _ = moe_operands(gen)
    ops = {"x": x, "w": w, "w_up": None, "ids": ids, "router": None, "out": None}
    if kind == "gate_up":
        ops["w_up"] = w.clone()
    if kind == "weighted_sum":
        ops["x"] = torch.randn(N_TOKENS, N_USED, K, generator=gen)
        ops["router"] = torch.rand(N_TOKENS, N_USED, generator=gen)
    return ops


def nans(*shape, dtype=torch.float32):
    return torch.full(shape, float("nan"), dtype=dtype)


def strided(t):
    """The same values, not contiguous (the first two dimensions' strides swapped)."""
    return t.transpose(0, 1).contiguous().transpose(0, 1)


# (case, kinds it applies to, change to the valid operands, what the ValueError says)
BAD = [
    ("x float64", "all", lambda o: {"x": o["x"].double()}, "x: expected float32, float16 or bfloat16"),
    ("x int32", "all", lambda o: {"x": o["x"].int()}, "x: expected float32"),
    ("w int8", "all", lambda o: {"w": o["w"].to(torch.int8)}, "w_blocks: expected torch.uint8"),
    ("ids int64", "all", lambda o: {"ids": o["ids"].long()}, "ids: expected torch.int32"),
    ("w_up int8", "gate_up", lambda o: {"w_up": o["w_up"].to(torch.int8)}, "w_up: expected torch.uint8"),
    ("router float16", "weighted_sum", lambda o: {"router": o["router"].half()}, "router: expected torch.float32"),
    ("x strided", "all", lambda o: {"x": strided(o["x"])}, "x: the tensor must be contiguous"),
    ("w strided", "all", lambda o: {"w": strided(o["w"])}, "w_blocks: the tensor must be contiguous"),
    ("ids strided", "all", lambda o: {"ids": strided(o["ids"])}, "ids: the tensor must be contiguous"),
    ("w_up strided", "gate_up", lambda o: {"w_up": strided(o["w_up"])}, "w_up: the tensor must be contiguous"),
    ("router strided", "weighted_sum", lambda o: {"router": strided(o["router"])}, "router: the tensor must be"),
    ("x 1-D", "all", lambda o: {"x": o["x"].reshape(-1)}, r"x: expected \[n_tokens, k\]"),
    ("x k not a block multiple", "matmul", lambda o: {"x": o["x"][:, :100].contiguous()}, "not a multiple of Q4_K"),
    ("x k of another row size", "matmul", lambda o: {"x": torch.zeros(N_TOKENS, 2 * K)}, "w_blocks: rows of 144"),
    ("x tokens differ", "matmul", lambda o: {"x": o["x"][:-1].contiguous()}, r"ids: expected \[n_tokens=3"),
    ("x slots differ", "weighted_sum", lambda o: {"x": o["x"][:, :1].contiguous()}, "but ids has 2 slots"),
    ("w 4-D", "all", lambda o: {"w": o["w"].unsqueeze(0)}, "w_blocks: expected"),
    ("w rows too short", "all", lambda o: {"w": o["w"][:, :, :100].contiguous()}, "w_blocks: rows of 100 bytes"),
    ("ids 1-D", "all", lambda o: {"ids": o["ids"].reshape(-1)}, "ids: expected"),
    ("ids tokens differ", "all", lambda o: {"ids": o["ids"][:-1].contiguous()}, "ids: expected"),
    ("ids missing", "all", lambda o: {"ids": None}, "ids: required"),
    ("w_up shape differs", "gate_up", lambda o: {"w_up": o["w_up"][:-1].contiguous()}, "w_up: shape"),
    ("router shape differs", "weighted_sum", lambda o: {"router": o["router"][:, :1].contiguous()}, "router: expected"),
    ("w on meta", "all", lambda o: {"w": o["w"].to("meta")}, "w_blocks: on meta, but x is on cpu"),
    ("ids on meta", "all", lambda o: {"ids": o["ids"].to("meta")}, "ids: on meta, but x is on cpu"),
    ("w_up on meta", "gate_up", lambda o: {"w_up": o["w_up"].to("meta")}, "w_up: on meta"),
    ("router on meta", "weighted_sum", lambda o: {"router": o["router"].to("meta")}, "router: on meta"),
    ("w not a tensor", "all", lambda o: {"w": o["w"].numpy()}, "w_blocks: expected a torch tensor"),
    ("out float64", "matmul", lambda o: {"out": nans(N_TOKENS, N_USED, M, dtype=torch.float64)}, "out: expected"),
    ("out shape", "matmul", lambda o: {"out": nans(N_TOKENS, N_USED, M + 1)}, "out: expected"),
    ("out strided", "matmul", lambda o: {"out": strided(nans(N_TOKENS, N_USED, M))}, "out: expected"),
    ("out on meta", "matmul", lambda o: {"out": torch.empty(N_TOKENS, N_USED, M, device="meta")}, "out: expected"),
    ("out shape", "weighted_sum", lambda o: {"out": nans(N_TOKENS, N_USED, M)}, "out: expected"),
]
BAD_CASES = [
    pytest.param(kind, change, message, id=f"{kind}-{case}")
    for case, kinds, change, message in BAD
    for kind in (KINDS if kinds == "all" else [kinds])
]


def call_public(kind, o):
    if kind == "matmul":
        return qkern.moe_matmul(o["x"], o["w"], "Q4_K", o["ids"], out=o["out"])
    if kind == "gate_up":
        return qkern.moe_gate_up(o["x"], o["w"], o["w_up"], "Q4_K", o["ids"], out=o["out"])
    return qkern.moe_weighted_sum(o["x"], o["w"], "Q4_K", o["ids"], o["router"], out=o["out"])


def call_operator(kind, o):
    if kind == "matmul":
        return torch.ops.qkern.moe_matmul(o["x"], o["w"], o["ids"], Q4_K)
    if kind == "gate_up":
        return torch.ops.qkern.moe_gate_up(o["x"], o["w"], o["w_up"], o["ids"], Q4_K)
    return torch.ops.qkern.moe_weighted_sum(o["x"], o["w"], o["ids"], o["router"], Q4_K)


def call_fast(kind, o):
    from qkern import _torch

    return _torch._fast(KINDS[kind], Q4_K_FORMAT, o["x"], o["w"], o["w_up"], o["ids"], o["router"], 0, o["out"])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_out", [False, True], ids=["new", "out"])
def test_fast_path_takes_the_common_call_and_agrees_with_the_checked_path(kind, with_out, gen):
    from qkern import _torch

    o = kind_operands(gen, kind)
    shape = (N_TOKENS, M) if kind == "weighted_sum" else (N_TOKENS, N_USED, M)
    if with_out:
        o["out"] = torch.full(shape, float("nan"))
    y = call_fast(kind, o)
    assert y is not None, "the fast path declined a valid call"
    assert y.shape == shape and y.dtype == torch.float32 and (y is o["out"] or not with_out)
    checked = _torch._run_moe(KINDS[kind], Q4_K_FORMAT, o["x"], o["w"], o["w_up"], o["ids"], o["router"], 0)
    assert torch.equal(y, checked)
    assert torch.equal(call_public(kind, o), checked) and torch.equal(call_operator(kind, o), checked)


@pytest.mark.parametrize("kind, change, message", BAD_CASES)
def test_fast_path_declines_bad_operands_and_the_call_names_them(kind, change, message, gen):
    o = kind_operands(gen, kind)
    o.update(change(o))
    assert call_fast(kind, o) is None, "the fast path ran a call it should have declined"
    with pytest.raises(ValueError, match=message):
        call_public(kind, o)
    if o["out"] is None and isinstance(o["w"], torch.Tensor):
        with pytest.raises(ValueError, match=message):
            call_operator(kind, o)
    if o["out"] is not None and o["out"].device.type == "cpu":
        assert torch.isnan(o["out"]).all(), "a refused call wrote into out"


def test_binding_refuses_an_operand_smaller_than_its_shape(gen):
    # the library's own check behind the fast path: a byte count that disagrees with the shapes
    # is an error, not a read past the operand
    from qkern import _ops, _qkern

    (x, w, ids), _ = moe_operands(gen)
    out = torch.empty(N_TOKENS, N_USED, M)
    geometry = (N_EXPERT, M, K, N_TOKENS, N_USED, False, 0)
    operands = [w.data_ptr(), w.nbytes, 0, 0, x.data_ptr(), x.nbytes, ids.data_ptr(), ids.nbytes, 0, 0,
                out.data_ptr(), out.nbytes]  # fmt: skip
    for i in (1, 5, 7, 11):  # w, x, ids, out one byte short
        short = list(operands)
        short[i] -= 1
        with pytest.raises(ValueError, match="bytes given"):
            _qkern.moe(_ops._context("cpu"), 0, Q4_K, 0, *geometry, *short, 0, 0, False, 0)


# ---- on a CUDA device -------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("fmt", [f for f in qkern.formats() if f.is_quantized], ids=lambda f: f.name)
def test_cuda_tensors_quantize_and_dequantize_as_the_cpu_does(fmt, gen):
    w = torch.randn(8, 512, generator=gen) * 0.02
    im = torch.rand(512, generator=gen) + 0.1
    cpu = qkern.quantize(w, fmt, im.numpy())
    dev = qkern.quantize(w.cuda(), fmt, im)
    assert dev.is_cuda and torch.equal(dev.cpu(), cpu), fmt.name
    y = qkern.dequantize(dev, fmt, w.shape, torch.float32)
    assert y.is_cuda and torch.equal(y.cpu(), qkern.dequantize(cpu, fmt, w.shape, torch.float32)), fmt.name


@needs_cuda
def test_cuda_quantize_finds_nan_before_the_kernel_runs():
    x = torch.ones(2, 256, device="cuda")
    x[1, 7] = float("nan")
    with pytest.raises(ValueError, match="row 1, column 7"):
        qkern.quantize(x, "Q4_K")


@needs_cuda
@pytest.mark.parametrize("precision", [0, 1])
@pytest.mark.parametrize("x_dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_operators_match_float64_reference(x_dtype, precision, gen):
    (x, w, ids), ref_w = moe_operands(gen, "cuda", x_dtype)
    bound = 2e-3 if precision else 1e-2
    xd = x.double().cpu().numpy()
    sel = ref_w[ids.cpu().numpy()]
    y = qkern.moe_matmul(x, w, "Q4_K", ids, precision=precision)
    assert rel_err(y, np.einsum("tsmk,tk->tsm", sel, xd)) <= bound
    g = np.einsum("tsmk,tk->tsm", sel, xd)
    y = torch.ops.qkern.moe_gate_up(x, w, w, ids, Q4_K, precision)
    assert rel_err(y, g / (1 + np.exp(-g)) * g) <= bound
    x3 = torch.randn(N_TOKENS, N_USED, K, generator=gen).to(x_dtype).cuda()
    router = torch.rand(N_TOKENS, N_USED, generator=gen).cuda()
    y = torch.ops.qkern.moe_weighted_sum(x3, w, ids, router, Q4_K, precision)
    ref = np.einsum("ts,tsmk,tsk->tm", router.double().cpu().numpy(), sel, x3.double().cpu().numpy())
    assert rel_err(y, ref) <= bound


@needs_cuda
def test_cuda_operator_runs_on_the_current_stream(gen):
    (x, w, ids), _ = moe_operands(gen, "cuda")
    expected = qkern.moe_matmul(x, w, "Q4_K", ids)
    late_x = torch.zeros_like(x)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()  # non-blocking: no implicit order with the default stream
    with torch.cuda.stream(side):
        # the input is written late on this stream; a kernel on any other stream would read zeros
        torch.cuda._sleep(50_000_000)
        late_x.copy_(x)
        y = qkern.moe_matmul(late_x, w, "Q4_K", ids)
    side.synchronize()
    assert torch.equal(y, expected)


@needs_cuda
def test_cuda_graph_capture_replays_with_new_inputs(gen):
    (x, w, ids), _ = moe_operands(gen, "cuda")
    static_x, static_ids = x.clone(), ids.clone()
    qkern.moe_matmul(static_x, w, "Q4_K", static_ids)  # creates the context, loads the kernels
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = torch.ops.qkern.moe_gate_up(static_x, w, w, static_ids, Q4_K, 0) + qkern.moe_matmul(
            static_x, w, "Q4_K", static_ids
        )
    for _ in range(3):
        (x2, _, ids2), _ = moe_operands(gen, "cuda")
        static_x.copy_(x2)
        static_ids.copy_(ids2)
        graph.replay()
        eager = torch.ops.qkern.moe_gate_up(x2, w, w, ids2, Q4_K, 0) + qkern.moe_matmul(x2, w, "Q4_K", ids2)
        assert torch.equal(static_y, eager)


@needs_cuda
def test_workspace_is_held_per_stream_and_a_captured_graph_keeps_its_own(gen):
    # eager calls keep one workspace per (device, stream); a call inside a capture takes its own
    # from the graph's pool, so what later eager calls do with theirs cannot reach the graph
    from qkern import _torch

    (x, w, ids), _ = moe_operands(gen, "cuda")
    qkern.moe_matmul(x, w, "Q4_K", ids)  # the context; the fast path from the next call on
    expected = qkern.moe_matmul(x, w, "Q4_K", ids)
    index = x.device.index
    main = torch.cuda.current_stream()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        assert torch.equal(qkern.moe_matmul(x, w, "Q4_K", ids), expected)
    side.synchronize()
    held = {key: entry[:2] for key, entry in _torch._workspaces.items()}
    assert (index, main.cuda_stream) in held and (index, side.cuda_stream) in held
    assert held[(index, main.cuda_stream)][0] != held[(index, side.cuda_stream)][0]
    static_x = x.clone()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = qkern.moe_matmul(static_x, w, "Q4_K", ids)
    assert {key: entry[:2] for key, entry in _torch._workspaces.items()} == held, "a capture changed what is held"
    _torch._workspaces.clear()  # its memory back to torch, and new workspaces for more tokens
    many_x = torch.randn(256, K, generator=gen).cuda()
    many_ids = torch.randint(0, N_EXPERT, (256, N_USED), generator=gen, dtype=torch.int32).cuda()
    for _ in range(3):
        qkern.moe_matmul(many_x, w, "Q4_K", many_ids)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(static_y, expected)


@needs_cuda
def test_torch_compile_with_inductor_and_cuda_graphs(gen):
    (x, w, ids), _ = moe_operands(gen, "cuda", torch.bfloat16)

    def ffn(x, w, ids):
        h = torch.ops.qkern.moe_gate_up(x, w, w, ids, Q4_K, 0)
        return qkern.moe_matmul(x, w, "Q4_K", ids) + h.relu()

    compiled = torch.compile(ffn, mode="reduce-overhead", fullgraph=True)
    for _ in range(3):  # the first runs record the graph, the last replays it
        out = compiled(x, w, ids)
    assert torch.allclose(out, ffn(x, w, ids), rtol=1e-6, atol=1e-6)


@needs_cuda
def test_example_moe_mlp_runs_and_agrees_with_its_reference():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "moe_mlp.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "agrees" in r.stdout, r.stdout
