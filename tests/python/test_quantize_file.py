"""qkern.quantize_file (qk_model_quantize) on a small model written by the gguf package's own
writer, its output read back with gguf.GGUFReader."""

import numpy as np
import pytest

import qkern

gguf = pytest.importorskip("gguf", reason="the gguf package is needed (scripts/setup.sh installs it)")
from gguf import GGMLQuantizationType as T  # noqa: E402

HIDDEN, FFN, VOCAB = 256, 512, 64


def write_model(path, rng, poison=None):
    """A one-block llama-style model: F32 weights, the metadata llama-quantize's rules read."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_name("qkern-python-test")
    tensors = {
        "token_embd.weight": (VOCAB, HIDDEN),
        "blk.0.attn_norm.weight": (HIDDEN,),
        "blk.0.attn_q.weight": (HIDDEN, HIDDEN),
        "blk.0.attn_k.weight": (HIDDEN, HIDDEN),
        "blk.0.attn_v.weight": (HIDDEN, HIDDEN),
        "blk.0.attn_output.weight": (HIDDEN, HIDDEN),
        "blk.0.ffn_norm.weight": (HIDDEN,),
        "blk.0.ffn_gate.weight": (FFN, HIDDEN),
        "blk.0.ffn_up.weight": (FFN, HIDDEN),
        "blk.0.ffn_down.weight": (HIDDEN, FFN),
        "output_norm.weight": (HIDDEN,),
        "output.weight": (VOCAB, HIDDEN),
    }
    data = {}
    for name, shape in tensors.items():
        a = (rng.standard_normal(shape) * 0.05).astype(np.float32)
        if poison and name == poison[0]:
            a[poison[1], poison[2]] = np.nan
        data[name] = a
        w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return data


def read(path):
    r = gguf.GGUFReader(str(path))
    return r, {t.name: t for t in r.tensors}


def test_preset_file_opens_in_gguf_and_decodes_to_near_the_input(tmp_path, rng):
    src, dst = tmp_path / "m-f32.gguf", tmp_path / "m-q4.gguf"
    data = write_model(src, rng)
    seen = []
    result = qkern.quantize_file(src, dst, "Q4_0", progress=seen.append, device="cpu")
    reader, tensors = read(dst)
    assert set(tensors) == set(data)
    assert reader.fields["general.architecture"].contents() == "llama"
    assert reader.fields["general.name"].contents() == "qkern-python-test"
    assert reader.fields["general.file_type"].contents() == 2  # llama_ftype MOSTLY_Q4_0
    # llama-quantize's rules for Q4_0: 2-D weights quantized, norms kept, output.weight in Q6_K
    assert tensors["blk.0.ffn_up.weight"].tensor_type == T.Q4_0
    assert tensors["blk.0.attn_norm.weight"].tensor_type == T.F32
    assert tensors["output.weight"].tensor_type == T.Q6_K
    for name, t in tensors.items():
        assert tuple(int(n) for n in reversed(t.shape)) == data[name].shape, name
        decoded = gguf.quants.dequantize(t.data, t.tensor_type).reshape(data[name].shape)
        if t.tensor_type != T.F32:
            # qkern's own decoder reads the bytes as gguf does
            mine = qkern.dequantize(np.ascontiguousarray(t.data), int(t.tensor_type), data[name].shape)
            assert np.array_equal(mine.view(np.uint32), decoded.astype(np.float32).view(np.uint32)), name
        err = np.linalg.norm(decoded - data[name]) / np.linalg.norm(data[name])
        assert err < 0.15, f"{name}: relative error {err:.3f}"
    assert [t["name"] for t in result.tensors] == [t.name for t in reader.tensors]
    assert result.totals["n_tensors"] == len(data)
    # progress: bytes never go back, and the last report is the end of the last tensor
    assert seen and all(a.bytes_done <= b.bytes_done for a, b in zip(seen, seen[1:]))
    assert seen[-1].tensor_done and seen[-1].bytes_done == seen[-1].bytes_total


def test_per_tensor_types_override_the_base_preset(tmp_path, rng):
    src, dst = tmp_path / "m.gguf", tmp_path / "m-mixed.gguf"
    write_model(src, rng)
    qkern.quantize_file(src, dst, {"ffn_(up|gate)": "Q8_0", "attn_v": T.Q5_K}, base_preset="Q4_K_M", progress=False)
    _, tensors = read(dst)
    assert tensors["blk.0.ffn_up.weight"].tensor_type == T.Q8_0
    assert tensors["blk.0.ffn_gate.weight"].tensor_type == T.Q8_0
    assert tensors["blk.0.attn_v.weight"].tensor_type == T.Q5_K
    assert tensors["blk.0.attn_q.weight"].tensor_type == T.Q4_K


def test_nan_weight_fails_naming_the_tensor_and_leaves_no_output(tmp_path, rng):
    src, dst = tmp_path / "m.gguf", tmp_path / "m-q8.gguf"
    write_model(src, rng, poison=("blk.0.ffn_down.weight", 3, 5))
    with pytest.raises(ValueError, match="blk.0.ffn_down.weight") as e:
        qkern.quantize_file(src, dst, "Q8_0", progress=False)
    assert "row 3" in str(e.value) and "column 5" in str(e.value), str(e.value)
    assert not dst.exists()
    assert not list(tmp_path.glob("m-q8.gguf*"))


def test_exception_in_progress_callback_stops_the_run(tmp_path, rng):
    src, dst = tmp_path / "m.gguf", tmp_path / "out.gguf"
    write_model(src, rng)

    class Stop(Exception):
        pass

    def progress(p):
        if p.tensor >= 2:
            raise Stop(p.name)

    with pytest.raises(Stop):
        qkern.quantize_file(src, dst, "Q4_0", progress=progress)
    assert not dst.exists()


def test_bad_preset_and_missing_file_raise_with_qkern_message(tmp_path, rng):
    src = tmp_path / "m.gguf"
    write_model(src, rng)
    with pytest.raises(ValueError, match="Q9_K_M"):
        qkern.quantize_file(src, tmp_path / "o.gguf", "Q9_K_M", progress=False)
    with pytest.raises(OSError, match="absent.gguf"):
        qkern.quantize_file(tmp_path / "absent.gguf", tmp_path / "o.gguf", "Q4_0", progress=False)


def test_dry_run_plans_without_writing(tmp_path, rng):
    src, dst = tmp_path / "m.gguf", tmp_path / "never.gguf"
    write_model(src, rng)
    result = qkern.quantize_file(src, dst, "Q4_K_M", dry_run=True, progress=False)
    assert not dst.exists()
    types = {t["name"]: t["type"] for t in result.tensors}
    assert types["blk.0.attn_q.weight"] == "Q4_K" and types["blk.0.attn_norm.weight"] == "F32"


def test_default_progress_is_a_tqdm_bar(tmp_path, rng, capsys):
    pytest.importorskip("tqdm", reason="tqdm is not installed: quantize_file shows no bar without it")
    src, dst = tmp_path / "m.gguf", tmp_path / "m-q8.gguf"
    write_model(src, rng)
    qkern.quantize_file(src, dst, "Q8_0")
    err = capsys.readouterr().err
    assert "quantize" in err and "100%" in err, err


def test_presets_list_llama_quantize_names():
    names = {p.name: p for p in qkern.presets()}
    assert names["Q4_K_M"].default_type == "Q4_K" and names["Q4_K_M"].id == 15
    assert names["Q8_0"].id == 7
