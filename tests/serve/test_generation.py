"""OpenAI's API as clients really send it: token-id prompts and inputs, content parts, model retrieval,
logit_bias; fields gptkit lacks and wrong types refused by name; user text that spells a special token."""

import json

import httpx
import numpy as np
import pytest

from gptkit import Decoding, load_checkpoint
from gptkit.generate import Chat, generate

KEY = {"Authorization": "Bearer sesame"}


def _post(served, route, body, headers=KEY):  # json.dumps escapes a lone surrogate as JSON allows ("\ud800")
    return httpx.post(served.url + route, content=json.dumps(body), timeout=60,
                      headers={**headers, "content-type": "application/json"})


def _greedy_ids(ckpt, ids, n=6):
    return generate(ckpt.model.eval(), ids, Decoding(n, temperature=0, stop_ids=(ckpt.tokenizer.eot_id,)))


def test_token_id_prompts_continue_those_ids(client, served):
    ckpt = load_checkpoint(served.paths["lm"])
    ids = [[5, 80, 81, 200], [7, 9]]
    one = client.completions.create(model="lm", prompt=ids[0], max_tokens=6, temperature=0)
    assert one.choices[0].text == ckpt.tokenizer.decode(t for t in _greedy_ids(ckpt, ids[0]) if t != 0)
    assert one.usage.prompt_tokens == 4
    both = client.completions.create(model="lm", prompt=ids, max_tokens=6, temperature=0)
    texts = [c.text for c in sorted(both.choices, key=lambda c: c.index)]
    assert texts[0] == one.choices[0].text and both.usage.prompt_tokens == 6
    outside = _post(served, "/v1/completions", {"model": "lm", "prompt": [ckpt.tokenizer.vocab_size]})
    assert outside.status_code == 400 and "vocabulary" in outside.json()["error"]["message"]


def test_embeddings_of_token_ids_are_those_of_the_text_they_spell(client, served):
    tok = load_checkpoint(served.paths["enc"]).tokenizer
    text = client.embeddings.create(model="enc", input="a cat sat").data[0].embedding
    ids = client.embeddings.create(model="enc", input=tok.encode("a cat sat")).data[0].embedding
    lists = client.embeddings.create(model="enc", input=[tok.encode("a cat sat"), tok.encode("x")])
    np.testing.assert_allclose(ids, text, atol=1e-6)
    np.testing.assert_allclose(lists.data[0].embedding, text, atol=1e-6)
    assert client.embeddings.create(model="enc", input="a cat", dimensions=32).data[0].embedding
    wrong = _post(served, "/v1/embeddings", {"model": "enc", "input": "a cat", "dimensions": 8})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "dimensions"


def test_content_parts_are_read_as_their_text_and_images_are_refused(client, served):
    plain = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi\nthere"}],
                                           max_tokens=6, temperature=0)
    parts = client.chat.completions.create(model="chat", max_tokens=6, temperature=0, messages=[
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]}])
    assert parts.choices[0].message.content == plain.choices[0].message.content
    image = _post(served, "/v1/chat/completions", {"model": "chat", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]})
    assert image.status_code == 400 and "text only" in image.json()["error"]["message"]
    assert image.json()["error"]["param"] == "messages.0.content"


def test_a_model_is_retrieved_by_its_id(client):
    assert client.models.retrieve("chat").id == "chat"
    openai = pytest.importorskip("openai")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_logit_bias_pushes_a_token_up_or_bans_it(client, served):
    tok = load_checkpoint(served.paths["lm"]).tokenizer
    forced = tok.encode(" cat")[0]
    out = client.completions.create(model="lm", prompt="hello", max_tokens=4, temperature=0,
                                    logit_bias={str(forced): 100})
    assert out.choices[0].text == tok.decode([forced] * 4)
    plain = client.completions.create(model="lm", prompt="hello", max_tokens=4, temperature=0, logprobs=0)
    first = tok.encode_text(plain.choices[0].logprobs.tokens[0])[0]
    banned = client.completions.create(model="lm", prompt="hello", max_tokens=4, temperature=0,
                                       logit_bias={str(first): -100})
    assert not banned.choices[0].text.startswith(plain.choices[0].logprobs.tokens[0])


@pytest.mark.parametrize("route, extra, param", [
    ("/v1/completions", {"suffix": "the end"}, "suffix"),
    ("/v1/completions", {"best_of": 3}, "best_of"),
    ("/v1/completions", {"colour": "blue"}, "colour"),
    ("/v1/completions", {"max_tokens": "5"}, "max_tokens"),
    ("/v1/completions", {"logprobs": True}, "logprobs"),
    ("/v1/completions", {"temperature": "0.5"}, "temperature"),
    ("/v1/completions", {"echo": 1}, "echo"),
    ("/v1/completions", {"logit_bias": {"x": 1}}, "logit_bias"),
    ("/v1/completions", {"logit_bias": {"3": 200}}, "logit_bias"),
    ("/v1/chat/completions", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ("/v1/chat/completions", {"tool_choice": "required"}, "tool_choice"),
    ("/v1/chat/completions", {"response_format": {"type": "json_object"}}, "response_format"),
])
def test_fields_gptkit_lacks_and_wrong_types_are_refused_by_name(served, route, extra, param):
    body = {"model": "lm", "prompt": "hi"} if route == "/v1/completions" else \
        {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    response = _post(served, route, {**body, **extra})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param and param in response.json()["error"]["message"]


def test_neutral_values_of_fields_gptkit_lacks_are_accepted(client):
    out = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=2,
                                         tools=[], response_format={"type": "text"}, tool_choice="none")
    assert out.choices[0].finish_reason in ("stop", "length")


def test_special_token_spellings_in_user_text_stay_text(client, served):
    tok = load_checkpoint(served.paths["lm"]).tokenizer
    prompt = "hello<|endoftext|>world"
    assert tok.eot_id in tok.encode(prompt)  # what the spelling would become if it were read as a special token
    out = client.completions.create(model="lm", prompt=prompt, max_tokens=2, temperature=0, echo=True, logprobs=0)
    assert out.usage.prompt_tokens == len(tok.encode_text(prompt)) > len(tok.encode(prompt))
    assert "<|endoftext|>" not in out.choices[0].logprobs.tokens[: out.usage.prompt_tokens]
    ckpt = load_checkpoint(served.paths["chat"])
    chat = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": prompt}], max_tokens=2)
    rendered = Chat.of_checkpoint(ckpt).prompt(prompt)
    assert chat.usage.prompt_tokens == len(tok.encode(rendered)) + len(tok.encode_text("<|endoftext|>")) - 1
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
               {"role": "user", "content": "more"}]  # the template's own end-of-text, after a reply, stays special
    conversation = Chat.of_checkpoint(ckpt)
    conversation.messages = history
    reply = client.chat.completions.create(model="chat", messages=history, max_tokens=2)
    assert reply.usage.prompt_tokens == len(tok.encode(conversation.render()))


def test_a_prompt_far_above_the_window_is_refused_before_it_is_tokenized(served):
    tokenizer = served.app.state.served["lm"].tokenizer
    calls, encode = [], tokenizer.encode_text
    tokenizer.encode_text = lambda text: calls.append(len(text)) or encode(text)
    try:
        out = _post(served, "/v1/completions", {"model": "lm", "prompt": "word " * 3900, "max_tokens": 1})
        fits = _post(served, "/v1/completions", {"model": "lm", "prompt": "word " * 10, "max_tokens": 1})
    finally:
        tokenizer.encode_text = encode
    assert out.status_code == 400 and out.json()["error"]["code"] == "context_length_exceeded"
    assert fits.status_code == 200 and calls == [50]  # only the prompt that can fit was tokenized


def test_a_pretrained_models_chat_goes_through_its_own_template(tmp_path):
    """A Llama-style model whose tokenizer carries ChatML: the server renders a chat with it, specials included."""
    openai = pytest.importorskip("openai")
    import torch

    from gptkit import GPT, ModelConfig, Tokenizer, save_checkpoint
    from tests.data.test_chat import TEMPLATES
    from tests.serve.conftest import LLAMA, TEXTS, serve

    trained = Tokenizer.train_bpe(TEXTS, vocab_size=320, special_tokens=("<|im_end|>", "<|im_start|>"))
    tok = Tokenizer(trained.backend, "<|im_end|>", bos_token="<|im_start|>", chat_template=TEMPLATES["chatml"])
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, block_size=96, n_layer=2, n_head=2, n_embd=32, **LLAMA))
    save_checkpoint(tmp_path / "smol", model, tok)
    server = serve([tmp_path / "smol"])
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60)
        messages = [{"role": "user", "content": "hello <|im_end|> world"}]  # user text that spells a special
        reply = client.chat.completions.create(model="smol", messages=messages, max_tokens=3, temperature=0)
    finally:
        server.stop()
    chat = Chat.of_checkpoint(load_checkpoint(tmp_path / "smol"))
    chat.messages = [{"role": "user", "content": tok.literal(messages[0]["content"])}]
    rendered = chat.render()
    assert rendered.startswith("<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n<|im_start|>user\n")
    ids = tok.encode_rendered(rendered)
    assert reply.usage.prompt_tokens == len(ids) and ids.count(tok.eot_id) == 2  # the two the template wrote
