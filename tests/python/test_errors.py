"""Bad input raises a Python exception that carries qkern's own message, and never reaches the
library where it could read or write outside an array."""

import numpy as np
import pytest

import qkern


def test_unknown_type_name_is_a_value_error():
    with pytest.raises(ValueError, match=r"unknown.*'Q9_K'"):
        qkern.quantize(np.zeros((1, 256), np.float32), "Q9_K")
    with pytest.raises(ValueError, match="unknown type id 99"):
        qkern.dequantize(np.zeros(144, np.uint8), 99, (1, 256))


def test_cols_not_a_multiple_of_the_block_names_the_block_size():
    x = np.ones((2, 300), np.float32)
    with pytest.raises(ValueError, match="multiple") as e:
        qkern.quantize(x, "Q4_K")
    assert "300" in str(e.value) and "256" in str(e.value), str(e.value)
    with pytest.raises(ValueError, match="multiple"):
        qkern.dequantize(np.zeros(2 * 144, np.uint8), "Q4_K", (2, 300))


def test_nan_weight_names_its_row_and_column():
    x = np.ones((4, 256), np.float32)
    x[2, 17] = np.nan
    with pytest.raises(ValueError, match=r"row 2, column 17") as e:
        qkern.quantize(x, "Q8_0")
    assert "NaN" in str(e.value)
    x[2, 17] = np.inf
    with pytest.raises(ValueError, match=r"row 2, column 17"):
        qkern.quantize(x, "Q4_K")


def test_types_that_need_an_imatrix_refuse_without_one_unless_allowed():
    x = np.random.default_rng(0).standard_normal((2, 256)).astype(np.float32)
    needs = [f for f in qkern.formats() if f.needs_imatrix]
    assert needs, "the format table marks some types as needing an imatrix"
    for fmt in needs:
        with pytest.raises(ValueError, match="imatrix"):
            qkern.quantize(x, fmt)
        assert qkern.quantize(x, fmt, allow_no_imatrix=True).shape == (2, fmt.block_bytes)


def test_bad_imatrix_values_and_lengths_are_refused():
    x = np.ones((2, 256), np.float32)
    with pytest.raises(ValueError):
        qkern.quantize(x, "Q4_K", np.full(256, -1.0, np.float32))
    with pytest.raises(ValueError):
        qkern.quantize(x, "Q4_K", np.ones(100, np.float32))


def test_operands_are_never_copied_so_strided_and_wrong_dtypes_are_refused():
    x = np.ones((4, 512), np.float32)
    with pytest.raises(ValueError, match="contiguous"):
        qkern.quantize(x[:, ::2], "Q4_0")
    with pytest.raises(ValueError, match="float64"):
        qkern.quantize(x.astype(np.float64), "Q4_0")
    with pytest.raises(ValueError, match="bytes"):
        qkern.dequantize(np.zeros(100, np.uint8), "Q4_0", (4, 512))
    with pytest.raises(ValueError, match="uint8"):
        qkern.dequantize(np.zeros(4 * 288, np.int8), "Q4_0", (4, 512))
    with pytest.raises(ValueError):
        qkern.quantize([[1.0] * 32], "Q4_0")


def test_moe_shape_errors_name_the_operand():
    x = np.ones((2, 256), np.float32)
    w = np.zeros((4, 8, 144), np.uint8)  # 4 experts of 8 x 256 Q4_K
    ids = np.zeros((2, 2), np.int32)
    with pytest.raises(ValueError, match="w_blocks"):
        qkern.moe_matmul(x, w[:, :, :100].copy(), "Q4_K", ids)
    with pytest.raises(ValueError, match="ids"):
        qkern.moe_matmul(x, w, "Q4_K", ids.astype(np.int64))
    with pytest.raises(ValueError, match="ids"):
        qkern.moe_matmul(x, w, "Q4_K", None)
    with pytest.raises(ValueError, match="router"):
        qkern.moe_weighted_sum(np.ones((2, 2, 256), np.float32), w, "Q4_K", ids, np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="precision"):
        qkern.moe_matmul(x, w, "Q4_K", ids, precision="fast")


def test_moe_out_of_range_id_is_a_value_error_naming_its_place():
    x = np.ones((2, 256), np.float32)
    w = np.zeros((4, 8, 144), np.uint8)
    ids = np.array([[0, 1], [2, 7]], np.int32)
    with pytest.raises(ValueError, match=r"ids\[1\]\[1\] is 7"):
        qkern.moe_matmul(x, w, "Q4_K", ids)


def test_unknown_device_is_a_runtime_error():
    with pytest.raises(RuntimeError, match="cuda:7"):
        qkern.quantize(np.ones((1, 32), np.float32), "Q8_0", device="cuda:7")
