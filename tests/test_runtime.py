import pytest
import torch

from gptkit import GptkitError
from gptkit.runtime import autocast, parse_dtype, pick_device


def test_device_and_dtype_names_are_validated():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert parse_dtype("bf16") is torch.bfloat16
    with pytest.raises(GptkitError, match="unknown dtype 'float8'"):
        parse_dtype("float8")
    with pytest.raises(GptkitError, match="unknown device"):
        pick_device("tpu:banana")
    if not torch.cuda.is_available():
        with pytest.raises(GptkitError, match="no CUDA GPU"):
            pick_device("cuda")


def test_autocast_runs_matmuls_in_the_requested_dtype():
    a = torch.randn(4, 4)
    with autocast(torch.device("cpu"), torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), torch.float32):
        assert (a @ a).dtype == torch.float32
    with pytest.raises(GptkitError, match="fp16 autocast is for CUDA"):
        autocast(torch.device("cpu"), torch.float16)
