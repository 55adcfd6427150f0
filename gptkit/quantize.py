"""Quantised inference: int8 weights with one scale per output row, or int4 in groups of 32.

Decoding one token reads every weight once, so on a CPU it is bound by memory
bandwidth: int8 weights are a quarter of the fp32 bytes, int4 an eighth. Both
are weight-only: the weights are rounded, the activations are not (they go
through the matmul in bf16). Models with a few large activation channels, as
Llama-family models have, lose nothing to them this way; quantising the
activations per tensor to 8 bits, as PyTorch's FBGEMM dynamic linear does,
raised SmolLM2-135M's perplexity 3.4-fold (`benchmarks/generate.py --quality`).

int8 multiplies through PyTorch's weight-only int8 kernel (`_weight_int8pack_mm`).
int4 stores each row in groups of 32 values, each group with its own scale and
zero point (4 bits a weight plus two bf16 numbers per group: 5 bits, as
llama.cpp's Q4_1 is 6 and Q4_0 4.5), and multiplies through PyTorch's
weight-only int4 kernel, which unpacks the groups in registers. Both kernels
take and return bf16: where the CPU computes bf16 fast the rest of the model
runs in bf16 too, elsewhere in fp32 with a cast around each matmul. A matrix a
kernel cannot take (rows shorter than 16 values for int8, not whole groups of
32 for int4) stays in bf16.

bf16 on a CPU goes through oneDNN with its weights packed once, ahead of time,
in the blocked layout its kernels read (`PackedLinear`): at batch 1 that reads
the weights about twice as fast as the plain bf16 matmul, whose small-batch path
is no faster than fp32.

A quantised or packed model is for inference only: it is not trained or saved.
"""

from __future__ import annotations

import typing

import torch
import torch.nn as nn

from .errors import GptkitError
from .model import GPT
from .runtime import InferenceDtype, fast_bf16, parse_dtype


class Int8Linear(nn.Module):
    """y = x W^T + b with W in int8, one scale per output row (symmetric: w = q * scale)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        weight = weight.detach().float().cpu()
        self._scale = (weight.abs().amax(dim=1) / 127).clamp(min=1e-8).bfloat16()  # the kernel's scale dtype
        self._q = (weight / self._scale.float()[:, None]).round().clamp(-127, 127).to(torch.int8)
        self._bias = None if bias is None else bias.detach().bfloat16().cpu()

    @staticmethod
    def takes(weight: torch.Tensor) -> bool:
        return weight.shape[1] >= 16  # shorter rows crash the kernel (torch 2.13)

    # the kernel reads the weights once per row of x: past this many rows (a prompt, not a decoding step) it is
    # cheaper to round them back to bf16 once and use the ordinary matmul
    ROWS = 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).bfloat16()
        if len(rows) < self.ROWS:
            y = torch._weight_int8pack_mm(rows, self._q, self._scale)
        else:
            y = rows @ (self._q.to(torch.bfloat16) * self._scale[:, None]).T
        if self._bias is not None:
            y = y + self._bias
        return y.to(x.dtype).reshape(*shape[:-1], self.out_features)

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


def _quantise(model: GPT, name: str, linear: type[nn.Module], kernel: str) -> GPT:
    """Replace every Linear in the blocks, and the LM head, with `linear` where it takes the matrix (in place)."""
    if model.device.type != "cpu":
        raise GptkitError(f"{name} weights run on the CPU: load the model with device=cpu, or use bf16 on a GPU")
    if not hasattr(torch.ops.aten, kernel):
        raise GptkitError(f"this PyTorch build has no CPU {name} kernel ({kernel}): use torch >= 2.6, or bf16")
    model = model.to(torch.bfloat16 if fast_bf16(model.device) else torch.float32).eval()
    _swap_linears(model, lambda w, b: linear(w, b) if linear.takes(w) else _Bf16Linear(w, b))
    return model


def quantize_int8(model: GPT) -> GPT:
    """int8 weights, one scale per row, for every Linear in the blocks and the LM head (in place; CPU only)."""
    return _quantise(model, "int8", Int8Linear, "_weight_int8pack_mm")


def quantize_int4(model: GPT) -> GPT:
    """int4 weights in groups of 32 for every Linear in the blocks and the LM head (in place; CPU only)."""
    return _quantise(model, "int4", Int4Linear, "_weight_int4pack_mm_for_cpu")


class _Bf16Linear(nn.Module):
    """A matrix a quantised kernel cannot take, kept in bf16; x's dtype in and out."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().bfloat16(), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach().bfloat16(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x.bfloat16(), self.weight, self.bias).to(x.dtype)


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
