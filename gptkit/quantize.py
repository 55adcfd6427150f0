"""Quantised inference: int8 weights with one scale per output channel, or int4 in groups of 32.

Decoding one token reads every weight once, so on a CPU it is bound by memory
bandwidth: int8 weights are a quarter of the fp32 bytes. The matmul is
PyTorch's FBGEMM/QNNPACK dynamic-quantised linear (activations quantised per
call, per tensor, accumulation in int32), which also has fast kernels for the
small batches of decoding, where bf16 without AMX is slow. The quality cost
is small but not zero: `benchmarks/generate.py` reports the perplexity delta.

bf16 on a CPU goes through oneDNN with its weights packed once, ahead of time,
in the blocked layout its kernels read (`PackedLinear`): at batch 1 that reads
the weights about twice as fast as the plain bf16 matmul, whose small-batch path
is no faster than fp32.

int4 stores each row in groups of 32 values, each group with its own scale and
zero point (4 bits a weight plus two bf16 numbers per group: 5 bits, as
llama.cpp's Q4_1 is 6 and Q4_0 4.5), and multiplies through PyTorch's
weight-only int4 kernel, which unpacks the groups in registers and takes bf16
activations. It reads half of int8's bytes; a matrix the kernel cannot take
(rows not a multiple of 32) stays in bf16.

A quantised or packed model is for inference only: it is not trained or saved.
"""

from __future__ import annotations

import typing
import warnings

import torch
import torch.nn as nn

from .errors import GptkitError
from .model import GPT
from .runtime import InferenceDtype, fast_bf16, parse_dtype


class Int8Linear(nn.Module):
    """y = x W^T + b with W quantised to int8 per output channel; x and y stay fp32."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        weight = weight.detach().float().cpu()
        scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-8).double()
        zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
        with warnings.catch_warnings():  # quantised tensors are deprecated in favour of torchao; the kernels remain
            warnings.simplefilter("ignore")
            qweight = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
            self._packed = torch.ops.quantized.linear_prepack(
                qweight, None if bias is None else bias.detach().float().cpu()
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        # reduce_range: 7-bit activations keep FBGEMM's int16 intermediate sums from saturating on AVX2
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, shape[-1]).float().contiguous(), self._packed, True)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


class Int4Linear(nn.Module):
    """y = x W^T + b with W in 4-bit groups along the input: w = (q - 8) * scale + zero, as the kernel reads it."""

    GROUP = 32

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        rows = -self.out_features % 16  # the kernel packs 16 output rows at a time: pad with zeros, then drop them
        weight = torch.cat([weight.detach().float().cpu(), weight.new_zeros(rows, self.in_features).float().cpu()])
        groups = weight.view(weight.shape[0], -1, self.GROUP)
        low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
        scale = ((high - low) / 15).clamp(min=1e-8)
        q = ((groups - low) / scale).round().clamp(0, 15).to(torch.int32).view_as(weight)
        self._packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        # [groups along the input, rows, (scale, zero)], with zero the value of q = 8
        self._scales = torch.cat([scale, low + 8 * scale], -1).transpose(0, 1).contiguous().bfloat16()
        self._bias = None if bias is None else bias.detach().bfloat16().cpu()

    @classmethod
    def takes(cls, weight: torch.Tensor) -> bool:
        return weight.shape[1] % cls.GROUP == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = torch._weight_int4pack_mm_for_cpu(x.reshape(-1, shape[-1]).bfloat16(), self._packed, self.GROUP,
                                              self._scales)
        if y.shape[1] != self.out_features:
            y = y[:, : self.out_features]
        if self._bias is not None:
            y = y + self._bias
        return y.to(x.dtype).reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int4 in groups of {self.GROUP}"


class PackedLinear(nn.Module):
    """y = x W^T + b in bf16 through oneDNN, with W packed once in the layout its kernels read (CPU)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self._packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().bfloat16().contiguous(), 1)
        self._bias = None if bias is None else bias.detach().bfloat16()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x.bfloat16(), self._packed, self._bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bf16 packed"


def _swap_linears(model: GPT, make) -> None:
    """Replace every projection of the blocks, and the LM head, with make(weight, bias)."""
    for block in model.blocks:
        for projection in block.projections():
            linear = projection.linear
            if isinstance(linear, nn.Linear):  # a fused Linear serves several roles: swapped once
                setattr(projection.parent, projection.name, make(linear.weight, linear.bias))
    model.lm_head = make(model.head_weight(), None)  # GPT.logits uses it when present


def _packs_bf16(model: GPT) -> bool:
    return (model.device.type == "cpu" and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _cpu_quantised(model: GPT, name: str) -> None:
    if model.device.type != "cpu":
        raise GptkitError(f"{name} weights run on the CPU: load the model with device=cpu, or use bf16 on a GPU")


def quantize_int4(model: GPT) -> GPT:
    """Replace every Linear in the blocks, and the LM head, with Int4Linear where it fits (in place; CPU only)."""
    _cpu_quantised(model, "int4")
    if not hasattr(torch.ops.aten, "_convert_weight_to_int4pack_for_cpu"):
        raise GptkitError("this PyTorch build has no CPU int4 kernel (torch >= 2.6 has one): use int8")
    # the kernel takes and returns bf16: where the CPU computes bf16 fast the rest of the model does too, with no
    # casts around each matmul; elsewhere the rest stays fp32
    model = model.to(torch.bfloat16 if fast_bf16(model.device) else torch.float32).eval()
    _swap_linears(model, lambda w, b: Int4Linear(w, b) if Int4Linear.takes(w) else _Bf16Linear(w, b))
    return model


class _Bf16Linear(nn.Module):
    """A matrix int4 cannot take, kept in bf16; fp32 in and out."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().bfloat16(), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach().bfloat16(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x.bfloat16(), self.weight, self.bias).to(x.dtype)


def quantize_int8(model: GPT) -> GPT:
    """Replace every Linear in the blocks, and the tied LM head, with Int8Linear (in place; CPU only)."""
    _cpu_quantised(model, "int8")
    engines = torch.backends.quantized.supported_engines
    if "fbgemm" not in engines and "qnnpack" not in engines:
        raise GptkitError(f"this PyTorch build has no int8 kernels (engines: {engines}): use fp32 or bf16")
    if torch.backends.quantized.engine not in ("fbgemm", "qnnpack", "x86"):
        torch.backends.quantized.engine = "fbgemm" if "fbgemm" in engines else "qnnpack"
    model = model.float().eval()
    _swap_linears(model, Int8Linear)
    return model


def for_inference(model: GPT, dtype: InferenceDtype = "auto") -> GPT:
    """The model in eval mode with weights in `dtype`: fp32, bf16, fp16, int8, int4, or auto (bf16 where fast, else
    fp32)."""
    if dtype == "int8":
        return quantize_int8(model)
    if dtype == "int4":
        return quantize_int4(model)
    choices = typing.get_args(InferenceDtype)
    if dtype not in choices:
        raise GptkitError(f"unknown dtype {dtype!r} for inference: use one of {', '.join(choices)}")
    model = model.to(parse_dtype(dtype, model.device)).eval()
    if model.dtype == torch.bfloat16 and _packs_bf16(model):
        _swap_linears(model, PackedLinear)
    return model
