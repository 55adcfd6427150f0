"""Device, dtype, autocast and seeding: the only module that inspects the environment."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from .errors import GptkitError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when available, else CPU; 'cuda', 'cuda:1', 'cpu', 'mps' are taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise GptkitError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GptkitError("device 'cuda' requested but no CUDA GPU is available: use --device cpu")
    return device


def parse_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise GptkitError(f"unknown dtype {name!r}: use one of {', '.join(DTYPES)}")
    return DTYPES[name]


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision context: bf16/fp16 autocast, or nothing for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    if dtype == torch.float16 and device.type == "cpu":
        raise GptkitError("fp16 autocast is for CUDA; on CPU use bf16 (or fp32)")
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch.Generator for explicit use."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
