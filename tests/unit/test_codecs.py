import math
import struct

import numpy as np
import pytest
import torch

from interplab.widgets.codecs import decode_array, encode_array, encode_reply_array, to_numpy


def test_float32_bytes_are_little_endian_ieee():
    meta = encode_array([1.5, -2.0, float("nan")], "float32")
    assert meta["dtype"] == "float32" and meta["shape"] == [3]
    assert meta["data"][:8] == struct.pack("<ff", 1.5, -2.0)
    assert math.isnan(struct.unpack("<f", meta["data"][8:])[0])


def test_int32_2d_round_trip_and_reply_buffers():
    x = np.array([[1, -1, 70000], [2**31 - 1, 0, 5]])
    buffers: list[bytes] = []
    a = encode_reply_array(np.zeros(2), buffers)
    b = encode_reply_array(x, buffers, "int32")
    assert (a["buffer"], b["buffer"]) == (0, 1)
    assert buffers[1] == struct.pack("<6i", 1, -1, 70000, 2**31 - 1, 0, 5)
    back = decode_array(b, buffers)
    assert back.shape == (2, 3) and back.dtype == np.int32
    np.testing.assert_array_equal(back, x)
    back[0, 0] = 7  # a writable copy


def test_tensors_of_any_dtype_and_device(device):
    t = torch.tensor([0.5, 0.25, -1.0], dtype=torch.bfloat16, device=device)
    np.testing.assert_array_equal(decode_array(encode_array(t)), [0.5, 0.25, -1.0])
    assert to_numpy(torch.ones(2, requires_grad=True)).tolist() == [1.0, 1.0]


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="do not fit in int32"):
        encode_array([2**31], "int32")
    with pytest.raises(ValueError, match="non-integer"):
        encode_array([1.5], "int32")
    with pytest.raises(ValueError, match="unsupported dtype"):
        encode_array([1], "complex64")
    with pytest.raises(TypeError, match="expected an array"):
        encode_array("123")
    with pytest.raises(ValueError, match="needs 4 values"):
        decode_array({"dtype": "float32", "shape": [2, 2], "data": b"\0" * 12})
    with pytest.raises(ValueError, match="buffer 3"):
        decode_array({"dtype": "float32", "shape": [1], "buffer": 3}, [b"\0" * 4])
