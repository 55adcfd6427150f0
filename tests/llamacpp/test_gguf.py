"""GGUF in and out on tiny files the tests write: gptkit's own round trip, parity with transformers' GGUF
loading of the same file (logits, greedy tokens, token ids), and every tensor type the reader takes."""

import pytest
import torch

from gptkit import GptkitError
from gptkit.llamacpp import from_gguf, to_gguf
from tests.llamacpp.conftest import ARCHS, CHATML, HELD_OUT, chatml_tokenizer, gguf, logits, model_of, write_gguf


@pytest.mark.parametrize("arch", ARCHS)
def test_an_f32_export_reads_back_exactly(tmp_path, arch):
    model, tokenizer = model_of(arch), chatml_tokenizer()
    ours, ours_tokenizer, general = from_gguf(write_gguf(tmp_path / "m.gguf", model, tokenizer))
    assert general["architecture"] == arch
    assert ours.config == model.config
    ids = tokenizer.encode(HELD_OUT)
    assert torch.equal(logits(ours.eval(), ids), logits(model, ids))
    assert ours_tokenizer.encode(HELD_OUT) == ids
    assert (ours_tokenizer.eot_token, ours_tokenizer.bos_token) == ("<|im_end|>", "<|im_start|>")
    assert ours_tokenizer.chat_template == CHATML


@pytest.mark.parametrize("kind,bound", [("f16", 2e-2), ("bf16", 1e-1), ("q8_0", 1e-1), ("q4_0", 3e-1)])
def test_exports_in_each_type_stay_close(tmp_path, kind, bound):
    model = model_of("llama", intermediate_size=128)  # rows in whole blocks of 32, so all of them are q8_0
    to_gguf(model, chatml_tokenizer(), tmp_path / "m.gguf", kind)
    ours, ids = from_gguf(tmp_path / "m.gguf")[0].eval(), list(range(3, 40))
    assert (logits(ours, ids) - logits(model, ids)).abs().max() < bound * logits(model, ids).abs().max()
    types = {t.tensor_type.name for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
    assert types == {kind.upper(), "F32"}


def test_bad_files_are_clear_errors(tmp_path):
    (tmp_path / "x.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(GptkitError, match="not a readable GGUF file"):
        from_gguf(tmp_path / "x.gguf")
    with pytest.raises(GptkitError, match="no such file"):
        from_gguf(tmp_path / "missing.gguf")
    writer = gguf.GGUFWriter(tmp_path / "phi.gguf", "phi3")
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    with pytest.raises(GptkitError, match="'phi3' is not supported: gptkit reads gpt2, llama, qwen2, qwen3"):
        from_gguf(tmp_path / "phi.gguf")


def test_what_gguf_cannot_hold_is_refused(tmp_path):
    from gptkit import Tokenizer

    chars = Tokenizer.train_char(["abc"])
    with pytest.raises(GptkitError, match="byte-level BPE"):
        to_gguf(model_of("llama"), chars, tmp_path / "m.gguf")
    with pytest.raises(GptkitError, match="needs the checkpoint's tokenizer"):
        to_gguf(model_of("llama"), None, tmp_path / "m.gguf")
    with pytest.raises(GptkitError, match="'q4_k' is not one of f32, f16, bf16, q8_0, q4_0"):
        to_gguf(model_of("llama"), chatml_tokenizer(), tmp_path / "m.gguf", "q4_k")
    assert not (tmp_path / "m.gguf").exists()


@pytest.mark.parametrize("kind,bound", [("q8_0", 0.1), ("q4_0", 0.5)])
def test_block_types_keep_rows_that_are_not_whole_blocks_in_f16(tmp_path, kind, bound):
    model = model_of("llama", intermediate_size=72)  # ffn_down's rows: 72 values, not a multiple of 32
    to_gguf(model, chatml_tokenizer(), tmp_path / "m.gguf", kind)
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
    assert types["blk.0.ffn_down.weight"] == "F16" and types["blk.0.ffn_up.weight"] == kind.upper()
    ids = list(range(3, 40))
    assert (logits(from_gguf(tmp_path / "m.gguf")[0].eval(), ids) - logits(model, ids)).abs().max() < bound
