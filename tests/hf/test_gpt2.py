"""Parity with Hugging Face transformers: same weights, same logits, same greedy tokens."""

import json

import pytest
import torch

from gptkit import GptkitError, Tokenizer, beam_search, from_hf, generate, to_hf
from gptkit.generate import Decoding, Sampling
from gptkit.model import span_logits

transformers = pytest.importorskip("transformers")


def _hf_tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=120, n_positions=64, n_embd=32, n_layer=3, n_head=4,
                                     **overrides)
    return transformers.GPT2LMHeadModel(config).eval()


def _hf_greedy(hf_model, prompt, n):
    device = hf_model.device
    out = hf_model.generate(torch.tensor([prompt], device=device), max_new_tokens=n, do_sample=False,
                            pad_token_id=0, attention_mask=torch.ones(1, len(prompt), dtype=torch.long,
                                                                      device=device))
    return out[0, len(prompt):].tolist()


def test_from_hf_gives_identical_logits_and_greedy_tokens(tmp_path, device):
    hf_model = _hf_tiny()
    hf_model.save_pretrained(tmp_path)
    model, tokenizer = from_hf(tmp_path)
    model.eval().to(device)
    hf_model.to(device)
    idx = torch.randint(0, 120, (2, 40), device=device)
    with torch.no_grad():
        diff = (model(idx) - hf_model(idx).logits).abs().max().item()
    assert diff <= 1e-5
    prompt = [5, 17, 99, 3]
    assert generate(model, prompt, Decoding(32, temperature=0)) == _hf_greedy(hf_model, prompt, 32)
    assert tokenizer is None


def test_to_hf_loads_in_transformers_with_identical_outputs(tmp_path, tiny_model, bpe_tokenizer):
    to_hf(tiny_model, bpe_tokenizer, tmp_path)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, tiny_model.config.vocab_size, (3, 30))
    with torch.no_grad():
        diff = (tiny_model(idx) - hf_model(idx).logits).abs().max().item()
    assert diff <= 1e-5
    prompt = [1, 2, 3, 4, 5]
    assert generate(tiny_model, prompt, Decoding(32, temperature=0)) == _hf_greedy(hf_model, prompt, 32)

    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    text = "def add(a, b):\n    return a + b  # Grüße 🙂<|endoftext|>"
    assert hf_tokenizer(text)["input_ids"] == bpe_tokenizer.encode(text)
    assert hf_tokenizer.eos_token == "<|endoftext|>"


def _loaded_pair(tmp_path, seed):
    hf_model = _hf_tiny(seed)
    hf_model.save_pretrained(tmp_path)
    return from_hf(tmp_path)[0].eval(), hf_model


def test_repetition_penalty_greedy_matches_transformers(tmp_path):
    model, hf_model = _loaded_pair(tmp_path, seed=2)
    prompt = [5, 17, 99, 3, 5]
    for penalty in (1.3, 0.8):
        theirs = hf_model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, 5, dtype=torch.long),
                                   max_new_tokens=24, do_sample=False, repetition_penalty=penalty, pad_token_id=0)
        sampling = Sampling(temperature=0, repetition_penalty=penalty)
        assert generate(model, prompt, Decoding(24, **vars(sampling))) == theirs[0, 5:].tolist()


@pytest.mark.parametrize("length_penalty, early_stopping", [(1.0, False), (0.0, True), (2.0, False), (-1.0, False)])
def test_beam_search_matches_transformers(tmp_path, length_penalty, early_stopping):
    """Same sequences and scores for every returned beam; end-of-text is a token the model likes, so beams finish."""
    model, hf_model = _loaded_pair(tmp_path, seed=0)
    prompt = [5, 17, 99, 3]
    eos = generate(model, prompt, Decoding(4, temperature=0))[2]
    out = hf_model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, 4, dtype=torch.long),
                            max_new_tokens=12, num_beams=3, num_return_sequences=3, do_sample=False,
                            length_penalty=length_penalty, early_stopping=early_stopping, eos_token_id=eos,
                            pad_token_id=0, output_scores=True, return_dict_in_generate=True)
    theirs = [row[4:].tolist() for row in out.sequences]
    theirs = [t[: t.index(eos) + 1] if eos in t else t for t in theirs]  # drop the padding after eos
    ours = beam_search(model, prompt, Decoding(12, num_beams=3, length_penalty=length_penalty, stop_ids=(eos,),
                                                         early_stopping=early_stopping))
    assert [b.tokens for b in ours] == theirs
    assert [b.score for b in ours] == pytest.approx(out.sequences_scores.tolist(), abs=1e-4)
    assert any(eos in t for t in theirs) == (length_penalty < 2)  # a strong length penalty keeps long beams


def test_roundtrip_through_hf_preserves_weights(tmp_path, tiny_model):
    to_hf(tiny_model, None, tmp_path)
    back, _ = from_hf(tmp_path)
    for (name, a), (_, b) in zip(tiny_model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("resid, attn", [(0.1, 0.1), (0.1, 0.0), (0.0, 0.2)])
def test_dropout_settings_travel_both_ways(tmp_path, resid, attn):
    _hf_tiny(resid_pdrop=resid, embd_pdrop=resid, attn_pdrop=attn).save_pretrained(tmp_path / "hf")
    model, _ = from_hf(tmp_path / "hf")
    assert (model.config.dropout, model.config.attention_dropout) == (resid, attn)
    to_hf(model, None, tmp_path / "back")
    back = json.loads((tmp_path / "back" / "config.json").read_text())
    assert (back["resid_pdrop"], back["embd_pdrop"], back["attn_pdrop"]) == (resid, resid, attn)


def test_original_gpt2_layout_loads(tmp_path):
    """The `gpt2` upload: bare names (no `transformer.`), causal-mask buffers, a .bin pickle."""
    hf_model = _hf_tiny(seed=1)
    state = {k.removeprefix("transformer."): v for k, v in hf_model.state_dict().items()}
    state.pop("lm_head.weight")
    for i in range(3):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(hf_model.config.to_dict()))
    model, _ = from_hf(tmp_path)
    idx = torch.randint(0, 120, (1, 20))
    with torch.no_grad():
        assert (model.eval()(idx) - hf_model(idx).logits).abs().max().item() <= 1e-5


def test_gpt2_tokenizer_files_give_transformers_ids(tmp_path, bpe_tokenizer):
    bpe_tokenizer.backend.model.save(str(tmp_path))  # vocab.json + merges.txt, GPT-2's format
    ours = Tokenizer.load(tmp_path)
    theirs = transformers.GPT2TokenizerFast.from_pretrained(tmp_path)
    for text in ["Hello world", "  spaces  and\ttabs\n", "你好 🙂 Köln", "repeated, repeated"]:
        assert ours.encode(text) == theirs(text)["input_ids"]
        assert ours.decode(ours.encode(text)) == text


@pytest.mark.parametrize("overrides, message", [
    ({"activation_function": "relu"}, "activation_function"),
    ({"n_inner": 100}, "n_inner"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scaling"),
])
def test_unsupported_gpt2_variants_are_clear_errors(tmp_path, overrides, message):
    _hf_tiny(**overrides).save_pretrained(tmp_path)
    with pytest.raises(GptkitError, match=message):
        from_hf(tmp_path)


def test_an_unsupported_family_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(GptkitError, match="'bert' is not supported: gptkit reads gpt2, llama, mistral, qwen2, qwen3"):
        from_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(GptkitError, match="lacks hidden_size"):
        from_hf(tmp_path)
    with pytest.raises(GptkitError, match="no config.json"):
        from_hf(tmp_path / "missing")


def test_a_pytorch_model_bin_that_would_run_code_is_refused_without_running_it(tmp_path):
    from tests.test_checkpoint import _RunsCode

    hf_model = _hf_tiny(seed=1)
    state = dict(hf_model.state_dict(), payload=_RunsCode(tmp_path / "pwned"))
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(hf_model.config.to_dict()))
    with pytest.raises(GptkitError, match="would run code when loaded") as refused:
        from_hf(tmp_path)
    assert "weights_only=False" not in str(refused.value) and not (tmp_path / "pwned").exists()


def test_question_answering_models_travel_both_ways_with_identical_span_logits(tmp_path):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=120, n_positions=64, n_embd=32, n_layer=2, n_head=4)
    hf_model = transformers.GPT2ForQuestionAnswering(config).eval()
    hf_model.save_pretrained(tmp_path / "theirs")
    model, _ = from_hf(tmp_path / "theirs")
    assert model.config.span_head
    idx = torch.randint(0, 120, (2, 40))
    with torch.no_grad():
        theirs = hf_model(idx)
        spans = span_logits(model.eval(), idx)
    assert (spans[..., 0] - theirs.start_logits).abs().max() <= 1e-5
    assert (spans[..., 1] - theirs.end_logits).abs().max() <= 1e-5
    to_hf(model, None, tmp_path / "ours")
    back = transformers.AutoModelForQuestionAnswering.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        assert torch.equal(back(idx).start_logits, theirs.start_logits)
