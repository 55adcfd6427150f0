"""Device, dtype, autocast and torchrun: the only module that inspects the environment."""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from .errors import GptkitError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DtypeName = Literal[("auto", *DTYPES)]  # what configs and flags accept: auto picks bf16 where it is fast
InferenceDtype = Literal[("auto", *DTYPES, "int8", "int4")]  # int8, int4: quantised weights for CPU inference


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


def parse_dtype(name: str, device: torch.device | None = None) -> torch.dtype:
    """'fp32', 'bf16', 'fp16', or 'auto': bf16 where the hardware computes it fast, else fp32."""
    if name == "auto":
        return torch.bfloat16 if fast_bf16(device or torch.device("cpu")) else torch.float32
    if name not in DTYPES:
        raise GptkitError(f"unknown dtype {name!r}: use auto or one of {', '.join(DTYPES)}")
    return DTYPES[name]


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls beat fp32 here.

    CPUs without AMX or AVX512-BF16 (AVX2-only x86, many ARM chips) emulate
    bf16 and run it ~8x slower than fp32, so 'auto' must not pick it there.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    flags = _cpu_flags()
    return "amx_bf16" in flags or "avx512_bf16" in flags


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        return frozenset(Path("/proc/cpuinfo").read_text().split())
    except OSError:  # not Linux
        return frozenset()


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision context: bf16/fp16 autocast, or nothing for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    if dtype == torch.float16 and device.type == "cpu":
        raise GptkitError("fp16 autocast is for CUDA; on CPU use bf16 (or fp32)")
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str = "auto") -> tuple[Distributed, torch.device]:
    """Join the process group when launched by torchrun (gloo on CPU, NCCL on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(), pick_device(device_name)
    dist = Distributed(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world_size)
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", device_id=device
                                             if device.type == "cuda" else None)
    return dist, device


def peak_flops(device: torch.device, dtype: torch.dtype) -> float:
    """A guess at the matmul peak for MFU: measured on this project's CPUs, datasheet H100/H200 on CUDA."""
    if device.type == "cuda":
        return 989e12 if dtype in (torch.bfloat16, torch.float16) else 67e12
    return 710e9 if dtype == torch.bfloat16 else 230e9


def is_main_process() -> bool:
    """True outside torchrun and on rank 0 inside it (for printing in the CLI)."""
    return os.environ.get("RANK", "0") == "0"


def available_memory() -> int:
    """Bytes of memory a new allocation can still get (MemAvailable), or the total where that is unknown."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(what: str, n_params: int, copies: float, bytes_per_param: int = 4) -> None:
    """Refuse, before allocating, a model that cannot fit: `copies` of `n_params` parameters at once."""
    needed, free = int(n_params * bytes_per_param * copies), available_memory()
    if needed > free:
        raise GptkitError(f"{what} has {n_params:,} parameters and needs about {needed / 2**30:,.1f} GiB of memory, "
                          f"but this machine has {free / 2**30:,.1f} GiB available: choose a smaller shape")
