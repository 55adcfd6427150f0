"""What an export carries besides weights: the tokenizer with its special tokens and chat template, and a
model card; and what an import keeps of them through a gptkit checkpoint."""

import json

import pytest
import torch

from gptkit import GPT, Tokenizer, from_hf, load_checkpoint, save_checkpoint, to_hf
from gptkit.generate import Chat
from tests.conftest import SAMPLE_TEXT, tiny
from tests.data.test_chat import CONVERSATIONS, TEMPLATES

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def chatml_tokenizer() -> Tokenizer:
    trained = Tokenizer.train_bpe(SAMPLE_TEXT, vocab_size=300, special_tokens=("<|im_end|>", "<|im_start|>"))
    return Tokenizer(trained.backend, "<|im_end|>", bos_token="<|im_start|>", chat_template=TEMPLATES["chatml"])


def test_an_export_carries_the_chat_template_and_transformers_renders_the_same_ids(tmp_path, chatml_tokenizer):
    model = GPT(tiny("llama", vocab_size=chatml_tokenizer.vocab_size))
    to_hf(model, chatml_tokenizer, tmp_path)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert (theirs.eos_token, theirs.bos_token) == ("<|im_end|>", "<|im_start|>")
    chat = Chat(chatml_tokenizer.chat_template, chatml_tokenizer.eot_token, bos_token=chatml_tokenizer.bos_token)
    for messages in CONVERSATIONS:
        chat.messages = list(messages)
        expected = theirs.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        expected = expected["input_ids"] if isinstance(expected, dict) or hasattr(expected, "keys") else expected
        assert chatml_tokenizer.encode_rendered(chat.render()) == list(expected)
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["eos_token_id"], config["bos_token_id"]) == (chatml_tokenizer.eot_id, chatml_tokenizer.bos_id)


def test_a_chat_fine_tune_exports_the_template_it_was_trained_with(tmp_path, bpe_tokenizer):
    from gptkit.data.chat import CHAT_TEMPLATE

    to_hf(GPT(tiny("gpt2", vocab_size=bpe_tokenizer.vocab_size)), bpe_tokenizer, tmp_path, chat_template=CHAT_TEMPLATE)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert theirs.apply_chat_template(messages, tokenize=False) == "<|user|>\nhi\n<|assistant|>\nhello<|endoftext|>\n"


def test_the_model_card_says_what_the_model_is_and_how_it_was_made(tmp_path):
    model = GPT(tiny("qwen3"))
    about = {"step": 300, "run": {"train": {"data": "data/shakespeare", "lr": 0.001, "batch_size": 16}},
             "license": "apache-2.0"}
    to_hf(model, None, tmp_path, about=about)
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\nlibrary_name: transformers\n")
    for fact in ("`Qwen3ForCausalLM`", f"| parameters | {model.num_params():,} |",
                 "4 query, 1 key/value, 16 wide, QK-norm", "RoPE (theta 1e+06)", "rmsnorm, swiglu",
                 "`data/shakespeare`", "300 optimiser steps"):
        assert fact in card, fact


def test_an_imported_tokenizer_keeps_its_special_tokens_and_template_through_a_checkpoint(tmp_path, chatml_tokenizer):
    to_hf(GPT(tiny("llama", vocab_size=chatml_tokenizer.vocab_size)), chatml_tokenizer, tmp_path / "hf")
    model, tokenizer = from_hf(tmp_path / "hf")
    assert (tokenizer.eot_token, tokenizer.bos_token) == ("<|im_end|>", "<|im_start|>")
    save_checkpoint(tmp_path / "ckpt", model, tokenizer)
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.tokenizer.chat_template == TEMPLATES["chatml"]
    prompt = Chat.of_checkpoint(ckpt).prompt("hi")
    assert prompt == "<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n" \
                     "<|im_start|>assistant\n"
    with torch.no_grad():
        assert torch.equal(ckpt.model(torch.tensor([[1, 2, 3]])), model.eval()(torch.tensor([[1, 2, 3]])))
